// bindings.cpp - the pybind11 module fastgrad._C: thin, no logic.
//
// Arrays cross into Python as _C.Array; every kernel releases the GIL.
// One section per op family, in the order of csrc/cpu/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "allocator.h"
#include "array.h"
#include "errors.h"
#include "interop.h"
#include "parallel.h"
#include "cuda/runtime.h"
// op families: one header per csrc/cpu/ file
#include "cpu/conv.h"
#include "cpu/elementwise.h"
#include "cpu/gemm.h"
#include "cpu/index.h"
#include "cpu/machine.h"
#include "cpu/norm.h"
#include "cpu/optim.h"
#include "cpu/pool.h"
#include "cpu/random.h"
#include "cpu/reduce.h"
#include "cpu/vecmath.h"
#include "cpu/rnn.h"

namespace py = pybind11;
using namespace fg;

namespace {
using Release = py::call_guard<py::gil_scoped_release>;

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device{DeviceType::CPU, 0};
  if (s.rfind("cuda", 0) == 0) {
    int idx = 0;
    if (s.size() > 4) {
      if (s[4] != ':') throw std::invalid_argument("invalid device string '" + s + "'");
      idx = std::stoi(s.substr(5));
    }
    return Device{DeviceType::CUDA, idx};
  }
  throw std::invalid_argument("invalid device string '" + s + "' (expected 'cpu', 'cuda' or 'cuda:N')");
}
}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastgrad native engine";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fg::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const fg::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });

  py::enum_<DType>(m, "DType")
      .value("bool", DType::Bool)
      .value("int32", DType::Int32)
      .value("int64", DType::Int64)
      .value("float32", DType::Float32)
      .value("float64", DType::Float64);

  // ---- the array -----------------------------------------------------------
  py::class_<Array>(m, "Array")
      .def_property_readonly("shape", [](const Array& a) { return py::tuple(py::cast(a.shape)); })
      .def_property_readonly("strides", [](const Array& a) { return py::tuple(py::cast(a.strides)); })
      .def_property_readonly("offset", [](const Array& a) { return a.offset; })
      .def_property_readonly("dtype", [](const Array& a) { return a.dtype; })
      // the enum as a plain int: a tuple lookup in Python, far cheaper than hashing the pybind enum
      .def_property_readonly("dtype_id", [](const Array& a) { return static_cast<int>(a.dtype); })
      .def_property_readonly("device", [](const Array& a) { return a.device().str(); })
      .def_property_readonly("ndim", &Array::ndim)
      .def_property_readonly("itemsize", &Array::itemsize)
      .def_property_readonly("version", [](const Array& a) { return a.storage->version.load(); })
      .def_property_readonly("data_ptr", [](const Array& a) { return reinterpret_cast<uintptr_t>(a.raw()); })
      .def_property_readonly("storage_id", [](const Array& a) { return reinterpret_cast<uintptr_t>(a.storage.get()); })
      // how many arrays (views, NumPy/DLPack exports) share the storage: 1 lets autograd take a fresh
      // gradient as .grad instead of copying it (nothing else can see the memory)
      .def_property_readonly("storage_refs", [](const Array& a) { return a.storage.use_count(); })
      .def("numel", &Array::numel)
      .def("is_contiguous", &Array::is_contiguous)
      .def("bump_version", &Array::bump_version);

  // ---- creation, views, copies (array.h) ------------------------------------
  m.def("parse_device", [](const std::string& s) { return parse_device(s).str(); });
  m.def("empty", [](const Shape& s, DType t, const std::string& d) { return empty(s, t, parse_device(d)); });
  m.def("zeros", [](const Shape& s, DType t, const std::string& d) { return zeros(s, t, parse_device(d)); }, Release());
  m.def("full", [](const Shape& s, double v, DType t, const std::string& d) { return full(s, v, t, parse_device(d)); },
        Release());
  m.def("scalar", &scalar);
  m.def("as_strided", &as_strided);
  m.def("view", &view);
  m.def("reshape", &reshape, Release());
  m.def("transpose", &transpose);
  m.def("permute", &permute);
  m.def("slice", &slice);
  m.def("select", &fg::select);
  m.def("expand", &expand);
  m.def("squeeze", &squeeze);
  m.def("unsqueeze", &unsqueeze);
  m.def("flip", &flip);
  m.def("contiguous", &contiguous, Release());
  m.def("copy", &copy, Release());
  m.def("astype", &astype, Release());
  m.def("copy_into", [](const Array& dst, const Array& src) {
        copy_into(dst, src, "copy_");
        dst.bump_version();
      }, Release());
  m.def("broadcast_shapes", [](const Shape& a, const Shape& b) { return broadcast_shapes(a, b, "broadcast_shapes"); });

  // ---- interop (interop.cpp) -------------------------------------------------
  m.def("to_numpy", &to_numpy);
  m.def("from_numpy", &from_numpy);
  m.def("to_dlpack", &to_dlpack, py::arg("a"), py::arg("versioned") = false, py::arg("copy") = false);
  m.def("from_dlpack", &from_dlpack);

  // ---- runtime ---------------------------------------------------------------
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, Release());
  m.def("memory_stats", [](const std::string& d) {
    MemoryStats s = memory_stats(parse_device(d));
    py::dict r;
    r["bytes_in_use"] = s.bytes_in_use;
    r["peak_bytes"] = s.peak_bytes;
    r["allocations"] = s.allocations;
    r["live_allocations"] = s.live_allocations;
    r["cached_bytes"] = s.cached_bytes;
    r["cache_hits"] = s.cache_hits;
    return r;
  });
  m.def("reset_peak", [](const std::string& d) { reset_peak(parse_device(d)); });
  m.def("empty_cache", [] { empty_cache(); }, Release());

  // ---- devices (device.h, cuda/runtime.h) ----------------------------------------
  m.def("to_device", [](const Array& a, const std::string& d) { return to_device(a, parse_device(d)); }, Release());
#ifdef FASTGRAD_WITH_CUDA
  m.def("cuda_is_built", [] { return true; });
  m.def("cuda_device_count", &fg::cuda::device_count);
  m.def("cuda_set_device", &fg::cuda::set_device);
  m.def("cuda_current_device", &fg::cuda::current_device);
  m.def("cuda_synchronize", &fg::cuda::synchronize, py::arg("index") = -1, Release());
  m.def("cuda_device_name", &fg::cuda::device_name);
  m.def("cuda_version", &fg::cuda::version_info);
  m.def("cuda_set_allow_tf32", &fg::cuda::set_allow_tf32);
  m.def("cuda_allow_tf32", &fg::cuda::allow_tf32);
#else
  m.def("cuda_is_built", [] { return false; });
  m.def("cuda_device_count", [] { return 0; });
#endif
  m.def("empty_device_cache", [](const std::string& d) { empty_device_cache(parse_device(d)); }, Release());

  // ---- elementwise (cpu/elementwise.h) ---------------------------------------
  m.def("neg", &fg::neg, Release());
  m.def("abs", &fg::abs, Release());
  m.def("sign", &fg::sign, Release());
  m.def("exp", &fg::exp, Release());
  m.def("log", &fg::log, Release());
  m.def("log1p", &fg::log1p, Release());
  m.def("expm1", &fg::expm1, Release());
  m.def("sqrt", &fg::sqrt, Release());
  m.def("rsqrt", &fg::rsqrt, Release());
  m.def("square", &fg::square, Release());
  m.def("reciprocal", &fg::reciprocal, Release());
  m.def("sin", &fg::sin, Release());
  m.def("cos", &fg::cos, Release());
  m.def("tan", &fg::tan, Release());
  m.def("tanh", &fg::tanh, Release());
  m.def("sigmoid", &fg::sigmoid, Release());
  m.def("relu", &fg::relu, Release());
  m.def("gelu", &fg::gelu, Release());
  m.def("gelu_tanh", &fg::gelu_tanh, Release());
  m.def("silu", &fg::silu, Release());
  m.def("erf", &fg::erf, Release());
  m.def("floor", &fg::floor, Release());
  m.def("ceil", &fg::ceil, Release());
  m.def("round", &fg::round, Release());
  m.def("trunc", &fg::trunc, Release());
  m.def("isnan", &fg::isnan, Release());
  m.def("isinf", &fg::isinf, Release());
  m.def("isfinite", &fg::isfinite, Release());
  m.def("logical_not", &fg::logical_not, Release());
  m.def("bitwise_not", &fg::bitwise_not, Release());
  m.def("leaky_relu", &fg::leaky_relu, py::arg("a"), py::arg("negative_slope") = 0.01, Release());
  m.def("elu", &fg::elu, py::arg("a"), py::arg("alpha") = 1.0, Release());
  m.def("softplus", &fg::softplus, py::arg("a"), py::arg("beta") = 1.0, py::arg("threshold") = 20.0, Release());
  m.def("clamp", &fg::clamp, py::arg("a"), py::arg("min") = py::none(), py::arg("max") = py::none(), Release());
  // int64 first: a Python int exponent keeps integer tensors integer.
  m.def("pow_scalar", &fg::pow_scalar, py::arg("a"), py::arg("exponent"), Release());
  m.def("add", &fg::add, Release());
  m.def("sub", &fg::sub, Release());
  m.def("mul", &fg::mul, Release());
  m.def("div", &fg::div, Release());
  m.def("binary_scalar", &fg::binary_scalar, py::arg("a"), py::arg("s"), py::arg("op"), py::arg("reversed") = false,
        Release());
  m.def("floor_divide", &fg::floor_divide, Release());
  m.def("remainder", &fg::remainder, Release());
  m.def("pow", &fg::pow, Release());
  m.def("maximum", &fg::maximum, Release());
  m.def("minimum", &fg::minimum, Release());
  m.def("atan2", &fg::atan2, Release());
  m.def("eq", &fg::eq, Release());
  m.def("ne", &fg::ne, Release());
  m.def("lt", &fg::lt, Release());
  m.def("le", &fg::le, Release());
  m.def("gt", &fg::gt, Release());
  m.def("ge", &fg::ge, Release());
  m.def("logical_and", &fg::logical_and, Release());
  m.def("logical_or", &fg::logical_or, Release());
  m.def("logical_xor", &fg::logical_xor, Release());
  m.def("bitwise_and", &fg::bitwise_and, Release());
  m.def("bitwise_or", &fg::bitwise_or, Release());
  m.def("bitwise_xor", &fg::bitwise_xor, Release());
  m.def("where", &fg::where, Release());
  m.def("add_", &fg::add_, Release());
  m.def("sub_", &fg::sub_, Release());
  m.def("mul_", &fg::mul_, Release());
  m.def("div_", &fg::div_, Release());
  m.def("clamp_", &fg::clamp_, py::arg("a"), py::arg("min") = py::none(), py::arg("max") = py::none(), Release());
  m.def("relu_backward", &fg::relu_backward, Release());
  m.def("sigmoid_backward", &fg::sigmoid_backward, Release());
  m.def("tanh_backward", &fg::tanh_backward, Release());
  m.def("gelu_backward", &fg::gelu_backward, Release());
  m.def("gelu_tanh_backward", &fg::gelu_tanh_backward, Release());
  m.def("silu_backward", &fg::silu_backward, Release());
  m.def("simd_level", &fg::elementwise_simd_level);

  // ---- vecmath / norm (cpu/vecmath.h, cpu/norm.h) -------------------------------
  m.def("vecmath_isa", &fg::vecmath::isa);
  m.def("layer_norm_forward", &fg::layer_norm_forward, py::arg("x"), py::arg("m"), py::arg("weight") = py::none(),
        py::arg("bias") = py::none(), py::arg("eps") = 1e-5, Release());
  m.def("layer_norm_backward", &fg::layer_norm_backward, py::arg("grad"), py::arg("x"), py::arg("mean"),
        py::arg("rstd"), py::arg("weight") = py::none(), py::arg("want_dw") = true, py::arg("want_db") = true,
        Release());
  m.def("batch_norm_forward", &fg::batch_norm_forward, py::arg("x"), py::arg("weight") = py::none(),
        py::arg("bias") = py::none(), py::arg("running_mean") = py::none(), py::arg("running_var") = py::none(),
        py::arg("training") = true, py::arg("eps") = 1e-5, Release());
  m.def("batch_norm_backward", &fg::batch_norm_backward, py::arg("grad"), py::arg("x"), py::arg("mean"),
        py::arg("rstd"), py::arg("weight") = py::none(), py::arg("training") = true, py::arg("want_dw") = true,
        py::arg("want_db") = true, Release());

  // ---- reductions (cpu/reduce.h) ----------------------------------------------
  // dims: a list, empty = every dim (the Python layer maps dim=None to []).
  m.def("sum", &fg::sum, py::arg("a"), py::arg("dims"), py::arg("keepdim"), py::arg("dtype") = py::none(), Release());
  m.def("mean", &fg::mean, Release());
  m.def("prod", &fg::prod, Release());
  m.def("amax", &fg::amax, Release());
  m.def("amin", &fg::amin, Release());
  m.def("all", &fg::all, Release());
  m.def("any", &fg::any, Release());
  m.def("var", &fg::var, py::arg("a"), py::arg("dims"), py::arg("correction"), py::arg("keepdim"), Release());
  m.def("logsumexp", &fg::logsumexp, Release());
  m.def("norm", &fg::norm, py::arg("a"), py::arg("p"), py::arg("dims"), py::arg("keepdim"), Release());
  m.def("max_dim", &fg::max_dim, Release());
  m.def("min_dim", &fg::min_dim, Release());
  m.def("argmax", &fg::argmax, py::arg("a"), py::arg("dim"), py::arg("keepdim") = false, Release());
  m.def("argmin", &fg::argmin, py::arg("a"), py::arg("dim"), py::arg("keepdim") = false, Release());
  m.def("cumsum", &fg::cumsum, Release());
  m.def("cumprod", &fg::cumprod, Release());
  m.def("softmax", &fg::softmax, Release());
  m.def("log_softmax", &fg::log_softmax, Release());
  m.def("softmax_backward", &fg::softmax_backward, Release());
  m.def("log_softmax_backward", &fg::log_softmax_backward, Release());

  // ---- indexing and joining (cpu/index.h) -------------------------------------
  m.def("cat", &fg::cat, py::arg("tensors"), py::arg("dim") = 0, Release());
  m.def("stack", &fg::stack, py::arg("tensors"), py::arg("dim") = 0, Release());
  m.def("pad", &fg::pad, py::arg("a"), py::arg("pads"), py::arg("value") = 0.0, Release());
  m.def("repeat", &fg::repeat, Release());
  m.def("tril", &fg::tril, py::arg("a"), py::arg("k") = 0, Release());
  m.def("triu", &fg::triu, py::arg("a"), py::arg("k") = 0, Release());
  m.def("gather", &fg::gather, Release());
  m.def("scatter_add", &fg::scatter_add, Release());
  m.def("index_select", &fg::index_select, Release());
  m.def("index_add", &fg::index_add, Release());
  m.def("masked_fill", &fg::masked_fill, Release());
  m.def("masked_select", &fg::masked_select, Release());
  m.def("nonzero", &fg::nonzero, Release());
  m.def("one_hot", &fg::one_hot, py::arg("index"), py::arg("num_classes") = -1, Release());
  m.def("index_gather", &fg::index_gather, Release());
  m.def("index_put", &fg::index_put, py::arg("a"), py::arg("indices"), py::arg("values"),
        py::arg("accumulate") = false, Release());

  // ---- matrix product (cpu/gemm.h) --------------------------------------------
  m.def("matmul", &fg::matmul, Release());
  m.def("gemm_info", &fg::gemm_info);
  m.def("set_cpu_capability", &fg::set_cpu_capability);

  // ---- bench helpers (cpu/machine.h): the machine line of bench/run.py ---------
  py::class_<fg::FmaPeak>(m, "FmaPeak")
      .def_readonly("isa", &fg::FmaPeak::isa)
      .def_readonly("threads", &fg::FmaPeak::threads)
      .def_readonly("seconds", &fg::FmaPeak::seconds)
      .def_readonly("gflops", &fg::FmaPeak::gflops)
      .def_readonly("per_thread_cpu_gflops", &fg::FmaPeak::per_thread_cpu_gflops);
  m.def("measure_fma_peak", &fg::measure_fma_peak, py::arg("threads"), py::arg("seconds") = 0.2, Release());
  m.def("measure_copy_bandwidth", &fg::measure_copy_bandwidth, py::arg("nbytes"), py::arg("reps") = 5,
        py::arg("threads") = 1, Release());

  // ---- convolution (cpu/conv.h) -----------------------------------------------
  // 1-D or 2-D by the input's rank; padding holds (begin, end) per spatial dim.
  m.def("conv_forward", &fg::conv_forward, py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("op") = "conv2d", Release());
  m.def("conv_input_grad", &fg::conv_input_grad, py::arg("g"), py::arg("w"), py::arg("bias"),
        py::arg("input_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("op") = "conv2d_backward_input", Release());
  m.def("conv_weight_grad", &fg::conv_weight_grad, py::arg("g"), py::arg("x"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("op") = "conv2d_backward_weight", Release());

  // ---- recurrent layers (cpu/rnn.h) -------------------------------------------
  m.def("rnn_forward", &fg::rnn_forward, py::arg("mode"), py::arg("xp"), py::arg("h0"), py::arg("c0"),
        py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("reverse"), py::arg("keep"), Release());
  m.def("rnn_backward", &fg::rnn_backward, py::arg("mode"), py::arg("ws"), py::arg("grad"), py::arg("h0"),
        py::arg("c0"), py::arg("w_hh"), py::arg("bias"), py::arg("reverse"), Release());

  // ---- random numbers (cpu/random.h) ------------------------------------------
  // Seeds are taken modulo 2**64, so negative Python ints work as in torch.
  m.def("manual_seed", [](const py::int_& s) { fg::manual_seed(PyLong_AsUnsignedLongLongMask(s.ptr())); });
  m.def("get_rng_state", &fg::get_rng_state);
  m.def("set_rng_state", &fg::set_rng_state);
  // The factories take an optional device string ("cpu" by default): a CUDA
  // device draws there, the same numbers as the CPU (cuda/random.h).
  m.def("rand", [](const Shape& s, DType t, const std::string& d) { return fg::rand(s, t, parse_device(d)); },
        py::arg("shape"), py::arg("dtype"), py::arg("device") = "cpu", Release());
  m.def("randn", [](const Shape& s, DType t, const std::string& d) { return fg::randn(s, t, parse_device(d)); },
        py::arg("shape"), py::arg("dtype"), py::arg("device") = "cpu", Release());
  m.def("normal", [](double mean, double std, const Shape& s, DType t, const std::string& d) {
          return fg::normal(mean, std, s, t, parse_device(d));
        }, py::arg("mean"), py::arg("std"), py::arg("shape"), py::arg("dtype"), py::arg("device") = "cpu", Release());
  m.def("randint", [](int64_t lo, int64_t hi, const Shape& s, DType t, const std::string& d) {
          return fg::randint(lo, hi, s, t, parse_device(d));
        }, py::arg("low"), py::arg("high"), py::arg("shape"), py::arg("dtype"), py::arg("device") = "cpu", Release());
  m.def("bernoulli", &fg::bernoulli, Release());
  m.def("dropout_mask", [](const Shape& s, double p, DType t, const std::string& d) {
          return fg::dropout_mask(s, p, t, parse_device(d));
        }, py::arg("shape"), py::arg("p"), py::arg("dtype"), py::arg("device") = "cpu", Release());
  m.def("randperm", [](int64_t n, DType t, const std::string& d) { return fg::randperm(n, t, parse_device(d)); },
        py::arg("n"), py::arg("dtype") = DType::Int64, py::arg("device") = "cpu", Release());
  m.def("multinomial", &fg::multinomial, py::arg("input"), py::arg("num_samples"), py::arg("replacement") = false,
        Release());
  m.def("uniform_", &fg::uniform_, Release());
  m.def("normal_", &fg::normal_, Release());

  // ---- fused optimizers (cpu/optim.h) -----------------------------------------
  // One call per param group: lists of arrays, updated in place.
  m.def("sgd_step", &fg::sgd_step, py::arg("params"), py::arg("grads"), py::arg("momentum_bufs"), py::arg("lr"),
        py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
        py::arg("maximize"), py::arg("first_step"), Release());
  m.def("adam_step", &fg::adam_step, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::arg("max_exp_avg_sqs"), py::arg("step"), py::arg("lr"), py::arg("beta1"),
        py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("amsgrad"), py::arg("maximize"),
        py::arg("decoupled"), Release());
  m.def("adagrad_step", &fg::adagrad_step, py::arg("params"), py::arg("grads"), py::arg("state_sums"),
        py::arg("step"), py::arg("lr"), py::arg("lr_decay"), py::arg("weight_decay"), py::arg("eps"),
        py::arg("maximize"), Release());
  m.def("rmsprop_step", &fg::rmsprop_step, py::arg("params"), py::arg("grads"), py::arg("square_avgs"),
        py::arg("momentum_bufs"), py::arg("grad_avgs"), py::arg("lr"), py::arg("alpha"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("momentum"), py::arg("centered"), py::arg("maximize"), Release());

  // ---- pooling and upsampling (cpu/pool.h) ------------------------------------
  // (N, C, H, W) or (C, H, W); 1-d variants are these on (N, C, 1, L) views.
  // divisor_override 0 = none; scale <= 0 = none.
  m.def("max_pool2d", &fg::max_pool2d, py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
        py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("ceil_mode"), Release());
  m.def("adaptive_max_pool2d", &fg::adaptive_max_pool2d, Release());
  m.def("max_pool2d_backward", &fg::max_pool2d_backward, Release());
  m.def("max_pool2d_gather", &fg::max_pool2d_gather, Release());
  m.def("avg_pool2d", &fg::avg_pool2d, py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
        py::arg("ph"), py::arg("pw"), py::arg("ceil_mode"), py::arg("count_include_pad"),
        py::arg("divisor_override"), Release());
  m.def("avg_pool2d_backward", &fg::avg_pool2d_backward, py::arg("grad_out"), py::arg("input_shape"), py::arg("kh"),
        py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("ceil_mode"),
        py::arg("count_include_pad"), py::arg("divisor_override"), Release());
  m.def("adaptive_avg_pool2d", &fg::adaptive_avg_pool2d, Release());
  m.def("adaptive_avg_pool2d_backward", &fg::adaptive_avg_pool2d_backward, Release());
  m.def("upsample_nearest2d", &fg::upsample_nearest2d, py::arg("x"), py::arg("oh"), py::arg("ow"),
        py::arg("scale_h"), py::arg("scale_w"), py::arg("exact"), Release());
  m.def("upsample_nearest2d_backward", &fg::upsample_nearest2d_backward, py::arg("grad_out"),
        py::arg("input_shape"), py::arg("scale_h"), py::arg("scale_w"), py::arg("exact"), Release());
  m.def("upsample_bilinear2d", &fg::upsample_bilinear2d, py::arg("x"), py::arg("oh"), py::arg("ow"),
        py::arg("align_corners"), py::arg("scale_h"), py::arg("scale_w"), Release());
  m.def("upsample_bilinear2d_backward", &fg::upsample_bilinear2d_backward, py::arg("grad_out"),
        py::arg("input_shape"), py::arg("align_corners"), py::arg("scale_h"), py::arg("scale_w"), Release());
}

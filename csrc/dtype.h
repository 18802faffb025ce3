// dtype.h - the element types fastgrad arrays hold, PyTorch-style type
// promotion, and THE dtype dispatch helper (the only switch over dtypes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "errors.h"

namespace fg {

// Order matters: promote() relies on Bool < Int32 < Int64 < Float32 < Float64.
enum class DType : uint8_t { Bool = 0, Int32 = 1, Int64 = 2, Float32 = 3, Float64 = 4 };

inline size_t itemsize(DType t) {
  switch (t) {
    case DType::Bool: return 1;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::Float32: return 4;
    case DType::Float64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Bool: return "bool";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "?";
}

inline bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }
inline bool is_integral(DType t) { return t == DType::Int32 || t == DType::Int64; }

// Tensor-tensor promotion (both operands are tensors of the same "category"
// priority): the wider of the two, float beats int, int beats bool.
inline DType promote(DType a, DType b) { return a > b ? a : b; }

template <class T> struct dtype_of;
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };

// Calls fn(T{}) with T the C++ type of `t`. The one place that switches on
// dtype; kernels are templates over T instantiated from here.
template <class Fn>
decltype(auto) dispatch(DType t, Fn&& fn) {
  switch (t) {
    case DType::Bool: return fn(bool{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
  }
  throw std::runtime_error("fastgrad: unknown dtype");
}

// Same, for ops that only make sense on floating-point data. A wrong dtype
// is a TypeError (as in PyTorch), not a ValueError.
template <class Fn>
decltype(auto) dispatch_float(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    default:
      throw TypeError(std::string(op) + ": expected a float32 or float64 tensor, got " + dtype_name(t));
  }
}

// Same, for numeric ops that reject bool.
template <class Fn>
decltype(auto) dispatch_number(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    default:
      throw TypeError(std::string(op) + ": not supported for dtype " + dtype_name(t));
  }
}

}  // namespace fg

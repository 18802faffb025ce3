"""CUDA benchmarks: fastgrad vs PyTorch on the same GPU, side by side.

GEMM (float32, TF32 off on both sides; then TF32 on both sides at 4096 and
8192), elementwise bandwidth (add, exp on
256M floats; torch's copy as the reference bandwidth), and one Adam step on
10M params (torch.optim.Adam(fused=True)). Medians of repeated runs, timed
with time.perf_counter between device synchronisations.
Run: PYTHONPATH=python python bench/bench_cuda.py [--quick]
"""
import statistics
import sys
import time

import numpy as np

import fastgrad as fg

QUICK = "--quick" in sys.argv


def median_time(fn, sync, reps=5, warmup=1):
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    if not fg.cuda.is_available():
        print("no CUDA device: nothing to benchmark")
        return
    try:
        import torch
    except ImportError:
        torch = None
    have_torch = torch is not None and torch.cuda.is_available()
    fsync = fg.cuda.synchronize
    tsync = torch.cuda.synchronize if have_torch else (lambda: None)
    if have_torch:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    print(f"device: {fg.cuda.get_device_name()}  ({fg.cuda.version()})")

    print("\nGEMM float32 (TF32 off)          fastgrad TFLOP/s   torch TFLOP/s   ratio")
    for n in (1024, 2048, 4096) if QUICK else (1024, 2048, 4096, 8192):
        a = fg.randn(n, n, device="cuda")
        b = fg.randn(n, n, device="cuda")
        reps = 3 if n >= 8192 else 5
        tf = median_time(lambda: a @ b, fsync, reps)
        flop = 2.0 * n ** 3
        line = f"  {n:5d}^3                        {flop / tf / 1e12:10.2f}"
        if have_torch:
            ta, tb = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
            tt = median_time(lambda: ta @ tb, tsync, reps)
            line += f"        {flop / tt / 1e12:10.2f}   {tt / tf:6.3f}"
            del ta, tb
        print(line)
        # correctness spot check against torch (same inputs)
        if have_torch and n == 1024:
            ref = torch.from_dlpack(a) @ torch.from_dlpack(b)
            err = (torch.from_dlpack(a @ b) - ref).abs().max().item()
            print(f"    max |fastgrad - torch| at 1024: {err:.3g}")
        del a, b

    n = (1 << 26) if QUICK else (1 << 28)
    print(f"\nelementwise on {n >> 20}M float32         fastgrad GB/s   torch GB/s")
    x = fg.randn(n, device="cuda")
    y = fg.randn(n, device="cuda")
    gb3, gb2 = 3 * 4 * n / 1e9, 2 * 4 * n / 1e9
    t_add = median_time(lambda: x + y, fsync)
    t_exp = median_time(lambda: fg.exp(x), fsync)
    line_add, line_exp = f"  add (2 reads, 1 write)        {gb3 / t_add:10.1f}", f"  exp (1 read, 1 write)         {gb2 / t_exp:10.1f}"
    if have_torch:
        tx, ty = torch.from_dlpack(x), torch.from_dlpack(y)
        line_add += f"     {gb3 / median_time(lambda: tx + ty, tsync):10.1f}"
        line_exp += f"     {gb2 / median_time(lambda: torch.exp(tx), tsync):10.1f}"
        out = torch.empty_like(tx)
        print(f"  torch copy_ (reference)                       {gb2 / median_time(lambda: out.copy_(tx), tsync):10.1f}")
        del tx, ty, out
    print(line_add)
    print(line_exp)
    del x, y

    npar = 10_000_000
    print(f"\nAdam step on {npar // 1_000_000}M params (10 tensors)    fastgrad ms   torch fused ms")
    shapes = [npar // 10] * 10
    ps = [fg.randn(s, device="cuda").requires_grad_() for s in shapes]
    for p in ps:
        p.grad = fg.randn(p.shape, device="cuda")
    opt = fg.optim.Adam(ps, lr=1e-3)
    tf = median_time(opt.step, fsync, reps=10)
    line = f"  Adam                                     {tf * 1e3:8.2f}"
    if have_torch:
        tps = [torch.randn(s, device="cuda", requires_grad=True) for s in shapes]
        for p in tps:
            p.grad = torch.randn_like(p)
        topt = torch.optim.Adam(tps, lr=1e-3, fused=True)
        tt = median_time(topt.step, tsync, reps=10)
        line += f"        {tt * 1e3:8.2f}   (ratio {tt / tf:.3f})"
    print(line)
    bench_conv_pool(torch if have_torch else None, fsync, tsync)
    bench_norm(torch if have_torch else None, fsync, tsync)
    bench_reduce(torch if have_torch else None, fsync, tsync)
    bench_tf32(torch if have_torch else None, fsync, tsync)  # last: a fault there spoils nothing else
    print("\nmemory:", {k: v for k, v in fg.memory.stats("cuda").items()})
    _ = np  # numpy: kept for quick interactive checks


# ---- convolution and pooling (cuda/conv.cu, cuda/pool.cu) vs torch (cuDNN, TF32 off) ----------------


def conv_layer(lib, xn, wn, bn, gn, **kw):
    """One conv2d layer on the GPU in fastgrad or torch (lib: the same API):
    its forward (no grad) and forward+backward (upstream gradient gn)
    closures, and its x, w, b."""
    x = lib.tensor(xn, device="cuda", requires_grad=True)
    w = lib.tensor(wn, device="cuda", requires_grad=True)
    b = lib.tensor(bn, device="cuda", requires_grad=True)
    g = lib.tensor(gn, device="cuda")

    def fwd():
        with lib.no_grad():
            lib.nn.functional.conv2d(x, w, b, **kw)

    def fwd_bwd():
        x.grad = w.grad = b.grad = None
        lib.nn.functional.conv2d(x, w, b, **kw).backward(g)

    return fwd, fwd_bwd, (x, w, b)


def bench_conv_pool(torch, fsync, tsync):
    """conv2d forward and forward+backward (x, w and b grads) against torch's
    cuDNN on two ResNet-ish layers and a depthwise one (MobileNet-ish), then
    pooling / upsampling forward+backward.
    Ratio = torch time / fastgrad time (above 1: fastgrad faster)."""
    F = fg.nn.functional
    # One line per layer (gpu-check keeps 28 bench lines): fwd, then fwd+bwd
    # (x, w and b grads), each fastgrad ms / torch ms / ratio; then
    # fastgrad's forward TFLOP/s and the spot-check errors.
    print("\nconv2d f32 (TF32 off)    fwd: fg ms  torch ms  ratio | fwd+bwd: fg ms  torch ms  ratio | TFLOP/s")
    for n, c, o, hw, k, groups in ((64, 64, 64, 56, 3, 1), (128, 3, 64, 32, 3, 1), (64, 128, 128, 56, 3, 128)):
        r = np.random.default_rng(0)
        xn = r.standard_normal((n, c, hw, hw), dtype=np.float32)
        wn = (r.standard_normal((o, c // groups, k, k)) / np.sqrt(c // groups * k * k)).astype(np.float32)
        bn = r.standard_normal(o).astype(np.float32)
        gn = r.standard_normal((n, o, hw, hw), dtype=np.float32)
        flop = 2.0 * n * o * hw * hw * (c // groups) * k * k  # forward; backward is twice that
        f_fwd, f_all, (x, w, b) = conv_layer(fg, xn, wn, bn, gn, padding=k // 2, groups=groups)
        tf, tfb = median_time(f_fwd, fsync), median_time(f_all, fsync)
        label = f"{'dw ' if groups > 1 else ''}{n}x{c}->{o} {hw}x{hw} {k}x{k}"
        line = f"  {label:24s}  {tf * 1e3:7.2f}"
        if torch is not None:
            t_fwd, t_all, (tx, tw, tb) = conv_layer(torch, xn, wn, bn, gn, padding=k // 2, groups=groups)
            tt, ttb = median_time(t_fwd, tsync), median_time(t_all, tsync)
            # correctness spot check: the same layer's output and weight gradient
            f_all()
            t_all()
            y_err = (torch.from_dlpack(F.conv2d(x, w, b, padding=k // 2, groups=groups).detach())
                     - torch.nn.functional.conv2d(tx, tw, tb, padding=k // 2, groups=groups)).abs().max().item()
            w_err = ((torch.from_dlpack(w.grad) - tw.grad).abs().max() / tw.grad.abs().max()).item()
            line += f"  {tt * 1e3:7.2f}  {tt / tf:5.3f} | {tfb * 1e3:7.2f}  {ttb * 1e3:7.2f}  {ttb / tfb:5.3f}"
        else:
            line += f" | {tfb * 1e3:7.2f}"
        line += f" | {flop / tf / 1e12:5.2f}"
        if torch is not None:
            line += f"  err y {y_err:.2g} dw {w_err:.2g}"
        print(line)
        del f_fwd, f_all, x, w, b

    # fwd, and fwd+bwd with a given upstream gradient (not .sum(): a full
    # reduction would dominate the time)
    print("\npooling float32 (fwd | fwd+bwd)        fastgrad ms        torch ms          ratio")
    r = np.random.default_rng(1)
    xn = r.standard_normal((64, 64, 112, 112), dtype=np.float32)
    cases = [
        ("max_pool2d 3x3 s2 p1", lambda F_, t: F_.max_pool2d(t, 3, 2, 1), (64, 64, 56, 56)),
        ("adaptive_avg_pool2d 1", lambda F_, t: F_.adaptive_avg_pool2d(t, 1), (64, 64, 1, 1)),
        ("bilinear x2 (to 224)", lambda F_, t: F_.interpolate(t[:16], scale_factor=2, mode="bilinear",
                                                              align_corners=False), (16, 64, 224, 224)),
    ]
    x = fg.tensor(xn, device="cuda", requires_grad=True)
    tx = torch.tensor(xn, device="cuda", requires_grad=True) if torch is not None else None
    for name, fn, gshape in cases:
        gn = r.standard_normal(gshape, dtype=np.float32)
        g = fg.tensor(gn, device="cuda")

        def f_fwd():
            with fg.no_grad():
                fn(F, x)

        def f_all():
            x.grad = None
            fn(F, x).backward(g)

        tf, tfb = median_time(f_fwd, fsync), median_time(f_all, fsync)
        line = f"  {name:22s} {tf * 1e3:7.2f} | {tfb * 1e3:7.2f}"
        if tx is not None:
            tg = torch.tensor(gn, device="cuda")

            def t_fwd():
                with torch.no_grad():
                    fn(torch.nn.functional, tx)

            def t_all():
                tx.grad = None
                fn(torch.nn.functional, tx).backward(tg)

            tt, ttb = median_time(t_fwd, tsync), median_time(t_all, tsync)
            line += f"   {tt * 1e3:7.2f} | {ttb * 1e3:7.2f}   {tt / tf:5.3f} | {ttb / tfb:5.3f}"
            del tg
        print(line)
        del g
    del x, tx


# ---- fused normalisation (cuda/norm.cu) vs torch ----------------------------------------------------


def bench_norm(torch, fsync, tsync):
    """layer_norm and training-mode batch_norm, float32, forward + backward
    (x, weight and bias grads from a fixed upstream gradient); 3 lines."""
    F = fg.nn.functional
    print("\nnorm float32 fwd+bwd                          fastgrad ms   torch ms   ratio")
    r = np.random.default_rng(2)
    cases = [
        ("layer_norm 16384x1024", (16384, 1024), 1024,
         lambda F_, x, w, b: F_.layer_norm(x, (1024,), w, b)),
        ("BatchNorm2d 64x64x56x56", (64, 64, 56, 56), 64,
         lambda F_, x, w, b: F_.batch_norm(x, None, None, w, b, training=True)),
    ]
    for name, shape, c, fn in cases:
        arrays = [r.standard_normal(s, dtype=np.float32) for s in (shape, (c,), (c,), shape)]
        x, w, b, g = (fg.tensor(a, device="cuda", requires_grad=i < 3) for i, a in enumerate(arrays))

        def f_all():
            x.grad = w.grad = b.grad = None
            fn(F, x, w, b).backward(g)

        tf = median_time(f_all, fsync)
        line = f"  {name:24s}                     {tf * 1e3:9.2f}"
        if torch is not None:
            tx, tw, tb, tg = (torch.tensor(a, device="cuda", requires_grad=i < 3) for i, a in enumerate(arrays))

            def t_all():
                tx.grad = tw.grad = tb.grad = None
                fn(torch.nn.functional, tx, tw, tb).backward(tg)

            tt = median_time(t_all, tsync)
            line += f"  {tt * 1e3:9.2f}  {tt / tf:6.3f}"
            del tx, tw, tb, tg
        print(line)
        del x, w, b, g


# ---- reductions (cuda/reduce.cu) vs torch: read bandwidth, 2 lines -------------------------------------


def bench_reduce(torch, fsync, tsync):
    """x.sum() over 256M float32 (a split into chunks and a second pass) and
    sum over dim 0 of (65536, 1024) (a thread per output, coalesced); GB/s of
    input read."""
    n = (1 << 26) if QUICK else (1 << 28)
    cases = [(f"sum() {n >> 20}M f32", (n,), None), ("sum(0) 65536x1024 f32", (65536, 1024), 0)]
    for name, shape, dim in cases:
        x = fg.randn(*shape, device="cuda")
        f = (lambda: x.sum()) if dim is None else (lambda: x.sum(dim))
        gb = 4 * x.numel() / 1e9
        tf = median_time(f, fsync)
        line = ("\n" if dim is None else "") + f"reduce {name:22s} fastgrad {gb / tf:8.1f} GB/s"
        if torch is not None:
            tx = torch.from_dlpack(x)
            ft = (lambda: tx.sum()) if dim is None else (lambda: tx.sum(dim))
            tt = median_time(ft, tsync)
            ref = tx.double().sum() if dim is None else tx.double().sum(dim)
            err = float((torch.from_dlpack(f()).double() - ref).abs().max())
            line += f"   torch {gb / tt:8.1f} GB/s   ratio {tt / tf:6.3f}   max err vs f64 {err:.2e}"
            del tx
        print(line)
        del x


# ---- TF32 tensor cores (cuda/gemm.cu's sgemm_tf32) vs torch with TF32 on ---------------------------


def bench_tf32(torch, fsync, tsync):
    # TF32 tensor cores, on both sides (fg.cuda.set_allow_tf32 /
    # torch.backends.cuda.matmul.allow_tf32); error: max |C - C_fp32| / max |C_fp32|.
    print("\nGEMM float32, TF32 on both sides  fastgrad TFLOP/s   torch TFLOP/s   ratio   fastgrad rel. err")
    for n in (4096,) if QUICK else (4096, 8192):
        a = fg.randn(n, n, device="cuda")
        b = fg.randn(n, n, device="cuda")
        reps = 3 if n >= 8192 else 5
        exact = a @ b
        fg.cuda.set_allow_tf32(True)
        try:
            tf = median_time(lambda: a @ b, fsync, reps)
            c = a @ b
        finally:
            fg.cuda.set_allow_tf32(False)
        err = float(((c - exact).abs().max() / exact.abs().max()).item())
        flop = 2.0 * n ** 3
        line = f"  {n:5d}^3                        {flop / tf / 1e12:10.2f}"
        if torch is not None:
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                ta, tb = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
                tt = median_time(lambda: ta @ tb, tsync, reps)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = False
            line += f"        {flop / tt / 1e12:10.2f}   {tt / tf:6.3f}"
            del ta, tb
        else:
            line += " " * 31
        print(line + f"   {err:9.2e}")
        del a, b, c, exact


if __name__ == "__main__":
    main()

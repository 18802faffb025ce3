"""Vectorised math and fused norms: fastgrad vs NumPy vs PyTorch, side by side.

Part 1: each activation (forward and fused backward) on N float32 elements
(default 16M), GB/s = bytes read + written / median time, next to the
machine's copy bandwidth (a large np.copyto into existing memory). fastgrad
is timed with a fresh output (served by its caching allocator) and into
existing memory (the in-place form, x.exp_(), on a scratch copy whose values
drift over the repeats: the kernels are branch-free, so the cost does not);
NumPy and torch into an existing output (out=) and with a fresh one.

Clock: the box is shared (load 6-10 on 2 cores), so with one thread the
medians are of thread CPU time (time.thread_time: the work this thread
did, not the time it waited for a core); with two threads of wall time
(CPU time would add the threads up). --clock overrides.
Part 2: layer_norm / batch_norm forward and forward+backward vs torch.
Part 3 (reduce): logsumexp / softmax / log_softmax over the last dim of
(256, 128, 128) float32, unmasked and causal -inf, vs torch.

    python bench/bench_vecmath.py [--quick] [--threads 1,2] [--isa avx512|avx2|scalar]
"""
import argparse
import math

import numpy as np

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad import _C

import _timing
from _timing import median_time

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # torch columns are left out
    torch = None


def gbs(nbytes, t):
    return nbytes / t / 1e9


def np_sigmoid(x, out):
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def np_gelu_tanh(x, out, tmp):
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    np.multiply(x, x, out=tmp)
    tmp *= 0.044715
    tmp += 1
    tmp *= x
    tmp *= math.sqrt(2 / math.pi)
    np.tanh(tmp, out=tmp)
    tmp += 1
    np.multiply(tmp, x, out=out)
    out *= 0.5
    return out


def activation_rows(n, reps):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    xp = np.abs(x) + np.float32(1e-3)  # log's input
    g = rng.standard_normal(n).astype(np.float32)
    out, tmp = np.empty_like(x), np.empty_like(x)
    fx, fxp, fgr = fg.from_numpy(x), fg.from_numpy(xp), fg.from_numpy(g)
    y_tanh, y_sig, y_relu = fg.tanh(fx), fg.sigmoid(fx), fg.relu(fx)
    if torch is not None:
        tx, txp, tg = torch.from_numpy(x), torch.from_numpy(xp), torch.from_numpy(g)
        tout = torch.empty_like(tx)
        ty_tanh, ty_sig, ty_relu = torch.tanh(tx), torch.sigmoid(tx), torch.relu(tx)
    b2, b3 = 8 * n, 12 * n  # bytes: unary (read + write), backward (2 reads + write)
    rows = []

    scratch = fg.from_numpy(x.copy())

    def row(name, nbytes, f_fg, f_np_out=None, f_np_fresh=None, f_t_out=None, f_t_fresh=None, f_fg_out=None):
        r = {"op": name, "bytes": nbytes, "fg": median_time(f_fg, reps),
             "fg_out": median_time(f_fg_out, reps) if f_fg_out is not None else None}
        for key, f in (("np_out", f_np_out), ("np_fresh", f_np_fresh), ("t_out", f_t_out), ("t_fresh", f_t_fresh)):
            r[key] = median_time(f, reps) if f is not None else None
        rows.append(r)

    T = torch
    row("exp", b2, lambda: fg.exp(fx), lambda: np.exp(x, out=out), lambda: np.exp(x),
        T and (lambda: torch.exp(tx, out=tout)), T and (lambda: torch.exp(tx)), lambda: scratch.exp_())
    row("log", b2, lambda: fg.log(fxp), lambda: np.log(xp, out=out), lambda: np.log(xp),
        T and (lambda: torch.log(txp, out=tout)), T and (lambda: torch.log(txp)))
    row("tanh", b2, lambda: fg.tanh(fx), lambda: np.tanh(x, out=out), lambda: np.tanh(x),
        T and (lambda: torch.tanh(tx, out=tout)), T and (lambda: torch.tanh(tx)), lambda: scratch.tanh_())
    row("sigmoid", b2, lambda: fg.sigmoid(fx), lambda: np_sigmoid(x, out), lambda: 1 / (1 + np.exp(-x)),
        T and (lambda: torch.sigmoid(tx, out=tout)), T and (lambda: torch.sigmoid(tx)), lambda: scratch.sigmoid_())
    row("silu", b2, lambda: F.silu(fx), lambda: np.multiply(np_sigmoid(x, out), x, out=out),
        lambda: x / (1 + np.exp(-x)), None, T and (lambda: TF.silu(tx)))
    row("gelu (erf)", b2, lambda: F.gelu(fx), None, None, None, T and (lambda: TF.gelu(tx)))
    row("gelu (tanh)", b2, lambda: F.gelu(fx, approximate="tanh"), lambda: np_gelu_tanh(x, out, tmp), None, None,
        T and (lambda: TF.gelu(tx, approximate="tanh")))
    row("erf", b2, lambda: fg.erf(fx), None, None, T and (lambda: torch.erf(tx, out=tout)),
        T and (lambda: torch.erf(tx)))
    row("sin", b2, lambda: fg.sin(fx), lambda: np.sin(x, out=out), lambda: np.sin(x),
        T and (lambda: torch.sin(tx, out=tout)), T and (lambda: torch.sin(tx)))
    row("cos", b2, lambda: fg.cos(fx), lambda: np.cos(x, out=out), lambda: np.cos(x),
        T and (lambda: torch.cos(tx, out=tout)), T and (lambda: torch.cos(tx)))
    row("tan", b2, lambda: fg.tan(fx), lambda: np.tan(x, out=out), lambda: np.tan(x),
        T and (lambda: torch.tan(tx, out=tout)), T and (lambda: torch.tan(tx)))
    row("relu", b2, lambda: fg.relu(fx), lambda: np.maximum(x, 0, out=out), lambda: np.maximum(x, 0),
        T and (lambda: torch.clamp_min(tx, 0, out=tout)), T and (lambda: torch.relu(tx)), lambda: scratch.relu_())
    aten = torch.ops.aten if torch is not None else None
    row("tanh backward", b3, lambda: _C.tanh_backward(fgr._data, y_tanh._data), None, None, None,
        T and (lambda: aten.tanh_backward(tg, ty_tanh)))
    row("sigmoid backward", b3, lambda: _C.sigmoid_backward(fgr._data, y_sig._data), None, None, None,
        T and (lambda: aten.sigmoid_backward(tg, ty_sig)))
    row("silu backward", b3, lambda: _C.silu_backward(fgr._data, fx._data), None, None, None,
        T and (lambda: aten.silu_backward(tg, tx)))
    row("gelu (erf) backward", b3, lambda: _C.gelu_backward(fgr._data, fx._data), None, None, None,
        T and (lambda: aten.gelu_backward(tg, tx)))
    row("gelu (tanh) backward", b3, lambda: _C.gelu_tanh_backward(fgr._data, fx._data), None, None, None,
        T and (lambda: aten.gelu_backward(tg, tx, approximate="tanh")))
    row("relu backward", b3, lambda: _C.relu_backward(fgr._data, y_relu._data), None, None, None,
        T and (lambda: aten.threshold_backward(tg, ty_relu, 0)))
    return rows


def copy_bandwidth(n, reps):
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    return gbs(8 * n, median_time(lambda: np.copyto(dst, src), reps))


def fmt(t, nbytes):
    return "-" if t is None else f"{t * 1e3:.2f} ms {gbs(nbytes, t):.1f}"


def norm_rows(reps):
    cases = [("layer_norm", (128, 256)), ("layer_norm", (16384, 512)), ("batch_norm 1d", (128, 256)),
             ("batch_norm 2d", (32, 64, 32, 32))]
    rows = []
    for name, shape in cases:
        rng = np.random.default_rng(1)
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        c = shape[-1] if name == "layer_norm" else shape[1]
        w = np.ones(c, np.float32)
        fx, fgrad, fw, fb = fg.tensor(x, requires_grad=True), fg.tensor(g), fg.tensor(w, requires_grad=True), \
            fg.tensor(w * 0, requires_grad=True)
        if name == "layer_norm":
            f_fwd = lambda: F.layer_norm(fx, (c,), fw, fb)  # noqa: E731
        else:
            f_fwd = lambda: F.batch_norm(fx, None, None, fw, fb, training=True)  # noqa: E731

        def f_both():
            f_fwd().backward(fgrad)

        r = {"op": f"{name} {'x'.join(map(str, shape))}", "fg_fwd": median_time(f_fwd, reps),
             "fg_both": median_time(f_both, reps)}
        if torch is not None:
            tx, tgrad = torch.tensor(x, requires_grad=True), torch.tensor(g)
            tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(w * 0, requires_grad=True)
            if name == "layer_norm":
                t_fwd = lambda: TF.layer_norm(tx, (c,), tw, tb)  # noqa: E731
            else:
                t_fwd = lambda: TF.batch_norm(tx, None, None, tw, tb, training=True)  # noqa: E731

            def t_both():
                t_fwd().backward(tgrad)

            r["t_fwd"], r["t_both"] = median_time(t_fwd, reps), median_time(t_both, reps)
        rows.append(r)
    return rows


def reduce_rows(reps):
    """The softmax family over the last dim of (256, 128, 128) float32,
    unmasked and causal-masked (-inf above the diagonal)."""
    x = fg.randn(256, 128, 128)
    mask = fg.ones(128, 128).triu(1).bool()
    rows = []
    for label, xf in (("unmasked", x), ("causal -inf", x.masked_fill(mask, float("-inf")))):
        xt = torch.from_numpy(xf.numpy()) if torch is not None else None
        for op in ("logsumexp", "softmax", "log_softmax"):
            r = {"op": f"{op} {label}", "fg": median_time(lambda: getattr(fg, op)(xf, -1), reps)}
            r["t"] = median_time(lambda: getattr(torch, op)(xt, -1), reps) if torch is not None else None
            rows.append(r)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2M elements, fewer repetitions")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--isa", default="auto", help="FASTGRAD_CPU_CAPABILITY for this run")
    ap.add_argument("--clock", default="auto", choices=["auto", "cpu", "wall"],
                    help="auto: thread CPU time with one thread, wall time with more")
    ap.add_argument("--reps", type=int, default=0, help="repeats per median (default 15, --quick 5)")
    args = ap.parse_args()
    n = (2 if args.quick else 16) * 1024 * 1024
    reps = args.reps or (5 if args.quick else 15)
    _C.set_cpu_capability(args.isa)
    print(f"fastgrad vecmath build: {_C.vecmath_isa()}; numpy {np.__version__}; "
          f"torch {torch.__version__ if torch is not None else '-'}; N = {n / 2**20:.0f}M float32")
    for nt in [int(s) for s in args.threads.split(",")]:
        cpu = args.clock == "cpu" or (args.clock == "auto" and nt == 1)
        _timing.CPU_CLOCK = cpu
        fg.set_num_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        bw = copy_bandwidth(n, reps)
        print(f"\n### {nt} thread(s), {'thread CPU' if cpu else 'wall'} time, medians of {reps}; "
              f"copy bandwidth (np.copyto into existing memory): {bw:.1f} GB/s\n")
        print("| op | fastgrad (fresh) GB/s | / copy bw | fastgrad existing | / copy bw | NumPy out= | NumPy fresh |"
              " torch out= | torch fresh | vs NumPy | vs torch fresh |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in activation_rows(n, reps):
            b = r["bytes"]
            best_np = min([t for t in (r["np_out"], r["np_fresh"]) if t is not None], default=None)
            vs_np = f"{best_np / r['fg']:.2f}x" if best_np else "-"
            vs_t = f"{r['t_fresh'] / r['fg']:.2f}x" if r["t_fresh"] else "-"
            fo = r["fg_out"]
            fo_bw = "-" if fo is None else f"{gbs(b, fo) / bw:.2f}"
            print(f"| {r['op']} | {fmt(r['fg'], b)} | {gbs(b, r['fg']) / bw:.2f} | {fmt(fo, b)} | {fo_bw} | "
                  f"{fmt(r['np_out'], b)} | "
                  f"{fmt(r['np_fresh'], b)} | {fmt(r['t_out'], b)} | {fmt(r['t_fresh'], b)} | {vs_np} | {vs_t} |")
        print("\n| norm (float32, affine) | fastgrad fwd | fastgrad fwd+bwd | torch fwd | torch fwd+bwd |"
              " fwd vs torch | fwd+bwd vs torch |")
        print("|---|---|---|---|---|---|---|")
        for r in norm_rows(max(3, reps // 2)):
            tf, tb = r.get("t_fwd"), r.get("t_both")
            ms = lambda t: "-" if t is None else f"{t * 1e3:.3f} ms"  # noqa: E731
            ratio = lambda t, base: "-" if t is None else f"{t / base:.2f}x"  # noqa: E731
            print(f"| {r['op']} | {ms(r['fg_fwd'])} | {ms(r['fg_both'])} | {ms(tf)} | {ms(tb)} | "
                  f"{ratio(tf, r['fg_fwd'])} | {ratio(tb, r['fg_both'])} |")
        print("\n| reduce, (256, 128, 128) float32, dim -1 | fastgrad | torch | vs torch |")
        print("|---|---|---|---|")
        for r in reduce_rows(reps):
            t = "-" if r["t"] is None else f"{r['t'] * 1e3:.2f} ms"
            vs = "-" if r["t"] is None else f"{r['t'] / r['fg']:.2f}x"
            print(f"| {r['op']} | {r['fg'] * 1e3:.2f} ms | {t} | {vs} |")

if __name__ == "__main__":
    main()

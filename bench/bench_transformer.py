"""Transformer layer workbench: TransformerEncoderLayer forward + backward,
fastgrad vs torch (CPU), same weights, same input, one and two threads.

Shapes (post-norm, ReLU, training mode, batch_first):
  encoder   batch 32, seq 64, d_model 128, 4 heads, ff 512, no mask
  char-LM   batch 64, seq 128, d_model 128, 4 heads, ff 512, causal mask
            (generate_square_subsequent_mask + is_causal=True, as a
            character language model calls it)

One step = forward, loss = (out * cotangent).sum(), backward, and clearing
the gradients. Dropout is 0 by default (--dropout 0.1 times the dropout
masks too). Prints per shape and thread count the median and best step
time in ms and the ratios torch/fastgrad of the medians and of the bests
(> 1: fastgrad faster; on a busy shared machine the bests say more), plus
fastgrad's GFLOP/s at the median (matmul FLOPs only: 3x the forward's).

    PYTHONPATH=python python bench/bench_transformer.py [--reps 15] [--threads 1,2] [--dropout 0.0]
"""
import argparse

import numpy as np
import torch

import fastgrad as fg
import fastgrad.nn as fnn

from _zoo_common import time_ms

SHAPES = {
    "encoder": dict(batch=32, seq=64, d=128, heads=4, ff=512, causal=False),
    "char-LM": dict(batch=64, seq=128, d=128, heads=4, ff=512, causal=True),
}


def flops(batch, seq, d, ff, **_):
    """Matmul FLOPs of one forward: qkv, out_proj, the two attention products, the feed-forward."""
    tokens = batch * seq
    return 2 * tokens * (3 * d * d + d * d + 2 * d * ff) + 2 * 2 * batch * seq * seq * d


def make_pair(cfg, dropout):
    torch.manual_seed(0)
    t = torch.nn.TransformerEncoderLayer(cfg["d"], cfg["heads"], cfg["ff"], dropout=dropout, batch_first=True)
    f = fnn.TransformerEncoderLayer(cfg["d"], cfg["heads"], cfg["ff"], dropout=dropout, batch_first=True)
    f.load_state_dict({k: fg.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    return t, f


def step_fns(cfg, dropout):
    t, f = make_pair(cfg, dropout)
    rng = np.random.default_rng(0)
    shape = (cfg["batch"], cfg["seq"], cfg["d"])
    x = rng.standard_normal(shape, dtype=np.float32)
    g = rng.standard_normal(shape, dtype=np.float32)
    tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g)
    fx, fgr = fg.tensor(x, requires_grad=True), fg.tensor(g)
    kw_t, kw_f = {}, {}
    if cfg["causal"]:
        kw_t = dict(src_mask=torch.nn.Transformer.generate_square_subsequent_mask(cfg["seq"]), is_causal=True)
        kw_f = dict(src_mask=fnn.Transformer.generate_square_subsequent_mask(cfg["seq"]), is_causal=True)

    def torch_step():
        out = t(tx, **kw_t)
        (out * tg).sum().backward()
        t.zero_grad()
        tx.grad = None

    def fg_step():
        out = f(fx, **kw_f)
        (out * fgr).sum().backward()
        f.zero_grad()
        fx.grad = None

    # the same numbers first: a benchmark of a wrong layer is worthless
    out_t, out_f = t(tx, **kw_t), f(fx, **kw_f)
    err = np.abs(out_t.detach().numpy() - out_f.detach().numpy()).max()
    assert err < 1e-4, f"fastgrad and torch differ by {err}"
    return torch_step, fg_step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    args = ap.parse_args()
    print(f"fastgrad {fg.config()['version']} (gemm {fg.config()['gemm']}), torch {torch.__version__}, "
          f"dropout {args.dropout}, {args.reps} reps; ratio = torch / fastgrad (> 1: fastgrad faster)")
    print(f"{'shape':<9} {'threads':>7} {'torch ms':>9} {'(best)':>7} {'fastgrad ms':>12} {'(best)':>7} "
          f"{'ratio':>6} {'(best)':>6} {'fg GFLOP/s':>11}")
    for name in args.shapes.split(","):
        cfg = SHAPES[name]
        for nt in (int(s) for s in args.threads.split(",")):
            fg.set_num_threads(nt)
            torch.set_num_threads(nt)
            torch_step, fg_step = step_fns(cfg, args.dropout)
            # interleave the two so that a burst of load on the shared machine hits both
            tm, tb, fm, fb = [], [], [], []
            for _ in range(3):
                m, b = time_ms(torch_step, max(1, args.reps // 3), warmup=2)
                tm.append(m), tb.append(b)
                m, b = time_ms(fg_step, max(1, args.reps // 3), warmup=2)
                fm.append(m), fb.append(b)
            t_med, f_med = float(np.median(tm)), float(np.median(fm))
            gflops = 3 * flops(**cfg) / (f_med * 1e-3) / 1e9
            print(f"{name:<9} {nt:>7} {t_med:>9.2f} {min(tb):>7.2f} {f_med:>12.2f} {min(fb):>7.2f} "
                  f"{t_med / f_med:>6.2f} {min(tb) / min(fb):>6.2f} {gflops:>11.1f}")


if __name__ == "__main__":
    main()

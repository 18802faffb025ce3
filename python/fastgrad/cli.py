"""The `fastgrad` command (also `python -m fastgrad`).

    fastgrad train NAME [--seed S] [--out DIR] [options of NAME]   (`fastgrad train --help` lists them)
    fastgrad bench [--quick] [--only FAMILY ...]
    fastgrad info
"""
import argparse
import sys


def cmd_train(args):
    if getattr(args, "steps", 1) is not None and getattr(args, "steps", 1) < 1:
        print(f"fastgrad train {args.model}: --steps must be at least 1", file=sys.stderr)
        return 2
    return args.example.run(args)


def cmd_info(args):
    import fastgrad as fg

    for k, v in fg.config().items():
        print(f"{k:>24}: {v}")
    return 0


def cmd_bench(args):
    from . import _bench

    return _bench.main(quick=args.quick, argv=(["--only", *args.only] if args.only else []))


def build_parser():
    p = argparse.ArgumentParser(prog="fastgrad", description="fastgrad: train built-in examples, benchmark, info")
    sub = p.add_subparsers(dest="command", required=True)
    from .train import examples

    t = sub.add_parser("train", help="train a built-in example and write learning curves")
    models = t.add_subparsers(dest="model", required=True, metavar="NAME")
    for name, example in examples().items():
        text = example.DESCRIPTION.replace("%", "%%")  # argparse formats help strings with %
        e = models.add_parser(name, help=text, description=text)
        e.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        e.add_argument("--out", default=f"runs/{name}", help=f"output folder for CSV/PNG (default runs/{name})")
        example.add_arguments(e)
        e.set_defaults(fn=cmd_train, example=example)
    b = sub.add_parser("bench", help="benchmarks against NumPy (and PyTorch if installed): bench/run.py")
    b.add_argument("--quick", action="store_true", help="fewer sizes and repeats (~3 minutes)")
    b.add_argument("--only", nargs="+", default=None, help="families to run (a source checkout's bench/run.py)")
    b.set_defaults(fn=cmd_bench)
    i = sub.add_parser("info", help="print build and runtime information")
    i.set_defaults(fn=cmd_info)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.fn(args)

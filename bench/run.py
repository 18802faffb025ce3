"""All of fastgrad's benchmarks in one run: the machine line, then one table
per kernel family (fastgrad beside NumPy and PyTorch, medians and ratios),
then end-to-end training steps per second beside PyTorch.

    PYTHONPATH=python python bench/run.py [--quick] [--threads 1 2] [--only gemm train ...] [--skip cuda ...]

Also `fastgrad bench [--quick]`. --quick takes about 3 minutes on a 2-core
machine (a representative subset of each family, shorter timings); without
it, about 10. The families with their own workbench (bench/bench_<name>.py)
run as child processes with a subset of their cases, so that a failure or a
thread setting in one cannot disturb the next; their full runs are the
scripts themselves. On a shared, loaded machine read the one-thread rows
(timed on thread CPU time where the script says so): the two-thread rows
are wall time and say as much about the other processes as about fastgrad.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.normpath(os.path.join(HERE, "..", "python"))
try:
    import fastgrad as fg
except ImportError:  # a source checkout without PYTHONPATH=python
    sys.path.insert(0, PYTHON_DIR)
    import fastgrad as fg
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from fastgrad import _bench  # noqa: E402

# Families run from their workbench script: name -> (script, --quick args, full args). The subsets
# keep one or two representative cases each.
SCRIPTS = {
    "vecmath": ("bench_vecmath.py", ["--quick", "--threads", "1"], ["--quick", "--threads", "1,2"]),
    "optim": ("bench_optim.py", ["--numel", "2000000", "--reps", "5", "--threads", "1"],
              ["--numel", "10000000", "--reps", "7", "--threads", "1"]),
    "conv": ("bench_conv.py", ["--quick", "--threads", "1", "--cases", "a"], ["--threads", "1", "2"]),
    "pool": ("bench_pool.py", ["--reps", "8", "--threads", "1"], ["--reps", "20", "--threads", "1,2"]),
    "rnn": ("bench_rnn.py", ["--quick", "--cpu-time"], ["--cpu-time"]),
    "transformer": ("bench_transformer.py", ["--reps", "5", "--threads", "1", "--shapes", "encoder"],
                    ["--reps", "10", "--threads", "1,2"]),
    "zoo": ("bench_zoo.py", ["--reps", "3", "--steps", "5", "--only", "mlp", "vae"], ["--reps", "5"]),
    "zoo_rl_vision": ("bench_zoo_rl_vision.py", ["--reps", "10", "--threads", "1", "--only", "dqn", "cnn"],
                      ["--reps", "20", "--threads", "1"]),
    "zoo_sequence": ("bench_zoo_sequence.py", ["--reps", "3", "--steps", "3", "--only", "lstm-adding"],
                     ["--reps", "5"]),
    "cuda": ("bench_cuda.py", ["--quick"], []),
}
ORDER = ["ops", "gemm", "vecmath", "optim", "conv", "pool", "rnn", "transformer", "zoo", "zoo_rl_vision",
         "zoo_sequence", "cuda", "train"]


def run_script(name, quick, timeout):
    script, quick_args, full_args = SCRIPTS[name]
    path = os.path.join(HERE, script)
    if not os.path.isfile(path):
        print(f"\n[{name}] {script} not found: skipped")
        return "missing"
    args = quick_args if quick else full_args
    print(f"\n[{name}] python bench/{script} {' '.join(args)}", flush=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        r = subprocess.run([sys.executable, path, *args], cwd=os.path.dirname(HERE), env=env, timeout=timeout,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        print(out.rstrip())
        print(f"[{name}] stopped after {timeout} s (the rows above are complete)")
        return "timeout"
    print(r.stdout.rstrip())
    if r.returncode != 0:
        print(f"[{name}] exited with status {r.returncode}")
        return "failed"
    return "ok"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (~3 minutes on 2 cores)")
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="thread counts for the in-process tables (default: 1 and all cores)")
    ap.add_argument("--only", nargs="+", choices=ORDER, default=None, help="families to run (default: all)")
    ap.add_argument("--skip", nargs="+", choices=ORDER, default=[], help="families to leave out")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per child workbench "
                    "(default 60 with --quick, 300 without)")
    args = ap.parse_args(argv)
    quick = args.quick
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = args.threads or sorted({1, cores})
    timeout = args.timeout or (60 if quick else 300)
    families = [f for f in (args.only or ORDER) if f not in args.skip]
    if "cuda" in families and not (args.only and "cuda" in args.only):
        try:
            if not fg.cuda.is_available():
                families.remove("cuda")
        except Exception:  # noqa: BLE001 - no CUDA support at all
            families.remove("cuda")

    t_start = time.perf_counter()
    print(f"fastgrad benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, {'quick' if quick else 'full'} run; "
          f"threads {threads}")
    info = _bench.machine(max(threads), quick)
    status = {}
    for fam in families:
        t0 = time.perf_counter()
        try:
            if fam == "ops":
                _bench.overhead()
                _bench.elementwise_and_reductions([1 << 16] if quick else [1 << 16, 1 << 20, 1 << 24])
                status[fam] = "ok"
            elif fam == "gemm":
                import bench_gemm

                peak = {1: info["peak_core"], max(threads): info["peak_all"]}
                sizes = (64, 128, 512, 2048) if quick else bench_gemm.SIZES
                bench_gemm.run(threads, quick, sizes, peak)
                status[fam] = "ok"
            elif fam == "train":
                import bench_train

                bench_train.run(threads, quick)
                status[fam] = "ok"
            else:
                status[fam] = run_script(fam, quick, timeout)
        except Exception as e:  # noqa: BLE001 - report and go on with the next family
            print(f"[{fam}] failed: {type(e).__name__}: {e}")
            status[fam] = "failed"
        status[fam] += f" ({time.perf_counter() - t0:.0f} s)"
    print("\nfamilies: " + ", ".join(f"{k} {v}" for k, v in status.items()))
    print(f"total {time.perf_counter() - t_start:.0f} s; load average now {os.getloadavg()[0]:.1f} "
          f"on {cores} cores" + (" (busy machine: trust the 1-thread rows)" if os.getloadavg()[0] > cores else ""))
    return 0 if all(v.startswith("ok") for v in status.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

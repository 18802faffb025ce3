"""fastgrad vs NumPy (and PyTorch when installed), side by side in one run:
per-op overhead, elementwise ops, reductions, matmul and an MLP training step.
Prints medians and ratios. Same as `fastgrad bench`; `--quick` for a short run."""
import sys

from fastgrad import _bench

if __name__ == "__main__":
    raise SystemExit(_bench.main(quick="--quick" in sys.argv))

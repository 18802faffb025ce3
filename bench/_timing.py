"""Medians of a clock picked per table, for bench_random.py and bench_vecmath.py:
fastgrad._bench's timing loop (calibrated calls per sample, median of the
samples) with the clock as a module setting.

Imported as `_timing` by the scripts next to it (a script's folder is on sys.path)."""
from fastgrad._bench import _median_time

# A script sets this per table: thread CPU time with one thread (the box is
# shared: the work this thread did, not its waits), wall time with two (CPU
# time would add the threads up).
CPU_CLOCK = False


def median_time(fn, reps):
    return _median_time(fn, reps, cpu_clock=CPU_CLOCK)

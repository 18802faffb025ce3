"""Medians of a clock, for the bench scripts that pick their clock per table
(bench_random.py, bench_vecmath.py).

Imported as `_timing` by the scripts next to it (a script's folder is on sys.path)."""
import statistics
import time

# The clock median_time reads; a script sets it per table: process CPU time
# with one thread (the box is shared: the work this process did, not its
# waits), wall time with two (CPU time would add the threads up).
CLOCK = time.perf_counter


def median_time(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return statistics.median(ts)

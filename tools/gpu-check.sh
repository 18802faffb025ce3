#!/usr/bin/env bash
# The CUDA check, run from the repository root on a machine with a GPU:
# builds fastgrad._C with the CUDA kernels (sm_90, Release, Ninja, 16 jobs)
# into python/fastgrad/, then runs the CUDA tests, the CPU quick suite, the
# device-parametrised op tests and the CUDA benchmarks. Every log goes to
# $OUT (default /tmp/out); a summary is printed at the end. Budget: < 6 min.
#   ARCH=80 tools/gpu-check.sh     # another architecture
#   SKIP_BENCH=1 tools/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
ARCH=${ARCH:-90}
BUILD=build/gpu-check
PY=${PYTHON:-python3}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
summary=()

{ nvidia-smi || echo "nvidia-smi failed"; } > "$OUT/nvidia-smi.txt" 2>&1
head -20 "$OUT/nvidia-smi.txt"

echo "== build (sm_$ARCH)"
if cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFASTGRAD_DEV_OUTPUT=ON -DFASTGRAD_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" \
     -DPython_EXECUTABLE="$(command -v $PY)" -DSKBUILD_PROJECT_VERSION=0.1.0-gpu > "$OUT/configure.log" 2>&1 &&
   cmake --build "$BUILD" -j16 > "$OUT/build.log" 2>&1; then
  summary+=("build: ok ($(elapsed) s, $(grep -c -i warning "$OUT/build.log") warning lines)")
else
  summary+=("build: FAILED (see build.log)")
  tail -40 "$OUT/configure.log" "$OUT/build.log"
  printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
  exit 1
fi

export PYTHONPATH=python
$PY -c "import fastgrad as fg, json; print(json.dumps(fg.config(), indent=1))" 2>&1 | tee "$OUT/config.txt"

run_tests() {  # name, timeout seconds, pytest args...
  local name=$1 limit=$2
  shift 2
  timeout "$limit" $PY -m pytest -q -p no:cacheprovider "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  summary+=("$name: rc=$rc, $(tail -1 "$OUT/$name.log")")
}

echo "== tests/test_cuda.py"
run_tests test_cuda 150 tests/test_cuda.py -rfE
echo "== op tests on cuda (FASTGRAD_TEST_DEVICE=cuda)"
FASTGRAD_TEST_DEVICE=cuda run_tests ops_on_cuda 60 tests/test_ops_grad.py -rfE --maxfail=30
echo "== CPU quick suite with the CUDA build"
run_tests cpu_quick 60 tests/test_tensor.py tests/test_elementwise_native.py tests/test_optim.py

if [ -z "${SKIP_BENCH:-}" ] && [ "$(elapsed)" -lt 280 ]; then
  echo "== bench/bench_cuda.py"
  timeout 90 $PY bench/bench_cuda.py > "$OUT/bench_cuda.txt" 2>&1
  summary+=("bench: rc=$? (bench_cuda.txt)")
  cat "$OUT/bench_cuda.txt"
fi

echo
echo "== summary ($(elapsed) s)"
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
grep -E "^(FAILED|ERROR)" "$OUT/test_cuda.log" | head -60

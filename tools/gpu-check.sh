#!/usr/bin/env bash
# The CUDA check, run from the repository root on a machine with a GPU:
# builds fastgrad._C with the CUDA kernels (sm_90, Release, Ninja, 16 jobs)
# into python/fastgrad/, then runs the CUDA tests, the CPU quick suite, the
# device-parametrised op tests and the CUDA benchmarks. $OUT (default
# /tmp/out) gets two files: logs.tgz (every log) and summary.txt; the
# FAILED/ERROR lines are printed last. Budget: < 5 min.
#   ARCH=80 tools/gpu-check.sh     # another architecture
#   SKIP_BENCH=1 tools/gpu-check.sh
#   SKIP_BUILD=1 SKIP_BENCH=1 tools/gpu-check.sh    # here, without a GPU: the stages and the output
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
ARCH=${ARCH:-90}
BUILD=${BUILD:-build/gpu-check}
JOBS=${JOBS:-16}
PY=${PYTHON:-python3}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
summary=()

{ nvidia-smi || echo "nvidia-smi failed"; } > "$OUT/nvidia-smi.txt" 2>&1
head -20 "$OUT/nvidia-smi.txt"

# nvcc: $CUDACXX, PATH, the usual install dirs, or a pip-installed nvidia-cuda-nvcc.
NVCC=${CUDACXX:-$(command -v nvcc || true)}
for c in /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc; do
  [ -z "$NVCC" ] && [ -x "$c" ] && NVCC=$c
done
if [ -z "$NVCC" ]; then
  NVCC=$($PY -c "import nvidia, os, glob; print((glob.glob(os.path.join(list(nvidia.__path__)[0], '*', 'bin', 'nvcc')) + [''])[0])" 2>/dev/null)
fi
echo "nvcc: ${NVCC:-not found}" | tee "$OUT/nvcc.txt"
[ -n "$NVCC" ] && "$NVCC" --version >> "$OUT/nvcc.txt" 2>&1

echo "== build (sm_$ARCH)"
if [ -n "${SKIP_BUILD:-}" ]; then  # the _C already in python/fastgrad (trying the script out)
  summary+=("build: skipped")
elif cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFASTGRAD_DEV_OUTPUT=ON -DFASTGRAD_CUDA=ON \
     ${NVCC:+-DCMAKE_CUDA_COMPILER="$NVCC"} \
     -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" \
     -DPython_EXECUTABLE="$(command -v $PY)" -DSKBUILD_PROJECT_VERSION=0.1.0-gpu > "$OUT/configure.log" 2>&1 &&
   cmake --build "$BUILD" -j"$JOBS" > "$OUT/build.log" 2>&1; then
  summary+=("build: ok ($(elapsed) s, $(grep -c -i warning "$OUT/build.log") warning lines)")
else
  summary+=("build: FAILED (see build.log)")
  tail -n 40 "$OUT/configure.log" "$OUT/build.log"
  printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
  exit 1
fi

export PYTHONPATH=python
$PY -c "import fastgrad as fg, json; print(json.dumps(fg.config(), indent=1))" 2>&1 | tee "$OUT/config.txt"

run_tests() {  # name, timeout seconds, pytest args...
  local name=$1 limit=$2
  shift 2
  # COLUMNS: the -rfE summary lines keep their reasons (pytest cuts them to the width).
  # SIGINT at the limit: pytest stops and still prints its summary of failures.
  COLUMNS=220 timeout -s INT -k 15 "$limit" $PY -m pytest -q -p no:cacheprovider "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  summary+=("$name: rc=$rc, $(tail -1 "$OUT/$name.log")")
}

# Each stage runs only while the 5-minute budget allows it (limits in s).
# tests/test_cuda.py in groups, one process each: a kernel fault (a sticky
# CUDA error) then spoils only its own group.
echo "== tests/test_cuda.py"
groups=("round_trip or factories or memory or dlpack or mixing or config or queries or no_gpu or bad_device"
        "unary or binary or where or parametrised or elementwise_fast"
        "reductions or argmax or softmax"
        "matmul"
        "index_ops or philox or layers or unported or conv_pool"
        "mlp or training")
i=0
for g in "${groups[@]}"; do
  i=$((i + 1))
  run_tests "test_cuda_$i" 60 tests/test_cuda.py -rfE --tb=line -k "$g"
done
cat "$OUT"/test_cuda_*.log > "$OUT/test_cuda.log"
rm -f "$OUT"/test_cuda_*.log
# Tests first, benchmarks last (time on the GPU box is short).
if [ "$(elapsed)" -lt 200 ]; then
  echo "== op tests on cuda (FASTGRAD_TEST_DEVICE=cuda: check_op's fastgrad side runs on the device)"
  export FASTGRAD_TEST_DEVICE=cuda
  run_tests ops_on_cuda 120 tests/test_ops_grad.py -rfE --tb=line
  unset FASTGRAD_TEST_DEVICE
fi
if [ "$(elapsed)" -lt 230 ]; then
  echo "== CPU quick suite with the CUDA build, and the RNN layers on CUDA"
  run_tests cpu_quick 60 tests/test_tensor.py tests/test_optim.py -rfE --tb=line
  run_tests rnn_cuda 30 tests/test_rnn.py -rfE --tb=line -k cuda
fi
if [ -z "${SKIP_BENCH:-}" ] && [ "$(elapsed)" -lt 250 ]; then
  echo "== bench/bench_cuda.py"
  quick=""
  [ "$(elapsed)" -gt 200 ] && quick="--quick"
  timeout 60 $PY bench/bench_cuda.py $quick > "$OUT/bench_cuda.txt" 2>&1
  summary+=("bench: rc=$? $quick (bench_cuda.txt)")
  cat "$OUT/bench_cuda.txt"
fi

# What comes back from the GPU box: at most 8 files, and only the last
# 12,000 characters of the output. So: every log in one tarball, the
# summary beside it, and the FAILED/ERROR lines (with their one-line reasons)
# printed last.
echo
echo "== summary ($(elapsed) s)"
printf '%s\n' "${summary[@]}" > "$OUT/summary.txt"
( cd "$OUT" && tar czf /tmp/gpu-check-logs.tgz --exclude=logs.tgz --exclude=summary.txt . ) &&
  find "$OUT" -mindepth 1 -maxdepth 1 ! -name summary.txt -exec rm -rf {} + &&
  mv /tmp/gpu-check-logs.tgz "$OUT/logs.tgz"
tmp=$(mktemp -d); tar xzf "$OUT/logs.tgz" -C "$tmp" 2>/dev/null
# (sized to fit: 16 bench lines, at most 45 failure lines of 180 characters)
echo "== bench (short)"; grep -vE "^[[:space:]]*$|^memory" "$tmp/bench_cuda.txt" 2>/dev/null | cut -c1-100 | head -16
echo "== FAILED/ERROR lines (log: test - reason)"
for f in test_cuda ops_on_cuda cpu_quick rnn_cuda; do
  [ -f "$tmp/$f.log" ] && grep -E "^(FAILED|ERROR)" "$tmp/$f.log" | sed -E "s#^(FAILED|ERROR) tests/[a-z_]*\.py::#$f: \1 #"
done | cut -c1-180 | head -45
rm -rf "$tmp"
cat "$OUT/summary.txt"

#!/usr/bin/env bash
# The CUDA check, run from the repository root on a machine with a GPU:
# builds fastgrad._C with the CUDA kernels (sm_90, Release, Ninja, 16 jobs)
# into python/fastgrad/, then runs the CUDA tests, the CPU quick suite, the
# device-parametrised op tests, every layer/loss/optimizer against the CPU
# (tests/test_devices.py) and the CUDA benchmarks. $OUT (default /tmp/out)
# gets two files: logs.tgz (every log) and summary.txt; the FAILED/ERROR
# lines are printed last. Budget: < 5.5 min with the build (BUDGET=310 s for
# build + tests, the benchmark gets what is left up to 325 s).
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
   timeout 200 cmake --build "$BUILD" -j"$JOBS" > "$OUT/build.log" 2>&1; then
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

# Every stage gets a time limit, cut to what is left of the budget (BUDGET s
# from the start, build included); a stage that would start with less than
# 15 s left is skipped and says so in the summary. Test files are split into
# groups, one process each: a kernel fault (a sticky CUDA error) then spoils
# only its own group. Tests first, benchmarks last (GPU time is short).
BUDGET=${BUDGET:-310}
logs=()
stage() {  # name, limit seconds, pytest args...
  local name=$1 limit=$2 left=$((BUDGET - $(elapsed)))
  shift 2
  logs+=("$name")
  if [ "$left" -lt 15 ]; then
    summary+=("$name: SKIPPED (out of time at $(elapsed) s)")
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  run_tests "$name" "$limit" "$@"
}
group_file() {  # log name, file, limit per group, -k expressions... (one process per group)
  local name=$1 file=$2 limit=$3 i=0
  shift 3
  if [ ! -f "$file" ]; then
    summary+=("$name: $file missing")
    return
  fi
  if [ $# -eq 0 ]; then
    stage "$name" "$limit" "$file" -rfE --tb=line
    return
  fi
  for g in "$@"; do
    i=$((i + 1))
    stage "${name}_$i" "$limit" "$file" -rfE --tb=line -k "$g"
  done
}

echo "== tests/test_cuda.py"
group_file test_cuda tests/test_cuda.py 60 \
  "round_trip or factories or memory or dlpack or mixing or config or queries or no_gpu or bad_device or device_index" \
  "unary or binary or where or parametrised or elementwise_fast" \
  "reductions or argmax or softmax" \
  "matmul or tf32" \
  "index_ops or philox or layers or unported or conv_pool" \
  "mlp or training"
echo "== tests/test_cuda_conv.py, tests/test_cuda_random_index.py"
group_file test_cuda_conv tests/test_cuda_conv.py 60
group_file test_cuda_random_index tests/test_cuda_random_index.py 60
group_file test_cuda_reduce tests/test_cuda_reduce.py 60
group_file test_cuda_norm tests/test_cuda_norm.py 60
echo "== tests/test_devices.py (every layer, loss, optimizer and autograd feature: cuda vs cpu)"
group_file test_devices tests/test_devices.py 60 "layer" "loss" "optim" "not layer and not loss and not optim"
echo "== op tests on cuda (FASTGRAD_TEST_DEVICE=cuda: check_op's fastgrad side runs on the device)"
if $PY -c "import fastgrad as fg, sys; sys.exit(0 if fg.cuda.is_available() else 1)" 2>/dev/null; then
  export FASTGRAD_TEST_DEVICE=cuda
  stage ops_on_cuda 90 tests/test_ops_grad.py -rfE --tb=line
  unset FASTGRAD_TEST_DEVICE
else  # every case would fail (trying the script out without a GPU)
  summary+=("ops_on_cuda: skipped (no CUDA device)")
fi
echo "== CPU quick suite with the CUDA build (test_optim's device cases too), the RNN layers and autograd tests on CUDA"
stage cpu_quick 45 tests/test_tensor.py tests/test_optim.py -rfE --tb=line
stage rnn_cuda 30 tests/test_rnn.py -rfE --tb=line -k cuda
stage autograd_cuda 30 tests/test_autograd.py -rfE --tb=line -k cuda
if [ -z "${SKIP_BENCH:-}" ]; then
  left=$((BUDGET + 15 - $(elapsed)))
  if [ "$left" -lt 20 ]; then
    summary+=("bench: SKIPPED (out of time at $(elapsed) s)")
  else
    echo "== bench/bench_cuda.py"
    quick=""
    [ "$left" -lt 60 ] && quick="--quick"
    limit=$(( left < 75 ? left : 75 ))
    timeout "$limit" $PY bench/bench_cuda.py $quick > "$OUT/bench_cuda.txt" 2>&1
    summary+=("bench: rc=$? $quick (bench_cuda.txt)")
    cat "$OUT/bench_cuda.txt"
  fi
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
# (sized to fit: 28 bench lines, at most 36 failure lines of 180 characters)
echo "== bench (short)"; grep -vE "^[[:space:]]*$|^memory" "$tmp/bench_cuda.txt" 2>/dev/null | cut -c1-100 | head -28
echo "== FAILED/ERROR lines (log: test - reason)"
for f in "${logs[@]}"; do
  [ -f "$tmp/$f.log" ] && grep -E "^(FAILED|ERROR)" "$tmp/$f.log" | sed -E "s#^(FAILED|ERROR) tests/[a-z_]*\.py::#$f: \1 #"
done | cut -c1-180 | head -36
rm -rf "$tmp"
cat "$OUT/summary.txt"

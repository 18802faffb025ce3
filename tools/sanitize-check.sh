#!/usr/bin/env bash
# Manual AddressSanitizer + UndefinedBehaviorSanitizer smoke check (not CI).
#
# Builds fastgrad._C with -DFASTGRAD_SANITIZE=ON from a snapshot of csrc/
# (so concurrent edits do not leak into the build), puts it into a temporary
# copy of python/fastgrad, then runs the robustness driver and a few native
# test files under the sanitizers. Any "runtime error:" (UBSan) or
# "ERROR: AddressSanitizer" line in the output is a finding.
#
#   tools/sanitize-check.sh [extra pytest args]
#   FASTGRAD_SANITIZE_DIR=/tmp/my-asan tools/sanitize-check.sh   # reuse a build dir
#
# Notes: the build takes several minutes on a small machine. libstdc++ is
# preloaded with libasan, or ASan cannot intercept __cxa_throw (python does
# not link libstdc++) and aborts at the first C++ exception. Huge allocations
# return NULL (allocator_may_return_null) so fastgrad's out-of-memory errors
# are exercised instead of ASan aborting.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${FASTGRAD_SANITIZE_DIR:-/tmp/fastgrad-sanitize-$(id -u)}
mkdir -p "$WORK/src" "$WORK/logs"
# Copy only files whose content changed (fresh mtime), so ninja rebuilds exactly those.
find CMakeLists.txt pyproject.toml csrc python -type f ! -name '_C*.so' ! -path '*__pycache__*' | while read -r f; do
  if ! cmp -s "$f" "$WORK/src/$f"; then mkdir -p "$WORK/src/$(dirname "$f")" && cp "$f" "$WORK/src/$f"; fi
done
if [ ! -f "$WORK/build/build.ninja" ]; then
  cmake -S "$WORK/src" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFASTGRAD_SANITIZE=ON \
    -DFASTGRAD_DEV_OUTPUT=OFF -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" \
    -DSKBUILD_PROJECT_VERSION=0.1.0-sanitize >/dev/null
fi
cmake --build "$WORK/build"
PKG="$WORK/pkg"
rm -rf "$PKG" && mkdir -p "$PKG"
cp -r "$WORK/src/python/fastgrad" "$PKG/fastgrad"
cp "$WORK"/build/_C*.so "$PKG/fastgrad/"

export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=1024
export UBSAN_OPTIONS=print_stacktrace=1
export PYTHONPATH="$PKG"
export FASTGRAD_NUM_THREADS=${FASTGRAD_NUM_THREADS:-2}
python -c "import fastgrad; print('sanitized _C:', fastgrad._C.__file__)"
status=0
python tests/test_robustness.py >"$WORK/logs/driver.txt" 2>&1 || status=1
grep -v "WARNING: AddressSanitizer failed to allocate" "$WORK/logs/driver.txt" | tail -n 20
python -m pytest -q -p no:cacheprovider tests/test_interop.py tests/test_robustness.py tests/test_index_native.py \
  tests/test_reduce_native.py tests/test_elementwise_native.py "$@" >"$WORK/logs/pytest.txt" 2>&1 || status=1
tail -n 3 "$WORK/logs/pytest.txt"
echo "---- sanitizer findings (logs in $WORK/logs) ----"
if grep -h "runtime error:\|ERROR: AddressSanitizer" "$WORK"/logs/*.txt | sort | uniq -c | grep .; then
  status=1
else
  echo none
fi
exit $status

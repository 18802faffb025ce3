#!/usr/bin/env bash
# Incremental development build: compiles fastgrad._C into python/fastgrad/
# so `PYTHONPATH=python python -c "import fastgrad"` uses the fresh build.
# Serialised with a lock so parallel callers do not trample one build dir.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FASTGRAD_BUILD_DIR:-build/dev}
exec 9>/tmp/fastgrad-dev-build.lock
flock 9
# CUDA off by default here: the CPU build stays fast for everyone; the CUDA
# build uses its own directory (FASTGRAD_CUDA=ON FASTGRAD_BUILD_DIR=build/dev-cuda).
WANT_CUDA=${FASTGRAD_CUDA:-OFF}
if [ ! -f "$BUILD/build.ninja" ] || ! grep -qx "FASTGRAD_CUDA:STRING=$WANT_CUDA" "$BUILD/CMakeCache.txt"; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFASTGRAD_DEV_OUTPUT=ON \
    -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" -DSKBUILD_PROJECT_VERSION=0.1.0-dev -DFASTGRAD_CUDA="$WANT_CUDA" >/dev/null
fi
cmake --build "$BUILD" "$@"

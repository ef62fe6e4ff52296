#!/usr/bin/env bash
# ThreadSanitizer check of the int8 runtime serving 8 threads through the C API (not in CI: a
# ThreadSanitizer build of core, nn and quant does not fit its time budget). Builds only
# qforge_runtime with -fsanitize=thread, then tests/quant/capi_consumer/qf_threads.c against it.
# Usage: scripts/tsan_runtime.sh MODEL.qfm [BATCH] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/tsan_runtime.sh MODEL.qfm [BATCH] [BUILD_DIR]}
batch=${2:-16}
build=${3:-build-tsan}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="-fsanitize=thread -g" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread > /dev/null
cmake --build "$build" -j"$(nproc)" --target qforge_runtime
lib=$(cd "$build/quant/capi" && pwd)
cc -std=c99 -O1 -g -fsanitize=thread -Iquant/capi tests/quant/capi_consumer/qf_threads.c -o "$build/qf_threads" \
  -L"$lib" -lqforge_runtime -Wl,-rpath,"$lib" -lpthread
TSAN_OPTIONS=halt_on_error=1 "$build/qf_threads" "$model" "$batch"

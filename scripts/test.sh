#!/usr/bin/env bash
# Installs, builds and runs every test: a Release build, then the same tests
# under AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
(cd build && ctest --output-on-failure -j2)
# -O1 -g1 (line tables only: the sanitizers' reports still name file and line) builds in about 60%
# of -O2 -g's time, which is most of this script's; the two cores run two test binaries at once.
scripts/setup.sh build-asan -DQFORGE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
# The MobileNetV2 CLI cases (150 s here) run in the Release build only: under the sanitizers its
# layers, fusion, conversion and int8 kernels already run in test_nn and test_quant.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j2 -E '^apps_mobilenet$')
# libFuzzer campaigns (scripts/fuzz.sh, clang) only when asked: QFORGE_FUZZ_SECONDS=10 scripts/test.sh.
# Their build (every library again, with coverage, ASan and UBSan) alone outlasts CI's budget; the
# same targets already ran above on the committed corpus and 3000 mutants each (ctest fuzz_*).
if [ -n "${QFORGE_FUZZ_SECONDS:-}" ]; then scripts/fuzz.sh; fi

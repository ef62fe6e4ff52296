#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in build-fuzz, then runs each.
#   scripts/fuzz.sh                 every target for QFORGE_FUZZ_SECONDS seconds each (default 10)
#   scripts/fuzz.sh qfm idx         only these targets
#   QFORGE_FUZZ_SECONDS=600 scripts/fuzz.sh image    a longer campaign
# Each run starts from the committed corpus (tests/fuzz/corpus/<target>) and writes what it finds
# to build-fuzz/fuzz-<target>/; a crashing input is left there as crash-*, and the script fails.
# Without clang or its libFuzzer runtime the script says so and exits 0 (a skip, as CI expects).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${QFORGE_FUZZ_SECONDS:-10}
all=(safetensors qfm idx image config pickle pth)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

cxx=${QFORGE_FUZZ_CXX:-clang++}
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
if ! command -v "$cxx" > /dev/null || ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2> /dev/null; then
  echo "fuzz: SKIPPED: no $cxx with libFuzzer (apt-get install clang libclang-rt-14-dev to run the fuzzers)"
  exit 0
fi

cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" -DQFORGE_FUZZ=ON > /dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

failed=()
for t in "${targets[@]}"; do
  work=build-fuzz/fuzz-$t
  mkdir -p "$work/corpus"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: 2 GB also bounds single allocations.
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="../../tests/fuzz/$t.dict")
  if (cd "$work" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      "../tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "${dict[@]}" corpus "../../tests/fuzz/corpus/$t" > log.txt 2>&1); then
    echo "fuzz $t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log.txt" | grep -o '[0-9]*$') runs in ${seconds} s, no failure"
  else
    echo "fuzz $t: FAILED; the input is in $work (crash-*, leak-*, timeout-*, oom-*), the report in $work/log.txt"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz property|.*runtime error)' "$work/log.txt" | head -5 || true
    failed+=("$t")
  fi
done
((${#failed[@]} == 0)) || { echo "fuzz: failures in ${failed[*]}"; exit 1; }

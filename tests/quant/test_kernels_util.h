// Shared helpers for the int8 kernel tests: random data, and the ISA levels to compare.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/kernels/dispatch.h"
#include "quant/kernels/drivers.h"

namespace qtest {

using namespace qforge::quant;

inline std::vector<uint8_t> random_u8(std::mt19937& rng, size_t n, int lo = 0, int hi = 255) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(d(rng));
  return v;
}

inline std::vector<int8_t> random_s8(std::mt19937& rng, size_t n, int lo = -128, int hi = 127) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(d(rng));
  return v;
}

// doctest prints a const char* as a pointer: names go through std::string.
inline std::string iname(Isa isa) { return isa_name(isa); }

// Index of the first differing byte, or -1.
template <class T>
int64_t first_diff(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<int64_t>(i);
  return -1;
}

// The SIMD levels compared against the reference. A level the CPU lacks is skipped (doctest
// counts the test case as skipped) and says so.
inline bool lacks(Isa isa) { return !isa_supported(isa); }

inline void note_missing(Isa isa) {
  if (!isa_supported(isa)) MESSAGE("CPU lacks " << iname(isa) << ": its kernels are not tested");
}

}  // namespace qtest

// TEST_CASE per SIMD level, skipped where the CPU lacks it: body(Isa isa).
#define QTEST_PER_ISA(name, body)                                                                               \
  TEST_CASE(name " [avx2]" * doctest::skip(qtest::lacks(qforge::Isa::avx2))) { body(qforge::Isa::avx2); }       \
  TEST_CASE(name " [avx512]" * doctest::skip(qtest::lacks(qforge::Isa::avx512))) { body(qforge::Isa::avx512); } \
  TEST_CASE(name " [avx512vnni]" * doctest::skip(qtest::lacks(qforge::Isa::avx512vnni))) {                      \
    body(qforge::Isa::avx512vnni);                                                                              \
  }

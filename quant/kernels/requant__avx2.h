// AVX2 requantization, lane for lane the same integers as quant/qparams.h's requantize.
// Include only from files compiled with the AVX2 flags. Everything here has internal linkage
// (anonymous namespace), so no copy compiled with AVX2 can stand in for generic code at link time.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "quant/qparams.h"  // FixedPointMultiplier (the struct only: no inline function is called here)

namespace qforge::quant::avx2 {
namespace {

// x * 2^l saturated (l in [0, 30]): shift, shift back, and where that loses bits, saturate.
inline __m256i sat_shl(__m256i x, __m256i l) {
  const __m256i y = _mm256_sllv_epi32(x, l);
  const __m256i kept = _mm256_cmpeq_epi32(_mm256_srav_epi32(y, l), x);
  const __m256i sat = _mm256_xor_si256(_mm256_srai_epi32(x, 31), _mm256_set1_epi32(INT32_MAX));
  return _mm256_blendv_epi8(sat, y, kept);
}

// saturating_rounding_doubling_high_mul(x, m) for m >= 0: floor((x*m + 2^30) / 2^31).
// Without a 64-bit arithmetic shift: the logical shift gives the same low 32 bits.
inline __m256i srdhm(__m256i x, __m256i m, __m256i m_odd) {
  const __m256i nudge = _mm256_set1_epi64x(int64_t{1} << 30);
  __m256i even = _mm256_add_epi64(_mm256_mul_epi32(x, m), nudge);
  __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), m_odd), nudge);
  even = _mm256_srli_epi64(even, 31);  // bits 31..62 -> low dword
  odd = _mm256_slli_epi64(odd, 1);     // bits 31..62 -> high dword
  return _mm256_blend_epi32(even, odd, 0xAA);
}

// rounding_divide_by_pot(x, e): mask = 2^e - 1, half = mask >> 1, hoisted by the caller.
inline __m256i rdbpot(__m256i x, __m256i e, __m256i mask, __m256i half) {
  const __m256i rem = _mm256_and_si256(x, mask);
  const __m256i threshold = _mm256_add_epi32(half, _mm256_srli_epi32(x, 31));
  const __m256i q = _mm256_srav_epi32(x, e);
  return _mm256_sub_epi32(q, _mm256_cmpgt_epi32(rem, threshold));  // true = -1: adds 1
}

// multiply_by_quantized_multiplier constants for 8 lanes (per channel or broadcast).
struct Mul8 {
  __m256i mult, mult_odd, lshift, rshift, mask, half;
  bool any_lshift;
};

inline Mul8 make_mul8(__m256i mult, __m256i lshift, __m256i rshift) {
  Mul8 m;
  m.mult = mult;
  m.mult_odd = _mm256_srli_epi64(mult, 32);
  m.lshift = lshift;
  m.rshift = rshift;
  const __m256i one = _mm256_set1_epi32(1);
  m.mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, rshift), one);
  m.half = _mm256_srli_epi32(m.mask, 1);
  m.any_lshift = !_mm256_testz_si256(lshift, lshift);
  return m;
}

inline Mul8 broadcast_mul8(FixedPointMultiplier f) {
  return make_mul8(_mm256_set1_epi32(f.multiplier), _mm256_set1_epi32(f.shift > 0 ? f.shift : 0),
                   _mm256_set1_epi32(f.shift > 0 ? 0 : -f.shift));
}

// multiply_by_quantized_multiplier(x, m) for 8 lanes.
inline __m256i mul8(__m256i x, const Mul8& m) {
  if (m.any_lshift) x = sat_shl(x, m.lshift);
  return rdbpot(srdhm(x, m.mult, m.mult_odd), m.rshift, m.mask, m.half);
}

// requantize constants: the multiplier, then the clamp and the zero point.
struct Requant8 {
  Mul8 m;
  __m256i lo, hi, zp;
};

inline Requant8 make_requant8(const Mul8& m, int32_t zp, int32_t qmin, int32_t qmax) {
  Requant8 r;
  r.m = m;
  r.lo = _mm256_set1_epi32(qmin - zp);
  r.hi = _mm256_set1_epi32(qmax - zp);
  r.zp = _mm256_set1_epi32(zp);
  return r;
}

inline Requant8 load_requant8(const int32_t* multiplier, const int32_t* lshift, const int32_t* rshift, int32_t zp,
                              int32_t qmin, int32_t qmax) {
  return make_requant8(make_mul8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(multiplier)),
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lshift)),
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rshift))),
                       zp, qmin, qmax);
}

// requantize(acc) for 8 lanes; the zero point is added after the clamp, so nothing overflows.
inline __m256i requant8(__m256i acc, const Requant8& r) {
  const __m256i v = _mm256_min_epi32(_mm256_max_epi32(mul8(acc, r.m), r.lo), r.hi);
  return _mm256_add_epi32(v, r.zp);
}

// Two vectors of 8 values in [0, 255] -> 16 bytes, in order.
inline __m128i pack16(__m256i v0, __m256i v1) {
  const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(v0, v1), 0xD8);
  return _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}

}  // namespace
}  // namespace qforge::quant::avx2

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

// multiply_by_quantized_multiplier constants for 8 lanes (per channel or broadcast). Each 64-bit
// lane holds an even and an odd 32-bit lane: the products x * multiplier are formed in 64 bits,
// the even lanes' from the low halves, the odd lanes' from the high halves shifted down. AVX2 has
// no 64-bit arithmetic shift: 2^62 is added first (|product| < 2^62, so the sum is never negative
// as an unsigned number), the logical shift applied, and 2^(62 - s) taken off again.
//
// Where every lane has s >= 33 (rshift >= 2, no left shift), only the high 32 bits h of each
// product matter: (x * multiplier + 2^(s-1)) >> s = (h + 2^(s-33)) >> (s - 32) exactly, as in
// requant__avx512.h; 7 instructions instead of 11.
struct Mul8 {
  __m256i mult, mult_odd, lshift;
  __m256i add_even, add_odd;    // 2^(s - 1) + 2^62, s = 31 + rshift, in 64 bits
  __m256i s_even, s_odd;        // s in 64 bits
  __m256i bias_even, bias_odd;  // 2^(62 - s)
  __m256i round_hi, s_hi;       // 2^(s - 33) and s - 32, in 32 bits (the high-half form)
  bool any_lshift;
  bool high_half;  // every lane has s >= 33
};

inline Mul8 make_mul8(__m256i mult, __m256i lshift, __m256i rshift) {
  Mul8 m;
  m.mult = mult;
  m.mult_odd = _mm256_srli_epi64(mult, 32);
  m.lshift = lshift;
  const __m256i s = _mm256_add_epi32(rshift, _mm256_set1_epi32(31));
  m.s_even = _mm256_and_si256(s, _mm256_set1_epi64x(0xFFFFFFFF));
  m.s_odd = _mm256_srli_epi64(s, 32);
  const __m256i one = _mm256_set1_epi64x(1), big = _mm256_set1_epi64x(int64_t{1} << 62);
  m.add_even = _mm256_add_epi64(_mm256_sllv_epi64(one, _mm256_sub_epi64(m.s_even, one)), big);
  m.add_odd = _mm256_add_epi64(_mm256_sllv_epi64(one, _mm256_sub_epi64(m.s_odd, one)), big);
  m.bias_even = _mm256_srlv_epi64(big, m.s_even);
  m.bias_odd = _mm256_srlv_epi64(big, m.s_odd);
  m.any_lshift = !_mm256_testz_si256(lshift, lshift);
  const __m256i two = _mm256_set1_epi32(2);
  m.high_half = _mm256_testz_si256(_mm256_cmpgt_epi32(two, rshift), _mm256_set1_epi32(-1));
  m.s_hi = _mm256_sub_epi32(rshift, _mm256_set1_epi32(1));
  m.round_hi = _mm256_sllv_epi32(_mm256_set1_epi32(1), _mm256_sub_epi32(rshift, two));
  return m;
}

inline Mul8 broadcast_mul8(FixedPointMultiplier f) {
  return make_mul8(_mm256_set1_epi32(f.multiplier), _mm256_set1_epi32(f.shift > 0 ? f.shift : 0),
                   _mm256_set1_epi32(f.shift > 0 ? 0 : -f.shift));
}

// multiply_by_quantized_multiplier(x, m) for 8 lanes: (x * multiplier + 2^(s-1)) >> s in 64 bits.
inline __m256i mul8(__m256i x, const Mul8& m) {
  if (m.high_half) {
    const __m256i even = _mm256_mul_epi32(x, m.mult), odd = _mm256_mul_epi32(_mm256_srli_epi64(x, 32), m.mult_odd);
    const __m256i h = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    return _mm256_srav_epi32(_mm256_add_epi32(h, m.round_hi), m.s_hi);
  }
  if (m.any_lshift) x = sat_shl(x, m.lshift);
  const __m256i even = _mm256_sub_epi64(
      _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m.mult), m.add_even), m.s_even), m.bias_even);
  const __m256i odd = _mm256_sub_epi64(
      _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), m.mult_odd), m.add_odd), m.s_odd),
      m.bias_odd);
  return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
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

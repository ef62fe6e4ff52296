// AVX-512 requantization, lane for lane the same integers as quant/qparams.h's requantize.
// Include only from files compiled with the AVX-512 flags. Everything here has internal linkage
// (anonymous namespace), so no copy compiled with AVX-512 can stand in for generic code at link time.
#pragma once
// GCC 12 warns -W(maybe-)uninitialized inside its own AVX-512 intrinsics (their _mm512_undefined_*
// self-initialisation, GCC bug 105593): silenced for the files that include this header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#include "quant/kernels/kernels.h"  // QAddParams
#include "quant/qparams.h"          // FixedPointMultiplier (the struct only: no inline function is called here)

namespace qforge::quant::avx512 {
namespace {

// x * 2^l saturated (l in [0, 30]): shift, shift back, and where that loses bits, saturate.
inline __m512i sat_shl(__m512i x, __m512i l) {
  const __m512i y = _mm512_sllv_epi32(x, l);
  const __mmask16 lost = _mm512_cmpneq_epi32_mask(_mm512_srav_epi32(y, l), x);
  const __m512i sat = _mm512_xor_si512(_mm512_srai_epi32(x, 31), _mm512_set1_epi32(INT32_MAX));
  return _mm512_mask_blend_epi32(lost, y, sat);
}

// multiply_by_quantized_multiplier constants for 16 lanes (per channel or broadcast). Each 64-bit
// lane holds an even and an odd 32-bit lane: the products x * multiplier are formed in 64 bits,
// the even lanes' from the low halves, the odd lanes' from the high halves shifted down.
//
// Where every lane has s >= 33 (rshift >= 2, no left shift: a conv's multipliers are well below
// 1/4), only the high 32 bits h of each product matter: with x * multiplier = h * 2^32 + l,
// 0 <= l < 2^32, (x * multiplier + 2^(s-1)) >> s = (h + 2^(s-33)) >> (s - 32) exactly (floor of an
// integer plus l / 2^32 < 1, over 2^(s-32)), and h + 2^(s-33) < 2^30 + 2^29 cannot overflow. Both
// products' high halves already sit in the odd 32-bit lanes: 7 instructions instead of 9.
struct Mul16 {
  __m512i mult, mult_odd, lshift;
  __m512i round_even, round_odd;  // 2^(s - 1), s = 31 + rshift, in 64 bits
  __m512i s_even, s_odd;          // s in 64 bits
  __m512i round_hi, s_hi;         // 2^(s - 33) and s - 32, in 32 bits (the high-half form)
  bool any_lshift;
  bool high_half;  // every lane has s >= 33
};

inline Mul16 make_mul16(__m512i mult, __m512i lshift, __m512i rshift) {
  Mul16 m;
  m.mult = mult;
  m.mult_odd = _mm512_srli_epi64(mult, 32);
  m.lshift = lshift;
  const __m512i s = _mm512_add_epi32(rshift, _mm512_set1_epi32(31));
  m.s_even = _mm512_and_si512(s, _mm512_set1_epi64(0xFFFFFFFF));
  m.s_odd = _mm512_srli_epi64(s, 32);
  const __m512i one = _mm512_set1_epi64(1);
  m.round_even = _mm512_sllv_epi64(one, _mm512_sub_epi64(m.s_even, one));
  m.round_odd = _mm512_sllv_epi64(one, _mm512_sub_epi64(m.s_odd, one));
  m.any_lshift = _mm512_test_epi32_mask(lshift, lshift) != 0;
  const __m512i two = _mm512_set1_epi32(2);
  m.high_half = _mm512_cmplt_epi32_mask(rshift, two) == 0;
  m.s_hi = _mm512_sub_epi32(rshift, _mm512_set1_epi32(1));
  m.round_hi = _mm512_sllv_epi32(_mm512_set1_epi32(1), _mm512_sub_epi32(rshift, two));
  return m;
}

inline Mul16 broadcast_mul16(FixedPointMultiplier f) {
  return make_mul16(_mm512_set1_epi32(f.multiplier), _mm512_set1_epi32(f.shift > 0 ? f.shift : 0),
                    _mm512_set1_epi32(f.shift > 0 ? 0 : -f.shift));
}

// multiply_by_quantized_multiplier(x, m) for 16 lanes: (x * multiplier + 2^(s-1)) >> s in 64 bits
// (the result fits in 32: |x| <= 2^31, multiplier < 2^31, s >= 31), the odd lanes' moved up.
inline __m512i mul16(__m512i x, const Mul16& m) {
  if (m.high_half) {
    const __m512i even = _mm512_mul_epi32(x, m.mult), odd = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), m.mult_odd);
    const __m512i h = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
    return _mm512_srav_epi32(_mm512_add_epi32(h, m.round_hi), m.s_hi);
  }
  if (m.any_lshift) x = sat_shl(x, m.lshift);
  const __m512i even = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m.mult), m.round_even), m.s_even);
  const __m512i odd =
      _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), m.mult_odd), m.round_odd), m.s_odd);
  return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

// requantize constants: the multiplier, then the clamp and the zero point.
struct Requant16 {
  Mul16 m;
  __m512i lo, hi, zp;
};

inline Requant16 make_requant16(const Mul16& m, int32_t zp, int32_t qmin, int32_t qmax) {
  Requant16 r;
  r.m = m;
  r.lo = _mm512_set1_epi32(qmin - zp);
  r.hi = _mm512_set1_epi32(qmax - zp);
  r.zp = _mm512_set1_epi32(zp);
  return r;
}

inline Requant16 load_requant16(const int32_t* multiplier, const int32_t* lshift, const int32_t* rshift, int32_t zp,
                                int32_t qmin, int32_t qmax) {
  return make_requant16(
      make_mul16(_mm512_loadu_si512(multiplier), _mm512_loadu_si512(lshift), _mm512_loadu_si512(rshift)), zp, qmin,
      qmax);
}

// A conv panel's constants, built once for all its tiles: channels [oc0, oc0 + 16 * vectors) of the
// per-channel arrays of QConvArgs (OCp entries each).
inline void load_requant_panel(Requant16* rq, const QConvArgs& a, int oc0, int vectors) {
  for (int v = 0; v < vectors; ++v) {
    const int c = oc0 + 16 * v;
    rq[v] = load_requant16(a.rq_multiplier + c, a.rq_lshift + c, a.rq_rshift + c, a.out_zp, a.out_qmin, a.out_qmax);
  }
}

// requantize(acc) for 16 lanes; the zero point is added after the clamp, so nothing overflows.
inline __m512i requant16(__m512i acc, const Requant16& r) {
  const __m512i v = _mm512_min_epi32(_mm512_max_epi32(mul16(acc, r.m), r.lo), r.hi);
  return _mm512_add_epi32(v, r.zp);
}

// The residual join (QAddParams, as qadd__ref) on requantized conv output in int32 lanes.
struct AddConsts {
  __m512i mul, zab, half, zo, lo, hi;  // zab: (a_zp, b_zp) as int16 pairs
  __m128i shift;
};

inline AddConsts make_add(const QAddParams& p) {
  AddConsts c;
  c.mul =
      _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint16_t>(p.a_mul)) | (static_cast<int32_t>(p.b_mul) << 16));
  c.zab = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint16_t>(p.a_zp)) | (static_cast<int32_t>(p.b_zp) << 16));
  c.half = _mm512_set1_epi32(int32_t{1} << (p.shift - 1));
  c.zo = _mm512_set1_epi32(p.out_zp);
  c.lo = _mm512_set1_epi32(p.out_qmin);
  c.hi = _mm512_set1_epi32(p.out_qmax);
  c.shift = _mm_cvtsi32_si128(p.shift);
  return c;
}

// qadd of 16 lanes: conv bytes v (int32 lanes, 0..255) as input a, residual bytes r as input b.
inline __m512i add16(__m512i v, __m128i r, const AddConsts& c) {
  // (v, r) as int16 pairs in each 32-bit lane, minus (a_zp, b_zp): one vpmaddwd gives the sum of both products.
  const __m512i pair = _mm512_sub_epi16(_mm512_or_si512(v, _mm512_slli_epi32(_mm512_cvtepu8_epi32(r), 16)), c.zab);
  const __m512i acc = _mm512_madd_epi16(pair, c.mul);
  const __m512i q = _mm512_add_epi32(_mm512_sra_epi32(_mm512_add_epi32(acc, c.half), c.shift), c.zo);
  return _mm512_min_epi32(_mm512_max_epi32(q, c.lo), c.hi);
}

}  // namespace
}  // namespace qforge::quant::avx512

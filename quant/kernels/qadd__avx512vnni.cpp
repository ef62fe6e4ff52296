// Add (TFLite's integer scheme), 16 elements per step; masked loads and stores for the tail.
// Needs only AVX-512 F/BW; it belongs to the avx512vnni level's table.
#include "quant/kernels/kernels.h"
#include "quant/kernels/requant__avx512vnni.h"

namespace qforge::quant {

// a (n), b (n) -> out (n)
void qadd__avx512vnni(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p) {
  const avx512::Mul16 ma = avx512::broadcast_mul16(p.a_multiplier), mb = avx512::broadcast_mul16(p.b_multiplier);
  const avx512::Requant16 ro =
      avx512::make_requant16(avx512::broadcast_mul16(p.out_multiplier), p.out_zp, p.out_qmin, p.out_qmax);
  const __m512i za = _mm512_set1_epi32(p.a_zp), zb = _mm512_set1_epi32(p.b_zp);
  const __m128i shift = _mm_cvtsi32_si128(p.left_shift);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512i xa = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, a + i));
    const __m512i xb = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, b + i));
    // (x - zp) * 2^left_shift: |x - zp| <= 255, exact in 32 bits
    const __m512i sa = avx512::mul16(_mm512_sll_epi32(_mm512_sub_epi32(xa, za), shift), ma);
    const __m512i sb = avx512::mul16(_mm512_sll_epi32(_mm512_sub_epi32(xb, zb), shift), mb);
    _mm_mask_storeu_epi8(out + i, m, _mm512_cvtepi32_epi8(avx512::requant16(_mm512_add_epi32(sa, sb), ro)));
  }
}

}  // namespace qforge::quant

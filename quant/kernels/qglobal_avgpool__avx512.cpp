// Global average pooling: int32 sums of 64 channels per pass (4 zmm), then requantization.
#include "quant/kernels/kernels.h"
#include "quant/kernels/requant__avx512.h"

namespace qforge::quant {

// in (N,H,W,C) -> out (N,C)
void qglobal_avgpool__avx512(uint8_t* out, const uint8_t* in, const QGlobalAvgPoolParams& p, int64_t n_begin,
                             int64_t n_end) {
  const int C = p.C;
  const int64_t hw = int64_t(p.H) * p.W;
  const avx512::Requant16 r =
      avx512::make_requant16(avx512::broadcast_mul16(p.multiplier), p.out_zp, p.out_qmin, p.out_qmax);
  const __m512i correction = _mm512_set1_epi32(static_cast<int32_t>(hw) * p.in_zp);
  const __m128i shift = _mm_cvtsi32_si128(p.pre_shift);
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint8_t* x = in + n * hw * C;
    for (int c = 0; c < C; c += 64) {
      __mmask16 m[4];
      __m512i s[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const int lanes = C - c - 16 * j;
        m[j] = lanes >= 16 ? __mmask16(0xFFFF) : (lanes <= 0 ? __mmask16(0) : __mmask16((1u << lanes) - 1));
        s[j] = _mm512_setzero_si512();
      }
      for (int64_t i = 0; i < hw; ++i) {
        const uint8_t* px = x + i * C + c;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j)
          s[j] = _mm512_add_epi32(s[j], _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m[j], px + 16 * j)));
      }
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)
        _mm_mask_storeu_epi8(
            out + n * C + c + 16 * j, m[j],
            _mm512_cvtepi32_epi8(avx512::requant16(_mm512_sll_epi32(_mm512_sub_epi32(s[j], correction), shift), r)));
    }
  }
}

}  // namespace qforge::quant

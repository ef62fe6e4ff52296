// Dequantize u8 NHWC -> float NCHW, 16 values per step: (q - zp) * scale, exactly as the reference.
#include "quant/kernels/kernels.h"
#include "quant/kernels/requant__avx512.h"

namespace qforge::quant {
namespace {

inline __m512 deq16(__m128i q, __m512i zp, __m512 scale) {
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q), zp)), scale);
}

}  // namespace

// in (N,HW,C) u8 -> out (N,C,HW) float, pixels [pix_begin, pix_end) of N*HW
void dequantize__avx512(float* out, const uint8_t* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end) {
  const __m512i zp = _mm512_set1_epi32(p.zp);
  const __m512 scale = _mm512_set1_ps(p.scale);
  const int C = p.C, HW = p.HW;
  if (C == 1 || HW == 1) {
    const int64_t b = pix_begin * C, e = pix_end * C;
    for (int64_t i = b; i < e; i += 16) {
      const __mmask16 m = e - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (e - i)) - 1);
      _mm512_mask_storeu_ps(out + i, m, deq16(_mm_maskz_loadu_epi8(m, in + i), zp, scale));
    }
    return;
  }
  for (int64_t q = pix_begin; q < pix_end;) {
    const int64_t n = q / HW, hw0 = q % HW;
    const int64_t hw1 = (n + 1) * HW < pix_end ? HW : pix_end - n * HW;
    for (int c = 0; c < C; ++c) {
      const uint8_t* src = in + n * HW * C + c;
      float* dst = out + (n * C + c) * HW;
      for (int64_t hw = hw0; hw < hw1; hw += 16) {
        const int cnt = hw1 - hw >= 16 ? 16 : static_cast<int>(hw1 - hw);
        const __mmask16 m = cnt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cnt) - 1);
        alignas(16) uint8_t t[16] = {};
        for (int j = 0; j < cnt; ++j) t[j] = src[(hw + j) * C];
        _mm512_mask_storeu_ps(dst + hw, m, deq16(_mm_load_si128(reinterpret_cast<const __m128i*>(t)), zp, scale));
      }
    }
    q = n * HW + hw1;
  }
}

}  // namespace qforge::quant

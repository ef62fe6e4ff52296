// Quantize float NCHW -> u8 NHWC, 16 values per step: the same float multiply, round half to even,
// float clamp (max_ps returns its second operand for NaN, as fmax: NaN -> qmin) and conversion
// as quantize_val. Needs only AVX-512 F/BW.
#include "quant/kernels/kernels.h"
#include "quant/kernels/requant__avx512.h"

namespace qforge::quant {
namespace {

struct Q16 {
  __m512 inv, lo, hi;
  __m512i zp;
};

inline __m128i quant16(__m512 x, const Q16& k) {
  __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(x, k.inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  r = _mm512_min_ps(_mm512_max_ps(r, k.lo), k.hi);
  return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(r), k.zp));
}

}  // namespace

// in (N,C,HW) float -> out (N,HW,C) u8, pixels [pix_begin, pix_end) of N*HW
void quantize__avx512(uint8_t* out, const float* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end) {
  const Q16 k{_mm512_set1_ps(p.inv_scale), _mm512_set1_ps(static_cast<float>(p.qmin - p.zp)),
              _mm512_set1_ps(static_cast<float>(p.qmax - p.zp)), _mm512_set1_epi32(p.zp)};
  const int C = p.C, HW = p.HW;
  if (C == 1 || HW == 1) {  // both layouts are the same flat array
    const int64_t b = pix_begin * C, e = pix_end * C;
    for (int64_t i = b; i < e; i += 16) {
      const __mmask16 m = e - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (e - i)) - 1);
      _mm_mask_storeu_epi8(out + i, m, quant16(_mm512_maskz_loadu_ps(m, in + i), k));
    }
    return;
  }
  for (int64_t q = pix_begin; q < pix_end;) {
    const int64_t n = q / HW, hw0 = q % HW;
    const int64_t hw1 = (n + 1) * HW < pix_end ? HW : pix_end - n * HW;
    for (int c = 0; c < C; ++c) {
      const float* src = in + (n * C + c) * HW;
      uint8_t* dst = out + n * HW * C + c;
      for (int64_t hw = hw0; hw < hw1; hw += 16) {
        const int cnt = hw1 - hw >= 16 ? 16 : static_cast<int>(hw1 - hw);
        const __mmask16 m = cnt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cnt) - 1);
        alignas(16) uint8_t t[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(t), quant16(_mm512_maskz_loadu_ps(m, src + hw), k));
        for (int j = 0; j < cnt; ++j) dst[(hw + j) * C] = t[j];
      }
    }
    q = n * HW + hw1;
  }
}

}  // namespace qforge::quant

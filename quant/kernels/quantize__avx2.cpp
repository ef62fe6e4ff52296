// Quantize float NCHW -> u8 NHWC, 8 values per step: the same float multiply, round half to even,
// float clamp (max_ps returns its second operand for NaN, as fmax: NaN -> qmin) and conversion
// as quantize_val. Tails go through small buffers.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/kernels.h"

namespace qforge::quant {
namespace {

struct Q8 {
  __m256 inv, lo, hi;
  __m256i zp;
};

// 8 floats -> 8 bytes in the low half
inline __m128i quant8(__m256 x, const Q8& k) {
  __m256 r = _mm256_round_ps(_mm256_mul_ps(x, k.inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  r = _mm256_min_ps(_mm256_max_ps(r, k.lo), k.hi);
  const __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(r), k.zp);  // in [0, 255]
  const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_packus_epi16(w, w);
}

inline void quant_n(uint8_t* dst, const float* src, int cnt, const Q8& k) {  // cnt <= 8
  if (cnt == 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), quant8(_mm256_loadu_ps(src), k));
    return;
  }
  alignas(32) float t[8] = {};
  std::memcpy(t, src, sizeof(float) * cnt);
  alignas(16) uint8_t o[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(o), quant8(_mm256_load_ps(t), k));
  std::memcpy(dst, o, cnt);
}

}  // namespace

// in (N,C,HW) float -> out (N,HW,C) u8, pixels [pix_begin, pix_end) of N*HW
void quantize__avx2(uint8_t* out, const float* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end) {
  const Q8 k{_mm256_set1_ps(p.inv_scale), _mm256_set1_ps(static_cast<float>(p.qmin - p.zp)),
             _mm256_set1_ps(static_cast<float>(p.qmax - p.zp)), _mm256_set1_epi32(p.zp)};
  const int C = p.C, HW = p.HW;
  if (C == 1 || HW == 1) {
    const int64_t b = pix_begin * C, e = pix_end * C;
    for (int64_t i = b; i < e; i += 8) quant_n(out + i, in + i, e - i >= 8 ? 8 : static_cast<int>(e - i), k);
    return;
  }
  for (int64_t q = pix_begin; q < pix_end;) {
    const int64_t n = q / HW, hw0 = q % HW;
    const int64_t hw1 = (n + 1) * HW < pix_end ? HW : pix_end - n * HW;
    for (int c = 0; c < C; ++c) {
      const float* src = in + (n * C + c) * HW;
      uint8_t* dst = out + n * HW * C + c;
      for (int64_t hw = hw0; hw < hw1; hw += 8) {
        const int cnt = hw1 - hw >= 8 ? 8 : static_cast<int>(hw1 - hw);
        alignas(16) uint8_t t[8];
        quant_n(t, src + hw, cnt, k);
        for (int j = 0; j < cnt; ++j) dst[(hw + j) * C] = t[j];
      }
    }
    q = n * HW + hw1;
  }
}

}  // namespace qforge::quant

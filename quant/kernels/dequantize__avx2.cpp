// Dequantize u8 NHWC -> float NCHW, 8 values per step: (q - zp) * scale, exactly as the reference.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/kernels.h"

namespace qforge::quant {
namespace {

// 8 bytes -> 8 floats; cnt <= 8 values stored
inline void deq_n(float* dst, const uint8_t* src, int cnt, __m256i zp, __m256 scale) {
  __m128i q;
  if (cnt == 8) {
    q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src));
  } else {
    alignas(16) uint8_t t[16] = {};
    std::memcpy(t, src, cnt);
    q = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
  }
  const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(q), zp)), scale);
  if (cnt == 8) {
    _mm256_storeu_ps(dst, f);
  } else {
    alignas(32) float t[8];
    _mm256_store_ps(t, f);
    std::memcpy(dst, t, sizeof(float) * cnt);
  }
}

}  // namespace

// in (N,HW,C) u8 -> out (N,C,HW) float, pixels [pix_begin, pix_end) of N*HW
void dequantize__avx2(float* out, const uint8_t* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end) {
  const __m256i zp = _mm256_set1_epi32(p.zp);
  const __m256 scale = _mm256_set1_ps(p.scale);
  const int C = p.C, HW = p.HW;
  if (C == 1 || HW == 1) {
    const int64_t b = pix_begin * C, e = pix_end * C;
    for (int64_t i = b; i < e; i += 8) deq_n(out + i, in + i, e - i >= 8 ? 8 : static_cast<int>(e - i), zp, scale);
    return;
  }
  for (int64_t q = pix_begin; q < pix_end;) {
    const int64_t n = q / HW, hw0 = q % HW;
    const int64_t hw1 = (n + 1) * HW < pix_end ? HW : pix_end - n * HW;
    for (int c = 0; c < C; ++c) {
      const uint8_t* src = in + n * HW * C + c;
      float* dst = out + (n * C + c) * HW;
      for (int64_t hw = hw0; hw < hw1; hw += 8) {
        const int cnt = hw1 - hw >= 8 ? 8 : static_cast<int>(hw1 - hw);
        alignas(16) uint8_t t[8] = {};
        for (int j = 0; j < cnt; ++j) t[j] = src[(hw + j) * C];
        deq_n(dst + hw, t, cnt, zp, scale);
      }
    }
    q = n * HW + hw1;
  }
}

}  // namespace qforge::quant

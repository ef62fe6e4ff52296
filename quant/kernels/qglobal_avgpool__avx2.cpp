// Global average pooling: int32 sums of 32 channels per pass (4 ymm), then requantization.
#include <cstring>

#include "quant/kernels/kernels.h"
#include "quant/kernels/requant__avx2.h"

namespace qforge::quant {

// in (N,H,W,C) -> out (N,C)
void qglobal_avgpool__avx2(uint8_t* out, const uint8_t* in, const QGlobalAvgPoolParams& p, int64_t n_begin,
                           int64_t n_end) {
  const int C = p.C;
  const int64_t hw = int64_t(p.H) * p.W;
  const avx2::Requant8 r = avx2::make_requant8(avx2::broadcast_mul8(p.multiplier), p.out_zp, p.out_qmin, p.out_qmax);
  const __m256i correction = _mm256_set1_epi32(static_cast<int32_t>(hw) * p.in_zp);
  const __m128i shift = _mm_cvtsi32_si128(p.pre_shift);
  auto acc = [&](__m256i sum) { return _mm256_sll_epi32(_mm256_sub_epi32(sum, correction), shift); };
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint8_t* x = in + n * hw * C;
    for (int c = 0; c < C; c += 32) {
      const int nc = C - c < 32 ? C - c : 32;
      __m256i s[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
      for (int64_t i = 0; i < hw; ++i) {
        const uint8_t* px = x + i * C + c;
        __m256i v;
        if (nc == 32) {
          v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(px));
        } else {
          alignas(32) uint8_t t[32] = {};
          std::memcpy(t, px, nc);
          v = _mm256_load_si256(reinterpret_cast<const __m256i*>(t));
        }
        const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
        s[0] = _mm256_add_epi32(s[0], _mm256_cvtepu8_epi32(lo));
        s[1] = _mm256_add_epi32(s[1], _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
        s[2] = _mm256_add_epi32(s[2], _mm256_cvtepu8_epi32(hi));
        s[3] = _mm256_add_epi32(s[3], _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
      }
      alignas(32) uint8_t t[32];
      _mm_store_si128(reinterpret_cast<__m128i*>(t),
                      avx2::pack16(avx2::requant8(acc(s[0]), r), avx2::requant8(acc(s[1]), r)));
      _mm_store_si128(reinterpret_cast<__m128i*>(t + 16),
                      avx2::pack16(avx2::requant8(acc(s[2]), r), avx2::requant8(acc(s[3]), r)));
      std::memcpy(out + n * C + c, t, nc);
    }
  }
}

}  // namespace qforge::quant

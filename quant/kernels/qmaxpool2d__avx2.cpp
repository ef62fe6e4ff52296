// Max pooling NHWC, 32 channels per step (vpmaxub); the channel tail goes through a small buffer.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/kernels.h"

namespace qforge::quant {

// in (N,H,W,C) -> out (N,OH,OW,C)
void qmaxpool2d__avx2(uint8_t* out, const uint8_t* in, const QPool2dParams& p, int64_t pix_begin, int64_t pix_end) {
  const int C = p.C;
  for (int64_t q = pix_begin; q < pix_end; ++q) {
    const int64_t n = q / (int64_t(p.OH) * p.OW);
    const int oh = static_cast<int>(q / p.OW % p.OH), ow = static_cast<int>(q % p.OW);
    const int h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    const int kh0 = h0 < 0 ? -h0 : 0, kh1 = p.H - h0 < p.KH ? p.H - h0 : p.KH;
    const int kw0 = w0 < 0 ? -w0 : 0, kw1 = p.W - w0 < p.KW ? p.W - w0 : p.KW;
    for (int c = 0; c < C; c += 32) {
      const int nc = C - c < 32 ? C - c : 32;
      __m256i v = _mm256_setzero_si256();
      for (int kh = kh0; kh < kh1; ++kh) {
        const uint8_t* row = in + ((n * p.H + h0 + kh) * p.W + w0) * C + c;
        for (int kw = kw0; kw < kw1; ++kw) {
          const uint8_t* x = row + int64_t(kw) * C;
          if (nc == 32) {
            v = _mm256_max_epu8(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
          } else {
            alignas(32) uint8_t t[32] = {};
            std::memcpy(t, x, nc);
            v = _mm256_max_epu8(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(t)));
          }
        }
      }
      if (nc == 32) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + q * C + c), v);
      } else {
        alignas(32) uint8_t t[32];
        _mm256_store_si256(reinterpret_cast<__m256i*>(t), v);
        std::memcpy(out + q * C + c, t, nc);
      }
    }
  }
}

}  // namespace qforge::quant

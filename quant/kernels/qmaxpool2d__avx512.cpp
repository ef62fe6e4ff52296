// Max pooling NHWC, 64 channels per step (vpmaxub), masked tails. Needs only AVX-512 BW.
// GCC 12 false positives inside its AVX-512 intrinsics (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "quant/kernels/kernels.h"

namespace qforge::quant {

// in (N,H,W,C) -> out (N,OH,OW,C)
void qmaxpool2d__avx512(uint8_t* out, const uint8_t* in, const QPool2dParams& p, int64_t pix_begin, int64_t pix_end) {
  const int C = p.C;
  for (int64_t q = pix_begin; q < pix_end; ++q) {
    const int64_t n = q / (int64_t(p.OH) * p.OW);
    const int oh = static_cast<int>(q / p.OW % p.OH), ow = static_cast<int>(q % p.OW);
    const int h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    const int kh0 = h0 < 0 ? -h0 : 0, kh1 = p.H - h0 < p.KH ? p.H - h0 : p.KH;
    const int kw0 = w0 < 0 ? -w0 : 0, kw1 = p.W - w0 < p.KW ? p.W - w0 : p.KW;
    for (int c = 0; c < C; c += 64) {
      const __mmask64 m = C - c >= 64 ? ~__mmask64(0) : (__mmask64(1) << (C - c)) - 1;
      __m512i v = _mm512_setzero_si512();
      for (int kh = kh0; kh < kh1; ++kh) {
        const uint8_t* row = in + ((n * p.H + h0 + kh) * p.W + w0) * C + c;
        for (int kw = kw0; kw < kw1; ++kw) v = _mm512_max_epu8(v, _mm512_maskz_loadu_epi8(m, row + int64_t(kw) * C));
      }
      _mm512_mask_storeu_epi8(out + q * C + c, m, v);
    }
  }
}

}  // namespace qforge::quant

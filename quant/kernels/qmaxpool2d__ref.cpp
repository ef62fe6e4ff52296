// The scalar reference max pooling (NHWC, padding ignored).
#include "quant/kernels/kernels.h"

namespace qforge::quant {

// in (N,H,W,C) -> out (N,OH,OW,C)
void qmaxpool2d__ref(uint8_t* out, const uint8_t* in, const QPool2dParams& p, int64_t pix_begin, int64_t pix_end) {
  for (int64_t q = pix_begin; q < pix_end; ++q) {
    const int64_t n = q / (int64_t(p.OH) * p.OW);
    const int oh = static_cast<int>(q / p.OW % p.OH), ow = static_cast<int>(q % p.OW);
    uint8_t* y = out + q * p.C;
    for (int c = 0; c < p.C; ++c) y[c] = 0;
    for (int kh = 0; kh < p.KH; ++kh) {
      const int ih = oh * p.stride_h - p.pad_h + kh;
      if (ih < 0 || ih >= p.H) continue;
      for (int kw = 0; kw < p.KW; ++kw) {
        const int iw = ow * p.stride_w - p.pad_w + kw;
        if (iw < 0 || iw >= p.W) continue;
        const uint8_t* x = in + ((n * p.H + ih) * p.W + iw) * p.C;
        for (int c = 0; c < p.C; ++c) y[c] = x[c] > y[c] ? x[c] : y[c];
      }
    }
  }
}

}  // namespace qforge::quant

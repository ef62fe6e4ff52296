// The scalar reference convolution: defines the output bytes of every qconv2d kernel.
#include <cstdint>

#include "quant/kernels/kernels.h"

namespace qforge::quant {

// in (N,H,W,C) u8, weight (OC,KH,KW,C) s8, bias (OC) s32 -> out (N,OH,OW,OC) u8 or out_i32 (N,OH,OW,OC) s32
void qconv2d__ref(uint8_t* out, int32_t* out_i32, const uint8_t* in, const QConvArgs& a, int64_t pix_begin,
                  int64_t pix_end, int oc_begin, int oc_end, void* /*scratch*/) {
  const int C = a.C;
  for (int64_t p = pix_begin; p < pix_end; ++p) {
    const int64_t n = p / (int64_t(a.OH) * a.OW);
    const int oh = static_cast<int>(p / a.OW % a.OH), ow = static_cast<int>(p % a.OW);
    for (int oc = oc_begin; oc < oc_end; ++oc) {
      // Modular int32 arithmetic (in uint32 to stay defined), like the SIMD accumulators.
      uint32_t acc = a.bias ? static_cast<uint32_t>(a.bias[oc]) : 0u;
      for (int kh = 0; kh < a.KH; ++kh) {
        const int ih = oh * a.stride_h - a.pad_h + kh * a.dilation_h;
        if (ih < 0 || ih >= a.H) continue;  // padding: x - in_zp = 0
        for (int kw = 0; kw < a.KW; ++kw) {
          const int iw = ow * a.stride_w - a.pad_w + kw * a.dilation_w;
          if (iw < 0 || iw >= a.W) continue;
          const uint8_t* x = in + ((n * a.H + ih) * a.W + iw) * C;
          const int8_t* w = a.weight + ((int64_t(oc) * a.KH + kh) * a.KW + kw) * C;
          int32_t dot = 0;  // |dot| <= C * 255 * 128 < 2^31 for C < 65793
          for (int c = 0; c < C; ++c) dot += (static_cast<int32_t>(x[c]) - a.in_zp) * w[c];
          acc += static_cast<uint32_t>(dot);
        }
      }
      const int32_t acc_s = static_cast<int32_t>(acc);
      if (out_i32)
        out_i32[p * a.OC + oc] = acc_s;
      else
        out[p * a.OC + oc] = static_cast<uint8_t>(requantize(acc_s, a.requant[oc], a.out_zp, a.out_qmin, a.out_qmax));
    }
  }
}

}  // namespace qforge::quant

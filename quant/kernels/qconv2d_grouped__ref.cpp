// The scalar reference grouped convolution (any group count): lets every grouped layer run in int8.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "quant/kernels/qdwconv2d.h"

namespace qforge::quant {

void qconv2d_grouped__ref(uint8_t* out, int32_t* out_i32, const uint8_t* in, const QConvArgs& a, int groups,
                          int64_t pix_begin, int64_t pix_end, int oc_begin, int oc_end) {
  QF_CHECK(groups >= 1 && a.C % groups == 0 && a.OC % groups == 0,
           "qconv2d_grouped: C" + std::to_string(a.C) + " and OC" + std::to_string(a.OC) +
               " must be multiples of groups " + std::to_string(groups));
  const int Cg = a.C / groups, OCg = a.OC / groups;
  for (int64_t p = pix_begin; p < pix_end; ++p) {
    const int64_t n = p / (int64_t(a.OH) * a.OW);
    const int oh = static_cast<int>(p / a.OW % a.OH), ow = static_cast<int>(p % a.OW);
    for (int oc = oc_begin; oc < oc_end; ++oc) {
      const int c0 = oc / OCg * Cg;  // the group's first input channel
      // Modular int32 arithmetic (in uint32 to stay defined), as qconv2d__ref.
      uint32_t acc = a.bias ? static_cast<uint32_t>(a.bias[oc]) : 0u;
      for (int kh = 0; kh < a.KH; ++kh) {
        const int ih = oh * a.stride_h - a.pad_h + kh * a.dilation_h;
        if (ih < 0 || ih >= a.H) continue;  // padding: x - in_zp = 0
        for (int kw = 0; kw < a.KW; ++kw) {
          const int iw = ow * a.stride_w - a.pad_w + kw * a.dilation_w;
          if (iw < 0 || iw >= a.W) continue;
          const uint8_t* x = in + ((n * a.H + ih) * a.W + iw) * a.C + c0;
          const int8_t* w = a.weight + ((int64_t(oc) * a.KH + kh) * a.KW + kw) * Cg;
          int32_t dot = 0;  // |dot| <= Cg * 255 * 128 < 2^31 for Cg < 65793
          for (int c = 0; c < Cg; ++c) dot += (static_cast<int32_t>(x[c]) - a.in_zp) * w[c];
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

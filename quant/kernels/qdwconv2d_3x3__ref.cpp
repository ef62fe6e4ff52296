// The scalar reference depthwise 3x3 convolution: defines the output bytes of every qdwconv2d_3x3 kernel.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "quant/kernels/qdwconv2d.h"

namespace qforge::quant {

void qdwconv2d_3x3__ref(uint8_t* out, const uint8_t* in, const QDwConvArgs& a, int64_t row_begin, int64_t row_end) {
  QF_CHECK(a.stride >= 1 && a.pad >= 0 && a.OH == (a.H + 2 * a.pad - 3) / a.stride + 1 &&
               a.OW == (a.W + 2 * a.pad - 3) / a.stride + 1 && a.OH >= 1 && a.OW >= 1,
           "qdwconv2d_3x3: geometry H" + std::to_string(a.H) + " W" + std::to_string(a.W) + " stride " +
               std::to_string(a.stride) + " pad " + std::to_string(a.pad) + " does not give OH" + std::to_string(a.OH) +
               " OW" + std::to_string(a.OW));
  const int C = a.C;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / a.OH;
    const int oh = static_cast<int>(r % a.OH);
    for (int ow = 0; ow < a.OW; ++ow) {
      uint8_t* o = out + (r * a.OW + ow) * C;
      for (int c = 0; c < C; ++c) {
        // Modular int32 arithmetic (in uint32 to stay defined), like the SIMD accumulators.
        uint32_t acc = a.bias ? static_cast<uint32_t>(a.bias[c]) : 0u;
        for (int kh = 0; kh < 3; ++kh) {
          const int ih = oh * a.stride - a.pad + kh;
          if (ih < 0 || ih >= a.H) continue;  // padding: x - in_zp = 0
          for (int kw = 0; kw < 3; ++kw) {
            const int iw = ow * a.stride - a.pad + kw;
            if (iw < 0 || iw >= a.W) continue;
            const int32_t x = in[((n * a.H + ih) * a.W + iw) * C + c];
            acc += static_cast<uint32_t>((x - a.in_zp) * a.weight[(kh * 3 + kw) * C + c]);
          }
        }
        o[c] =
            static_cast<uint8_t>(requantize(static_cast<int32_t>(acc), a.requant[c], a.out_zp, a.out_qmin, a.out_qmax));
      }
    }
  }
}

}  // namespace qforge::quant

// The scalar reference Quantize (float NCHW -> u8 NHWC).
#include "quant/kernels/kernels.h"

namespace qforge::quant {

// in (N,C,HW) float -> out (N,HW,C) u8
void quantize__ref(uint8_t* out, const float* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end) {
  for (int64_t q = pix_begin; q < pix_end; ++q) {
    const int64_t n = q / p.HW, hw = q % p.HW;
    for (int c = 0; c < p.C; ++c)
      out[q * p.C + c] =
          static_cast<uint8_t>(quantize_val(in[(n * p.C + c) * p.HW + hw], p.inv_scale, p.zp, p.qmin, p.qmax));
  }
}

}  // namespace qforge::quant

// The scalar reference Dequantize (u8 NHWC -> float NCHW).
#include "quant/kernels/kernels.h"

namespace qforge::quant {

// in (N,HW,C) u8 -> out (N,C,HW) float
void dequantize__ref(float* out, const uint8_t* in, const QuantizeParams& p, int64_t pix_begin, int64_t pix_end) {
  for (int64_t q = pix_begin; q < pix_end; ++q) {
    const int64_t n = q / p.HW, hw = q % p.HW;
    for (int c = 0; c < p.C; ++c) out[(n * p.C + c) * p.HW + hw] = dequantize_val(in[q * p.C + c], p.scale, p.zp);
  }
}

}  // namespace qforge::quant

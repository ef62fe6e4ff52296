// The scalar reference global average pooling, integer only.
#include "quant/kernels/kernels.h"

namespace qforge::quant {

// in (N,H,W,C) -> out (N,C)
void qglobal_avgpool__ref(uint8_t* out, const uint8_t* in, const QGlobalAvgPoolParams& p, int64_t n_begin,
                          int64_t n_end) {
  const int64_t hw = int64_t(p.H) * p.W;
  for (int64_t n = n_begin; n < n_end; ++n) {
    for (int c = 0; c < p.C; ++c) {
      int32_t sum = 0;  // H*W*255 < 2^31: the driver checks H*W < 2^23
      const uint8_t* x = in + n * hw * p.C + c;
      for (int64_t i = 0; i < hw; ++i) sum += x[i * p.C];
      const int32_t acc = (sum - static_cast<int32_t>(hw) * p.in_zp) * (int32_t{1} << p.pre_shift);
      out[n * p.C + c] = static_cast<uint8_t>(requantize(acc, p.multiplier, p.out_zp, p.out_qmin, p.out_qmax));
    }
  }
}

}  // namespace qforge::quant

// The scalar reference add: 16-bit fixed-point weights, one rounding (see QAddParams).
#include "quant/kernels/kernels.h"

namespace qforge::quant {

// a (n), b (n) -> out (n)
void qadd__ref(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p) {
  const int32_t half = int32_t{1} << (p.shift - 1);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t acc = (a[i] - p.a_zp) * p.a_mul + (b[i] - p.b_zp) * p.b_mul;
    int32_t v = ((acc + half) >> p.shift) + p.out_zp;
    v = v < p.out_qmin ? p.out_qmin : v;
    v = v > p.out_qmax ? p.out_qmax : v;
    out[i] = static_cast<uint8_t>(v);
  }
}

}  // namespace qforge::quant

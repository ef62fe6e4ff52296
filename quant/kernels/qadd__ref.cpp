// The scalar reference add (TFLite's integer scheme).
#include "quant/kernels/kernels.h"

namespace qforge::quant {

// a (n), b (n) -> out (n)
void qadd__ref(uint8_t* out, const uint8_t* a, const uint8_t* b, int64_t n, const QAddParams& p) {
  for (int64_t i = 0; i < n; ++i) {
    // |x - zp| <= 255, so the left shift by 20 stays below 2^28.
    const int32_t sa = multiply_by_quantized_multiplier((a[i] - p.a_zp) * (1 << p.left_shift), p.a_multiplier);
    const int32_t sb = multiply_by_quantized_multiplier((b[i] - p.b_zp) * (1 << p.left_shift), p.b_multiplier);
    out[i] = static_cast<uint8_t>(requantize(sa + sb, p.out_multiplier, p.out_zp, p.out_qmin, p.out_qmax));
  }
}

}  // namespace qforge::quant

// The direct few-channel convolution's definition of the bits (kernels.h): each output one chain
// of fused multiply-adds over the taps, in order, from zero.
#include <cmath>

#include "core/kernels/kernels.h"

namespace qforge {

void conv_taps_f32__ref(int oc, int n, int taps, const float* x, const int64_t* off, const float* w, float* out,
                        int64_t ldo) {
  for (int o = 0; o < oc; ++o)
    for (int p = 0; p < n; ++p) {
      float acc = 0.f;
      for (int t = 0; t < taps; ++t) acc = std::fma(w[static_cast<int64_t>(t) * oc + o], x[off[t] + p], acc);
      out[o * ldo + p] = acc;
    }
}

}  // namespace qforge

// The float GEMM leaf's definition of the bits: each element one chain of
// fused multiply-adds over k, in order, from zero; then, with rows, finished as
// its row's channel.
#include <cmath>

#include "core/kernels/kernels.h"

namespace qforge {

void gemm_f32__ref(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                   const ChannelFinish* rows) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float acc = 0.f;
      for (int p = 0; p < k; ++p) acc = std::fma(a[i * lda + p], b[p * ldb + j], acc);
      if (rows && rows->relu) {  // the separate pass's clamp itself
        bias_clamp__ref(&acc, &acc, 1, rows->bias ? rows->bias[i] : 0.f, rows->hi);
      } else if (rows && rows->bias) {
        acc += rows->bias[i];
      }
      c[i * ldc + j] = acc;
    }
}

}  // namespace qforge

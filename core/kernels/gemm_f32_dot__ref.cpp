// The depth-vector float GEMM leaf's definition of the bits (kernels.h): 16 chains of fused
// multiply-adds over k per element, then their pairwise sum.
#include <cmath>

#include "core/kernels/kernels.h"

namespace qforge {

void gemm_f32_dot__ref(int m, int n, int k, const float* a, int64_t lda, const float* bt, int64_t ldbt, float* c,
                       int64_t ldc) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float s[16] = {};
      for (int p = 0; p < k; ++p) s[p % 16] = std::fma(a[i * lda + p], bt[j * ldbt + p], s[p % 16]);
      for (int h = 8; h >= 1; h /= 2)
        for (int l = 0; l < h; ++l) s[l] = s[l] + s[l + h];
      c[i * ldc + j] = s[0];
    }
}

}  // namespace qforge

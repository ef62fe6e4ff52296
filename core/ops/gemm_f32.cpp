#include "core/ops/gemm_f32.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/threads.h"

namespace qforge {

void gemm_f32_ref(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                  int64_t ldc) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float acc = 0.f;
      for (int p = 0; p < k; ++p) acc = std::fma(a[i * lda + p], b[p * ldb + j], acc);
      c[i * ldc + j] = acc;
    }
}

GemmF32Kernel gemm_f32_choose(const char* qforge_gemm) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const std::string v = qforge_gemm ? qforge_gemm : "";
  if (v.empty()) return avx512 ? gemm_f32_6x64__avx512 : nullptr;
  if (v == "openblas") return nullptr;
  if (v == "avx512") {
    QF_CHECK(avx512, "QFORGE_GEMM=" + v + ": this CPU does not support it");
    return gemm_f32_6x64__avx512;
  }
  throw Error("QFORGE_GEMM=" + v + ": unknown float GEMM (expected openblas or avx512)");
}

GemmF32Kernel gemm_f32_kernel() {
  static const GemmF32Kernel k = gemm_f32_choose(std::getenv("QFORGE_GEMM"));
  return k;
}

const char* gemm_f32_name(GemmF32Kernel kernel) { return kernel == gemm_f32_6x64__avx512 ? "avx512" : "openblas"; }

// Blocks of 24 rows (four tiles): enough pieces for two threads to share even
// the 256-row, 196-column products. Blocks of columns narrow enough that
// their k rows of B (at most 512 KB) stay in L2 while the blocks of rows,
// taken one after another, pass over them.
void gemm_f32(GemmF32Kernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* c, int64_t ldc) {
  constexpr int kBlockRows = 24;
  const int kBlockCols = std::clamp((128 * 1024 / std::max(k, 1)) / 64 * 64, 64, 256);
  const int64_t mb = (m + kBlockRows - 1) / kBlockRows, nb = (n + kBlockCols - 1) / kBlockCols;
  parallel_pieces(mb * nb, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const int i = static_cast<int>(p % mb) * kBlockRows, j = static_cast<int>(p / mb) * kBlockCols;
      kernel(std::min(kBlockRows, m - i), std::min(kBlockCols, n - j), k, a + i * lda, lda, b + j, ldb, c + i * ldc + j,
             ldc);
    }
  });
}

}  // namespace qforge

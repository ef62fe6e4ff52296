#include "core/blas.h"

#include <cblas.h>

#include <algorithm>

#include "core/ops/gemm_f32.h"
#include "core/threads.h"

namespace qforge {

static void sgemm1(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                   const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha,
              a, lda, b, ldb, beta, c, ldc);
}

// OpenBLAS runs single-threaded (its spinning workers would fight the pool for
// the cores); large products are split into column or row panels over the pool.
// Which kernel a plain product C(m,n) = A B (sgemm's no transposes, alpha 1, beta 0) runs:
// qforge's kernels where they apply and B is at most 8 MB: beyond, reading B in place (rows many
// pages apart) falls behind OpenBLAS, which packs it (measured 0.85x at m 512, k 2304, n 1808).
enum class GemmRoute { tile, dot, openblas };  // qforge's 6x64 tile, its depth-vector kernel, OpenBLAS
static GemmRoute sgemm_route(int m, int n, int k) {
  if (!gemm_f32_kernel() || k <= 0 || static_cast<int64_t>(k) * n > (int64_t{2} << 20)) return GemmRoute::openblas;
  return gemm_f32_dot_kernel() && gemm_f32_dot_pays(m, n, k) ? GemmRoute::dot : GemmRoute::tile;
}

// C = A B by qforge's kernels, finished block by block (finish may be null), where sgemm_route
// picks them. False where it picks OpenBLAS.
static bool own_gemm(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
                     const GemmFinish* finish) {
  switch (sgemm_route(m, n, k)) {
    case GemmRoute::openblas:
      return false;
    case GemmRoute::dot:
      gemm_f32_dot(gemm_f32_dot_kernel(), m, n, k, a, lda, b, ldb, c, ldc, finish);
      return true;
    case GemmRoute::tile:
      gemm_f32(gemm_f32_kernel(), m, n, k, a, lda, b, ldb, c, ldc, finish);
      return true;
  }
  return false;
}

void sgemm_finished(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
                    const GemmFinish& finish) {
  if (m == 0 || n == 0) return;
  if (own_gemm(m, n, k, a, lda, b, ldb, c, ldc, &finish)) return;
  sgemm(false, false, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, ldc);
  parallel_for(m, 16, [&](int64_t i, int64_t e) { finish(static_cast<int>(i), static_cast<int>(e - i), 0, n); });
}

void sgemm_rows_finished(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
                         const ChannelFinish& rows, const GemmFinish& pass) {
  if (m == 0 || n == 0) return;
  if (sgemm_route(m, n, k) == GemmRoute::tile)
    return gemm_f32(gemm_f32_kernel(), m, n, k, a, lda, b, ldb, c, ldc, nullptr, &rows);
  sgemm_finished(m, n, k, a, lda, b, ldb, c, ldc, pass);
}

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
           int ldb, float beta, float* c, int ldc) {
  if (m == 0 || n == 0) return;
  if (!trans_a && !trans_b && alpha == 1.f && beta == 0.f && own_gemm(m, n, k, a, lda, b, ldb, c, ldc, nullptr)) return;
  if (m == 1 && !trans_a && trans_b && k > 0) {
    // One row times B^T (a linear layer at batch 1): matrix-vector products over blocks of B's rows
    // on the pool, B read once in place. sgemm packs all of B first, serially below 4 MFLOP:
    // MobileNetV2's 1280x1000 classifier took 0.52 ms, now 0.09-0.11 (AMD EPYC Zen 4, 2 threads).
    parallel_for(n, 64, [&](int64_t j, int64_t e) {
      float* y = c + j;
      if (beta == 0.f) std::fill(y, y + (e - j), 0.f);  // as sgemm: C's old values unread, NaN or not
      cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(e - j), k, alpha, b + j * ldb, ldb, a, 1,
                  beta == 0.f ? 1.f : beta, y, 1);
    });
    return;
  }
  const int t = num_threads();
  const double flops = 2.0 * m * n * k;
  if (t <= 1 || flops < 4e6) return sgemm1(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (n >= m) {
    // Column panels, multiples of 64 wide so the kernels' tiles stay whole.
    int64_t blocks = (n + 63) / 64;
    parallel_for(blocks, 1, [&](int64_t bb, int64_t be) {
      int j0 = static_cast<int>(bb * 64), j1 = std::min<int>(n, static_cast<int>(be * 64));
      const float* bp = trans_b ? b + static_cast<int64_t>(j0) * ldb : b + j0;
      sgemm1(trans_a, trans_b, m, j1 - j0, k, alpha, a, lda, bp, ldb, beta, c + j0, ldc);
    });
  } else {
    int64_t blocks = (m + 15) / 16;
    parallel_for(blocks, 1, [&](int64_t bb, int64_t be) {
      int i0 = static_cast<int>(bb * 16), i1 = std::min<int>(m, static_cast<int>(be * 16));
      const float* ap = trans_a ? a + i0 : a + static_cast<int64_t>(i0) * lda;
      sgemm1(trans_a, trans_b, i1 - i0, n, k, alpha, ap, lda, b, ldb, beta, c + static_cast<int64_t>(i0) * ldc, ldc);
    });
  }
}

std::string blas_core_name() { return openblas_get_corename(); }

}  // namespace qforge

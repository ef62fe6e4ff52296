// The BLAS wrapper: row-major sgemm on raw pointers, OpenBLAS underneath.
#pragma once
#include <functional>
#include <string>

#include "core/kernels/kernels.h"  // ChannelFinish

namespace qforge {

// C(m,n) = alpha * op(A) * op(B) + beta * C, row-major; op(X) = X or X^T.
// Plain products C = A B (no transposes, alpha 1, beta 0), the convolutions'
// forward ones, run qforge's float GEMM (core/ops/gemm_f32.h) where it applies.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
           int ldb, float beta, float* c, int ldc);

// Called on blocks of C once their sums are complete: rows [i0, i0 + rows), columns [j0, j0 + cols).
using GemmFinish = std::function<void(int i0, int rows, int j0, int cols)>;

// C = A B as sgemm, then finish on every element of C once (a convolution's bias and activation):
// with qforge's GEMM, block by block by the thread that summed the block, while it is in the cache;
// else over C's rows on the pool's threads after the product.
void sgemm_finished(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
                    const GemmFinish& finish);

// The same product with row i of C finished as channel i of rows (kernels.h: ChannelFinish), in the
// stores of qforge's 6x64 tile where it runs the product; elsewhere (OpenBLAS, the depth-vector
// kernel) by sgemm_finished with pass, which must give the same bits (the separate epilogue).
void sgemm_rows_finished(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
                         const ChannelFinish& rows, const GemmFinish& pass);

// What OpenBLAS runs on ("SkylakeX", "Haswell", ...).
std::string blas_core_name();

}  // namespace qforge

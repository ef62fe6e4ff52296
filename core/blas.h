// The BLAS wrapper: row-major sgemm on raw pointers, OpenBLAS underneath.
#pragma once
#include <string>

namespace qforge {

// C(m,n) = alpha * op(A) * op(B) + beta * C, row-major; op(X) = X or X^T.
// Plain products C = A B (no transposes, alpha 1, beta 0), the convolutions'
// forward ones, run qforge's float GEMM (core/ops/gemm_f32.h) where it applies.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
           int ldb, float beta, float* c, int ldc);

// What OpenBLAS runs on ("SkylakeX", "Haswell", ...).
std::string blas_core_name();

}  // namespace qforge

// Float GEMM for convolutions at small batch: C(m,n) = A(m,k) B(k,n), row-major,
// A the weights (m output channels), B the im2col columns. OpenBLAS 0.3.21
// reaches about 45% of this CPU's peak on these shapes (m 64-512, n 49-784,
// k 576-4608): it packs A and B on every call and its tiles fit n = 49 badly.
// This kernel reads both in place: a tile of 6 rows by 64 columns, each
// k-step one row of B (four vectors) and six broadcasts of A.
//
// Every element of C is one chain of fused multiply-adds over k, in order,
// starting from zero: the reference and each instruction set give the same bits.
#pragma once
#include <cstdint>

namespace qforge {

// A leaf: one block of C on the calling thread, no allocation.
using GemmF32Kernel = void (*)(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb,
                               float* c, int64_t ldc);

void gemm_f32_ref(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                  int64_t ldc);
void gemm_f32_6x64__avx512(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                           int64_t ldc);

// The kernel this CPU runs, or nullptr where there is none better than
// OpenBLAS (CPUs without AVX-512).
GemmF32Kernel gemm_f32_kernel();

// C = A B on the pool's threads, in blocks of rows and columns, with `kernel`.
void gemm_f32(GemmF32Kernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* c, int64_t ldc);

}  // namespace qforge

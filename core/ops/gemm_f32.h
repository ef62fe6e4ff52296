// Float GEMM for convolutions at small batch: C(m,n) = A(m,k) B(k,n), row-major,
// A the weights (m output channels), B the im2col columns. OpenBLAS 0.3.21
// reaches about 45% of this CPU's peak on these shapes (m 64-512, n 49-784,
// k 576-4608): it packs A and B on every call and its tiles fit n = 49 badly.
// These kernels read both in place: a tile of 6 rows by 64 columns (AVX-512)
// or 16 (AVX2), each k-step one row of B and six broadcasts of A.
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

// The kernel this CPU runs, or nullptr where there is none (then OpenBLAS
// runs: on AVX2 a 6x16 kernel of this kind was 0.7-1.0x as fast as OpenBLAS's
// Haswell kernels). QFORGE_GEMM=openblas|avx512 forces a choice (an Error if
// unknown or if the CPU lacks AVX-512).
GemmF32Kernel gemm_f32_kernel();
GemmF32Kernel gemm_f32_choose(const char* qforge_gemm);  // what the variable's value selects; null = unset
const char* gemm_f32_name(GemmF32Kernel kernel);          // "avx512" or "openblas"

// C = A B on the pool's threads, in blocks of rows and columns, with `kernel`.
void gemm_f32(GemmF32Kernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* c, int64_t ldc);

}  // namespace qforge

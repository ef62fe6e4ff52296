// Float GEMM for the convolutions' forward products: C(m,n) = A(m,k) B(k,n),
// row-major; A the weights (m output channels), B the im2col columns or
// Winograd's transformed tiles. It reads both operands in place (OpenBLAS
// packs both on every call): a tile of 6 rows by 64 columns, each k-step one
// row of B (four vectors) and six broadcasts of A. On a Zen 5 it matched
// OpenBLAS's SkylakeX kernels on ResNet18's large batch-1 products (1.0-1.1x)
// and beat them on the small ones (1.2x at 64x784x64, where OpenBLAS runs its
// small-matrix kernel).
//
// Every element of C is one chain of fused multiply-adds over k, in order,
// starting from zero: the reference and each instruction set give the same bits.
#pragma once
#include <cstdint>

namespace qforge {

// A leaf: one block of C on the calling thread, no allocation.
using GemmF32Kernel = void (*)(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                               int64_t ldc);

void gemm_f32_ref(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc);
void gemm_f32_6x64__avx512(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                           int64_t ldc);

// The kernel this CPU runs, or nullptr where there is none (then OpenBLAS
// runs: on AVX2 a 6x16 kernel of this kind was 0.7-1.0x as fast as OpenBLAS's
// Haswell kernels). QFORGE_GEMM=openblas|avx512 forces a choice (an Error if
// unknown or if the CPU lacks AVX-512).
GemmF32Kernel gemm_f32_kernel();
GemmF32Kernel gemm_f32_choose(const char* qforge_gemm);  // what the variable's value selects; null = unset
const char* gemm_f32_name(GemmF32Kernel kernel);         // "avx512" or "openblas"

// C = A B on the pool's threads, in blocks of rows and columns, with `kernel`.
void gemm_f32(GemmF32Kernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* c, int64_t ldc);

}  // namespace qforge

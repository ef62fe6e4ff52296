// core's float kernels. The contract is quant/kernels/'s: one kernel per file,
// named for its types, tile and instruction set (name__ref, name__avx2,
// name__avx512), compiled with that level's flags (the top CMakeLists.txt's
// qforge_isa_flags), chosen only by core/kernels/dispatch.cpp. The __ref
// kernel defines the bits; each SIMD kernel gives the same bits (tests
// compare them level by level).
#pragma once
#include <cstdint>

namespace qforge {

// Float GEMM leaf: C(m,n) = A(m,k) B(k,n), row-major, one block of C on the
// calling thread, no allocation. Every element of C is one chain of fused
// multiply-adds over k, in order, starting from zero.
using GemmF32Kernel = void (*)(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                               int64_t ldc);

void gemm_f32__ref(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                   int64_t ldc);
// Tiles of 6 rows by 64 columns (gemm_f32_6x64__avx512.cpp).
void gemm_f32_6x64__avx512(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                           int64_t ldc);

}  // namespace qforge

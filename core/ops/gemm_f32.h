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

#include "core/blas.h"  // GemmFinish
#include "core/cpu.h"
#include "core/kernels/kernels.h"  // GemmF32Kernel, gemm_f32__ref, gemm_f32_6x64__avx512
#include "core/options.h"

namespace qforge {

// The kernel sgemm runs, or nullptr for OpenBLAS: the option gemm (QFORGE_GEMM)
// auto takes the selected level's table (core/kernels/dispatch.h: the 6x64
// AVX-512 kernel at avx512 and above, OpenBLAS below: there a 6x16 kernel of
// this kind was 0.7-1.0x as fast as OpenBLAS's Haswell kernels).
GemmF32Kernel gemm_f32_kernel();
// What a choice selects at a level (throws if avx512 is asked for below level avx512). Exposed for tests.
GemmF32Kernel gemm_f32_choose(GemmChoice choice, Isa isa);
const char* gemm_f32_name(GemmF32Kernel kernel);  // the kernel's symbol, or "openblas"

// C = A B on the pool's threads, in blocks of rows and columns, with `kernel`; with rows, row i
// finished as channel i by the kernel's stores (kernels.h); finish (if not null) on each block right
// after it (core/blas.h).
void gemm_f32(GemmF32Kernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* c, int64_t ldc, const GemmFinish* finish = nullptr, const ChannelFinish* rows = nullptr);

// B packed in panels of 64 columns for gemm_f32_packed: panel j holds columns [64 j, 64 j + 64)
// as k rows of 64 floats (past n, zeros), so that a tile's k-block of B is one contiguous run
// (32 KB in L1) instead of rows ldb apart, which can share too few cache sets (at ldb 512, a
// 128-row block of rows 2 KB apart maps into 8 of the L1's 64 sets).
inline int64_t packed_b_floats(int n, int k) { return int64_t{(n + 63) / 64} * k * 64; }
// bp (packed_b_floats) from the row-major b(k, n), on the pool's threads.
void pack_b(float* bp, const float* b, int n, int k, int64_t ldb);

// C = A B with B packed (pack_b), on the pool's threads: panels of B split over the threads where
// there are at least two per thread (each thread reads its panels once, all of A from its L2),
// else blocks of rows of A (96 rows each), each through all the panels. The same bits as
// gemm_f32 with the same kernel, however the work is split.
void gemm_f32_packed(GemmF32Kernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* bp, float* c,
                     int64_t ldc);

// The depth-vector GEMM (kernels.h) where it pays: products with at most 64 columns and k of at
// least 1024 (ResNet18's 7x7 layers at batch 1, k 2304 and 4608: on an AMD EPYC Zen 4, 2 threads,
// 1.12-1.18x the 6x64 tile's speed, which fills 49 of its 64 lanes there; at 196 columns the tile
// was faster). Null below avx512 and where QFORGE_GEMM asks for OpenBLAS.
GemmF32DotKernel gemm_f32_dot_kernel();
bool gemm_f32_dot_pays(int m, int n, int k);


// C = A B with `kernel`: B turned to (n, k) in scratch, then blocks of rows of C on the pool's threads.
void gemm_f32_dot(GemmF32DotKernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc, const GemmFinish* finish = nullptr);

}  // namespace qforge

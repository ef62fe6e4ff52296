#include "core/ops/gemm_f32.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/ops/scratch.h"
#include "core/threads.h"

namespace qforge {

GemmF32Kernel gemm_f32_choose(GemmChoice choice, Isa isa) {
  switch (choice) {
    case GemmChoice::automatic:
      return float_kernels_for(isa).gemm_f32;
    case GemmChoice::openblas:
      return nullptr;
    case GemmChoice::avx512:
      QF_CHECK(isa >= Isa::avx512,
               std::string("QFORGE_GEMM=avx512: needs ISA level avx512, selected ") + isa_name(isa));
      return gemm_f32_6x64__avx512;
  }
  return nullptr;
}

GemmF32Kernel gemm_f32_kernel() {
  static const GemmF32Kernel k = gemm_f32_choose(options().gemm, selected_isa());
  return k;
}

const char* gemm_f32_name(GemmF32Kernel kernel) {
  if (kernel == gemm_f32_6x64__avx512) return "gemm_f32_6x64__avx512";
  if (kernel == gemm_f32__ref) return "gemm_f32__ref";
  return "openblas";
}

// Blocks of 24 rows (four tiles): enough pieces for two threads to share even
// the 256-row, 196-column products. Blocks of columns narrow enough that
// their k rows of B (at most 512 KB) stay in L2 while the blocks of rows,
// taken one after another, pass over them.
void gemm_f32(GemmF32Kernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float* c, int64_t ldc, const GemmFinish* finish, const ChannelFinish* rows) {
  constexpr int kBlockRows = 24;
  const int kBlockCols = std::clamp((128 * 1024 / std::max(k, 1)) / 64 * 64, 64, 256);
  const int64_t mb = (m + kBlockRows - 1) / kBlockRows, nb = (n + kBlockCols - 1) / kBlockCols;
  parallel_pieces(mb * nb, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const int i = static_cast<int>(p % mb) * kBlockRows, j = static_cast<int>(p / mb) * kBlockCols;
      const int block_rows = std::min(kBlockRows, m - i), cols = std::min(kBlockCols, n - j);
      const ChannelFinish fin = rows ? rows->from(i) : ChannelFinish{};
      kernel(block_rows, cols, k, a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, rows ? &fin : nullptr);
      if (finish) (*finish)(i, block_rows, j, cols);
    }
  });
}

void pack_b(float* bp, const float* b, int n, int k, int64_t ldb) {
  const int panels = (n + 63) / 64;
  parallel_pieces(panels, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t j = pb; j < pe; ++j) {
      float* dst = bp + j * k * 64;
      const int cols = std::min(64, n - static_cast<int>(j) * 64);
      for (int kk = 0; kk < k; ++kk, dst += 64) {
        std::copy_n(b + kk * ldb + j * 64, cols, dst);
        std::fill(dst + cols, dst + 64, 0.f);
      }
    }
  });
}

void gemm_f32_packed(GemmF32Kernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* bp, float* c,
                     int64_t ldc) {
  const int panels = (n + 63) / 64;
  if (k <= 0) {  // as the reference: zeros (the tile kernel writes nothing without a k-block)
    for (int i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.f);
    return;
  }
  auto run = [&](int i0, int i1, int j0, int j1) {
    for (int j = j0; j < j1; ++j)
      kernel(i1 - i0, std::min(64, n - 64 * j), k, a + i0 * lda, lda, bp + int64_t{j} * k * 64, 64,
             c + i0 * ldc + 64 * j, ldc, nullptr);
  };
  if (panels >= 2 * num_threads()) {
    parallel_pieces(panels, 1, [&](int64_t pb, int64_t pe) { run(0, m, static_cast<int>(pb), static_cast<int>(pe)); });
    return;
  }
  constexpr int kBlockRows = 96;  // 16 of the kernel's 6-row tiles
  parallel_pieces((m + kBlockRows - 1) / kBlockRows, 1, [&](int64_t pb, int64_t pe) {
    run(static_cast<int>(pb) * kBlockRows, std::min(m, static_cast<int>(pe) * kBlockRows), 0, panels);
  });
}

GemmF32DotKernel gemm_f32_dot_kernel() {
  static const GemmF32DotKernel k =
      options().gemm == GemmChoice::openblas ? nullptr : float_kernels_for(selected_isa()).gemm_f32_dot;
  return k;
}

bool gemm_f32_dot_pays(int m, int n, int k) { return m > 0 && n > 0 && n <= 64 && k >= 1024; }

// dst = src turned: dst[j * ldd + i] = src[i * lds + j] for the rows x cols of src.
static void transpose_floats(float* dst, int64_t ldd, const float* src, int64_t lds, int rows, int cols) {
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i) dst[j * ldd + i] = src[i * lds + j];
}

void gemm_f32_dot(GemmF32DotKernel kernel, int m, int n, int k, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc, const GemmFinish* finish) {
  auto bt = scratch_floats(static_cast<size_t>(n) * k);  // fully written before it is read
  // Blocks of 16 rows of B: their n columns sit in 16 rows' cache lines while they are turned.
  parallel_pieces((k + 15) / 16, 8, [&](int64_t pb, int64_t pe) {
    for (int64_t q = pb; q < pe; ++q) {
      const int p0 = static_cast<int>(q) * 16, p1 = std::min(k, p0 + 16);
      transpose_floats(bt.get() + p0, k, b + p0 * ldb, ldb, p1 - p0, n);
    }
  });
  constexpr int kBlockRows = 16;  // four of the kernel's 4-row tiles
  parallel_pieces((m + kBlockRows - 1) / kBlockRows, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t q = pb; q < pe; ++q) {
      const int i = static_cast<int>(q) * kBlockRows;
      const int rows = std::min(kBlockRows, m - i);
      kernel(rows, n, k, a + i * lda, lda, bt.get(), k, c + i * ldc, ldc);
      if (finish) (*finish)(i, rows, 0, n);
    }
  });
}

}  // namespace qforge

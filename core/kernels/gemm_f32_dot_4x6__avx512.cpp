// The AVX-512 depth-vector float GEMM leaf (kernels.h): tiles of 4 rows of A by 6 rows of Bt,
// each of the 24 accumulators 16 lanes of partial sums along k, summed pairwise at the end.
// Per 16 steps of k: 10 loads and 24 fused multiply-adds, no broadcasts, no lanes wasted on the
// few columns (positions) of a deep layer's small maps, where the 6x64 tile fills 49 of 64 lanes.
#include <immintrin.h>

#include "core/kernels/kernels.h"

namespace qforge {
namespace {

constexpr int kRows = 4, kCols = 6;

typedef float V16 __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));

// Lanes l and l + 8, then l and l + 4, l + 2, l + 1: the reference's order. (GCC's generic
// vectors: its extract intrinsics warn of an uninitialised operand, GCC bug 105593.)
inline float lane_sum(__m512 x) {
  const V16 v = x;
  const V8 h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
               __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const V4 q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
  return (q[0] + q[2]) + (q[1] + q[3]);
}

// c(R, P) = a(R, k) bt(P, k)^T. The last partial step leaves the lanes past k untouched (a
// merge-masked FMA): adding 0 * 0 would turn a lane's -0 into +0, unlike the reference.
template <int R, int P>
void tile(int k, const float* a, int64_t lda, const float* bt, int64_t ldb, float* c, int64_t ldc) {
  __m512 acc[R][P];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int j = 0; j < P; ++j) acc[r][j] = _mm512_setzero_ps();
  int p = 0;
  for (; p + 16 <= k; p += 16) {
    __m512 av[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) av[r] = _mm512_loadu_ps(a + r * lda + p);
#pragma GCC unroll 6
    for (int j = 0; j < P; ++j) {
      const __m512 bv = _mm512_loadu_ps(bt + j * ldb + p);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[r][j] = _mm512_fmadd_ps(av[r], bv, acc[r][j]);
    }
  }
  if (p < k) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - p)) - 1);
    __m512 av[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) av[r] = _mm512_maskz_loadu_ps(m, a + r * lda + p);
#pragma GCC unroll 6
    for (int j = 0; j < P; ++j) {
      const __m512 bv = _mm512_maskz_loadu_ps(m, bt + j * ldb + p);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[r][j] = _mm512_mask3_fmadd_ps(av[r], bv, acc[r][j], m);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
    for (int j = 0; j < P; ++j) c[r * ldc + j] = lane_sum(acc[r][j]);
}

using TileFn = void (*)(int, const float*, int64_t, const float*, int64_t, float*, int64_t);

template <int R>
constexpr TileFn kByCols[kCols] = {tile<R, 1>, tile<R, 2>, tile<R, 3>, tile<R, 4>, tile<R, 5>, tile<R, 6>};
constexpr const TileFn* kTiles[kRows] = {kByCols<1>, kByCols<2>, kByCols<3>, kByCols<4>};

}  // namespace

void gemm_f32_dot_4x6__avx512(int m, int n, int k, const float* a, int64_t lda, const float* bt, int64_t ldbt, float* c,
                              int64_t ldc) {
  for (int i = 0; i < m; i += kRows) {
    const int r = m - i < kRows ? m - i : kRows;
    for (int j = 0; j < n; j += kCols) {
      const int w = n - j < kCols ? n - j : kCols;
      kTiles[r - 1][w - 1](k, a + i * lda, lda, bt + j * ldbt, ldbt, c + i * ldc + j, ldc);
    }
  }
}

}  // namespace qforge

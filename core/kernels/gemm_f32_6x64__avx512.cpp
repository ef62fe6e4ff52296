// The AVX-512 float GEMM leaf: tiles of up to 6 rows by 64 columns (24
// accumulators), k in blocks that keep a tile's rows of B in L1; the last
// vector of a row is masked, so n needs no padding.
#include <immintrin.h>

#include <algorithm>

#include "core/ops/gemm_f32.h"

namespace qforge {
namespace {

constexpr int kRows = 6, kVecs = 4, kCols = 16 * kVecs;
constexpr int kDepth = 128;  // k-steps per pass: 128 rows of 64 floats of B are 32 KB

inline __mmask16 lanes(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// c(R, 16*V) (+)= a(R, kc) b(kc, 16*V); the last vector has `last` lanes.
template <int R, int V>
void tile(int kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, __mmask16 last,
          bool first) {
  __m512 acc[R][V];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[r][v] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(v == V - 1 ? last : 0xFFFF, c + r * ldc + 16 * v);
  for (int k = 0; k < kc; ++k) {
    __m512 bv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) bv[v] = _mm512_maskz_loadu_ps(v == V - 1 ? last : 0xFFFF, b + k * ldb + 16 * v);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, v == V - 1 ? last : 0xFFFF, acc[r][v]);
}

using TileFn = void (*)(int, const float*, int64_t, const float*, int64_t, float*, int64_t, __mmask16, bool);

template <int R>
constexpr TileFn kByVecs[kVecs] = {tile<R, 1>, tile<R, 2>, tile<R, 3>, tile<R, 4>};
constexpr const TileFn* kTiles[kRows] = {kByVecs<1>, kByVecs<2>, kByVecs<3>, kByVecs<4>, kByVecs<5>, kByVecs<6>};

}  // namespace

void gemm_f32_6x64__avx512(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                           int64_t ldc) {
  for (int k0 = 0; k0 < k; k0 += kDepth) {
    const int kc = std::min(kDepth, k - k0);
    for (int j = 0; j < n; j += kCols) {
      const int w = std::min(kCols, n - j), v = (w + 15) / 16;
      const __mmask16 last = lanes(w - 16 * (v - 1));
      for (int i = 0; i < m; i += kRows) {
        const int r = std::min(kRows, m - i);
        kTiles[r - 1][v - 1](kc, a + i * lda + k0, lda, b + k0 * ldb + j, ldb, c + i * ldc + j, ldc, last, k0 == 0);
      }
    }
  }
}

}  // namespace qforge

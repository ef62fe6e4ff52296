// The AVX-512 float GEMM leaf: tiles of up to 6 rows by 64 columns (24
// accumulators), k in blocks that keep a tile's rows of B in L1; the last
// vector of a row is masked, so n needs no padding. A finish (bias, clamp) is
// applied to the accumulators as the last k-block stores them.
#include <immintrin.h>

#include <algorithm>

#include "core/ops/gemm_f32.h"

namespace qforge {
namespace {

constexpr int kRows = 6, kVecs = 4, kCols = 16 * kVecs;
constexpr int kDepth = 128;  // k-steps per pass: 128 rows of 64 floats of B are 32 KB

inline __mmask16 lanes(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// Row r's finish (kernels.h: ChannelFinish) on a vector of its sums: gemm_f32__ref's selects.
struct RowFinish {
  const float* bias;  // per row, or null
  bool relu;
  __m512 hi;
  __m512 apply(__m512 v, int r) const {
    if (relu) {
      v = _mm512_add_ps(v, _mm512_set1_ps(bias ? bias[r] : 0.f));
      v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v);  // NaN, -0 to +0
      return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, hi, _CMP_LT_OQ), hi, v);           // v < hi ? v : hi
    }
    return bias ? _mm512_add_ps(v, _mm512_set1_ps(bias[r])) : v;
  }
};

// c(R, 16*V) (+)= a(R, kc) b(kc, 16*V); the last vector has `last` lanes; with fin (the last
// k-block), each row finished as it is stored.
template <int R, int V>
void tile(int kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, __mmask16 last,
          bool first, const RowFinish* fin) {
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
    for (int v = 0; v < V; ++v)
      _mm512_mask_storeu_ps(c + r * ldc + 16 * v, v == V - 1 ? last : 0xFFFF,
                            fin ? fin->apply(acc[r][v], r) : acc[r][v]);
}

using TileFn = void (*)(int, const float*, int64_t, const float*, int64_t, float*, int64_t, __mmask16, bool,
                        const RowFinish*);

template <int R>
constexpr TileFn kByVecs[kVecs] = {tile<R, 1>, tile<R, 2>, tile<R, 3>, tile<R, 4>};
constexpr const TileFn* kTiles[kRows] = {kByVecs<1>, kByVecs<2>, kByVecs<3>, kByVecs<4>, kByVecs<5>, kByVecs<6>};

}  // namespace

void gemm_f32_6x64__avx512(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                           int64_t ldc, const ChannelFinish* rows) {
  if (k <= 0) return gemm_f32__ref(m, n, k, a, lda, b, ldb, c, ldc, rows);  // no k-block: zeros, finished
  const bool finish = rows && rows->any();
  for (int k0 = 0; k0 < k; k0 += kDepth) {
    const int kc = std::min(kDepth, k - k0);
    const bool final = k0 + kc == k;
    for (int j = 0; j < n; j += kCols) {
      const int w = std::min(kCols, n - j), v = (w + 15) / 16;
      const __mmask16 last = lanes(w - 16 * (v - 1));
      for (int i = 0; i < m; i += kRows) {
        const int r = std::min(kRows, m - i);
        const RowFinish fin{finish && rows->bias ? rows->bias + i : nullptr, finish && rows->relu,
                            _mm512_set1_ps(finish ? rows->hi : 0.f)};
        kTiles[r - 1][v - 1](kc, a + i * lda + k0, lda, b + k0 * ldb + j, ldb, c + i * ldc + j, ldc, last, k0 == 0,
                             finish && final ? &fin : nullptr);
      }
    }
  }
}

}  // namespace qforge

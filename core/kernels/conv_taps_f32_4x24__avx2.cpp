// The AVX2 direct few-channel convolution (kernels.h): tiles of up to 4 output channels by 24
// outputs of a row (12 accumulators of the 16 registers); each tap one vector load of the row
// per 8 outputs and one broadcast weight per channel. The last vector of a row is stored masked;
// its idle lanes read the padded copy past the row and are dropped.
#include <immintrin.h>

#include <algorithm>

#include "core/kernels/kernels.h"

namespace qforge {
namespace {

constexpr int kChannels = 4, kVecs = 3, kOutputs = 8 * kVecs;

// Lanes [0, n) of a masked store (n <= 8).
inline __m256i lanes(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// out(R, 8*V) = sum over taps of w(t, R) x(t, 8*V); the last vector has the lanes of `last`.
template <int R, int V>
void tile(int taps, const float* x, const int64_t* off, const float* w, int ldw, float* out, int64_t ldo,
          __m256i last) {
  __m256 acc[R][V];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_ps();
  for (int t = 0; t < taps; ++t) {
    const float* xt = x + off[t];
    const float* wt = w + static_cast<int64_t>(t) * ldw;
    __m256 xv[V];
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) xv[v] = _mm256_loadu_ps(xt + 8 * v);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_broadcast_ss(wt + r);
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(wv, xv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < V - 1; ++v) _mm256_storeu_ps(out + r * ldo + 8 * v, acc[r][v]);
    _mm256_maskstore_ps(out + r * ldo + 8 * (V - 1), last, acc[r][V - 1]);
  }
}

using TileFn = void (*)(int, const float*, const int64_t*, const float*, int, float*, int64_t, __m256i);

template <int R>
constexpr TileFn kByVecs[kVecs] = {tile<R, 1>, tile<R, 2>, tile<R, 3>};
constexpr const TileFn* kTiles[kChannels] = {kByVecs<1>, kByVecs<2>, kByVecs<3>, kByVecs<4>};

}  // namespace

void conv_taps_f32_4x24__avx2(int oc, int n, int taps, const float* x, const int64_t* off, const float* w, float* out,
                              int64_t ldo) {
  // Each run of outputs through all the channels while its taps' rows are in L1.
  for (int p = 0; p < n; p += kOutputs) {
    const int len = std::min(kOutputs, n - p), v = (len + 7) / 8;
    const __m256i last = lanes(len - 8 * (v - 1));
    for (int o = 0; o < oc; o += kChannels) {
      const int r = std::min(kChannels, oc - o);
      kTiles[r - 1][v - 1](taps, x + p, off, w + o, oc, out + o * ldo + p, ldo, last);
    }
  }
}

}  // namespace qforge

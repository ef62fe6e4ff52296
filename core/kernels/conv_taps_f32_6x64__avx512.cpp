// The AVX-512 direct few-channel convolution (kernels.h): tiles of up to 6 output channels by 64
// outputs of a row (24 accumulators); each tap one vector load of the row per 16 outputs and one
// broadcast weight per channel. The last vector of a row is stored masked; its idle lanes read
// the padded copy past the row and are dropped.
#include <immintrin.h>

#include <algorithm>

#include "core/kernels/kernels.h"

namespace qforge {
namespace {

constexpr int kChannels = 6, kVecs = 4, kOutputs = 16 * kVecs;

inline __mmask16 lanes(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// out(R, 16*V) = sum over taps of w(t, R) x(t, 16*V); the last vector has `last` lanes.
template <int R, int V>
void tile(int taps, const float* x, const int64_t* off, const float* w, int ldw, float* out, int64_t ldo,
          __mmask16 last) {
  __m512 acc[R][V];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int t = 0; t < taps; ++t) {
    const float* xt = x + off[t];
    const float* wt = w + static_cast<int64_t>(t) * ldw;
    __m512 xv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) xv[v] = _mm512_loadu_ps(xt + 16 * v);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 wv = _mm512_set1_ps(wt[r]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(wv, xv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) _mm512_mask_storeu_ps(out + r * ldo + 16 * v, v == V - 1 ? last : 0xFFFF, acc[r][v]);
}

using TileFn = void (*)(int, const float*, const int64_t*, const float*, int, float*, int64_t, __mmask16);

template <int R>
constexpr TileFn kByVecs[kVecs] = {tile<R, 1>, tile<R, 2>, tile<R, 3>, tile<R, 4>};
constexpr const TileFn* kTiles[kChannels] = {kByVecs<1>, kByVecs<2>, kByVecs<3>, kByVecs<4>, kByVecs<5>, kByVecs<6>};

}  // namespace

void conv_taps_f32_6x64__avx512(int oc, int n, int taps, const float* x, const int64_t* off, const float* w, float* out,
                                int64_t ldo) {
  // Each run of outputs through all the channels while its taps' rows are in L1.
  for (int p = 0; p < n; p += kOutputs) {
    const int len = std::min(kOutputs, n - p), v = (len + 15) / 16;
    const __mmask16 last = lanes(len - 16 * (v - 1));
    for (int o = 0; o < oc; o += kChannels) {
      const int r = std::min(kChannels, oc - o);
      kTiles[r - 1][v - 1](taps, x + p, off, w + o, oc, out + o * ldo + p, ldo, last);
    }
  }
}

}  // namespace qforge

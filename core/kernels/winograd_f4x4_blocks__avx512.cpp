// The AVX-512 Winograd blocks: the tile runs 16 channels at once (winograd_f4x4_tiles.h), the
// layout passes by 16x16 transposes with masks for a row's last pixels, the filters 16 at once
// turned by transposes. The same bits as winograd_f4x4_blocks__ref.cpp.
#include <immintrin.h>

#include <algorithm>

#include "core/kernels/winograd_f4x4_tiles.h"

namespace qforge::winograd_detail {
namespace {

using V16 = Floats16;  // transpose16.h

inline __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// The 36 values of a block's cnt tiles (or filters) into their planes, xs apart: plain stores for a
// full block, masked ones for the last, shorter block of a row (on an AMD EPYC Zen 4 a masked store
// costs several plain ones: with them the final stores took a quarter of the input block's time).
inline void store_planes(float* v, int64_t xs, const V16* o, int cnt) {
  if (cnt == 16) {
    for (int xi = 0; xi < kXi; ++xi) _mm512_storeu_ps(v + xi * xs, o[xi]);
  } else {
    const __mmask16 lanes = tail_mask(cnt);
    for (int xi = 0; xi < kXi; ++xi) _mm512_mask_storeu_ps(v + xi * xs, lanes, o[xi]);
  }
}

typedef int I16 __attribute__((vector_size(64)));

// GCC's generic shuffle with a mask vector. Clang (the fuzz build, tests/fuzz) has no such builtin:
// there it is the same permutation as AVX-512's two- and one-source permutes.
#if defined(__clang__)
inline V16 shuffle(V16 a, V16 b, I16 m) { return (V16)_mm512_permutex2var_ps((__m512)a, (__m512i)m, (__m512)b); }
inline V16 shuffle(V16 a, I16 m) { return (V16)_mm512_permutexvar_ps((__m512i)m, (__m512)a); }
#define QF_SHUFFLE shuffle
#else
#define QF_SHUFFLE __builtin_shuffle
#endif

// The 16 filters' 9 elements loaded filter by filter (each filter's 9 floats are consecutive,
// reversed for the flipped filters of dX) and turned by a 16x16 transpose. Against 9 gathers, the block's share of a
// ResNet18 training step at 28x28 batch 128 (AMD EPYC Zen 4, perf, 2 threads) went from 0.119 to 0.109 of the GEMM
// tile's: it is bound by its stores of the 36 transformed planes.
void filter_block_avx512(float* u, const float* w, int64_t rs, int64_t ks, int es, int64_t us, int cols, int r, int k0,
                         int cnt) {
  // es is 1 or -1 (winograd_f4x4_blocks.h)
  const float* base = w + r * rs + k0 * ks;
  V16 g[16], o[kXi];
  const I16 reverse = {8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 10, 11, 12, 13, 14, 15};
  for (int t = 0; t < 16; ++t) {
    if (t >= cnt) {
      g[t] = V16{};
      continue;
    }
    const float* f = base + t * ks;
    const V16 x = _mm512_maskz_loadu_ps(0x1FF, es == 1 ? f : f - 8);
    g[t] = es == 1 ? x : QF_SHUFFLE(x, reverse);
  }
  transpose16(g);  // g[e] lane t: element e of filter t
  filter_2d(o, g);
  store_planes(u + static_cast<int64_t>(r) * cols + k0, us, o, cnt);
}

// The 16 filters' 9-element gradients turned by a 16x16 transpose to 9 per filter, added to the
// filters' 9 consecutive floats (old value first, as the portable loop adds). Against a gather
// and a scatter per element: 0.079 to 0.050 of the GEMM tile's share, as above.
void filter_adjoint_block_avx512(float* dw, const float* du, int64_t us, int c_n, int oc, int c0, int cnt) {
  const __mmask16 lanes = tail_mask(cnt);
  V16 d[kXi], h[16];
  for (int xi = 0; xi < kXi; ++xi)
    d[xi] = _mm512_maskz_loadu_ps(lanes, du + xi * us + static_cast<int64_t>(oc) * c_n + c0);
  filter_adjoint_2d(h, d);
  for (int e = 9; e < 16; ++e) h[e] = V16{};
  transpose16(h);  // h[t] lanes 0 .. 8: filter t's gradient
  float* g = dw + (static_cast<int64_t>(oc) * c_n + c0) * 9;
  for (int t = 0; t < cnt; ++t)
    _mm512_mask_storeu_ps(g + 9 * t, 0x1FF, V16(_mm512_maskz_loadu_ps(0x1FF, g + 9 * t)) + h[t]);
}

// The first n floats of 16 by masked moves.
struct MaskedMem {
  static void load(Floats16* v, const float* p, int n) { *v = _mm512_maskz_loadu_ps(tail_mask(n), p); }
  static void store(float* p, const Floats16* v, int n) {
    if (n == 16)
      _mm512_storeu_ps(p, *v);
    else
      _mm512_mask_storeu_ps(p, tail_mask(n), *v);
  }
};

}  // namespace

const BlockKernels winograd_f4x4_blocks__avx512 = {
    input_tiles<V16, 16>,     output_tiles<V16, 16>,     output_adjoint_tiles<V16, 16>,
    to_nhwc_vec<MaskedMem>,   from_nhwc_vec<MaskedMem>,  filter_block_avx512,
    filter_adjoint_block_avx512};

}  // namespace qforge::winograd_detail

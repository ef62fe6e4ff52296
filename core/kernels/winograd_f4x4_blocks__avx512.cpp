// The AVX-512 Winograd blocks: 16 tiles at once, patches read row by row with
// masks for the padding and turned by transposes, outputs turned to 16 values per tile and
// stored (or loaded, for the adjoint) row by row; the same bits as
// winograd_f4x4_blocks__ref.cpp.
#include <immintrin.h>

#include <algorithm>

#include "core/kernels/transpose16.h"
#include "core/kernels/winograd_f4x4_blocks.h"

namespace qforge::winograd_detail {
namespace {

typedef float V16 __attribute__((vector_size(64)));

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

// Each tile's 6x6 window read row by row with masked loads (zeros outside the plane) into 36
// consecutive floats, then turned to 16 tiles per value: floats 0-31 by two 16x16 transposes, 32-35
// by a 16x4 one (against a third 16x16 transpose of 32-47, of which 36-47 were unused: the block
// 211-220 ns against 189 in L1 on an AMD EPYC Zen 4). With 36 gathers of 16 floats instead, this
// block took 16% of a ResNet18 training step at 28x28 batch 128 on that Zen 4 (perf, 2 threads),
// 0.78 of the time in OpenBLAS's GEMM kernel; now 9%, 0.37.
void input_block_avx512(float* v, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0, int cnt) {
  // Plain stores (masked ones only for a row's last, shorter block): on the Zen 4 the masked
  // stores (a row's 6 floats into the window, the 36 planes' 16 lanes) took two thirds of this
  // block's time (perf). A row's load zeroes its lanes 6 and 7 (past the window), so its 8-float
  // store leaves zeros in the next row's first two floats, which that row's store then writes; the
  // last row's two fall on 36 and 37, unused.
  alignas(64) float win[16][48];
  for (int t = 0; t < 16; ++t) {
    if (t >= cnt) {
      _mm512_store_ps(win[t], _mm512_setzero_ps());
      _mm512_store_ps(win[t] + 16, _mm512_setzero_ps());
      _mm_store_ps(win[t] + 32, _mm_setzero_ps());
      continue;
    }
    const int row = tt.row[t0 + t] - 1, col = tt.col[t0 + t] - 1;  // the window's top-left
    const int lo = std::max(0, -col), hi = std::clamp(p.w - col, 0, 6);
    const __mmask8 cols = hi > lo ? static_cast<__mmask8>(((1u << hi) - 1) & ~((1u << lo) - 1)) : 0;
    const float* base = p.base + tt.img[t0 + t] * p.img_stride;
    for (int r = 0; r < 6; ++r) {
      const int y = row + r;
      const __m256 x = y >= 0 && y < p.h ? _mm256_maskz_loadu_ps(cols, base + static_cast<int64_t>(y) * p.w + col)
                                         : _mm256_setzero_ps();
      _mm256_storeu_ps(win[t] + 6 * r, x);
    }
  }
  V16 d[kXi], o[kXi];
  for (int g = 0; g < 2; ++g) {
    for (int t = 0; t < 16; ++t) d[16 * g + t] = _mm512_load_ps(win[t] + 16 * g);
    transpose16(d + 16 * g);
  }
  // Floats 32-35: z[q] lanes 4i .. 4i+3 are tile 4q+i's; the tiles of two z in lanes 0-7 and 8-15.
  V16 z[4];
  for (int q = 0; q < 4; ++q) {
    __m512 x = _mm512_castps128_ps512(_mm_load_ps(win[4 * q] + 32));
    x = _mm512_insertf32x4(x, _mm_load_ps(win[4 * q + 1] + 32), 1);
    x = _mm512_insertf32x4(x, _mm_load_ps(win[4 * q + 2] + 32), 2);
    z[q] = _mm512_insertf32x4(x, _mm_load_ps(win[4 * q + 3] + 32), 3);
  }
  const I16 even = {0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29};  // floats 32, 33
  const I16 odd = {2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31};  // floats 34, 35
  const I16 first = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const I16 second = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  const V16 a0 = QF_SHUFFLE(z[0], z[1], even), a1 = QF_SHUFFLE(z[0], z[1], odd);
  const V16 b0 = QF_SHUFFLE(z[2], z[3], even), b1 = QF_SHUFFLE(z[2], z[3], odd);
  d[32] = QF_SHUFFLE(a0, b0, first);
  d[33] = QF_SHUFFLE(a0, b0, second);
  d[34] = QF_SHUFFLE(a1, b1, first);
  d[35] = QF_SHUFFLE(a1, b1, second);
  input_2d(o, d);
  store_planes(v + t0, xs, o, cnt);
}


// Where tile t of a block puts its 4x4 outputs: the top-left element, and
// which rows and columns are inside the plane.
struct TileSpot {
  int64_t at;
  int rows;
  __mmask16 cols;
};

inline TileSpot tile_spot(const TileTable& tt, int64_t t, int64_t img_stride, int h, int w) {
  const int row = tt.row[t], col = tt.col[t];
  return {tt.img[t] * img_stride + static_cast<int64_t>(row) * w + col, std::min(4, h - row),
          static_cast<__mmask16>((1u << std::min(4, w - col)) - 1)};
}

// Row a (lanes 4a .. 4a+3) of a tile's 4x4 values moved to lanes 0 .. 3.
template <int A>
inline V16 row_to_front(V16 z) {
  const I16 idx = {4 * A, 4 * A + 1, 4 * A + 2, 4 * A + 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  return QF_SHUFFLE(z, idx);
}

// A tile's 4x4 values, lane 4a + b for row a and column b, zero outside the plane.
inline V16 load_tile(const float* base, const TileSpot& s, int w) {
  // lanes 0-3 of two rows into lanes 0-3 and 4-7; of two such pairs into 0-7 and 8-15
  const I16 pair = {0, 1, 2, 3, 16, 17, 18, 19, 0, 0, 0, 0, 0, 0, 0, 0};
  const I16 quad = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  V16 rows[4] = {};
  for (int a = 0; a < s.rows; ++a) rows[a] = _mm512_maskz_loadu_ps(s.cols, base + s.at + static_cast<int64_t>(a) * w);
  return QF_SHUFFLE(QF_SHUFFLE(rows[0], rows[1], pair), QF_SHUFFLE(rows[2], rows[3], pair), quad);
}

// The outputs are turned from 16 tiles per value to 16 values per tile and
// stored row by row (scatters took two thirds of this block's time); when
// accumulating, each tile's old values are loaded as the adjoint loads them.
void output_block_avx512(const Plane<float>& p, const float* m, int64_t xs, const TileTable& tt, int64_t t0, int cnt,
                         bool accumulate) {
  const __mmask16 lanes = tail_mask(cnt);
  V16 mm[kXi], y[16];
  for (int xi = 0; xi < kXi; ++xi) mm[xi] = _mm512_maskz_loadu_ps(lanes, m + xi * xs + t0);
  output_2d(y, mm);
  transpose16(y);
  for (int t = 0; t < cnt; ++t) {
    const TileSpot s = tile_spot(tt, t0 + t, p.img_stride, p.h, p.w);
    if (accumulate) y[t] = load_tile(p.base, s, p.w) + y[t];  // old value first, as the portable loop adds
    const V16 rows[4] = {y[t], row_to_front<1>(y[t]), row_to_front<2>(y[t]), row_to_front<3>(y[t])};
    float* at = p.base + s.at;
    if (s.cols == 0xF) {  // the tile's 4 columns inside the plane: plain 4-float stores
      // (a generic shuffle for the low 4 lanes: GCC's cast intrinsic warns, GCC bug 105593)
      for (int a = 0; a < s.rows; ++a)
        _mm_storeu_ps(at + static_cast<int64_t>(a) * p.w, __m128(__builtin_shufflevector(rows[a], rows[a], 0, 1, 2, 3)));
    } else {
      for (int a = 0; a < s.rows; ++a) _mm512_mask_storeu_ps(at + static_cast<int64_t>(a) * p.w, s.cols, rows[a]);
    }
  }
}

// Each tile's 4x4 gradient, turned to 16 tiles per value.
void output_adjoint_block_avx512(float* dm, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0,
                                 int cnt) {
  V16 dy[16], o[kXi];
  for (int t = 0; t < 16; ++t)
    dy[t] = t < cnt ? load_tile(p.base, tile_spot(tt, t0 + t, p.img_stride, p.h, p.w), p.w) : V16{};
  transpose16(dy);
  output_adjoint_2d(o, dy);
  store_planes(dm + t0, xs, o, cnt);
}

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

}  // namespace

const BlockKernels winograd_f4x4_blocks__avx512 = {input_block_avx512, output_block_avx512, output_adjoint_block_avx512,
                                                   filter_block_avx512, filter_adjoint_block_avx512};

}  // namespace qforge::winograd_detail

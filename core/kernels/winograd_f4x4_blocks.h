// Winograd F(4x4,3x3) internals shared by the portable and the SIMD blocks
// (core/kernels/winograd_f4x4_blocks__*.cpp) and the drivers (winograd.cpp): the transforms,
// written once for a float and for a vector of floats, so every instruction
// set does the same operations in the same order and gives the same bits.
// These files are compiled with -ffp-contract=off (core/CMakeLists.txt):
// a fused multiply-add in one and not the other would change the bits.
#pragma once
#include <cstdint>

#include "core/kernels/kernels.h"  // ChannelFinish

namespace qforge::winograd_detail {

constexpr int kXi = 36;     // elements of a transformed 6x6 tile
constexpr int kLanes = 16;  // channels (or filters) per block

// Each 1-D step reads in[i * is] and writes out[i * os].
#define QF_INLINE inline __attribute__((always_inline))

// B^T d, B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
template <class V>
QF_INLINE void bt_1d(V* o, int os, const V* d, int is) {
  const V d0 = d[0], d1 = d[is], d2 = d[2 * is], d3 = d[3 * is], d4 = d[4 * is], d5 = d[5 * is];
  const V a = d4 - d2 * 4.f, b = d3 - d1 * 4.f, c = d4 - d2, e = (d3 - d1) * 2.f;
  o[0] = (d0 * 4.f - d2 * 5.f) + d4;
  o[os] = a + b;
  o[2 * os] = a - b;
  o[3 * os] = c + e;
  o[4 * os] = c - e;
  o[5 * os] = (d1 * 4.f - d3 * 5.f) + d5;
}

// A^T m, A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
template <class V>
QF_INLINE void at_1d(V* o, int os, const V* m, int is) {
  const V p = m[is] + m[2 * is], q = m[is] - m[2 * is], r = m[3 * is] + m[4 * is], s = m[3 * is] - m[4 * is];
  o[0] = (m[0] + p) + r;
  o[os] = q + s * 2.f;
  o[2 * os] = p + r * 4.f;
  o[3 * os] = (q + s * 8.f) + m[5 * is];
}

// A y: the adjoint of at_1d, 4 values -> 6.
template <class V>
QF_INLINE void a_1d(V* o, int os, const V* y, int is) {
  const V y0 = y[0], y1 = y[is], y2 = y[2 * is], y3 = y[3 * is];
  const V a = y0 + y2, b = y1 + y3, c = y0 + y2 * 4.f, e = y1 * 2.f + y3 * 8.f;
  o[0] = y0;
  o[os] = a + b;
  o[2 * os] = a - b;
  o[3 * os] = c + e;
  o[4 * os] = c - e;
  o[5 * os] = y3;
}

// G g, G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
template <class V>
QF_INLINE void g_1d(V* o, int os, const V* g, int is) {
  const V g0 = g[0], g1 = g[is], g2 = g[2 * is];
  const V a = g0 * (1.f / 24) + g2 * (1.f / 6), b = g1 * (1.f / 12);
  o[0] = g0 * 0.25f;
  o[os] = ((g0 + g1) + g2) * (-1.f / 6);
  o[2 * os] = ((g0 - g1) + g2) * (-1.f / 6);
  o[3 * os] = a + b;
  o[4 * os] = a - b;
  o[5 * os] = g2;
}

// G^T d: the adjoint of g_1d, 6 values -> 3.
template <class V>
QF_INLINE void gt_1d(V* o, int os, const V* d, int is) {
  const V d0 = d[0], d1 = d[is], d2 = d[2 * is], d3 = d[3 * is], d4 = d[4 * is], d5 = d[5 * is];
  o[0] = (d0 * 0.25f - (d1 + d2) * (1.f / 6)) + (d3 + d4) * (1.f / 24);
  o[os] = (d2 - d1) * (1.f / 6) + (d3 - d4) * (1.f / 12);
  o[2 * os] = ((d3 + d4) - (d1 + d2)) * (1.f / 6) + d5;
}

// v = B^T d B: d[r * 6 + q] the 6x6 input patch -> v[xi], xi = k * 6 + l.
template <class V>
QF_INLINE void input_2d(V* v, const V* d) {
  V t[kXi];
  for (int q = 0; q < 6; ++q) bt_1d(t + q, 6, d + q, 6);
  for (int k = 0; k < 6; ++k) bt_1d(v + k * 6, 1, t + k * 6, 1);
}

// y = A^T m A: m[xi] -> the 4x4 outputs y[a * 4 + b].
template <class V>
QF_INLINE void output_2d(V* y, const V* m) {
  V s[24];
  for (int l = 0; l < 6; ++l) at_1d(s + l, 6, m + l, 6);
  for (int a = 0; a < 4; ++a) at_1d(y + a * 4, 1, s + a * 6, 1);
}

// dm = A dy A^T: the adjoint of output_2d.
template <class V>
QF_INLINE void output_adjoint_2d(V* dm, const V* dy) {
  V t[24];
  for (int b = 0; b < 4; ++b) a_1d(t + b, 4, dy + b, 4);
  for (int k = 0; k < 6; ++k) a_1d(dm + k * 6, 1, t + k * 4, 1);
}

// u = G g G^T for a 3x3 filter g[p * 3 + q].
template <class V>
QF_INLINE void filter_2d(V* u, const V* g) {
  V t[18];
  for (int q = 0; q < 3; ++q) g_1d(t + q, 3, g + q, 3);
  for (int k = 0; k < 6; ++k) g_1d(u + k * 6, 1, t + k * 3, 1);
}

// h = G^T du G: the adjoint of filter_2d.
template <class V>
QF_INLINE void filter_adjoint_2d(V* h, const V* du) {
  V t[18];
  for (int k = 0; k < 6; ++k) gt_1d(t + k * 3, 1, du + k * 6, 1);
  for (int q = 0; q < 3; ++q) gt_1d(h + q, 3, t + q, 3);
}

// The blocks, one table per instruction set. The tiles' transforms run on
// channels-last copies of the chunk's images (NHWC, channels rounded up to a
// multiple of kLanes with zeros), kLanes channels at once: a tile's window is
// then 36 loads of kLanes channels, with no gathers or transposes of tiles.
// A transformed plane xi is [tile][channel], tiles cp floats apart; plane xi
// starts at v + xi * xs. The drivers keep plane strides off multiples of 4 KB:
// a tile touches all 36 planes, and at such strides they would share one set
// of the L1 cache. Tiles come as a run of consecutive tiles along a tile row.
struct BlockKernels {
  // v = B^T d B for each tile's 6x6 window d (all cp channels): tile j's window at x + 4 * j * cp,
  // its rows rs apart and pixels cp apart; its transform at v + j * cp (+ xi * xs).
  void (*input)(float* v, int64_t xs, const float* x, int64_t rs, int cp, int tiles);
  // y = A^T m A: tile j's 4x4 outputs at y + 4 * j * cp (rows rs apart, pixels cp apart), from m + j * cp.
  void (*output)(float* y, int64_t rs, const float* m, int64_t xs, int cp, int tiles);
  // dm = A dy A^T: the adjoint of output, tile j's 4x4 gradient read at dy + 4 * j * cp.
  void (*output_adjoint)(float* dm, int64_t xs, const float* dy, int64_t rs, int cp, int tiles);
  // One block of 16 channels (nc of them real) of an h x w image to channels last:
  // dst[y * rs + x * ps + i] = src[i * cs + y * w + x] for i < nc, 0 for nc <= i < 16.
  void (*to_nhwc)(float* dst, int64_t rs, int64_t ps, const float* src, int64_t cs, int h, int w, int nc);
  // And back: dst[i * cs + y * w + x] = (or +=, accumulating) src[y * rs + x * ps + i] for i < nc;
  // not accumulating, finished as channel i's (fin: bias i, clamp; kernels.h).
  void (*from_nhwc)(float* dst, int64_t cs, const float* src, int64_t rs, int64_t ps, int h, int w, int nc,
                    bool accumulate, const ChannelFinish& fin);
  // u[xi][r][k] = (G g G^T)[xi] at u + xi * us + r * cols + k, g the 3x3
  // filter at w + r * rs + k * ks, its element e at + e * es; es is 1 or -1 (a filter's 9 floats are
  // consecutive, in order or turned by 180 degrees).
  void (*filter)(float* u, const float* w, int64_t rs, int64_t ks, int es, int64_t us, int cols, int r, int k0,
                 int cnt);
  // dw[oc][c] += G^T du[.][oc][c] G for filters (oc, c0 .. c0 + cnt), du[xi][oc][c] at du + xi * us + oc * c_n + c.
  void (*filter_adjoint)(float* dw, const float* du, int64_t us, int c_n, int oc, int c0, int cnt);
};

extern const BlockKernels winograd_f4x4_blocks__ref;     // channel by channel, any CPU
extern const BlockKernels winograd_f4x4_blocks__avx2;    // 16 channels at once, in two registers
extern const BlockKernels winograd_f4x4_blocks__avx512;  // 16 channels at once

}  // namespace qforge::winograd_detail

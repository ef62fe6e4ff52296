#include "core/ops/winograd.h"

#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <vector>

#include "core/blas.h"
#include "core/ops/scratch.h"
#include "core/threads.h"

namespace qforge {

bool winograd_simd_enabled = true;

namespace {

constexpr int kXi = 36;     // elements of a transformed 6x6 tile
constexpr int kLanes = 16;  // tiles transformed together

// ---------------------------------------------------------------------------
// The transforms, written once for a float and for a vector of 16 floats (the
// same operations in the same order, so the scalar and the AVX-512 code give
// the same bits; this file is compiled with -ffp-contract=off).
// Each 1-D step reads in[i * is] and writes out[i * os].

#define QF_INLINE inline __attribute__((always_inline))
typedef float V16 __attribute__((vector_size(64)));

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

// ---------------------------------------------------------------------------
// Tiles. A chunk of images is transformed and multiplied at once; its tiles
// are numbered image by image, row by row, and are the columns of the products.

struct Tiles {
  int th, tw;         // tile rows and columns per image
  int64_t per_image;  // th * tw
  int nb;             // images in this chunk
  int64_t tc;         // tiles in this chunk
  int64_t ts;         // stride of a channel's row of tiles in the transformed planes: the full chunk's tc
                      // rounded up to 16, so that every block of 16 tiles is one aligned cache line
};

// The transformed input and output of a chunk stay within this many floats
// (2 MB, so they stay in the caches between the transforms and the products;
// measured against 1 to 16 MB on ResNet18's layers at batch 128).
constexpr int64_t kChunkFloats = int64_t{1} << 19;

Tiles make_tiles(const Conv2dShape& s, int chunk_images) {
  Tiles t;
  t.th = (s.oh + 3) / 4, t.tw = (s.ow + 3) / 4;
  t.per_image = static_cast<int64_t>(t.th) * t.tw;
  if (chunk_images <= 0) {
    const int64_t per = kXi * static_cast<int64_t>(s.c + s.oc) * t.per_image;
    // Where the transformed filters are larger, as deep in a ResNet, bigger
    // chunks read them fewer times.
    const int64_t budget = std::max(kChunkFloats, kXi * static_cast<int64_t>(s.c) * s.oc);
    chunk_images = static_cast<int>(std::clamp<int64_t>(budget / per, 1, s.n));
  }
  // The gathers index a chunk's planes with 32-bit offsets.
  const int64_t image = static_cast<int64_t>(std::max(s.c, s.oc)) * s.oh * s.ow;
  t.nb = static_cast<int>(std::min<int64_t>({chunk_images, s.n, INT32_MAX / image}));
  t.tc = t.nb * t.per_image;
  t.ts = (t.tc + kLanes - 1) / kLanes * kLanes;
  return t;
}

Tiles last_chunk(Tiles t, int images) {
  t.nb = images;
  t.tc = images * t.per_image;
  return t;
}

// Per tile: its image in the chunk and its top-left output (row, column).
// A shorter last chunk uses a prefix.
struct TileTable {
  std::vector<int32_t> img, row, col;
  explicit TileTable(const Tiles& t) : img(t.tc), row(t.tc), col(t.tc) {
    for (int64_t k = 0; k < t.tc; ++k) {
      const int64_t r = k % t.per_image;
      img[k] = static_cast<int32_t>(k / t.per_image);
      row[k] = static_cast<int32_t>(4 * (r / t.tw));
      col[k] = static_cast<int32_t>(4 * (r % t.tw));
    }
  }
};

// One channel of the chunk's images: channel c of image n0 at base, the next
// image img_stride floats further; h x w.
template <typename T>
struct Plane {
  T* base;
  int64_t img_stride;
  int h, w;
  bool inside(int y, int x) const { return y >= 0 && y < h && x >= 0 && x < w; }
};

// ---------------------------------------------------------------------------
// Blocks of up to 16 tiles of one channel. The transformed planes are
// [xi][channel][tile]: here, the channel's row of plane xi is at dst + xi * xs.

// Portable: tile by tile.
void input_block_ref(float* v, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0, int cnt) {
  for (int l = 0; l < cnt; ++l) {
    const int64_t t = t0 + l;
    const float* src = p.base + tt.img[t] * p.img_stride;
    float d[kXi], o[kXi];
    for (int r = 0; r < 6; ++r)
      for (int q = 0; q < 6; ++q) {
        const int y = tt.row[t] + r - 1, x = tt.col[t] + q - 1;
        d[r * 6 + q] = p.inside(y, x) ? src[static_cast<int64_t>(y) * p.w + x] : 0.f;
      }
    input_2d(o, d);
    for (int xi = 0; xi < kXi; ++xi) v[xi * xs + t] = o[xi];
  }
}

void output_block_ref(const Plane<float>& p, const float* m, int64_t xs, const TileTable& tt, int64_t t0, int cnt,
                      bool accumulate) {
  for (int l = 0; l < cnt; ++l) {
    const int64_t t = t0 + l;
    float* dst = p.base + tt.img[t] * p.img_stride;
    float mm[kXi], y[16];
    for (int xi = 0; xi < kXi; ++xi) mm[xi] = m[xi * xs + t];
    output_2d(y, mm);
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        const int yy = tt.row[t] + a, xx = tt.col[t] + b;
        if (!p.inside(yy, xx)) continue;
        float& o = dst[static_cast<int64_t>(yy) * p.w + xx];
        o = accumulate ? o + y[a * 4 + b] : y[a * 4 + b];
      }
  }
}

void output_adjoint_block_ref(float* dm, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0,
                              int cnt) {
  for (int l = 0; l < cnt; ++l) {
    const int64_t t = t0 + l;
    const float* src = p.base + tt.img[t] * p.img_stride;
    float dy[16], o[kXi];
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        const int yy = tt.row[t] + a, xx = tt.col[t] + b;
        dy[a * 4 + b] = p.inside(yy, xx) ? src[static_cast<int64_t>(yy) * p.w + xx] : 0.f;
      }
    output_adjoint_2d(o, dy);
    for (int xi = 0; xi < kXi; ++xi) dm[xi * xs + t] = o[xi];
  }
}

// AVX-512: 16 tiles at once, patches gathered and outputs scattered with
// masks for the padding and the last block.
#define QF_AVX512 __attribute__((target("avx512f")))

QF_AVX512 inline __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// The block's tiles: index of each tile's top-left element (row + dy, column
// + dx) in the plane, and which of 6 rows / columns from there are inside.
struct BlockGeo {
  __m512i idx;
  __mmask16 rows[6], cols[6];
};

QF_AVX512 inline BlockGeo block_geo(const TileTable& tt, int64_t t0, __mmask16 lanes, int64_t img_stride, int h,
                                    int w, int d, int n) {
  BlockGeo g;
  const __m512i img = _mm512_maskz_loadu_epi32(lanes, tt.img.data() + t0);
  const __m512i row = _mm512_add_epi32(_mm512_maskz_loadu_epi32(lanes, tt.row.data() + t0), _mm512_set1_epi32(d));
  const __m512i col = _mm512_add_epi32(_mm512_maskz_loadu_epi32(lanes, tt.col.data() + t0), _mm512_set1_epi32(d));
  g.idx = _mm512_add_epi32(_mm512_add_epi32(_mm512_mullo_epi32(img, _mm512_set1_epi32(static_cast<int>(img_stride))),
                                            _mm512_mullo_epi32(row, _mm512_set1_epi32(w))),
                           col);
  const __m512i zero = _mm512_setzero_si512();
  for (int k = 0; k < n; ++k) {
    const __m512i r = _mm512_add_epi32(row, _mm512_set1_epi32(k)), c = _mm512_add_epi32(col, _mm512_set1_epi32(k));
    g.rows[k] = _mm512_mask_cmpge_epi32_mask(lanes, r, zero) & _mm512_cmplt_epi32_mask(r, _mm512_set1_epi32(h));
    g.cols[k] = _mm512_cmpge_epi32_mask(c, zero) & _mm512_cmplt_epi32_mask(c, _mm512_set1_epi32(w));
  }
  return g;
}

QF_AVX512 void input_block_avx512(float* v, int64_t xs, const Plane<const float>& p, const TileTable& tt, int64_t t0,
                                  int cnt) {
  const __mmask16 lanes = tail_mask(cnt);
  const BlockGeo g = block_geo(tt, t0, lanes, p.img_stride, p.h, p.w, -1, 6);
  V16 d[kXi], o[kXi];
  for (int r = 0; r < 6; ++r)
    for (int q = 0; q < 6; ++q)
      d[r * 6 + q] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), g.rows[r] & g.cols[q],
                                              _mm512_add_epi32(g.idx, _mm512_set1_epi32(r * p.w + q)), p.base, 4);
  input_2d(o, d);
  for (int xi = 0; xi < kXi; ++xi) _mm512_mask_storeu_ps(v + xi * xs + t0, lanes, o[xi]);
}

QF_AVX512 void output_block_avx512(const Plane<float>& p, const float* m, int64_t xs, const TileTable& tt, int64_t t0,
                                   int cnt, bool accumulate) {
  const __mmask16 lanes = tail_mask(cnt);
  const BlockGeo g = block_geo(tt, t0, lanes, p.img_stride, p.h, p.w, 0, 4);
  V16 mm[kXi], y[16];
  for (int xi = 0; xi < kXi; ++xi) mm[xi] = _mm512_maskz_loadu_ps(lanes, m + xi * xs + t0);
  output_2d(y, mm);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) {
      const __mmask16 k = g.rows[a] & g.cols[b];
      const __m512i idx = _mm512_add_epi32(g.idx, _mm512_set1_epi32(a * p.w + b));
      V16 val = y[a * 4 + b];
      if (accumulate) val = V16(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, p.base, 4)) + val;
      _mm512_mask_i32scatter_ps(p.base, k, idx, val, 4);
    }
}

QF_AVX512 void output_adjoint_block_avx512(float* dm, int64_t xs, const Plane<const float>& p, const TileTable& tt,
                                           int64_t t0, int cnt) {
  const __mmask16 lanes = tail_mask(cnt);
  const BlockGeo g = block_geo(tt, t0, lanes, p.img_stride, p.h, p.w, 0, 4);
  V16 dy[16], o[kXi];
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b)
      dy[a * 4 + b] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), g.rows[a] & g.cols[b],
                                               _mm512_add_epi32(g.idx, _mm512_set1_epi32(a * p.w + b)), p.base, 4);
  output_adjoint_2d(o, dy);
  for (int xi = 0; xi < kXi; ++xi) _mm512_mask_storeu_ps(dm + xi * xs + t0, lanes, o[xi]);
}

bool use_avx512() { return winograd_simd_enabled && __builtin_cpu_supports("avx512f"); }

// ---------------------------------------------------------------------------
// Whole transforms, over channels x blocks on the pool's threads.

// Calls f(channel, first tile, tiles) for every block of every channel.
template <typename F>
void for_each_block(int channels, int64_t tc, F&& f) {
  const int64_t blocks = (tc + kLanes - 1) / kLanes;
  parallel_pieces(channels * blocks, 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t t0 = (i % blocks) * kLanes;
      f(static_cast<int>(i / blocks), t0, static_cast<int>(std::min<int64_t>(kLanes, tc - t0)));
    }
  });
}

// v[xi][c][tile] = (B^T d B)[xi] for the 6x6 input patch d of each tile (rows
// and columns 4i-1 .. 4i+4, zero outside the image); x (N, ch, h, w).
void transform_input(float* v, const float* x, int ch, int h, int w, const Tiles& t, const TileTable& tt, int n0) {
  const bool simd = use_avx512();
  const int64_t hw = static_cast<int64_t>(h) * w;
  for_each_block(ch, t.tc, [&](int c, int64_t t0, int cnt) {
    const Plane<const float> p{x + (static_cast<int64_t>(n0) * ch + c) * hw, ch * hw, h, w};
    float* vc = v + c * t.ts;
    if (simd)
      input_block_avx512(vc, ch * t.ts, p, tt, t0, cnt);
    else
      input_block_ref(vc, ch * t.ts, p, tt, t0, cnt);
  });
}

// out = A^T m A for each tile, where its 4x4 outputs fall inside the image
// (added to out when accumulating); out (N, ch, h, w).
void transform_output(float* out, const float* m, int ch, int h, int w, const Tiles& t, const TileTable& tt, int n0,
                      bool accumulate) {
  const bool simd = use_avx512();
  const int64_t hw = static_cast<int64_t>(h) * w;
  for_each_block(ch, t.tc, [&](int c, int64_t t0, int cnt) {
    const Plane<float> p{out + (static_cast<int64_t>(n0) * ch + c) * hw, ch * hw, h, w};
    const float* mc = m + c * t.ts;
    if (simd)
      output_block_avx512(p, mc, ch * t.ts, tt, t0, cnt, accumulate);
    else
      output_block_ref(p, mc, ch * t.ts, tt, t0, cnt, accumulate);
  });
}

// The adjoint of transform_output: dm = A dy A^T for each tile's 4x4 output
// gradient (zero outside the image).
void transform_output_adjoint(float* dm, const float* dy, int ch, int h, int w, const Tiles& t, const TileTable& tt,
                              int n0) {
  const bool simd = use_avx512();
  const int64_t hw = static_cast<int64_t>(h) * w;
  for_each_block(ch, t.tc, [&](int c, int64_t t0, int cnt) {
    const Plane<const float> p{dy + (static_cast<int64_t>(n0) * ch + c) * hw, ch * hw, h, w};
    float* dc = dm + c * t.ts;
    if (simd)
      output_adjoint_block_avx512(dc, ch * t.ts, p, tt, t0, cnt);
    else
      output_adjoint_block_ref(dc, ch * t.ts, p, tt, t0, cnt);
  });
}

// Filters k0 .. k0 + cnt of row r: u[xi][r][k] = (G g G^T)[xi], g the 3x3
// filter at w + k * ks + r * rs, its elements e at + e * es.
void filter_block_ref(float* u, const float* w, int64_t rs, int64_t ks, int es, int rows, int cols, int r, int k0,
                      int cnt) {
  for (int k = k0; k < k0 + cnt; ++k) {
    float g[9], o[kXi];
    for (int e = 0; e < 9; ++e) g[e] = w[r * rs + k * ks + e * es];
    filter_2d(o, g);
    for (int xi = 0; xi < kXi; ++xi) u[(xi * static_cast<int64_t>(rows) + r) * cols + k] = o[xi];
  }
}

QF_AVX512 void filter_block_avx512(float* u, const float* w, int64_t rs, int64_t ks, int es, int rows, int cols,
                                   int r, int k0, int cnt) {
  const __mmask16 lanes = tail_mask(cnt);
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(static_cast<int>(ks)));
  const float* base = w + r * rs + k0 * ks;
  V16 g[9], o[kXi];
  for (int e = 0; e < 9; ++e) g[e] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, idx, base + e * es, 4);
  filter_2d(o, g);
  for (int xi = 0; xi < kXi; ++xi)
    _mm512_mask_storeu_ps(u + (xi * static_cast<int64_t>(rows) + r) * cols + k0, lanes, o[xi]);
}

// u[xi][r][k] = (G g G^T)[xi] for weight (OC, C, 3, 3). Forward: rows = OC,
// cols = C, g = w[r][k]. flip (for dX): rows = C, cols = OC, g = w[k][r]
// turned by 180 degrees.
void transform_filter(float* u, const float* w, int rows, int cols, bool flip) {
  const bool simd = use_avx512();
  // Element e of filter (r, k) sits at w + r * rs + k * ks + e * es.
  const int64_t rs = flip ? 9 : int64_t{9} * cols, ks = flip ? int64_t{9} * rows : 9;
  const int es = flip ? -1 : 1;
  const float* w0 = flip ? w + 8 : w;
  const int blocks = (cols + kLanes - 1) / kLanes;
  parallel_pieces(static_cast<int64_t>(rows) * blocks, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int r = static_cast<int>(i / blocks), k0 = static_cast<int>(i % blocks) * kLanes;
      const int cnt = std::min(kLanes, cols - k0);
      if (simd)
        filter_block_avx512(u, w0, rs, ks, es, rows, cols, r, k0, cnt);
      else
        filter_block_ref(u, w0, rs, ks, es, rows, cols, r, k0, cnt);
    }
  });
}

// The adjoint of transform_filter (forward layout) for filters (oc, c0 .. c0 + cnt):
// dw[oc][c] += G^T du[.][oc][c] G.
void filter_adjoint_block_ref(float* dw, const float* du, int oc_n, int c_n, int oc, int c0, int cnt) {
  for (int c = c0; c < c0 + cnt; ++c) {
    float d[kXi], h[9];
    for (int xi = 0; xi < kXi; ++xi) d[xi] = du[(xi * static_cast<int64_t>(oc_n) + oc) * c_n + c];
    filter_adjoint_2d(h, d);
    float* g = dw + (static_cast<int64_t>(oc) * c_n + c) * 9;
    for (int e = 0; e < 9; ++e) g[e] += h[e];
  }
}

QF_AVX512 void filter_adjoint_block_avx512(float* dw, const float* du, int oc_n, int c_n, int oc, int c0, int cnt) {
  const __mmask16 lanes = tail_mask(cnt);
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(9));
  V16 d[kXi], h[9];
  for (int xi = 0; xi < kXi; ++xi)
    d[xi] = _mm512_maskz_loadu_ps(lanes, du + (xi * static_cast<int64_t>(oc_n) + oc) * c_n + c0);
  filter_adjoint_2d(h, d);
  float* g = dw + (static_cast<int64_t>(oc) * c_n + c0) * 9;
  for (int e = 0; e < 9; ++e) {
    const V16 sum = V16(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, idx, g + e, 4)) + h[e];
    _mm512_mask_i32scatter_ps(g + e, lanes, idx, sum, 4);
  }
}

void transform_filter_adjoint(float* dw, const float* du, int oc_n, int c_n) {
  const bool simd = use_avx512();
  const int blocks = (c_n + kLanes - 1) / kLanes;
  parallel_pieces(static_cast<int64_t>(oc_n) * blocks, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int oc = static_cast<int>(i / blocks), c0 = static_cast<int>(i % blocks) * kLanes;
      const int cnt = std::min(kLanes, c_n - c0);
      if (simd)
        filter_adjoint_block_avx512(dw, du, oc_n, c_n, oc, c0, cnt);
      else
        filter_adjoint_block_ref(dw, du, oc_n, c_n, oc, c0, cnt);
    }
  });
}

// One product per transformed element; the threads take them in turn.
template <typename F>
void for_each_xi(F&& f) {
  parallel_pieces(kXi, 1, [&](int64_t b, int64_t e) {
    for (int64_t x = b; x < e; ++x) f(static_cast<int>(x));
  });
}

// out (co channels) = (or +=, accumulating) the convolution of in (ci
// channels) with the transformed filters u [xi][co][ci], for one chunk; v and
// m hold the chunk's transformed input and output.
void conv_chunk(float* out, const float* in, const float* u, int ci, int co, int h, int w, const Tiles& t,
                const TileTable& tt, int n0, float* v, float* m, bool accumulate) {
  const int tc = static_cast<int>(t.tc), ts = static_cast<int>(t.ts);
  transform_input(v, in, ci, h, w, t, tt, n0);
  for_each_xi([&](int x) {
    sgemm(false, false, co, tc, ci, 1.f, u + static_cast<int64_t>(x) * co * ci, ci, v + x * ci * t.ts, ts, 0.f,
          m + x * co * t.ts, ts);
  });
  transform_output(out, m, co, h, w, t, tt, n0, accumulate);
}

// The transformed filters of a 512x512 layer take 38 MB, above the size (32
// MB) from which malloc maps fresh pages on every call: each thread keeps its
// two filter buffers (filters, their gradient) between calls instead.
float* filter_buffer(int slot, size_t n) {
  thread_local Scratch buf[2];
  thread_local size_t cap[2] = {0, 0};
  if (cap[slot] < n) {
    buf[slot].reset();
    buf[slot] = scratch_floats(n);
    cap[slot] = n;
  }
  return buf[slot].get();
}

}  // namespace

bool winograd_applies(const Conv2dShape& s) {
  const Conv2dArgs& a = s.a;
  if (!(s.kh == 3 && s.kw == 3 && a.stride_h == 1 && a.stride_w == 1 && a.pad_h == 1 && a.pad_w == 1 &&
        a.dil_h == 1 && a.dil_w == 1 && a.groups == 1))
    return false;
  // The gathers' 32-bit offsets must reach across one image's channels.
  if (static_cast<int64_t>(std::max(s.c, s.oc)) * s.oh * s.ow > INT32_MAX) return false;
  // With few tiles in all, the 36 products are too thin to pay for the transforms.
  const int64_t tiles = static_cast<int64_t>(s.n) * ((s.oh + 3) / 4) * ((s.ow + 3) / 4);
  return tiles >= 8;
}

void winograd_forward(float* out, const float* inp, const float* weight, const Conv2dShape& s, int chunk_images) {
  const int C = s.c, OC = s.oc;
  const Tiles full = make_tiles(s, chunk_images);
  const TileTable tt(full);
  float* u = filter_buffer(0, static_cast<size_t>(kXi) * OC * C);
  auto v = scratch_floats(kXi * C * full.ts), m = scratch_floats(kXi * OC * full.ts);
  transform_filter(u, weight, OC, C, false);
  for (int n0 = 0; n0 < s.n; n0 += full.nb) {
    const Tiles t = last_chunk(full, std::min(full.nb, s.n - n0));
    conv_chunk(out, inp, u, C, OC, s.oh, s.ow, t, tt, n0, v.get(), m.get(), false);
  }
}

void winograd_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const Conv2dShape& s, int chunk_images) {
  if (!dinp && !dweight) return;
  const int C = s.c, OC = s.oc;
  const Tiles full = make_tiles(s, chunk_images);
  const TileTable tt(full);
  const size_t nu = static_cast<size_t>(kXi) * OC * C;
  // a: OC channels of transformed tiles (dY's), b: C channels (dX's or X's).
  auto a = scratch_floats(kXi * OC * full.ts), b = scratch_floats(kXi * C * full.ts);
  float *u = nullptr, *du = nullptr;
  if (dinp) {  // dX = dY convolved with the filter turned by 180 degrees, C and OC swapped
    u = filter_buffer(0, nu);
    transform_filter(u, weight, C, OC, true);
  }
  if (dweight) {
    du = filter_buffer(1, nu);
    std::fill(du, du + nu, 0.f);  // the chunks add into it
  }
  for (int n0 = 0; n0 < s.n; n0 += full.nb) {
    const Tiles t = last_chunk(full, std::min(full.nb, s.n - n0));
    const int tc = static_cast<int>(t.tc), ts = static_cast<int>(t.ts);
    if (dinp) conv_chunk(dinp, dout, u, OC, C, s.h, s.w, t, tt, n0, a.get(), b.get(), true);
    if (dweight) {
      transform_output_adjoint(a.get(), dout, OC, s.oh, s.ow, t, tt, n0);
      transform_input(b.get(), inp, C, s.h, s.w, t, tt, n0);
      for_each_xi([&](int x) {  // du += dm v^T
        sgemm(false, true, OC, C, tc, 1.f, a.get() + x * OC * t.ts, ts, b.get() + x * C * t.ts, ts, 1.f,
              du + static_cast<int64_t>(x) * OC * C, C);
      });
    }
  }
  if (dweight) transform_filter_adjoint(dweight, du, OC, C);
}

}  // namespace qforge

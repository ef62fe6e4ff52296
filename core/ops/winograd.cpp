#include "core/ops/winograd.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "core/blas.h"
#include "core/ops/scratch.h"
#include "core/threads.h"

namespace qforge {

bool winograd_simd_enabled = true;

namespace {

constexpr int kXi = 16;  // elements of a transformed 4x4 tile

// Tiles of 2x2 outputs; a chunk of images is transformed and multiplied at once.
struct Tiles {
  int th, tw;         // tile rows and columns per image
  int64_t per_image;  // th * tw
  int nb;             // images in this chunk
  int64_t tc;         // tiles in this chunk: the columns of each product

  // p[xi]: where tile row i of image img starts in row c of transformed plane
  // xi, laid out [xi][channels][tc].
  template <typename T>
  void row_ptrs(T** p, T* base, int channels, int c, int img, int i) const {
    const int64_t t0 = img * per_image + static_cast<int64_t>(i) * tw;
    for (int xi = 0; xi < kXi; ++xi) p[xi] = base + (static_cast<int64_t>(xi) * channels + c) * tc + t0;
  }
};

Tiles make_tiles(const Conv2dShape& s, int chunk_images) {
  Tiles t;
  t.th = (s.oh + 1) / 2, t.tw = (s.ow + 1) / 2;
  t.per_image = static_cast<int64_t>(t.th) * t.tw;
  if (chunk_images <= 0) {
    // The transformed input and output of a chunk: about 4 MB together, so
    // they stay in the cache between the transforms and the products.
    int64_t per = kXi * static_cast<int64_t>(s.c + s.oc) * t.per_image;
    chunk_images = static_cast<int>(std::clamp<int64_t>((1 << 20) / per, 1, s.n));
  }
  t.nb = std::min(chunk_images, s.n);
  t.tc = t.nb * t.per_image;
  return t;
}

Tiles last_chunk(Tiles t, int images) {
  t.nb = images;
  t.tc = images * t.per_image;
  return t;
}

#define QF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// The adjoint: w[oc][c] += G^T du[oc][c] G.
void transform_filter_adjoint(float* w, const float* du, int oc_n, int c_n) {
  parallel_for(oc_n, 4, [&](int64_t b, int64_t e) {
    for (int64_t oc = b; oc < e; ++oc)
      for (int c = 0; c < c_n; ++c) {
        float d[4][4];
        for (int x = 0; x < kXi; ++x) d[x / 4][x % 4] = du[(x * static_cast<int64_t>(oc_n) + oc) * c_n + c];
        float h[3][4];  // G^T du
        for (int k = 0; k < 4; ++k) {
          h[0][k] = d[0][k] + 0.5f * (d[1][k] + d[2][k]);
          h[1][k] = 0.5f * (d[1][k] - d[2][k]);
          h[2][k] = 0.5f * (d[1][k] + d[2][k]) + d[3][k];
        }
        float* g = w + (oc * c_n + c) * 9;
        for (int r = 0; r < 3; ++r) {
          g[r * 3 + 0] += h[r][0] + 0.5f * (h[r][1] + h[r][2]);
          g[r * 3 + 1] += 0.5f * (h[r][1] - h[r][2]);
          g[r * 3 + 2] += 0.5f * (h[r][1] + h[r][2]) + h[r][3];
        }
      }
  });
}

// The per-row loops below run on deinterleaved rows: a padded row p (input
// column p - 1) is kept as its even entries E[k] = p[2k] and odd entries
// O[k] = p[2k + 1], so tile j's four columns 2j .. 2j+3 are E[j], O[j],
// E[j+1], O[j+1] and every loop has unit stride. They are compiled for
// AVX-512 and AVX2 too and picked at run time.

// Input row (W floats) -> E, O of its padded row (tw + 1 each), zero in the padding.
QF_CLONES void split_row(float* __restrict e, float* __restrict o, const float* __restrict x, int w, int tw) {
  e[0] = 0.f;
  #pragma omp simd
  for (int k = 0; k < w / 2; ++k) {
    o[k] = x[2 * k];
    e[k + 1] = x[2 * k + 1];
  }
  for (int k = w / 2; k <= tw; ++k) o[k] = 0.f;
  for (int k = w / 2 + 1; k <= tw; ++k) e[k] = 0.f;
  if (w % 2) o[w / 2] = x[w - 1];
}

// B^T d B for one tile row from the four padded rows (E, O each); v[xi] advance by one per tile.
QF_CLONES void input_tile_row(float* const* __restrict v, const float* const* __restrict er,
                              const float* const* __restrict orow, float* __restrict scratch, int tw) {
  float* ae = scratch;  // B^T applied down the columns, 4 rows of tw + 1
  float* ao = scratch + 4 * (tw + 1);
  const int n = tw + 1;
  #pragma omp simd
  for (int k = 0; k < n; ++k) {
    ae[k] = er[0][k] - er[2][k];
    ae[n + k] = er[1][k] + er[2][k];
    ae[2 * n + k] = er[2][k] - er[1][k];
    ae[3 * n + k] = er[1][k] - er[3][k];
    ao[k] = orow[0][k] - orow[2][k];
    ao[n + k] = orow[1][k] + orow[2][k];
    ao[2 * n + k] = orow[2][k] - orow[1][k];
    ao[3 * n + k] = orow[1][k] - orow[3][k];
  }
  for (int r = 0; r < 4; ++r) {
    const float *e = ae + r * n, *o = ao + r * n;
    float *v0 = v[r * 4], *v1 = v[r * 4 + 1], *v2 = v[r * 4 + 2], *v3 = v[r * 4 + 3];
    #pragma omp simd
    for (int j = 0; j < tw; ++j) {
      v0[j] = e[j] - e[j + 1];
      v1[j] = o[j] + e[j + 1];
      v2[j] = e[j + 1] - o[j];
      v3[j] = o[j] - o[j + 1];
    }
  }
}

// AVX-512 versions of the row loops above: the same operations in the same
// order (so the same bits), on 16 tiles at a time with masked loads and
// stores; the rows are short (2 to 28 tiles) and the compiler's loops spend
// their time in scalar tails.
#define QF_AVX512 __attribute__((target("avx512f")))

QF_AVX512 inline __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

QF_AVX512 inline __m512 negate(__m512 x) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
}

// Even and odd entries of x[2k0 .. 2k0 + 2cnt).
QF_AVX512 inline void split16(float* e, float* o, const float* x, int cnt) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 a = _mm512_maskz_loadu_ps(tail_mask(2 * cnt), x);
  const __m512 b = _mm512_maskz_loadu_ps(tail_mask(2 * cnt - 16 > 0 ? 2 * cnt - 16 : 0), x + 16);
  _mm512_mask_storeu_ps(e, tail_mask(cnt), _mm512_permutex2var_ps(a, ie, b));
  _mm512_mask_storeu_ps(o, tail_mask(cnt), _mm512_permutex2var_ps(a, io, b));
}

QF_AVX512 void split_row_avx512(float* e, float* o, const float* x, int w, int tw) {
  e[0] = 0.f;
  for (int k = 0; k < w / 2; k += 16) {
    const int cnt = std::min(16, w / 2 - k);
    split16(o + k, e + 1 + k, x + 2 * k, cnt);  // even input columns are odd padded ones
  }
  for (int k = w / 2; k <= tw; ++k) o[k] = 0.f;
  for (int k = w / 2 + 1; k <= tw; ++k) e[k] = 0.f;
  if (w % 2) o[w / 2] = x[w - 1];
}

QF_AVX512 inline void down4(const __m512* x, __m512* a) {  // B^T down the columns
  a[0] = _mm512_sub_ps(x[0], x[2]);
  a[1] = _mm512_add_ps(x[1], x[2]);
  a[2] = _mm512_sub_ps(x[2], x[1]);
  a[3] = _mm512_sub_ps(x[1], x[3]);
}

QF_AVX512 void input_tile_row_avx512(float* const* v, const float* const* er, const float* const* orow, int tw) {
  for (int j = 0; j < tw; j += 16) {
    const __mmask16 m = tail_mask(tw - j);
    __m512 ae0[4], ae1[4], ao0[4], ao1[4];
    {
      __m512 e0[4], e1[4], o0[4], o1[4];
      for (int r = 0; r < 4; ++r) {
        e0[r] = _mm512_maskz_loadu_ps(m, er[r] + j);
        e1[r] = _mm512_maskz_loadu_ps(m, er[r] + j + 1);
        o0[r] = _mm512_maskz_loadu_ps(m, orow[r] + j);
        o1[r] = _mm512_maskz_loadu_ps(m, orow[r] + j + 1);
      }
      down4(e0, ae0), down4(e1, ae1), down4(o0, ao0), down4(o1, ao1);
    }
    for (int r = 0; r < 4; ++r) {
      _mm512_mask_storeu_ps(v[r * 4] + j, m, _mm512_sub_ps(ae0[r], ae1[r]));
      _mm512_mask_storeu_ps(v[r * 4 + 1] + j, m, _mm512_add_ps(ao0[r], ae1[r]));
      _mm512_mask_storeu_ps(v[r * 4 + 2] + j, m, _mm512_sub_ps(ae1[r], ao0[r]));
      _mm512_mask_storeu_ps(v[r * 4 + 3] + j, m, _mm512_sub_ps(ao0[r], ao1[r]));
    }
  }
}

// The portable loop adds each tile's columns 0, 1 onto E[j], O[j] in one pass
// and its columns 2, 3 onto E[j+1], O[j+1] in a later one; here the later
// part arrives shifted by one lane (carried across 16-tile blocks), so each
// row is read and written once, in the same order of additions.
QF_AVX512 void input_tile_row_adjoint_avx512(float* const* er, float* const* orow, const float* const* dv, int tw) {
  const __m512i shift = _mm512_setr_epi32(15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  __m512 carry[4][2];  // columns 2 and 3 of the previous block's tiles
  for (int x = 0; x < 4; ++x) carry[x][0] = carry[x][1] = _mm512_setzero_ps();
  for (int j = 0; j <= tw; j += 16) {
    const __mmask16 m = tail_mask(tw - j), mrow = tail_mask(tw + 1 - j);
    __m512 e4[4][4];  // dv B^T: [dv row][column]
    for (int r = 0; r < 4; ++r) {
      const __m512 q0 = _mm512_maskz_loadu_ps(m, dv[r * 4] + j), q1 = _mm512_maskz_loadu_ps(m, dv[r * 4 + 1] + j),
                   q2 = _mm512_maskz_loadu_ps(m, dv[r * 4 + 2] + j), q3 = _mm512_maskz_loadu_ps(m, dv[r * 4 + 3] + j);
      e4[r][0] = q0;
      e4[r][1] = _mm512_add_ps(_mm512_sub_ps(q1, q2), q3);
      e4[r][2] = _mm512_sub_ps(_mm512_add_ps(q1, q2), q0);
      e4[r][3] = negate(q3);
    }
    for (int x = 0; x < 4; ++x) {  // B e down the columns: what row x of the patch gets
      __m512 dd[4];
      for (int k = 0; k < 4; ++k) {
        switch (x) {
          case 0: dd[k] = e4[0][k]; break;
          case 1: dd[k] = _mm512_add_ps(_mm512_sub_ps(e4[1][k], e4[2][k]), e4[3][k]); break;
          case 2: dd[k] = _mm512_sub_ps(_mm512_add_ps(e4[1][k], e4[2][k]), e4[0][k]); break;
          default: dd[k] = negate(e4[3][k]); break;
        }
      }
      const __m512 s2 = _mm512_permutex2var_ps(carry[x][0], shift, dd[2]);  // lane j: tile j - 1
      const __m512 s3 = _mm512_permutex2var_ps(carry[x][1], shift, dd[3]);
      carry[x][0] = dd[2], carry[x][1] = dd[3];
      float *e = er[x] + j, *o = orow[x] + j;
      _mm512_mask_storeu_ps(e, mrow, _mm512_add_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(mrow, e), dd[0]), s2));
      _mm512_mask_storeu_ps(o, mrow, _mm512_add_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(mrow, o), dd[1]), s3));
    }
  }
}

// Even and odd columns -> the row x[2j0 .. 2j0 + 2cnt), cnt <= 16.
QF_AVX512 inline void interleave16(float* x, __m512 e, __m512 o, int cnt) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  _mm512_mask_storeu_ps(x, tail_mask(2 * cnt), _mm512_permutex2var_ps(e, lo, o));
  if (cnt > 8) _mm512_mask_storeu_ps(x + 16, tail_mask(2 * cnt - 16), _mm512_permutex2var_ps(e, hi, o));
}

// A^T m A for one tile row, written into the output rows y0 and y1 (y1 null
// past the bottom), w columns.
QF_AVX512 void output_tile_row_avx512(float* y0, float* y1, const float* const* mp, int tw, int w) {
  for (int j = 0; j < tw; j += 16) {
    const __mmask16 m = tail_mask(tw - j);
    __m512 s0[4], s1[4];
    for (int k = 0; k < 4; ++k) {
      const __m512 a = _mm512_maskz_loadu_ps(m, mp[k] + j), b = _mm512_maskz_loadu_ps(m, mp[4 + k] + j),
                   c = _mm512_maskz_loadu_ps(m, mp[8 + k] + j), d = _mm512_maskz_loadu_ps(m, mp[12 + k] + j);
      s0[k] = _mm512_add_ps(_mm512_add_ps(a, b), c);
      s1[k] = _mm512_sub_ps(_mm512_sub_ps(b, c), d);
    }
    const int cnt = std::min(16, (w + 1) / 2 - j);  // whole or half tiles inside the row
    const int half = std::min(2 * cnt, w - 2 * j);  // columns inside the row
    float tmp[32];
    auto put = [&](float* row, __m512 e, __m512 o) {
      if (half == 2 * cnt) return interleave16(row + 2 * j, e, o, cnt);
      interleave16(tmp, e, o, cnt);  // an odd width: the last tile's right half falls outside
      std::memcpy(row + 2 * j, tmp, half * sizeof(float));
    };
    put(y0, _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]), _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]));
    if (y1)
      put(y1, _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]), _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]));
  }
}

// Even and odd entries of x[2j0 .. min(2j0 + 32, w)), zero past w.
QF_AVX512 inline void split_regs(const float* x, int n, __m512& e, __m512& o) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 a = _mm512_maskz_loadu_ps(tail_mask(n), x);
  const __m512 b = _mm512_maskz_loadu_ps(tail_mask(n > 16 ? n - 16 : 0), x + 16);
  e = _mm512_permutex2var_ps(a, ie, b);
  o = _mm512_permutex2var_ps(a, io, b);
}

// dm = A dy A^T for one tile row from the gradient rows y0 and y1 (null past the bottom), w columns.
QF_AVX512 void output_tile_row_adjoint_avx512(float* const* mp, const float* y0, const float* y1, int tw, int w) {
  for (int j = 0; j < tw; j += 16) {
    const __mmask16 m = tail_mask(tw - j);
    const int n = std::min(32, w - 2 * j);
    __m512 a, b, c = _mm512_setzero_ps(), d = _mm512_setzero_ps();
    split_regs(y0 + 2 * j, n, a, b);
    if (y1) split_regs(y1 + 2 * j, n, c, d);
    const __m512 u0[4] = {a, _mm512_add_ps(a, b), _mm512_sub_ps(a, b), negate(b)};
    const __m512 u1[4] = {c, _mm512_add_ps(c, d), _mm512_sub_ps(c, d), negate(d)};
    for (int k = 0; k < 4; ++k) {
      _mm512_mask_storeu_ps(mp[k] + j, m, u0[k]);
      _mm512_mask_storeu_ps(mp[4 + k] + j, m, _mm512_add_ps(u0[k], u1[k]));
      _mm512_mask_storeu_ps(mp[8 + k] + j, m, _mm512_sub_ps(u0[k], u1[k]));
      _mm512_mask_storeu_ps(mp[12 + k] + j, m, negate(u1[k]));
    }
  }
}

bool use_avx512() { return winograd_simd_enabled && __builtin_cpu_supports("avx512f"); }

// One output channel's filters: u[xi][c] = (G g G^T)[xi] for g = w[c] (3x3 each).
QF_CLONES void filter_row(float* const* __restrict u, const float* __restrict w, int c_n) {
#pragma omp simd
  for (int c = 0; c < c_n; ++c) {
    float t[4][3];  // G g, column by column
    for (int k = 0; k < 3; ++k) {
      const float g0 = w[c * 9 + k], g1 = w[c * 9 + 3 + k], g2 = w[c * 9 + 6 + k];
      t[0][k] = g0;
      t[1][k] = 0.5f * (g0 + g1 + g2);
      t[2][k] = 0.5f * (g0 - g1 + g2);
      t[3][k] = g2;
    }
    for (int r = 0; r < 4; ++r) {
      u[r * 4][c] = t[r][0];
      u[r * 4 + 1][c] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
      u[r * 4 + 2][c] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
      u[r * 4 + 3][c] = t[r][2];
    }
  }
}

QF_AVX512 void filter_row_avx512(float* const* u, const float* w, int c_n) {
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(9));
  const __m512 half = _mm512_set1_ps(0.5f);
  for (int c = 0; c < c_n; c += 16) {
    const __mmask16 m = tail_mask(c_n - c);
    const float* g = w + static_cast<int64_t>(c) * 9;
    __m512 t[4][3];
    for (int k = 0; k < 3; ++k) {
      const __m512 g0 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, g + k, 4);
      const __m512 g1 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, g + 3 + k, 4);
      const __m512 g2 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, g + 6 + k, 4);
      t[0][k] = g0;
      t[1][k] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g0, g1), g2));
      t[2][k] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g0, g1), g2));
      t[3][k] = g2;
    }
    for (int r = 0; r < 4; ++r) {
      _mm512_mask_storeu_ps(u[r * 4] + c, m, t[r][0]);
      _mm512_mask_storeu_ps(u[r * 4 + 1] + c, m,
                            _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[r][0], t[r][1]), t[r][2])));
      _mm512_mask_storeu_ps(u[r * 4 + 2] + c, m,
                            _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[r][0], t[r][1]), t[r][2])));
      _mm512_mask_storeu_ps(u[r * 4 + 3] + c, m, t[r][2]);
    }
  }
}

// u[xi][oc][c] = (G g G^T)[xi] for g = w[oc][c], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
void transform_filter(float* u, const float* w, int oc_n, int c_n) {
  const bool avx512 = use_avx512();
  parallel_for(oc_n, 4, [&](int64_t b, int64_t e) {
    for (int64_t oc = b; oc < e; ++oc) {
      float* rows[kXi];
      for (int x = 0; x < kXi; ++x) rows[x] = u + (x * static_cast<int64_t>(oc_n) + oc) * c_n;
      if (avx512)
        filter_row_avx512(rows, w + oc * c_n * 9, c_n);
      else
        filter_row(rows, w + oc * c_n * 9, c_n);
    }
  });
}


// v[xi][c][tile] = (B^T d B)[xi] for the 4x4 input patch d of each tile (rows
// and columns 2i-1 .. 2i+2, zero outside the image),
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
void transform_input(float* v, const float* x, const Conv2dShape& s, const Tiles& t, int n0) {
  const bool avx512 = use_avx512();
  const int C = s.c, H = s.h, W = s.w, n = t.tw + 1, rows = 2 * t.th + 2;
  parallel_for(static_cast<int64_t>(C) * t.nb, 1, [&](int64_t b, int64_t e) {
    // The padded plane, deinterleaved: rows -1 .. 2th, each E then O.
    const size_t npad = static_cast<size_t>(rows) * 2 * n;
    Scratch pad = scratch_floats(npad), scratch = scratch_floats(8 * n);
    std::fill(pad.get(), pad.get() + npad, 0.f);
    for (int64_t pc = b; pc < e; ++pc) {
      const int img = static_cast<int>(pc / C), c = static_cast<int>(pc % C);
      const float* plane = x + (static_cast<int64_t>(n0 + img) * C + c) * H * W;
      for (int ih = 0; ih < H; ++ih) {
        float* row = pad.get() + static_cast<int64_t>(ih + 1) * 2 * n;
        if (avx512)
          split_row_avx512(row, row + n, plane + static_cast<int64_t>(ih) * W, W, t.tw);
        else
          split_row(row, row + n, plane + static_cast<int64_t>(ih) * W, W, t.tw);
      }
      for (int i = 0; i < t.th; ++i) {
        const float *er[4], *orow[4];
        for (int r = 0; r < 4; ++r) {
          er[r] = pad.get() + static_cast<int64_t>(2 * i + r) * 2 * n;
          orow[r] = er[r] + n;
        }
        float* vp[kXi];
        t.row_ptrs(vp, v, C, c, img, i);
        if (avx512)
          input_tile_row_avx512(vp, er, orow, t.tw);
        else
          input_tile_row(vp, er, orow, scratch.get(), t.tw);
      }
    }
  });
}

// The adjoint of input_tile_row: adds B dv B^T of each tile onto four padded
// rows (E, O). Neighbouring tiles share two columns: the part a tile adds to
// columns 2j+2 and 2j+3 goes in a second pass.
QF_CLONES void input_tile_row_adjoint(float* const* __restrict er, float* const* __restrict orow,
                                      const float* const* __restrict dv, float* __restrict scratch, int tw) {
  // e = dv B^T for each of the 4 rows r: columns f0..f3, tw each.
  float* f = scratch;  // [r][k][j]
  for (int r = 0; r < 4; ++r) {
    const float *q0 = dv[r * 4], *q1 = dv[r * 4 + 1], *q2 = dv[r * 4 + 2], *q3 = dv[r * 4 + 3];
    float *f0 = f + (r * 4) * tw, *f1 = f0 + tw, *f2 = f1 + tw, *f3 = f2 + tw;
    #pragma omp simd
    for (int j = 0; j < tw; ++j) {
      f0[j] = q0[j];
      f1[j] = q1[j] - q2[j] + q3[j];
      f2[j] = q1[j] + q2[j] - q0[j];
      f3[j] = -q3[j];
    }
  }
  // B e down the columns, onto the rows: row 0 += e0, 1 += e1 - e2 + e3, 2 += e1 + e2 - e0, 3 -= e3.
  for (int k = 0; k < 4; ++k) {
    const float *e0 = f + k * tw, *e1 = f + (4 + k) * tw, *e2 = f + (8 + k) * tw, *e3 = f + (12 + k) * tw;
    float* dst[4];
    for (int r = 0; r < 4; ++r) dst[r] = (k % 2 == 0 ? er[r] : orow[r]) + k / 2;  // column 2j+k
    #pragma omp simd
    for (int j = 0; j < tw; ++j) {
      dst[0][j] += e0[j];
      dst[1][j] += e1[j] - e2[j] + e3[j];
      dst[2][j] += e1[j] + e2[j] - e0[j];
      dst[3][j] -= e3[j];
    }
  }
}

// dx row (W floats) += the padded row (E, O) inside the image.
QF_CLONES void add_row(float* __restrict dx, const float* __restrict e, const float* __restrict o, int w) {
  #pragma omp simd
  for (int k = 0; k < w / 2; ++k) {
    dx[2 * k] += o[k];
    dx[2 * k + 1] += e[k + 1];
  }
  if (w % 2) dx[w - 1] += o[w / 2];
}

// The adjoint of transform_input: the patches of each tile added onto the
// padded plane, then its inside onto dx.
void transform_input_adjoint(float* dx, const float* dv, const Conv2dShape& s, const Tiles& t, int n0) {
  const bool avx512 = use_avx512();
  const int C = s.c, H = s.h, W = s.w, n = t.tw + 1, rows = 2 * t.th + 2;
  parallel_for(static_cast<int64_t>(C) * t.nb, 1, [&](int64_t b, int64_t e) {
    const size_t npad = static_cast<size_t>(rows) * 2 * n;
    Scratch pad = scratch_floats(npad), scratch = scratch_floats(16 * t.tw);
    for (int64_t pc = b; pc < e; ++pc) {
      const int img = static_cast<int>(pc / C), c = static_cast<int>(pc % C);
      std::fill(pad.get(), pad.get() + npad, 0.f);
      for (int i = 0; i < t.th; ++i) {
        float *er[4], *orow[4];
        for (int r = 0; r < 4; ++r) {
          er[r] = pad.get() + static_cast<int64_t>(2 * i + r) * 2 * n;
          orow[r] = er[r] + n;
        }
        const float* dp[kXi];
        t.row_ptrs(dp, dv, C, c, img, i);
        if (avx512)
          input_tile_row_adjoint_avx512(er, orow, dp, t.tw);
        else
          input_tile_row_adjoint(er, orow, dp, scratch.get(), t.tw);
      }
      float* plane = dx + (static_cast<int64_t>(n0 + img) * C + c) * H * W;
      for (int ih = 0; ih < H; ++ih) {
        const float* row = pad.get() + static_cast<int64_t>(ih + 1) * 2 * n;
        add_row(plane + static_cast<int64_t>(ih) * W, row, row + n, W);
      }
    }
  });
}

// A^T m A for one tile row, A^T = [1 1 1 0; 0 1 -1 -1]: the two output rows
// as even (y[0], y[2]) and odd (y[1], y[3]) columns, tw each.
QF_CLONES void output_tile_row(float* const* __restrict y, const float* const* __restrict m, int tw) {
  float *y0e = y[0], *y0o = y[1], *y1e = y[2], *y1o = y[3];
  #pragma omp simd
  for (int j = 0; j < tw; ++j) {
    float s0[4], s1[4];
    for (int k = 0; k < 4; ++k) {
      s0[k] = m[k][j] + m[4 + k][j] + m[8 + k][j];
      s1[k] = m[4 + k][j] - m[8 + k][j] - m[12 + k][j];
    }
    y0e[j] = s0[0] + s0[1] + s0[2];
    y0o[j] = s0[1] - s0[2] - s0[3];
    y1e[j] = s1[0] + s1[1] + s1[2];
    y1o[j] = s1[1] - s1[2] - s1[3];
  }
}

QF_CLONES void interleave_row(float* __restrict out, const float* __restrict e, const float* __restrict o, int w) {
  #pragma omp simd
  for (int k = 0; k < w / 2; ++k) {
    out[2 * k] = e[k];
    out[2 * k + 1] = o[k];
  }
  if (w % 2) out[w - 1] = e[w / 2];
}

// out = A^T m A for each tile, written where the 2x2 outputs fall inside the image.
void transform_output(float* out, const float* m, const Conv2dShape& s, const Tiles& t, int n0) {
  const bool avx512 = use_avx512();
  const int OC = s.oc, OH = s.oh, OW = s.ow;
  parallel_for(static_cast<int64_t>(OC) * t.nb, 1, [&](int64_t b, int64_t e) {
    Scratch y = scratch_floats(4 * t.tw);
    float* yp[4] = {y.get(), y.get() + t.tw, y.get() + 2 * t.tw, y.get() + 3 * t.tw};
    for (int64_t pc = b; pc < e; ++pc) {
      const int img = static_cast<int>(pc / OC), o = static_cast<int>(pc % OC);
      float* plane = out + (static_cast<int64_t>(n0 + img) * OC + o) * OH * OW;
      for (int i = 0; i < t.th; ++i) {
        const float* mp[kXi];
        t.row_ptrs(mp, m, OC, o, img, i);
        float* y0 = plane + static_cast<int64_t>(2 * i) * OW;
        float* y1 = 2 * i + 1 < OH ? y0 + OW : nullptr;
        if (avx512) {
          output_tile_row_avx512(y0, y1, mp, t.tw, OW);
          continue;
        }
        output_tile_row(yp, mp, t.tw);
        interleave_row(y0, yp[0], yp[1], OW);
        if (y1) interleave_row(y1, yp[2], yp[3], OW);
      }
    }
  });
}

// dm = A dy A^T for one tile row, from the two gradient rows as even and odd columns (zero outside).
QF_CLONES void output_tile_row_adjoint(float* const* __restrict m, const float* const* __restrict y, int tw) {
  const float *y0e = y[0], *y0o = y[1], *y1e = y[2], *y1o = y[3];
  #pragma omp simd
  for (int j = 0; j < tw; ++j) {
    const float a = y0e[j], bb = y0o[j], c = y1e[j], d = y1o[j];
    const float u0[4] = {a, a + bb, a - bb, -bb}, u1[4] = {c, c + d, c - d, -d};  // dy A^T
    for (int k = 0; k < 4; ++k) {                                               // A (dy A^T)
      m[k][j] = u0[k];
      m[4 + k][j] = u0[k] + u1[k];
      m[8 + k][j] = u0[k] - u1[k];
      m[12 + k][j] = -u1[k];
    }
  }
}

// Row (W floats) -> its even and odd columns, tw each, zero past the end.
QF_CLONES void deinterleave_row(float* __restrict e, float* __restrict o, const float* __restrict x, int w, int tw) {
  #pragma omp simd
  for (int k = 0; k < w / 2; ++k) {
    e[k] = x[2 * k];
    o[k] = x[2 * k + 1];
  }
  for (int k = w / 2; k < tw; ++k) e[k] = o[k] = 0.f;
  if (w % 2) e[w / 2] = x[w - 1];
}

// The adjoint of transform_output: dm = A dy A^T for each tile's 2x2 output
// gradient (zero outside the image).
void transform_output_adjoint(float* dm, const float* dy, const Conv2dShape& s, const Tiles& t, int n0) {
  const bool avx512 = use_avx512();
  const int OC = s.oc, OH = s.oh, OW = s.ow;
  parallel_for(static_cast<int64_t>(OC) * t.nb, 1, [&](int64_t b, int64_t e) {
    Scratch y = scratch_floats(4 * t.tw);
    float* yp[4] = {y.get(), y.get() + t.tw, y.get() + 2 * t.tw, y.get() + 3 * t.tw};
    for (int64_t pc = b; pc < e; ++pc) {
      const int img = static_cast<int>(pc / OC), o = static_cast<int>(pc % OC);
      const float* plane = dy + (static_cast<int64_t>(n0 + img) * OC + o) * OH * OW;
      for (int i = 0; i < t.th; ++i) {
        const float* y0 = plane + static_cast<int64_t>(2 * i) * OW;
        const float* y1 = 2 * i + 1 < OH ? y0 + OW : nullptr;
        float* mp[kXi];
        t.row_ptrs(mp, dm, OC, o, img, i);
        if (avx512) {
          output_tile_row_adjoint_avx512(mp, y0, y1, t.tw, OW);
          continue;
        }
        deinterleave_row(yp[0], yp[1], y0, OW, t.tw);
        if (y1)
          deinterleave_row(yp[2], yp[3], y1, OW, t.tw);
        else
          std::fill(y.get() + 2 * t.tw, y.get() + 4 * t.tw, 0.f);
        output_tile_row_adjoint(mp, yp, t.tw);
      }
    }
  });
}

// One product per transformed element; the 16 are spread over the threads.
template <typename F>
void for_each_xi(F&& f) {
  parallel_for(kXi, 1, [&](int64_t b, int64_t e) {
    for (int64_t x = b; x < e; ++x) f(static_cast<int>(x));
  });
}

}  // namespace

bool winograd_applies(const Conv2dShape& s) {
  const Conv2dArgs& a = s.a;
  if (!(s.kh == 3 && s.kw == 3 && a.stride_h == 1 && a.stride_w == 1 && a.pad_h == 1 && a.pad_w == 1 &&
        a.dil_h == 1 && a.dil_w == 1 && a.groups == 1))
    return false;
  // With fewer than 32 tiles in all, the 16 products are too thin to pay for
  // the transforms (ResNet18's 7x7 layers at batch 1: 0.56x of im2col).
  const int64_t tiles = static_cast<int64_t>(s.n) * ((s.oh + 1) / 2) * ((s.ow + 1) / 2);
  return tiles >= 32;
}

void winograd_forward(float* out, const float* inp, const float* weight, const Conv2dShape& s, int chunk_images) {
  const int C = s.c, OC = s.oc;
  const Tiles full = make_tiles(s, chunk_images);
  auto u = scratch_floats(static_cast<size_t>(kXi) * OC * C), v = scratch_floats(kXi * C * full.tc), m = scratch_floats(kXi * OC * full.tc);
  transform_filter(u.get(), weight, OC, C);
  for (int n0 = 0; n0 < s.n; n0 += full.nb) {
    const Tiles t = last_chunk(full, std::min(full.nb, s.n - n0));
    transform_input(v.get(), inp, s, t, n0);
    for_each_xi([&](int x) {
      sgemm(false, false, OC, static_cast<int>(t.tc), C, 1.f, u.get() + static_cast<int64_t>(x) * OC * C, C,
            v.get() + x * C * t.tc, static_cast<int>(t.tc), 0.f, m.get() + x * OC * t.tc, static_cast<int>(t.tc));
    });
    transform_output(out, m.get(), s, t, n0);
  }
}

void winograd_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const Conv2dShape& s, int chunk_images) {
  if (!dinp && !dweight) return;
  const int C = s.c, OC = s.oc;
  const Tiles full = make_tiles(s, chunk_images);
  const size_t nu = static_cast<size_t>(kXi) * OC * C;
  Scratch u, du;
  auto v = scratch_floats(kXi * C * full.tc), dm = scratch_floats(kXi * OC * full.tc);
  if (dinp) {
    u = scratch_floats(nu);
    transform_filter(u.get(), weight, OC, C);
  }
  if (dweight) {
    du = scratch_floats(nu);
    std::fill(du.get(), du.get() + nu, 0.f);  // the chunks add into it
  }
  for (int n0 = 0; n0 < s.n; n0 += full.nb) {
    const Tiles t = last_chunk(full, std::min(full.nb, s.n - n0));
    const int tc = static_cast<int>(t.tc);
    transform_output_adjoint(dm.get(), dout, s, t, n0);
    if (dweight) transform_input(v.get(), inp, s, t, n0);
    for_each_xi([&](int x) {
      const float* dmx = dm.get() + x * OC * t.tc;
      float* vx = v.get() + x * C * t.tc;
      const int64_t ux = static_cast<int64_t>(x) * OC * C;
      if (dweight) sgemm(false, true, OC, C, tc, 1.f, dmx, tc, vx, tc, 1.f, du.get() + ux, C);  // du += dm v^T
      if (dinp) sgemm(true, false, C, tc, OC, 1.f, u.get() + ux, C, dmx, tc, 0.f, vx, tc);     // dv = u^T dm
    });
    if (dinp) transform_input_adjoint(dinp, v.get(), s, t, n0);
  }
  if (dweight) transform_filter_adjoint(dweight, du.get(), OC, C);
}

}  // namespace qforge

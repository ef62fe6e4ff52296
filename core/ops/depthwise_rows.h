// The depthwise plane kernels' source, included once by each ISA's file
// (depthwise_rows.cpp, depthwise_rows__avx2.cpp, depthwise_rows__avx512.cpp),
// which the build compiles with that ISA's flags and -ffp-contract=off. Every
// function here has internal linkage, so each file keeps its own copy: an
// inline function shared across them would let the linker pick one ISA's
// code for all.
//
// Vectorisation is along a row, and only where every lane does the same
// operations in the same order as the scalar code (GCC never reassociates
// floats without -ffast-math): the instruction set changes speed, not bits.
// The weight-gradient sums keep 16 partial sums per tap (kLanes), one per
// position modulo 16 along the run, whatever the vector width, for the same
// reason. (Nothing here is emitted out of line with external linkage, which
// the linker could share with code built for another ISA: the objects hold
// no weak symbols.)
//
// Each kernel handles the 3x3 (dilation 1) stride 1 and stride 2 layers of a
// MobileNet with rows split into the columns whose taps are all inside the
// row (vectorised) and the few near the edges (scalar, checked); rows of the
// padding read a row of zeros. Stride-1 planes narrower than kFlatBelow
// instead run on a padded copy, all rows as one (the flattened layout,
// depthwise_kernels.h); at stride 2 that layout would waste half the lanes,
// so the weight gradient of narrow stride-2 planes splits the input by row
// and column parity into quarter planes instead (QuarterLayout), where every
// tap is a contiguous run (the forward measured faster on rows).
// Other geometries take the general loops.
#ifndef QFORGE_DEPTHWISE_ISA
#error "depthwise_rows.h is included only by the depthwise_rows*.cpp files"
#endif
#include <algorithm>
#include <cstdint>

#include "core/ops/depthwise_kernels.h"

namespace qforge::depthwise_detail {
namespace {

constexpr int kLanes = 16;

int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int ceil_div(int a, int b) { return -floor_div(-a, b); }

bool is_3x3(const PlaneGeo& g) { return g.kh == 3 && g.kw == 3 && g.dh == 1 && g.dw == 1; }

// Output columns [lo, hi) whose input column x * s + off lies in [0, w).
void valid_cols(int off, int s, int w, int ow, int& lo, int& hi) {
  lo = std::clamp(ceil_div(-off, s), 0, ow);
  hi = std::clamp(floor_div(w - 1 - off, s) + 1, lo, ow);
}

// Output columns [lo, hi) of a 3x3 kernel whose three taps are all inside the row.
template <int S>
void interior_3x3(const PlaneGeo& g, int& lo, int& hi) {
  lo = std::clamp(ceil_div(g.pw, S), 0, g.ow);
  hi = std::clamp(floor_div(g.w - 3 + g.pw, S) + 1, lo, g.ow);
}

// Row r of a plane of width w and height h, or the zero row outside it.
const float* row_or_zeros(const float* plane, int r, int h, int w, const float* zeros) {
  return r >= 0 && r < h ? plane + static_cast<int64_t>(r) * w : zeros;
}

// ---------------------------------------------------------------------------
// Forward, 3x3: out (OH,OW) = bias (or out itself, ACC) + correlation of in (H,W) with w.

// o[j] = init + sum_{k,l} w[3k+l] * r_k[S*j + l], taps in row-major order.
template <int S, bool ACC>
void row_3x3(float* __restrict o, const float* __restrict a, const float* __restrict b, const float* __restrict c,
             const float* w, float bias, int n) {
  const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8];
  for (int j = 0; j < n; ++j) {
    float s = ACC ? o[j] : bias;
    s += w0 * a[S * j];
    s += w1 * a[S * j + 1];
    s += w2 * a[S * j + 2];
    s += w3 * b[S * j];
    s += w4 * b[S * j + 1];
    s += w5 * b[S * j + 2];
    s += w6 * c[S * j];
    s += w7 * c[S * j + 1];
    s += w8 * c[S * j + 2];
    o[j] = s;
  }
}

template <int S, bool ACC>
void forward_3x3(float* out, const float* in, const float* w, float bias, const PlaneGeo& g, const float* zeros) {
  int lo, hi;
  interior_3x3<S>(g, lo, hi);
  for (int y = 0; y < g.oh; ++y) {
    const float* r[3];
    for (int k = 0; k < 3; ++k) r[k] = row_or_zeros(in, y * S - g.ph + k, g.h, g.w, zeros);
    float* o = out + static_cast<int64_t>(y) * g.ow;
    // The same sums as row_3x3, less the taps outside the row.
    auto edge = [&](int x) {
      float s = ACC ? o[x] : bias;
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) {
          const int ix = x * S - g.pw + l;
          if (ix >= 0 && ix < g.w) s += w[3 * k + l] * r[k][ix];
        }
      o[x] = s;
    };
    for (int x = 0; x < lo; ++x) edge(x);
    const int off = lo * S - g.pw;
    row_3x3<S, ACC>(o + lo, r[0] + off, r[1] + off, r[2] + off, w, bias, hi - lo);
    for (int x = hi; x < g.ow; ++x) edge(x);
  }
}

// The padded copy of a flattened layout: P[r][c] = in[r - ph][c - pw], zero
// outside the input (columns past wp are never read).
void pad_plane(float* p, const float* in, const PlaneGeo& g, const FlatLayout& f) {
  std::fill(p, p + f.p_size, 0.f);
  const int cols = std::min(f.wp - g.pw, g.w);
  if (cols <= 0) return;
  const long rows = f.p_size / f.wp;
  for (long r = 0; r < rows; ++r) {
    const long iy = r - g.ph;
    if (iy < 0 || iy >= g.h) continue;
    std::copy(in + iy * g.w, in + iy * g.w + cols, p + r * f.wp + g.pw);
  }
}

// forward_3x3 on the flattened layout: one row_3x3 over all output rows at
// once, as if the plane were one row of wp-wide pieces; the junk columns
// between rows are computed and dropped.
template <int S, bool ACC>
void forward_3x3_flat(float* out, const float* in, const float* w, float bias, const PlaneGeo& g, float* work) {
  const FlatLayout f = flat_layout(g, S);
  float *p = work, *o = work + f.p_size;
  pad_plane(p, in, g, f);
  if (ACC) {
    std::fill(o, o + f.len, 0.f);
    for (int y = 0; y < g.oh; ++y)
      std::copy(out + static_cast<int64_t>(y) * g.ow, out + static_cast<int64_t>(y + 1) * g.ow, o + y * f.wp);
  }
  row_3x3<S, ACC>(o, p, p + f.wp, p + 2 * f.wp, w, bias, static_cast<int>(f.len));
  for (int y = 0; y < g.oh; ++y) std::copy(o + y * f.wp, o + y * f.wp + g.ow, out + static_cast<int64_t>(y) * g.ow);
}

// The quarter planes of a stride-2 3x3 plane (QuarterLayout) and, in taps,
// where each tap's run starts: tap (k, l) reads quarter (k % 2, l % 2) from
// row k / 2, column l / 2.
void quarter_planes(float* q, const float* in, const PlaneGeo& g, const QuarterLayout& ql, const float** taps) {
  std::fill(q, q + 4 * ql.qs, 0.f);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      float* dst = q + (2 * a + b) * ql.qs;
      for (int u = 0; u <= g.oh; ++u) {
        const int iy = 2 * u + a - g.ph;
        if (iy < 0 || iy >= g.h) continue;
        const float* __restrict r = in + static_cast<int64_t>(iy) * g.w + b - g.pw;
        float* __restrict o = dst + u * ql.wq;
        int lo, hi;
        valid_cols(b - g.pw, 2, g.w, ql.wq, lo, hi);
        for (int v = lo; v < hi; ++v) o[v] = r[2 * v];
      }
    }
  for (int k = 0; k < 3; ++k)
    for (int l = 0; l < 3; ++l) taps[3 * k + l] = q + (2 * (k % 2) + l % 2) * ql.qs + (k / 2) * ql.wq + l / 2;
}

template <int S, bool ACC>
void forward_3x3_any(float* out, const float* in, const float* w, float bias, const PlaneGeo& g, const float* zeros,
                     float* work) {
  if (S == 1 && g.ow < kFlatBelow) return forward_3x3_flat<S, ACC>(out, in, w, bias, g, work);
  forward_3x3<S, ACC>(out, in, w, bias, g, zeros);
}

// Any kernel, stride, padding and dilation: tap by tap over the valid columns.
void forward_general(float* out, const float* in, const float* w, float bias, const PlaneGeo& g) {
  for (int y = 0; y < g.oh; ++y) {
    float* __restrict o = out + static_cast<int64_t>(y) * g.ow;
    for (int x = 0; x < g.ow; ++x) o[x] = bias;
    for (int ky = 0; ky < g.kh; ++ky) {
      const int iy = y * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      const float* __restrict r = in + static_cast<int64_t>(iy) * g.w;
      for (int kx = 0; kx < g.kw; ++kx) {
        const int off = kx * g.dw - g.pw;
        int lo, hi;
        valid_cols(off, g.sw, g.w, g.ow, lo, hi);
        const float wv = w[ky * g.kw + kx];
        if (g.sw == 1) {
          for (int x = lo; x < hi; ++x) o[x] += wv * r[x + off];
        } else {
          for (int x = lo; x < hi; ++x) o[x] += wv * r[x * g.sw + off];
        }
      }
    }
  }
}

void forward(float* out, const float* in, const float* w, float bias, const PlaneGeo& g, const float* zeros,
             float* work) {
  if (is_3x3(g) && g.sh == 1 && g.sw == 1) return forward_3x3_any<1, false>(out, in, w, bias, g, zeros, work);
  if (is_3x3(g) && g.sh == 2 && g.sw == 2) return forward_3x3_any<2, false>(out, in, w, bias, g, zeros, work);
  forward_general(out, in, w, bias, g);
}

// ---------------------------------------------------------------------------
// Input gradient: dinp (H,W) += the transposed correlation of dout (OH,OW) with w.
// forward: out[y][x] += w[ky][kx] * in[y*sh - ph + ky*dh][x*sw - pw + kx*dw]

// Stride 2, 3x3: input column 2i - pw (even: taps kx = 0 at output column i
// and kx = 2 at i - 1) and 2i + 1 - pw (odd: kx = 1 at i), for R output rows.
template <int R>
void row_3x3_s2_adjoint(float* __restrict d, const float* __restrict a, const float* wa, const float* __restrict b,
                        const float* wb, int n) {
  const float a0 = wa[0], a1 = wa[1], a2 = wa[2];
  const float b0 = R == 2 ? wb[0] : 0.f, b1 = R == 2 ? wb[1] : 0.f, b2 = R == 2 ? wb[2] : 0.f;
  for (int j = 0; j < n; ++j) {
    float e = d[2 * j], o = d[2 * j + 1];
    e += a0 * a[j];
    e += a2 * a[j - 1];
    o += a1 * a[j];
    if (R == 2) {
      e += b0 * b[j];
      e += b2 * b[j - 1];
      o += b1 * b[j];
    }
    d[2 * j] = e;
    d[2 * j + 1] = o;
  }
}

void backward_input_3x3_s2(float* dinp, const float* dout, const float* w, const PlaneGeo& g, const float* zeros) {
  // Pairs i whose taps are all inside: output columns i - 1, i and input columns 2i - pw, 2i + 1 - pw.
  const int ilo = std::max(1, ceil_div(g.pw, 2)), ihi = std::min(g.ow - 1, floor_div(g.w - 2 + g.pw, 2));
  const int n = std::max(0, ihi - ilo + 1);
  const int xlo = n ? 2 * ilo - g.pw : g.w, xhi = n ? 2 * ihi + 2 - g.pw : g.w;  // the columns the pairs cover
  for (int iy = 0; iy < g.h; ++iy) {
    // Kernel rows ky with iy + ph - ky = 2 * oy: ky = 0 and 2 (rows oy, oy - 1), or ky = 1.
    const int q = iy + g.ph, rows = q % 2 == 0 ? 2 : 1;
    const int ky[2] = {q % 2 == 0 ? 0 : 1, 2};
    const float* r[2];
    for (int k = 0; k < rows; ++k) r[k] = row_or_zeros(dout, (q - ky[k]) / 2, g.oh, g.ow, zeros);
    float* d = dinp + static_cast<int64_t>(iy) * g.w;
    // The same sums as row_3x3_s2_adjoint, less the taps outside the output row.
    auto edge = [&](int x) {
      float s = d[x];
      for (int k = 0; k < rows; ++k)
        for (int kx = 0; kx < 3; ++kx) {
          const int p = x + g.pw - kx;
          if (p >= 0 && p % 2 == 0 && p / 2 < g.ow) s += w[3 * ky[k] + kx] * r[k][p / 2];
        }
      d[x] = s;
    };
    for (int x = 0; x < xlo; ++x) edge(x);
    if (rows == 2)
      row_3x3_s2_adjoint<2>(d + xlo, r[0] + ilo, w, r[1] + ilo, w + 6, n);
    else
      row_3x3_s2_adjoint<1>(d + xlo, r[0] + ilo, w + 3, nullptr, nullptr, n);
    for (int x = xhi; x < g.w; ++x) edge(x);
  }
}

void backward_input_general(float* dinp, const float* dout, const float* w, const PlaneGeo& g) {
  for (int y = 0; y < g.oh; ++y) {
    const float* d = dout + static_cast<int64_t>(y) * g.ow;
    for (int ky = 0; ky < g.kh; ++ky) {
      const int iy = y * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      float* r = dinp + static_cast<int64_t>(iy) * g.w;
      for (int kx = 0; kx < g.kw; ++kx) {
        const int off = kx * g.dw - g.pw;
        int lo, hi;
        valid_cols(off, g.sw, g.w, g.ow, lo, hi);
        const float wv = w[ky * g.kw + kx];
        for (int x = lo; x < hi; ++x) r[x * g.sw + off] += wv * d[x];
      }
    }
  }
}

void backward_input(float* dinp, const float* dout, const float* w, const PlaneGeo& g, const float* zeros,
                    float* work) {
  if (is_3x3(g) && g.sh == 1 && g.sw == 1 && g.ph <= 2 && g.pw <= 2) {
    // Stride 1: a forward correlation of dout with the flipped kernel and padding 2 - p.
    float flipped[9];
    for (int i = 0; i < 9; ++i) flipped[i] = w[8 - i];
    const PlaneGeo t{g.oh, g.ow, g.h, g.w, 3, 3, 1, 1, 2 - g.ph, 2 - g.pw, 1, 1};
    return forward_3x3_any<1, true>(dinp, dout, flipped, 0.f, t, zeros, work);
  }
  if (is_3x3(g) && g.sh == 2 && g.sw == 2) return backward_input_3x3_s2(dinp, dout, w, g, zeros);
  backward_input_general(dinp, dout, w, g);
}

// ---------------------------------------------------------------------------
// Weight and bias gradients: per tap, sum over the plane of dout * input.

// acc[t][j] += d[j] * r_k[S*j + l] for t = 3k + l, j < kLanes.
template <int S>
void lanes_3x3(float (&acc)[9][kLanes], const float* __restrict d, const float* __restrict a, const float* __restrict b,
               const float* __restrict c) {
  for (int j = 0; j < kLanes; ++j) {
    const float v = d[j];
    acc[0][j] += v * a[S * j];
    acc[1][j] += v * a[S * j + 1];
    acc[2][j] += v * a[S * j + 2];
    acc[3][j] += v * b[S * j];
    acc[4][j] += v * b[S * j + 1];
    acc[5][j] += v * b[S * j + 2];
    acc[6][j] += v * c[S * j];
    acc[7][j] += v * c[S * j + 1];
    acc[8][j] += v * c[S * j + 2];
  }
}

// The plane's sum of dout, in kLanes partial sums.
float plane_sum(const float* d, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += d[i + j];
  float s = 0.f;
  for (; i < n; ++i) s += d[i];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

template <int S>
void backward_weight_3x3(float* sums, const float* dout, const float* in, const PlaneGeo& g, const float* zeros) {
  int lo, hi;
  interior_3x3<S>(g, lo, hi);
  float acc[9][kLanes] = {}, rest[9] = {};
  for (int y = 0; y < g.oh; ++y) {
    const float* r[3];
    for (int k = 0; k < 3; ++k) r[k] = row_or_zeros(in, y * S - g.ph + k, g.h, g.w, zeros);
    const float* d = dout + static_cast<int64_t>(y) * g.ow;
    auto scalar = [&](int x) {
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) {
          const int ix = x * S - g.pw + l;
          if (ix >= 0 && ix < g.w) rest[3 * k + l] += d[x] * r[k][ix];
        }
    };
    for (int x = 0; x < lo; ++x) scalar(x);
    int x = lo;
    for (; x + kLanes <= hi; x += kLanes) {
      const int off = x * S - g.pw;
      lanes_3x3<S>(acc, d + x, r[0] + off, r[1] + off, r[2] + off);
    }
    for (; x < g.ow; ++x) scalar(x);
  }
  for (int t = 0; t < 9; ++t) {
    float s = rest[t];
    for (int j = 0; j < kLanes; ++j) s += acc[t][j];
    sums[t] = s;
  }
  sums[9] = plane_sum(dout, static_cast<int64_t>(g.oh) * g.ow);
}

// backward_weight_3x3 on the flattened layout: whole 16-lane chunks over all
// rows at once, dout copied into rows of wp with zeros in the junk columns
// (whose products are 0 unless the input holds an infinity or a NaN).
template <int S>
void backward_weight_3x3_flat(float* sums, const float* dout, const float* in, const PlaneGeo& g, float* work) {
  const FlatLayout f = flat_layout(g, S);
  float *p = work, *d = work + f.p_size;
  pad_plane(p, in, g, f);
  std::fill(d, d + f.len, 0.f);
  for (int y = 0; y < g.oh; ++y)
    std::copy(dout + static_cast<int64_t>(y) * g.ow, dout + static_cast<int64_t>(y + 1) * g.ow, d + y * f.wp);
  float acc[9][kLanes] = {};
  for (long i = 0; i < f.len; i += kLanes) lanes_3x3<S>(acc, d + i, p + S * i, p + S * i + f.wp, p + S * i + 2 * f.wp);
  for (int t = 0; t < 9; ++t) {
    float s = 0.f;
    for (int j = 0; j < kLanes; ++j) s += acc[t][j];
    sums[t] = s;
  }
  sums[9] = plane_sum(dout, static_cast<int64_t>(g.oh) * g.ow);
}

// acc[t][j] += d[j] * p[t][j] for j < kLanes.
void lanes_9(float (&acc)[9][kLanes], const float* __restrict d, const float* const* p) {
  const float* __restrict p0 = p[0];
  const float* __restrict p1 = p[1];
  const float* __restrict p2 = p[2];
  const float* __restrict p3 = p[3];
  const float* __restrict p4 = p[4];
  const float* __restrict p5 = p[5];
  const float* __restrict p6 = p[6];
  const float* __restrict p7 = p[7];
  const float* __restrict p8 = p[8];
  for (int j = 0; j < kLanes; ++j) {
    const float v = d[j];
    acc[0][j] += v * p0[j];
    acc[1][j] += v * p1[j];
    acc[2][j] += v * p2[j];
    acc[3][j] += v * p3[j];
    acc[4][j] += v * p4[j];
    acc[5][j] += v * p5[j];
    acc[6][j] += v * p6[j];
    acc[7][j] += v * p7[j];
    acc[8][j] += v * p8[j];
  }
}

// backward_weight_3x3<2> on the quarter planes, dout in rows of wq with a zero junk column.
void backward_weight_3x3_s2_quarters(float* sums, const float* dout, const float* in, const PlaneGeo& g, float* work) {
  const QuarterLayout ql = quarter_layout(g);
  const float* taps[9];
  quarter_planes(work, in, g, ql, taps);
  float* d = work + 4 * ql.qs;
  std::fill(d, d + ql.len, 0.f);
  for (int y = 0; y < g.oh; ++y)
    std::copy(dout + static_cast<int64_t>(y) * g.ow, dout + static_cast<int64_t>(y + 1) * g.ow, d + y * ql.wq);
  float acc[9][kLanes] = {};
  for (long i = 0; i < ql.len; i += kLanes) {
    const float* p[9];
    for (int t = 0; t < 9; ++t) p[t] = taps[t] + i;
    lanes_9(acc, d + i, p);
  }
  for (int t = 0; t < 9; ++t) {
    float s = 0.f;
    for (int j = 0; j < kLanes; ++j) s += acc[t][j];
    sums[t] = s;
  }
  sums[9] = plane_sum(dout, static_cast<int64_t>(g.oh) * g.ow);
}

void backward_weight_general(float* sums, const float* dout, const float* in, const PlaneGeo& g) {
  for (int ky = 0; ky < g.kh; ++ky)
    for (int kx = 0; kx < g.kw; ++kx) {
      const int off = kx * g.dw - g.pw;
      int lo, hi;
      valid_cols(off, g.sw, g.w, g.ow, lo, hi);
      double total = 0;
      for (int y = 0; y < g.oh; ++y) {
        const int iy = y * g.sh - g.ph + ky * g.dh;
        if (iy < 0 || iy >= g.h) continue;
        const float* d = dout + static_cast<int64_t>(y) * g.ow;
        const float* r = in + static_cast<int64_t>(iy) * g.w;
        float s = 0.f;
        for (int x = lo; x < hi; ++x) s += d[x] * r[x * g.sw + off];
        total += s;
      }
      sums[ky * g.kw + kx] = static_cast<float>(total);
    }
  sums[g.kh * g.kw] = plane_sum(dout, static_cast<int64_t>(g.oh) * g.ow);
}

void backward_weight(float* sums, const float* dout, const float* in, const PlaneGeo& g, const float* zeros,
                     float* work) {
  if (is_3x3(g) && g.ow < kFlatBelow && g.sh == 1 && g.sw == 1)
    return backward_weight_3x3_flat<1>(sums, dout, in, g, work);
  if (is_3x3(g) && g.ow < kFlatBelow && g.sh == 2 && g.sw == 2)
    return backward_weight_3x3_s2_quarters(sums, dout, in, g, work);
  if (is_3x3(g) && g.sh == 1 && g.sw == 1) return backward_weight_3x3<1>(sums, dout, in, g, zeros);
  if (is_3x3(g) && g.sh == 2 && g.sw == 2) return backward_weight_3x3<2>(sums, dout, in, g, zeros);
  backward_weight_general(sums, dout, in, g);
}

}  // namespace

const DepthwiseKernels QFORGE_DEPTHWISE_ISA = {QFORGE_DEPTHWISE_NAME, forward, backward_input, backward_weight};

}  // namespace qforge::depthwise_detail

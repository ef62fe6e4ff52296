// The Winograd tile runs (BlockKernels' input, output and output_adjoint) written once for a lane
// type V of L floats: float and 1 for the portable blocks, GCC's generic 64-byte vector and 16 for
// the SIMD ones. Each lane is one channel and runs the same operations in the same order
// (winograd_f4x4_blocks.h), so every level gives the same bits. And the channels-last layout
// passes for the SIMD levels, by 16x16 transposes. Internal linkage, as transpose16.h: each kernel
// file keeps its own copy built with its own flags.
#pragma once
#include <algorithm>
#include <cstring>

#include "core/kernels/transpose16.h"
#include "core/kernels/winograd_f4x4_blocks.h"

// GCC warns that a 64-byte vector returned at level avx2 has another ABI than at avx512: every
// function here has internal linkage and is inlined, so no call crosses levels.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace qforge::winograd_detail {
namespace {

template <class V>
inline V load_lanes(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class V>
inline void store_lanes(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

template <class V, int L>
void input_tiles(float* v, int64_t xs, const float* x, int64_t rs, int cp, int tiles) {
  for (int j = 0; j < tiles; ++j, x += 4 * cp, v += cp)
    for (int c = 0; c < cp; c += L) {
      V d[kXi], o[kXi];
      for (int r = 0; r < 6; ++r)
        for (int q = 0; q < 6; ++q) d[r * 6 + q] = load_lanes<V>(x + r * rs + q * cp + c);
      input_2d(o, d);
      for (int xi = 0; xi < kXi; ++xi) store_lanes(v + xi * xs + c, o[xi]);
    }
}

template <class V, int L>
void output_tiles(float* y, int64_t rs, const float* m, int64_t xs, int cp, int tiles) {
  for (int j = 0; j < tiles; ++j, y += 4 * cp, m += cp)
    for (int c = 0; c < cp; c += L) {
      V mm[kXi], o[16];
      for (int xi = 0; xi < kXi; ++xi) mm[xi] = load_lanes<V>(m + xi * xs + c);
      output_2d(o, mm);
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) store_lanes(y + a * rs + b * cp + c, o[a * 4 + b]);
    }
}

template <class V, int L>
void output_adjoint_tiles(float* dm, int64_t xs, const float* dy, int64_t rs, int cp, int tiles) {
  for (int j = 0; j < tiles; ++j, dy += 4 * cp, dm += cp)
    for (int c = 0; c < cp; c += L) {
      V g[16], o[kXi];
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) g[a * 4 + b] = load_lanes<V>(dy + a * rs + b * cp + c);
      output_adjoint_2d(o, g);
      for (int xi = 0; xi < kXi; ++xi) store_lanes(dm + xi * xs + c, o[xi]);
    }
}

// The layout passes by 16 pixels at a time, in the order the channels' planes hold them (one
// stream per channel), turned by a 16x16 transpose. Mem reads and writes the first n of 16 floats
// (n < 16: a plane's last pixels), the rest read as zeros: Mem::load(&v, p, n), Mem::store(p, &v,
// n) (v by pointer: no 64-byte vector crosses a call's ABI).

// Where the channels-last copy keeps flat pixel p0 + j, j = 0, 1, ...: row y, column x.
struct PixelWalk {
  int y, x;
  PixelWalk(int64_t p, int w) : y(static_cast<int>(p / w)), x(static_cast<int>(p % w)) {}
  void next(int w) {
    if (++x == w) x = 0, ++y;
  }
};

template <class Mem>
void to_nhwc_vec(float* dst, int64_t rs, int64_t ps, const float* src, int64_t cs, int h, int w, int nc) {
  const int64_t hw = static_cast<int64_t>(h) * w;
  for (int64_t p0 = 0; p0 < hw; p0 += 16) {
    const int n = static_cast<int>(std::min<int64_t>(16, hw - p0));
    Floats16 r[16];
    for (int i = 0; i < 16; ++i)
      if (i < nc)
        Mem::load(&r[i], src + i * cs + p0, n);
      else
        r[i] = Floats16{};
    transpose16(r);  // r[j] lane i: pixel p0 + j of channel i
    PixelWalk at(p0, w);
    for (int j = 0; j < n; ++j, at.next(w)) store_lanes(dst + at.y * rs + at.x * ps, r[j]);
  }
}

template <class Mem>
void from_nhwc_vec(float* dst, int64_t cs, const float* src, int64_t rs, int64_t ps, int h, int w, int nc,
                   bool accumulate, const ChannelFinish& fin) {
  const Floats16 zero{}, hi = zero + fin.hi;
  const int64_t hw = static_cast<int64_t>(h) * w;
  for (int64_t p0 = 0; p0 < hw; p0 += 16) {
    const int n = static_cast<int>(std::min<int64_t>(16, hw - p0));
    Floats16 r[16];
    PixelWalk at(p0, w);
    for (int j = 0; j < 16; ++j, at.next(w))
      r[j] = j < n ? load_lanes<Floats16>(src + at.y * rs + at.x * ps) : Floats16{};
    transpose16(r);  // r[i] lane j: pixel p0 + j of channel i
    for (int i = 0; i < nc; ++i) {
      float* d = dst + i * cs + p0;
      if (accumulate) {
        Floats16 old;
        Mem::load(&old, d, n);
        r[i] = old + r[i];
      } else if (fin.relu) {  // the reference's selects, lane by lane
        const Floats16 v = r[i] + (fin.bias ? fin.bias[i] : 0.f);
        const Floats16 c = v > zero ? v : zero;
        r[i] = c < hi ? c : hi;
      } else if (fin.bias) {
        r[i] = r[i] + fin.bias[i];
      }
      Mem::store(d, &r[i], n);
    }
  }
}

}  // namespace
}  // namespace qforge::winograd_detail

// The loops of the fake-quantization kernels, for fake_quant__*.cpp only.
// Everything here is in an unnamed namespace: each kernel file, compiled with
// its own ISA's flags, gets its own copies (a shared inline copy could run
// AVX2 code on any CPU, or the wrong level's rounding).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/kernels/fake_quant.h"

#define QF_INLINE inline __attribute__((always_inline))

namespace qforge::quant::fq {
namespace {

// quant/qparams.h's dequantize_val, term for term, with internal linkage: an
// inline function shared with generic code could be replaced at link time by
// the copy compiled with AVX2.
QF_INLINE float dequantize_val(int32_t q, float scale, int32_t zp) { return static_cast<float>(q - zp) * scale; }

// quantize_val(x, c.inv_scale, c.zp, c.qmin - 1, c.qmax + 1), term for term:
// the same std::nearbyint of the same float product, and its fmax / fmin
// clamps written as compares. For a non-NaN bound fmax(r, lo) and
// (r > lo ? r : lo) agree for every r, NaN included (both give lo); a -0 / +0
// difference vanishes in the int conversion. GCC inlines and vectorises the
// compares, while std::fmax stays a libm call (~10x slower). Tests check the
// result equals quantize_val on ties, clamps, NaN and infinities.
QF_INLINE int32_t quantize_wide(float x, const Chan& c) {
  float r = std::nearbyint(x * c.inv_scale);
  r = r > c.rlo ? r : c.rlo;
  r = r < c.rhi ? r : c.rhi;
  return static_cast<int32_t>(r) + c.zp;
}

QF_INLINE int32_t clamp_q(int32_t w, const Chan& c) { return w < c.qmin ? c.qmin : (w > c.qmax ? c.qmax : w); }

// Calls f(begin, end, channel) on the runs of equal channel within [b, e).
template <class F>
QF_INLINE void for_each_run(const Layout& L, int64_t b, int64_t e, F&& f) {
  if (L.channels == 1) {
    if (b < e) f(b, e, 0);
    return;
  }
  for (int64_t i = b; i < e;) {
    const int64_t blk = i / L.inner;
    const int64_t re = std::min(e, (blk + 1) * L.inner);
    f(i, re, blk % L.channels);
    i = re;
  }
}

// Bytes (each 0 or 1) to bits, little-endian within each 64-bit word; n <= kTile,
// padded with zeros to a whole word.
QF_INLINE void pack_mask(uint64_t* words, uint8_t* bytes, int64_t n) {
  const int64_t nw = (n + 63) / 64;
  for (int64_t i = n; i < nw * 64; ++i) bytes[i] = 0;
  for (int64_t w = 0; w < nw; ++w) {
    uint64_t bits = 0;
    for (int k = 0; k < 8; ++k) {
      uint64_t u;
      std::memcpy(&u, bytes + w * 64 + 8 * k, 8);
      bits |= ((u * 0x0102040810204080ull) >> 56) << (8 * k);  // byte j's low bit -> bit j
    }
    words[w] = bits;
  }
}

// x, out (n) -> out = (clamp(round(x * inv_scale) + zp) - zp) * scale; mask bit i = not clamped.
// [b, e) starts on a 64-element boundary, so chunks never share a mask word.
template <bool kMask>
QF_INLINE void fq_forward_range(float* out, uint64_t* mask, const float* x, int64_t b, int64_t e, const Layout& L,
                                const Chan* ch) {
  alignas(64) uint8_t bytes[kTile];
  for (int64_t t = b; t < e; t += kTile) {
    const int64_t te = std::min(e, t + kTile);
    for_each_run(L, t, te, [&](int64_t rb, int64_t re, int64_t c) {
      const Chan p = ch[c];
      uint8_t* m = bytes + (rb - t);
      for (int64_t i = rb; i < re; ++i) {
        const int32_t w = quantize_wide(x[i], p);
        const int32_t q = clamp_q(w, p);
        out[i] = dequantize_val(q, p.scale, p.zp);
        if constexpr (kMask) m[i - rb] = q == w;
      }
    });
    if constexpr (kMask) pack_mask(mask + t / 64, bytes, te - t);
  }
}

// backward of the line above (STE): dx = mask ? dout : 0, over mask words [wb, we).
template <bool kAssign>
QF_INLINE void ste_backward_words(float* dx, const float* dout, const uint64_t* mask, int64_t wb, int64_t we,
                                  int64_t n) {
  for (int64_t w = wb; w < we; ++w) {
    const int64_t base = w * 64;
    float* d = dx + base;
    const float* g = dout + base;
    if (base + 64 <= n) {
      const uint32_t lo = static_cast<uint32_t>(mask[w]), hi = static_cast<uint32_t>(mask[w] >> 32);
      for (int k = 0; k < 32; ++k) {
        const float v = ((lo >> k) & 1u) ? g[k] : 0.0f;
        if constexpr (kAssign)
          d[k] = v;
        else
          d[k] += v;
      }
      for (int k = 0; k < 32; ++k) {
        const float v = ((hi >> k) & 1u) ? g[32 + k] : 0.0f;
        if constexpr (kAssign)
          d[32 + k] = v;
        else
          d[32 + k] += v;
      }
    } else {
      for (int64_t k = 0; base + k < n; ++k) {
        const float v = ((mask[w] >> k) & 1u) ? g[k] : 0.0f;
        if constexpr (kAssign)
          d[k] = v;
        else
          d[k] += v;
      }
    }
  }
}

// LSQ backward, recomputed from the saved x. For v = x * inv_scale (the
// forward's product) and r = round(v):
//   dx = dout where qmin - zp <= r <= qmax - zp, else 0 (STE)
//   ds = dout * (r - v inside; qmin - zp below; qmax - zp above), summed per channel
//        (the caller multiplies by the LSQ gradient scale).
template <bool kDx, bool kAssign>
QF_INLINE void lsq_backward_range(float* dx, double* ds, const float* dout, const float* x, int64_t b, int64_t e,
                                  const Layout& L, const Chan* ch, bool need_ds) {
  for_each_run(L, b, e, [&](int64_t rb, int64_t re, int64_t c) {
    const Chan p = ch[c];
    const float below = static_cast<float>(p.qmin - p.zp), above = static_cast<float>(p.qmax - p.zp);
    double sum = 0.0;
    for (int64_t i = rb; i < re; ++i) {
      const int32_t w = quantize_wide(x[i], p);
      const bool inside = w >= p.qmin && w <= p.qmax;
      if constexpr (kDx) {
        const float v = inside ? dout[i] : 0.0f;
        if constexpr (kAssign)
          dx[i] = v;
        else
          dx[i] += v;
      }
      if (need_ds) {
        const float term = inside ? static_cast<float>(w - p.zp) - x[i] * p.inv_scale : (w < p.qmin ? below : above);
        sum += static_cast<double>(dout[i]) * term;
      }
    }
    if (need_ds) ds[c] += sum;
  });
}

// The table of one level: every template instance of the loops above.
template <bool kMask>
void forward_k(float* out, uint64_t* mask, const float* x, int64_t b, int64_t e, const Layout& L, const Chan* ch) {
  fq_forward_range<kMask>(out, mask, x, b, e, L, ch);
}
template <bool kAssign>
void ste_backward_k(float* dx, const float* dout, const uint64_t* mask, int64_t wb, int64_t we, int64_t n) {
  ste_backward_words<kAssign>(dx, dout, mask, wb, we, n);
}
template <bool kDx, bool kAssign>
void lsq_backward_k(float* dx, double* ds, const float* dout, const float* x, int64_t b, int64_t e, const Layout& L,
                    const Chan* ch, bool need_ds) {
  lsq_backward_range<kDx, kAssign>(dx, ds, dout, x, b, e, L, ch, need_ds);
}

constexpr FakeQuantKernels make_table(Isa isa, const char* name) {
  return {isa,
          name,
          {forward_k<false>, forward_k<true>},
          {ste_backward_k<false>, ste_backward_k<true>},
          {{lsq_backward_k<false, false>, lsq_backward_k<false, true>},
           {lsq_backward_k<true, false>, lsq_backward_k<true, true>}}};
}

}  // namespace
}  // namespace qforge::quant::fq

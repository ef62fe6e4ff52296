// Indirection arrays for the SIMD conv kernels (generic code, no ISA flags).
#include <algorithm>
#include <cstring>

#include "quant/kernels/kernels.h"

namespace qforge::quant {

void conv_tap_offsets(int64_t* off, const QConvArgs& a) {
  const int64_t row_step = int64_t(a.dilation_h) * a.W * a.C, col_step = int64_t(a.dilation_w) * a.C;
  int t = 0;
  for (int kh = 0; kh < a.KH; ++kh) {
    if (a.row_merged) {
      off[t++] = kh * row_step;
      continue;
    }
    for (int kw = 0; kw < a.KW; ++kw) off[t++] = kh * row_step + kw * col_step;
  }
}

size_t conv_scratch_bytes(const QConvArgs& a, int mr, int chunk_tiles) {
  const size_t slots = size_t(chunk_tiles) * mr * a.taps;
  size_t seg = 0;
  if (a.row_merged)
    // Every slice may sit on a border. One is assembled with a fill of kConvMergedMax bytes, which
    // runs into the slices after it (assembled later) and, for the last, into this slack.
    seg = slots * a.ktp + kConvMergedMax;
  else if (a.kt != a.ktp)
    seg = 3 * size_t(a.ktp);  // only the input's last ceil(3 / C) <= 3 pixels can be short
  // indirection, tile bases, tap offsets, then assembled slices
  return slots * sizeof(const uint8_t*) + size_t(chunk_tiles) * sizeof(const uint8_t*) + a.taps * sizeof(int64_t) + seg;
}

void build_conv_indirection(const uint8_t** ind, const uint8_t** tile_base, uint8_t* seg, const uint8_t* in,
                            const QConvArgs& a, int64_t p0, int npix, int mr) {
  // Everything in locals: the memcpy / memset below write bytes, which may alias anything.
  const int taps = a.taps, C = a.C, H = a.H, W = a.W, OH = a.OH, OW = a.OW, KH = a.KH, KW = a.KW;
  const int sh = a.stride_h, sw = a.stride_w, ph = a.pad_h, pw = a.pad_w, dh = a.dilation_h, dw = a.dilation_w;
  const int ktp = a.ktp;
  const bool merged = a.row_merged;
  const uint8_t in_zp = static_cast<uint8_t>(a.in_zp);
  const int64_t in_bytes = int64_t(a.N) * H * W * C;
  const uint8_t* const zero = a.zero_row;
  const int64_t row_step = int64_t(dh) * W * C;  // between kernel rows
  const int64_t col_step = int64_t(dw) * C;      // between kernel columns
  // The window's last slice starts here (relative to its first): the interior test for the end of input.
  const int64_t last_off = int64_t(KH - 1) * row_step + (merged ? 0 : int64_t(KW - 1) * col_step);
  bool copied[3] = {false, false, false};  // per tap: the input's last pixels, padded to ktp
  int nseg = 0;

  int64_t n = p0 / (int64_t(OH) * OW);
  int oh = static_cast<int>(p0 / OW % OH), ow = static_cast<int>(p0 % OW);
  auto interior = [&](int ih0, int iw0, int64_t off0) {
    return ih0 >= 0 && ih0 + (KH - 1) * dh < H && iw0 >= 0 && iw0 + (KW - 1) * dw < W &&
           off0 + last_off + ktp <= in_bytes;
  };
  int tile = 0, i = 0;
  for (int j = 0; j < npix; ++j) {
    if (i == 0) {
      // A full tile of pixels in one output row, all windows inside the image: direct, no pointers.
      const int ih0 = oh * sh - ph, iw0 = ow * sw - pw, iw_last = (ow + mr - 1) * sw - pw;
      const int64_t off0 = ((n * H + ih0) * W + iw0) * C;
      const int64_t off_last = off0 + int64_t(mr - 1) * sw * C;
      if (npix - j >= mr && ow + mr <= OW && interior(ih0, iw0, off0) && interior(ih0, iw_last, off_last)) {
        tile_base[tile++] = in + off0;
        j += mr - 1;
        ow += mr;
        if (ow == OW) {
          ow = 0;
          if (++oh == OH) oh = 0, ++n;
        }
        continue;
      }
      tile_base[tile] = nullptr;
    }
    const uint8_t** dst = ind + int64_t(tile) * taps * mr + i;  // dst[t * mr] is tap t
    const int ih0 = oh * sh - ph, iw0 = ow * sw - pw;
    const int64_t off0 = ((n * H + ih0) * W + iw0) * C;  // the window's first slice (maybe outside)
    if (interior(ih0, iw0, off0)) {
      // Interior: every slice is in the image and readable for ktp bytes.
      const uint8_t* row = in + off0;
      if (merged) {
        for (int kh = 0; kh < KH; ++kh, row += row_step) dst[kh * mr] = row;
      } else {
        int t = 0;
        for (int kh = 0; kh < KH; ++kh, row += row_step) {
          const uint8_t* x = row;
          for (int kw = 0; kw < KW; ++kw, ++t, x += col_step) dst[t * mr] = x;
        }
      }
    } else {
      for (int kh = 0; kh < KH; ++kh) {
        const int ih = ih0 + kh * dh;
        const int t0 = merged ? kh : kh * KW;
        if (ih < 0 || ih >= H) {
          for (int t = t0; t < t0 + (merged ? 1 : KW); ++t) dst[t * mr] = zero;
          continue;
        }
        const int64_t rowpix = (n * H + ih) * W;  // pixel index of (n, ih, 0)
        if (merged) {
          const int64_t off = (rowpix + iw0) * C;
          if (iw0 >= 0 && iw0 + KW <= W && off + ktp <= in_bytes) {
            dst[t0 * mr] = in + off;
          } else {  // assemble the slice: out-of-image pixels read as in_zp
            // Fixed-size writes (inlined stores) and one copy of the columns inside the image, not
            // a call per column: the 7x7 stem at 224 b1 spent 0.04 of its 0.42 ms here.
            uint8_t* s = seg + size_t(nseg++) * ktp;
            // (The bytes from kt to ktp meet zero weights: in_zp there is as good as zero.)
            std::memset(s, in_zp, kConvMergedMax);  // kt <= kConvMergedMax
            const int lo = std::max(0, -iw0), hi = std::min(KW, W - iw0);  // the columns inside
            if (hi > lo) std::memcpy(s + lo * C, in + (rowpix + iw0 + lo) * C, size_t(hi - lo) * C);
            dst[t0 * mr] = s;
          }
          continue;
        }
        for (int kw = 0; kw < KW; ++kw) {
          const int iw = iw0 + kw * dw;
          const uint8_t* ptr = zero;
          if (iw >= 0 && iw < W) {
            const int64_t off = (rowpix + iw) * C;
            ptr = in + off;
            if (off + ktp > in_bytes) {                           // C % 4 != 0, one of the last pixels: copy it once
              const int64_t from_end = (in_bytes - off) / C - 1;  // 0, 1 or 2
              uint8_t* s = seg + from_end * ktp;
              if (!copied[from_end]) {
                std::memcpy(s, ptr, C);
                std::memset(s + C, 0, ktp - C);
                copied[from_end] = true;
              }
              ptr = s;
            }
          }
          dst[(t0 + kw) * mr] = ptr;
        }
      }
    }
    if (++i == mr) i = 0, ++tile;
    if (++ow == OW) {
      ow = 0;
      if (++oh == OH) oh = 0, ++n;
    }
  }
  // Pad the last tile with the last pixel.
  if (i != 0) {
    const uint8_t** base = ind + int64_t(tile) * taps * mr;
    for (int k = i; k < mr; ++k)
      for (int t = 0; t < taps; ++t) base[t * mr + k] = base[t * mr + i - 1];
  }
}

}  // namespace qforge::quant

namespace qforge::quant {

size_t conv_pos_scratch_bytes(const QConvArgs& a) {
  // tile bias (OCp int32, rounded to 64 bytes), then the valid taps' input offsets and indices
  return (size_t(a.OCp) * sizeof(int32_t) + 63) / 64 * 64 + size_t(a.taps) * (sizeof(int64_t) + sizeof(int));
}

}  // namespace qforge::quant

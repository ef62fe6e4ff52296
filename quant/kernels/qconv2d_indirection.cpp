// Indirection arrays for the SIMD conv kernels (generic code, no ISA flags).
#include <cstring>

#include "quant/kernels/kernels.h"

namespace qforge::quant {

size_t conv_scratch_bytes(const QConvArgs& a, int mr, int chunk_tiles) {
  const size_t slots = size_t(chunk_tiles) * mr * a.taps;
  size_t seg = 0;
  if (a.row_merged)
    seg = slots * a.ktp;  // every slice may sit on a border
  else if (a.kt != a.ktp)
    seg = 3 * size_t(a.ktp);  // only the input's last ceil(3 / C) <= 3 pixels can be short
  return slots * sizeof(const uint8_t*) + seg;
}

void build_conv_indirection(const uint8_t** ind, uint8_t* seg, const uint8_t* in, const QConvArgs& a,
                            int64_t p0, int npix, int mr) {
  const int taps = a.taps, C = a.C;
  const int64_t in_bytes = int64_t(a.N) * a.H * a.W * C;
  const int ntiles = (npix + mr - 1) / mr;
  const uint8_t* const zero = a.zero_row;
  bool copied[3] = {false, false, false};  // per tap: the input's last pixels, padded to ktp
  int nseg = 0;

  int64_t n = p0 / (int64_t(a.OH) * a.OW);
  int oh = static_cast<int>(p0 / a.OW % a.OH), ow = static_cast<int>(p0 % a.OW);
  for (int j = 0; j < ntiles * mr; ++j) {
    const uint8_t** dst = ind + (j / mr) * taps * mr + j % mr;  // dst[t * mr] is tap t
    if (j >= npix) {  // pad the last tile with the last pixel
      const uint8_t** src = ind + ((npix - 1) / mr) * taps * mr + (npix - 1) % mr;
      for (int t = 0; t < taps; ++t) dst[t * mr] = src[t * mr];
      continue;
    }
    const int iw0 = ow * a.stride_w - a.pad_w;
    for (int kh = 0; kh < a.KH; ++kh) {
      const int ih = oh * a.stride_h - a.pad_h + kh * a.dilation_h;
      const int t0 = a.row_merged ? kh : kh * a.KW;
      if (ih < 0 || ih >= a.H) {
        for (int t = t0; t < t0 + (a.row_merged ? 1 : a.KW); ++t) dst[t * mr] = zero;
        continue;
      }
      const int64_t row = (n * a.H + ih) * a.W;  // pixel index of (n, ih, 0)
      if (a.row_merged) {
        const int64_t off = (row + iw0) * C;
        if (iw0 >= 0 && iw0 + a.KW <= a.W && off + a.ktp <= in_bytes) {
          dst[t0 * mr] = in + off;
        } else {  // assemble the slice: out-of-image pixels read as in_zp
          uint8_t* s = seg + size_t(nseg++) * a.ktp;
          for (int kw = 0; kw < a.KW; ++kw) {
            const int iw = iw0 + kw;
            if (iw >= 0 && iw < a.W)
              std::memcpy(s + kw * C, in + (row + iw) * C, C);
            else
              std::memset(s + kw * C, a.in_zp, C);
          }
          std::memset(s + a.kt, 0, a.ktp - a.kt);
          dst[t0 * mr] = s;
        }
        continue;
      }
      for (int kw = 0; kw < a.KW; ++kw) {
        const int iw = iw0 + kw * a.dilation_w;
        const uint8_t* ptr = zero;
        if (iw >= 0 && iw < a.W) {
          const int64_t off = (row + iw) * C;
          ptr = in + off;
          if (off + a.ktp > in_bytes) {  // C % 4 != 0, one of the last pixels: copy it once
            const int64_t from_end = (in_bytes - off) / C - 1;  // 0, 1 or 2
            uint8_t* s = seg + from_end * a.ktp;
            if (!copied[from_end]) {
              std::memcpy(s, ptr, C);
              std::memset(s + C, 0, a.ktp - C);
              copied[from_end] = true;
            }
            ptr = s;
          }
        }
        dst[(t0 + kw) * mr] = ptr;
      }
    }
    if (++ow == a.OW) {
      ow = 0;
      if (++oh == a.OH) {
        oh = 0;
        ++n;
      }
    }
  }
}

}  // namespace qforge::quant

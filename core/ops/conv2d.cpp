#include "core/ops/conv2d.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/autograd.h"
#include "core/blas.h"
#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/ops/channels_last.h"
#include "core/ops/depthwise.h"
#include "core/ops/elementwise.h"
#include "core/ops/scratch.h"
#include "core/ops/winograd.h"
#include "core/options.h"
#include "core/threads.h"

namespace qforge {
namespace {

// Images per GEMM: enough columns for an efficient sgemm, bounded so that the
// column buffer stays about 16 MB.
int images_per_chunk(const Conv2dShape& s) {
  int64_t k = static_cast<int64_t>(s.c / s.a.groups) * s.kh * s.kw;
  int64_t per_image = k * s.oh * s.ow;
  int64_t by_mem = std::max<int64_t>(1, (4 << 20) / std::max<int64_t>(per_image, 1));
  return static_cast<int>(std::min<int64_t>(s.n, by_mem));
}

// Stride 1 with the output as wide as the input (a "same" convolution, every
// stride-1 layer of a ResNet): one tap's plane is the input plane shifted by a
// constant offset, so it is one contiguous copy plus a few zeros in the
// padding, instead of a short copy per row.
struct Shift {
  int dy, dx;          // input offset of the tap
  int oh_lo, oh_hi;    // output rows whose input row exists
  int ow_lo, ow_hi;    // output columns whose input column exists
  int64_t dst0, src0;  // first element of the contiguous run, in the output and input plane
  int64_t len;         // its length (0 if the tap sees only padding)
};

bool same_width(const Conv2dShape& s) { return s.a.stride_h == 1 && s.a.stride_w == 1 && s.ow == s.w; }

Shift tap_shift(const Conv2dShape& s, int kh, int kw) {
  Shift t;
  t.dy = kh * s.a.dilation_h - s.a.pad_h, t.dx = kw * s.a.dilation_w - s.a.pad_w;
  t.oh_lo = std::clamp(-t.dy, 0, s.oh), t.oh_hi = std::clamp(s.h - t.dy, t.oh_lo, s.oh);
  t.ow_lo = std::clamp(-t.dx, 0, s.ow), t.ow_hi = std::clamp(s.w - t.dx, t.ow_lo, s.ow);
  t.len = 0;
  if (t.oh_hi > t.oh_lo && t.ow_hi > t.ow_lo) {
    t.dst0 = static_cast<int64_t>(t.oh_lo) * s.ow + t.ow_lo;
    t.src0 = static_cast<int64_t>(t.oh_lo + t.dy) * s.w + t.ow_lo + t.dx;
    t.len = static_cast<int64_t>(t.oh_hi - t.oh_lo - 1) * s.ow + (t.ow_hi - t.ow_lo);
  }
  return t;
}

// Zeroes the output positions of a tap that fall in the padding, inside the
// rows of its contiguous run (the run wraps them onto a neighbouring column).
void zero_wrapped_columns(float* d, const Shift& t, int ow) {
  for (int oh = t.oh_lo; oh < t.oh_hi; ++oh) {
    float* r = d + static_cast<int64_t>(oh) * ow;
    for (int x = 0; x < t.ow_lo; ++x) r[x] = 0.f;
    for (int x = t.ow_hi; x < ow; ++x) r[x] = 0.f;
  }
}

void im2col_same_width(float* col, const float* inp, const Conv2dShape& s, int n0, int nb, int g) {
  const int cg = s.c / s.a.groups, ohw = s.oh * s.ow, cols = nb * ohw;
  parallel_for(cg, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c)
      for (int kh = 0; kh < s.kh; ++kh)
        for (int kw = 0; kw < s.kw; ++kw) {
          const Shift t = tap_shift(s, kh, kw);
          float* row = col + ((c * s.kh + kh) * s.kw + kw) * static_cast<int64_t>(cols);
          for (int n = 0; n < nb; ++n) {
            const float* plane = inp + ((static_cast<int64_t>(n0 + n) * s.c) + g * cg + c) * s.h * s.w;
            float* d = row + static_cast<int64_t>(n) * ohw;
            if (t.len == 0) {
              std::memset(d, 0, ohw * sizeof(float));
              continue;
            }
            std::memset(d, 0, t.oh_lo * s.ow * sizeof(float));
            std::memcpy(d + t.dst0, plane + t.src0, t.len * sizeof(float));
            zero_wrapped_columns(d, t, s.ow);
            std::memset(d + t.oh_hi * s.ow, 0, (s.oh - t.oh_hi) * s.ow * sizeof(float));
          }
        }
  });
}

// The adjoint of im2col_same_width. It zeroes the wrapped positions of col
// (which the caller no longer needs) so that each tap is one contiguous add.
void col2im_same_width(float* dinp, float* col, const Conv2dShape& s, int n0, int nb, int g) {
  const int cg = s.c / s.a.groups, ohw = s.oh * s.ow, cols = nb * ohw;
  parallel_for(cg, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c)
      for (int kh = 0; kh < s.kh; ++kh)
        for (int kw = 0; kw < s.kw; ++kw) {
          const Shift t = tap_shift(s, kh, kw);
          if (t.len == 0) continue;
          float* row = col + ((c * s.kh + kh) * s.kw + kw) * static_cast<int64_t>(cols);
          for (int n = 0; n < nb; ++n) {
            float* __restrict d = dinp + ((static_cast<int64_t>(n0 + n) * s.c) + g * cg + c) * s.h * s.w + t.src0;
            float* r = row + static_cast<int64_t>(n) * ohw;
            zero_wrapped_columns(r, t, s.ow);
            const float* __restrict src = r + t.dst0;
            for (int64_t i = 0; i < t.len; ++i) d[i] += src[i];
          }
        }
  });
}

// Output row oh of tap (kh, kw) of one channel's plane: d[ow] = plane[ih][iw], zero in the padding.
void col_row(float* d, const float* plane, const Conv2dShape& s, int oh, int kh, int kw) {
  int ih = oh * s.a.stride_h - s.a.pad_h + kh * s.a.dilation_h;
  if (ih < 0 || ih >= s.h) {
    std::memset(d, 0, s.ow * sizeof(float));
    return;
  }
  const float* src = plane + static_cast<int64_t>(ih) * s.w;
  int iw0 = -s.a.pad_w + kw * s.a.dilation_w;
  if (s.a.stride_w == 1) {
    int lo = std::clamp(-iw0, 0, s.ow), hi = std::clamp(s.w - iw0, lo, s.ow);
    // Rows are short (4 to 56 floats): plain loops beat three library calls.
    const float* sp = src + iw0;
    for (int ow = 0; ow < lo; ++ow) d[ow] = 0.f;
    for (int ow = lo; ow < hi; ++ow) d[ow] = sp[ow];
    for (int ow = hi; ow < s.ow; ++ow) d[ow] = 0.f;
  } else {
    // Columns lo .. hi read inside the row: iw0 + ow * stride in [0, w).
    const int sw = s.a.stride_w;
    const int lo = std::clamp((-iw0 + sw - 1) / sw, 0, s.ow);
    const int hi = std::clamp((s.w - iw0 + sw - 1) / sw, lo, s.ow);
    for (int ow = 0; ow < lo; ++ow) d[ow] = 0.f;
    if (sw == 2) {  // every stride-2 layer of a ResNet: a constant stride vectorises
      const float* sp = src + iw0;
      for (int ow = lo; ow < hi; ++ow) d[ow] = sp[2 * ow];
    } else {
      for (int ow = lo; ow < hi; ++ow) d[ow] = src[iw0 + ow * sw];
    }
    for (int ow = hi; ow < s.ow; ++ow) d[ow] = 0.f;
  }
}

// col (Cg*KH*KW, nb*OH*OW): row (c,kh,kw), column (image, oh, ow), zero where the tap is in the padding.
void im2col(float* col, const float* inp, const Conv2dShape& s, int n0, int nb, int g) {
  if (same_width(s)) return im2col_same_width(col, inp, s, n0, nb, g);
  const int cg = s.c / s.a.groups, ohw = s.oh * s.ow, cols = nb * ohw;
  // By rows of col, not channels: a stem has 1 to 3 channels for 2 threads.
  parallel_for(static_cast<int64_t>(cg) * s.kh * s.kw, 1, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const int64_t c = r / (s.kh * s.kw);
      const int kh = static_cast<int>(r / s.kw % s.kh), kw = static_cast<int>(r % s.kw);
      float* row = col + r * cols;
      for (int n = 0; n < nb; ++n) {
        const float* plane = inp + ((static_cast<int64_t>(n0 + n) * s.c) + g * cg + c) * s.h * s.w;
        float* dst = row + static_cast<int64_t>(n) * ohw;
        for (int oh = 0; oh < s.oh; ++oh) col_row(dst + oh * s.ow, plane, s, oh, kh, kw);
      }
    }
  });
}

// col (Cg*KH*KW, (oh1 - oh0)*OW) for output rows [oh0, oh1) of image n, group g; on the calling thread.
void im2col_rows(float* col, const float* inp, const Conv2dShape& s, int n, int g, int oh0, int oh1) {
  const int cg = s.c / s.a.groups, taps = s.kh * s.kw;
  const int64_t cols = static_cast<int64_t>(oh1 - oh0) * s.ow;
  for (int64_t r = 0; r < static_cast<int64_t>(cg) * taps; ++r) {
    const int64_t c = r / taps;
    const int kh = static_cast<int>(r / s.kw % s.kh), kw = static_cast<int>(r % s.kw);
    const float* plane = inp + ((static_cast<int64_t>(n) * s.c) + g * cg + c) * s.h * s.w;
    for (int oh = oh0; oh < oh1; ++oh) col_row(col + r * cols + (oh - oh0) * s.ow, plane, s, oh, kh, kw);
  }
}

// The adjoint of im2col: adds col back into dinp (and may overwrite col). Rows
// of one channel only touch that channel.
void col2im(float* dinp, float* col, const Conv2dShape& s, int n0, int nb, int g) {
  if (same_width(s)) return col2im_same_width(dinp, col, s, n0, nb, g);
  const int cg = s.c / s.a.groups, ohw = s.oh * s.ow, cols = nb * ohw;
  parallel_for(cg, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c)
      for (int kh = 0; kh < s.kh; ++kh)
        for (int kw = 0; kw < s.kw; ++kw) {
          const float* row = col + ((c * s.kh + kh) * s.kw + kw) * static_cast<int64_t>(cols);
          for (int n = 0; n < nb; ++n) {
            float* plane = dinp + ((static_cast<int64_t>(n0 + n) * s.c) + g * cg + c) * s.h * s.w;
            const float* src = row + static_cast<int64_t>(n) * ohw;
            for (int oh = 0; oh < s.oh; ++oh) {
              int ih = oh * s.a.stride_h - s.a.pad_h + kh * s.a.dilation_h;
              if (ih < 0 || ih >= s.h) continue;
              float* d = plane + static_cast<int64_t>(ih) * s.w;
              const float* r = src + oh * s.ow;
              int iw0 = -s.a.pad_w + kw * s.a.dilation_w;
              if (s.a.stride_w == 1) {
                // The taps inside the row, as im2col copied them: a plain vectorisable add.
                int lo = std::clamp(-iw0, 0, s.ow), hi = std::clamp(s.w - iw0, lo, s.ow);
                float* dd = d + iw0;
                for (int ow = lo; ow < hi; ++ow) dd[ow] += r[ow];
              } else {
                for (int ow = 0; ow < s.ow; ++ow) {
                  int iw = iw0 + ow * s.a.stride_w;
                  if (iw >= 0 && iw < s.w) d[iw] += r[ow];
                }
              }
            }
          }
        }
  });
}

// A 1x1 convolution at stride 1 without padding (MobileNetV2's expansions and projections): an
// image's channels are already its column matrix, (C, OH*OW), and its output is the GEMM's.
bool pointwise(const Conv2dShape& s) {
  return s.kh == 1 && s.kw == 1 && s.a.stride_h == 1 && s.a.stride_w == 1 && s.a.pad_h == 0 && s.a.pad_w == 0;
}

// What follows the sum: the bias (null: none), then, with relu, clamp(v, 0, hi); passes that
// write the output anyway (Winograd's, channels-last's) take it as their ChannelFinish.
struct Epilogue : ChannelFinish {
  // dst[p] = src[p] finished as output channel oc's, p < len; dst may be src.
  void run(float* dst, const float* src, int64_t len, int64_t oc) const {
    if (!any()) {
      if (dst != src) std::memcpy(dst, src, len * sizeof(float));
      return;
    }
    const float bv = bias ? bias[oc] : 0.f;
    if (!relu) {
      for (int64_t p = 0; p < len; ++p) dst[p] = src[p] + bv;
      return;
    }
    // + 0 (no bias) changes no value the clamp keeps. The selected level's loop: the baseline
    // build's 4-wide one took 6% of MobileNetV2's float inference at 224x224 batch 1.
    float_kernels().bias_clamp(dst, src, len, bv, hi);
  }
  // Channels [oc0, oc0 + count), their first len values at o, o + stride, ..., finished in place.
  void run_channels(float* o, int64_t stride, int64_t len, int64_t oc0, int64_t count) const {
    for (int64_t i = 0; i < count; ++i) run(o + i * stride, o + i * stride, len, oc0 + i);
  }
};

// The direct convolution of a layer with few input channels (conv2d_direct_taps): each output row
// one call of the level's ConvTapsKernel (kernels.h) on a padded copy of the input rows it reads,
// then finished in place while it is in the cache. In the copy each padded row is split into its
// stride_w column phases (phase q holds padded columns q, q + stride_w, ...), so that at any stride
// a tap's inputs for a row of outputs are one contiguous run. im2col's columns, which this
// replaces, hold C*KH*KW floats per output (147 for ResNet18's 7x7 stem), written and read back.
struct TapsFrame {
  int64_t phase;  // floats per phase: the padded row's columns, or any tap's run of OW rounded up to 16
  int64_t row;    // floats per padded row: stride_w phases
  int64_t rows;   // padded rows per channel: those a band of band_rows output rows reads
  int band_rows;  // output rows per band (the last band may have fewer)
  int64_t floats() const { return rows * row; }  // per channel
};

TapsFrame taps_frame(const Conv2dShape& s, int band_rows) {
  const ConvGeometry& a = s.a;
  const int64_t wp = s.w + 2 * a.pad_w, sw = a.stride_w;
  const int64_t run = static_cast<int64_t>(s.kw - 1) * a.dilation_w / sw + (s.ow + 15) / 16 * 16;
  const int64_t phase = std::max((wp + sw - 1) / sw, run);
  const int64_t rows =
      static_cast<int64_t>(band_rows - 1) * a.stride_h + static_cast<int64_t>(s.kh - 1) * a.dilation_h + 1;
  return {phase, phase * sw, rows, band_rows};
}

// Output rows [oh0, oh1) of image n: the padded input rows they read in frame (C planes of
// f.rows rows, zeros around the image), then each output row through the kernel and the epilogue.
// frame: zeroed once by the caller; a band writes only the image's columns of rows inside the
// image and zeroes the rows outside it, so the padding columns stay zero from band to band.
void direct_taps_band(float* out, const float* inp, const float* wt, const int64_t* off, const Conv2dShape& s,
                      const TapsFrame& f, float* frame, int n, int oh0, int oh1, ConvTapsKernel kernel,
                      const Epilogue& ep) {
  const ConvGeometry& a = s.a;
  const int sw = a.stride_w, r0 = oh0 * a.stride_h;
  for (int c = 0; c < s.c; ++c)
    for (int64_t r = 0; r < f.rows; ++r) {
      const int64_t ih = r0 + r - a.pad_h;
      float* dst = frame + c * f.floats() + r * f.row;
      if (ih < 0 || ih >= s.h) {
        std::fill(dst, dst + f.row, 0.f);
        continue;
      }
      const float* src = inp + ((static_cast<int64_t>(n) * s.c + c) * s.h + ih) * s.w;
      // Phase q's element i is padded column q + i sw, input column q + i sw - pad_w.
      for (int q = 0; q < sw; ++q) {
        const int i0 = std::max(0, (a.pad_w - q + sw - 1) / sw), i1 = (s.w + a.pad_w - q + sw - 1) / sw;
        const float* from = src + q - a.pad_w;
        float* to = dst + q * f.phase;
        for (int i = i0; i < i1; ++i) to[i] = from[i * sw];
      }
    }
  const int64_t ohw = static_cast<int64_t>(s.oh) * s.ow;
  for (int oh = oh0; oh < oh1; ++oh) {
    float* o = out + static_cast<int64_t>(n) * s.oc * ohw + static_cast<int64_t>(oh) * s.ow;
    kernel(s.oc, s.ow, s.c * s.kh * s.kw, frame + static_cast<int64_t>(oh * a.stride_h - r0) * f.row, off, wt, o, ohw);
    ep.run_channels(o, ohw, s.ow, 0, s.oc);
  }
}

void conv2d_direct_taps_forward(float* out, const float* inp, const float* weight, const Conv2dShape& s,
                                const Epilogue& ep) {
  const ConvGeometry& a = s.a;
  if (s.n == 0) return;
  const ConvTapsKernel kernel = float_kernels().conv_taps;
  // Units: bands of an image's output rows, two per thread at batch 1, each band's frame at most
  // about 256 KB (the L2 cache's) whatever the image's size; one part per thread (or per unit,
  // where there are fewer), so that each thread copies the rows it reads itself.
  const int64_t by_threads = std::max<int64_t>(1, (2 * num_threads() + s.n - 1) / s.n);
  const int64_t per_row = s.c * taps_frame(s, 1).row * a.stride_h;  // frame floats per output row
  const int64_t fit = std::max<int64_t>(1, (int64_t{64} << 10) / std::max<int64_t>(per_row, 1));
  const TapsFrame f = taps_frame(s, static_cast<int>(std::min((s.oh + by_threads - 1) / by_threads, fit)));
  const int bands = (s.oh + f.band_rows - 1) / f.band_rows;
  const int taps = s.c * s.kh * s.kw;
  // The weights turned to (taps, OC), taps in im2col's order (channel, kh, kw); where each tap's
  // run starts in a frame, from the row of its output row.
  auto wt = scratch_floats(static_cast<size_t>(taps) * s.oc);
  std::vector<int64_t> off(taps);
  for (int t = 0; t < taps; ++t) {
    for (int o = 0; o < s.oc; ++o) wt[static_cast<int64_t>(t) * s.oc + o] = weight[static_cast<int64_t>(o) * taps + t];
    const int c = t / (s.kh * s.kw), kh = t / s.kw % s.kh, col = t % s.kw * a.dilation_w;
    off[t] = c * f.floats() + static_cast<int64_t>(kh) * a.dilation_h * f.row + (col % a.stride_w) * f.phase +
             col / a.stride_w;
  }
  const int64_t units = static_cast<int64_t>(s.n) * bands;
  const int parts = static_cast<int>(std::min<int64_t>(num_threads(), units));
  run_parts(parts, [&](int j) {
    auto frame = zeroed(static_cast<int64_t>(s.c) * f.floats());
    for (int64_t u = part_begin(units, j, parts); u < part_begin(units, j + 1, parts); ++u) {
      const int n = static_cast<int>(u / bands), oh0 = static_cast<int>(u % bands) * f.band_rows;
      direct_taps_band(out, inp, wt.get(), off.data(), s, f, frame.get(), n, oh0, std::min(s.oh, oh0 + f.band_rows),
                       kernel, ep);
    }
  });
}

// An image's output rows in blocks whose column matrix (k x rows*OW) fits in the L2 cache, each
// block built, multiplied and finished while it is there; the threads take the blocks in turn.
constexpr int64_t kRowBlockFloats = 64 * 1024;  // 256 KB of columns per block

void conv2d_row_blocks(float* out, const float* inp, const float* weight, const Conv2dShape& s, const Epilogue& ep) {
  const int G = s.a.groups, cg = s.c / G, ocg = s.oc / G, k = cg * s.kh * s.kw, ohw = s.oh * s.ow;
  const int rows = static_cast<int>(std::clamp<int64_t>(kRowBlockFloats / (static_cast<int64_t>(k) * s.ow), 1, s.oh));
  const int64_t per_image = (s.oh + rows - 1) / rows, blocks = s.n * per_image * G;
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(num_threads(), blocks), 1, [&](int64_t, int64_t) {
    auto col = scratch_floats(static_cast<size_t>(k) * rows * s.ow);  // fully written before it is read
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < blocks;) {
      const int g = static_cast<int>(i % G), n = static_cast<int>(i / G / per_image);
      const int oh0 = static_cast<int>(i / G % per_image) * rows, oh1 = std::min(oh0 + rows, s.oh);
      const int cols = (oh1 - oh0) * s.ow;
      im2col_rows(col.get(), inp, s, n, g, oh0, oh1);
      float* o = out + (static_cast<int64_t>(n) * s.oc + g * ocg) * ohw + static_cast<int64_t>(oh0) * s.ow;
      sgemm(false, false, ocg, cols, k, 1.f, weight + static_cast<int64_t>(g) * ocg * k, k, col.get(), cols, 0.f, o,
            ohw);
      ep.run_channels(o, ohw, cols, g * ocg, ocg);
    }
  });
}

// o (rows, cols) = w (rows, k) x (k, cols), finished as output channels oc0 .. (ep): in the GEMM
// tile's stores, or block by block while each block is in the cache (sgemm_rows_finished). (In the
// stores, MobileNetV2's float inference at 224 b1, AMD EPYC Zen 5, 2 threads: faster in each of
// six alternating pairs of runs of a per-block harness, 4.8-5.7 ms against 5.1-6.3 for the pass
// after each block.)
void finished_product(float* o, const float* w, const float* x, int rows, int cols, int k, int oc0,
                      const Epilogue& ep) {
  if (!ep.any()) return sgemm(false, false, rows, cols, k, 1.f, w, k, x, cols, 0.f, o, cols);
  sgemm_rows_finished(rows, cols, k, w, k, x, cols, o, cols, ep.from(oc0), [&](int i0, int n, int j0, int len) {
    ep.run_channels(o + static_cast<int64_t>(i0) * cols + j0, cols, len, oc0 + i0, n);
  });
}

void conv2d_im2col(float* out, const float* inp, const float* weight, const Conv2dShape& s, const Epilogue& ep) {
  const int G = s.a.groups, cg = s.c / G, ocg = s.oc / G, k = cg * s.kh * s.kw, ohw = s.oh * s.ow;
  if (pointwise(s)) {  // no copies
    // One product per image and group, finished while it is still in cache. (Against one GEMM
    // over a chunk of images through the column and output copies, on MobileNetV2's small stem at
    // 28x28 batch 64, AMD EPYC Zen 4, float inference: 1.06-1.12x as fast at 1 thread over six
    // alternating rounds; at 2 threads 0.95-1.6x, the machine too noisy to say more.)
    auto product = [&](int64_t i) {
      const int n = static_cast<int>(i / G), g = static_cast<int>(i % G);
      float* o = out + (static_cast<int64_t>(n) * s.oc + g * ocg) * ohw;
      finished_product(o, weight + static_cast<int64_t>(g) * ocg * cg, inp + (static_cast<int64_t>(n) * s.c + g * cg) * ohw,
                       ocg, ohw, cg, g * ocg, ep);
    };
    const int64_t products = static_cast<int64_t>(s.n) * G;
    if (products < num_threads()) {  // each product split over the pool
      for (int64_t i = 0; i < products; ++i) product(i);
      return;
    }
    parallel_for(products, 1, [&](int64_t b, int64_t e) {  // a product per thread (sgemm runs serially inside)
      for (int64_t i = b; i < e; ++i) product(i);
    });
    return;
  }
  if (conv2d_row_blocked(s)) return conv2d_row_blocks(out, inp, weight, s, ep);
  const int chunk = images_per_chunk(s);
  // Scratch, fully written before it is read.
  auto col = scratch_floats(static_cast<size_t>(k) * chunk * ohw);
  auto tmp = scratch_floats(chunk > 1 ? static_cast<size_t>(ocg) * chunk * ohw : 0);
  for (int n0 = 0; n0 < s.n; n0 += chunk) {
    int nb = std::min(chunk, s.n - n0), cols = nb * ohw;
    for (int g = 0; g < G; ++g) {
      im2col(col.get(), inp, s, n0, nb, g);
      const float* wg = weight + static_cast<int64_t>(g) * ocg * k;
      if (nb == 1) {
        finished_product(out + (static_cast<int64_t>(n0) * s.oc + g * ocg) * ohw, wg, col.get(), ocg, ohw, k, g * ocg,
                         ep);
        continue;
      }
      sgemm(false, false, ocg, cols, k, 1.f, wg, k, col.get(), cols, 0.f, tmp.get(), cols);
      // tmp (OCg, nb, OHW) -> out (nb, OC, OHW), finished on the way
      parallel_for(ocg, 4, [&](int64_t b, int64_t e) {
        for (int64_t oc = b; oc < e; ++oc)
          for (int n = 0; n < nb; ++n)
            ep.run(out + ((static_cast<int64_t>(n0 + n) * s.oc) + g * ocg + oc) * ohw,
                   tmp.get() + (oc * nb + n) * static_cast<int64_t>(ohw), ohw, g * ocg + oc);
      });
    }
  }
}

}  // namespace

struct ConvFilterCache {
  PreparedFilterCache winograd;       // transformed filters (winograd.h)
  PreparedFilterCache channels_last;  // packed weights (channels_last.h)
};

std::shared_ptr<ConvFilterCache> make_conv_filter_cache() { return std::make_shared<ConvFilterCache>(); }

void freeze_conv_filters(ConvFilterCache& cache, bool frozen) {
  set_frozen(cache.winograd, frozen);
  set_frozen(cache.channels_last, frozen);
}

int64_t conv_filter_cache_bytes(const ConvFilterCache& cache) {
  return prepared_filter_bytes(cache.winograd) + prepared_filter_bytes(cache.channels_last);
}

// The cache's Winograd filters where the layer keeps them, else null.
static PreparedFilterCache* winograd_cache(const Conv2dShape& s, ConvFilterCache* cache) {
  return cache && winograd_caches(s, is_frozen(cache->winograd)) ? &cache->winograd : nullptr;
}

// kAuto: Winograd where it applies, unless the option winograd (QFORGE_WINOGRAD=off) asks for im2col everywhere.
// cached: the layer's Winograd filter cache (winograd_cache) or null.
static bool use_winograd(const Conv2dShape& s, ConvAlgo algo, const PreparedFilterCache* cached = nullptr) {
  return algo == ConvAlgo::kAuto && options().winograd == WinogradMode::automatic &&
         winograd_applies(s, cached != nullptr);
}

// kAuto: strided layers on channels-last copies where they apply (channels_last.h).
static bool use_channels_last(const Conv2dShape& s, ConvAlgo algo) {
  return algo == ConvAlgo::kAuto && channels_last_applies(s);
}

// kAuto: depthwise layers (groups == C) run direct loops per plane (depthwise.h).
static bool use_depthwise(const Conv2dShape& s, ConvAlgo algo) {
  return algo == ConvAlgo::kAuto && depthwise_applies(s);
}

Conv2dShape conv2d_shape(const Shape& inp, const Shape& weight, const ConvGeometry& a) {
  const ConvOutputSize o = conv_output_size("conv2d", inp, weight, a);
  Conv2dShape s;
  s.n = inp[0], s.c = inp[1], s.h = inp[2], s.w = inp[3];
  s.oc = weight[0], s.kh = weight[2], s.kw = weight[3];
  s.oh = o.oh, s.ow = o.ow;
  s.a = a;
  return s;
}

bool conv2d_direct_taps(const Conv2dShape& s) {
  // Up to 8 input channels, ahead of Winograd too. Forward at 3x3 (AMD EPYC Zen 5, 2 threads), against
  // Winograd: 28x28 batch 32 to 64 channels, 1.24 -> 1.10 ms at 4 channels, 1.58 -> 0.80 at 8,
  // 1.86 -> 1.56 at 16, 1.31 -> 3.13 at 32; 112x112 batch 1: 0.38 -> 0.17 at 4, 0.33 -> 0.32 at 8,
  // 0.39 -> 0.62 at 16. Against im2col: ResNet18's 7x7 stem at 224x224 batch 1 0.85 -> 0.64 ms
  // (at level avx2, against im2col with OpenBLAS: 1.87 -> 1.30-1.42 ms; the 1-channel 3x3 stem at
  // 28x28 batch 64, 1.38 -> 1.00). Not 1x1 kernels: im2col reads those in place (pointwise) or as
  // one strided copy. Where the level has the kernel (avx2, avx512); QFORGE_WINOGRAD=off takes
  // im2col everywhere.
  return s.a.groups == 1 && s.c <= 8 && s.kh * s.kw > 1 && float_kernels().conv_taps != nullptr &&
         options().winograd == WinogradMode::automatic;
}

bool conv2d_row_blocked(const Conv2dShape& s) {
  const int64_t k = static_cast<int64_t>(s.c / s.a.groups) * s.kh * s.kw;
  // A short k only (at most 256), so that a block's 256 KB hold at least 256 columns (fewer only where
  // one output row is narrower) and each pass over the weights is amortised: ResNet18's 3x3 layers
  // at 14x14, k 2304, were slower in blocks of 28 columns.
  return !pointwise(s) && k * s.oh * s.ow > kRowBlockFloats * 4 && k * 256 <= kRowBlockFloats;
}

// The convolution and its epilogue; depthwise planes add their bias themselves.
static void forward_finished(float* out, const float* inp, const float* weight, const Conv2dShape& s, ConvAlgo algo,
                             const Epilogue& ep, ConvFilterCache* cache) {
  if (use_depthwise(s, algo)) return depthwise_forward(out, inp, weight, ep.bias, s, ep.relu, ep.hi);
  if (algo == ConvAlgo::kAuto && conv2d_direct_taps(s)) return conv2d_direct_taps_forward(out, inp, weight, s, ep);
  PreparedFilterCache* cached = winograd_cache(s, cache);
  // Winograd and channels-last products finish the output as they copy it back to NCHW.
  if (use_winograd(s, algo, cached)) return winograd_forward(out, inp, weight, s, 0, cached, ep);
  PreparedFilterCache* packed =
      algo == ConvAlgo::kAuto && cache && channels_last_caches(s) ? &cache->channels_last : nullptr;
  if (packed || use_channels_last(s, algo)) return channels_last_forward(out, inp, weight, s, 0, packed, ep);
  conv2d_im2col(out, inp, weight, s, ep);
}

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias, const Conv2dShape& s,
                    ConvAlgo algo, ConvFilterCache* cache) {
  forward_finished(out, inp, weight, s, algo, Epilogue{{bias}}, cache);
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const Conv2dShape& s, ConvAlgo algo) {
  if (use_depthwise(s, algo)) return depthwise_backward(dinp, dweight, dbias, dout, inp, weight, s);
  const int G = s.a.groups, cg = s.c / G, ocg = s.oc / G, k = cg * s.kh * s.kw, ohw = s.oh * s.ow;
  if (dbias) {
    parallel_for(s.oc, 4, [&](int64_t b, int64_t e) {
      for (int64_t oc = b; oc < e; ++oc) {
        double acc = 0;
        for (int n = 0; n < s.n; ++n) {
          const float* d = dout + (static_cast<int64_t>(n) * s.oc + oc) * ohw;
          float part = 0;
          for (int p = 0; p < ohw; ++p) part += d[p];
          acc += part;
        }
        dbias[oc] += static_cast<float>(acc);
      }
    });
  }
  if (!dinp && !dweight) return;
  if (use_winograd(s, algo)) return winograd_backward(dinp, dweight, dout, inp, weight, s);
  if (use_channels_last(s, algo)) return channels_last_backward(dinp, dweight, dout, inp, weight, s);
  const int chunk = images_per_chunk(s);
  // Scratch, fully written before it is read.
  auto col = scratch_floats(static_cast<size_t>(k) * chunk * ohw);
  auto tmp = scratch_floats(chunk > 1 ? static_cast<size_t>(ocg) * chunk * ohw : 0);
  for (int n0 = 0; n0 < s.n; n0 += chunk) {
    int nb = std::min(chunk, s.n - n0), cols = nb * ohw;
    for (int g = 0; g < G; ++g) {
      const float* d = dout + (static_cast<int64_t>(n0) * s.oc + g * ocg) * ohw;
      if (nb > 1) {  // dout (nb, OC, OHW) -> tmp (OCg, nb, OHW)
        parallel_for(ocg, 4, [&](int64_t b, int64_t e) {
          for (int64_t oc = b; oc < e; ++oc)
            for (int n = 0; n < nb; ++n)
              std::memcpy(tmp.get() + (oc * nb + n) * static_cast<int64_t>(ohw),
                          dout + ((static_cast<int64_t>(n0 + n) * s.oc) + g * ocg + oc) * ohw, ohw * sizeof(float));
        });
        d = tmp.get();
      }
      const float* wg = weight + static_cast<int64_t>(g) * ocg * k;
      if (dweight) {
        // out = W col  =>  dW += dout col^T
        im2col(col.get(), inp, s, n0, nb, g);
        sgemm(false, true, ocg, k, cols, 1.f, d, cols, col.get(), cols, 1.f,
              dweight + static_cast<int64_t>(g) * ocg * k, k);
      }
      if (dinp) {
        // dcol = W^T dout, then scattered back onto the input
        sgemm(true, false, k, cols, ocg, 1.f, wg, k, d, cols, 0.f, col.get(), cols);
        col2im(dinp, col.get(), s, n0, nb, g);
      }
    }
  }
}

Tensor conv2d_bias_relu(const Tensor& x, const Tensor& w, const Tensor& b, ConvGeometry args, float hi,
                        ConvFilterCache* cache) {
  QF_CHECK(!needs_grad({&x, &w, &b}), "conv2d_bias_relu: inference only (an input requires a gradient)");
  Conv2dShape s = conv2d_shape(x.shape(), w.shape(), args);
  if (b.defined())
    QF_CHECK(b.numel() == s.oc,
             "conv2d: bias " + shape_str(b.shape()) + " does not match weight " + shape_str(w.shape()));
  Tensor out = Tensor::empty({s.n, s.oc, s.oh, s.ow});
  forward_finished(out.data(), x.data(), w.data(), s, ConvAlgo::kAuto,
                   Epilogue{{b.defined() ? b.data() : nullptr, true, hi}}, cache);
  return out;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, ConvGeometry args, ConvFilterCache* cache) {
  Conv2dShape s = conv2d_shape(x.shape(), w.shape(), args);
  if (b.defined())
    QF_CHECK(b.numel() == s.oc,
             "conv2d: bias " + shape_str(b.shape()) + " does not match weight " + shape_str(w.shape()));
  Tensor out = Tensor::empty({s.n, s.oc, s.oh, s.ow});
  conv2d_forward(out.data(), x.data(), w.data(), b.defined() ? b.data() : nullptr, s, ConvAlgo::kAuto,
                 needs_grad({&x, &w, &b}) ? nullptr : cache);
  record_op(out, {x, w, b}, [s, x = x.detach(), w = w.detach()](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    conv2d_backward(in[0] ? in[0]->grad_data() : nullptr, in[1] ? in[1]->grad_data() : nullptr,
                    in[2] ? in[2]->grad_data() : nullptr, o.grad->data(), x.data(), w.data(), s);
  });
  return out;
}

}  // namespace qforge

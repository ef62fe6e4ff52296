#include "core/ops/channels_last.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/blas.h"
#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/ops/gemm_f32.h"
#include "core/options.h"
#include "core/threads.h"

namespace qforge {

namespace {

// Calls f(image, first channel) for every block of 16 channels of nb images (hw floats per
// channel), on the pool's threads, in pieces of about 16K floats (at least four per thread): a
// block of 16 7x7 planes is a fraction of a microsecond, less than a hand-off of the threads'
// shared counter between the cores.
template <typename F>
void for_each_channel_block(int nb, int c, int64_t hw, F&& f) {
  const int blocks = channel_lanes(c) / 16;
  const int64_t units = static_cast<int64_t>(nb) * blocks;
  const int64_t piece = std::clamp<int64_t>((16 << 10) / std::max<int64_t>(16 * hw, 1), 1,
                                            std::max<int64_t>(1, units / (4 * num_threads())));
  parallel_pieces(units, piece, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i / blocks, static_cast<int>(i % blocks) * 16);
  });
}

// Rows [y0, y1) of channels [c0, c0 + 16) of image img (x, out: the chunk's first image), to and
// from channels last.
void to_block(float* xl, const ChannelsLastFrame& f, const float* x, int64_t img, int c0, int c, int h, int w, int y0,
              int y1) {
  const int cp = channel_lanes(c);
  const int64_t hw = static_cast<int64_t>(h) * w;
  winograd_blocks().to_nhwc(xl + f.offset(img, y0, 0, cp) + c0, int64_t{f.pw} * cp, cp,
                            x + (img * c + c0) * hw + int64_t{y0} * w, hw, y1 - y0, w, std::min(16, c - c0));
}
void from_block(float* out, const float* yl, const ChannelsLastFrame& f, int64_t img, int c0, int c, int h, int w,
                int y0, int y1, bool accumulate, const ChannelFinish& fin) {
  const int cp = channel_lanes(c);
  const int64_t hw = static_cast<int64_t>(h) * w;
  winograd_blocks().from_nhwc(out + (img * c + c0) * hw + int64_t{y0} * w, hw, yl + f.offset(img, y0, 0, cp) + c0,
                              int64_t{f.pw} * cp, cp, y1 - y0, w, std::min(16, c - c0), accumulate, fin.from(c0));
}

}  // namespace

void to_channels_last(float* xl, const ChannelsLastFrame& f, const float* x, int nb, int c, int h, int w) {
  for_each_channel_block(nb, c, int64_t{h} * w,
                         [&](int64_t img, int c0) { to_block(xl, f, x, img, c0, c, h, w, 0, h); });
}

void from_channels_last(float* out, const float* yl, const ChannelsLastFrame& f, int nb, int c, int h, int w,
                        bool accumulate, const ChannelFinish& fin) {
  for_each_channel_block(nb, c, int64_t{h} * w,
                         [&](int64_t img, int c0) { from_block(out, yl, f, img, c0, c, h, w, 0, h, accumulate, fin); });
}

void to_channels_last_rows(float* xl, const ChannelsLastFrame& f, const float* x, int64_t img, int c, int h, int w,
                           int y0, int y1) {
  for (int c0 = 0; c0 < c && y1 > y0; c0 += 16) to_block(xl, f, x, img, c0, c, h, w, y0, y1);
}

void from_channels_last_rows(float* out, const float* yl, const ChannelsLastFrame& f, int64_t img, int c, int h, int w,
                             int y0, int y1, bool accumulate, const ChannelFinish& fin) {
  for (int c0 = 0; c0 < c && y1 > y0; c0 += 16) from_block(out, yl, f, img, c0, c, h, w, y0, y1, accumulate, fin);
}

// ---------------------------------------------------------------------------
// Strided convolutions on channels-last copies. A pass takes a chunk of images: their input
// channels last inside a frame of zeros as wide as the padding, the column matrix (a row per output
// pixel, KH KW C columns: tap by tap, each tap's C channels one copy), one product with the weights
// turned to (KH KW C) x OC, and the output back to NCHW.

namespace {

// The column matrix of a pass within this many floats (4 MB).
constexpr int64_t kColumnFloats = int64_t{1} << 20;

int images_per_pass(const Conv2dShape& s, int chunk_images) {
  if (chunk_images > 0) return std::min(chunk_images, s.n);
  const int64_t per_image = static_cast<int64_t>(s.oh) * s.ow * s.kh * s.kw * s.c;
  return static_cast<int>(std::clamp<int64_t>(kColumnFloats / per_image, 1, s.n));
}

// The input's frame: the padding around the image, and on the bottom and right as far as the last
// window reaches.
ChannelsLastFrame input_frame(const Conv2dShape& s) {
  const ConvGeometry& a = s.a;
  const int reach_h = (s.oh - 1) * a.stride_h + (s.kh - 1) * a.dilation_h + 1 - a.pad_h;
  const int reach_w = (s.ow - 1) * a.stride_w + (s.kw - 1) * a.dilation_w + 1 - a.pad_w;
  return {a.pad_h + std::max(s.h, reach_h), a.pad_w + std::max(s.w, reach_w), a.pad_h, a.pad_w};
}

// col (nb * OH * OW rows, KH KW C columns) from the framed channels-last xl.
void columns(float* col, const float* xl, const ChannelsLastFrame& f, const Conv2dShape& s, int nb) {
  const ConvGeometry& a = s.a;
  const int64_t ohw = static_cast<int64_t>(s.oh) * s.ow, kc = static_cast<int64_t>(s.kh) * s.kw * s.c;
  // Pieces of about 64 KB, so that even one 7x7 image with many channels is shared by the threads.
  parallel_pieces(nb * ohw, std::max<int64_t>(1, (int64_t{1} << 14) / kc), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t img = r / ohw;
      const int i = static_cast<int>(r % ohw / s.ow), j = static_cast<int>(r % s.ow);
      float* dst = col + r * kc;
      for (int ky = 0; ky < s.kh; ++ky)
        for (int kx = 0; kx < s.kw; ++kx, dst += s.c)
          std::memcpy(dst,
                      xl + f.offset(img, i * a.stride_h + ky * a.dilation_h - a.pad_h,
                                    j * a.stride_w + kx * a.dilation_w - a.pad_w, s.c),
                      s.c * sizeof(float));
    }
  });
}

// The adjoint of columns: each row's taps added into the framed channels-last dxl (zeroed before),
// 16 channels per piece so that no two threads add into the same floats.
void columns_adjoint(float* dxl, const float* dcol, const ChannelsLastFrame& f, const Conv2dShape& s, int nb) {
  const ConvGeometry& a = s.a;
  const int64_t kc = static_cast<int64_t>(s.kh) * s.kw * s.c;
  for_each_channel_block(nb, s.c, int64_t{s.oh} * s.ow * s.kh * s.kw, [&](int64_t img, int c0) {
    const float* src = dcol + img * s.oh * s.ow * kc + c0;
    for (int i = 0; i < s.oh; ++i)
      for (int j = 0; j < s.ow; ++j, src += kc)
        for (int ky = 0; ky < s.kh; ++ky)
          for (int kx = 0; kx < s.kw; ++kx) {
            float* d = dxl + f.offset(img, i * a.stride_h + ky * a.dilation_h - a.pad_h,
                                      j * a.stride_w + kx * a.dilation_w - a.pad_w, s.c) + c0;
            const float* t = src + (ky * s.kw + kx) * s.c;
            for (int l = 0; l < 16; ++l) d[l] += t[l];
          }
  });
}

// w (OC, C, KH, KW) turned: taps_by_out (KH KW C) x OC, the forward product's B; out_by_taps OC x
// (KH KW C), dX's.
void turn_weights(float* wl, const float* w, const Conv2dShape& s, bool taps_by_out) {
  const int taps = s.kh * s.kw, C = s.c, OC = s.oc;
  const int64_t kc = static_cast<int64_t>(taps) * C;
  parallel_pieces(OC, 8, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o)
      for (int c = 0; c < C; ++c)
        for (int t = 0; t < taps; ++t) {
          const float v = w[(o * C + c) * taps + t];
          if (taps_by_out)
            wl[(static_cast<int64_t>(t) * C + c) * OC + o] = v;
          else
            wl[o * kc + static_cast<int64_t>(t) * C + c] = v;
        }
  });
}

// What the copies and the 16-channel pieces need, whoever calls (channels_last_applies checks it).
void check_shape(const Conv2dShape& s) {
  QF_CHECK(s.a.groups == 1 && s.c % 16 == 0 && s.oc % 16 == 0,
           "channels-last convolution: needs one group and channels in multiples of 16, got " +
               std::to_string(s.c) + " -> " + std::to_string(s.oc) + " in " + std::to_string(s.a.groups) + " groups");
}

}  // namespace

bool channels_last_runs(const Conv2dShape& s) {
  if (s.a.groups != 1 || s.c % 16 || s.oc % 16 || s.kh * s.kw == 1) return false;
  // Measured with qforge's GEMM tile (level avx512) only; QFORGE_WINOGRAD=off asks for im2col everywhere.
  return gemm_f32_kernel() != nullptr && options().winograd == WinogradMode::automatic;
}

// With the weights packed once, the products run near the tile's peak even at batch 1, where
// NCHW's im2col products are short rows (ResNet18's 7x7 layers at 224x224 batch 1, 512 channels:
// 0.58 ms against 1.07 for the depth-vector kernel on NCHW columns, AMD EPYC Zen 5, 2 threads).
// Up to one pass's columns per image (4 MB; ResNet18's largest, a stride-2 layer at 224x224: 1.8):
// a pass never splits an image, and larger ones were never measured here.
bool channels_last_caches(const Conv2dShape& s) {
  return channels_last_runs(s) && static_cast<int64_t>(s.oh) * s.ow * s.kh * s.kw * s.c <= kColumnFloats;
}

bool channels_last_applies(const Conv2dShape& s) {
  const ConvGeometry& a = s.a;
  // Stride 1: Winograd's where it applies. 1x1 kernels: NCHW's im2col is one strided copy of the
  // input there, and its products were faster (ResNet18's stride-2 downsamples at 28x28 batch 128:
  // forward 4.7 ms against 6.9).
  if (!channels_last_runs(s) || (a.stride_h < 2 && a.stride_w < 2)) return false;
  return static_cast<int64_t>(s.n) * s.oh * s.ow >= 1024;
}

void channels_last_forward(float* out, const float* inp, const float* weight, const Conv2dShape& s, int chunk_images,
                           PreparedFilterCache* cache, const ChannelFinish& fin) {
  check_shape(s);
  const int C = s.c, OC = s.oc;
  const int64_t hw = static_cast<int64_t>(s.h) * s.w, ohw = static_cast<int64_t>(s.oh) * s.ow,
                kc = static_cast<int64_t>(s.kh) * s.kw * C;
  const int nb = images_per_pass(s, chunk_images);
  const ChannelsLastFrame f = input_frame(s), fo{s.oh, s.ow, 0, 0};
  // The weights as the product's B: turned to (KH KW C) x OC, then packed in panels (gemm_f32.h).
  const int64_t packed_floats = packed_b_floats(OC, static_cast<int>(kc));
  auto pack = [&](float* dst, const float* w) {
    auto wl = scratch_floats(kc * OC);
    turn_weights(wl.get(), w, s, true);
    pack_b(dst, wl.get(), OC, static_cast<int>(kc), OC);
  };
  std::shared_ptr<const PreparedFilters> kept;
  Scratch packed;
  const float* wp;
  if (cache) {
    kept = prepared_filters(*cache, weight, {OC, C, s.kh, s.kw}, packed_floats, pack);
    wp = kept->data.get();
  } else {
    packed = scratch_floats(packed_floats);
    pack(packed.get(), weight);
    wp = packed.get();
  }
  // The reference tile where the level has no SIMD one (conv2d calls this only where it has).
  const GemmF32Kernel kernel = gemm_f32_kernel() ? gemm_f32_kernel() : gemm_f32__ref;
  // Parts: consecutive runs of passes, each part's through all their steps on one thread (threads.h).
  const int64_t passes = (s.n + nb - 1) / nb;
  const int parts = parts_for(passes);
  run_parts(parts, [&](int j) {
    auto xl = zeroed(static_cast<int64_t>(nb) * f.ph * f.pw * C);  // the frame stays zero
    auto col = scratch_floats(nb * ohw * kc), yl = scratch_floats(nb * ohw * OC);
    for (int64_t p = part_begin(passes, j, parts); p < part_begin(passes, j + 1, parts); ++p) {
      const int n0 = static_cast<int>(p) * nb, m = std::min(nb, s.n - n0);
      to_channels_last(xl.get(), f, inp + int64_t{n0} * C * hw, m, C, s.h, s.w);
      columns(col.get(), xl.get(), f, s, m);
      gemm_f32_packed(kernel, static_cast<int>(m * ohw), OC, static_cast<int>(kc), col.get(), kc, wp, yl.get(), OC);
      from_channels_last(out + int64_t{n0} * OC * ohw, yl.get(), fo, m, OC, s.oh, s.ow, false, fin);
    }
  });
}

void channels_last_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                            const Conv2dShape& s, int chunk_images) {
  if (!dinp && !dweight) return;
  check_shape(s);
  const int C = s.c, OC = s.oc, taps = s.kh * s.kw;
  const int64_t hw = static_cast<int64_t>(s.h) * s.w, ohw = static_cast<int64_t>(s.oh) * s.ow,
                kc = static_cast<int64_t>(taps) * C;
  const int nb = images_per_pass(s, chunk_images);
  const ChannelsLastFrame f = input_frame(s), fo{s.oh, s.ow, 0, 0};
  const int64_t framed = static_cast<int64_t>(nb) * f.ph * f.pw * C;
  Scratch wt;
  if (dinp) {
    wt = scratch_floats(kc * OC);
    turn_weights(wt.get(), weight, s, false);
  }
  // Parts: consecutive runs of passes, each part's through all their steps on one thread
  // (threads.h), with its own sum of dW, dwl[j]; the sums are added in part order, so the bits do
  // not depend on which thread takes which part.
  const int64_t passes = (s.n + nb - 1) / nb;
  const int parts = parts_for(passes);
  std::vector<Scratch> dwl(dweight ? parts : 0);
  for (Scratch& d : dwl) d = zeroed(kc * OC);  // the passes add into it
  run_parts(parts, [&](int j) {
    Scratch xl = dweight ? zeroed(framed) : nullptr;  // its frame stays zero
    Scratch dxl = dinp ? scratch_floats(framed) : nullptr;
    auto col = scratch_floats(nb * ohw * kc), dyl = scratch_floats(nb * ohw * OC);
    for (int64_t p = part_begin(passes, j, parts); p < part_begin(passes, j + 1, parts); ++p) {
      const int n0 = static_cast<int>(p) * nb, m = std::min(nb, s.n - n0);
      const int rows = static_cast<int>(m * ohw);
      to_channels_last(dyl.get(), fo, dout + int64_t{n0} * OC * ohw, m, OC, s.oh, s.ow);
      if (dweight) {  // dW (as (KH KW C) x OC) += col^T dY
        to_channels_last(xl.get(), f, inp + int64_t{n0} * C * hw, m, C, s.h, s.w);
        columns(col.get(), xl.get(), f, s, m);
        sgemm(true, false, static_cast<int>(kc), OC, rows, 1.f, col.get(), static_cast<int>(kc), dyl.get(), OC, 1.f,
              dwl[j].get(), OC);
      }
      if (dinp) {  // dcol = dY W, added back onto the input's pixels
        sgemm(false, false, rows, static_cast<int>(kc), OC, 1.f, dyl.get(), OC, wt.get(), static_cast<int>(kc), 0.f,
              col.get(), static_cast<int>(kc));
        std::fill(dxl.get(), dxl.get() + framed, 0.f);
        columns_adjoint(dxl.get(), col.get(), f, s, m);
        from_channels_last(dinp + int64_t{n0} * C * hw, dxl.get(), f, m, C, s.h, s.w, true);
      }
    }
  });
  if (dweight) {
    parallel_pieces(OC, 8, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o)
        for (int c = 0; c < C; ++c)
          for (int t = 0; t < taps; ++t) {
            const int64_t i = (static_cast<int64_t>(t) * C + c) * OC + o;
            float sum = dwl[0][i];
            for (int j = 1; j < parts; ++j) sum += dwl[j][i];
            dweight[(o * C + c) * taps + t] += sum;
          }
    });
  }
}

}  // namespace qforge

#include "core/ops/winograd.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/blas.h"
#include "core/kernels/dispatch.h"
#include "core/kernels/winograd_f4x4_blocks.h"
#include "core/ops/channels_last.h"
#include "core/ops/scratch.h"
#include "core/threads.h"

namespace qforge {

namespace {

using namespace winograd_detail;

// ---------------------------------------------------------------------------
// Tiles. A chunk of images is transformed and multiplied at once; its tiles
// are numbered image by image, row by row, and are the rows of the products.
// The transforms run on channels-last copies of the chunk's images (NHWC,
// channels rounded up to kLanes with zeros; winograd_f4x4_blocks.h), each
// image's rows and columns framed by zeros so that every tile's 6x6 window
// (rows and columns 4i-1 .. 4i+4) lies inside: pixel (y, x) of image i at
// ((i * ph + y + 1) * pw + x + 1) * cp. The outputs' copies use the same frame.

struct Tiles {
  int th, tw;         // tile rows and columns per image
  int64_t per_image;  // th * tw
  int ph, pw;         // rows and columns of an image's channels-last copy: 4 th + 2, 4 tw + 2
  int nb;             // images in this chunk
  int64_t tc;         // tiles in this chunk
  int64_t most;       // tiles in a full chunk: the transformed planes' rows
  int64_t plane(int cp) const;   // stride of the transformed planes of cp (rounded) channels
  int64_t pixels() const { return static_cast<int64_t>(nb) * ph * pw; }
};

// A plane stride one cache line longer than the plane: a tile's 36 planes
// then do not all fall in one set of the L1 cache, as they would at planes
// whose sizes are multiples of 4 KB.
int64_t plane_stride(int64_t floats) { return floats + kLanes; }

int64_t Tiles::plane(int cp) const { return plane_stride(most * cp); }

// The floats of the transformed filters of a rows x cols filter matrix: 36 planes.
int64_t filter_floats(int64_t filters) { return kXi * plane_stride(filters); }

// 4x4 output tiles per image.
int64_t tiles_per_image(const Conv2dShape& s) { return static_cast<int64_t>((s.oh + 3) / 4) * ((s.ow + 3) / 4); }

// The transformed input and output of a chunk stay within this many floats
// (2 MB, so they stay in the caches between the transforms and the products;
// measured against 1 to 16 MB on ResNet18's layers at batch 128).
constexpr int64_t kChunkFloats = int64_t{1} << 19;

Tiles make_tiles(const Conv2dShape& s, int chunk_images) {
  Tiles t;
  t.th = (s.oh + 3) / 4, t.tw = (s.ow + 3) / 4;
  t.per_image = tiles_per_image(s);
  t.ph = 4 * t.th + 2, t.pw = 4 * t.tw + 2;
  if (chunk_images <= 0) {
    const int64_t per = kXi * static_cast<int64_t>(channel_lanes(s.c) + channel_lanes(s.oc)) * t.per_image;
    // Where the transformed filters are larger, as deep in a ResNet, bigger
    // chunks read them fewer times.
    const int64_t budget = std::max(kChunkFloats, kXi * static_cast<int64_t>(s.c) * s.oc);
    chunk_images = static_cast<int>(std::clamp<int64_t>(budget / per, 1, s.n));
  }
  t.nb = std::min(chunk_images, s.n);
  t.tc = t.most = t.nb * t.per_image;
  return t;
}

Tiles last_chunk(Tiles t, int images) {
  t.nb = images;
  t.tc = images * t.per_image;
  return t;
}

// A chunk's transformed planes of c channels (rounded up to kLanes). Where c is not a multiple of
// kLanes they are zeroed once: the products write c columns, and the output transform reads the
// rounded ones.
Scratch transformed(const Tiles& t, int c) {
  Scratch p = scratch_floats(kXi * t.plane(channel_lanes(c)));
  if (c % kLanes) std::fill(p.get(), p.get() + kXi * t.plane(channel_lanes(c)), 0.f);
  return p;
}
Scratch channels_last(const Tiles& t, int c) { return scratch_floats(t.pixels() * channel_lanes(c)); }

// A channels-last buffer for to_channels_last, zeroed once: the copies write only inside the
// frame, which stays zero from chunk to chunk. (The outputs' copies cover whole tiles, into the
// frame where a size is not a multiple of 4: they have buffers of their own.)
Scratch framed(const Tiles& t, int c) {
  Scratch p = channels_last(t, c);
  std::fill(p.get(), p.get() + t.pixels() * channel_lanes(c), 0.f);
  return p;
}

// ---------------------------------------------------------------------------
// Whole transforms on the pool's threads.

// The chunk's frame: every tile's window (rows and columns 4i-1 .. 4i+4) inside.
ChannelsLastFrame frame(const Tiles& t) { return {t.ph, t.pw, 1, 1}; }

// Calls f(image, tile row, first tile) for every row of tiles of the chunk.
template <typename F>
void for_each_tile_row(const Tiles& t, F&& f) {
  parallel_pieces(static_cast<int64_t>(t.nb) * t.th, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t img = i / t.th, r = i % t.th;
      f(img, r, img * t.per_image + r * t.tw);
    }
  });
}

// v[xi][tile][c] = (B^T d B)[xi] for the 6x6 window d of each tile, from the channels-last xl.
void transform_input(float* v, const float* xl, int c, const Tiles& t) {
  const BlockKernels& k = winograd_blocks();
  const int cp = channel_lanes(c);
  for_each_tile_row(t, [&](int64_t img, int64_t r, int64_t t0) {
    k.input(v + t0 * cp, t.plane(cp), xl + (img * t.ph + 4 * r) * t.pw * cp, int64_t{t.pw} * cp, cp, t.tw);
  });
}

// yl = A^T m A for each tile's 4x4 outputs, channels last.
void transform_output(float* yl, const float* m, int c, const Tiles& t) {
  const BlockKernels& k = winograd_blocks();
  const int cp = channel_lanes(c);
  for_each_tile_row(t, [&](int64_t img, int64_t r, int64_t t0) {
    k.output(yl + ((img * t.ph + 4 * r + 1) * t.pw + 1) * cp, int64_t{t.pw} * cp, m + t0 * cp, t.plane(cp), cp, t.tw);
  });
}

// The adjoint of transform_output: dm = A dy A^T for each tile's 4x4 output gradient, from the
// channels-last dyl (zero outside the image).
void transform_output_adjoint(float* dm, const float* dyl, int c, const Tiles& t) {
  const BlockKernels& k = winograd_blocks();
  const int cp = channel_lanes(c);
  for_each_tile_row(t, [&](int64_t img, int64_t r, int64_t t0) {
    k.output_adjoint(dm + t0 * cp, t.plane(cp), dyl + ((img * t.ph + 4 * r + 1) * t.pw + 1) * cp, int64_t{t.pw} * cp,
                     cp, t.tw);
  });
}

// Calls f(row, first column, columns) for every block of 16 filters of every
// row of a rows x cols filter matrix.
template <typename F>
void for_each_filter_block(int rows, int cols, F&& f) {
  const int blocks = (cols + kLanes - 1) / kLanes;
  parallel_pieces(static_cast<int64_t>(rows) * blocks, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int k0 = static_cast<int>(i % blocks) * kLanes;
      f(static_cast<int>(i / blocks), k0, std::min(kLanes, cols - k0));
    }
  });
}

// How transform_filter lays out the transformed filters of a weight (OC, C, 3, 3).
enum class FilterLayout {
  in_out,          // rows = C, cols = OC, g = w[k][r]: the forward products
  out_in_flipped,  // rows = OC, cols = C, g = w[r][k] turned by 180 degrees: dX's products
};

// u[xi][r][k] = (G g G^T)[xi], rows and cols and g as the layout says.
void transform_filter(float* u, const float* w, int rows, int cols, FilterLayout layout) {
  const BlockKernels& k = winograd_blocks();
  // Element e of filter (r, k) sits at w + r * rs + k * ks + e * es.
  const bool in_out = layout == FilterLayout::in_out;
  const int64_t rs = in_out ? 9 : int64_t{9} * cols, ks = in_out ? int64_t{9} * rows : 9;
  const int es = in_out ? 1 : -1;
  const float* w0 = in_out ? w : w + 8;
  const int64_t us = plane_stride(static_cast<int64_t>(rows) * cols);
  for_each_filter_block(rows, cols, [&](int r, int k0, int cnt) { k.filter(u, w0, rs, ks, es, us, cols, r, k0, cnt); });
}

// The adjoint of transform_filter (forward layout): dw[oc][c] += G^T du[.][oc][c] G.
void transform_filter_adjoint(float* dw, const float* du, int oc_n, int c_n) {
  const BlockKernels& k = winograd_blocks();
  const int64_t us = plane_stride(static_cast<int64_t>(oc_n) * c_n);
  for_each_filter_block(oc_n, c_n, [&](int oc, int c0, int cnt) { k.filter_adjoint(dw, du, us, c_n, oc, c0, cnt); });
}

// One product per transformed element; the threads take them in turn.
template <typename F>
void for_each_xi(F&& f) {
  parallel_pieces(kXi, 1, [&](int64_t b, int64_t e) {
    for (int64_t x = b; x < e; ++x) f(static_cast<int>(x));
  });
}

// The transformed filters of a 512x512 layer take 38 MB, above the size (32 MB) from which malloc
// maps fresh pages on every call: each calling thread keeps its buffers between calls instead (the
// pool's threads may use them during the call). Slot 0: the filters; slot 1 + j: part j's sum of
// their gradient.
float* thread_buffer(int slot, size_t n) {
  struct Buffer {
    Scratch p;
    size_t cap = 0;
  };
  thread_local std::vector<Buffer> bufs;
  if (static_cast<int>(bufs.size()) <= slot) bufs.resize(slot + 1);
  Buffer& b = bufs[slot];
  if (b.cap < n) {
    b.p.reset();
    b.p = scratch_floats(n);
    b.cap = n;
  }
  return b.p.get();
}

// out (co channels, images n0 ..) = (or +=, accumulating) the convolution of the chunk's
// channels-last xl (ci channels, framed) with the transformed filters u ([xi][ci][co]): v and m hold
// the transformed input and output, yl the output's channels-last copy. The products have the
// tiles as rows and the output channels as columns.
void conv_chunk(float* out, const float* xl, const float* u, int ci, int co, int h, int w, const Tiles& t, int n0,
                float* yl, float* v, float* m, bool accumulate, const ChannelFinish& fin = {}) {
  const int tc = static_cast<int>(t.tc);
  transform_input(v, xl, ci, t);
  for_each_xi([&](int x) {
    sgemm(false, false, tc, co, ci, 1.f, v + x * t.plane(channel_lanes(ci)), channel_lanes(ci),
          u + x * plane_stride(static_cast<int64_t>(ci) * co), co, 0.f, m + x * t.plane(channel_lanes(co)), channel_lanes(co));
  });
  transform_output(yl, m, co, t);
  from_channels_last(out + int64_t{n0} * co * h * w, yl, frame(t), t.nb, co, h, w, accumulate, fin);
}

// A band: the chunk's tile rows [r0, r1) (numbered image by image, th per image), and f(image,
// its first and last tile row + 1) for each image it crosses.
struct Band {
  int64_t r0, r1;
  template <typename F>
  void for_each_image(const Tiles& t, F&& f) const {
    for (int64_t img = r0 / t.th; img < t.nb && img * t.th < r1; ++img)
      f(img, static_cast<int>(std::max(r0 - img * t.th, int64_t{0})),
        static_cast<int>(std::min(r1 - img * t.th, int64_t{t.th})));
  }
};

// Band j of parts over the chunk's tile rows.
Band band(const Tiles& t, int j, int parts) {
  const int64_t rows = int64_t{t.nb} * t.th;
  return {part_begin(rows, j, parts), part_begin(rows, j + 1, parts)};
}

// How many bands conv_chunk_bands splits a chunk into: one per thread, where each thread gets two
// or more rows of tiles and the chunk's transformed tiles (tc (ci + co) floats per plane) outweigh
// twice the filters (ci co), which every band reads whole; otherwise 1 (conv_chunk, each step split
// over the threads, the products by plane). ResNet18 at 224x224 batch 1 (AMD EPYC Zen 5, 2
// threads, 3 alternating rounds): the 56x56 layers (196 tiles, 64 channels) took 0.38 ms in bands
// against 0.51-0.53 by steps, the 28x28 ones (49 tiles, 128 channels) 0.61 against 0.53-0.54.
int chunk_bands(const Tiles& t, int ci, int co) {
  if (t.tc * (ci + co) < 2 * int64_t{ci} * co) return 1;
  return static_cast<int>(std::min<int64_t>(num_threads(), int64_t{t.nb} * t.th / 2));
}

// The chunk's conv_chunk with its tile rows in bands, one per part, each band through the
// transforms, the products and the output copy on one thread: a band's tiles are consecutive rows
// of every product. Only the input copy is a step of its own (a band's windows reach one pixel row
// past each of its edges, into its neighbours' rows), split the same way. out (co channels, images
// n0 ..). h, w: the input's and the output's size alike (Winograd's stride 1 and padding 1).
void conv_chunk_bands(float* out, const float* inp, const float* u, int ci, int co, int h, int w, const Tiles& t,
                      int n0, float* xl, float* yl, float* v, float* m, int parts, const ChannelFinish& fin) {
  const BlockKernels& k = winograd_blocks();
  const int cp = channel_lanes(ci), cop = channel_lanes(co);
  const ChannelsLastFrame f = frame(t);
  const int64_t hw = int64_t{h} * w;
  run_parts(parts, [&](int j) {  // image rows [4 r0, 4 r1) of the band's images, channels last
    band(t, j, parts).for_each_image(t, [&](int64_t img, int r0, int r1) {
      to_channels_last_rows(xl, f, inp + int64_t{n0} * ci * hw, img, ci, h, w, std::min(4 * r0, h),
                            std::min(4 * r1, h));
    });
  });
  run_parts(parts, [&](int j) {
    const Band b = band(t, j, parts);
    b.for_each_image(t, [&](int64_t img, int r0, int r1) {
      for (int r = r0; r < r1; ++r)
        k.input(v + (img * t.th + r) * t.tw * cp, t.plane(cp), xl + (img * t.ph + 4 * r) * t.pw * cp,
                int64_t{t.pw} * cp, cp, t.tw);
    });
    const int64_t t0 = b.r0 * t.tw, tiles = (b.r1 - b.r0) * t.tw;
    for (int x = 0; x < kXi; ++x)
      sgemm(false, false, static_cast<int>(tiles), co, ci, 1.f, v + x * t.plane(cp) + t0 * cp, cp,
            u + x * plane_stride(static_cast<int64_t>(ci) * co), co, 0.f, m + x * t.plane(cop) + t0 * cop, cop);
    b.for_each_image(t, [&](int64_t img, int r0, int r1) {
      for (int r = r0; r < r1; ++r)
        k.output(yl + ((img * t.ph + 4 * r + 1) * t.pw + 1) * cop, int64_t{t.pw} * cop,
                 m + (img * t.th + r) * t.tw * cop, t.plane(cop), cop, t.tw);
      from_channels_last_rows(out + int64_t{n0} * co * hw, yl, f, img, co, h, w, std::min(4 * r0, h),
                              std::min(4 * r1, h), false, fin);
    });
  });
}

}  // namespace

bool winograd_caches(const Conv2dShape& s, bool frozen) {
  // Frozen (made once, never compared): always. Transforming a 512x512 layer's filters took 2.7 ms of
  // its 10.6 at 4x4 maps, batch 64 (AMD EPYC Zen 5, 2 threads), where reading the 38 MB back takes
  // about 0.5.
  if (frozen) return true;
  // From 32 tiles the products take most of a call: there one buffer, transformed into and read
  // while it is in the caches, was faster than each layer's own filters read back from memory and
  // checked (ResNet18's 28x28 layers at 224x224 batch 1: 0.62 ms against 0.57 per 128x128 layer).
  return s.n * tiles_per_image(s) < 32 &&
         filter_floats(static_cast<int64_t>(s.oc) * s.c) * int64_t{sizeof(float)} <= (int64_t{16} << 20);
}

bool winograd_applies(const Conv2dShape& s, bool cached_filters) {
  const ConvGeometry& a = s.a;
  if (!(s.kh == 3 && s.kw == 3 && a.stride_h == 1 && a.stride_w == 1 && a.pad_h == 1 && a.pad_w == 1 &&
        a.dilation_h == 1 && a.dilation_w == 1 && a.groups == 1))
    return false;
  // Tile by tile, the transforms cost more than the products save (ResNet18's
  // 28x28 layer at batch 128: 74 ms against im2col's 57; with AVX2 32 ms).
  if (float_kernels().winograd == nullptr) return false;
  // Maps so small that most of a 4x4 tile is padding save too few multiplies
  // (a 2x2 map: 36 per tile against 9 x 4 direct).
  const int64_t per_image = tiles_per_image(s);
  if (2 * kXi * per_image > 9 * static_cast<int64_t>(s.oh) * s.ow) return false;
  // With fewer tiles in all, the 36 products are too thin to pay for the
  // transforms (measured: 16 tiles of 14x14 or 7x7 with 256-512 channels are
  // slower than im2col, 32 even, 64 1.5x faster; ResNet18 at 224x224 batch 1
  // took 11.2 ms with its 14x14 layers by Winograd, 10.4 ms by im2col). With the filters transformed
  // once, from 16: ResNet18 at 224x224 batch 1 with its 14x14 layers by Winograd took 16.5-17.2 ms
  // against 17.4-18.3 (AMD EPYC Zen 4, 2 threads; 1 thread: 30.6-32.0 against 33.3-33.6).
  return s.n * per_image >= (cached_filters ? 16 : 32);
}

void winograd_forward(float* out, const float* inp, const float* weight, const Conv2dShape& s, int chunk_images,
                      PreparedFilterCache* cache, const ChannelFinish& fin) {
  const int C = s.c, OC = s.oc;
  const Tiles full = make_tiles(s, chunk_images);
  std::shared_ptr<const PreparedFilters> kept;
  const float* u;
  if (cache) {
    kept = prepared_filters(*cache, weight, {OC, C, 3, 3}, filter_floats(static_cast<int64_t>(OC) * C),
                            [&](float* dst, const float* w) { transform_filter(dst, w, C, OC, FilterLayout::in_out); });
    u = kept->data.get();
  } else {
    float* b = thread_buffer(0, filter_floats(static_cast<int64_t>(OC) * C));
    transform_filter(b, weight, C, OC, FilterLayout::in_out);
    u = b;
  }
  // Parts: consecutive runs of chunks, each through all its steps on one thread (parts_for, threads.h).
  const int64_t chunks = (s.n + full.nb - 1) / full.nb;
  const int parts = parts_for(chunks);
  run_parts(parts, [&](int j) {
    auto xl = framed(full, C), yl = channels_last(full, OC);
    auto v = transformed(full, C), m = transformed(full, OC);
    for (int64_t i = part_begin(chunks, j, parts); i < part_begin(chunks, j + 1, parts); ++i) {
      const int n0 = static_cast<int>(i) * full.nb;
      const Tiles t = last_chunk(full, std::min(full.nb, s.n - n0));
      if (const int bands = parts == 1 ? chunk_bands(t, C, OC) : 1; bands > 1) {
        conv_chunk_bands(out, inp, u, C, OC, s.oh, s.ow, t, n0, xl.get(), yl.get(), v.get(), m.get(), bands, fin);
        continue;
      }
      to_channels_last(xl.get(), frame(t), inp + int64_t{n0} * C * s.h * s.w, t.nb, C, s.h, s.w);
      conv_chunk(out, xl.get(), u, C, OC, s.oh, s.ow, t, n0, yl.get(), v.get(), m.get(), false, fin);
    }
  });
}

void winograd_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const Conv2dShape& s, int chunk_images) {
  if (!dinp && !dweight) return;
  const int C = s.c, OC = s.oc, cp = channel_lanes(C), ocp = channel_lanes(OC);
  const Tiles full = make_tiles(s, chunk_images);
  const int64_t us = plane_stride(static_cast<int64_t>(OC) * C), nu = filter_floats(static_cast<int64_t>(OC) * C);
  float* u = nullptr;
  if (dinp) {  // dX = dY convolved with the filter turned by 180 degrees, C and OC swapped
    u = thread_buffer(0, nu);
    transform_filter(u, weight, OC, C, FilterLayout::out_in_flipped);
  }
  // Parts: consecutive runs of chunks, part j's run on one thread through all its steps (its
  // buffers, its own sum of the filters' gradient, du[j]), so no chunk's data moves between cores.
  // The runs are fixed by the count of parts, and the sums added in their order: the same bits
  // whichever thread takes which part.
  const int64_t chunks = (s.n + full.nb - 1) / full.nb;
  const int parts = parts_for(chunks);
  std::vector<float*> du(parts, nullptr);
  if (dweight)
    for (int j = 0; j < parts; ++j) {
      du[j] = thread_buffer(1 + j, nu);
      std::fill(du[j], du[j] + nu, 0.f);  // the chunks add into it
    }
  auto part = [&](int j) {
    // a: OC channels of transformed tiles (dY's), b: C channels (dX's or X's); channels last: dyl
    // dY's, xl X's, yl dX's.
    auto a = transformed(full, OC), b = transformed(full, C);
    auto dyl = framed(full, OC);
    Scratch xl = dweight ? framed(full, C) : nullptr, yl = dinp ? channels_last(full, C) : nullptr;
    for (int64_t i = part_begin(chunks, j, parts); i < part_begin(chunks, j + 1, parts); ++i) {
      const int n0 = static_cast<int>(i) * full.nb;
      const Tiles t = last_chunk(full, std::min(full.nb, s.n - n0));
      const int tc = static_cast<int>(t.tc);
      to_channels_last(dyl.get(), frame(t), dout + int64_t{n0} * OC * s.oh * s.ow, t.nb, OC, s.oh, s.ow);
      if (dinp) conv_chunk(dinp, dyl.get(), u, OC, C, s.h, s.w, t, n0, yl.get(), a.get(), b.get(), true);
      if (dweight) {
        transform_output_adjoint(a.get(), dyl.get(), OC, t);
        to_channels_last(xl.get(), frame(t), inp + int64_t{n0} * C * s.h * s.w, t.nb, C, s.h, s.w);
        transform_input(b.get(), xl.get(), C, t);
        for_each_xi([&](int x) {  // du += dm^T v
          sgemm(true, false, OC, C, tc, 1.f, a.get() + x * t.plane(ocp), ocp, b.get() + x * t.plane(cp), cp, 1.f,
                du[j] + x * us, C);
        });
      }
    }
  };
  run_parts(parts, part);
  if (!dweight) return;
  if (parts > 1)
    parallel_for(nu, 1 << 14, [&](int64_t b, int64_t e) {
      for (int j = 1; j < parts; ++j)
        for (int64_t i = b; i < e; ++i) du[0][i] += du[j][i];
    });
  transform_filter_adjoint(dweight, du[0], OC, C);
}

}  // namespace qforge

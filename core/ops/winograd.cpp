#include "core/ops/winograd.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>

#include "core/blas.h"
#include "core/kernels/dispatch.h"
#include "core/kernels/winograd_f4x4_blocks.h"
#include "core/ops/gemm_f32.h"
#include "core/ops/scratch.h"
#include "core/threads.h"

namespace qforge {

namespace {

using namespace winograd_detail;

// The selected level's blocks (core/kernels/dispatch.cpp); the reference
// blocks where the level has none, for direct calls (winograd_applies is
// false there).
const BlockKernels& blocks() {
  static const BlockKernels& k = winograd_blocks_for(selected_isa());
  return k;
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
  int64_t plane(int channels) const;  // stride of the transformed planes of this many channels
};

// A plane stride one cache line longer than the plane: the 36 planes a block
// reads or writes then do not all fall in one set of the L1 cache, as they did
// at 64-channel planes, whose sizes are multiples of 4 KB (the transforms of
// ResNet18's 28x28 layers took 1.5-2x as long).
int64_t plane_stride(int64_t floats) { return floats + kLanes; }

int64_t Tiles::plane(int channels) const { return plane_stride(channels * ts); }

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

// ---------------------------------------------------------------------------
// Whole transforms, over channels x blocks on the pool's threads.

// Calls f(plane, row, first tile, tiles) for every block of every channel of
// x (N, ch, h, w) in the chunk: plane is the channel's images, row the offset
// of its row of tiles in the transformed planes.
template <typename T, typename F>
void for_each_block(T* x, int ch, int h, int w, const Tiles& t, int n0, F&& f) {
  const int64_t hw = static_cast<int64_t>(h) * w, blocks = (t.tc + kLanes - 1) / kLanes;
  parallel_pieces(ch * blocks, 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t c = i / blocks, t0 = (i % blocks) * kLanes;
      const Plane<T> p{x + (static_cast<int64_t>(n0) * ch + c) * hw, ch * hw, h, w};
      f(p, c * t.ts, t0, static_cast<int>(std::min<int64_t>(kLanes, t.tc - t0)));
    }
  });
}

// v[xi][c][tile] = (B^T d B)[xi] for the 6x6 input patch d of each tile (rows
// and columns 4i-1 .. 4i+4, zero outside the image); x (N, ch, h, w).
void transform_input(float* v, const float* x, int ch, int h, int w, const Tiles& t, const TileTable& tt, int n0) {
  const BlockKernels& k = blocks();
  for_each_block(x, ch, h, w, t, n0, [&](const Plane<const float>& p, int64_t row, int64_t t0, int cnt) {
    k.input(v + row, t.plane(ch), p, tt, t0, cnt);
  });
}

// out = A^T m A for each tile, where its 4x4 outputs fall inside the image
// (added to out when accumulating); out (N, ch, h, w).
void transform_output(float* out, const float* m, int ch, int h, int w, const Tiles& t, const TileTable& tt, int n0,
                      bool accumulate) {
  const BlockKernels& k = blocks();
  for_each_block(out, ch, h, w, t, n0, [&](const Plane<float>& p, int64_t row, int64_t t0, int cnt) {
    k.output(p, m + row, t.plane(ch), tt, t0, cnt, accumulate);
  });
}

// The adjoint of transform_output: dm = A dy A^T for each tile's 4x4 output
// gradient (zero outside the image).
void transform_output_adjoint(float* dm, const float* dy, int ch, int h, int w, const Tiles& t, const TileTable& tt,
                              int n0) {
  const BlockKernels& k = blocks();
  for_each_block(dy, ch, h, w, t, n0, [&](const Plane<const float>& p, int64_t row, int64_t t0, int cnt) {
    k.output_adjoint(dm + row, t.plane(ch), p, tt, t0, cnt);
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
  out_in,          // rows = OC, cols = C, g = w[r][k]: the forward products
  in_out,          // rows = C, cols = OC, g = w[k][r]: the forward products turned (few_tile_products)
  in_out_flipped,  // as in_out, each filter turned by 180 degrees: dX's products
};

// u[xi][r][k] = (G g G^T)[xi], rows and cols and g as the layout says.
void transform_filter(float* u, const float* w, int rows, int cols, FilterLayout layout) {
  const BlockKernels& k = blocks();
  // Element e of filter (r, k) sits at w + r * rs + k * ks + e * es.
  const bool in_out = layout != FilterLayout::out_in, flip = layout == FilterLayout::in_out_flipped;
  const int64_t rs = in_out ? 9 : int64_t{9} * cols, ks = in_out ? int64_t{9} * rows : 9;
  const int es = flip ? -1 : 1;
  const float* w0 = flip ? w + 8 : w;
  const int64_t us = plane_stride(static_cast<int64_t>(rows) * cols);
  for_each_filter_block(rows, cols, [&](int r, int k0, int cnt) { k.filter(u, w0, rs, ks, es, us, cols, r, k0, cnt); });
}

// The adjoint of transform_filter (forward layout): dw[oc][c] += G^T du[.][oc][c] G.
void transform_filter_adjoint(float* dw, const float* du, int oc_n, int c_n) {
  const BlockKernels& k = blocks();
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
// maps fresh pages on every call: each thread keeps its buffers between calls instead. Slots 0 and
// 1: the filters and their gradient; 2 and 3: few_tile_products' turned input and product.
float* thread_buffer(int slot, size_t n) {
  thread_local Scratch buf[4];
  thread_local size_t cap[4] = {0, 0, 0, 0};
  if (cap[slot] < n) {
    buf[slot].reset();
    buf[slot] = scratch_floats(n);
    cap[slot] = n;
  }
  return buf[slot].get();
}

// Whether few_tile_products serves a layer of ci input and co output channels: where the usual
// product, sgemm(co, tiles, ci) with 16 to 31 tiles (cached filters), runs qforge's 6x64 tile, so
// the two give the same bits. Not where it runs OpenBLAS (below level avx512), whose sums may run
// in another order, nor where it runs the depth-vector kernel, which reads the filters in place and
// pays already. The conditions only tighten as the tiles grow (core/blas.cpp), so the two ends decide.
bool few_tiles_turned(int ci, int co) {
  return sgemm_route(co, 16, ci) == GemmRoute::tile && sgemm_route(co, 31, ci) == GemmRoute::tile;
}

// m[xi] = u[xi] v[xi] with the filters turned (u [xi][ci][co], transform_filter's in_out) for a chunk
// of few tiles (fewer than 32: cached filters). The usual product has that few columns: the 6x64
// tile then fills one or two vectors of 16, and each of its 6 broadcasts of a filter serves one or two FMAs,
// reading the filters from memory at a third of the FMA peak (ResNet18's 256-channel layers at
// 224x224 batch 1). Here the tiles are the rows (v's planes turned) and the output channels the
// columns: 24 FMAs per 4 loads of filters, which stream once. Each element is the same chain of
// FMAs over ci as in the usual product, so the same bits.
void few_tile_products(float* m, const float* v, const float* u, int ci, int co, const Tiles& t) {
  const GemmF32Kernel kernel = gemm_f32_kernel();
  const int tc = static_cast<int>(t.tc), ts = static_cast<int>(t.ts);
  parallel_pieces(kXi, 1, [&](int64_t b, int64_t e) {
    float* a = thread_buffer(2, static_cast<size_t>(tc) * ci);
    float* c = thread_buffer(3, static_cast<size_t>(tc) * co);
    for (int64_t x = b; x < e; ++x) {
      transpose_floats(a, ci, v + x * t.plane(ci), ts, ci, tc);
      gemm_f32(kernel, tc, co, ci, a, ci, u + x * plane_stride(static_cast<int64_t>(co) * ci), co, c, co);
      transpose_floats(m + x * t.plane(co), ts, c, co, tc, co);
    }
  });
}

// out (co channels) = (or +=, accumulating) the convolution of in (ci
// channels) with the transformed filters u, for one chunk: u [xi][co][ci], or [xi][ci][co] if
// turned (few_tile_products); v and m hold the chunk's transformed input and output.
void conv_chunk(float* out, const float* in, const float* u, int ci, int co, int h, int w, const Tiles& t,
                const TileTable& tt, int n0, float* v, float* m, bool accumulate, bool turned) {
  const int tc = static_cast<int>(t.tc), ts = static_cast<int>(t.ts);
  transform_input(v, in, ci, h, w, t, tt, n0);
  if (turned) {
    few_tile_products(m, v, u, ci, co, t);
  } else {
    for_each_xi([&](int x) {
      sgemm(false, false, co, tc, ci, 1.f, u + x * plane_stride(static_cast<int64_t>(co) * ci), ci,
            v + x * t.plane(ci), ts, 0.f, m + x * t.plane(co), ts);
    });
  }
  transform_output(out, m, co, h, w, t, tt, n0, accumulate);
}

// Whether a and b hold the same n floats' bytes, compared on the pool's threads.
bool same_bytes(const float* a, const float* b, size_t n) {
  std::atomic<bool> same{true};
  parallel_pieces(static_cast<int64_t>(n), 1 << 16, [&](int64_t i, int64_t e) {
    if (same.load(std::memory_order_relaxed) && std::memcmp(a + i, b + i, (e - i) * sizeof(float)) != 0)
      same.store(false, std::memory_order_relaxed);
  });
  return same.load();
}

// The layer's transformed filters from its cache, remade unless the weights hold the bytes they were
// made from. The lock only guards the pointer: filters never change once made, so callers compare
// and make them without it.
std::shared_ptr<const WinogradFilters> cached_filters(WinogradFilterCache& cache, const float* weight, int oc, int c) {
  const size_t n = static_cast<size_t>(oc) * c * 9;
  std::shared_ptr<const WinogradFilters> f;
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    f = cache.filters;
  }
  if (f && f->source.size() == n && same_bytes(f->source.data(), weight, n)) return f;
  auto made = std::make_shared<WinogradFilters>();
  made->source.assign(weight, weight + n);
  made->u = scratch_floats(filter_floats(static_cast<int64_t>(oc) * c));
  made->turned = few_tiles_turned(c, oc);
  if (made->turned)
    transform_filter(made->u.get(), made->source.data(), c, oc, FilterLayout::in_out);
  else
    transform_filter(made->u.get(), made->source.data(), oc, c, FilterLayout::out_in);
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.filters = made;
  return made;
}

}  // namespace

bool winograd_caches(const Conv2dShape& s) {
  // From 32 tiles the products take most of a call: there one buffer, transformed into and read
  // while it is in the caches, was faster than each layer's own filters read back from memory and
  // checked (ResNet18's 28x28 layers at 224x224 batch 1: 0.62 ms against 0.57 per 128x128 layer).
  return s.n * tiles_per_image(s) < 32 &&
         filter_floats(static_cast<int64_t>(s.oc) * s.c) * int64_t{sizeof(float)} <= (int64_t{16} << 20);
}

int64_t winograd_cache_bytes(const WinogradFilterCache& cache) {
  std::lock_guard<std::mutex> lock(cache.mu);
  if (!cache.filters) return 0;
  const int64_t n = static_cast<int64_t>(cache.filters->source.size());
  return (n + filter_floats(n / 9)) * int64_t{sizeof(float)};
}

bool winograd_applies(const Conv2dShape& s, bool cached_filters) {
  const ConvGeometry& a = s.a;
  if (!(s.kh == 3 && s.kw == 3 && a.stride_h == 1 && a.stride_w == 1 && a.pad_h == 1 && a.pad_w == 1 &&
        a.dilation_h == 1 && a.dilation_w == 1 && a.groups == 1))
    return false;
  // Tile by tile, the transforms cost more than the products save (ResNet18's
  // 28x28 layer at batch 128: 74 ms against im2col's 57; with AVX2 32 ms).
  if (float_kernels().winograd == nullptr) return false;
  // The gathers' 32-bit offsets must reach across one image's channels.
  if (static_cast<int64_t>(std::max(s.c, s.oc)) * s.oh * s.ow > INT32_MAX) return false;
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
                      WinogradFilterCache* cache) {
  const int C = s.c, OC = s.oc;
  const Tiles full = make_tiles(s, chunk_images);
  const TileTable tt(full.tc, full.per_image, full.tw);
  std::shared_ptr<const WinogradFilters> kept;
  const float* u;
  bool turned = false;
  if (cache) {
    kept = cached_filters(*cache, weight, OC, C);
    u = kept->u.get();
    turned = kept->turned;
  } else {
    float* b = thread_buffer(0, filter_floats(static_cast<int64_t>(OC) * C));
    transform_filter(b, weight, OC, C, FilterLayout::out_in);
    u = b;
  }
  auto v = scratch_floats(kXi * full.plane(C)), m = scratch_floats(kXi * full.plane(OC));
  for (int n0 = 0; n0 < s.n; n0 += full.nb) {
    const Tiles t = last_chunk(full, std::min(full.nb, s.n - n0));
    conv_chunk(out, inp, u, C, OC, s.oh, s.ow, t, tt, n0, v.get(), m.get(), false, turned);
  }
}

void winograd_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const Conv2dShape& s, int chunk_images) {
  if (!dinp && !dweight) return;
  const int C = s.c, OC = s.oc;
  const Tiles full = make_tiles(s, chunk_images);
  const TileTable tt(full.tc, full.per_image, full.tw);
  const int64_t us = plane_stride(static_cast<int64_t>(OC) * C), nu = filter_floats(static_cast<int64_t>(OC) * C);
  // a: OC channels of transformed tiles (dY's), b: C channels (dX's or X's).
  auto a = scratch_floats(kXi * full.plane(OC)), b = scratch_floats(kXi * full.plane(C));
  float *u = nullptr, *du = nullptr;
  if (dinp) {  // dX = dY convolved with the filter turned by 180 degrees, C and OC swapped
    u = thread_buffer(0, nu);
    transform_filter(u, weight, C, OC, FilterLayout::in_out_flipped);
  }
  if (dweight) {
    du = thread_buffer(1, nu);
    std::fill(du, du + nu, 0.f);  // the chunks add into it
  }
  for (int n0 = 0; n0 < s.n; n0 += full.nb) {
    const Tiles t = last_chunk(full, std::min(full.nb, s.n - n0));
    const int tc = static_cast<int>(t.tc), ts = static_cast<int>(t.ts);
    if (dinp) conv_chunk(dinp, dout, u, OC, C, s.h, s.w, t, tt, n0, a.get(), b.get(), true, /*turned=*/false);
    if (dweight) {
      transform_output_adjoint(a.get(), dout, OC, s.oh, s.ow, t, tt, n0);
      transform_input(b.get(), inp, C, s.h, s.w, t, tt, n0);
      for_each_xi([&](int x) {  // du += dm v^T
        sgemm(false, true, OC, C, tc, 1.f, a.get() + x * t.plane(OC), ts, b.get() + x * t.plane(C), ts, 1.f,
              du + x * us, C);
      });
    }
  }
  if (dweight) transform_filter_adjoint(dweight, du, OC, C);
}

}  // namespace qforge

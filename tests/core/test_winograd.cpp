// Tests of Winograd F(4x4,3x3) (core/ops/winograd.h) against the definition, im2col and its portable loops.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

#include "conv_reference.h"
#include "core/autograd.h"
#include "core/kernels/dispatch.h"
#include "core/kernels/winograd_f4x4_blocks.h"
#include "core/ops/conv2d.h"
#include "core/ops/elementwise.h"
#include "core/ops/winograd.h"
#include "core/options.h"
#include "core/threads.h"
#include "op_test_util.h"

using namespace qforge;
using qforge::testing::check_conv_path;
using qforge::testing::check_thread_bits;
using qforge::testing::kConvCases;
using qforge::testing::naive_conv;
using qforge::testing::rng;

TEST_CASE("winograd: 3x3 stride-1 convolutions match the definition and im2col, forward and backward") {
  ConvGeometry same{1, 1, 1, 1, 1, 1, 1};
  // Odd and even sizes (a partial last tile row/column), 1x1 and 2x2 images, chunks of 1, 2 and all images.
  const int shapes[][5] = {{3, 4, 7, 6, 5}, {2, 3, 8, 8, 4}, {3, 2, 1, 1, 3},
                           {2, 5, 2, 3, 2}, {4, 3, 5, 5, 6}, {2, 18, 9, 10, 17}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& sh : shapes) {
      const int n = sh[0], c = sh[1], h = sh[2], w = sh[3], oc = sh[4];
      CAPTURE(n);
      CAPTURE(c);
      CAPTURE(h);
      CAPTURE(w);
      CAPTURE(oc);
      Tensor x = Tensor::randn({n, c, h, w}, rng()), wt = Tensor::randn({oc, c, 3, 3}, rng());
      check_conv_path(
          x, wt, same, {1, 2, 0},
          [](float* out, const float* in, const float* w, const Conv2dShape& cs, int chunk) {
            winograd_forward(out, in, w, cs, chunk);  // without a filter cache
          },
          winograd_backward);
      // A bias and a clamp (ReLU6) done as the output is copied back: the bits of the bare output,
      // + the bias, clamped as the separate epilogue does.
      const Conv2dShape s = conv2d_shape(x.shape(), wt.shape(), same);
      const Tensor b = Tensor::randn({oc}, rng());
      Tensor bare = Tensor::empty({n, oc, h, w}), biased = Tensor::empty(bare.shape()),
             fin = Tensor::empty(bare.shape());
      winograd_forward(bare.data(), x.data(), wt.data(), s);
      winograd_forward(biased.data(), x.data(), wt.data(), s, 0, nullptr, {b.data(), false, 0.f});
      winograd_forward(fin.data(), x.data(), wt.data(), s, 0, nullptr, {b.data(), true, 6.f});
      for (int64_t i = 0; i < bare.numel(); ++i) {
        const float v = bare.data()[i] + b.data()[i / (h * w) % oc];
        REQUIRE(biased.data()[i] == v);
        REQUIRE(fin.data()[i] == clamp_relu_value(v, 6.f));
      }
    }
  }
  set_num_threads(1);
  // Enough 4x4 tiles in the batch take Winograd through conv2d (past 8 channels at levels avx2 and up,
  // where fewer run direct: conv2d_direct_taps); anything else stays on im2col.
  // At the scalar level (QFORGE_ISA=scalar, or a CPU without AVX2) nothing does.
  const bool simd = float_kernels().winograd != nullptr;
  CHECK(winograd_applies(conv2d_shape({2, 2, 16, 16}, {3, 2, 3, 3}, same)) == simd);
  CHECK(winograd_applies(conv2d_shape({32, 2, 4, 4}, {3, 2, 3, 3}, same)) == simd);
  CHECK_FALSE(winograd_applies(conv2d_shape({1, 2, 16, 15}, {3, 2, 3, 3}, same)));  // 16 tiles
  CHECK_FALSE(winograd_applies(conv2d_shape({64, 2, 2, 2}, {3, 2, 3, 3}, same)));   // 2x2 maps
  CHECK_FALSE(winograd_applies(conv2d_shape({64, 2, 5, 5}, {3, 2, 3, 3}, same)));   // 4 tiles for 25 outputs
  Shape x{8, 2, 6, 6};
  CHECK(winograd_applies(conv2d_shape(x, {3, 2, 3, 3}, same)) == simd);  // and not with any of these changes:
  CHECK_FALSE(winograd_applies(conv2d_shape(x, {3, 2, 3, 3}, {2, 2, 1, 1, 1, 1, 1})));
  CHECK_FALSE(winograd_applies(conv2d_shape(x, {3, 2, 3, 3}, {1, 1, 0, 0, 1, 1, 1})));
  CHECK_FALSE(winograd_applies(conv2d_shape(x, {2, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 2})));
  CHECK_FALSE(winograd_applies(conv2d_shape(x, {3, 2, 5, 5}, {1, 1, 1, 1, 1, 1, 1})));
}

namespace {

// Bitwise equality; NaN patterns compare equal, -0 and +0 differ.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<float> random_floats(size_t n, std::mt19937& g) {
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

}  // namespace

TEST_CASE("winograd: chunks split into parts over the threads give the bits of one thread, run after run") {
  // 7 images in chunks of 1 or 2: 7 or 4 chunks, so 2 threads take them in two parts (each part's
  // chunks on one thread, the filters' gradient summed per part), 1 thread in one. All 7 in one
  // chunk: its 21 rows of tiles in two bands, whose windows reach into each other's rows; chunks of
  // 6: 18 rows, in bands that end where an image does.
  Tensor x = Tensor::randn({7, 5, 9, 6}, rng()), w = Tensor::randn({18, 5, 3, 3}, rng());
  check_thread_bits(
      x, w, {1, 1, 1, 1, 1, 1, 1}, {1, 2, 6, 7},
      [](float* out, const float* in, const float* wt, const Conv2dShape& s, int chunk) {
        winograd_forward(out, in, wt, s, chunk);
      },
      winograd_backward);
}

TEST_CASE("winograd: every level's transform blocks give the reference blocks' bits") {
  using namespace winograd_detail;
  const BlockKernels& ref = winograd_blocks_for(Isa::scalar);
  // Runs of tiles over channels-last windows (cp channels, one or more blocks of 16), images
  // to and from channels last, and filter matrices rows x cols (blocks of 16 filters).
  const int runs[][2] = {{16, 1}, {16, 7}, {48, 3}, {32, 2}};
  // Images h x w x nc channels: planes of 1 to 16 pixels, full and partial blocks of 16 pixels,
  // blocks across rows.
  const int images[][3] = {{1, 1, 1}, {1, 5, 15}, {4, 4, 16}, {3, 7, 9}, {28, 28, 16}, {7, 7, 3}, {5, 37, 11}};
  const int filters[][2] = {{4, 3}, {3, 2}, {5, 4}, {17, 20}, {2, 33}};
  std::mt19937 g(5);
  int levels = 0;
  const BlockKernels* tested = &ref;
  for (Isa isa : supported_isas()) {
    const BlockKernels& k = winograd_blocks_for(isa);
    if (&k == tested) continue;  // the reference, or the level below's blocks
    tested = &k;
    ++levels;
    CAPTURE(isa_name(isa));
    for (const auto& [cp, tiles] : runs) {
      CAPTURE(cp);
      CAPTURE(tiles);
      // A frame of 6 rows of 4 * tiles + 2 pixels, rows rs apart (3 floats more: rows off the
      // pixel grid); planes xs apart.
      const int64_t rs = (4 * tiles + 2) * int64_t{cp} + 3, xs = int64_t{tiles} * cp + 5;
      const std::vector<float> x = random_floats(6 * rs, g), m = random_floats(kXi * xs, g);
      std::vector<float> v[2], dm[2], y[2];
      for (int i : {0, 1}) {
        const BlockKernels& b = i ? k : ref;
        v[i].assign(kXi * xs, -7.f);
        dm[i].assign(kXi * xs, -7.f);
        y[i].assign(x.size(), -7.f);
        b.input(v[i].data(), xs, x.data(), rs, cp, tiles);
        b.output_adjoint(dm[i].data(), xs, x.data(), rs, cp, tiles);
        b.output(y[i].data(), rs, m.data(), xs, cp, tiles);
      }
      CHECK(same_bits(v[0], v[1]));
      CHECK(same_bits(dm[0], dm[1]));
      CHECK(same_bits(y[0], y[1]));
      CHECK(std::count(v[0].begin(), v[0].end(), -7.f) == kXi * 5);  // every tile's values written
    }
    for (const auto& [h, w, nc] : images) {
      CAPTURE(h);
      CAPTURE(w);
      CAPTURE(nc);
      // Channels' planes cs apart (3 floats more than the plane); channels-last pixels ps apart and
      // rows rs apart (5 floats more than the row).
      const int64_t cs = int64_t{h} * w + 3, ps = kLanes + 2, rs = w * ps + 5;
      const std::vector<float> x = random_floats(nc * cs, g), xl = random_floats(h * rs, g);
      const std::vector<float> bias = random_floats(nc, g);
      // Finished on the way back: none, bias, bias and ReLU, bias and ReLU6, ReLU alone.
      const float inf = std::numeric_limits<float>::infinity();
      const ChannelFinish fins[] = {
          {}, {bias.data(), false, 0.f}, {bias.data(), true, inf}, {bias.data(), true, 6.f}, {nullptr, true, 0.5f}};
      std::vector<float> l[2], o[2], oa[2], of[2][std::size(fins)];
      for (int i : {0, 1}) {
        const BlockKernels& b = i ? k : ref;
        l[i].assign(h * rs, -7.f);
        o[i].assign(x.size(), -7.f);
        oa[i] = x;
        b.to_nhwc(l[i].data(), rs, ps, x.data(), cs, h, w, nc);
        b.from_nhwc(o[i].data(), cs, xl.data(), rs, ps, h, w, nc, false, {});
        b.from_nhwc(oa[i].data(), cs, xl.data(), rs, ps, h, w, nc, true, {});
        for (size_t f = 0; f < std::size(fins); ++f) {
          of[i][f].assign(x.size(), -7.f);
          b.from_nhwc(of[i][f].data(), cs, xl.data(), rs, ps, h, w, nc, false, fins[f]);
        }
      }
      CHECK(same_bits(l[0], l[1]));
      CHECK(same_bits(o[0], o[1]));
      CHECK(same_bits(oa[0], oa[1]));
      for (size_t f = 0; f < std::size(fins); ++f) {
        CAPTURE(f);
        CHECK(same_bits(of[0][f], of[1][f]));
        // The reference against the separate epilogue: + bias, or bias_clamp's.
        for (int c = 0; c < nc; ++c) {
          const float bc = fins[f].bias ? bias[c] : 0.f;
          std::vector<float> want(o[0].begin() + c * cs, o[0].begin() + c * cs + int64_t{h} * w);
          if (fins[f].relu)
            bias_clamp__ref(want.data(), want.data(), int64_t(want.size()), bc, fins[f].hi);
          else
            for (float& v : want) v += bc;
          REQUIRE(same_bits(want,
                            std::vector<float>(of[0][f].begin() + c * cs, of[0][f].begin() + c * cs + int64_t{h} * w)));
        }
      }
      // The reference's layout, spelled out: the last pixel of the last channel, the lanes past nc
      // zero, the gaps between pixels, rows and channels untouched.
      const int64_t last = (h - 1) * rs + (w - 1) * ps;
      CHECK(l[0][last + nc - 1] == x[(nc - 1) * cs + int64_t{h} * w - 1]);
      if (nc < kLanes) CHECK(l[0][last + nc] == 0.f);
      CHECK(l[0][last + kLanes] == -7.f);
      CHECK(l[0][h * rs - 1] == -7.f);
      CHECK(o[0][(nc - 1) * cs + int64_t{h} * w - 1] == xl[last + nc - 1]);
      CHECK(o[0][int64_t{h} * w] == -7.f);
    }
    for (const auto& [rows, cols] : filters) {
      CAPTURE(rows);
      CAPTURE(cols);
      const int64_t us = int64_t{rows} * cols + kLanes;
      const std::vector<float> wt = random_floats(size_t(rows) * cols * 9, g), du = random_floats(kXi * us, g),
                               dw0 = random_floats(wt.size(), g);
      std::vector<float> u[2], uf[2], dw[2];
      for (int i : {0, 1}) {
        const BlockKernels& b = i ? k : ref;
        u[i].assign(kXi * us, -7.f);
        uf[i].assign(kXi * us, -7.f);
        dw[i] = dw0;
        for (int r = 0; r < rows; ++r)
          for (int k0 = 0; k0 < cols; k0 += kLanes) {
            const int cnt = std::min(kLanes, cols - k0);
            b.filter(u[i].data(), wt.data(), int64_t{9} * cols, 9, 1, us, cols, r, k0, cnt);
            // Turned 180 degrees, as for dX (winograd.cpp's out_in_flipped: rows the output channels).
            b.filter(uf[i].data(), wt.data() + 8, int64_t{9} * cols, 9, -1, us, cols, r, k0, cnt);
            b.filter_adjoint(dw[i].data(), du.data(), us, cols, r, k0, cnt);
          }
      }
      CHECK(same_bits(u[0], u[1]));
      CHECK(same_bits(uf[0], uf[1]));
      CHECK(same_bits(dw[0], dw[1]));
    }
  }
  if (levels == 0) MESSAGE("skipped: this CPU has no SIMD Winograd blocks");
}

TEST_CASE("winograd: a layer's cached filters give the uncached bits and follow every change of the weights") {
  ConvGeometry same{1, 1, 1, 1, 1, 1, 1};  // 16 channels: fewer run direct (conv2d_direct_taps)
  // winograd_applies with SIMD blocks; conv2d takes Winograd (and caches) where it applies and
  // QFORGE_WINOGRAD is not off.
  const bool simd = float_kernels().winograd != nullptr;
  const bool taken = simd && options().winograd == WinogradMode::automatic;
  // One 14x14 image: 16 tiles, enough with cached filters only.
  const Conv2dShape s1 = conv2d_shape({1, 16, 14, 14}, {6, 16, 3, 3}, same);
  CHECK_FALSE(winograd_applies(s1));
  CHECK(winograd_applies(s1, true) == simd);
  CHECK(winograd_caches(s1));
  CHECK_FALSE(winograd_caches(conv2d_shape({2, 16, 14, 14}, {6, 16, 3, 3}, same)));      // 32 tiles
  CHECK_FALSE(winograd_caches(conv2d_shape({1, 512, 14, 14}, {512, 512, 3, 3}, same)));  // 38 MB
  // A frozen cache (conv2d.h: freeze_conv_filters) keeps them whatever the tiles and the size.
  CHECK(winograd_caches(conv2d_shape({2, 16, 14, 14}, {6, 16, 3, 3}, same), true));
  CHECK(winograd_caches(conv2d_shape({1, 512, 14, 14}, {512, 512, 3, 3}, same), true));
  auto bits = [](const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    CAPTURE(threads);
    for (int n : {1, 2}) {  // 16 tiles (cached Winograd, else im2col) and 32 (Winograd, not cached)
      CAPTURE(n);
      Tensor x = Tensor::randn({n, 16, 14, 14}, rng()), w = Tensor::randn({6, 16, 3, 3}, rng());
      auto cache = make_conv_filter_cache();
      CHECK(conv_filter_cache_bytes(*cache) == 0);
      // What the convolution gives with the filters transformed for the call (no cache).
      auto uncached = [&](const Tensor& wt) {
        const Conv2dShape s = conv2d_shape(x.shape(), wt.shape(), same);
        Tensor out = Tensor::empty({n, wt.size(0), 14, 14});
        if (taken)
          winograd_forward(out.data(), x.data(), wt.data(), s);
        else
          conv2d_forward(out.data(), x.data(), wt.data(), nullptr, s);
        return bits(out);
      };
      // A call that records gradients leaves the cache alone.
      Tensor wg = w.clone().requires_grad_();
      conv2d(x, wg, Tensor(), same, cache.get());
      CHECK(conv_filter_cache_bytes(*cache) == 0);
      NoGradGuard no_grad;
      const Tensor first = conv2d(x, w, Tensor(), same, cache.get());
      CHECK(bits(first) == uncached(w));
      Tensor want = naive_conv(x, w, Tensor(), same);
      for (int64_t i = 0; i < want.numel(); ++i)
        REQUIRE(first.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4).scale(1));
      CHECK((conv_filter_cache_bytes(*cache) > 0) == (taken && n == 1));
      // The same weights again (the filters reused), then one weight changed in place: the filters are remade.
      CHECK(bits(conv2d(x, w, Tensor(), same, cache.get())) == bits(first));
      w.data()[w.numel() - 1] += 0.5f;
      const Tensor changed = conv2d(x, w, Tensor(), same, cache.get());
      CHECK(bits(changed) != bits(first));
      CHECK(bits(changed) == uncached(w));
      // Another layer's weights through the same cache, and the fused inference op.
      const Tensor w4 = Tensor::randn({4, 16, 3, 3}, rng());
      CHECK(bits(conv2d(x, w4, Tensor(), same, cache.get())) == uncached(w4));
      const Tensor b = Tensor::randn({6}, rng());
      CHECK(bits(conv2d_bias_relu(x, w, b, same, 6.f, cache.get())) ==
            bits(conv2d_bias_relu(x, w, b, same, 6.f, make_conv_filter_cache().get())));
    }
    // Weights of 73,728 floats, compared in two pieces: a change in the second is seen too.
    Tensor x = Tensor::randn({1, 64, 14, 14}, rng()), w = Tensor::randn({128, 64, 3, 3}, rng());
    auto cache = make_conv_filter_cache();
    const Tensor first = conv2d(x, w, Tensor(), same, cache.get());
    w.data()[w.numel() - 10] = -w.data()[w.numel() - 10];
    const Tensor fresh = conv2d(x, w, Tensor(), same, make_conv_filter_cache().get());
    CHECK(bits(conv2d(x, w, Tensor(), same, cache.get())) == bits(fresh));
    CHECK(bits(fresh) != bits(first));
    // Cached filters against the filters transformed for the call, over 16 to 31 tiles, one to three
    // images per chunk, channels not multiples of 16 (the rounded planes), several 64-column blocks
    // of the products, 128-deep passes (700 input channels) and a partial last vector.
    for (const auto& [n, hw, c, oc] : {std::array{1, 14, 200, 150}, std::array{1, 16, 24, 70},
                                       std::array{1, 17, 200, 150}, std::array{5, 6, 24, 70},
                                       std::array{3, 12, 40, 30}, std::array{1, 17, 700, 140}}) {
      CAPTURE(n);
      CAPTURE(hw);
      CAPTURE(c);
      Tensor xs = Tensor::randn({n, c, hw, hw}, rng()), ws = Tensor::randn({oc, c, 3, 3}, rng());
      const Conv2dShape s = conv2d_shape(xs.shape(), ws.shape(), same);
      REQUIRE(winograd_caches(s));
      CHECK(winograd_applies(s, true) == simd);
      if (!simd) continue;
      for (int chunk : {0, 1, 2}) {
        CAPTURE(chunk);
        Tensor plain = Tensor::empty({n, oc, hw, hw}), cached = Tensor::empty({n, oc, hw, hw});
        winograd_forward(plain.data(), xs.data(), ws.data(), s, chunk);
        PreparedFilterCache cache;
        for (int call = 0; call < 2; ++call) {  // the filters made, then reused
          winograd_forward(cached.data(), xs.data(), ws.data(), s, chunk, &cache);
          CHECK(bits(cached) == bits(plain));
        }
      }
    }
  }
  set_num_threads(1);
}

// Tests of the channels-last copies and the strided convolutions on them (core/ops/channels_last.h)
// against the definition and im2col.
#include <doctest/doctest.h>

#include <array>
#include <vector>

#include "conv_reference.h"
#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/ops/channels_last.h"
#include "core/ops/conv2d.h"
#include "core/ops/elementwise.h"
#include "core/ops/gemm_f32.h"
#include "core/options.h"
#include "core/threads.h"
#include "op_test_util.h"

using namespace qforge;
using qforge::testing::check_conv_path;
using qforge::testing::check_thread_bits;
using qforge::testing::naive_conv;
using qforge::testing::rng;

namespace {
// The forward without a cache, as check_conv_path and check_thread_bits call it.
void forward(float* out, const float* inp, const float* weight, const Conv2dShape& s, int chunk_images) {
  channels_last_forward(out, inp, weight, s, chunk_images);
}
}  // namespace

TEST_CASE("channels last: images to and from a framed channels-last buffer") {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    // Channels a multiple of 16 or not (zeros past them), frames on every side, two images.
    for (const auto& [c, h, w] : {std::array{5, 3, 4}, std::array{16, 7, 7}, std::array{33, 2, 9}}) {
      CAPTURE(c);
      CAPTURE(h);
      CAPTURE(w);
      const int nb = 2, cp = channel_lanes(c);
      const ChannelsLastFrame f{h + 3, w + 2, 2, 1};
      Tensor x = Tensor::randn({nb, c, h, w}, rng());
      std::vector<float> xl(size_t(nb) * f.ph * f.pw * cp, -7.f);
      to_channels_last(xl.data(), f, x.data(), nb, c, h, w);
      for (int i = 0; i < nb; ++i)
        for (int y = -f.top; y < f.ph - f.top; ++y)
          for (int xx = -f.left; xx < f.pw - f.left; ++xx)
            for (int ch = 0; ch < cp; ++ch) {
              const float got = xl[f.offset(i, y, xx, cp) + ch];
              const bool inside = y >= 0 && y < h && xx >= 0 && xx < w;
              const float want = !inside ? -7.f : ch < c ? x.data()[((i * c + ch) * h + y) * w + xx] : 0.f;
              REQUIRE(got == want);
            }
      Tensor back = Tensor::empty(x.shape()), twice = x.clone();
      from_channels_last(back.data(), xl.data(), f, nb, c, h, w, false);
      from_channels_last(twice.data(), xl.data(), f, nb, c, h, w, true);
      for (int64_t i = 0; i < x.numel(); ++i) {
        REQUIRE(back.data()[i] == x.data()[i]);
        REQUIRE(twice.data()[i] == x.data()[i] + x.data()[i]);
      }
    }
  }
  set_num_threads(1);
}

TEST_CASE("channels last: passes split into parts over the threads give the bits of one thread, run after run") {
  // 9 images in passes of 1 or 2 (9 or 5 passes: two parts on 2 threads, each with its own sum of
  // dW), or all 9 in one pass (steps split over the threads).
  Tensor x = Tensor::randn({9, 16, 11, 10}, rng()), w = Tensor::randn({32, 16, 3, 3}, rng());
  check_thread_bits(x, w, {2, 2, 1, 1, 1, 1, 1}, {1, 2, 9}, forward, channels_last_backward);
}

TEST_CASE("channels last: strided convolutions match the definition and im2col, forward and backward") {
  // Where conv2d takes this path: qforge's GEMM tile, and QFORGE_WINOGRAD not off. The direct calls
  // below run at every level.
  const bool taken = gemm_f32_kernel() != nullptr && options().winograd == WinogradMode::automatic;
  // n, c, h, w, oc, kernel kh x kw, geometry: ResNet's 3x3 stride 2 (even and odd sizes), no
  // padding, stride 3, dilation, stride across only, kernels and strides, padding and dilation that
  // differ between the axes, and a last window that stops short of the image's edge (10x10, stride
  // 2, no padding: rows 0-8); enough output pixels (1024) to apply.
  struct Case {
    int n, c, h, w, oc, kh, kw;
    ConvGeometry a;
  };
  const Case cases[] = {{16, 16, 16, 16, 32, 3, 3, {2, 2, 1, 1, 1, 1, 1}}, {12, 32, 15, 21, 16, 3, 3, {2, 2, 1, 1, 1, 1, 1}},
                        {64, 16, 9, 9, 16, 3, 3, {2, 2, 0, 0, 1, 1, 1}},   {40, 16, 17, 16, 16, 3, 3, {3, 3, 1, 1, 1, 1, 1}},
                        {16, 16, 19, 19, 16, 3, 3, {2, 2, 2, 2, 2, 2, 1}}, {4, 16, 8, 70, 16, 5, 5, {1, 2, 2, 2, 1, 1, 1}},
                        {52, 16, 9, 11, 32, 3, 2, {2, 3, 1, 0, 1, 1, 1}},  {52, 16, 12, 9, 16, 2, 3, {3, 2, 0, 1, 2, 1, 1}},
                        {64, 16, 10, 10, 16, 3, 3, {2, 2, 0, 0, 1, 1, 1}}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Case& k : cases) {
      CAPTURE(k.n);
      CAPTURE(k.h);
      CAPTURE(k.w);

      CAPTURE(k.a.stride_h);
      CAPTURE(k.kw);
      Tensor x = Tensor::randn({k.n, k.c, k.h, k.w}, rng()), wt = Tensor::randn({k.oc, k.c, k.kh, k.kw}, rng());
      const Conv2dShape s = conv2d_shape(x.shape(), wt.shape(), k.a);
      REQUIRE(s.n * s.oh * s.ow >= 1024);
      REQUIRE(channels_last_applies(s) == taken);
      check_conv_path(x, wt, k.a, {1, 3, 0}, forward, channels_last_backward);
      // Through conv2d's dispatch (kAuto) the same bits as the direct calls where it takes them.
      if (!taken) continue;
      Tensor via = Tensor::empty({s.n, s.oc, s.oh, s.ow}), direct = Tensor::empty(via.shape());
      conv2d_forward(via.data(), x.data(), wt.data(), nullptr, s);
      channels_last_forward(direct.data(), x.data(), wt.data(), s);
      for (int64_t i = 0; i < via.numel(); ++i) REQUIRE(via.data()[i] == direct.data()[i]);
      // A bias, and a clamp (ReLU6), done as the output is copied back: the bits of the bare
      // product + the bias, clamped as the separate epilogue does.
      const Tensor b = Tensor::randn({s.oc}, rng());
      Tensor biased = Tensor::empty(via.shape()), fin = Tensor::empty(via.shape());
      conv2d_forward(biased.data(), x.data(), wt.data(), b.data(), s);
      channels_last_forward(fin.data(), x.data(), wt.data(), s, 0, nullptr, {b.data(), true, 6.f});
      for (int64_t i = 0; i < via.numel(); ++i) {
        const float v = direct.data()[i] + b.data()[i / (s.oh * s.ow) % s.oc];
        REQUIRE(biased.data()[i] == v);
        REQUIRE(fin.data()[i] == clamp_relu_value(v, 6.f));
      }
      const Tensor dy = Tensor::randn(via.shape(), rng()), dx0 = Tensor::randn(x.shape(), rng()),
                   dw0 = Tensor::randn(wt.shape(), rng());
      Tensor dx_via = dx0.clone(), dw_via = dw0.clone(), dx_direct = dx0.clone(), dw_direct = dw0.clone();
      conv2d_backward(dx_via.data(), dw_via.data(), nullptr, dy.data(), x.data(), wt.data(), s);
      channels_last_backward(dx_direct.data(), dw_direct.data(), dy.data(), x.data(), wt.data(), s);
      for (int64_t i = 0; i < dx_via.numel(); ++i) REQUIRE(dx_via.data()[i] == dx_direct.data()[i]);
      for (int64_t i = 0; i < dw_via.numel(); ++i) REQUIRE(dw_via.data()[i] == dw_direct.data()[i]);
    }
  }
  set_num_threads(1);
  // Anything else stays on im2col: a 1x1 kernel, stride 1, channels not multiples of 16, groups,
  // too few output pixels.
  const ConvGeometry s2{2, 2, 1, 1, 1, 1, 1};
  CHECK_FALSE(channels_last_applies(conv2d_shape({64, 16, 16, 16}, {16, 16, 1, 1}, {2, 2, 0, 0, 1, 1, 1})));
  CHECK_FALSE(channels_last_applies(conv2d_shape({64, 16, 16, 16}, {16, 16, 3, 3}, {1, 1, 1, 1, 1, 1, 1})));
  CHECK_FALSE(channels_last_applies(conv2d_shape({64, 24, 16, 16}, {16, 24, 3, 3}, s2)));
  CHECK_FALSE(channels_last_applies(conv2d_shape({64, 16, 16, 16}, {24, 16, 3, 3}, s2)));
  CHECK_FALSE(channels_last_applies(conv2d_shape({64, 32, 16, 16}, {32, 16, 3, 3}, {2, 2, 1, 1, 1, 1, 2})));
  CHECK_FALSE(channels_last_applies(conv2d_shape({15, 16, 16, 16}, {16, 16, 3, 3}, s2)));  // 960 pixels
  CHECK(channels_last_applies(conv2d_shape({16, 16, 16, 16}, {16, 16, 3, 3}, s2)) == taken);  // 1024
  // Called directly on a shape it cannot take: an error, not a wrong result.
  Tensor x = Tensor::randn({2, 24, 8, 8}, rng()), w = Tensor::randn({16, 24, 3, 3}, rng());
  Tensor out = Tensor::empty({2, 16, 4, 4});
  CHECK_THROWS_WITH_AS(channels_last_forward(out.data(), x.data(), w.data(), conv2d_shape(x.shape(), w.shape(), s2)),
                       doctest::Contains("multiples of 16"), Error);
}

TEST_CASE("channels last: a layer's packed weights kept in its cache give the uncached bits and follow the weights") {
  // Where conv2d takes it with a cache: any size (the 7x7 maps of a ResNet at batch 1, too few tiles
  // for Winograd), any stride, kernels wider than 1x1.
  const bool taken = gemm_f32_kernel() != nullptr && options().winograd == WinogradMode::automatic;
  auto bits = [](const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); };
  struct Case {
    int n, c, hw, oc, k;
    ConvGeometry a;
  };
  const Case cases[] = {{1, 32, 7, 48, 3, {1, 1, 1, 1, 1, 1, 1}},     // stride 1, 4 Winograd tiles
                        {1, 16, 15, 80, 3, {2, 2, 1, 1, 1, 1, 1}},    // stride 2, 64 pixels
                        {2, 48, 9, 16, 5, {1, 1, 2, 2, 1, 1, 1}},     // 5x5
                        {1, 144, 6, 272, 3, {1, 1, 1, 1, 1, 1, 1}}};  // k 1296, 5 panels
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Case& k : cases) {
      CAPTURE(threads);
      CAPTURE(k.c);
      Tensor x = Tensor::randn({k.n, k.c, k.hw, k.hw}, rng()), w = Tensor::randn({k.oc, k.c, k.k, k.k}, rng());
      const Conv2dShape s = conv2d_shape(x.shape(), w.shape(), k.a);
      REQUIRE(channels_last_caches(s) == taken);
      CHECK_FALSE(channels_last_applies(s));  // without a cache, im2col
      auto uncached = [&] {
        Tensor out = Tensor::empty({s.n, s.oc, s.oh, s.ow});
        if (taken)
          channels_last_forward(out.data(), x.data(), w.data(), s);
        else
          conv2d_forward(out.data(), x.data(), w.data(), nullptr, s);
        return bits(out);
      };
      auto cache = make_conv_filter_cache();
      auto call = [&] {
        Tensor out = Tensor::empty({s.n, s.oc, s.oh, s.ow});
        conv2d_forward(out.data(), x.data(), w.data(), nullptr, s, ConvAlgo::kAuto, cache.get());
        return out;
      };
      const Tensor first = call();
      CHECK(bits(first) == uncached());
      const Tensor want = naive_conv(x, w, Tensor(), k.a);
      for (int64_t i = 0; i < want.numel(); ++i)
        REQUIRE(first.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4).scale(1));
      // The weights and their packed copy.
      const int64_t packed = packed_b_floats(k.oc, k.c * k.k * k.k) * int64_t{sizeof(float)};
      CHECK(conv_filter_cache_bytes(*cache) == (taken ? packed + w.numel() * int64_t{sizeof(float)} : 0));
      CHECK(bits(call()) == bits(first));  // reused (below: the same filters)
      if (taken) {
        PreparedFilterCache direct;
        Tensor out = Tensor::empty({s.n, s.oc, s.oh, s.ow});
        channels_last_forward(out.data(), x.data(), w.data(), s, 0, &direct);
        const PreparedFilters* made = direct.filters.get();
        channels_last_forward(out.data(), x.data(), w.data(), s, 0, &direct);
        CHECK(direct.filters.get() == made);
        CHECK(bits(out) == bits(first));
      }
      w.data()[w.numel() - 1] += 0.5f;  // a write in place: remade
      const std::vector<float> changed = bits(call());
      CHECK(changed != bits(first));
      CHECK(changed == uncached());
      // Frozen: made once, from the weights at the first call, without a copy of them; a later write
      // is not seen until the cache is frozen again.
      freeze_conv_filters(*cache, true);
      CHECK(conv_filter_cache_bytes(*cache) == 0);
      CHECK(bits(call()) == changed);
      CHECK(conv_filter_cache_bytes(*cache) == (taken ? packed : 0));
      w.data()[0] -= 0.25f;
      const std::vector<float> written = uncached();
      CHECK(bits(call()) == (taken ? changed : written));
      freeze_conv_filters(*cache, true);
      CHECK(bits(call()) == written);
    }
  }
  set_num_threads(1);
}
// Tests of Winograd F(4x4,3x3) (core/ops/winograd.h) against the definition, im2col and its portable loops.
#include <doctest/doctest.h>

#include <cstring>
#include <random>

#include "conv_reference.h"
#include "core/ops/conv2d.h"
#include "core/ops/winograd.h"
#include "core/threads.h"

using namespace qforge;
using qforge::testing::kConvCases;
using qforge::testing::naive_conv;

namespace {

std::mt19937_64& rng() {
  static std::mt19937_64 r(1234);
  return r;
}

}  // namespace

TEST_CASE("winograd: 3x3 stride-1 convolutions match the definition and im2col, forward and backward") {
  Conv2dArgs same{1, 1, 1, 1, 1, 1, 1};
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
      Conv2dShape s = conv2d_shape(x.shape(), wt.shape(), same);
      Tensor want = naive_conv(x, wt, Tensor(), same);
      Tensor dy = Tensor::randn(want.shape(), rng());
      // im2col's gradients, added onto a nonzero start as the op does.
      Tensor dx0 = Tensor::randn(x.shape(), rng()), dw0 = Tensor::randn(wt.shape(), rng());
      Tensor dx_ref = dx0.clone(), dw_ref = dw0.clone();
      conv2d_backward(dx_ref.data(), dw_ref.data(), nullptr, dy.data(), x.data(), wt.data(), s, ConvAlgo::kIm2col);
      for (int chunk : {1, 2, 0}) {
        CAPTURE(chunk);
        Tensor got = Tensor::empty(want.shape());
        winograd_forward(got.data(), x.data(), wt.data(), s, chunk);
        for (int64_t i = 0; i < got.numel(); ++i)
          REQUIRE(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4).scale(1));
        Tensor dx = dx0.clone(), dw = dw0.clone();
        winograd_backward(dx.data(), dw.data(), dy.data(), x.data(), wt.data(), s, chunk);
        for (int64_t i = 0; i < dx.numel(); ++i)
          REQUIRE(dx.data()[i] == doctest::Approx(dx_ref.data()[i]).epsilon(1e-4).scale(1));
        for (int64_t i = 0; i < dw.numel(); ++i)
          REQUIRE(dw.data()[i] == doctest::Approx(dw_ref.data()[i]).epsilon(1e-4).scale(1));
        Tensor dw_only = dw0.clone(), dx_only = dx0.clone();  // each gradient alone
        winograd_backward(nullptr, dw_only.data(), dy.data(), x.data(), wt.data(), s, chunk);
        winograd_backward(dx_only.data(), nullptr, dy.data(), x.data(), wt.data(), s, chunk);
        for (int64_t i = 0; i < dw.numel(); ++i) REQUIRE(dw_only.data()[i] == dw.data()[i]);
        for (int64_t i = 0; i < dx.numel(); ++i) REQUIRE(dx_only.data()[i] == dx.data()[i]);
      }
    }
  }
  set_num_threads(1);
  // Enough 4x4 tiles in the batch take Winograd through conv2d; anything else stays on im2col.
  CHECK(winograd_applies(conv2d_shape({2, 2, 16, 16}, {3, 2, 3, 3}, same)));
  CHECK(winograd_applies(conv2d_shape({32, 2, 4, 4}, {3, 2, 3, 3}, same)));
  CHECK_FALSE(winograd_applies(conv2d_shape({1, 2, 16, 15}, {3, 2, 3, 3}, same)));  // 16 tiles
  CHECK_FALSE(winograd_applies(conv2d_shape({64, 2, 2, 2}, {3, 2, 3, 3}, same)));   // 2x2 maps
  CHECK_FALSE(winograd_applies(conv2d_shape({64, 2, 5, 5}, {3, 2, 3, 3}, same)));   // 4 tiles for 25 outputs
  Shape x{8, 2, 6, 6};
  CHECK(winograd_applies(conv2d_shape(x, {3, 2, 3, 3}, same)));  // and not with any of these changes:
  CHECK_FALSE(winograd_applies(conv2d_shape(x, {3, 2, 3, 3}, {2, 2, 1, 1, 1, 1, 1})));
  CHECK_FALSE(winograd_applies(conv2d_shape(x, {3, 2, 3, 3}, {1, 1, 0, 0, 1, 1, 1})));
  CHECK_FALSE(winograd_applies(conv2d_shape(x, {2, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 2})));
  CHECK_FALSE(winograd_applies(conv2d_shape(x, {3, 2, 5, 5}, {1, 1, 1, 1, 1, 1, 1})));
}

TEST_CASE("winograd: the AVX2 and AVX-512 transforms give the portable loops' bits") {
  Conv2dArgs same{1, 1, 1, 1, 1, 1, 1};
  // Blocks of 16 tiles and of 16 filters, full and partial; tiles cut by the image's edges.
  const int shapes[][5] = {{2, 3, 5, 37, 4}, {1, 2, 34, 33, 3}, {3, 4, 6, 7, 5}, {2, 2, 1, 2, 2}, {2, 20, 6, 5, 17}};
  struct Level {
    WinogradIsa isa;
    const char* name;
    bool supported;
  };
  const Level levels[] = {{WinogradIsa::kAvx2, "avx2", __builtin_cpu_supports("avx2") != 0},
                          {WinogradIsa::kAvx512, "avx512f", __builtin_cpu_supports("avx512f") != 0}};
  for (const auto& [isa, name, supported] : levels) {
    CAPTURE(name);
    if (!supported) {
      MESSAGE("skipped: this CPU has no ", name);
      continue;
    }
    for (const auto& sh : shapes) {
      const int n = sh[0], c = sh[1], h = sh[2], w = sh[3], oc = sh[4];
      CAPTURE(w);
      CAPTURE(c);
      Tensor x = Tensor::randn({n, c, h, w}, rng()), wt = Tensor::randn({oc, c, 3, 3}, rng());
      Conv2dShape s = conv2d_shape(x.shape(), wt.shape(), same);
      Tensor dy = Tensor::randn({n, oc, h, w}, rng());
      const Tensor dx0 = Tensor::randn(x.shape(), rng()), dw0 = Tensor::randn(wt.shape(), rng());
      Tensor out[2], dx[2], dw[2];
      for (int simd : {0, 1}) {
        winograd_max_isa = simd ? isa : WinogradIsa::kScalar;
        out[simd] = Tensor::empty(dy.shape());
        dx[simd] = dx0.clone();  // added onto, as the op does
        dw[simd] = dw0.clone();
        winograd_forward(out[simd].data(), x.data(), wt.data(), s);
        winograd_backward(dx[simd].data(), dw[simd].data(), dy.data(), x.data(), wt.data(), s);
      }
      winograd_max_isa = WinogradIsa::kAvx512;
      CHECK(std::memcmp(out[0].data(), out[1].data(), out[0].numel() * sizeof(float)) == 0);
      CHECK(std::memcmp(dx[0].data(), dx[1].data(), dx[0].numel() * sizeof(float)) == 0);
      CHECK(std::memcmp(dw[0].data(), dw[1].data(), dw[0].numel() * sizeof(float)) == 0);
    }
  }
}

// Tests of conv2d (core/ops/conv2d.h): the op and its raw pair against the definition and finite differences.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "conv_reference.h"
#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/kernels/kernels.h"
#include "core/ops/conv2d.h"
#include "core/ops/elementwise.h"
#include "core/ops/gemm_f32.h"
#include "core/options.h"
#include "core/threads.h"
#include "gradcheck.h"
#include "op_test_util.h"

using namespace qforge;
using qforge::testing::gradcheck_error;
using qforge::testing::kConvCases;
using qforge::testing::naive_conv;
using qforge::testing::rng;

TEST_CASE("conv2d forward matches the direct definition") {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& cc : kConvCases) {
      Tensor x = Tensor::randn({cc.n, cc.c, cc.h, cc.w}, rng());
      Tensor w = Tensor::randn({cc.oc, cc.c / cc.a.groups, cc.k, cc.k}, rng());
      Tensor b = cc.bias ? Tensor::randn({cc.oc}, rng()) : Tensor();
      Tensor got = conv2d(x, w, b, cc.a), want = naive_conv(x, w, b, cc.a);
      // And im2col, which kAuto leaves for direct loops where the layer has few channels.
      Tensor im2col = Tensor::empty(want.shape());
      conv2d_forward(im2col.data(), x.data(), w.data(), cc.bias ? b.data() : nullptr,
                     conv2d_shape(x.shape(), w.shape(), cc.a), ConvAlgo::kIm2col);
      REQUIRE(got.shape() == want.shape());
      for (int64_t i = 0; i < got.numel(); ++i) {
        REQUIRE(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4));
        REQUIRE(im2col.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4));
      }
    }
  }
  set_num_threads(1);
}

TEST_CASE("conv2d forward in blocks of output rows (column matrices past 1 MB) matches the direct definition") {
  struct Case {
    int n, c, h, w, oc, k;
    ConvGeometry a;
  };
  const Case cases[] = {
      {2, 3, 100, 100, 8, 7, ConvGeometry::square(2, 3)},        // a 7x7 stride-2 stem, two images
      {1, 4, 80, 80, 6, 5, ConvGeometry::square(1, 2, 1, 2)},    // groups 2, stride 1
      {1, 2, 128, 128, 5, 3, ConvGeometry::square(1, 2, 2)},     // dilation 2
      {1, 3, 131, 97, 7, 5, ConvGeometry{3, 1, 0, 1, 1, 1, 1}},  // stride 3 by 1, rows not a multiple of a block
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Case& cc : cases) {
      CAPTURE(cc.h);
      Tensor x = Tensor::randn({cc.n, cc.c, cc.h, cc.w}, rng());
      Tensor w = Tensor::randn({cc.oc, cc.c / cc.a.groups, cc.k, cc.k}, rng());
      Tensor b = Tensor::randn({cc.oc}, rng());
      const Conv2dShape s = conv2d_shape(x.shape(), w.shape(), cc.a);
      REQUIRE(conv2d_row_blocked(s));
      // kIm2col: kAuto runs one-group layers of up to 8 channels direct at levels avx2 and up
      // (conv2d_direct_taps), row blocks elsewhere; its ReLU6 epilogue either way.
      const Tensor want = naive_conv(x, w, b, cc.a), got = conv2d(x, w, b, cc.a);
      const Tensor got6 = conv2d_bias_relu(x, w, b, cc.a, 6.f);
      Tensor blocks = Tensor::empty(want.shape());
      conv2d_forward(blocks.data(), x.data(), w.data(), b.data(), s, ConvAlgo::kIm2col);
      for (int64_t i = 0; i < got.numel(); ++i) {
        REQUIRE(blocks.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4));
        REQUIRE(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4));
        REQUIRE(got6.data()[i] == clamp_relu_value(got.data()[i], 6.f));
      }
    }
  }
  set_num_threads(1);
}

TEST_CASE("conv_taps: every level's kernel gives the reference's bits") {
  // Channel counts around the 6-channel tile, rows around the 16-lane vectors and the 64-output
  // run, tap counts of a 3x3 and a 7x7 stem; offsets far apart as in a frame of three planes.
  std::mt19937 g(3);
  std::normal_distribution<float> d(0.f, 1.f);
  int levels = 0;
  for (Isa isa : supported_isas()) {
    const FloatKernelTable& t = float_kernels_for(isa);
    if (!t.conv_taps) continue;
    ++levels;
    CAPTURE(t.conv_taps_name);
    for (int oc : {1, 5, 6, 7, 13, 64}) {
      for (int n : {1, 15, 16, 17, 28, 63, 64, 65, 112, 130}) {
        for (int taps : {9, 147}) {
          CAPTURE(oc);
          CAPTURE(n);
          CAPTURE(taps);
          std::vector<int64_t> off(taps);
          for (int i = 0; i < taps; ++i) off[i] = (i % 3) * 1000 + (i / 3) * 5 + i % 2;
          // Exactly what the kernel may read (kernels.h), so that ASan sees a read past it.
          std::vector<float> x(*std::max_element(off.begin(), off.end()) + (n + 15) / 16 * 16);
          std::vector<float> w(static_cast<size_t>(taps) * oc);
          for (float& v : x) v = d(g);
          for (float& v : w) v = d(g);
          const int64_t ldo = n + 16;  // a gap as wide as a vector: a store past n lands in it
          std::vector<float> want(oc * ldo, -9.f), got(oc * ldo, -9.f);
          conv_taps_f32__ref(oc, n, taps, x.data(), off.data(), w.data(), want.data(), ldo);
          t.conv_taps(oc, n, taps, x.data(), off.data(), w.data(), got.data(), ldo);
          REQUIRE(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);  // the gaps untouched too
        }
      }
    }
  }
  // The reference itself: a chain of fused multiply-adds over the taps at their offsets, not a plain
  // sum: (1 + 2^-23)^2 - (1 + 2^-22) is 2^-46 with the fused multiply-add, 0 with a rounded product.
  const float e = std::ldexp(1.f, -23);
  const float x[3] = {1.f + 2 * e, 7.f, 1.f + e}, w[2] = {-1.f, 1.f + e};
  const int64_t off[2] = {0, 2};
  float out[1];
  conv_taps_f32__ref(1, 1, 2, x, off, w, out, 1);
  CHECK(out[0] == e * e);                               // (1 + e)^2 - (1 + 2e), exact
  CHECK((1.f + e) * (1.f + e) - (1.f + 2 * e) == 0.f);  // a plain product drops the e^2
  if (levels == 0) MESSAGE("skipped: no level of this CPU has a conv_taps kernel");
}

TEST_CASE("conv2d runs layers of few channels direct: im2col's bits with the level's tile, every geometry") {
  struct Case {
    int n, c, h, w, oc, k;
    ConvGeometry a;
  };
  const Case cases[] = {
      {1, 3, 64, 60, 64, 7, ConvGeometry::square(2, 3)},        // a 7x7 stride-2 stem at batch 1
      {5, 1, 28, 28, 32, 3, ConvGeometry::square(1, 1)},        // a small 3x3 stem, five images
      {2, 4, 19, 23, 13, 5, ConvGeometry::square(1, 2, 2)},     // dilation 2
      {1, 3, 31, 97, 7, 5, ConvGeometry{3, 1, 0, 1, 1, 1, 1}},  // stride 3 by 1, no vertical padding
      {3, 2, 9, 8, 6, 3, ConvGeometry{1, 2, 2, 0, 1, 3, 1}},    // stride and dilation across only
      {1, 1, 5, 70, 3, 3, ConvGeometry{2, 3, 1, 2, 1, 1, 1}},   // stride 3 across, a row past 16 lanes
      {1, 3, 2, 2, 4, 5, ConvGeometry::square(1, 2)},           // every tap of an edge in the padding
      {1, 8, 200, 200, 4, 3, ConvGeometry::square(1, 1)},       // bands of rows cut to fit the L2 cache
      {2, 2, 6, 7, 5, 3, ConvGeometry::square(1, 4)},           // padding wider than the kernel
      {1, 3, 11, 13, 6, 2, ConvGeometry::square(3, 0)},         // stride past the kernel: a phase never read
      {2, 3, 17, 9, 7, 3, ConvGeometry{2, 1, 2, 1, 3, 1, 1}},   // stride and dilation down only
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Case& cc : cases) {
      CAPTURE(cc.c);
      CAPTURE(cc.w);
      CAPTURE(threads);
      Tensor x = Tensor::randn({cc.n, cc.c, cc.h, cc.w}, rng());
      Tensor w = Tensor::randn({cc.oc, cc.c, cc.k, cc.k}, rng());
      Tensor b = Tensor::randn({cc.oc}, rng());
      const Conv2dShape s = conv2d_shape(x.shape(), w.shape(), cc.a);
      const bool direct = conv2d_direct_taps(s);
      CHECK(direct == (float_kernels().conv_taps != nullptr && options().winograd == WinogradMode::automatic));
      const Tensor want = naive_conv(x, w, b, cc.a), got = conv2d(x, w, b, cc.a);
      const Tensor got6 = conv2d_bias_relu(x, w, b, cc.a, 6.f);
      Tensor im2col = Tensor::empty(want.shape());
      conv2d_forward(im2col.data(), x.data(), w.data(), b.data(), s, ConvAlgo::kIm2col);
      REQUIRE(got.shape() == want.shape());
      for (int64_t i = 0; i < got.numel(); ++i) {
        REQUIRE(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4).scale(1));
        REQUIRE(got6.data()[i] == clamp_relu_value(got.data()[i], 6.f));
      }
      // Each output one chain over the taps in im2col's order: its GEMM tile's bits (these cases are
      // small enough for im2col to run the tile: core/blas.cpp, sgemm_route).
      if (direct && gemm_f32_kernel())
        REQUIRE(std::memcmp(got.data(), im2col.data(), got.numel() * sizeof(float)) == 0);
    }
  }
  set_num_threads(1);
}

TEST_CASE("conv2d forward finishes the GEMM's blocks (bias, clamp) wherever they fall") {
  // One image, so each product is split into blocks of rows and columns over the threads and each
  // block is finished as it is summed (sgemm_finished): several row and column blocks, and the
  // depth-vector GEMM's (at most 64 columns, k of at least 1024).
  struct Case {
    int c, h, w, oc, k;
    ConvGeometry a;
  };
  const Case cases[] = {
      {16, 15, 20, 50, 1, ConvGeometry::square(1, 0)},  // pointwise: 3 blocks of rows, 2 of columns
      {9, 33, 33, 30, 3, ConvGeometry::square(2, 1)},   // im2col, 289 columns (9 channels: not direct)
      {128, 7, 7, 40, 3, ConvGeometry::square(1, 1)},   // k 1152 at 49 columns: the depth-vector GEMM
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Case& cc : cases) {
      CAPTURE(cc.c);
      CAPTURE(threads);
      Tensor x = Tensor::randn({1, cc.c, cc.h, cc.w}, rng());
      Tensor w = Tensor::randn({cc.oc, cc.c, cc.k, cc.k}, rng());
      Tensor b = Tensor::randn({cc.oc}, rng());
      const Tensor want = naive_conv(x, w, b, cc.a), got = conv2d(x, w, b, cc.a);
      const Tensor got6 = conv2d_bias_relu(x, w, b, cc.a, 6.f);
      REQUIRE(got.shape() == want.shape());
      int64_t clamped = 0;
      for (int64_t i = 0; i < got.numel(); ++i) {
        REQUIRE(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4).scale(1));
        REQUIRE(got6.data()[i] == clamp_relu_value(got.data()[i], 6.f));
        clamped += got6.data()[i] == 0.f || got6.data()[i] == 6.f;
      }
      CHECK(clamped > 0);
    }
  }
  set_num_threads(1);
}

TEST_CASE("conv2d gradients match finite differences") {
  for (const auto& cc : kConvCases) {
    CAPTURE(cc.n);
    CAPTURE(cc.a.groups);
    std::vector<Tensor> in{Tensor::randn({cc.n, cc.c, cc.h, cc.w}, rng()),
                           Tensor::randn({cc.oc, cc.c / cc.a.groups, cc.k, cc.k}, rng())};
    if (cc.bias) in.push_back(Tensor::randn({cc.oc}, rng()));
    auto f = [&](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), cc.a); };
    // conv2d is linear in each input, so central differences are exact at any
    // step: a large one keeps the forward's float rounding (Winograd's is
    // larger than a direct sum's) out of the numeric side.
    CHECK(gradcheck_error(f, in, 0.5f) < 2e-3);
  }
}

TEST_CASE("conv2d names both shapes on a mismatch") {
  Tensor x = Tensor::zeros({1, 3, 8, 8}), w = Tensor::zeros({4, 2, 3, 3});
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {}), doctest::Contains("(1,3,8,8)"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {}), doctest::Contains("(4,2,3,3)"), Error);
}

TEST_CASE("conv2d_bias_relu: relu(conv2d) and relu6(conv2d) in one pass, the same values") {
  for (const auto& cc : kConvCases) {
    CAPTURE(cc.a.groups);
    Tensor x = Tensor::randn({cc.n, cc.c, cc.h, cc.w}, rng());
    Tensor w = Tensor::randn({cc.oc, cc.c / cc.a.groups, cc.k, cc.k}, rng());
    Tensor b = cc.bias ? Tensor::randn({cc.oc}, rng()) : Tensor();
    for (float hi : {std::numeric_limits<float>::infinity(), 6.f}) {
      const Tensor y = conv2d(x, w, b, cc.a);
      const Tensor want = hi == 6.f ? relu6(y) : relu(y);
      const Tensor got = conv2d_bias_relu(x, w, b, cc.a, hi);
      REQUIRE(got.shape() == want.shape());
      int64_t clamped = 0;
      for (int64_t i = 0; i < got.numel(); ++i) {
        REQUIRE(got.data()[i] == want.data()[i]);
        clamped += want.data()[i] == 0.f || want.data()[i] == hi;
      }
      CHECK(clamped > 0);  // the clamp was exercised
    }
  }
  // Inference only: an input that needs a gradient is refused.
  Tensor x = Tensor::randn({1, 2, 5, 5}, rng()), w = Tensor::randn({3, 2, 3, 3}, rng());
  w.requires_grad_();
  CHECK_THROWS_AS(conv2d_bias_relu(x, w, Tensor(), {}, 6.f), Error);
}

TEST_CASE("bias_clamp: every level's epilogue gives the reference's bits") {
  std::mt19937 g(7);
  std::normal_distribution<float> d(0.f, 4.f);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  int levels = 0;
  for (Isa isa : supported_isas()) {
    const FloatKernelTable& t = float_kernels_for(isa);
    if (t.bias_clamp == bias_clamp__ref) continue;
    ++levels;
    CAPTURE(t.bias_clamp_name);
    for (int64_t n : {1, 7, 8, 15, 16, 17, 31, 33, 64, 100}) {
      for (float bias : {0.f, -1.5f, 2.25f}) {
        for (float hi : {inf, 6.f}) {
          std::vector<float> src(n);
          for (float& v : src) v = d(g);
          // Values the rules decide: NaN, both zeros, infinities, the bound itself, just past it.
          const float special[] = {nan, -0.f, 0.f, -inf, inf, hi - bias, 6.f, -bias, std::nextafter(6.f - bias, 7.f)};
          for (int64_t i = 0; i < n; i += 3) src[i] = special[(i / 3) % 9];
          std::vector<float> want(n, -9.f), got(n, -9.f), inplace = src;
          bias_clamp__ref(want.data(), src.data(), n, bias, hi);
          t.bias_clamp(got.data(), src.data(), n, bias, hi);
          t.bias_clamp(inplace.data(), inplace.data(), n, bias, hi);
          REQUIRE(std::memcmp(got.data(), want.data(), n * sizeof(float)) == 0);
          REQUIRE(std::memcmp(inplace.data(), want.data(), n * sizeof(float)) == 0);
        }
      }
    }
  }
  // The reference's own rules: NaN to 0, -0 to +0, clamp at hi.
  float v[3] = {nan, -0.f, 9.f}, out[3];
  bias_clamp__ref(out, v, 3, 0.f, 6.f);
  CHECK(std::signbit(out[1]) == false);
  CHECK((out[0] == 0.f && out[1] == 0.f && out[2] == 6.f));
  if (levels == 0) MESSAGE("skipped: this CPU has only the reference epilogue");
}

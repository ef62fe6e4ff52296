#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/kernels/dispatch.h"
#include "core/kernels/winograd_f4x4_blocks.h"
#include "core/ops/batchnorm.h"
#include "core/ops/channel.h"
#include "core/ops/conv2d.h"
#include "core/ops/elementwise.h"
#include "core/ops/linear.h"
#include "core/ops/loss.h"
#include "core/ops/pool.h"
#include "core/ops/winograd.h"
#include "core/threads.h"
#include "gradcheck.h"

using namespace qforge;
using qforge::testing::gradcheck_error;

namespace {

std::mt19937_64& rng() {
  static std::mt19937_64 r(1234);
  return r;
}

// Direct convolution, the definition, for checking the im2col path.
Tensor naive_conv(const Tensor& x, const Tensor& w, const Tensor& b, ConvGeometry a) {
  Conv2dShape s = conv2d_shape(x.shape(), w.shape(), a);
  Tensor out = Tensor::zeros({s.n, s.oc, s.oh, s.ow});
  int cg = s.c / a.groups, ocg = s.oc / a.groups;
  for (int n = 0; n < s.n; ++n)
    for (int oc = 0; oc < s.oc; ++oc)
      for (int oh = 0; oh < s.oh; ++oh)
        for (int ow = 0; ow < s.ow; ++ow) {
          double acc = b.defined() ? b.data()[oc] : 0;
          int g = oc / ocg;
          for (int c = 0; c < cg; ++c)
            for (int kh = 0; kh < s.kh; ++kh)
              for (int kw = 0; kw < s.kw; ++kw) {
                int ih = oh * a.stride_h - a.pad_h + kh * a.dilation_h,
                    iw = ow * a.stride_w - a.pad_w + kw * a.dilation_w;
                if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
                acc += x.data()[((n * s.c + g * cg + c) * s.h + ih) * s.w + iw] *
                       w.data()[((oc * cg + c) * s.kh + kh) * s.kw + kw];
              }
          out.data()[((n * s.oc + oc) * s.oh + oh) * s.ow + ow] = static_cast<float>(acc);
        }
  return out;
}

struct ConvCase {
  int n, c, h, w, oc, k;
  ConvGeometry a;
  bool bias;
};

const ConvCase kConvCases[] = {
    {1, 3, 7, 6, 4, 3, {1, 1, 1, 1, 1, 1, 1}, true},   // padding, batch 1 (direct GEMM path)
    {3, 2, 8, 7, 5, 3, {2, 2, 1, 1, 1, 1, 1}, false},  // stride 2, batched chunk
    {2, 4, 9, 9, 6, 3, {1, 2, 2, 1, 2, 1, 2}, true},   // dilation, groups 2, asymmetric stride
    {2, 4, 6, 6, 4, 3, {1, 1, 1, 1, 1, 1, 4}, true},   // depthwise
    {2, 3, 5, 5, 8, 1, {2, 2, 0, 0, 1, 1, 1}, false},  // 1x1 stride 2 (ResNet downsample)
    // Stride 1 with output width == input width takes the shifted-plane path:
    {2, 3, 6, 5, 4, 5, {1, 1, 2, 2, 1, 1, 1}, false},   // 5x5 "same"
    {2, 2, 7, 7, 3, 3, {1, 1, 2, 2, 2, 2, 1}, true},    // dilated "same"
    {3, 2, 5, 6, 3, 3, {1, 1, 0, 1, 1, 1, 1}, false},   // no vertical padding: fewer rows out than in
    {1, 2, 2, 2, 3, 5, {1, 1, 2, 2, 1, 1, 1}, true},    // kernel wider than the input: taps all in padding
    {2, 2, 16, 16, 3, 3, {1, 1, 1, 1, 1, 1, 1}, true},  // 32 tiles of 4x4: Winograd
};

}  // namespace

TEST_CASE("conv2d forward matches the direct definition") {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& cc : kConvCases) {
      Tensor x = Tensor::randn({cc.n, cc.c, cc.h, cc.w}, rng());
      Tensor w = Tensor::randn({cc.oc, cc.c / cc.a.groups, cc.k, cc.k}, rng());
      Tensor b = cc.bias ? Tensor::randn({cc.oc}, rng()) : Tensor();
      Tensor got = conv2d(x, w, b, cc.a), want = naive_conv(x, w, b, cc.a);
      REQUIRE(got.shape() == want.shape());
      for (int64_t i = 0; i < got.numel(); ++i) REQUIRE(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-4));
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

TEST_CASE("winograd: every level's transform blocks give the reference blocks' bits") {
  using namespace winograd_detail;
  const BlockKernels& ref = winograd_blocks_for(Isa::scalar);
  // Images n x h x w (blocks of 16 tiles, full and partial, tiles cut by the
  // edges), and filter matrices rows x cols (blocks of 16 filters).
  const int planes[][3] = {{2, 5, 37}, {1, 34, 33}, {3, 6, 7}, {2, 1, 2}, {2, 6, 5}};
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
    for (const auto& [n, h, w] : planes) {
      CAPTURE(h);
      CAPTURE(w);
      const int th = (h + 3) / 4, tw = (w + 3) / 4;
      const int64_t per_image = int64_t{th} * tw, tiles = n * per_image, xs = tiles + 3;
      const TileTable tt(tiles, per_image, tw);
      const int64_t img_stride = int64_t{h} * w + 5;  // images apart, as channels interleave them
      const std::vector<float> x = random_floats(n * img_stride, g), m = random_floats(kXi * xs, g);
      const Plane<const float> in{x.data(), img_stride, h, w};
      auto blocks = [&](auto&& f) {
        for (int64_t t0 = 0; t0 < tiles; t0 += kLanes) f(t0, static_cast<int>(std::min<int64_t>(kLanes, tiles - t0)));
      };
      std::vector<float> v[2], dm[2], y[2], ya[2];
      for (int i : {0, 1}) {
        const BlockKernels& b = i ? k : ref;
        v[i].assign(kXi * xs, -7.f);
        dm[i].assign(kXi * xs, -7.f);
        y[i] = x;
        ya[i] = x;
        const Plane<float> out{y[i].data(), img_stride, h, w}, acc{ya[i].data(), img_stride, h, w};
        blocks([&](int64_t t0, int cnt) {
          b.input(v[i].data(), xs, in, tt, t0, cnt);
          b.output_adjoint(dm[i].data(), xs, in, tt, t0, cnt);
          b.output(out, m.data(), xs, tt, t0, cnt, false);
          b.output(acc, m.data(), xs, tt, t0, cnt, true);
        });
      }
      CHECK(same_bits(v[0], v[1]));
      CHECK(same_bits(dm[0], dm[1]));
      CHECK(same_bits(y[0], y[1]));
      CHECK(same_bits(ya[0], ya[1]));
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
            // Flipped and transposed, as for dX: the filter matrix read as cols x rows, turned 180 degrees.
            b.filter(uf[i].data(), wt.data() + 8, 9, int64_t{9} * rows, -1, us, cols, r, k0, cnt);
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

TEST_CASE("conv2d names both shapes on a mismatch") {
  Tensor x = Tensor::zeros({1, 3, 8, 8}), w = Tensor::zeros({4, 2, 3, 3});
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {}), doctest::Contains("(1,3,8,8)"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {}), doctest::Contains("(4,2,3,3)"), Error);
}

TEST_CASE("batch_norm: training gradients, statistics and running update") {
  Tensor x = Tensor::randn({3, 2, 3, 2}, rng(), 2.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += 1.5f;
  Tensor w = Tensor::randn({2}, rng()), b = Tensor::randn({2}, rng());
  Tensor rm = Tensor::zeros({2}), rv = Tensor::full({2}, 1.f);
  auto f = [&](const std::vector<Tensor>& t) { return batch_norm(t[0], t[1], t[2], rm, rv, true, 0.1f, 1e-5f); };
  CHECK(gradcheck_error(f, {x, w, b}) < 2e-3);

  // One training step: output has per-channel mean beta and std |gamma|; running stats moved by 0.1.
  rm = Tensor::zeros({2});
  rv = Tensor::full({2}, 1.f);
  Tensor y = batch_norm(x, w, b, rm, rv, true, 0.1f, 0.f);
  for (int c = 0; c < 2; ++c) {
    double s = 0, ss = 0, xs = 0, xss = 0;
    int m = 0;
    for (int n = 0; n < 3; ++n)
      for (int i = 0; i < 6; ++i) {
        float v = y.data()[(n * 2 + c) * 6 + i], xv = x.data()[(n * 2 + c) * 6 + i];
        s += v, ss += v * v, xs += xv, xss += xv * xv, ++m;
      }
    double mean = s / m, var = ss / m - mean * mean, xmean = xs / m, xvar = (xss / m - xmean * xmean);
    CHECK(mean == doctest::Approx(b.data()[c]).epsilon(1e-4));
    CHECK(std::sqrt(var) == doctest::Approx(std::abs(w.data()[c])).epsilon(1e-3));
    CHECK(rm.data()[c] == doctest::Approx(0.1 * xmean).epsilon(1e-4));
    CHECK(rv.data()[c] == doctest::Approx(0.9 + 0.1 * xvar * m / (m - 1)).epsilon(1e-4));
  }
}

TEST_CASE("batch_norm with an input scale equals batch_norm of the scaled input, gradients included") {
  Tensor x = Tensor::randn({3, 2, 3, 2}, rng(), 2.f);
  Tensor w = Tensor::randn({2}, rng()), b = Tensor::randn({2}, rng()), s = Tensor::uniform({2}, rng(), 0.5f, 2.f);
  for (bool training : {true, false}) {
    CAPTURE(training);
    Tensor rm1 = Tensor::zeros({2}), rv1 = Tensor::full({2}, 1.f), rm2 = rm1.clone(), rv2 = rv1.clone();
    Tensor fused = batch_norm(x, w, b, rm1, rv1, training, 0.1f, 1e-5f, s);
    Tensor ref = batch_norm(scale_channels(x, s, 1), w, b, rm2, rv2, training, 0.1f, 1e-5f);
    for (int64_t i = 0; i < x.numel(); ++i) CHECK(fused.data()[i] == doctest::Approx(ref.data()[i]).epsilon(1e-4));
    for (int c = 0; c < 2; ++c) {
      CHECK(rm1.data()[c] == doctest::Approx(rm2.data()[c]).epsilon(1e-5));
      CHECK(rv1.data()[c] == doctest::Approx(rv2.data()[c]).epsilon(1e-5));
    }
    Tensor rm = Tensor::zeros({2}), rv = Tensor::full({2}, 1.f);
    auto f = [&](const std::vector<Tensor>& t) {
      return batch_norm(t[0], t[1], t[2], rm, rv, training, 0.1f, 1e-5f, t[3]);
    };
    CHECK(gradcheck_error(f, {x, w, b, s}) < 2e-3);
  }
}

TEST_CASE("batch_norm: evaluation uses running statistics and leaves them alone") {
  Tensor x = Tensor::randn({2, 3, 2, 2}, rng());
  Tensor w = Tensor::randn({3}, rng()), b = Tensor::randn({3}, rng());
  Tensor rm = Tensor::randn({3}, rng()), rv = Tensor::uniform({3}, rng(), 0.5f, 2.f);
  Tensor rm0 = rm.clone(), rv0 = rv.clone();
  Tensor y = batch_norm(x, w, b, rm, rv, false, 0.1f, 1e-5f);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int c = (i / 4) % 3;
    float want = (x.data()[i] - rm.data()[c]) / std::sqrt(rv.data()[c] + 1e-5f) * w.data()[c] + b.data()[c];
    CHECK(y.data()[i] == doctest::Approx(want).epsilon(1e-5));
  }
  for (int c = 0; c < 3; ++c) CHECK((rm.data()[c] == rm0.data()[c] && rv.data()[c] == rv0.data()[c]));
  auto f = [&](const std::vector<Tensor>& t) { return batch_norm(t[0], t[1], t[2], rm, rv, false, 0.1f, 1e-5f); };
  CHECK(gradcheck_error(f, {x, w, b}) < 2e-3);
}

TEST_CASE("elementwise ops: gradients") {
  // Values kept away from the kinks at 0 and 6, where the derivative jumps.
  Tensor a = Tensor::uniform({4, 5}, rng(), -8.f, 8.f), b = Tensor::randn({4, 5}, rng());
  for (int64_t i = 0; i < a.numel(); ++i)
    for (float kink : {0.f, 6.f})
      if (std::abs(a.data()[i] - kink) < 0.05f) a.data()[i] = kink + 0.1f;
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return add(t[0], t[1]); }, {a, b}) < 1e-3);
  // add_relu away from its kink (a + b near 0).
  Tensor c = Tensor::randn({4, 5}, rng());
  for (int64_t i = 0; i < c.numel(); ++i)
    if (std::abs(a.data()[i] + c.data()[i]) < 0.05f) c.data()[i] += 0.2f;
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return add_relu(t[0], t[1]); }, {a, c}, 1e-3f) < 1e-3);
  // A tensor added to itself, and a gradient handed on by buffer then accumulated into: d/da sum(relu(a + a) * 3 + a).
  Tensor s = Tensor::from({3}, {1.f, -2.f, 0.5f}).requires_grad_();
  sum(add(scale(add_relu(s, s), 3.f), s)).backward();
  CHECK(s.grad().data()[0] == 7.f);
  CHECK(s.grad().data()[1] == 1.f);
  CHECK(s.grad().data()[2] == 7.f);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return mul(t[0], t[1]); }, {a, b}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return relu(t[0]); }, {a}, 1e-3f) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return relu6(t[0]); }, {a}, 1e-3f) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return scale(t[0], -2.5f); }, {a}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return mean(t[0]); }, {a}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return t[0].reshape({5, -1}); }, {a}) < 1e-3);
  Tensor y = relu6(Tensor::from({3}, {-1.f, 3.f, 9.f}));
  CHECK(y.data()[0] == 0.f);
  CHECK(y.data()[1] == 3.f);
  CHECK(y.data()[2] == 6.f);
  CHECK_THROWS_WITH_AS(add(a, Tensor::zeros({5, 4})), doctest::Contains("(4,5) and (5,4)"), Error);
}

TEST_CASE("pooling: values and gradients") {
  // Distinct values so the max is unique and finite differences do not cross ties.
  Tensor x = Tensor::empty({2, 3, 7, 6});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 37) % 251) * 0.1f;
  Pool2dArgs mp{3, 3, 2, 2, 1, 1};
  CHECK(gradcheck_error([&](const std::vector<Tensor>& t) { return max_pool2d(t[0], mp); }, {x}, 1e-3f) < 1e-3);
  Pool2dArgs ap{3, 2, 2, 1, 1, 1};
  CHECK(gradcheck_error([&](const std::vector<Tensor>& t) { return avg_pool2d(t[0], ap); }, {x}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return global_avg_pool2d(t[0]); }, {x}) < 1e-3);

  // Without gradients max_pool2d takes another path (no argmax): the same values, against the definition.
  Tensor r = Tensor::randn({2, 3, 9, 8}, rng());
  for (Pool2dArgs pa : {Pool2dArgs{3, 3, 2, 2, 1, 1}, Pool2dArgs{2, 3, 1, 2, 1, 0}, Pool2dArgs{3, 2, 3, 1, 0, 1}}) {
    Tensor got;
    {
      NoGradGuard ng;
      got = max_pool2d(r, pa);
    }
    for (int64_t p = 0; p < 6; ++p)
      for (int64_t oh = 0; oh < got.size(2); ++oh)
        for (int64_t ow = 0; ow < got.size(3); ++ow) {
          float want = -INFINITY;
          for (int kh = 0; kh < pa.kernel_h; ++kh)
            for (int kw = 0; kw < pa.kernel_w; ++kw) {
              const int64_t ih = oh * pa.stride_h - pa.pad_h + kh, iw = ow * pa.stride_w - pa.pad_w + kw;
              if (ih >= 0 && ih < 9 && iw >= 0 && iw < 8) want = std::max(want, r.data()[(p * 9 + ih) * 8 + iw]);
            }
          REQUIRE(got.data()[(p * got.size(2) + oh) * got.size(3) + ow] == want);
        }
  }
  Tensor s = Tensor::from({1, 1, 2, 2}, {1.f, 5.f, -3.f, 2.f});
  CHECK(max_pool2d(s, {2, 2, 2, 2}).item() == 5.f);
  CHECK(avg_pool2d(s, {2, 2, 2, 2}).item() == 1.25f);
  CHECK(global_avg_pool2d(s).item() == 1.25f);
  // Padding counts as zeros in the average (PyTorch's count_include_pad default).
  CHECK(avg_pool2d(Tensor::full({1, 1, 1, 1}, 4.f), {3, 3, 1, 1, 1, 1}).item() == doctest::Approx(4.f / 9));
}

TEST_CASE("linear: values and gradients") {
  Tensor x = Tensor::randn({3, 5}, rng()), w = Tensor::randn({4, 5}, rng()), b = Tensor::randn({4}, rng());
  Tensor y = linear(x, w, b);
  for (int i = 0; i < 3; ++i)
    for (int o = 0; o < 4; ++o) {
      double acc = b.data()[o];
      for (int k = 0; k < 5; ++k) acc += x.data()[i * 5 + k] * w.data()[o * 5 + k];
      CHECK(y.data()[i * 4 + o] == doctest::Approx(acc).epsilon(1e-5));
    }
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); }, {x, w, b}) < 1e-3);
  CHECK_THROWS_WITH_AS(linear(x, Tensor::zeros({4, 6}), Tensor()), doctest::Contains("(3,5)"), Error);
}

TEST_CASE("log_softmax and cross_entropy: values and gradients") {
  Tensor x = Tensor::randn({4, 6}, rng(), 3.f);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return log_softmax(t[0]); }, {x}) < 1e-3);
  std::vector<int32_t> labels{0, 5, 2, 2};
  for (float smooth : {0.f, 0.1f}) {
    CHECK(gradcheck_error([&](const std::vector<Tensor>& t) { return cross_entropy(t[0], labels, smooth); }, {x}) <
          1e-3);
  }
  // Uniform logits: the loss is log K whatever the smoothing.
  CHECK(cross_entropy(Tensor::zeros({2, 10}), {1, 3}).item() == doctest::Approx(std::log(10.0)));
  CHECK(cross_entropy(Tensor::zeros({2, 10}), {1, 3}, 0.2f).item() == doctest::Approx(std::log(10.0)));
  // Smoothing: -(0.9 + 0.1/2) log p_y - (0.1/2) log p_other
  Tensor two = Tensor::from({1, 2}, {2.f, 0.f});
  double lp0 = 2 - std::log(std::exp(2.0) + 1), lp1 = -std::log(std::exp(2.0) + 1);
  CHECK(cross_entropy(two, {0}, 0.1f).item() == doctest::Approx(-(0.95 * lp0 + 0.05 * lp1)));
  CHECK_THROWS_WITH_AS(cross_entropy(x, {0, 1, 2, 6}), doctest::Contains("label 6"), Error);
}

TEST_CASE("autograd: shared inputs accumulate, no-grad records nothing") {
  Tensor a = Tensor::from({2}, {1.f, 2.f}).requires_grad_();
  Tensor y = sum(mul(a, a));  // d/da sum(a^2) = 2a
  y.backward();
  CHECK(a.grad().data()[0] == 2.f);
  CHECK(a.grad().data()[1] == 4.f);
  {
    NoGradGuard g;
    Tensor z = mul(a, a);
    CHECK_FALSE(z.requires_grad());
  }
  Tensor c = Tensor::from({1}, {3.f});
  CHECK_THROWS_AS(sum(c).backward(), Error);
}

TEST_CASE("channel ops: values and gradients") {
  Tensor x = Tensor::randn({2, 3, 2, 2}, rng()), s = Tensor::uniform({3}, rng(), 0.5f, 2.f);
  Tensor w = Tensor::randn({3, 2, 1, 1}, rng());
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return scale_channels(t[0], t[1], 1); }, {x, s}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return scale_channels(t[0], t[1], 0); }, {w, s}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return add_channels(t[0], t[1], 1); }, {x, s}) < 1e-3);
  CHECK(gradcheck_error([](const std::vector<Tensor>& t) { return reciprocal(t[0]); }, {s}, 1e-3f) < 1e-3);
  Tensor y = scale_channels(x, s, 1);
  CHECK(y.data()[4 * 2 + 1] == x.data()[4 * 2 + 1] * s.data()[2]);
  CHECK(add_channels(x, s, 1).data()[5] == x.data()[5] + s.data()[1]);
  CHECK_THROWS_WITH_AS(scale_channels(x, Tensor::zeros({4}), 1), doctest::Contains("(2,3,2,2)"), Error);
}

TEST_CASE("thread pool: resizing after parallel work, and every index visited once") {
  for (int n : {2, 1, 3, 2}) {
    set_num_threads(n);
    std::vector<int> hits(1000, 0);
    parallel_for(1000, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int h : hits) REQUIRE(h == 1);
  }
  set_num_threads(1);
}

TEST_CASE("thread pool: an exception in any chunk reaches the caller, and the pool keeps working") {
  set_num_threads(2);
  for (int64_t bad : {0, 999}) {  // first chunk (caller) and last chunk (a worker)
    CHECK_THROWS_WITH_AS(parallel_for(1000, 1,
                                      [&](int64_t b, int64_t e) {
                                        if (bad >= b && bad < e) throw Error("chunk failed");
                                      }),
                         "chunk failed", Error);
  }
  std::atomic<int64_t> total{0};
  parallel_for(1000, 1, [&](int64_t b, int64_t e) { total += e - b; });
  CHECK(total == 1000);
  set_num_threads(1);
}

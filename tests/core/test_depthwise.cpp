// Depthwise and grouped convolutions: core/ops/depthwise.{h,cpp}, its
// per-ISA kernel tables, and conv2d's routing of groups != 1.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/kernels/depthwise_planes.h"
#include "core/kernels/dispatch.h"
#include "core/ops/conv2d.h"
#include "core/ops/depthwise.h"
#include "core/threads.h"
#include "gradcheck.h"
#include "op_test_util.h"

using namespace qforge;
using namespace qforge::depthwise_detail;
using qforge::testing::gradcheck_error;
using qforge::testing::random_values;
using qforge::testing::rng;

namespace {

// The stated accuracy (depthwise.h): within kTol of the sum of the absolute
// values of the terms (and of the value the gradient buffer started from).
constexpr double kTol = 1e-5;

// Values and magnitudes (sum of |terms|) computed in double from the definition.
struct Exact {
  std::vector<double> v, mag;
  explicit Exact(const Tensor& start) : v(start.data(), start.data() + start.numel()), mag(v.size()) {
    for (size_t i = 0; i < v.size(); ++i) mag[i] = std::abs(v[i]);
  }
  void add(int64_t i, double term) {
    v[i] += term;
    mag[i] += std::abs(term);
  }
  // Number of elements off by more than the tolerance (the first is reported).
  int misses(const Tensor& got, const char* what) const {
    int bad = 0;
    for (size_t i = 0; i < v.size(); ++i)
      if (std::abs(got.data()[i] - v[i]) > kTol * mag[i] + 1e-30) {
        if (bad++ == 0)
          MESSAGE(std::string(what), "[", i, "] = ", got.data()[i], ", expected ", v[i], " (terms ", mag[i], ")");
      }
    return bad;
  }
};

// One depthwise case: inputs, and the gradients' starting values (backward adds).
struct Case {
  Conv2dShape s;
  Tensor x, w, b, dy, dx0, dw0, db0;
  Case(int n, int c, int h, int wd, int m, int k, ConvGeometry a) {
    a.groups = c;
    x = Tensor::randn({n, c, h, wd}, rng());
    w = Tensor::randn({c * m, 1, k, k}, rng());
    s = conv2d_shape(x.shape(), w.shape(), a);
    b = Tensor::randn({c * m}, rng());
    dy = Tensor::randn({n, c * m, s.oh, s.ow}, rng());
    dx0 = Tensor::randn(x.shape(), rng());
    dw0 = Tensor::randn(w.shape(), rng());
    db0 = Tensor::randn(b.shape(), rng());
  }
};

struct Result {
  Tensor y, dx, dw, db;
};

Result run(const DepthwiseKernels& k, const Case& c) {
  Result r{Tensor::empty(c.dy.shape()), c.dx0.clone(), c.dw0.clone(), c.db0.clone()};
  forward_with(k, r.y.data(), c.x.data(), c.w.data(), c.b.data(), c.s);
  backward_with(k, r.dx.data(), r.dw.data(), r.db.data(), c.dy.data(), c.x.data(), c.w.data(), c.s);
  return r;
}

// Checks r against the definition, in double.
void check_exact(const Case& c, const Result& r) {
  const Conv2dShape& s = c.s;
  const int m = s.oc / s.c;
  Exact y(Tensor::zeros(c.dy.shape())), dx(c.dx0), dw(c.dw0), db(c.db0);
  for (int n = 0; n < s.n; ++n)
    for (int co = 0; co < s.oc; ++co)
      for (int oy = 0; oy < s.oh; ++oy)
        for (int ox = 0; ox < s.ow; ++ox) {
          const int64_t o = ((static_cast<int64_t>(n) * s.oc + co) * s.oh + oy) * s.ow + ox;
          const double d = c.dy.data()[o];
          y.add(o, c.b.data()[co]);
          db.add(co, d);
          for (int ky = 0; ky < s.kh; ++ky)
            for (int kx = 0; kx < s.kw; ++kx) {
              const int iy = oy * s.a.stride_h - s.a.pad_h + ky * s.a.dilation_h;
              const int ix = ox * s.a.stride_w - s.a.pad_w + kx * s.a.dilation_w;
              if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
              const int64_t i = ((static_cast<int64_t>(n) * s.c + co / m) * s.h + iy) * s.w + ix;
              const int64_t t = (static_cast<int64_t>(co) * s.kh + ky) * s.kw + kx;
              y.add(o, static_cast<double>(c.x.data()[i]) * c.w.data()[t]);
              dx.add(i, static_cast<double>(c.w.data()[t]) * d);
              dw.add(t, static_cast<double>(c.x.data()[i]) * d);
            }
        }
  CHECK(y.misses(r.y, "out") == 0);
  CHECK(dx.misses(r.dx, "dinp") == 0);
  CHECK(dw.misses(r.dw, "dweight") == 0);
  CHECK(db.misses(r.db, "dbias") == 0);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data(), b.data(), a.numel() * sizeof(float)) == 0;
}

void check_same_bits(const Result& a, const Result& b) {
  CHECK(same_bits(a.y, b.y));
  CHECK(same_bits(a.dx, b.dx));
  CHECK(same_bits(a.dw, b.dw));
  CHECK(same_bits(a.db, b.db));
}

struct Geometry {
  const char* name;
  int m, k;
  ConvGeometry a;
};

// The fast paths (3x3, stride 1 and 2, padding 0 to 2) and the general loops.
const Geometry kGeometries[] = {
    {"3x3 s1 p1", 1, 3, {1, 1, 1, 1, 1, 1, 1}},       {"3x3 s2 p1", 1, 3, {2, 2, 1, 1, 1, 1, 1}},
    {"3x3 s1 p0", 1, 3, {1, 1, 0, 0, 1, 1, 1}},       {"3x3 s2 p0", 1, 3, {2, 2, 0, 0, 1, 1, 1}},
    {"3x3 s1 p2 x1", 1, 3, {1, 1, 2, 1, 1, 1, 1}},    {"3x3 s2 p2 x0, M=2", 2, 3, {2, 2, 2, 0, 1, 1, 1}},
    {"3x3 s1 p2 dil 2", 1, 3, {1, 1, 2, 2, 2, 2, 1}}, {"5x5 s2 p2", 1, 5, {2, 2, 2, 2, 1, 1, 1}},
    {"3x3 s3 p1, M=3", 3, 3, {3, 3, 1, 1, 1, 1, 1}},  {"1x1 s1 p0", 1, 1, {1, 1, 0, 0, 1, 1, 1}},
};

const int kSizes[] = {1, 2, 3, 5, 7, 8, 15, 17};
// Widths also past the 16-lane sums (whole chunks of 16 inside columns, stride 1 and 2, and a rest).
const int kWidths[] = {1, 2, 3, 5, 7, 8, 15, 17, 33, 35, 70};
const int kChannels[] = {1, 3, 16, 17, 33};

// Calls fn(case) for every geometry, H in kSizes, W in kWidths, C in kChannels (one
// channel count per (H, W), in turn, to keep the sweep short), batch 2.
template <typename F>
void sweep(F&& fn) {
  int turn = 0;
  for (const auto& g : kGeometries)
    for (int h : kSizes)
      for (int w : kWidths) {
        const int c = kChannels[turn++ % 5];
        const int eff = g.a.dilation_h * (g.k - 1) + 1;
        if (h + 2 * g.a.pad_h < eff || w + 2 * g.a.pad_w < eff) continue;  // no output
        const std::string geometry = g.name;
        CAPTURE(geometry);
        CAPTURE(h);
        CAPTURE(w);
        CAPTURE(c);
        fn(Case(2, c, h, w, g.m, g.k, g.a));
      }
}

}  // namespace

TEST_CASE("depthwise: forward and both gradients match the definition in double precision") {
  set_num_threads(2);
  MESSAGE("this CPU runs the ", std::string(depthwise_kernels().name), " depthwise kernels");
  sweep([](const Case& c) { check_exact(c, run(depthwise_kernels(), c)); });
  set_num_threads(1);
}

TEST_CASE("depthwise: every level's kernels give the reference kernels' bits") {
  int levels = 0;
  for (Isa level : {Isa::avx2, Isa::avx512}) {
    if (!isa_supported(level)) {
      MESSAGE("skipped: this CPU has no ", isa_name(level));
      continue;
    }
    const DepthwiseKernels& k = *float_kernels_for(level).depthwise;
    REQUIRE(&k != &depthwise_planes__ref);
    ++levels;
    const std::string isa = k.name;
    CAPTURE(isa);
    sweep([&](const Case& c) {
      const Result want = run(depthwise_planes__ref, c), got = run(k, c);
      check_same_bits(want, got);
    });
  }
  // MobileNetV2 planes, wide enough for whole vectors and the 16-lane sums;
  // 112x112 is the largest (784 products per lane and tap in the weight sums).
  for (const auto& [h, w, stride] : {std::array{56, 61, 1}, std::array{56, 61, 2}, std::array{112, 112, 1}}) {
    const Case c(2, 5, h, w, 1, 3, {stride, stride, 1, 1, 1, 1, 1});
    const Result want = run(depthwise_planes__ref, c);
    check_exact(c, want);
    for (Isa level : {Isa::avx2, Isa::avx512})
      if (isa_supported(level)) check_same_bits(want, run(*float_kernels_for(level).depthwise, c));
  }
  if (levels == 0) MESSAGE("skipped: this CPU has no SIMD depthwise kernels");
}

TEST_CASE("depthwise: the same bits with 1 and 2 threads") {
  // The last takes forward_blocked in pieces of several blocks (24 blocks of 16 4x4 planes).
  const Case cases[] = {Case(3, 24, 28, 28, 1, 3, {1, 1, 1, 1, 1, 1, 1}),
                        Case(5, 7, 17, 15, 2, 3, {2, 2, 1, 1, 1, 1, 1}), Case(4, 9, 9, 9, 1, 5, {1, 1, 2, 2, 1, 1, 1}),
                        Case(8, 40, 4, 4, 1, 3, {1, 1, 1, 1, 1, 1, 1})};
  for (const auto& c : cases) {
    Result r[2];
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      r[threads - 1] = run(depthwise_kernels(), c);
    }
    check_same_bits(r[0], r[1]);
    check_exact(c, r[1]);
  }
  set_num_threads(1);
}

// forward_blocked alone (depthwise_planes.h): each level against the reference level's bits, with
// and without the clamp, for 1 to 16 planes, from a scratch of garbage (frame_zero false) and then
// again on the frame it left (frame_zero true), with the reference against the definition; rows of
// at most 4 outputs take runs of 4. Nothing is written past the planes' outputs.
TEST_CASE("depthwise blocked planes: every level's bits, clamped or not, from a dirty scratch and a kept frame") {
  struct Geo {
    int h, w, k, stride, pad, dil;
  };
  const Geo geos[] = {{7, 7, 3, 1, 1, 1},   {4, 4, 3, 1, 1, 1}, {3, 5, 3, 1, 1, 1}, {8, 8, 3, 1, 1, 1},
                      {14, 14, 3, 2, 1, 1}, {9, 9, 3, 2, 1, 1}, {5, 6, 5, 1, 2, 1}, {8, 7, 3, 3, 1, 2}};
  const float nan = std::numeric_limits<float>::quiet_NaN();
  int levels = 0;
  for (Isa level : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (!isa_supported(level)) {
      MESSAGE("skipped: this CPU has no ", isa_name(level));
      continue;
    }
    const DepthwiseKernels& k = *float_kernels_for(level).depthwise;
    levels += &k != &depthwise_planes__ref;
    const std::string isa = k.name;
    CAPTURE(isa);
    for (const Geo& e : geos) {
      const PlaneGeo g{e.h,
                       e.w,
                       (e.h + 2 * e.pad - e.dil * (e.k - 1) - 1) / e.stride + 1,
                       (e.w + 2 * e.pad - e.dil * (e.k - 1) - 1) / e.stride + 1,
                       e.k,
                       e.k,
                       e.stride,
                       e.stride,
                       e.pad,
                       e.pad,
                       e.dil,
                       e.dil};
      REQUIRE(blocked_applies(g));
      CAPTURE(e.h);
      CAPTURE(e.w);
      CAPTURE(e.k);
      CAPTURE(e.stride);
      const int hw = g.h * g.w, ohw = g.oh * g.ow, taps = g.kh * g.kw;
      for (int cnt : {1, 5, 16})
        for (bool relu : {false, true}) {
          CAPTURE(cnt);
          CAPTURE(relu);
          const std::vector<float> w = random_values(cnt * taps), bias = random_values(cnt);
          std::vector<float> wl(static_cast<size_t>(taps + 1) * kBlock);
          blocked_lanes(wl.data(), w.data(), bias.data(), cnt, taps);
          for (int call = 0; call < 2; ++call) {
            std::vector<float> x = random_values(cnt * hw);
            x[0] = -0.f, x[hw / 2] = nan;  // NaN to 0 under the clamp
            std::vector<float> fresh(work_floats(g)), want(cnt * ohw), got(cnt * ohw + 16, -7.f);
            depthwise_planes__ref.forward_blocked(want.data(), x.data(), wl.data(), cnt, g, relu, 6.f, fresh.data(),
                                                  false);
            // The reference against the definition (NaN aside): bias, then the taps in order, clamped.
            for (int c = 0; c < cnt; ++c)
              for (int oy = 0; oy < g.oh; ++oy)
                for (int ox = 0; ox < g.ow; ++ox) {
                  double v = bias[c];
                  bool has_nan = false;
                  for (int ky = 0; ky < g.kh; ++ky)
                    for (int kx = 0; kx < g.kw; ++kx) {
                      const int iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
                      if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                      const float xv = x[c * hw + iy * g.w + ix];
                      has_nan = has_nan || std::isnan(xv);
                      v += static_cast<double>(xv) * w[c * taps + ky * g.kw + kx];
                    }
                  const float out = want[c * ohw + oy * g.ow + ox];
                  if (has_nan) {
                    REQUIRE((relu ? out == 0.f : std::isnan(out)));
                    continue;
                  }
                  if (relu) v = std::min(std::max(v, 0.0), 6.0);
                  REQUIRE(std::abs(out - v) <= 1e-5 * (std::abs(v) + 10));
                }
            // Garbage in the scratch on the first call; on the second, the frame the first left.
            static std::vector<float> work;
            if (call == 0) work.assign(work_floats(g), nan);
            k.forward_blocked(got.data(), x.data(), wl.data(), cnt, g, relu, 6.f, work.data(), call == 1);
            REQUIRE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
            for (int i = 0; i < 16; ++i) REQUIRE(got[cnt * ohw + i] == -7.f);
          }
        }
    }
  }
  if (levels == 0) MESSAGE("skipped: this CPU has no SIMD depthwise kernels");
}

TEST_CASE("depthwise: conv2d routes groups == C to it; im2col agrees") {
  CHECK(depthwise_applies(conv2d_shape({1, 8, 5, 5}, {8, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 8})));
  CHECK(depthwise_applies(conv2d_shape({1, 8, 5, 5}, {16, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 8})));
  CHECK_FALSE(depthwise_applies(conv2d_shape({1, 8, 5, 5}, {8, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 4})));
  CHECK_FALSE(depthwise_applies(conv2d_shape({1, 1, 5, 5}, {8, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 1})));  // a stem
  const Case c(3, 6, 9, 10, 2, 3, {2, 2, 1, 1, 1, 1, 1});
  Result r[2];
  for (ConvAlgo algo : {ConvAlgo::kAuto, ConvAlgo::kIm2col}) {
    Result& o = r[algo == ConvAlgo::kIm2col];
    o = {Tensor::empty(c.dy.shape()), c.dx0.clone(), c.dw0.clone(), c.db0.clone()};
    conv2d_forward(o.y.data(), c.x.data(), c.w.data(), c.b.data(), c.s, algo);
    conv2d_backward(o.dx.data(), o.dw.data(), o.db.data(), c.dy.data(), c.x.data(), c.w.data(), c.s, algo);
    check_exact(c, o);
  }
  check_same_bits(r[0], run(depthwise_kernels(), c));
}

TEST_CASE("depthwise and grouped conv2d: gradients match finite differences") {
  struct GradCase {
    const char* name;
    int n, c, h, w, oc, k;
    ConvGeometry a;
  };
  const GradCase cases[] = {
      {"dw 3x3 s1 p1", 2, 4, 6, 7, 4, 3, {1, 1, 1, 1, 1, 1, 4}},
      {"dw 3x3 s2 p1", 2, 4, 7, 8, 4, 3, {2, 2, 1, 1, 1, 1, 4}},
      {"dw 3x3 s1 p0", 2, 3, 6, 5, 3, 3, {1, 1, 0, 0, 1, 1, 3}},
      {"dw 3x3 s2 p0", 2, 3, 7, 6, 3, 3, {2, 2, 0, 0, 1, 1, 3}},
      {"dw 3x3 dil 2", 2, 3, 7, 7, 3, 3, {1, 1, 2, 2, 2, 2, 3}},
      {"dw 3x3 s2 M=2", 2, 3, 6, 7, 6, 3, {2, 2, 1, 1, 1, 1, 3}},
      {"dw 5x5 s2", 1, 2, 9, 8, 2, 5, {2, 2, 2, 2, 1, 1, 2}},
      {"C=6 groups=3", 2, 6, 5, 6, 9, 3, {1, 1, 1, 1, 1, 1, 3}},
      {"C=6 groups=2", 2, 6, 6, 5, 4, 3, {2, 2, 1, 1, 1, 1, 2}},
      {"C=6 groups=3 1x1", 3, 6, 4, 4, 6, 1, {1, 1, 0, 0, 1, 1, 3}},
  };
  for (const auto& gc : cases) {
    const std::string name = gc.name;
    CAPTURE(name);
    for (bool bias : {true, false}) {
      std::vector<Tensor> in{Tensor::randn({gc.n, gc.c, gc.h, gc.w}, rng()),
                             Tensor::randn({gc.oc, gc.c / gc.a.groups, gc.k, gc.k}, rng())};
      if (bias) in.push_back(Tensor::randn({gc.oc}, rng()));
      auto f = [&](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), gc.a); };
      // Linear in each input: central differences are exact at any step (see test_ops.cpp).
      CHECK(gradcheck_error(f, in, 0.5f) < 2e-3);
    }
  }
}

TEST_CASE("grouped conv2d (groups neither 1 nor C) matches the definition") {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const auto& [n, c, h, w, oc, groups, stride] :
         {std::array{1, 6, 7, 8, 9, 3, 1}, std::array{3, 6, 9, 9, 4, 2, 2}, std::array{2, 8, 5, 6, 8, 4, 1}}) {
      CAPTURE(groups);
      const ConvGeometry a{stride, stride, 1, 1, 1, 1, groups};
      Tensor x = Tensor::randn({n, c, h, w}, rng()), wt = Tensor::randn({oc, c / groups, 3, 3}, rng());
      Tensor b = Tensor::randn({oc}, rng());
      const Conv2dShape s = conv2d_shape(x.shape(), wt.shape(), a);
      Tensor y = conv2d(x, wt, b, a);
      const int cg = c / groups, ocg = oc / groups;
      int bad = 0;
      for (int i = 0; i < n; ++i)
        for (int o = 0; o < oc; ++o)
          for (int oy = 0; oy < s.oh; ++oy)
            for (int ox = 0; ox < s.ow; ++ox) {
              double acc = b.data()[o], mag = std::abs(acc);
              for (int ci = 0; ci < cg; ++ci)
                for (int ky = 0; ky < 3; ++ky)
                  for (int kx = 0; kx < 3; ++kx) {
                    const int iy = oy * stride - 1 + ky, ix = ox * stride - 1 + kx;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                    const double t = static_cast<double>(x.data()[((i * c + o / ocg * cg + ci) * h + iy) * w + ix]) *
                                     wt.data()[((o * cg + ci) * 3 + ky) * 3 + kx];
                    acc += t;
                    mag += std::abs(t);
                  }
              const float got = y.data()[((i * oc + o) * s.oh + oy) * s.ow + ox];
              bad += std::abs(got - acc) > 1e-5 * mag;
            }
      CHECK(bad == 0);
    }
  }
  set_num_threads(1);
}

TEST_CASE("depthwise: a non-depthwise shape is refused, naming the groups") {
  const Conv2dShape s = conv2d_shape({1, 4, 5, 5}, {4, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 2});
  std::vector<float> x(100), w(72), y(100);
  CHECK_THROWS_WITH_AS(depthwise_forward(y.data(), x.data(), w.data(), nullptr, s), doctest::Contains("groups=2"),
                       Error);
}

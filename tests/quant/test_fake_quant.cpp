#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops/elementwise.h"
#include "core/threads.h"
#include "gradcheck.h"
#include "quant/fake_quant.h"

using namespace qforge;
using namespace qforge::quant;
using qforge::testing::gradcheck_error;

namespace {

// The pool is grown to 2 threads and never shrunk back: core/threads.cpp's Pool
// calls a null function when it is regrown after a parallel run (new workers
// start with a stale generation count), so 2 -> 1 -> 2 crashes.
inline void use_two_threads() { set_num_threads(2); }

std::mt19937_64& rng() {
  static std::mt19937_64 r(77);
  return r;
}

// The definition: quantize_val then dequantize_val, element by element.
float reference(float x, const QParams& q) {
  return dequantize_val(quantize_val(x, 1.0f / q.scale, q.zero_point, q.qmin, q.qmax), q.scale, q.zero_point);
}

// Channel of flat element i for x viewed as (outer, C, inner) around axis.
int64_t channel_of(const Tensor& x, int axis, int64_t i) {
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < x.dim(); ++d) inner *= x.size(d);
  return (i / inner) % x.size(axis);
}

// Values that stress the rounding and the clamps for qp: exact ties (scale a
// power of two), clamp edges, signed zeros, NaN, infinities, huge and tiny
// values, an even sweep of float bit patterns, and random normals.
std::vector<float> hard_values(const QParams& q, size_t extra_random) {
  std::vector<float> v;
  for (int k = q.qmin - q.zero_point - 5; k <= q.qmax - q.zero_point + 5; ++k) {
    v.push_back((k + 0.5f) * q.scale);
    v.push_back((k - 0.5f) * q.scale);
    v.push_back(k * q.scale);
    v.push_back(std::nextafter((k + 0.5f) * q.scale, 0.0f));
  }
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (float s : {0.0f, -0.0f, nan, -nan, inf, -inf, 1e30f, -1e30f, 1e-40f, -1e-40f, 3.4e38f, -3.4e38f}) v.push_back(s);
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 65521) {
    uint32_t bits = static_cast<uint32_t>(u);
    float f;
    std::memcpy(&f, &bits, 4);
    v.push_back(f);
  }
  std::normal_distribution<float> d(0.0f, 40.0f * q.scale);
  for (size_t i = 0; i < extra_random; ++i) v.push_back(d(rng()));
  return v;
}

void check_exact(const Tensor& x, const Tensor& y, const std::vector<QParams>& qp, int axis) {
  REQUIRE(y.shape() == x.shape());
  int64_t bad = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const QParams& q = qp.size() == 1 ? qp[0] : qp[channel_of(x, axis, i)];
    const float want = reference(x.data()[i], q), got = y.data()[i];
    if (std::memcmp(&want, &got, 4) != 0 && bad++ < 5)
      FAIL_CHECK("element " << i << ": x " << x.data()[i] << " gives " << got << ", quantize_val gives " << want);
  }
  CHECK(bad == 0);
}

// Whether the STE passes the gradient: round(x * inv_scale) + zp within [qmin, qmax].
bool inside(float x, const QParams& q) {
  const double r = std::nearbyint(static_cast<double>(x * (1.0f / q.scale)));
  return !std::isnan(r) && r + q.zero_point >= q.qmin && r + q.zero_point <= q.qmax;
}

}  // namespace

TEST_CASE("fake_quantize forward equals quantize_val / dequantize_val exactly, per tensor") {
  const QParams cases[] = {{0.125f, 7, 0, 255},           // affine uint8, ties exact
                           {0.0371f, 0, -127, 127},       // symmetric int8
                           {0.5f, -3, -128, 127},         // zero point off the middle
                           {1.19209290e-7f, 0, 0, 255}};  // the eps scale of an all-zero tensor
  use_two_threads();                                      // small tensors still run as one chunk
  {
    for (const QParams& q : cases) {
      CAPTURE(q.scale);
      std::vector<float> v = hard_values(q, 200000);
      Tensor x = Tensor::from({static_cast<int64_t>(v.size())}, v);
      check_exact(x, fake_quantize(x, {q}, 0), {q}, 0);
      Tensor r = x.clone().requires_grad_();  // the masked path computes the same values
      check_exact(x, fake_quantize(r, {q}, -1), {q}, 0);
      for (int64_t n : {1, 2, 3, 63, 64, 65, 127, 129}) {  // sizes around the mask word
        Tensor s = Tensor::from({n}, std::vector<float>(v.begin() + 100, v.begin() + 100 + n)).requires_grad_();
        check_exact(s, fake_quantize(s, {q}, 0), {q}, 0);
      }
    }
  }
}

TEST_CASE("fake_quantize per channel along axis 0 and axis 1 is exact") {
  use_two_threads();
  struct Case {
    Shape shape;
    int axis;
  };
  for (const Case& c : {Case{{5, 3, 3, 3}, 0}, Case{{7, 13}, 0}, Case{{3, 6, 5, 7}, 1}, Case{{4, 64, 28, 28}, 1},
                        Case{{33, 5}, 1}, Case{{256, 1000}, 0}}) {
    CAPTURE(shape_str(c.shape));
    const int64_t C = c.shape[c.axis];
    std::vector<QParams> qp;
    std::uniform_real_distribution<float> sd(0.005f, 0.2f);
    std::uniform_int_distribution<int> zd(-10, 10);
    for (int64_t k = 0; k < C; ++k) {
      if (k % 2) {
        qp.push_back({sd(rng()), 0, -127, 127});
      } else {
        qp.push_back({sd(rng()), 128 + zd(rng()), 0, 255});
      }
    }
    Tensor x = Tensor::randn(c.shape, rng(), 8.0f);
    x.data()[0] = std::numeric_limits<float>::quiet_NaN();
    x.data()[x.numel() - 1] = 1e9f;
    check_exact(x, fake_quantize(x, qp, c.axis), qp, c.axis);
    Tensor r = x.clone().requires_grad_();
    check_exact(x, fake_quantize(r, qp, c.axis), qp, c.axis);
  }
  Tensor x = Tensor::zeros({2, 3, 4});
  CHECK_THROWS_WITH_AS(fake_quantize(x, std::vector<QParams>(4), 1), doctest::Contains("(2,3,4)"), Error);
  CHECK_THROWS_WITH_AS(fake_quantize(x, std::vector<QParams>(3), 3), doctest::Contains("axis 3"), Error);
  CHECK_THROWS_WITH_AS(fake_quantize(x, {QParams{0.0f, 0, 0, 255}}, 0), doctest::Contains("scale"), Error);
}

TEST_CASE("fake_quantize STE: the gradient passes inside the grid and is zero where clipped") {
  const QParams q{0.5f, 2, 0, 15};  // grid [-1, 6.5]
  // inside; below; above; rounds to qmax (inside); rounds past qmax; rounds to qmin; rounds past qmin; NaN
  Tensor x = Tensor::from({8}, {0.3f, -5.0f, 9.0f, 6.7f, 6.8f, -1.2f, -1.3f, NAN}).requires_grad_();
  const float want_mask[8] = {1, 0, 0, 1, 0, 1, 0, 0};
  Tensor r = Tensor::from({8}, {1, 2, 3, 4, 5, 6, 7, 8});
  sum(mul(fake_quantize(x, {q}, 0), r)).backward();
  for (int i = 0; i < 8; ++i) {
    CAPTURE(i);
    CHECK(x.grad().data()[i] == want_mask[i] * r.data()[i]);
    CHECK(inside(x.data()[i], q) == (want_mask[i] == 1));
  }
  // Used twice, the gradients add (the backward adds into an existing gradient).
  x.zero_grad();
  sum(add(mul(fake_quantize(x, {q}, 0), r), fake_quantize(x, {q}, 0))).backward();
  for (int i = 0; i < 8; ++i) CHECK(x.grad().data()[i] == want_mask[i] * (r.data()[i] + 1));

  SUBCASE("large, per channel, two threads: the mask matches the definition everywhere") {
    use_two_threads();
    std::vector<QParams> qp{{0.05f, 0, -127, 127}, {0.02f, 100, 0, 255}, {0.1f, 0, 0, 255}};
    Tensor y = Tensor::randn({9, 3, 41, 37}, rng(), 4.0f).requires_grad_();
    Tensor g = Tensor::randn(y.shape(), rng());
    sum(mul(fake_quantize(y, qp, 1), g)).backward();
    int64_t bad = 0, passed = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      const bool in = inside(y.data()[i], qp[channel_of(y, 1, i)]);
      passed += in;
      bad += y.grad().data()[i] != (in ? g.data()[i] : 0.0f);
    }
    CHECK(bad == 0);
    CHECK(passed > y.numel() / 4);
    CHECK(passed < y.numel() * 3 / 4);
  }
}

TEST_CASE("fake_quantize STE equals the gradient of the clamped identity (finite differences)") {
  // The STE is the derivative of clamp(x, lo, hi) with lo, hi half a step
  // outside the grid. f(x) has that clamp's value (fake_quantize plus a constant
  // correction) and fake_quantize's backward, so gradcheck compares the STE
  // against central differences of the clamp.
  for (const auto& [q, axis, shape] : {std::tuple{QParams{0.25f, 3, 0, 20}, 0, Shape{4, 5}},
                                       std::tuple{QParams{0.1f, 0, -10, 10}, 1, Shape{2, 3, 6}}}) {
    const float lo = (q.qmin - q.zero_point - 0.5f) * q.scale, hi = (q.qmax - q.zero_point + 0.5f) * q.scale;
    auto f = [&, q = q, axis = axis](const std::vector<Tensor>& in) {
      Tensor fq = fake_quantize(in[0], {q}, axis);
      Tensor corr = Tensor::empty(fq.shape());
      for (int64_t i = 0; i < fq.numel(); ++i) corr.data()[i] = std::clamp(in[0].data()[i], lo, hi) - fq.data()[i];
      return add(fq, corr);
    };
    // Inputs spread over and beyond the grid, kept 0.05 away from the clamp edges.
    std::uniform_real_distribution<float> d(lo - 3.0f, hi + 3.0f);
    Tensor x = Tensor::empty(shape);
    for (int64_t i = 0; i < x.numel(); ++i) {
      float v;
      do v = d(rng());
      while (std::abs(v - lo) < 0.05f || std::abs(v - hi) < 0.05f);
      x.data()[i] = v;
    }
    CHECK(gradcheck_error(f, {x}) < 1e-3);
  }
}

TEST_CASE("fake_quantize_lsq: scale gradient by hand and against the LSQ surrogate") {
  const QParams q{0.5f, 1, -4, 3};  // r = round(x / s) inside when -5 <= r <= 2
  Tensor x = Tensor::from({5}, {0.3f, -3.0f, 2.6f, 0.74f, 1.25f}).requires_grad_();
  Tensor s = Tensor::from({1}, {0.5f}).requires_grad_();
  Tensor r = Tensor::from({5}, {1.0f, 2.0f, -1.0f, 0.5f, 3.0f});
  Tensor y = fake_quantize_lsq(x, s, {q}, 0);
  check_exact(x, y, {q}, 0);  // the same forward as fake_quantize
  sum(mul(y, r)).backward();
  // v = x / s: 0.6 -> r 1 (in): 1 - 0.6; -6 (below): qmin - zp = -5; 5.2 -> 5 (above): qmax - zp = 2;
  // 1.48 -> 1 (in): 1 - 1.48; 2.5 -> 2 (tie to even, in): 2 - 2.5.
  const double terms[5] = {0.4, -5.0, 2.0, -0.48, -0.5};
  const bool in[5] = {true, false, false, true, true};
  double want = 0;
  for (int i = 0; i < 5; ++i) want += r.data()[i] * terms[i];
  want /= std::sqrt(5.0 * 3.0);  // g = 1 / sqrt(numel * qmax)
  CHECK(s.grad().item() == doctest::Approx(want).epsilon(1e-5));
  for (int i = 0; i < 5; ++i) CHECK(x.grad().data()[i] == (in[i] ? r.data()[i] : 0.0f));

  SUBCASE("per channel, against finite differences of the surrogate") {
    // LSQ differentiates y(s) = s * (x / s + delta) inside, s * (qmin - zp) or
    // s * (qmax - zp) outside, with the rounding offset delta = round(x / s) - x / s
    // and which case applies held fixed at the current s.
    std::vector<QParams> qp{{0.3f, 0, -127, 127}, {0.07f, 10, 0, 255}, {0.2f, 0, -8, 7}};
    Tensor w = Tensor::randn({3, 4, 5}, rng(), 3.0f).requires_grad_();
    Tensor sc = Tensor::from({3}, {0.3f, 0.07f, 0.2f}).requires_grad_();
    Tensor g = Tensor::randn(w.shape(), rng());
    sum(mul(fake_quantize_lsq(w, sc, qp, 0), g)).backward();
    for (int c = 0; c < 3; ++c) {
      const QParams& p = qp[c];
      auto surrogate = [&](double sv) {
        double total = 0;
        for (int64_t i = c * 20; i < (c + 1) * 20; ++i) {
          const double v = w.data()[i] * (1.0f / p.scale);
          const double delta = std::nearbyint(v) - v;
          const double r = std::nearbyint(v) + p.zero_point;
          const double u = r < p.qmin   ? p.qmin - p.zero_point
                           : r > p.qmax ? p.qmax - p.zero_point
                                        : w.data()[i] / sv + delta;
          total += g.data()[i] * sv * u;
        }
        return total;
      };
      const double eps = 1e-4 * p.scale;
      const double fd = (surrogate(p.scale + eps) - surrogate(p.scale - eps)) / (2 * eps);
      CAPTURE(c);
      CHECK(sc.grad().data()[c] == doctest::Approx(fd / std::sqrt(20.0 * p.qmax)).epsilon(1e-3));
    }
  }
}

TEST_CASE("FakeQuantize: observes in training, fake-quantizes with the observer's qparams") {
  auto fq = std::make_shared<FakeQuantize>(make_observer({.kind = "minmax"}, activation_scheme()));
  CHECK(fq->type() == "FakeQuantize");
  CHECK(fq->axis() == -1);
  CHECK(fq->child("activation_post_process") == fq->observer());
  std::map<std::string, Shape> names;
  for (auto& [n, t] : fq->state_dict()) names[n] = t.shape();
  CHECK(names == std::map<std::string, Shape>{{"scale", {1}},
                                              {"zero_point", {1}},
                                              {"activation_post_process.min_val", {1}},
                                              {"activation_post_process.max_val", {1}}});
  fq->train();
  Tensor x = Tensor::from({4}, {-1.0f, 0.3f, 2.0f, 3.0f});
  Tensor y = (*fq)(x);
  QParams want = choose_qparams_affine(-1.0f, 3.0f);
  QParams got = fq->qparams()[0];
  CHECK((got.scale == want.scale && got.zero_point == want.zero_point && got.qmin == 0 && got.qmax == 255));
  CHECK(fq->scale.item() == want.scale);
  CHECK(fq->zero_point.item() == float(want.zero_point));
  check_exact(x, y, {want}, 0);

  SUBCASE("observer off keeps the scale fixed") {
    fq->observer_enabled = false;
    Tensor z = Tensor::from({2}, {-10.0f, 10.0f});
    Tensor out = (*fq)(z);
    CHECK(fq->scale.item() == want.scale);
    CHECK(fq->observer()->calculate_qparams()[0].scale == want.scale);
    check_exact(z, out, {want}, 0);  // clipped with the old qparams
  }
  SUBCASE("fake-quant off returns the input unchanged, and still observes") {
    fq->fake_quant_enabled = false;
    Tensor z = Tensor::from({2}, {-10.0f, 10.0f});
    CHECK((*fq)(z).impl() == z.impl());
    CHECK(fq->scale.item() == choose_qparams_affine(-10.0f, 10.0f).scale);
  }
  SUBCASE("eval mode changes nothing") {
    fq->eval();
    std::vector<std::vector<float>> before;
    for (auto& [n, t] : fq->state_dict()) before.emplace_back(t.data(), t.data() + t.numel());
    Tensor z = Tensor::from({2}, {-10.0f, 10.0f});
    Tensor out = (*fq)(z);
    size_t i = 0;
    for (auto& [n, t] : fq->state_dict()) CHECK(std::vector<float>(t.data(), t.data() + t.numel()) == before[i++]);
    check_exact(z, out, {want}, 0);
  }
  SUBCASE("observes even when only the observer is in eval mode") {
    fq->observer()->eval();
    (*fq)(Tensor::from({2}, {-10.0f, 10.0f}));
    CHECK(fq->scale.item() == choose_qparams_affine(-10.0f, 10.0f).scale);
  }
}

TEST_CASE("FakeQuantize per channel for weights") {
  auto fq = std::make_shared<FakeQuantize>(make_observer({.kind = "minmax"}, weight_scheme(4)));
  fq->train();
  CHECK(fq->axis() == 0);
  CHECK(fq->scale.shape() == Shape{4});
  Tensor w = Tensor::randn({4, 3, 3, 3}, rng()).requires_grad_();
  Tensor y = (*fq)(w);
  auto qp = fq->qparams();
  REQUIRE(qp.size() == 4);
  for (int c = 0; c < 4; ++c) {
    float absmax = 0;
    for (int i = 0; i < 27; ++i) absmax = std::max(absmax, std::abs(w.data()[c * 27 + i]));
    CHECK(qp[c].scale == choose_qparams_symmetric(absmax).scale);
    CHECK(qp[c].zero_point == 0);
  }
  check_exact(w, y, qp, 0);
  sum(y).backward();
  for (int64_t i = 0; i < w.numel(); ++i) CHECK(w.grad().data()[i] == 1.0f);  // min/max of each channel are inside
}

TEST_CASE("FakeQuantize with LSQ: the observer initialises the scale once; it learns; checkpoints keep it") {
  auto make = [] {
    return std::make_shared<FakeQuantize>(make_observer({.kind = "minmax"}, activation_scheme()), true);
  };
  auto fq = make();
  fq->train();
  CHECK(fq->lsq());
  CHECK(fq->parameters().size() == 1);
  CHECK(fq->scale.requires_grad());
  Tensor x = Tensor::from({4}, {-1.0f, 0.3f, 2.0f, 3.0f});
  (*fq)(x);
  const float s0 = choose_qparams_affine(-1.0f, 3.0f).scale;
  CHECK(fq->scale.item() == s0);
  Tensor x2 = Tensor::from({4}, {-8.0f, 0.3f, 2.0f, 9.0f});
  Tensor y = (*fq)(x2);
  CHECK(fq->scale.item() == s0);  // not re-initialised
  CHECK(fq->observer()->calculate_qparams()[0].scale == choose_qparams_affine(-8.0f, 9.0f).scale);
  sum(y).backward();
  REQUIRE(fq->scale.grad().defined());
  CHECK(fq->scale.grad().item() != 0.0f);
  fq->scale.data()[0] = 0.05f;  // "learned"

  auto fresh = make();
  std::map<std::string, Tensor> sd;
  for (auto& [n, t] : fq->state_dict()) sd[n] = t.clone();
  fresh->load_state_dict(sd, "ckpt");
  fresh->train();
  (*fresh)(x);
  CHECK(fresh->scale.item() == 0.05f);
  CHECK(fresh->qparams()[0].scale == 0.05f);
}

// Not a test: fake_quantize throughput. Run with
//   test_quant -tc="bench fake_quantize*" --no-skip
TEST_CASE("bench fake_quantize forward + backward (128,64,28,28)" * doctest::skip()) {
  use_two_threads();
  Tensor x = Tensor::randn({128, 64, 28, 28}, rng(), 2.0f).requires_grad_();
  const std::vector<QParams> qp{{0.02f, 128, 0, 255}};
  const double n = static_cast<double>(x.numel());
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  Tensor dout = Tensor::randn(x.shape(), rng());
  double tf = 1e9, tb = 1e9;
  for (int it = 0; it < 10; ++it) {
    auto a = now();
    Tensor y = fake_quantize(x, qp, -1);
    auto b = now();
    std::shared_ptr<Node> node = y.impl()->autograd->grad_fn;
    y.impl()->autograd->grad = dout.impl()->storage;  // dL/dy, as backward would have it
    x.zero_grad();
    auto c = now();
    node->backward(*y.impl()->autograd, {x.impl()->autograd.get()});  // dx freshly written (the usual case)
    auto d = now();
    tf = std::min(tf, secs(a, b)), tb = std::min(tb, secs(c, d));
  }
  // Bytes moved: forward reads x, writes y and a 1-bit mask; backward reads dy and the mask, writes dx.
  const double fb = n * (8 + 0.125), bb = n * (8 + 0.125);
  std::printf(
      "fake_quantize (128,64,28,28), %d threads: forward %.2f ms (%.1f GB/s), backward %.2f ms (%.1f GB/s), "
      "forward+backward %.1f GB/s, %.0f Melem/s\n",
      num_threads(), tf * 1e3, fb / tf / 1e9, tb * 1e3, bb / tb / 1e9, (fb + bb) / (tf + tb) / 1e9,
      n / (tf + tb) / 1e6);
  // For comparison: the plain quantize_val loop (libm fmax / fmin / nearbyint calls), one pass, no mask.
  std::vector<float> out(x.numel());
  double tr = 1e9;
  for (int it = 0; it < 3; ++it) {
    auto a = now();
    parallel_for(x.numel(), 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[i] = reference(x.data()[i], qp[0]);
    });
    tr = std::min(tr, secs(a, now()));
  }
  std::printf("plain quantize_val loop: %.2f ms (%.1f GB/s)\n", tr * 1e3, n * 8 / tr / 1e9);
}

TEST_CASE("fake_quantize raw pairs give the autograd ops' bits; backward adds unless told to assign") {
  use_two_threads();
  // (2,3,7,11) per channel on axis 1: 77 elements per channel run, n = 462 (a partial last mask word).
  Tensor x = Tensor::randn({2, 3, 7, 11}, rng(), 3.0f);
  const std::vector<QParams> qp{{0.05f, 10, 0, 255}, {0.1f, -3, -128, 127}, {0.02f, 0, -128, 127}};
  const int64_t n = x.numel(), inner = 77;
  Tensor r = Tensor::randn(x.shape(), rng());

  Tensor xa = x.clone().requires_grad_();
  Tensor y = fake_quantize(xa, qp, 1);
  sum(mul(y, r)).backward();  // xa.grad = STE(r), written into a fresh buffer
  std::vector<float> out(n);
  std::vector<uint64_t> mask((n + 63) / 64);
  fake_quantize_forward(out.data(), mask.data(), x.data(), qp, n, inner);
  CHECK(std::memcmp(out.data(), y.data(), n * sizeof(float)) == 0);
  std::vector<float> dx(n, 0.5f);
  fake_quantize_backward(dx.data(), false, r.data(), mask.data(), n);
  int bad = 0, passed = 0;
  for (int64_t i = 0; i < n; ++i) bad += dx[i] != 0.5f + xa.grad().data()[i], passed += xa.grad().data()[i] != 0.0f;
  CHECK(bad == 0);
  CHECK(passed > 0);
  CHECK(passed < n);  // some values clamped
  fake_quantize_backward(dx.data(), true, r.data(), mask.data(), n);
  CHECK(std::memcmp(dx.data(), xa.grad().data(), n * sizeof(float)) == 0);

  // LSQ: the same, with the scale's gradient.
  Tensor s = Tensor::from({3}, {0.05f, 0.1f, 0.02f}).requires_grad_();
  xa.zero_grad();
  Tensor yl = fake_quantize_lsq(xa, s, qp, 1);
  sum(mul(yl, r)).backward();
  fake_quantize_lsq_forward(out.data(), x.data(), s.data(), qp, n, inner);
  CHECK(std::memcmp(out.data(), yl.data(), n * sizeof(float)) == 0);
  std::vector<float> dxl(n), ds(3, 0.0f);
  fake_quantize_lsq_backward(dxl.data(), ds.data(), true, r.data(), x.data(), s.data(), qp, n, inner);
  CHECK(std::memcmp(dxl.data(), xa.grad().data(), n * sizeof(float)) == 0);
  // The per-channel sums are added in a fixed chunk order: the same bits as the op's.
  CHECK(std::memcmp(ds.data(), s.grad().data(), 3 * sizeof(float)) == 0);
}

// The LSQ scale gradient is a sum over chunks of the tensor. Two large terms of opposite sign in
// different halves, then a small one: summed in one pass the small term survives (B - B + s), summed
// per half it is lost (B + (-B + s)). The chunks must not depend on the thread count, and their
// partial sums must be added in a fixed order, so 1, 2 and 3 threads give the same bits every time.
TEST_CASE("fake_quantize_lsq_backward: the scale gradient has the same bits for any thread count") {
  const int64_t n = 3 * 65536 + 1000;
  const std::vector<QParams> qp{{0.1f, 0, -128, 127}};
  std::vector<float> x(n), dout(n, 0.0f);
  std::mt19937_64 r(5);
  std::normal_distribution<float> nd(0.0f, 10.0f);
  for (auto& v : x) v = nd(r);
  x[0] = 1e6f, dout[0] = 1e30f;                   // clamped above: + 127 * 1e30
  x[n / 2 + 5] = 1e6f, dout[n / 2 + 5] = -1e30f;  // - 127 * 1e30
  x[n - 1] = 1e6f, dout[n - 1] = 1.0f;            // + 127
  const float scale = 0.1f;
  auto run = [&](int threads) {
    set_num_threads(threads);
    float ds = 0.0f;
    fake_quantize_lsq_backward(nullptr, &ds, false, dout.data(), x.data(), &scale, qp, n, 1);
    return ds;
  };
  const float one = run(1);
  CHECK(one != 0.0f);
  for (int rep = 0; rep < 5; ++rep)
    for (int t : {2, 3, 1}) {
      const float got = run(t);
      CHECK_MESSAGE(std::memcmp(&got, &one, sizeof one) == 0, t << " threads: " << got << ", 1 thread: " << one);
    }
  // Many channels with random gradients: the same bits with 1 and 2 threads, repeatedly.
  const int C = 7;
  std::vector<QParams> qc(C, QParams{0.05f, 3, -128, 127});
  std::vector<float> sc(C, 0.05f), g(n);
  for (auto& v : g) v = nd(r);
  const int64_t inner = n / C / 4;
  const int64_t m = inner * C * 4;  // (4, C, inner)
  auto run_c = [&](int threads) {
    set_num_threads(threads);
    std::vector<float> ds(C, 0.0f);
    fake_quantize_lsq_backward(nullptr, ds.data(), false, g.data(), x.data(), sc.data(), qc, m, inner);
    return ds;
  };
  const std::vector<float> base = run_c(1);
  for (int rep = 0; rep < 5; ++rep)
    for (int t : {2, 3}) CHECK(std::memcmp(run_c(t).data(), base.data(), C * sizeof(float)) == 0);
  use_two_threads();
}

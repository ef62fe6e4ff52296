#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "quant/observer.h"

using namespace qforge;
using namespace qforge::quant;

namespace {

// The pool is grown to 2 threads and never shrunk back: core/threads.cpp's Pool
// calls a null function when it is regrown after a parallel run (new workers
// start with a stale generation count), so 2 -> 1 -> 2 crashes.
inline void use_two_threads() { set_num_threads(2); }

std::shared_ptr<Observer> observer(const std::string& kind, const QScheme& s = activation_scheme()) {
  ObserverSpec spec;
  spec.kind = kind;
  auto o = make_observer(spec, s);
  o->train();
  return o;
}

std::shared_ptr<Observer> observer(const ObserverSpec& spec, const QScheme& s = activation_scheme()) {
  auto o = make_observer(spec, s);
  o->train();
  return o;
}

Tensor buffer(const nn::Module& m, const std::string& name) {
  for (auto& [n, t] : m.own_buffers())
    if (n == name) return t;
  FAIL("no buffer " << name);
  return Tensor();
}

// Mean squared error of quantizing then dequantizing v with qp, through the library's numerics.
double quant_mse(const std::vector<float>& v, const QParams& qp) {
  const float inv = 1.0f / qp.scale;
  double s = 0;
  for (float x : v) {
    const float y = dequantize_val(quantize_val(x, inv, qp.zero_point, qp.qmin, qp.qmax), qp.scale, qp.zero_point);
    s += (double(x) - y) * (double(x) - y);
  }
  return s / static_cast<double>(v.size());
}

void check_contains_zero(const QParams& qp) {
  CHECK(qp.zero_point >= qp.qmin);
  CHECK(qp.zero_point <= qp.qmax);
  CHECK(dequantize_val(qp.zero_point, qp.scale, qp.zero_point) == 0.0f);
}

bool same(const QParams& a, const QParams& b) {
  return a.scale == b.scale && a.zero_point == b.zero_point && a.qmin == b.qmin && a.qmax == b.qmax;
}

}  // namespace

TEST_CASE("observer schemes: activations uint8 affine per tensor, weights int8 symmetric") {
  QScheme a = activation_scheme();
  CHECK((a.qmin == 0 && a.qmax == 255 && !a.symmetric && !a.per_channel));
  QScheme w = weight_scheme(16);
  CHECK((w.qmin == -127 && w.qmax == 127 && w.symmetric && w.per_channel && w.axis == 0 && w.channels == 16));
  QScheme t = weight_scheme_per_tensor();
  CHECK((t.qmin == -127 && t.qmax == 127 && t.symmetric && !t.per_channel));
}

TEST_CASE("minmax observer: running min and max, hand computed") {
  auto o = observer("minmax");
  CHECK(o->type() == "MinMaxObserver");
  CHECK_FALSE(o->has_data());
  CHECK(same(o->calculate_qparams()[0], QParams{1.0f, 0, 0, 255}));  // PyTorch's default before data
  Tensor a = Tensor::from({2, 2}, {0.5f, -1.0f, 2.0f, 0.25f});
  Tensor y = (*o)(a);
  CHECK(y.impl() == a.impl());  // forward returns x itself
  CHECK(o->has_data());
  CHECK(buffer(*o, "min_val").item() == -1.0f);
  CHECK(buffer(*o, "max_val").item() == 2.0f);
  (*o)(Tensor::from({3}, {1.0f, 3.0f, -0.5f}));
  (*o)(Tensor::from({1}, {NAN}));  // NaN ignored
  CHECK(buffer(*o, "min_val").item() == -1.0f);
  CHECK(buffer(*o, "max_val").item() == 3.0f);
  QParams qp = o->calculate_qparams()[0];
  CHECK(same(qp, choose_qparams_affine(-1.0f, 3.0f, 0, 255)));
  CHECK(qp.scale == doctest::Approx(4.0 / 255));
  check_contains_zero(qp);

  SUBCASE("a long tensor goes through the vector path and the pool") {
    use_two_threads();
    std::mt19937_64 rng(3);
    Tensor x = Tensor::randn({100003}, rng);
    x.data()[77777] = -9.5f;
    x.data()[100002] = 8.25f;  // in the scalar tail
    x.data()[5] = NAN;
    auto m = observer("minmax");
    (*m)(x);
    CHECK(buffer(*m, "min_val").item() == -9.5f);
    CHECK(buffer(*m, "max_val").item() == 8.25f);
    // A NaN that comes after the extremes in the same vector lane must not erase them.
    Tensor y = Tensor::randn({4096}, rng);
    y.data()[32] = -12.0f, y.data()[33] = 12.0f;
    y.data()[48] = NAN, y.data()[49] = NAN;
    auto m2 = observer("minmax");
    (*m2)(y);
    CHECK(buffer(*m2, "min_val").item() == -12.0f);
    CHECK(buffer(*m2, "max_val").item() == 12.0f);
  }
}

TEST_CASE("moving average minmax: first batch sets the range, then min += c * (batch_min - min)") {
  ObserverSpec spec;
  spec.kind = "moving_average_minmax";
  spec.averaging_constant = 0.25f;
  auto o = observer(spec);
  CHECK(o->type() == "MovingAverageMinMaxObserver");
  (*o)(Tensor::from({2}, {-2.0f, 4.0f}));
  CHECK(buffer(*o, "min_val").item() == -2.0f);
  CHECK(buffer(*o, "max_val").item() == 4.0f);
  (*o)(Tensor::from({2}, {-6.0f, 8.0f}));  // -2 + 0.25 * (-4) = -3; 4 + 0.25 * 4 = 5
  CHECK(buffer(*o, "min_val").item() == -3.0f);
  CHECK(buffer(*o, "max_val").item() == 5.0f);
  (*o)(Tensor::from({2}, {1.0f, 1.0f}));  // -3 + 0.25 * 4 = -2; 5 + 0.25 * (-4) = 4
  CHECK(buffer(*o, "min_val").item() == -2.0f);
  CHECK(buffer(*o, "max_val").item() == 4.0f);
  CHECK(same(o->calculate_qparams()[0], choose_qparams_affine(-2.0f, 4.0f)));
}

TEST_CASE("per-channel minmax and moving average along axis 0 and axis 1") {
  // w (3, 2): channel c along axis 0 is row c.
  Tensor w = Tensor::from({3, 2}, {1.0f, -2.0f, 0.5f, 0.25f, -4.0f, 3.0f});
  auto o = make_observer({.kind = "minmax"}, weight_scheme(3));
  o->train();
  CHECK(o->type() == "PerChannelMinMaxObserver");
  (*o)(w);
  auto qp = o->calculate_qparams();
  REQUIRE(qp.size() == 3);
  const float absmax[3] = {2.0f, 0.5f, 4.0f};
  for (int c = 0; c < 3; ++c) {
    CHECK(same(qp[c], choose_qparams_symmetric(absmax[c], -127, 127)));
    CHECK(qp[c].zero_point == 0);
  }
  CHECK(buffer(*o, "min_val").data()[1] == 0.25f);
  CHECK(buffer(*o, "max_val").data()[1] == 0.5f);

  // x (N=2, C=3, 2): channel c holds x[n, c, :] for both n.
  QScheme s = activation_scheme();
  s.per_channel = true, s.axis = 1, s.channels = 3;
  ObserverSpec spec{.kind = "moving_average_minmax", .averaging_constant = 0.5f};
  auto m = make_observer(spec, s);
  m->train();
  CHECK(m->type() == "MovingAveragePerChannelMinMaxObserver");
  Tensor x1 = Tensor::from({2, 3, 2}, {0, 1, 2, 3, 4, 5, -1, 0, -2, 9, 4, 4});
  (*m)(x1);  // channel ranges: [-1, 1], [-2, 9], [4, 5]
  Tensor x2 = Tensor::from({2, 3, 2}, {1, 1, 0, 1, 2, 3, 1, 3, 0, 1, 2, 3});
  (*m)(x2);  // batch ranges: [1, 3], [0, 1], [2, 3]
  const float want_min[3] = {-1 + 0.5f * 2, -2 + 0.5f * 2, 4 + 0.5f * -2};
  const float want_max[3] = {1 + 0.5f * 2, 9 + 0.5f * -8, 5 + 0.5f * -2};
  for (int c = 0; c < 3; ++c) {
    CHECK(buffer(*m, "min_val").data()[c] == want_min[c]);
    CHECK(buffer(*m, "max_val").data()[c] == want_max[c]);
    QParams q = m->calculate_qparams()[c];
    CHECK(same(q, choose_qparams_affine(want_min[c], want_max[c])));
    check_contains_zero(q);
  }
  CHECK_THROWS_WITH_AS((*m)(Tensor::zeros({2, 4, 2})), doctest::Contains("(2,4,2)"), Error);
  CHECK_THROWS_WITH_AS((*o)(Tensor::zeros({2, 3})), doctest::Contains("3 channels along axis 0"), Error);
}

TEST_CASE("symmetric per-tensor scheme uses the absolute maximum") {
  auto o = observer("minmax", weight_scheme_per_tensor());
  (*o)(Tensor::from({3}, {-0.5f, 0.1f, 0.3f}));
  CHECK(same(o->calculate_qparams()[0], choose_qparams_symmetric(0.5f, -127, 127)));
}

TEST_CASE("histogram observer clips a far outlier and beats minmax on MSE") {
  // 2^21 Laplace(0, 1) samples and one value at 1000. With a uint8 grid, clipping
  // one outlier pays off once there are more than about 12 * 255^2 other values;
  // the L2 optimum for the top edge b balances (1000 - b)^2 against
  // n * (b / 255)^2 / 12, near b = 270.
  std::mt19937_64 rng(11);
  std::exponential_distribution<float> ex(1.0f);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(1 << 21);
  for (float& x : v) x = sign(rng) ? ex(rng) : -ex(rng);
  v[12345] = 1000.0f;
  Tensor x = Tensor::from({static_cast<int64_t>(v.size())}, v);
  use_two_threads();
  auto h = observer("histogram");
  auto m = observer("minmax");
  CHECK(h->type() == "HistogramObserver");
  // Two batches, the second widening the range (re-binning).
  int64_t half = x.numel() / 2;
  Tensor x1 = Tensor::from({half}, std::vector<float>(v.begin(), v.begin() + half));
  Tensor x2 = Tensor::from({half}, std::vector<float>(v.begin() + half, v.end()));
  for (Tensor t : {x1, x2}) (*h)(t), (*m)(t);
  QParams qh = h->calculate_qparams()[0], qm = m->calculate_qparams()[0];
  const float hmax = dequantize_val(qh.qmax, qh.scale, qh.zero_point);
  const float hmin = dequantize_val(qh.qmin, qh.scale, qh.zero_point);
  MESSAGE("histogram range [" << hmin << ", " << hmax << "], minmax scale " << qm.scale);
  CHECK(hmax < 500.0f);  // the outlier is clipped
  CHECK(hmax > 100.0f);  // but not down to the body of the distribution: that costs more
  CHECK(hmin < -5.0f);
  check_contains_zero(qh);
  const double eh = quant_mse(v, qh), em = quant_mse(v, qm);
  MESSAGE("MSE histogram " << eh << ", minmax " << em);
  CHECK(eh < 0.5 * em);
  // No other top edge does clearly better.
  for (float b : {10.0f, 50.0f, 150.0f, 230.0f, 300.0f, 400.0f, 700.0f}) {
    CAPTURE(b);
    CHECK(quant_mse(v, choose_qparams_affine(hmin, b)) > 0.98 * eh);
  }
}

TEST_CASE("histogram observer keeps nearly the full range of uniform data") {
  std::mt19937_64 rng(5);
  Tensor x = Tensor::uniform({200000}, rng, -1.0f, 3.0f);
  for (const char* kind : {"histogram"}) {
    auto h = observer(kind);
    (*h)(x);
    QParams q = h->calculate_qparams()[0];
    auto m = observer("minmax");
    (*m)(x);
    QParams qm = m->calculate_qparams()[0];
    CHECK(q.scale == doctest::Approx(qm.scale).epsilon(0.01));
    std::vector<float> v(x.data(), x.data() + x.numel());
    CHECK(quant_mse(v, q) <= quant_mse(v, qm) * 1.01);
  }
  SUBCASE("symmetric scheme: absmax near the data's") {
    auto h = observer("histogram", weight_scheme_per_tensor());
    Tensor y = Tensor::uniform({100000}, rng, -2.0f, 2.0f);
    (*h)(y);
    QParams q = h->calculate_qparams()[0];
    CHECK(q.zero_point == 0);
    CHECK(q.scale * 127 == doctest::Approx(2.0).epsilon(0.02));
  }
}

TEST_CASE("histogram re-binning preserves the total count") {
  ObserverSpec spec{.kind = "histogram", .bins = 64};
  auto h = observer(spec);
  std::mt19937_64 rng(9);
  Tensor a = Tensor::uniform({1000}, rng, 0.0f, 1.0f);
  (*h)(a);
  Tensor hist = buffer(*h, "histogram");
  CHECK(hist.numel() == 64);
  auto total = [&] {
    double s = 0;
    for (int64_t k = 0; k < hist.numel(); ++k) s += hist.data()[k];
    return s;
  };
  CHECK(total() == 1000.0);  // a single batch: exact integer counts
  // Binning agrees with counting by hand.
  const float lo = buffer(*h, "min_val").item(), hi = buffer(*h, "max_val").item();
  std::vector<int> want(64, 0);
  for (int64_t i = 0; i < a.numel(); ++i)
    ++want[std::min(63, static_cast<int>((a.data()[i] - lo) * (64.0f / (hi - lo))))];
  for (int k = 0; k < 64; ++k) CHECK(hist.data()[k] == want[k]);

  Tensor b = Tensor::uniform({500}, rng, 0.2f, 0.8f);  // inside the range: no re-binning
  (*h)(b);
  CHECK(total() == 1500.0);
  CHECK(buffer(*h, "min_val").item() == lo);
  Tensor c = Tensor::uniform({700}, rng, -3.0f, 5.0f);  // widens both ends
  (*h)(c);
  CHECK(total() == doctest::Approx(2200.0).epsilon(1e-6));
  CHECK(buffer(*h, "min_val").item() < -2.9f);
  CHECK(buffer(*h, "max_val").item() > 4.9f);
  // The first 1500 values (in [0, 1]) now sit in the bins covering [0, 1], plus c's share.
  const float nlo = buffer(*h, "min_val").item(), nhi = buffer(*h, "max_val").item();
  const double w = (double(nhi) - nlo) / 64;
  double in01 = 0;
  for (int k = 0; k < 64; ++k) {
    const double s = nlo + k * w, e = s + w;
    const double overlap = std::max(0.0, std::min(e, 1.0) - std::max(s, 0.0));
    in01 += hist.data()[k] * overlap / w;
  }
  CHECK(in01 == doctest::Approx(1500 + 700 / 8.0).epsilon(0.03));
}

TEST_CASE("percentile observer returns the quantiles of uniform data within a bin width") {
  ObserverSpec spec{.kind = "percentile", .bins = 2048, .percentile = 99.0f};
  auto o = observer(spec);
  CHECK(o->type() == "PercentileObserver");
  const int n = 100000;
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = (i + 0.5f) / n;  // evenly spread over [0, 1]
  std::shuffle(v.begin(), v.end(), std::mt19937_64(2));
  (*o)(Tensor::from({n / 2}, std::vector<float>(v.begin(), v.begin() + n / 2)));
  (*o)(Tensor::from({n / 2}, std::vector<float>(v.begin() + n / 2, v.end())));
  const float bin = (buffer(*o, "max_val").item() - buffer(*o, "min_val").item()) / 2048;
  QParams q = o->calculate_qparams()[0];
  // [p1, p99] = [0.01, 0.99]; choose_qparams_affine extends it to [0, 0.99].
  // Within a bin width; in fact much closer, as the values are spread evenly in each bin.
  CHECK(q.zero_point == 0);
  CHECK(std::abs(q.scale * 255 - 0.99f) <= bin);
  CHECK(std::abs(q.scale * 255 - 0.99f) <= bin / 4);

  // Shifted data so that both ends count: [p1, p99] of [-1, 1] is [-0.98, 0.98].
  auto s = observer(spec);
  std::vector<float> u(n);
  for (int i = 0; i < n; ++i) u[i] = 2 * v[i] - 1;
  (*s)(Tensor::from({n}, u));
  QParams qs = s->calculate_qparams()[0];
  const float sbin = 2.0f / 2048;
  const float lo = dequantize_val(0, qs.scale, qs.zero_point), hi = dequantize_val(255, qs.scale, qs.zero_point);
  CHECK(std::abs(lo + 0.98f) <= sbin + qs.scale);  // the zero point rounds the ends by up to a step
  CHECK(std::abs(hi - 0.98f) <= sbin + qs.scale);
  CHECK(qs.scale * 255 == doctest::Approx(1.96).epsilon(2.0 * sbin / 1.96));
  check_contains_zero(qs);
}

TEST_CASE("every observer's qparams contain 0, even for data of one sign") {
  for (const char* kind : {"minmax", "moving_average_minmax", "histogram", "percentile"}) {
    CAPTURE(kind);
    for (float sign : {1.0f, -1.0f}) {
      auto o = observer(kind);
      std::mt19937_64 rng(1);
      Tensor x = Tensor::uniform({5000}, rng, 2.0f, 6.0f);
      for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] *= sign;
      (*o)(x);
      QParams q = o->calculate_qparams()[0];
      check_contains_zero(q);
      CHECK(q.zero_point == (sign > 0 ? 0 : 255));
    }
  }
}

TEST_CASE("an observer in eval mode does not change") {
  for (const char* kind : {"minmax", "moving_average_minmax", "histogram", "percentile"}) {
    CAPTURE(kind);
    auto o = observer(kind);
    (*o)(Tensor::from({3}, {-1.0f, 0.5f, 2.0f}));
    std::vector<std::vector<float>> before;
    for (auto& [n, t] : o->state_dict()) before.emplace_back(t.data(), t.data() + t.numel());
    QParams q = o->calculate_qparams()[0];
    o->eval();
    Tensor x = Tensor::from({2}, {-50.0f, 70.0f});
    CHECK((*o)(x).impl() == x.impl());
    size_t i = 0;
    for (auto& [n, t] : o->state_dict()) CHECK(std::vector<float>(t.data(), t.data() + t.numel()) == before[i++]);
    CHECK(same(o->calculate_qparams()[0], q));
  }
}

TEST_CASE("observer state dict round trip gives the same qparams") {
  std::mt19937_64 rng(4);
  struct Case {
    const char* kind;
    QScheme scheme;
  };
  for (const Case& c : {Case{"minmax", activation_scheme()}, Case{"moving_average_minmax", weight_scheme(4)},
                        Case{"histogram", activation_scheme()}, Case{"percentile", activation_scheme()}}) {
    CAPTURE(c.kind);
    ObserverSpec spec;
    spec.kind = c.kind, spec.bins = 128, spec.percentile = 99.0f;
    auto a = observer(spec, c.scheme);
    (*a)(Tensor::randn({4, 3, 5}, rng));
    (*a)(Tensor::randn({4, 3, 5}, rng, 3.0f));
    std::map<std::string, Tensor> sd;
    for (auto& [n, t] : a->state_dict()) sd[n] = t.clone();
    auto b = observer(spec, c.scheme);
    CHECK_FALSE(b->has_data());
    b->load_state_dict(sd, "checkpoint");
    CHECK(b->has_data());
    auto qa = a->calculate_qparams(), qb = b->calculate_qparams();
    REQUIRE(qa.size() == qb.size());
    for (size_t i = 0; i < qa.size(); ++i) CHECK(same(qa[i], qb[i]));
    // And both keep observing identically.
    Tensor x = Tensor::randn({4, 3, 5}, rng, 5.0f);
    (*a)(x), (*b)(x);
    qa = a->calculate_qparams(), qb = b->calculate_qparams();
    for (size_t i = 0; i < qa.size(); ++i) CHECK(same(qa[i], qb[i]));
  }
}

TEST_CASE("make_observer validates the kind and the combination") {
  CHECK_THROWS_WITH_AS(make_observer({.kind = "minmaxx"}, activation_scheme()), doctest::Contains("'minmaxx'"), Error);
  CHECK_THROWS_WITH_AS(make_observer({.kind = "minmaxx"}, activation_scheme()),
                       doctest::Contains("minmax, moving_average_minmax, histogram, percentile"), Error);
  CHECK_THROWS_WITH_AS(make_observer({.kind = "histogram"}, weight_scheme(8)), doctest::Contains("histogram"), Error);
  CHECK_THROWS_WITH_AS(make_observer({.kind = "percentile"}, weight_scheme(8)), doctest::Contains("per channel"),
                       Error);
  CHECK_THROWS_AS(make_observer({.kind = "moving_average_minmax", .averaging_constant = 0.0f}, activation_scheme()),
                  Error);
  CHECK_THROWS_AS(make_observer({.kind = "percentile", .percentile = 30.0f}, activation_scheme()), Error);
  QScheme bad = activation_scheme();
  bad.qmin = 5, bad.qmax = 5;
  CHECK_THROWS_AS(make_observer({}, bad), Error);
  CHECK(make_observer({.kind = "histogram"}, activation_scheme())->calculate_qparams().size() == 1);
}

TEST_CASE("histogram observer: constant data and non-finite input") {
  auto h = observer("histogram");
  (*h)(Tensor::full({10}, 2.0f));  // min == max
  CHECK(same(h->calculate_qparams()[0], choose_qparams_affine(2.0f, 2.0f)));
  (*h)(Tensor::from({2}, {-1.0f, 3.0f}));  // widens from a point
  double total = 0;
  Tensor hist = buffer(*h, "histogram");
  for (int64_t k = 0; k < hist.numel(); ++k) total += hist.data()[k];
  CHECK(total == 12.0);
  CHECK_THROWS_WITH_AS((*h)(Tensor::from({2}, {1.0f, INFINITY})), doctest::Contains("HistogramObserver"), Error);
}

#include "quant/observer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/process_group.h"
#include "core/threads.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace qforge::quant {

QScheme activation_scheme() { return QScheme{.qmin = 0, .qmax = 255, .symmetric = false, .per_channel = false}; }

QScheme weight_scheme(int out_channels) {
  return QScheme{
      .qmin = -127, .qmax = 127, .symmetric = true, .per_channel = true, .axis = 0, .channels = out_channels};
}

QScheme weight_scheme_per_tensor() {
  return QScheme{.qmin = -127, .qmax = 127, .symmetric = true, .per_channel = false};
}

Tensor Observer::forward(const Tensor& x) {
  if (training()) observe(x);
  return x;
}

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kGrain = 1 << 15;

// Min and max of p[0, n), NaNs ignored; (+inf, -inf) when there is no number.
void range_of(const float* p, int64_t n, float* out_min, float* out_max) {
  float lo = kInf, hi = -kInf;
  int64_t i = 0;
#if defined(__SSE2__)
  // GCC does not vectorise float min/max reductions without -ffinite-math-only.
  // minps(v, acc) returns acc when v is NaN, so NaNs are skipped as in the scalar loop.
  __m128 l0 = _mm_set1_ps(kInf), l1 = l0, l2 = l0, l3 = l0;
  __m128 h0 = _mm_set1_ps(-kInf), h1 = h0, h2 = h0, h3 = h0;
  for (; i + 16 <= n; i += 16) {
    const __m128 v0 = _mm_loadu_ps(p + i), v1 = _mm_loadu_ps(p + i + 4);
    const __m128 v2 = _mm_loadu_ps(p + i + 8), v3 = _mm_loadu_ps(p + i + 12);
    l0 = _mm_min_ps(v0, l0), l1 = _mm_min_ps(v1, l1), l2 = _mm_min_ps(v2, l2), l3 = _mm_min_ps(v3, l3);
    h0 = _mm_max_ps(v0, h0), h1 = _mm_max_ps(v1, h1), h2 = _mm_max_ps(v2, h2), h3 = _mm_max_ps(v3, h3);
  }
  alignas(16) float ls[4], hs[4];
  _mm_store_ps(ls, _mm_min_ps(_mm_min_ps(l0, l1), _mm_min_ps(l2, l3)));
  _mm_store_ps(hs, _mm_max_ps(_mm_max_ps(h0, h1), _mm_max_ps(h2, h3)));
  for (int k = 0; k < 4; ++k) lo = std::min(lo, ls[k]), hi = std::max(hi, hs[k]);
#endif
  for (; i < n; ++i) {
    const float v = p[i];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  *out_min = lo;
  *out_max = hi;
}

// Min and max over a whole tensor, on the pool.
std::pair<float, float> tensor_range(const Tensor& x) {
  float lo = kInf, hi = -kInf;
  std::mutex mu;
  const float* p = x.data();
  parallel_for(x.numel(), kGrain, [&](int64_t b, int64_t e) {
    float l, h;
    range_of(p + b, e - b, &l, &h);
    std::lock_guard<std::mutex> lk(mu);
    lo = std::min(lo, l), hi = std::max(hi, h);
  });
  return {lo, hi};
}

// x viewed as (outer, channels, inner) around `axis`.
struct ChannelView {
  int64_t outer = 1, channels = 1, inner = 1;
};

ChannelView channel_view(const std::string& who, const Tensor& x, int axis, int channels) {
  QF_CHECK(axis >= 0 && axis < x.dim(),
           who + ": channel axis " + std::to_string(axis) + " is out of range for shape " + shape_str(x.shape()));
  QF_CHECK(x.size(axis) == channels, who + ": expected " + std::to_string(channels) + " channels along axis " +
                                         std::to_string(axis) + ", got shape " + shape_str(x.shape()));
  ChannelView v;
  v.channels = channels;
  for (int d = 0; d < axis; ++d) v.outer *= x.size(d);
  for (int64_t d = axis + 1; d < x.dim(); ++d) v.inner *= x.size(d);
  return v;
}

// Per-channel min and max (NaNs ignored), on the pool.
void channel_ranges(const Tensor& x, const ChannelView& v, std::vector<float>& lo, std::vector<float>& hi) {
  lo.assign(v.channels, kInf);
  hi.assign(v.channels, -kInf);
  std::mutex mu;
  const float* p = x.data();
  // One work item is one contiguous (outer, channel) block of `inner` values.
  parallel_for(v.outer * v.channels, std::max<int64_t>(1, kGrain / std::max<int64_t>(v.inner, 1)),
               [&](int64_t b, int64_t e) {
                 std::vector<float> l(v.channels, kInf), h(v.channels, -kInf);
                 for (int64_t blk = b; blk < e; ++blk) {
                   const int64_t c = blk % v.channels;
                   float bl, bh;
                   range_of(p + blk * v.inner, v.inner, &bl, &bh);
                   l[c] = std::min(l[c], bl), h[c] = std::max(h[c], bh);
                 }
                 std::lock_guard<std::mutex> lk(mu);
                 for (int64_t c = 0; c < v.channels; ++c) lo[c] = std::min(lo[c], l[c]), hi[c] = std::max(hi[c], h[c]);
               });
}

// Before any data, as PyTorch: scale 1, zero point 0 (or qmin when 0 is outside the range).
QParams default_qparams(const QScheme& s) { return QParams{1.0f, std::clamp(0, s.qmin, s.qmax), s.qmin, s.qmax}; }

QParams qparams_for_range(const QScheme& s, float lo, float hi) {
  if (!(lo <= hi)) return default_qparams(s);
  if (s.symmetric) return choose_qparams_symmetric(std::max(std::abs(lo), std::abs(hi)), s.qmin, s.qmax);
  return choose_qparams_affine(lo, hi, s.qmin, s.qmax);
}

// minmax and moving_average_minmax, per tensor or per channel. min_val / max_val
// hold +inf / -inf until a channel has seen a number.
class MinMaxObserver final : public Observer {
 public:
  MinMaxObserver(QScheme s, bool moving_average, float averaging_constant)
      : Observer(s), moving_(moving_average), c_(averaging_constant) {
    const int64_t n = s.per_channel ? s.channels : 1;
    min_val_ = register_buffer("min_val", Tensor::full({n}, kInf));
    max_val_ = register_buffer("max_val", Tensor::full({n}, -kInf));
  }

  std::string type() const override {
    if (moving_) return scheme_.per_channel ? "MovingAveragePerChannelMinMaxObserver" : "MovingAverageMinMaxObserver";
    return scheme_.per_channel ? "PerChannelMinMaxObserver" : "MinMaxObserver";
  }

  void observe(const Tensor& x) override {
    if (x.numel() == 0) return;
    std::vector<float> lo, hi;
    if (scheme_.per_channel) {
      channel_ranges(x, channel_view(type(), x, scheme_.axis, scheme_.channels), lo, hi);
    } else {
      auto [l, h] = tensor_range(x);
      lo = {l}, hi = {h};
    }
    // In a data-parallel run, the range of the global batch: every rank then holds the same state.
    if (ProcessGroup* g = process_group()) {
      for (size_t c = 0; c < lo.size(); ++c)
        if (!(lo[c] <= hi[c])) lo[c] = kInf, hi[c] = -kInf;  // no numbers here: the others' range
      g->allreduce_min(lo.data(), static_cast<int64_t>(lo.size()));
      g->allreduce_max(hi.data(), static_cast<int64_t>(hi.size()));
    }
    float* mn = min_val_.data();
    float* mx = max_val_.data();
    for (size_t c = 0; c < lo.size(); ++c) {
      if (!(lo[c] <= hi[c])) continue;  // only NaNs in this channel
      if (!(mn[c] <= mx[c])) {          // first data: the batch's range, for both kinds
        mn[c] = lo[c], mx[c] = hi[c];
      } else if (moving_) {  // float32, as PyTorch
        mn[c] = mn[c] + c_ * (lo[c] - mn[c]);
        mx[c] = mx[c] + c_ * (hi[c] - mx[c]);
      } else {
        mn[c] = std::min(mn[c], lo[c]), mx[c] = std::max(mx[c], hi[c]);
      }
    }
  }

  bool has_data() const override {
    for (int64_t c = 0; c < min_val_.numel(); ++c)
      if (min_val_.data()[c] <= max_val_.data()[c]) return true;
    return false;
  }

  std::vector<QParams> calculate_qparams() const override {
    std::vector<QParams> out;
    for (int64_t c = 0; c < min_val_.numel(); ++c)
      out.push_back(qparams_for_range(scheme_, min_val_.data()[c], max_val_.data()[c]));
    return out;
  }

 private:
  bool moving_;
  float c_;
  Tensor min_val_, max_val_;
};

// histogram and percentile (per tensor): a histogram of `bins` equal bins over
// [min_val, max_val], re-binned when a batch widens the range.
class HistogramObserver final : public Observer {
 public:
  HistogramObserver(QScheme s, int bins, bool percentile, float pct)
      : Observer(s), bins_(bins), percentile_(percentile), pct_(pct) {
    min_val_ = register_buffer("min_val", Tensor::full({1}, kInf));
    max_val_ = register_buffer("max_val", Tensor::full({1}, -kInf));
    hist_ = register_buffer("histogram", Tensor::zeros({bins}));
  }

  std::string type() const override { return percentile_ ? "PercentileObserver" : "HistogramObserver"; }

  bool has_data() const override { return min_val_.data()[0] <= max_val_.data()[0]; }

  void observe(const Tensor& x) override {
    QF_CHECK(process_group() == nullptr,
             type() + ": a histogram of one process's data; in a data-parallel run (mpirun) use the minmax or "
                      "moving_average_minmax observer");
    if (x.numel() == 0) return;
    auto [lo, hi] = tensor_range(x);
    if (!(lo <= hi)) return;  // only NaNs
    QF_CHECK(std::isfinite(lo) && std::isfinite(hi),
             type() + ": input has non-finite values (range [" + std::to_string(lo) + ", " + std::to_string(hi) + "])");
    float* h = hist_.data();
    if (!has_data()) {
      std::fill(h, h + bins_, 0.0f);
    } else {
      const float old_lo = min_val_.data()[0], old_hi = max_val_.data()[0];
      lo = std::min(lo, old_lo), hi = std::max(hi, old_hi);
      if (lo < old_lo || hi > old_hi) rebin(old_lo, old_hi, lo, hi);
    }
    min_val_.data()[0] = lo, max_val_.data()[0] = hi;
    add(x, lo, hi);
  }

  std::vector<QParams> calculate_qparams() const override {
    if (!has_data()) return {default_qparams(scheme_)};
    auto [a, b] = percentile_ ? percentile_range() : search_range();
    return {qparams_for_range(scheme_, a, b)};
  }

 private:
  int bin_of(float v, float lo, float inv_width) const {
    float f = (v - lo) * inv_width;
    f = f > 0.0f ? f : 0.0f;
    f = f < static_cast<float>(bins_ - 1) ? f : static_cast<float>(bins_ - 1);
    return static_cast<int>(f);
  }

  // Counts x into the histogram over [lo, hi]. Counts are summed per batch in
  // integers, so adding to large float bins never drops single values.
  void add(const Tensor& x, float lo, float hi) {
    const float inv_width = hi > lo ? static_cast<float>(bins_) / (hi - lo) : 0.0f;
    std::vector<int64_t> total(bins_, 0);
    std::mutex mu;
    const float* p = x.data();
    parallel_for(x.numel(), kGrain, [&](int64_t b, int64_t e) {
      std::vector<int64_t> cnt(bins_, 0);
      for (int64_t i = b; i < e; ++i)
        if (!std::isnan(p[i])) ++cnt[bin_of(p[i], lo, inv_width)];
      std::lock_guard<std::mutex> lk(mu);
      for (int k = 0; k < bins_; ++k) total[k] += cnt[k];
    });
    float* h = hist_.data();
    for (int k = 0; k < bins_; ++k)
      h[k] = static_cast<float>(static_cast<double>(h[k]) + static_cast<double>(total[k]));
  }

  // Spreads each old bin's count over the new bins it overlaps, in proportion
  // to the overlap (values are taken as uniform within a bin). The total is kept.
  void rebin(float old_lo, float old_hi, float lo, float hi) {
    float* h = hist_.data();
    std::vector<double> out(bins_, 0.0);
    const double nw = (static_cast<double>(hi) - lo) / bins_;  // > 0: the range grew
    const double ow = (static_cast<double>(old_hi) - old_lo) / bins_;
    auto clamp_bin = [&](double u) { return static_cast<int>(std::clamp(u, 0.0, static_cast<double>(bins_ - 1))); };
    for (int k = 0; k < bins_; ++k) {
      const double cnt = h[k];
      if (cnt == 0.0) continue;
      const double s = (old_lo + k * ow - lo) / nw, e = (old_lo + (k + 1) * ow - lo) / nw;  // in new bins
      int j = clamp_bin(std::floor(s));
      const int last = clamp_bin(std::ceil(e) - 1.0);
      if (ow == 0.0 || j >= last) {  // a point (min == max) or within one new bin
        out[j] += cnt;
        continue;
      }
      double given = 0.0;
      for (; j < last; ++j) {
        const double part = cnt * (std::min<double>(e, j + 1) - std::max<double>(s, j)) / (e - s);
        out[j] += part;
        given += part;
      }
      out[last] += cnt - given;
    }
    for (int k = 0; k < bins_; ++k) h[k] = static_cast<float>(out[k]);
  }

  // [value at percentile (100 - p), value at percentile p], linear within a bin.
  std::pair<float, float> percentile_range() const {
    const float lo = min_val_.data()[0], hi = max_val_.data()[0];
    const float* h = hist_.data();
    double total = 0.0;
    for (int k = 0; k < bins_; ++k) total += h[k];
    if (!(hi > lo) || total <= 0.0) return {lo, hi};
    const double w = (static_cast<double>(hi) - lo) / bins_;
    auto value_at = [&](double target) {
      double cum = 0.0;
      for (int k = 0; k < bins_; ++k) {
        if (h[k] > 0.0f && cum + h[k] >= target) {
          const double frac = std::clamp((target - cum) / h[k], 0.0, 1.0);
          return static_cast<float>(lo + (k + frac) * w);
        }
        cum += h[k];
      }
      return hi;
    };
    const float a = std::max(lo, value_at(total * (100.0 - pct_) / 100.0));
    const float b = std::min(hi, value_at(total * pct_ / 100.0));
    return {a, std::max(a, b)};
  }

  // The clipping range minimising the expected L2 quantization error of the
  // histogram. A bin's mass inside [lo, hi] (by its centre) costs d^2/12 per
  // value (d the quantization step), mass outside costs its squared distance to
  // the nearer clip edge. Affine: every range [edge i, edge j+1], each extended
  // to contain 0 as choose_qparams_affine will do, so the search scores the grid
  // actually used; O(bins^2) in O(1) each with prefix sums. Symmetric: every
  // bin edge's magnitude as absmax, grid [qmin, qmax] * absmax / ((qmax - qmin) / 2).
  std::pair<float, float> search_range() const {
    const float lo = min_val_.data()[0], hi = max_val_.data()[0];
    const float* h = hist_.data();
    const int B = bins_;
    if (!(hi > lo)) return {lo, hi};
    // Work in units of one bin width, origin at lo: bin k covers [k, k+1], centre k + 0.5.
    const double w = (static_cast<double>(hi) - lo) / B;
    std::vector<double> s0(B + 1, 0.0), s1(B + 1, 0.0), s2(B + 1, 0.0);
    for (int k = 0; k < B; ++k) {
      const double c = k + 0.5;
      s0[k + 1] = s0[k] + h[k];
      s1[k + 1] = s1[k] + h[k] * c;
      s2[k + 1] = s2[k] + h[k] * c * c;
    }
    if (s0[B] <= 0.0) return {lo, hi};
    const double q = static_cast<double>(scheme_.qmax) - scheme_.qmin;
    // Bins clipped below u: centres < u; bins kept up to u: centres <= u.
    auto first_inside = [&](double u) { return static_cast<int>(std::clamp(std::ceil(u - 0.5), 0.0, double(B))); };
    auto end_inside = [&](double u) { return static_cast<int>(std::clamp(std::floor(u - 0.5) + 1.0, 0.0, double(B))); };
    auto err_below = [&](double u, int kl) { return s2[kl] - 2.0 * u * s1[kl] + u * u * s0[kl]; };
    auto err_above = [&](double u, int kh) {
      return (s2[B] - s2[kh]) - 2.0 * u * (s1[B] - s1[kh]) + u * u * (s0[B] - s0[kh]);
    };

    if (scheme_.symmetric) {
      double best = std::numeric_limits<double>::infinity(), best_m = std::max(std::abs(lo), std::abs(hi));
      for (int k = 0; k <= B; ++k) {
        const double m = std::abs(lo + k * w);  // candidate absmax, real units
        if (!(m > 0.0)) continue;
        const double s = m / (q / 2.0);
        const double ul = (scheme_.qmin * s - lo) / w, uh = (scheme_.qmax * s - lo) / w, d = s / w;
        const int kl = first_inside(ul), kh = std::max(kl, end_inside(uh));
        const double e = err_below(ul, kl) + err_above(uh, kh) + (s0[kh] - s0[kl]) * d * d / 12.0;
        if (e < best) best = e, best_m = m;
      }
      return {-static_cast<float>(best_m), static_cast<float>(best_m)};
    }

    const double u0 = -static_cast<double>(lo) / w;  // real 0
    std::vector<double> up(B), mass_to(B), err_up(B);
    for (int j = 0; j < B; ++j) {
      up[j] = std::max(j + 1.0, u0);
      const int kh = end_inside(up[j]);
      mass_to[j] = s0[kh];
      err_up[j] = err_above(up[j], kh);
    }
    const double k12 = 1.0 / (12.0 * q * q);
    double best = std::numeric_limits<double>::infinity();
    int bi = 0, bj = B - 1;
    for (int i = 0; i < B; ++i) {
      const double down = std::min<double>(i, u0);
      const int kl = first_inside(down);
      const double el = err_below(down, kl), mass_from = s0[kl];
      for (int j = i; j < B; ++j) {
        const double r = up[j] - down;
        const double e = el + err_up[j] + (mass_to[j] - mass_from) * r * r * k12;
        if (e < best) best = e, bi = i, bj = j;
      }
    }
    const float a = bi == 0 ? lo : static_cast<float>(lo + bi * w);
    const float b = bj == B - 1 ? hi : static_cast<float>(lo + (bj + 1) * w);
    return {a, b};
  }

  int bins_;
  bool percentile_;
  float pct_;
  Tensor min_val_, max_val_, hist_;
};

}  // namespace

std::shared_ptr<Observer> make_observer(const ObserverSpec& spec, const QScheme& s) {
  const std::string& kind = spec.kind;
  const std::string who = "observer '" + kind + "'";
  QF_CHECK(s.qmin < s.qmax,
           who + ": scheme needs qmin < qmax, got [" + std::to_string(s.qmin) + ", " + std::to_string(s.qmax) + "]");
  QF_CHECK(!s.symmetric || (s.qmin <= 0 && s.qmax >= 0),
           who + ": a symmetric scheme needs [qmin, qmax] to contain 0, got [" + std::to_string(s.qmin) + ", " +
               std::to_string(s.qmax) + "]");
  if (s.per_channel)
    QF_CHECK(s.channels >= 1 && s.axis >= 0, who + ": per-channel scheme needs channels >= 1 and axis >= 0, got " +
                                                 std::to_string(s.channels) + " channels, axis " +
                                                 std::to_string(s.axis));
  if (kind == "minmax") return std::make_shared<MinMaxObserver>(s, false, 0.0f);
  if (kind == "moving_average_minmax") {
    QF_CHECK(spec.averaging_constant > 0.0f && spec.averaging_constant <= 1.0f,
             who + ": averaging_constant must be in (0, 1], got " + std::to_string(spec.averaging_constant));
    return std::make_shared<MinMaxObserver>(s, true, spec.averaging_constant);
  }
  if (kind == "histogram" || kind == "percentile") {
    QF_CHECK(!s.per_channel, who +
                                 " is per tensor only, but the scheme is per channel (use minmax or "
                                 "moving_average_minmax for per-channel schemes)");
    QF_CHECK(spec.bins >= 1, who + ": bins must be >= 1, got " + std::to_string(spec.bins));
    if (kind == "percentile")
      QF_CHECK(spec.percentile >= 50.0f && spec.percentile <= 100.0f,
               who + ": percentile must be in [50, 100], got " + std::to_string(spec.percentile));
    return std::make_shared<HistogramObserver>(s, spec.bins, kind == "percentile", spec.percentile);
  }
  throw Error("unknown observer kind '" + kind +
              "' (valid kinds: minmax, moving_average_minmax, histogram, percentile)");
}

}  // namespace qforge::quant

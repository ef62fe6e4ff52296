#include "quant/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/autograd.h"
#include "core/error.h"
#include "core/threads.h"
#include "quant/kernels/fake_quant.h"

namespace qforge::quant {
namespace {

using fq::Chan;
using fq::Layout;

constexpr int64_t kGrain = 1 << 16;  // elements per parallel chunk, at least
constexpr float kEps = std::numeric_limits<float>::epsilon();

Chan make_chan(const char* op, float scale, const QParams& qp) {
  QF_CHECK(std::isfinite(scale) && scale > 0.0f,
           std::string(op) + ": scale must be finite and > 0, got " + std::to_string(scale));
  constexpr int32_t kLim = 1 << 23;  // keeps every bound below exactly representable in float
  QF_CHECK(qp.qmin < qp.qmax && qp.qmin > -kLim && qp.qmax < kLim && qp.zero_point > -kLim && qp.zero_point < kLim,
           std::string(op) + ": bad integer range [" + std::to_string(qp.qmin) + ", " + std::to_string(qp.qmax) +
               "] or zero point " + std::to_string(qp.zero_point));
  Chan c;
  c.scale = scale;
  c.inv_scale = 1.0f / scale;  // in float, once per channel, as quantize_val requires
  c.zp = qp.zero_point, c.qmin = qp.qmin, c.qmax = qp.qmax;
  c.rlo = static_cast<float>(qp.qmin - 1 - qp.zero_point);
  c.rhi = static_cast<float>(qp.qmax + 1 - qp.zero_point);
  return c;
}

Layout layout_of(const char* op, const Tensor& x, size_t nq, int axis) {
  QF_CHECK(nq >= 1, std::string(op) + ": needs at least one QParams");
  Layout L;
  L.n = x.numel();
  L.inner = std::max<int64_t>(L.n, 1);
  if (nq == 1) return L;  // per tensor: axis ignored
  QF_CHECK(axis >= 0 && axis < x.dim(), std::string(op) + ": channel axis " + std::to_string(axis) +
                                            " is out of range for shape " + shape_str(x.shape()));
  QF_CHECK(x.size(axis) == static_cast<int64_t>(nq), std::string(op) + ": " + std::to_string(nq) +
                                                         " channel qparams for shape " + shape_str(x.shape()) +
                                                         " along axis " + std::to_string(axis));
  L.channels = static_cast<int64_t>(nq);
  L.inner = 1;
  for (int64_t d = axis + 1; d < x.dim(); ++d) L.inner *= x.size(d);
  return L;
}

// The kernels of the selected level (quant/kernels/fake_quant*.cpp).
template <bool kMask>
void fq_forward(float* out, uint64_t* mask, const float* x, int64_t b, int64_t e, const Layout& L, const Chan* ch) {
  fq::fake_quant_kernels().forward[kMask](out, mask, x, b, e, L, ch);
}

template <bool kAssign>
void ste_backward(float* dx, const float* dout, const uint64_t* mask, int64_t wb, int64_t we, int64_t n) {
  fq::fake_quant_kernels().ste_backward[kAssign](dx, dout, mask, wb, we, n);
}

template <bool kDx, bool kAssign>
void lsq_backward(float* dx, double* ds, const float* dout, const float* x, int64_t b, int64_t e, const Layout& L,
                  const Chan* ch, bool need_ds) {
  fq::fake_quant_kernels().lsq_backward[kDx][kAssign](dx, ds, dout, x, b, e, L, ch, need_ds);
}

// The forward on the pool, in chunks of whole mask words.
void run_forward(float* po, uint64_t* mask, const float* px, const Layout& L, const std::vector<Chan>& ch) {
  const int64_t words = (L.n + 63) / 64;
  parallel_for(words, kGrain / 64, [&](int64_t wb, int64_t we) {
    const int64_t b = wb * 64, e = std::min(L.n, we * 64);
    if (mask) {
      fq_forward<true>(po, mask, px, b, e, L, ch.data());
    } else {
      fq_forward<false>(po, nullptr, px, b, e, L, ch.data());
    }
  });
}

// The layout of a raw call: per tensor when there is one QParams.
Layout raw_layout(int64_t n, size_t nq, int64_t inner) {
  Layout L;
  L.n = n;
  L.channels = static_cast<int64_t>(nq);
  L.inner = nq == 1 ? std::max<int64_t>(n, 1) : inner;
  return L;
}

std::vector<Chan> lsq_chans(const char* op, const float* scale, const std::vector<QParams>& qp) {
  std::vector<Chan> ch;
  // A learned scale may step to <= 0; use eps there as PyTorch's learnable fake-quant does.
  for (size_t c = 0; c < qp.size(); ++c) ch.push_back(make_chan(op, std::max(scale[c], kEps), qp[c]));
  return ch;
}

}  // namespace

void fake_quantize_forward(float* out, uint64_t* mask, const float* x, const std::vector<QParams>& qp, int64_t n,
                           int64_t inner) {
  std::vector<Chan> ch;
  for (const QParams& q : qp) ch.push_back(make_chan("fake_quantize", q.scale, q));
  run_forward(out, mask, x, raw_layout(n, qp.size(), inner), ch);
}

void fake_quantize_backward(float* dx, bool assign_dx, const float* dout, const uint64_t* mask, int64_t n) {
  parallel_for((n + 63) / 64, kGrain / 64, [&](int64_t wb, int64_t we) {
    if (assign_dx) {
      ste_backward<true>(dx, dout, mask, wb, we, n);
    } else {
      ste_backward<false>(dx, dout, mask, wb, we, n);
    }
  });
}

void fake_quantize_lsq_forward(float* out, const float* x, const float* scale, const std::vector<QParams>& qp,
                               int64_t n, int64_t inner) {
  run_forward(out, nullptr, x, raw_layout(n, qp.size(), inner), lsq_chans("fake_quantize_lsq", scale, qp));
}

void fake_quantize_lsq_backward(float* dx, float* dscale, bool assign_dx, const float* dout, const float* x,
                                const float* scale, const std::vector<QParams>& qp, int64_t n, int64_t inner) {
  const Layout L = raw_layout(n, qp.size(), inner);
  const std::vector<Chan> ch = lsq_chans("fake_quantize_lsq", scale, qp);
  const bool need_dx = dx != nullptr, need_ds = dscale != nullptr;
  // The scale gradient is summed over fixed chunks of kGrain elements, whatever the thread count,
  // each into its own row of partial sums, then added in chunk order: the same bits for any number
  // of threads and any finishing order.
  const int64_t chunks = (L.n + kGrain - 1) / kGrain;
  std::vector<double> part(need_ds ? size_t(chunks) * L.channels : 0, 0.0);
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t k = cb; k < ce; ++k) {
      const int64_t b = k * kGrain, e = std::min(L.n, b + kGrain);
      double* ds_k = need_ds ? part.data() + k * L.channels : nullptr;
      if (!need_dx) {
        lsq_backward<false, false>(dx, ds_k, dout, x, b, e, L, ch.data(), need_ds);
      } else if (assign_dx) {
        lsq_backward<true, true>(dx, ds_k, dout, x, b, e, L, ch.data(), need_ds);
      } else {
        lsq_backward<true, false>(dx, ds_k, dout, x, b, e, L, ch.data(), need_ds);
      }
    }
  });
  if (need_ds) {
    std::vector<double> ds(L.channels, 0.0);
    for (int64_t k = 0; k < chunks; ++k)
      for (int64_t c = 0; c < L.channels; ++c) ds[c] += part[k * L.channels + c];
    // LSQ: 1 / sqrt(values per scale * qmax)
    const double per = static_cast<double>(L.n) / static_cast<double>(qp.size());
    for (int64_t c = 0; c < L.channels; ++c) {
      const float grad_scale = static_cast<float>(1.0 / std::sqrt(std::max(per, 1.0) * std::max(qp[c].qmax, 1)));
      dscale[c] += static_cast<float>(ds[c] * grad_scale);
    }
  }
}

Tensor fake_quantize(const Tensor& x, const std::vector<QParams>& qp, int axis) {
  const Layout L = layout_of("fake_quantize", x, qp.size(), axis);
  Tensor out = Tensor::empty(x.shape());
  // The STE mask, one bit per element, only when a gradient will be needed:
  // backward reads nothing else (not x, not the output).
  std::shared_ptr<uint64_t[]> mask;
  if (needs_grad({&x})) mask.reset(new uint64_t[(L.n + 63) / 64]);
  fake_quantize_forward(out.data(), mask.get(), x.data(), qp, L.n, L.inner);
  if (!mask) return out;
  const int64_t n = L.n;
  record_op(out, {x}, [mask, n](AutogradMeta& o, const BackwardInputs& in) {
    bool assign;
    float* dx = in[0]->grad_for_write(&assign);
    fake_quantize_backward(dx, assign, o.grad->data(), mask.get(), n);
  });
  return out;
}

Tensor fake_quantize_lsq(const Tensor& x, const Tensor& scale, const std::vector<QParams>& qp, int axis) {
  const Layout L = layout_of("fake_quantize_lsq", x, qp.size(), axis);
  QF_CHECK(scale.numel() == static_cast<int64_t>(qp.size()), "fake_quantize_lsq: scale has shape " +
                                                                 shape_str(scale.shape()) + " but there are " +
                                                                 std::to_string(qp.size()) + " channel qparams");
  Tensor out = Tensor::empty(x.shape());
  fake_quantize_lsq_forward(out.data(), x.data(), scale.data(), qp, L.n, L.inner);
  if (!needs_grad({&x, &scale})) return out;
  // Backward recomputes the rounding from x and the scale as forward saw it.
  record_op(out, {x, scale}, [xs = x.detach(), s = scale.clone(), qp, L](AutogradMeta& o, const BackwardInputs& in) {
    bool assign = false;
    float* dx = in[0] ? in[0]->grad_for_write(&assign) : nullptr;
    fake_quantize_lsq_backward(dx, in[1] ? in[1]->grad_data() : nullptr, assign, o.grad->data(), xs.data(), s.data(),
                               qp, L.n, L.inner);
  });
  return out;
}

FakeQuantize::FakeQuantize(std::shared_ptr<Observer> observer, bool lsq) : observer_(std::move(observer)), lsq_(lsq) {
  QF_CHECK(observer_ != nullptr, "FakeQuantize: needs an observer");
  set_child("activation_post_process", observer_);
  const QScheme& s = observer_->scheme();
  const int64_t c = s.per_channel ? s.channels : 1;
  // PyTorch's initial values: scale 1, zero point 0.
  scale =
      lsq ? register_parameter("scale", Tensor::full({c}, 1.0f)) : register_buffer("scale", Tensor::full({c}, 1.0f));
  zero_point = register_buffer("zero_point", Tensor::zeros({c}));
}

int FakeQuantize::axis() const { return observer_->scheme().per_channel ? observer_->scheme().axis : -1; }

std::vector<QParams> FakeQuantize::qparams() const {
  const QScheme& s = observer_->scheme();
  std::vector<QParams> out;
  for (int64_t c = 0; c < scale.numel(); ++c) {
    const float sc = lsq_ ? std::max(scale.data()[c], kEps) : scale.data()[c];
    out.push_back(QParams{sc, round_to_int(zero_point.data()[c]), s.qmin, s.qmax});
  }
  return out;
}

void FakeQuantize::update_from_observer() {
  const std::vector<QParams> qp = observer_->calculate_qparams();
  QF_CHECK(static_cast<int64_t>(qp.size()) == scale.numel(),
           "FakeQuantize: the observer gave " + std::to_string(qp.size()) + " qparams for a scale of shape " +
               shape_str(scale.shape()));
  for (size_t c = 0; c < qp.size(); ++c) {
    scale.data()[c] = qp[c].scale;
    zero_point.data()[c] = static_cast<float>(qp[c].zero_point);
  }
}

Tensor FakeQuantize::forward(const Tensor& x) {
  if (observer_enabled && training()) {
    // Whether the observer had data before this batch comes from its buffers, so
    // a learned LSQ scale survives a checkpoint round trip.
    const bool had_data = observer_->has_data();
    observer_->observe(x);
    if (observer_->has_data()) {
      if (!lsq_) {
        update_from_observer();
      } else if (!initialised_ && !had_data) {  // LSQ: the observer only initialises the scale
        update_from_observer();
        initialised_ = true;
      }
    }
  }
  if (!fake_quant_enabled) return x;
  return lsq_ ? fake_quantize_lsq(x, scale, qparams(), axis()) : fake_quantize(x, qparams(), axis());
}

}  // namespace qforge::quant

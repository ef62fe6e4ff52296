#include "core/ops/loss.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"

namespace qforge {
void log_softmax_forward(float* out, const float* x, int64_t n, int64_t k) {
  // out_row = x_row - logsumexp(x_row)
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x + i * k;
    float mx = r[0];
    for (int64_t j = 1; j < k; ++j) mx = std::max(mx, r[j]);
    double s = 0;
    for (int64_t j = 0; j < k; ++j) s += std::exp(static_cast<double>(r[j] - mx));
    float lse = mx + static_cast<float>(std::log(s));
    for (int64_t j = 0; j < k; ++j) out[i * k + j] = r[j] - lse;
  }
}

void log_softmax_backward(float* dx, const float* dout, const float* out, int64_t n, int64_t k) {
  // dx = dy - softmax * sum(dy), softmax = exp(out)
  const float* g = dout;
  const float* y = out;
  for (int64_t i = 0; i < n; ++i) {
    float s = 0;
    for (int64_t j = 0; j < k; ++j) s += g[i * k + j];
    for (int64_t j = 0; j < k; ++j) dx[i * k + j] += g[i * k + j] - std::exp(y[i * k + j]) * s;
  }
}

namespace {
// The smoothed target: q = on for the label, off elsewhere.
struct Target {
  float on, off;
};
Target target_of(float label_smoothing, int64_t k) {
  const float off = label_smoothing / k;
  return {1.f - label_smoothing + off, off};
}
}  // namespace

float cross_entropy_forward(float* logp, const float* logits, const int32_t* labels, float label_smoothing, int64_t n,
                            int64_t k) {
  log_softmax_forward(logp, logits, n, k);
  const auto [on, off] = target_of(label_smoothing, k);
  double loss = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) loss -= (j == labels[i] ? on : off) * logp[i * k + j];
  return static_cast<float>(loss / n);
}

void cross_entropy_backward(float* dlogits, float dout, const float* logp, const int32_t* labels, float label_smoothing,
                            int64_t n, int64_t k) {
  // dlogits = (softmax - q) / N
  const auto [on, off] = target_of(label_smoothing, k);
  const float g = dout / n;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) dlogits[i * k + j] += g * (std::exp(logp[i * k + j]) - (j == labels[i] ? on : off));
}

Tensor log_softmax(const Tensor& x) {
  QF_CHECK(x.dim() == 2, "log_softmax: expected (N,K), got " + shape_str(x.shape()));
  const int64_t n = x.size(0), k = x.size(1);
  Tensor out = Tensor::empty(x.shape());
  log_softmax_forward(out.data(), x.data(), n, k);
  if (!needs_grad({&x})) return out;
  // Backward reads the output, not x.
  record_op(out, {x}, [n, k, y = out.detach()](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
    log_softmax_backward(in[0]->grad_data(), o.grad->data(), y.data(), n, k);
  });
  return out;
}

Tensor cross_entropy(const Tensor& logits, const std::vector<int32_t>& labels, float label_smoothing) {
  QF_CHECK(logits.dim() == 2, "cross_entropy: expected logits (N,K), got " + shape_str(logits.shape()));
  const int64_t n = logits.size(0), k = logits.size(1);
  QF_CHECK(static_cast<int64_t>(labels.size()) == n,
           "cross_entropy: " + std::to_string(labels.size()) + " labels for logits " + shape_str(logits.shape()));
  QF_CHECK(label_smoothing >= 0.f && label_smoothing < 1.f, "cross_entropy: label_smoothing must be in [0, 1)");
  for (int32_t l : labels)
    QF_CHECK(l >= 0 && l < k,
             "cross_entropy: label " + std::to_string(l) + " out of range for " + std::to_string(k) + " classes");
  auto logp = std::make_shared<std::vector<float>>(n * k);
  Tensor out =
      Tensor::full({1}, cross_entropy_forward(logp->data(), logits.data(), labels.data(), label_smoothing, n, k));
  // Backward reads log softmax(logits), not the logits.
  record_op(out, {logits},
            [n, k, label_smoothing, logp, labels](AutogradMeta& o, const std::vector<AutogradMeta*>& in) {
              cross_entropy_backward(in[0]->grad_data(), o.grad->data()[0], logp->data(), labels.data(),
                                     label_smoothing, n, k);
            });
  return out;
}

}  // namespace qforge

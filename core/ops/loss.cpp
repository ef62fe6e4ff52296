#include "core/ops/loss.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"

namespace qforge {
namespace {

// out_row = x_row - logsumexp(x_row)
void log_softmax_rows(float* out, const float* x, int64_t n, int64_t k) {
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

}  // namespace

Tensor log_softmax(const Tensor& x) {
  QF_CHECK(x.dim() == 2, "log_softmax: expected (N,K), got " + shape_str(x.shape()));
  const int64_t n = x.size(0), k = x.size(1);
  Tensor out = Tensor::empty(x.shape());
  log_softmax_rows(out.data(), x.data(), n, k);
  // dx = dy - softmax * sum(dy), softmax = exp(out)
  record_op(out, {x}, [n, k](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    const float* g = o.grad->data();
    const float* y = o.data();
    float* dx = in[0]->grad_data();
    for (int64_t i = 0; i < n; ++i) {
      float s = 0;
      for (int64_t j = 0; j < k; ++j) s += g[i * k + j];
      for (int64_t j = 0; j < k; ++j) dx[i * k + j] += g[i * k + j] - std::exp(y[i * k + j]) * s;
    }
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
  log_softmax_rows(logp->data(), logits.data(), n, k);
  const float off = label_smoothing / k, on = 1.f - label_smoothing + off;
  double loss = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) loss -= (j == labels[i] ? on : off) * (*logp)[i * k + j];
  Tensor out = Tensor::full({1}, static_cast<float>(loss / n));
  // dlogits = (softmax - q) / N
  record_op(out, {logits}, [n, k, on, off, logp, labels](TensorImpl& o, const std::vector<TensorImpl*>& in) {
    const float g = o.grad->data()[0] / n;
    float* dx = in[0]->grad_data();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) dx[i * k + j] += g * (std::exp((*logp)[i * k + j]) - (j == labels[i] ? on : off));
  });
  return out;
}

}  // namespace qforge

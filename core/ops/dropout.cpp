#include "core/ops/dropout.h"

#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"

namespace qforge {
namespace {

// 1 / (1 - p), and 0 for p = 1 where every element is dropped (avoids 0 * inf).
float keep_scale(float p) { return p >= 1.f ? 0.f : 1.f / (1.f - p); }

// A uniform double in [0, 1) from the top 53 bits: the same on every standard
// library, unlike std::uniform_real_distribution, so masks repeat across builds.
double unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

void dropout_forward(float* out, uint8_t* mask, const float* inp, int64_t n, float p, std::mt19937_64& rng) {
  const float s = keep_scale(p);
  // Serial: the mask must not depend on the thread count.
  for (int64_t i = 0; i < n; ++i) {
    mask[i] = unit(rng) >= p ? 1 : 0;
    out[i] = mask[i] ? inp[i] * s : 0.f;
  }
}

void dropout_backward(float* dinp, const float* dout, const uint8_t* mask, int64_t n, float p) {
  const float s = keep_scale(p);
  for (int64_t i = 0; i < n; ++i)
    if (mask[i]) dinp[i] += dout[i] * s;
}

Tensor dropout(const Tensor& x, float p, std::mt19937_64& rng) {
  QF_CHECK(p >= 0.f && p <= 1.f, "dropout: p must lie in [0, 1], got " + std::to_string(p));
  Tensor out = Tensor::empty(x.shape());
  auto mask = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(x.numel()));
  dropout_forward(out.data(), mask->data(), x.data(), x.numel(), p, rng);
  record_op(out, {x}, [mask, p](AutogradMeta& o, const BackwardInputs& in) {
    dropout_backward(in[0]->grad_data(), o.grad->data(), mask->data(), o.numel(), p);
  });
  return out;
}

}  // namespace qforge

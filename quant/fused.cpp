#include "quant/fused.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/ops/batchnorm.h"
#include "core/ops/channel.h"
#include "core/ops/conv2d.h"
#include "core/ops/elementwise.h"
#include "core/ops/linear.h"

namespace qforge::quant {

namespace {

// 1 / scale, but 0 for a channel whose 1 / scale is not finite: a BN gamma of exactly 0 (weight decay
// pulls gammas towards it), or one so small the reciprocal overflows. Such a channel's folded weight
// is 0 (or nearly), so its conv output times 0 is 0 rather than 0 * inf = NaN, and BN then gives its
// bias alone, which is what BN computes with gamma = 0. No gradient flows through those channels'
// scale. Without such a channel it is reciprocal(scale) itself, the same bits as before.
Tensor guarded_reciprocal(const Tensor& scale) {
  const int64_t n = scale.numel();
  std::vector<float> dead(n, 0.0f), keep(n, 1.0f);
  bool any = false;
  for (int64_t c = 0; c < n; ++c)
    if (!std::isfinite(1.f / scale.data()[c])) dead[c] = 1.0f, keep[c] = 0.0f, any = true;
  if (!any) return reciprocal(scale);
  // 1 / (scale + 1) is finite there; the product with keep zeroes it and its gradient.
  return mul(reciprocal(add(scale, Tensor::from({n}, dead))), Tensor::from({n}, keep));
}

}  // namespace

Tensor apply_act(const Tensor& x, Act a) {
  if (a == Act::kReLU) return relu(x);
  if (a == Act::kReLU6) return relu6(x);
  return x;
}

ConvBnAct::ConvBnAct(std::shared_ptr<nn::Conv2d> c, std::shared_ptr<nn::BatchNorm2d> b, Act a)
    : conv(std::move(c)), bn(std::move(b)), act(a) {
  register_module("conv", conv);
  if (bn) register_module("bn", bn);
}

std::string ConvBnAct::type() const { return std::string(bn ? "ConvBn" : "Conv") + act_type_suffix(act) + "2d"; }

void ConvBnAct::set_weight_fake_quant(std::shared_ptr<FakeQuantize> fq) {
  weight_fake_quant = fq;
  register_module("weight_fake_quant", fq);
}

std::pair<Tensor, Tensor> ConvBnAct::folded_weight_bias() const {
  const int oc = conv->weight.size(0);
  Tensor w = conv->weight.clone(), b = Tensor::zeros({oc});
  if (conv->bias.defined()) b.copy_from(conv->bias);
  if (!bn) return {w, b};
  const int64_t per = w.numel() / oc;
  for (int c = 0; c < oc; ++c) {
    // The same float operations as forward's scale, so the folded weight has the same bits.
    float k = bn->weight.data()[c] * (1.f / std::sqrt(bn->running_var.data()[c] + bn->eps));
    for (int64_t i = 0; i < per; ++i) w.data()[c * per + i] *= k;
    b.data()[c] = (b.data()[c] - bn->running_mean.data()[c]) * k + bn->bias.data()[c];
  }
  return {w, b};
}

void ConvBnAct::fold_bn() {
  if (!bn) return;
  auto [w, b] = folded_weight_bias();
  conv->weight.copy_from(w);
  if (!conv->bias.defined()) {
    nn::Conv2dOptions o = conv->options();
    o.bias = true;
    std::mt19937_64 rng(0);
    auto nc = std::make_shared<nn::Conv2d>(o, rng);
    nc->weight.copy_from(w);
    conv = nc;
    set_child("conv", conv);
  }
  conv->bias.copy_from(b);
  bn.reset();
  remove_child("bn");
}

Tensor ConvBnAct::forward(const Tensor& x) {
  auto fq = [&](const Tensor& w) { return weight_fake_quant ? (*weight_fake_quant)(w) : w; };
  if (!bn) {
    // Inference with BN folded: bias and activation in the convolution's one output pass.
    if (act != Act::kNone && !weight_fake_quant && !needs_grad({&x, &conv->weight, &conv->bias}))
      return conv2d_bias_relu(x, conv->weight, conv->bias, conv->geometry(),
                              act == Act::kReLU6 ? 6.f : std::numeric_limits<float>::infinity(),
                              conv->filter_cache());
    return apply_act(conv2d(x, fq(conv->weight), conv->bias, conv->geometry(), conv->filter_cache()), act);
  }
  // scale = gamma / running_std: fake-quantize the folded weight, divide the output back, then BN.
  const int oc = conv->weight.size(0);
  Tensor inv_std = Tensor::empty({oc});
  for (int c = 0; c < oc; ++c) inv_std.data()[c] = 1.f / std::sqrt(bn->running_var.data()[c] + bn->eps);
  Tensor scale = mul(bn->weight, inv_std);
  Tensor y = conv2d(x, fq(scale_channels(conv->weight, scale, 0)), Tensor(), conv->geometry(), conv->filter_cache());
  bool batch_stats = training() && !freeze_bn;
  if (conv->bias.defined()) {
    y = add_channels(scale_channels(y, guarded_reciprocal(scale), 1), conv->bias, 1);
    y = batch_norm(y, bn->weight, bn->bias, bn->running_mean, bn->running_var, batch_stats, bn->momentum, bn->eps);
  } else {
    // BN(y / scale) in one pass: the division happens inside batch_norm.
    y = batch_norm(y, bn->weight, bn->bias, bn->running_mean, bn->running_var, batch_stats, bn->momentum, bn->eps,
                   guarded_reciprocal(scale));
  }
  return apply_act(y, act);
}

LinearAct::LinearAct(std::shared_ptr<nn::Linear> l, Act a) : linear(std::move(l)), act(a) {
  register_module("linear", linear);
}

std::string LinearAct::type() const { return std::string("Linear") + act_type_suffix(act); }

void LinearAct::set_weight_fake_quant(std::shared_ptr<FakeQuantize> fq) {
  weight_fake_quant = fq;
  register_module("weight_fake_quant", fq);
}

Tensor LinearAct::forward(const Tensor& x) {
  Tensor w = weight_fake_quant ? (*weight_fake_quant)(linear->weight) : linear->weight;
  return apply_act(qforge::linear(x, w, linear->bias), act);
}

}  // namespace qforge::quant

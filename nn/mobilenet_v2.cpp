#include "nn/mobilenet_v2.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"

namespace qforge::nn {
namespace {

// Conv (no bias) + BN + ReLU6, torchvision's Conv2dNormActivation: a Sequential 0/1/2.
ModulePtr conv_bn_relu6(int in, int out, int kernel, int stride, int groups, std::mt19937_64& rng) {
  Conv2dOptions o{in, out, kernel, stride, (kernel - 1) / 2};
  o.geometry.groups = groups;
  return std::make_shared<Sequential>(std::vector<ModulePtr>{
      std::make_shared<Conv2d>(o, rng), std::make_shared<BatchNorm2d>(out), std::make_shared<ReLU6>()});
}

}  // namespace

int make_divisible(double v, int divisor) {
  int r = std::max(divisor, static_cast<int>(v + divisor / 2.0) / divisor * divisor);
  if (r < 0.9 * v) r += divisor;
  return r;
}

InvertedResidual::InvertedResidual(int in, int out, int stride, int expand_ratio, std::mt19937_64& rng)
    : residual_(stride == 1 && in == out) {
  QF_CHECK(stride == 1 || stride == 2, "InvertedResidual: stride must be 1 or 2, got " + std::to_string(stride));
  const int hidden = static_cast<int>(std::lround(in * static_cast<double>(expand_ratio)));
  auto conv = std::make_shared<Sequential>();
  if (expand_ratio != 1) conv->append(conv_bn_relu6(in, hidden, 1, 1, 1, rng));
  conv->append(conv_bn_relu6(hidden, hidden, 3, stride, hidden, rng));               // depthwise
  conv->append(std::make_shared<Conv2d>(Conv2dOptions{hidden, out, 1, 1, 0}, rng));  // linear projection
  conv->append(std::make_shared<BatchNorm2d>(out));
  register_module("conv", conv);
  // Not a torchvision name and stateless: torchvision state dicts load unchanged.
  if (residual_) register_module("add", std::make_shared<Add>(false));
}

Tensor InvertedResidual::forward(const Tensor& x) {
  Tensor y = (*child("conv"))(x);
  if (!residual_) return y;
  return (*std::static_pointer_cast<Add>(child("add")))(x, y);  // torchvision: x + conv(x)
}

MobileNetV2::MobileNetV2(const MobileNetV2Config& cfg) : cfg_(cfg) {
  QF_CHECK(cfg.stem == "imagenet" || cfg.stem == "small",
           "mobilenet_v2: stem must be \"imagenet\" or \"small\", got \"" + cfg.stem + "\"");
  QF_CHECK(cfg.in_channels > 0 && cfg.num_classes > 0 && cfg.width_mult > 0,
           "mobilenet_v2: in_channels, num_classes and width_mult must be positive");
  QF_CHECK(cfg.dropout >= 0 && cfg.dropout <= 1,
           "mobilenet_v2: dropout must lie in [0, 1], got " + std::to_string(cfg.dropout));
  std::mt19937_64 rng(cfg.seed);
  const bool small = cfg.stem == "small";
  // expand ratio t, channels c, blocks n, stride s of the first block, per stage.
  struct Stage {
    int t, c, n, s;
  };
  const Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                          {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int in = make_divisible(32 * cfg.width_mult, 8);
  last_channel_ = make_divisible(1280 * std::max(1.0, cfg.width_mult), 8);

  register_module("quant", std::make_shared<Identity>());  // where the input is quantized
  auto features = std::make_shared<Sequential>();
  features->append(conv_bn_relu6(cfg.in_channels, in, 3, small ? 1 : 2, 1, rng));
  for (const Stage& st : stages) {
    const int out = make_divisible(st.c * cfg.width_mult, 8);
    for (int i = 0; i < st.n; ++i) {
      int stride = i == 0 ? st.s : 1;
      if (small && st.c == 24 && i == 0) stride = 1;  // features.2 keeps the 28-32 px resolution
      features->append(std::make_shared<InvertedResidual>(in, out, stride, st.t, rng));
      in = out;
    }
  }
  features->append(conv_bn_relu6(in, last_channel_, 1, 1, 1, rng));
  register_module("features", features);
  register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>());

  auto fc = std::make_shared<Linear>(last_channel_, cfg.num_classes, true, rng);
  // torchvision: Linear weights N(0, 0.01), biases zero (conv weights are already
  // kaiming-normal fan-out, BN ones and zeros, as it has them).
  std::normal_distribution<float> d(0.f, 0.01f);
  for (int64_t i = 0; i < fc->weight.numel(); ++i) fc->weight.data()[i] = d(rng);
  for (int64_t i = 0; i < fc->bias.numel(); ++i) fc->bias.data()[i] = 0.f;
  register_module("classifier", std::make_shared<Sequential>(
                                    std::vector<ModulePtr>{std::make_shared<Dropout>(cfg.dropout, rng()), fc}));
}

Tensor MobileNetV2::forward(const Tensor& x) {
  QF_CHECK(
      x.dim() == 4 && x.size(1) == cfg_.in_channels,
      "mobilenet_v2: expected input (N," + std::to_string(cfg_.in_channels) + ",H,W), got " + shape_str(x.shape()));
  Tensor y = (*child("quant"))(x);
  y = (*child("features"))(y);
  y = (*child("avgpool"))(y);
  return (*child("classifier"))(y.reshape({y.size(0), -1}));
}

std::shared_ptr<MobileNetV2> mobilenet_v2(const MobileNetV2Config& cfg) { return std::make_shared<MobileNetV2>(cfg); }

}  // namespace qforge::nn

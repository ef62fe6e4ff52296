#include "nn/resnet.h"

#include <cmath>

#include "core/error.h"
#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"

namespace qforge::nn {

BasicBlock::BasicBlock(int in, int out, int stride, std::mt19937_64& rng) {
  register_module("conv1", std::make_shared<Conv2d>(Conv2dOptions{in, out, 3, stride, 1}, rng));
  register_module("bn1", std::make_shared<BatchNorm2d>(out));
  register_module("relu", std::make_shared<ReLU>());
  register_module("conv2", std::make_shared<Conv2d>(Conv2dOptions{out, out, 3, 1, 1}, rng));
  register_module("bn2", std::make_shared<BatchNorm2d>(out));
  if (stride != 1 || in != out) {
    register_module("downsample", std::make_shared<Sequential>(std::vector<ModulePtr>{
                                      std::make_shared<Conv2d>(Conv2dOptions{in, out, 1, stride, 0}, rng),
                                      std::make_shared<BatchNorm2d>(out)}));
  }
  register_module("add_relu", std::make_shared<Add>(true));
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = (*child("relu"))((*child("bn1"))((*child("conv1"))(x)));
  out = (*child("bn2"))((*child("conv2"))(out));
  ModulePtr ds = find_child("downsample");
  Tensor identity = ds ? (*ds)(x) : x;
  return (*std::static_pointer_cast<Add>(child("add_relu")))(out, identity);
}

ResNet::ResNet(const ResNetConfig& cfg, const std::vector<int>& blocks) : cfg_(cfg) {
  QF_CHECK(cfg.stem == "imagenet" || cfg.stem == "small",
           "resnet: stem must be \"imagenet\" or \"small\", got \"" + cfg.stem + "\"");
  QF_CHECK(cfg.in_channels > 0 && cfg.num_classes > 0 && cfg.width > 0,
           "resnet: in_channels, num_classes and width must be positive");
  std::mt19937_64 rng(cfg.seed);
  auto ch = [&](int c) { return std::max(1, static_cast<int>(std::lround(c * cfg.width))); };
  register_module("quant", std::make_shared<Identity>());  // where the input is quantized
  if (cfg.stem == "imagenet") {
    register_module("conv1", std::make_shared<Conv2d>(Conv2dOptions{cfg.in_channels, ch(64), 7, 2, 3}, rng));
  } else {
    register_module("conv1", std::make_shared<Conv2d>(Conv2dOptions{cfg.in_channels, ch(64), 3, 1, 1}, rng));
  }
  register_module("bn1", std::make_shared<BatchNorm2d>(ch(64)));
  register_module("relu", std::make_shared<ReLU>());
  if (cfg.stem == "imagenet")
    register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
  else
    register_module("maxpool", std::make_shared<Identity>());
  int in = ch(64);
  const int widths[4] = {64, 128, 256, 512};
  for (int l = 0; l < 4; ++l) {
    auto layer = std::make_shared<Sequential>();
    for (int b = 0; b < blocks[l]; ++b) {
      int stride = (l > 0 && b == 0) ? 2 : 1;
      layer->append(std::make_shared<BasicBlock>(in, ch(widths[l]), stride, rng));
      in = ch(widths[l]);
    }
    register_module("layer" + std::to_string(l + 1), layer);
  }
  register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>());
  register_module("fc", std::make_shared<Linear>(in, cfg.num_classes, true, rng));
}

Tensor ResNet::forward(const Tensor& x) {
  QF_CHECK(x.dim() == 4 && x.size(1) == cfg_.in_channels,
           "resnet: expected input (N," + std::to_string(cfg_.in_channels) + ",H,W), got " + shape_str(x.shape()));
  Tensor y = (*child("quant"))(x);
  for (const char* name : {"conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"})
    y = (*child(name))(y);
  return (*child("fc"))(y.reshape({y.size(0), -1}));
}

std::shared_ptr<ResNet> resnet18(const ResNetConfig& cfg) {
  return std::make_shared<ResNet>(cfg, std::vector<int>{2, 2, 2, 2});
}

}  // namespace qforge::nn

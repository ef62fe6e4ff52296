// Conv2d layer: weight (OC, C/groups, KH, KW), optional bias (OC).
#pragma once
#include <random>

#include "core/ops/conv2d.h"
#include "nn/module.h"

namespace qforge::nn {

struct Conv2dOptions {
  int in_channels = 0, out_channels = 0, kernel = 1;
  ConvGeometry geometry;  // square: one stride, padding and dilation for both axes
  bool bias = false;

  Conv2dOptions() = default;
  // PyTorch's argument order: Conv2dOptions{in, out, kernel, stride, padding, dilation, groups, bias}.
  Conv2dOptions(int in, int out, int kernel_size, int stride = 1, int padding = 0, int dilation = 1, int groups = 1,
                bool has_bias = false)
      : in_channels(in),
        out_channels(out),
        kernel(kernel_size),
        geometry(ConvGeometry::square(stride, padding, dilation, groups)),
        bias(has_bias) {}
};

class Conv2d : public Module {
 public:
  Conv2d(const Conv2dOptions& o, std::mt19937_64& rng);
  std::string type() const override { return "Conv2d"; }
  Tensor forward(const Tensor& x) override;

  const Conv2dOptions& options() const { return opt_; }
  const ConvGeometry& geometry() const { return opt_.geometry; }
  Tensor weight, bias;  // bias undefined when the layer has none
  // Its filters prepared for inference calls (core/ops/conv2d.h), for the ops that run this layer's
  // weights (its own forward, quant's fused modules). A copy of the layer shares it, which stays
  // correct (each call checks the weights, unless frozen) but remakes the filters when the two
  // alternate.
  ConvFilterCache* filter_cache() const { return cache_.get(); }

 private:
  Conv2dOptions opt_;
  std::shared_ptr<ConvFilterCache> cache_ = make_conv_filter_cache();
};

// Freezes (or thaws) the filter caches of the model and every Conv2d in it (core/ops/conv2d.h:
// freeze_conv_filters), for a model that only runs inference from here on: its filters are made
// from the weights once. Returns how many layers it froze or thawed.
int freeze_conv_filters(Module& model, bool frozen = true);

}  // namespace qforge::nn

#include "nn/conv2d.h"

#include "core/error.h"
#include "nn/init.h"

namespace qforge::nn {

Conv2d::Conv2d(const Conv2dOptions& o, std::mt19937_64& rng) : opt_(o) {
  const int groups = o.geometry.groups;
  o.geometry.check("Conv2d");
  QF_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.kernel > 0 && o.in_channels % groups == 0 &&
               o.out_channels % groups == 0,
           "Conv2d: invalid channels " + std::to_string(o.in_channels) + "->" + std::to_string(o.out_channels) +
               " with groups=" + std::to_string(groups));
  weight = register_parameter("weight", Tensor::empty({o.out_channels, o.in_channels / groups, o.kernel, o.kernel}));
  kaiming_normal_fan_out(weight, rng);
  if (o.bias) {
    bias = register_parameter("bias", Tensor::empty({o.out_channels}));
    uniform_fan_in(bias, weight.numel() / o.out_channels, rng);
  }
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, geometry(), filter_cache()); }

int freeze_conv_filters(Module& model, bool frozen) {
  int n = 0;
  auto freeze = [&](Module& m) {
    if (auto* c = dynamic_cast<Conv2d*>(&m)) {
      qforge::freeze_conv_filters(*c->filter_cache(), frozen);
      ++n;
    }
  };
  freeze(model);
  for (auto& [name, m] : model.named_modules()) freeze(*m);
  return n;
}

}  // namespace qforge::nn

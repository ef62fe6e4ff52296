// SGD with momentum, Nesterov and weight decay, PyTorch's update rule:
//   g = grad + wd * p;  buf = momentum * buf + g (buf = g on the first step)
//   g = nesterov ? g + momentum * buf : buf;  p -= lr * g
// Weight decay can skip 1-D parameters (BatchNorm weights and biases, layer biases).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/module.h"

namespace qforge::optim {

struct SGDOptions {
  float lr = 0.1f, momentum = 0.f, weight_decay = 0.f;
  bool nesterov = false;
  bool decay_bn_and_bias = true;  // false: no weight decay on 1-D parameters
};

class SGD {
 public:
  SGD(const nn::NamedTensors& params, const SGDOptions& o);
  void zero_grad();
  void step();  // parameters without a gradient are left alone

  SGDOptions options;  // lr and momentum may change between steps (schedules)

  // Momentum buffers by parameter name, for checkpoints.
  nn::NamedTensors state() const;
  void load_state(const std::map<std::string, Tensor>& st, const std::string& source);

 private:
  struct Param {
    std::string name;
    Tensor p, buf;  // buf undefined until the first step
    bool decay;
  };
  std::vector<Param> params_;
};

}  // namespace qforge::optim

// SGD with momentum, Nesterov and weight decay, PyTorch's update rule:
//   g = grad + wd * p;  buf = momentum * buf + g (buf = g on the first step)
//   g = nesterov ? g + momentum * buf : buf;  p -= lr * g
// Weight decay can skip 1-D parameters (BatchNorm weights and biases, layer biases).
// Parameter groups give some parameters (a new head, say) their own lr and
// weight decay, as PyTorch's param_groups do for transfer learning.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "nn/module.h"

namespace qforge::optim {

// The parameters whose names match the glob `match` (fnmatch(3): *, ?, [...];
// "fc.*", "layer4.*.weight"). The first group that matches a name takes it;
// names no group matches follow SGDOptions. `lr` is the group's lr when options.lr is the
// one the optimizer was built with: a schedule that changes options.lr scales
// every group's lr in proportion. `weight_decay` replaces the options' (still
// not applied to 1-D parameters when decay_bn_and_bias is false).
struct ParamGroup {
  std::string match;
  std::optional<float> lr = std::nullopt, weight_decay = std::nullopt;
};

struct SGDOptions {
  float lr = 0.1f, momentum = 0.f, weight_decay = 0.f;
  bool nesterov = false;
  bool decay_bn_and_bias = true;  // false: no weight decay on 1-D parameters
};

class SGD {
 public:
  // Throws when a group matches no parameter (a misspelt pattern).
  SGD(const nn::NamedTensors& params, const SGDOptions& o, std::vector<ParamGroup> groups = {});
  void zero_grad();
  void step();  // parameters without a gradient are left alone

  // A parameter's lr and weight decay at the current options.lr (throws for an unknown name).
  float lr_of(const std::string& name) const;
  float weight_decay_of(const std::string& name) const;
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Per group, in order: how many parameters it took; then those left to the options.
  std::vector<int> group_sizes() const;

  SGDOptions options;  // lr and momentum may change between steps (schedules)

  // Momentum buffers by parameter name, for checkpoints.
  nn::NamedTensors state() const;
  void load_state(const std::map<std::string, Tensor>& st, const std::string& source);

 private:
  struct Param {
    std::string name;
    Tensor p, buf;  // buf undefined until the first step
    bool decay;
    int group;  // index into options.groups, or -1
  };
  const Param& find(const std::string& name) const;
  float lr_of(const Param& P) const;
  float decay_of(const Param& P) const;
  std::vector<ParamGroup> groups_;
  float base_lr_;  // options.lr at construction: group lrs are relative to it
  std::vector<Param> params_;
};

}  // namespace qforge::optim

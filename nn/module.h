// Module: a layer or a network. It owns named parameters, buffers and child
// modules, switches between training and evaluation, and exposes a state dict
// whose names follow torchvision ("layer1.0.conv1.weight").
//
//   auto net = resnet18({.in_channels = 1, .num_classes = 10, .stem = "small"});
//   net->train();
//   Tensor logits = (*net)(x);              // forward, then the post-process hook
//   for (auto& [name, t] : net->state_dict()) ...
//
// Quantization attaches an activation post-process (an observer or a fake-quant
// module) as the explicit field `post`, applied by operator() after forward.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace qforge::nn {

class Module;
using ModulePtr = std::shared_ptr<Module>;
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  virtual std::string type() const = 0;
  virtual Tensor forward(const Tensor& x) = 0;

  // forward, then the activation post-process when one is attached.
  Tensor operator()(const Tensor& x);

  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool training() const { return training_; }

  NamedTensors named_parameters(const std::string& prefix = "") const;  // recursive
  NamedTensors named_buffers(const std::string& prefix = "") const;
  NamedTensors state_dict() const;  // parameters and buffers, module by module
  std::vector<Tensor> parameters() const;
  // Copies values in place (parameters keep their identity). Names and shapes
  // must match; `source` (a file name) goes into the error messages. With
  // strict = false, missing and unexpected names are allowed. Names under a
  // `skip` prefix (see name_under) are neither loaded nor required, in the
  // model or in sd: the model keeps its own values there (a new head). Each
  // prefix must name something in the model. Returns the model's names skipped.
  std::vector<std::string> load_state_dict(const std::map<std::string, Tensor>& sd, const std::string& source,
                                           bool strict = true, const std::vector<std::string>& skip = {});

  const std::vector<std::pair<std::string, ModulePtr>>& children() const { return children_; }
  ModulePtr child(const std::string& name) const;        // throws if absent
  ModulePtr find_child(const std::string& name) const;   // null if absent
  void set_child(const std::string& name, ModulePtr m);  // replaces in place, or appends
  void insert_child_front(const std::string& name, ModulePtr m);
  void remove_child(const std::string& name);  // no-op when absent
  // Every module below this one (not this one), depth first, with dotted names.
  std::vector<std::pair<std::string, ModulePtr>> named_modules(const std::string& prefix = "") const;

  const ModulePtr& post() const { return post_; }
  void set_post(ModulePtr m);  // also visible as child "activation_post_process"

  const NamedTensors& own_parameters() const { return params_; }
  const NamedTensors& own_buffers() const { return buffers_; }

 protected:
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  void register_module(const std::string& name, ModulePtr m) { set_child(name, std::move(m)); }
  Tensor& parameter(const std::string& name);  // a registered parameter, to replace its handle

  bool training_ = true;

 private:
  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
  ModulePtr post_;
};

// Tracing, for the converter: while a Tracer is installed, each call of a
// module that is_leaf() accepts is recorded (its inputs and output, the
// post-process included) instead of descending into the modules it calls.
struct TraceEvent {
  const Module* module;
  std::vector<Tensor> inputs;
  Tensor output;
};

class Tracer {
 public:
  explicit Tracer(std::function<bool(const Module&)> is_leaf);
  ~Tracer();  // uninstalls
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;
  std::vector<TraceEvent> events;

  // Called by Module::operator() and Add: runs fn, recording it when m is a leaf.
  static Tensor call(const Module& m, std::vector<Tensor> inputs, const std::function<Tensor()>& fn);

 private:
  std::function<bool(const Module&)> is_leaf_;
  int depth_ = 0;
};

// True when `name` is `prefix` or lies below it: "fc" covers "fc.weight", not "fc2.weight".
bool name_under(const std::string& name, const std::string& prefix);

// Total element count of all parameters.
int64_t count_parameters(const Module& m);

}  // namespace qforge::nn

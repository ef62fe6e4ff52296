// The int8 runtime: runs an Int8Graph on the int8 kernels (quant/kernels),
// integer-only between the input Quantize and the output Dequantize.
//
//   Int8Runtime rt(load_int8_model("model.qfm"));
//   Tensor logits = rt.run(x);          // x (N,C,H,W) float, normalised as in training
//   size_t peak = rt.peak_bytes();      // weights + activation arena for the last shape
//
// Weights are packed once, at construction, for the selected ISA (zero-point
// corrections precomputed). The graph's nodes are typed (OpKind, attribute
// structs, Act: quant/graph.h), so run() dispatches on an enum and reads no JSON. Activation buffers are planned once
// per input shape: each value gets a slice of one arena, reused as soon as its last reader has run.
// Not thread-safe: run() re-plans and writes the one arena, so one Int8Runtime per calling thread.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "nn/module.h"
#include "quant/graph.h"
#include "quant/kernels/drivers.h"

namespace qforge::quant {

class Int8Runtime {
 public:
  explicit Int8Runtime(Int8Graph g, Isa isa = selected_isa());
  // taps (optional): every value by the name of the node that wrote it, dequantized to float NCHW.
  Tensor run(const Tensor& x, std::map<std::string, Tensor>* taps = nullptr);

  const Int8Graph& graph() const { return g_; }
  Isa isa() const { return isa_; }
  size_t weight_bytes() const { return weight_bytes_; }
  size_t arena_bytes() const { return plan_.arena; }
  size_t peak_bytes() const { return weight_bytes_ + plan_.arena; }
  // Residual joins (QAdd) that run inside the conv writing one of their inputs, when run() has no taps.
  int fused_adds() const;

  // Per-node wall time of run(), off by default (a clock read per node). A node whose work ran inside
  // another (a residual join fused into its conv) is not listed; its time is the conv's.
  struct NodeTime {
    std::string name, op, shape;  // shape: the output's NxCxHxW
    double seconds = 0;           // the median call (robust to a busy machine's preemptions)
    std::vector<double> calls;    // each call's seconds
  };
  void set_profiling(bool on);
  std::vector<NodeTime> profile() const;

 private:
  struct Dims {
    int n = 0, c = 0, h = 0, w = 0;
    size_t bytes(bool quantized) const { return static_cast<size_t>(n) * c * h * w * (quantized ? 1 : 4); }
  };
  struct Plan {
    int n = -1, h = -1, w = -1;
    bool fused = false;  // residual joins run inside their convs (not when taps are asked for)
    std::vector<Dims> dims;
    std::vector<size_t> offset;
    size_t arena = 0;
  };
  struct Prepared {  // per node, built at load
    PackedConvWeights conv;
    QConvParams conv_params;
    QLinearParams linear_params;
    DynamicLinearWeights dynamic;
    QAddParams add;
    std::vector<float> fweight, fbias;  // float Linear
    // A QConv2d whose only reader is a QAdd: that add's node, its other input, and its
    // parameters with the conv's output as input a. On the QAdd: the conv's node.
    int fuse_add = -1, residual = -1, fused_into = -1;
    QAddParams conv_add;
  };
  void find_fusions();
  void make_plan(int n, int h, int w, bool fused);

  Int8Graph g_;
  Isa isa_;
  std::vector<Prepared> prep_;
  Plan plan_;
  AlignedBytes arena_;
  bool profiling_ = false;
  std::vector<NodeTime> times_;  // per node, while profiling
  size_t weight_bytes_ = 0;
};

// The runtime as a Module, so evaluation and benchmarks treat float and int8 models alike.
class Int8Module : public nn::Module {
 public:
  explicit Int8Module(std::shared_ptr<Int8Runtime> rt) : rt_(std::move(rt)) {}
  std::string type() const override { return "Int8Graph"; }
  Tensor forward(const Tensor& x) override { return rt_->run(x); }
  Int8Runtime& runtime() { return *rt_; }

 private:
  std::shared_ptr<Int8Runtime> rt_;
};

}  // namespace qforge::quant

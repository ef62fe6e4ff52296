// The int8 runtime: runs an Int8Graph on the int8 kernels (quant/kernels),
// integer-only between the input Quantize and the output Dequantize.
//
//   Int8Runtime rt(load_int8_model("model.qfm"));
//   Tensor logits = rt.run(x);          // x (N,C,H,W) float, normalised as in training
//   size_t peak = rt.peak_bytes();      // weights + activation arena for the last shape
//
//   Int8Runtime::Context ctx;           // one per calling thread: its own plan and arena
//   Tensor y = rt.run(x, ctx);          // const: any number of threads at once on one runtime
//
// Weights are packed once, at construction, for the selected ISA (zero-point
// corrections precomputed). The graph's nodes are typed (OpKind, attribute
// structs, Act: quant/graph.h), so run() dispatches on an enum and reads no JSON. Activation buffers are planned once
// per input shape: each value gets a slice of one arena, reused as soon as its last reader has run.
// The plan and the arena live in a Context. run(x, ctx) only reads the runtime (graph, packed
// weights), so one runtime serves several threads at once, each with its own Context; a Context
// serves one call at a time. run(x) without a context uses the runtime's own, so it is for one
// thread at a time (as are set_profiling, profile and arena_bytes, which describe that context).
// The kernels split each op over the process pool (core/threads.h); an op whose thread finds the
// pool busy with another caller's op runs on that thread alone (the int8 kernels' bytes do not
// depend on how an op is split).
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
  // Per-node wall time of run(), off by default (a clock read per node). A node whose work ran inside
  // another (a residual join fused into its conv) is not listed; its time is the conv's.
  struct NodeTime {
    std::string name, op, shape;  // shape: the output's NxCxHxW
    double seconds = 0;           // the median call (robust to a busy machine's preemptions)
    std::vector<double> calls;    // each call's seconds
  };
  class Context;

  explicit Int8Runtime(Int8Graph g, Isa isa = selected_isa());
  Int8Runtime(const Int8Runtime&) = delete;  // a context remembers its runtime by identity
  Int8Runtime& operator=(const Int8Runtime&) = delete;
  ~Int8Runtime();

  // taps (optional): every value by the name of the node that wrote it, dequantized to float NCHW.
  Tensor run(const Tensor& x, Context& ctx, std::map<std::string, Tensor>* taps = nullptr) const;
  // x (n, C, h, w) float -> out (n, output_size(h, w)) float, both the caller's buffers.
  void run(const float* x, int n, int h, int w, float* out, Context& ctx) const;
  // With the runtime's own context: one thread at a time.
  Tensor run(const Tensor& x, std::map<std::string, Tensor>* taps = nullptr);

  const Int8Graph& graph() const { return g_; }
  Isa isa() const { return isa_; }
  size_t weight_bytes() const { return weight_bytes_; }
  size_t arena_bytes() const;  // of the runtime's own context, for its last shape
  size_t peak_bytes() const { return weight_bytes_ + arena_bytes(); }
  // Values per image of the output (the logits), for an input of h x w.
  int64_t output_size(int h, int w) const;
  // Residual joins (QAdd) that run inside the conv writing one of their inputs, when run() has no taps.
  int fused_adds() const;

  // The profiler of the runtime's own context (Context has its own for run(x, ctx)).
  void set_profiling(bool on);
  std::vector<NodeTime> profile() const;

 private:
  struct Dims {
    int n = 0, c = 0, h = 0, w = 0;
    size_t bytes(bool quantized) const { return static_cast<size_t>(n) * c * h * w * (quantized ? 1 : 4); }
  };
  struct Plan {
    uint64_t runtime = 0;  // the id of the runtime planned for (a context may move between runtimes)
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
  void make_plan(Plan& pl, int n, int h, int w, bool fused) const;
  void run_nodes(const float* x, int n, int h, int w, Context& ctx, std::map<std::string, Tensor>* taps) const;
  const float* output(const float* x, const Context& ctx) const;  // after run_nodes

  Int8Graph g_;
  Isa isa_;
  uint64_t id_;  // unique per runtime of the process
  std::vector<Prepared> prep_;
  size_t weight_bytes_ = 0;
  std::unique_ptr<Context> own_;  // run(x) without a context

 public:
  // A caller's scratch for run(): the activation plan for the last input shape, the arena it sizes,
  // and the per-node profiler. Cheap to make; grows to the shape's arena on first use. Movable,
  // usable with any runtime (re-plans when the runtime or the shape changes), one call at a time.
  class Context {
   public:
    size_t arena_bytes() const { return plan_.arena; }
    void set_profiling(bool on);
    std::vector<NodeTime> profile() const;

   private:
    friend class Int8Runtime;
    Plan plan_;
    AlignedBytes arena_;
    bool profiling_ = false;
    std::vector<NodeTime> times_;  // per node, while profiling
  };
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

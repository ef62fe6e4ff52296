// Define-by-run autograd. An op computes its result, then calls record_op()
// with its inputs and a backward closure that captures only what backward
// needs. The graph holds the inputs' autograd identities (AutogradMeta, in
// core/tensor.h), not their data: an input's data lives on only if the
// closure captured it. backward() on a scalar walks the recorded graph in reverse
// topological order; each closure reads the result's gradient and *adds* into
// its inputs' gradients. The graph is freed as it is walked, and gradients of
// intermediate results are dropped once used.
//
//   Tensor loss = cross_entropy(model.forward(x), labels);
//   loss.backward();               // parameters' grad() now hold dloss/dp
//   { NoGradGuard g; model.forward(x); }  // evaluation: nothing recorded
#pragma once
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace qforge {

// out is the result's identity (out.grad holds dL/dout); in[i] is the i-th
// input's identity when it needs a gradient, else nullptr.
using BackwardInputs = std::vector<AutogradMeta*>;
using BackwardFn = std::function<void(AutogradMeta& out, const BackwardInputs& in)>;

struct Node {
  std::vector<std::shared_ptr<AutogradMeta>> inputs;  // null where no gradient is needed
  BackwardFn backward;
};

bool grad_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when an op on these inputs must record history.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Attaches history to out if grad is enabled and any input requires a gradient.
void record_op(Tensor& out, std::initializer_list<Tensor> inputs, BackwardFn backward);

// Backward from a one-element tensor (its gradient is 1).
void run_backward(const Tensor& root);

// While one is alive, run_backward calls `hook` with each leaf that needs a gradient (a parameter)
// as soon as that gradient is complete, while the rest of backward still runs: data-parallel
// training starts reducing a bucket of gradients then (apps/data_parallel.h). One at a time.
class LeafGradHook {
 public:
  explicit LeafGradHook(std::function<void(AutogradMeta&)> hook);
  ~LeafGradHook();
  LeafGradHook(const LeafGradHook&) = delete;
  LeafGradHook& operator=(const LeafGradHook&) = delete;
};

}  // namespace qforge

#include "core/autograd.h"

#include <unordered_set>

#include "core/error.h"

namespace qforge {
namespace {
thread_local bool g_grad_enabled = true;
std::function<void(AutogradMeta&)>* g_leaf_hook = nullptr;
}

LeafGradHook::LeafGradHook(std::function<void(AutogradMeta&)> hook) {
  QF_CHECK(g_leaf_hook == nullptr, "LeafGradHook: one is already installed");
  g_leaf_hook = new std::function<void(AutogradMeta&)>(std::move(hook));
}
LeafGradHook::~LeafGradHook() {
  delete g_leaf_hook;
  g_leaf_hook = nullptr;
}

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record_op(Tensor& out, std::initializer_list<Tensor> inputs, BackwardFn backward) {
  if (!g_grad_enabled) return;
  bool any = false;
  auto node = std::make_shared<Node>();
  for (const Tensor& t : inputs) {
    bool need = t.defined() && t.requires_grad();
    node->inputs.push_back(need ? t.impl()->autograd : nullptr);
    any |= need;
  }
  if (!any) return;
  node->backward = std::move(backward);
  out.impl()->autograd->grad_fn = std::move(node);
  out.impl()->autograd->requires_grad = true;
}

void run_backward(const Tensor& root) {
  QF_CHECK(root.numel() == 1, "backward needs a one-element tensor, got shape " + shape_str(root.shape()));
  QF_CHECK(root.requires_grad(), "backward: the tensor has no autograd history (no input requires a gradient)");
  // Iterative DFS post-order: a node comes after everything that consumes it, reversed.
  // `order` keeps each identity alive until it is processed; consumers always come first,
  // so once processed nothing needs it and its memory can go.
  std::vector<std::shared_ptr<AutogradMeta>> order;
  std::unordered_set<AutogradMeta*> seen;
  const std::shared_ptr<AutogradMeta>& root_meta = root.impl()->autograd;
  std::vector<std::pair<std::shared_ptr<AutogradMeta>, size_t>> stack{{root_meta, 0}};
  seen.insert(root_meta.get());
  while (!stack.empty()) {
    auto& top = stack.back();
    AutogradMeta* t = top.first.get();
    if (t->grad_fn && top.second < t->grad_fn->inputs.size()) {
      std::shared_ptr<AutogradMeta> in = t->grad_fn->inputs[top.second++];
      if (in && seen.insert(in.get()).second) stack.push_back({std::move(in), 0});
    } else {
      order.push_back(std::move(top.first));
      stack.pop_back();
    }
  }
  root_meta->grad_data()[0] += 1.f;
  std::vector<AutogradMeta*> ins;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    std::shared_ptr<AutogradMeta> t = std::move(*it);
    if (!t->grad_fn) {  // a leaf: keeps its gradient, complete now (its readers all came first)
      if (g_leaf_hook && t->requires_grad && t->grad) (*g_leaf_hook)(*t);
      continue;
    }
    auto node = std::move(t->grad_fn);
    t->grad_fn.reset();
    if (t->grad) {
      ins.clear();
      for (auto& p : node->inputs) ins.push_back(p.get());
      node->backward(*t, ins);
    }
    t->grad.reset();  // an intermediate: its gradient is used up
  }
}

}  // namespace qforge

#include "quant/fuse.h"

#include "core/error.h"
#include "nn/layers.h"
#include "quant/fused.h"

namespace qforge::quant {
namespace {

template <class T>
std::shared_ptr<T> as(const nn::ModulePtr& m) {
  return std::dynamic_pointer_cast<T>(m);
}

Act act_of(const nn::ModulePtr& m) {
  if (as<nn::ReLU>(m)) return Act::kReLU;
  if (as<nn::ReLU6>(m)) return Act::kReLU6;
  return Act::kNone;
}

}  // namespace

int fuse_modules(nn::Module& root, bool qat) {
  QF_CHECK(qat || !root.training(),
           "fuse_modules for evaluation or PTQ folds BatchNorm: call eval() on the model first");
  int fused = 0;
  // Copy: the loop replaces children.
  auto kids = root.children();
  for (size_t i = 0; i < kids.size(); ++i) {
    auto& [name, m] = kids[i];
    auto next = [&](size_t k) -> nn::ModulePtr { return i + k < kids.size() ? kids[i + k].second : nullptr; };
    if (auto conv = as<nn::Conv2d>(m)) {
      auto bn = as<nn::BatchNorm2d>(next(1));
      size_t used = bn ? 2 : 1;
      Act act = act_of(next(used));
      if (act != Act::kNone) ++used;
      auto f = std::make_shared<ConvBnAct>(conv, bn, act);
      if (!qat) f->fold_bn();
      root.set_child(name, f);
      for (size_t k = 1; k < used; ++k) root.set_child(kids[i + k].first, std::make_shared<nn::Identity>());
      i += used - 1;
      ++fused;
    } else if (auto lin = as<nn::Linear>(m)) {
      Act act = act_of(next(1));
      root.set_child(name, std::make_shared<LinearAct>(lin, act));
      if (act != Act::kNone) root.set_child(kids[i + 1].first, std::make_shared<nn::Identity>()), ++i;
      ++fused;
    } else if (!as<ConvBnAct>(m) && !as<LinearAct>(m)) {
      fused += fuse_modules(*m, qat);
    }
  }
  root.train(root.training());  // new modules take the root's mode
  return fused;
}

}  // namespace qforge::quant

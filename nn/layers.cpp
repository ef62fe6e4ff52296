#include "nn/layers.h"

#include "core/error.h"
#include "core/ops/dropout.h"
#include "core/ops/elementwise.h"

namespace qforge::nn {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor ReLU6::forward(const Tensor& x) { return relu6(x); }
Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, args); }
Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return global_avg_pool2d(x); }

Dropout::Dropout(float p_, uint64_t seed) : p(p_), rng_(seed) {
  QF_CHECK(p >= 0.f && p <= 1.f, "Dropout: p must lie in [0, 1], got " + std::to_string(p));
}

Tensor Dropout::forward(const Tensor& x) { return training_ && p > 0.f ? dropout(x, p, rng_) : x; }

Tensor Flatten::forward(const Tensor& x) {
  QF_CHECK(x.dim() >= 1, "Flatten: scalar input");
  return x.reshape({x.size(0), -1});
}

Sequential::Sequential(std::vector<ModulePtr> mods) {
  for (auto& m : mods) append(std::move(m));
}

void Sequential::append(ModulePtr m) { register_module(std::to_string(children().size()), std::move(m)); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& [name, m] : children())
    if (name != "activation_post_process") y = (*m)(y);
  return y;
}

Tensor Add::forward(const Tensor&) { throw Error("Add takes two inputs: call it as add(a, b)"); }

Tensor Add::operator()(const Tensor& a, const Tensor& b) {
  return Tracer::call(*this, {a, b}, [&] {
    Tensor y = relu ? add_relu(a, b) : add(a, b);
    return post() ? post()->forward(y) : y;
  });
}

}  // namespace qforge::nn

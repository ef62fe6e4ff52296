#include "quant/dynamic.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/fused.h"

namespace qforge::quant {

DynamicQuantLinear::DynamicQuantLinear(const nn::Linear& src)
    : in_features(src.in_features()), out_features(src.out_features()) {
  weight.resize(static_cast<size_t>(in_features) * out_features);
  weight_scale.resize(out_features);
  bias.assign(out_features, 0.f);
  const float* w = src.weight.data();
  for (int o = 0; o < out_features; ++o) {
    float amax = 0;
    for (int k = 0; k < in_features; ++k) amax = std::max(amax, std::abs(w[o * in_features + k]));
    QParams qp = choose_qparams_symmetric(amax);
    weight_scale[o] = qp.scale;
    float inv = 1.f / qp.scale;
    for (int k = 0; k < in_features; ++k)
      weight[o * in_features + k] = static_cast<int8_t>(quantize_val(w[o * in_features + k], inv, 0, qp.qmin, qp.qmax));
    if (src.bias.defined()) bias[o] = src.bias.data()[o];
  }
  packed_ = pack_linear_dynamic(in_features, out_features, weight.data(), weight_scale.data(), bias.data());
}

Tensor DynamicQuantLinear::forward(const Tensor& x) {
  QF_CHECK(x.dim() == 2 && x.size(1) == in_features, "DynamicQuantLinear: input " + shape_str(x.shape()) +
                                                         " does not match in_features " + std::to_string(in_features));
  Tensor out = Tensor::empty({x.size(0), out_features});
  qlinear_dynamic(packed_, static_cast<int>(x.size(0)), x.data(), out.data());
  return out;
}

int quantize_dynamic(nn::Module& root, const std::set<std::string>& skip) {
  int n = 0;
  for (auto& [name, m] : root.named_modules()) {
    QF_CHECK(!std::dynamic_pointer_cast<LinearAct>(m),
             "quantize_dynamic: '" + name + "' is fused; dynamic quantization takes the float model, before fuse");
  }
  // Replace children by name in each parent. The list holds shared pointers, so a
  // replaced Linear stays alive while the loop still visits it.
  auto replace_in = [&](nn::Module& owner, const std::string& prefix) {
    for (auto [leaf, child] : owner.children()) {
      std::string name = prefix.empty() ? leaf : prefix + "." + leaf;
      auto lin = std::dynamic_pointer_cast<nn::Linear>(child);
      if (!lin || skip.count(name)) continue;
      owner.set_child(leaf, std::make_shared<DynamicQuantLinear>(*lin));
      ++n;
    }
  };
  auto modules = root.named_modules();
  replace_in(root, "");
  for (auto& [name, m] : modules) replace_in(*m, name);
  return n;
}

}  // namespace qforge::quant

// Dynamic quantization (torch.ao.quantization.quantize_dynamic): Linear layers
// with int8 per-channel weights; each call quantizes its input to uint8 from
// that batch's range and runs the int8 GEMM kernel, then dequantizes. The rest
// of the model stays float.
#pragma once
#include <set>
#include <string>

#include "nn/linear.h"
#include "quant/kernels/drivers.h"

namespace qforge::quant {

class DynamicQuantLinear : public nn::Module {
 public:
  explicit DynamicQuantLinear(const nn::Linear& src);
  std::string type() const override { return "DynamicQuantLinear"; }
  Tensor forward(const Tensor& x) override;  // inference only: no gradient

  int in_features = 0, out_features = 0;
  std::vector<int8_t> weight;       // (out, in)
  std::vector<float> weight_scale;  // (out)
  std::vector<float> bias;          // (out)

 private:
  DynamicLinearWeights packed_;
};

// Replaces every Linear (also inside LinearAct) whose name is not in skip; returns how many.
int quantize_dynamic(nn::Module& root, const std::set<std::string>& skip = {});

}  // namespace qforge::quant

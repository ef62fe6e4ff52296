// convert: a prepared model (PTQ-calibrated or QAT-trained) -> the int8 graph.
//
// The model is traced once in eval mode on a zero input of input_shape: every
// leaf module call (the quantized input, fused conv / linear, Add, pools, ...)
// becomes a node, connected by the tensors that flow between them. Weights are
// folded (BN from running statistics) and quantized exactly as the fake-quant
// simulation does, biases become int32 at s_in * s_w[c], and the output is
// dequantized to float logits. Each prepared module type has its converter (a
// table in convert.cpp): ConvBnAct (any groups: depthwise and grouped convs
// too; ReLU/ReLU6 become the output clamp), LinearAct, DynamicQuantLinear, Add
// (with or without ReLU), MaxPool2d, AdaptiveAvgPool2d, Identity / Flatten /
// Dropout (no-ops, or the input Quantize). A module no converter takes is
// named in the error, with the supported types.
#pragma once
#include <string>
#include <vector>

#include "nn/module.h"
#include "quant/graph.h"

namespace qforge::quant {

Int8Graph convert(nn::Module& prepared, const std::vector<int>& input_shape);

}  // namespace qforge::quant

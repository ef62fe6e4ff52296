// The activations a quantized conv or linear layer can fuse, and their one
// table of names: the int8 graph's attribute ("relu"), the fused module's
// type name ("ConvBnReLU2d", PyTorch's spelling) and the int8 clamp.
#pragma once
#include <cstdint>
#include <string>

#include "quant/qparams.h"

namespace qforge::quant {

enum class Act { kNone, kReLU, kReLU6 };

// "none", "relu", "relu6": the spelling in .qfm graphs.
const char* act_name(Act a);
// The inverse of act_name; throws Error("<what>: unknown activation '<name>'").
Act parse_act(const std::string& name, const std::string& what);
// "", "ReLU", "ReLU6": the part of a fused module's type name (ConvBnReLU2d, LinearReLU).
const char* act_type_suffix(Act a);

// The clamp [qmin, qmax] of the activation on the uint8 output grid `out`.
void act_clamp(Act a, const QParams& out, int32_t& qmin, int32_t& qmax);

}  // namespace qforge::quant

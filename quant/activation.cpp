#include "quant/activation.h"

#include "core/error.h"
#include "core/json_util.h"

namespace qforge::quant {
namespace {

struct ActNames {
  Act act;
  const char* name;         // graph attribute
  const char* type_suffix;  // module type names
};
constexpr ActNames kActs[] = {{Act::kNone, "none", ""}, {Act::kReLU, "relu", "ReLU"}, {Act::kReLU6, "relu6", "ReLU6"}};

const ActNames& names(Act a) {
  for (const auto& n : kActs)
    if (n.act == a) return n;
  throw Error("activation: invalid value " + std::to_string(static_cast<int>(a)));
}

}  // namespace

const char* act_name(Act a) { return names(a).name; }
const char* act_type_suffix(Act a) { return names(a).type_suffix; }

Act parse_act(const std::string& name, const std::string& what) {
  for (const auto& n : kActs)
    if (name == n.name) return n.act;
  throw Error(what + ": unknown activation '" + printable(name) + "' (expected none, relu or relu6)");
}

void act_clamp(Act a, const QParams& out, int32_t& qmin, int32_t& qmax) {
  qmin = 0;
  qmax = 255;
  if (a == Act::kReLU || a == Act::kReLU6) qmin = out.zero_point;
  if (a == Act::kReLU6) qmax = quantize_val(6.f, 1.f / out.scale, out.zero_point, 0, 255);
}

}  // namespace qforge::quant

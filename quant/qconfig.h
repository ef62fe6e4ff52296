// QConfig: how to quantize a layer, as torch.ao.quantization's qconfig: the
// observer factories for its activations and weights. A QConfigMapping gives
// the global qconfig, per-module overrides by name, and the modules to keep
// in float ("skip": e.g. "conv1" or "fc").
//
// From the config file's "quant" section:
//   "activation": {"observer": "histogram", "bins": 2048},
//   "weight": {"observer": "minmax", "per_channel": true, "lsq": false},
//   "skip": ["fc"],
//   "overrides": {"layer4.1.conv2": {"activation": {"observer": "percentile"}}}
//
// The keys, their defaults (QConfig's and ObserverSpec's initializers) and their
// checks are declared once, in qconfig_keys(); an override entry takes the same
// activation.* and weight.* keys as the global qconfig.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/config_keys.h"
#include "quant/observer.h"

namespace qforge::quant {

struct QConfig {
  ObserverSpec activation{"moving_average_minmax"};
  ObserverSpec weight{"minmax"};
  bool per_channel = true;  // weights
  bool lsq = false;         // learned step size (QAT)
};

struct QConfigMapping {
  QConfig global;
  std::map<std::string, QConfig> overrides;  // by module name
  std::set<std::string> skip;                // kept in float
  // The qconfig for a module, or null when it stays float.
  const QConfig* for_module(const std::string& name) const;
};

// The keys of the "quant" section that make a QConfigMapping, relative to the
// section: activation.*, weight.*, skip, overrides.
const config::KeySet& qconfig_keys();

// Reads the section's activation, weight, skip and overrides (its other keys
// belong to the caller and are ignored), checked against qconfig_keys(); keys
// left out keep QConfig's defaults. `source` names the file in errors.
QConfigMapping qconfig_from_json(const nlohmann::json& quant, const std::string& source);

}  // namespace qforge::quant

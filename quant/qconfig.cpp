#include "quant/qconfig.h"

#include "core/error.h"

namespace qforge::quant {

const QConfig* QConfigMapping::for_module(const std::string& name) const {
  if (skip.count(name)) return nullptr;
  auto it = overrides.find(name);
  return it != overrides.end() ? &it->second : &global;
}

namespace {

void read_observer(ObserverSpec& o, const nlohmann::json& j, const std::string& where) {
  for (auto& [k, v] : j.items()) {
    if (k == "observer")
      o.kind = v.get<std::string>();
    else if (k == "averaging_constant")
      o.averaging_constant = v.get<float>();
    else if (k == "bins")
      o.bins = v.get<int>();
    else if (k == "percentile")
      o.percentile = v.get<float>();
    else if (k == "per_channel" || k == "lsq")
      continue;  // weight options, read by the caller
    else
      throw Error(where + ": unknown observer option '" + k + "'");
  }
  // Validates the kind now, with a message naming the config key.
  try {
    make_observer(o, activation_scheme());
  } catch (const Error& e) {
    if (o.kind != "histogram" && o.kind != "percentile") throw Error(where + ": " + e.what());
  }
}

void read_qconfig(QConfig& q, const nlohmann::json& j, const std::string& where) {
  for (auto& [k, v] : j.items()) {
    if (k == "activation") {
      read_observer(q.activation, v, where + ".activation");
    } else if (k == "weight") {
      read_observer(q.weight, v, where + ".weight");
      if (v.contains("per_channel")) q.per_channel = v["per_channel"].get<bool>();
      if (v.contains("lsq")) q.lsq = v["lsq"].get<bool>();
      QF_CHECK(q.weight.kind == "minmax" || q.weight.kind == "moving_average_minmax",
               where + ".weight.observer: weights use minmax or moving_average_minmax, got \"" + q.weight.kind + "\"");
    } else if (k == "skip" || k == "overrides" || k == "calibration_batches" || k == "freeze_bn_epoch" ||
               k == "freeze_observer_epoch" || k == "mode") {
      continue;  // handled by the caller or by the command
    } else {
      throw Error(where + ": unknown key '" + k + "'");
    }
  }
}

}  // namespace

QConfigMapping qconfig_from_json_unchecked(const nlohmann::json& quant, const std::string& where);

QConfigMapping qconfig_from_json(const nlohmann::json& quant, const std::string& where) {
  try {
    return qconfig_from_json_unchecked(quant, where);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": a value has the wrong type (" + e.what() + ")");
  }
}

QConfigMapping qconfig_from_json_unchecked(const nlohmann::json& quant, const std::string& where) {
  QConfigMapping m;
  read_qconfig(m.global, quant, where);
  if (quant.contains("skip"))
    for (auto& s : quant["skip"]) m.skip.insert(s.get<std::string>());
  if (quant.contains("overrides"))
    for (auto& [name, v] : quant["overrides"].items()) {
      QF_CHECK(v.is_object(), where + ".overrides." + name + ": must be an object");
      QConfig q = m.global;
      read_qconfig(q, v, where + ".overrides." + name);
      m.overrides[name] = q;
    }
  return m;
}

}  // namespace qforge::quant

#include "quant/qconfig.h"

#include "core/error.h"

namespace qforge::quant {

const QConfig* QConfigMapping::for_module(const std::string& name) const {
  if (skip.count(name)) return nullptr;
  auto it = overrides.find(name);
  return it != overrides.end() ? &it->second : &global;
}

namespace {

using namespace config;

// What one module's qconfig may set: the global one and each override entry.
KeySet module_keys() {
  const QConfig d;
  const Range averaging = open_closed(0, 1);
  return KeySet({
      string("activation.observer", d.activation.kind, "how activation ranges are chosen",
             {"minmax", "moving_average_minmax", "histogram", "percentile"}),
      number("activation.averaging_constant", d.activation.averaging_constant,
             "moving_average_minmax: min += c * (batch_min - min)", averaging),
      integer("activation.bins", d.activation.bins, "histogram / percentile: histogram bins", at_least(1)),
      // make_observer takes [50, 100]: the range kept is [p(100 - pct), p(pct)].
      number("activation.percentile", d.activation.percentile, "percentile: keep [p(100-pct), p(pct)] of the values",
             closed(50, 100)),
      // Per-channel weight schemes support only the min/max observers.
      string("weight.observer", d.weight.kind, "how weight ranges are chosen", {"minmax", "moving_average_minmax"}),
      number("weight.averaging_constant", d.weight.averaging_constant,
             "moving_average_minmax: min += c * (batch_min - min)", averaging),
      boolean("weight.per_channel", d.per_channel, "one scale per output channel (else per tensor)"),
      boolean("weight.lsq", d.lsq, "QAT: learn the weight step size (LSQ)"),
  });
}

void read_observer(ObserverSpec& o, const nlohmann::json& j) {
  if (j.contains("observer")) o.kind = j["observer"];
  if (j.contains("averaging_constant")) o.averaging_constant = j["averaging_constant"];
  if (j.contains("bins")) o.bins = j["bins"];
  if (j.contains("percentile")) o.percentile = j["percentile"];
}

// j: a checked (possibly partial) object of module_keys().
void read_qconfig(QConfig& q, const nlohmann::json& j) {
  if (j.contains("activation")) read_observer(q.activation, j["activation"]);
  if (j.contains("weight")) {
    const auto& w = j["weight"];
    read_observer(q.weight, w);
    if (w.contains("per_channel")) q.per_channel = w["per_channel"];
    if (w.contains("lsq")) q.lsq = w["lsq"];
  }
}

}  // namespace

const KeySet& qconfig_keys() {
  static const KeySet keys = [] {
    KeySet ks = module_keys();
    ks.add(string_list("skip", {}, "modules kept in float, by name (e.g. conv1, fc)"));
    ks.add(map("overrides", "per-module qconfig by module name: {name: {activation: {...}, weight: {...}}}",
               std::make_shared<const KeySet>(module_keys())));
    return ks;
  }();
  return keys;
}

QConfigMapping qconfig_from_json(const nlohmann::json& quant, const std::string& source) {
  QF_CHECK(quant.is_object(), "key 'quant' in " + source + " must be an object");
  nlohmann::json mine = nlohmann::json::object();
  for (const char* k : {"activation", "weight", "skip", "overrides"})
    if (quant.contains(k)) mine[k] = quant[k];
  nlohmann::json checked;
  qconfig_keys().merge(checked, mine, "quant", source);

  QConfigMapping m;
  read_qconfig(m.global, checked);
  if (checked.contains("skip"))
    for (auto& s : checked["skip"]) m.skip.insert(s.get<std::string>());
  if (checked.contains("overrides"))
    for (auto& [name, v] : checked["overrides"].items()) {
      QConfig q = m.global;
      read_qconfig(q, v);
      m.overrides[name] = q;
    }
  return m;
}

}  // namespace qforge::quant

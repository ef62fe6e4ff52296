#include "quant/graph.h"

#include <set>

#include "core/error.h"

namespace qforge::quant {

using nlohmann::json;

const nn::StEntry& Int8Graph::tensor(const GraphNode& n, const std::string& what) const {
  auto it = tensors.find(n.name + "." + what);
  QF_CHECK(it != tensors.end(), "int8 graph: node '" + n.name + "' (" + n.op + ") has no tensor '" + what + "'");
  return it->second;
}

json Int8Graph::to_json() const {
  json vals = json::array();
  for (auto& v : values) {
    if (v.quantized)
      vals.push_back({{"dtype", "u8"}, {"scale", v.qp.scale}, {"zero_point", v.qp.zero_point}});
    else
      vals.push_back({{"dtype", "f32"}});
  }
  json nodes_j = json::array();
  for (auto& n : nodes)
    nodes_j.push_back({{"op", n.op}, {"name", n.name}, {"inputs", n.inputs}, {"output", n.output}, {"attrs", n.attrs}});
  return {{"format", "qforge-int8"}, {"version", kVersion},        {"values", vals},    {"nodes", nodes_j},
          {"output", output},        {"input_shape", input_shape}, {"classes", classes}};
}

namespace {

struct OpSpec {
  int inputs;
  std::vector<std::string> in_types;  // "u8" / "f32" per input
  std::string out_type;
  std::vector<std::pair<std::string, std::string>> tensors;  // name, dtype
};

const std::map<std::string, OpSpec>& op_specs() {
  static const std::map<std::string, OpSpec> specs = {
      {"Quantize", {1, {"f32"}, "u8", {}}},
      {"QConv2d", {1, {"u8"}, "u8", {{"weight", "I8"}, {"bias", "I32"}, {"weight_scale", "F32"}}}},
      {"QLinear", {1, {"u8"}, "u8", {{"weight", "I8"}, {"bias", "I32"}, {"weight_scale", "F32"}}}},
      {"QAdd", {2, {"u8", "u8"}, "u8", {}}},
      {"QMaxPool2d", {1, {"u8"}, "u8", {}}},
      {"QGlobalAvgPool", {1, {"u8"}, "u8", {}}},
      {"Dequantize", {1, {"u8"}, "f32", {}}},
      {"Linear", {1, {"f32"}, "f32", {{"weight", "F32"}, {"bias", "F32"}}}},
      {"DynamicLinear", {1, {"f32"}, "f32", {{"weight", "I8"}, {"weight_scale", "F32"}, {"bias", "F32"}}}},
  };
  return specs;
}

// Each op's attributes: integers within bounds, known activation names.
void check_attrs(const GraphNode& n, const std::string& at) {
  auto integer = [&](const char* k, int64_t lo, int64_t hi) {
    QF_CHECK(n.attrs.contains(k) && n.attrs[k].is_number_integer(),
             at + ": attribute '" + k + "' missing or not an integer");
    int64_t v = n.attrs[k].get<int64_t>();
    QF_CHECK(v >= lo && v <= hi, at + ": attribute '" + k + "' = " + std::to_string(v) + " is out of range [" +
                                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  };
  auto act = [&] {
    QF_CHECK(n.attrs.contains("act") && n.attrs["act"].is_string(), at + ": attribute 'act' missing");
    std::string a = n.attrs["act"];
    QF_CHECK(a == "none" || a == "relu" || a == "relu6", at + ": unknown activation '" + a + "'");
  };
  constexpr int64_t kBig = int64_t{1} << 24;
  if (n.op == "QConv2d") {
    int64_t k = integer("kernel", 1, 64);
    integer("stride", 1, 64);
    integer("dilation", 1, 64);
    integer("padding", 0, k * 64);
    integer("in_channels", 1, kBig);
    integer("out_channels", 1, kBig);
    act();
  } else if (n.op == "QLinear" || n.op == "Linear" || n.op == "DynamicLinear") {
    integer("in_features", 1, kBig);
    integer("out_features", 1, kBig);
    if (n.op == "QLinear") act();
  } else if (n.op == "QMaxPool2d") {
    int64_t k = integer("kernel", 1, 64);
    integer("stride", 1, 64);
    integer("padding", 0, k / 2);
  } else if (n.op == "QAdd") {
    QF_CHECK(n.attrs.contains("relu") && n.attrs["relu"].is_boolean(),
             at + ": attribute 'relu' missing or not a boolean");
  }
}

}  // namespace

void validate_graph(const Int8Graph& g, const std::string& what) {
  QF_CHECK(g.input_shape.size() == 3 && g.input_shape[0] > 0 && g.input_shape[1] > 0 && g.input_shape[2] > 0,
           what + ": input_shape must be [C, H, W]");
  QF_CHECK(!g.values.empty() && !g.values[0].quantized, what + ": value 0 must be the float input");
  std::vector<bool> defined(g.values.size(), false);
  defined[0] = true;
  for (auto& v : g.values)
    QF_CHECK(
        !v.quantized || (v.qp.scale > 0 && std::isfinite(v.qp.scale) && v.qp.zero_point >= 0 && v.qp.zero_point <= 255),
        what + ": a value has invalid quantization parameters");
  for (auto& n : g.nodes) {
    std::string at = what + ": node '" + n.name + "' (" + n.op + ")";
    auto it = op_specs().find(n.op);
    QF_CHECK(it != op_specs().end(), what + ": unknown op '" + n.op + "' (node '" + n.name + "')");
    const OpSpec& s = it->second;
    QF_CHECK(static_cast<int>(n.inputs.size()) == s.inputs, at + ": expected " + std::to_string(s.inputs) + " inputs");
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      int v = n.inputs[i];
      QF_CHECK(v >= 0 && v < static_cast<int>(g.values.size()) && defined[v],
               at + ": input value " + std::to_string(v) + " is not defined before it");
      QF_CHECK(g.values[v].quantized == (s.in_types[i] == "u8"),
               at + ": input " + std::to_string(i) + " must be " + s.in_types[i]);
    }
    QF_CHECK(n.output > 0 && n.output < static_cast<int>(g.values.size()) && !defined[n.output],
             at + ": output value " + std::to_string(n.output) + " is invalid or written twice");
    QF_CHECK(g.values[n.output].quantized == (s.out_type == "u8"), at + ": output must be " + s.out_type);
    defined[n.output] = true;
    for (auto& [tn, dt] : s.tensors) {
      auto t = g.tensors.find(n.name + "." + tn);
      QF_CHECK(t != g.tensors.end(), at + ": missing tensor '" + n.name + "." + tn + "'");
      QF_CHECK(t->second.dtype == dt, at + ": tensor '" + tn + "' is " + t->second.dtype + ", expected " + dt);
    }
    check_attrs(n, at);
    if (!s.tensors.empty()) {
      const auto& w = g.tensors.at(n.name + ".weight");
      int64_t oc = w.shape.empty() ? 0 : w.shape[0];
      for (auto& [tn, dt] : s.tensors)
        if (tn != "weight")
          QF_CHECK(numel_of(g.tensors.at(n.name + "." + tn).shape) == oc,
                   at + ": tensor '" + tn + "' does not match the weight's " + std::to_string(oc) + " output channels");
      // The weight's shape must be the one the attributes describe: the runtime sizes buffers from both.
      Shape want = n.op == "QConv2d"
                       ? Shape{n.attrs["out_channels"].get<int64_t>(), n.attrs["in_channels"].get<int64_t>(),
                               n.attrs["kernel"].get<int64_t>(), n.attrs["kernel"].get<int64_t>()}
                       : Shape{n.attrs["out_features"].get<int64_t>(), n.attrs["in_features"].get<int64_t>()};
      QF_CHECK(w.shape == want,
               at + ": weight has shape " + shape_str(w.shape) + ", the attributes say " + shape_str(want));
    }
  }
  QF_CHECK(g.output >= 0 && g.output < static_cast<int>(g.values.size()) && defined[g.output] &&
               !g.values[g.output].quantized,
           what + ": the graph output must be a float value computed by the graph");
}

void save_int8_model(const std::string& path, const Int8Graph& g) {
  validate_graph(g, path);
  std::vector<std::pair<std::string, nn::StEntry>> entries(g.tensors.begin(), g.tensors.end());
  nn::write_safetensors(path, entries,
                        {{"format", "qforge-int8"}, {"graph", g.to_json().dump()}, {"config", g.config.dump()}});
}

Int8Graph load_int8_model(const std::string& path) {
  nn::SafeTensors st = nn::read_safetensors(path);
  auto fmt = st.metadata.find("format");
  QF_CHECK(fmt != st.metadata.end() && fmt->second == "qforge-int8",
           path + ": not a qforge int8 model (.qfm); convert one with `qforge convert`");
  Int8Graph g;
  try {
    json j = json::parse(st.meta("graph"));
    int version = j.at("version").get<int>();
    QF_CHECK(version == Int8Graph::kVersion, path + ": int8 model format version " + std::to_string(version) +
                                                 " is not supported (this qforge reads version " +
                                                 std::to_string(Int8Graph::kVersion) + ")");
    for (auto& v : j.at("values")) {
      GraphValue gv;
      QF_CHECK(v.at("dtype") == "u8" || v.at("dtype") == "f32",
               path + ": value of unknown dtype " + v.at("dtype").dump());
      gv.quantized = v.at("dtype") == "u8";
      if (gv.quantized) gv.qp = {v.at("scale").get<float>(), v.at("zero_point").get<int32_t>(), 0, 255};
      g.values.push_back(gv);
    }
    for (auto& n : j.at("nodes")) {
      GraphNode gn;
      gn.op = n.at("op");
      gn.name = n.at("name");
      gn.inputs = n.at("inputs").get<std::vector<int>>();
      gn.output = n.at("output");
      gn.attrs = n.at("attrs");
      g.nodes.push_back(std::move(gn));
    }
    g.output = j.at("output");
    g.input_shape = j.at("input_shape").get<std::vector<int>>();
    g.classes = j.at("classes").get<std::vector<std::string>>();
    g.config = json::parse(st.meta("config"));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(path + ": corrupt int8 graph description: " + e.what());
  }
  g.tensors = std::move(st.tensors);
  validate_graph(g, path);
  return g;
}

}  // namespace qforge::quant

#include "quant/graph.h"

#include <cfloat>
#include <climits>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/json_util.h"

namespace qforge::quant {

using nlohmann::json;

namespace {

// Typed reads of the graph's JSON: a wrong type or an out-of-range number is an Error naming `at`
// (nlohmann's get<int>() would convert 1e300 or 2^40 without a word, or with undefined behaviour).
int int_of(const json& v, const std::string& at) {
  QF_CHECK(v.is_number_integer(), at + " must be an integer, got " + brief(v));
  QF_CHECK(v.is_number_unsigned() ? v.get<uint64_t>() <= INT32_MAX
                                  : v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX,
           at + " = " + brief(v) + " is out of range");
  return static_cast<int>(v.get<int64_t>());
}

const json& field(const json& o, const char* k, const std::string& at) {
  QF_CHECK(o.is_object() && o.contains(k), at + " has no '" + k + "'");
  return o[k];
}

std::vector<int> ints_of(const json& v, const std::string& at) {
  QF_CHECK(v.is_array(), at + " must be a list of integers, got " + brief(v));
  std::vector<int> r;
  for (const json& e : v) r.push_back(int_of(e, at));
  return r;
}

float float_of(const json& v, const std::string& at) {
  QF_CHECK(v.is_number(), at + " must be a number, got " + brief(v));
  const double d = v.get<double>();
  QF_CHECK(std::isfinite(d) && std::fabs(d) <= FLT_MAX, at + " = " + brief(v) + " is not a finite float");
  return static_cast<float>(d);
}

struct OpSpec {
  OpKind op;
  const char* name;
  int inputs;
  std::vector<std::string> in_types;  // "u8" / "f32" per input
  std::string out_type;
  std::vector<std::pair<std::string, std::string>> tensors;  // name, dtype
};

const std::vector<OpSpec>& op_specs() {
  static const std::vector<OpSpec> specs = {
      {OpKind::kQuantize, "Quantize", 1, {"f32"}, "u8", {}},
      {OpKind::kQConv2d, "QConv2d", 1, {"u8"}, "u8", {{"weight", "I8"}, {"bias", "I32"}, {"weight_scale", "F32"}}},
      {OpKind::kQLinear, "QLinear", 1, {"u8"}, "u8", {{"weight", "I8"}, {"bias", "I32"}, {"weight_scale", "F32"}}},
      {OpKind::kQAdd, "QAdd", 2, {"u8", "u8"}, "u8", {}},
      {OpKind::kQMaxPool2d, "QMaxPool2d", 1, {"u8"}, "u8", {}},
      {OpKind::kQGlobalAvgPool, "QGlobalAvgPool", 1, {"u8"}, "u8", {}},
      {OpKind::kDequantize, "Dequantize", 1, {"u8"}, "f32", {}},
      {OpKind::kLinear, "Linear", 1, {"f32"}, "f32", {{"weight", "F32"}, {"bias", "F32"}}},
      {OpKind::kDynamicLinear,
       "DynamicLinear",
       1,
       {"f32"},
       "f32",
       {{"weight", "I8"}, {"weight_scale", "F32"}, {"bias", "F32"}}},
  };
  return specs;
}

const OpSpec& spec(OpKind op) {
  for (const auto& s : op_specs())
    if (s.op == op) return s;
  throw Error("int8 graph: invalid op kind " + std::to_string(static_cast<int>(op)));
}

OpKind parse_op(const std::string& name, const std::string& at) {
  for (const auto& s : op_specs())
    if (name == s.name) return s.op;
  throw Error(at + ": unknown op '" + printable(name) + "'");
}

bool is_linear(OpKind op) { return op == OpKind::kQLinear || op == OpKind::kLinear || op == OpKind::kDynamicLinear; }

// The one place the attributes meet JSON. Names and meanings are those of format version 1; version 2
// adds QConv2d's "groups".
json attrs_to_json(const GraphNode& n, int version, const std::string& at) {
  switch (n.op) {
    case OpKind::kQConv2d: {
      const ConvGeometry& g = n.conv.geometry;
      QF_CHECK(g.is_square(),
               at + ": a .qfm convolution has one stride, padding and dilation for both axes, got " + g.str());
      QF_CHECK(version >= 2 || g.groups == 1, at + ": groups " + std::to_string(g.groups) +
                                                  " needs format version 2, writing " + std::to_string(version));
      json a = {{"kernel", n.conv.kernel},
                {"stride", g.stride_h},
                {"padding", g.pad_h},
                {"dilation", g.dilation_h},
                {"in_channels", n.conv.in_channels},
                {"out_channels", n.conv.out_channels},
                {"act", act_name(n.act)}};
      if (version >= 2) a["groups"] = g.groups;
      return a;
    }
    case OpKind::kQLinear:
      return {{"in_features", n.linear.in_features}, {"out_features", n.linear.out_features}, {"act", act_name(n.act)}};
    case OpKind::kLinear:
    case OpKind::kDynamicLinear:
      return {{"in_features", n.linear.in_features}, {"out_features", n.linear.out_features}};
    case OpKind::kQMaxPool2d:
      return {{"kernel", n.pool.kernel}, {"stride", n.pool.stride}, {"padding", n.pool.padding}};
    case OpKind::kQAdd:
      return {{"relu", n.act == Act::kReLU}};
    default:
      return nullptr;  // what version 1 files hold for ops without attributes
  }
}

void attrs_from_json(GraphNode& n, const json& a, int version, const std::string& at) {
  auto integer = [&](const char* k) {
    QF_CHECK(a.is_object() && a.contains(k), at + ": attribute '" + k + "' missing");
    return int_of(a[k], at + ": attribute '" + k + "'");
  };
  auto act = [&] {
    QF_CHECK(a.is_object() && a.contains("act") && a["act"].is_string(), at + ": attribute 'act' missing");
    return parse_act(a["act"].get<std::string>(), at);
  };
  switch (n.op) {
    case OpKind::kQConv2d:
      n.conv.kernel = integer("kernel");
      // Version 1 has no groups: every conv is an ordinary one, and a "groups" there is not ours.
      QF_CHECK(version >= 2 || !a.contains("groups"),
               at + ": attribute 'groups' in a version-" + std::to_string(version) + " file");
      n.conv.geometry = ConvGeometry::square(integer("stride"), integer("padding"), integer("dilation"),
                                             version >= 2 ? integer("groups") : 1);
      n.conv.in_channels = integer("in_channels");
      n.conv.out_channels = integer("out_channels");
      n.act = act();
      break;
    case OpKind::kQLinear:
    case OpKind::kLinear:
    case OpKind::kDynamicLinear:
      n.linear.in_features = integer("in_features");
      n.linear.out_features = integer("out_features");
      if (n.op == OpKind::kQLinear) n.act = act();
      break;
    case OpKind::kQMaxPool2d:
      n.pool.kernel = integer("kernel");
      n.pool.stride = integer("stride");
      n.pool.padding = integer("padding");
      break;
    case OpKind::kQAdd:
      QF_CHECK(a.is_object() && a.contains("relu") && a["relu"].is_boolean(),
               at + ": attribute 'relu' missing or not a boolean");
      n.act = a["relu"].get<bool>() ? Act::kReLU : Act::kNone;
      break;
    default:
      break;
  }
}

// Each op's attributes within bounds.
void check_attrs(const GraphNode& n, const std::string& at) {
  auto in_range = [&](const char* k, int64_t v, int64_t lo, int64_t hi) {
    QF_CHECK(v >= lo && v <= hi, at + ": attribute '" + k + "' = " + std::to_string(v) + " is out of range [" +
                                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
  };
  constexpr int64_t kBig = int64_t{1} << 24;
  if (n.op == OpKind::kQConv2d) {
    const ConvGeometry& g = n.conv.geometry;
    in_range("kernel", n.conv.kernel, 1, 64);
    in_range("stride", g.stride_h, 1, 64);
    in_range("stride", g.stride_w, 1, 64);
    in_range("dilation", g.dilation_h, 1, 64);
    in_range("dilation", g.dilation_w, 1, 64);
    in_range("padding", g.pad_h, 0, n.conv.kernel * 64);
    in_range("padding", g.pad_w, 0, n.conv.kernel * 64);
    in_range("in_channels", n.conv.in_channels, 1, kBig);
    in_range("out_channels", n.conv.out_channels, 1, kBig);
    in_range("groups", g.groups, 1, n.conv.in_channels);
    QF_CHECK(n.conv.in_channels % g.groups == 0 && n.conv.out_channels % g.groups == 0,
             at + ": in_channels " + std::to_string(n.conv.in_channels) + " and out_channels " +
                 std::to_string(n.conv.out_channels) + " must be multiples of groups " + std::to_string(g.groups));
  } else if (is_linear(n.op)) {
    in_range("in_features", n.linear.in_features, 1, kBig);
    in_range("out_features", n.linear.out_features, 1, kBig);
  } else if (n.op == OpKind::kQMaxPool2d) {
    in_range("kernel", n.pool.kernel, 1, 64);
    in_range("stride", n.pool.stride, 1, 64);
    in_range("padding", n.pool.padding, 0, n.pool.kernel / 2);
  }
  const bool has_act = n.op == OpKind::kQConv2d || n.op == OpKind::kQLinear || n.op == OpKind::kQAdd;
  QF_CHECK(has_act || n.act == Act::kNone, at + ": has an activation the op cannot fuse");
  QF_CHECK(n.op != OpKind::kQAdd || n.act != Act::kReLU6, at + ": a QAdd fuses ReLU only");
}

}  // namespace

const char* op_name(OpKind op) { return spec(op).name; }

const nn::StEntry& Int8Graph::tensor(const GraphNode& n, const std::string& what) const {
  auto it = tensors.find(n.name + "." + what);
  QF_CHECK(it != tensors.end(),
           "int8 graph: node '" + printable(n.name) + "' (" + op_name(n.op) + ") has no tensor '" + what + "'");
  return it->second;
}

int Int8Graph::format_version() const {
  for (const auto& n : nodes)
    if (n.op == OpKind::kQConv2d && n.conv.geometry.groups != 1) return 2;
  return kMinVersion;
}

json Int8Graph::to_json() const {
  const int version = format_version();
  json vals = json::array();
  for (auto& v : values) {
    if (v.quantized)
      vals.push_back({{"dtype", "u8"}, {"scale", v.qp.scale}, {"zero_point", v.qp.zero_point}});
    else
      vals.push_back({{"dtype", "f32"}});
  }
  json nodes_j = json::array();
  for (auto& n : nodes) {
    const std::string at = std::string("int8 graph: node '") + n.name + "' (" + op_name(n.op) + ")";
    nodes_j.push_back({{"op", op_name(n.op)},
                       {"name", n.name},
                       {"inputs", n.inputs},
                       {"output", n.output},
                       {"attrs", attrs_to_json(n, version, at)}});
  }
  return {{"format", "qforge-int8"}, {"version", version},         {"values", vals},    {"nodes", nodes_j},
          {"output", output},        {"input_shape", input_shape}, {"classes", classes}};
}

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
    const OpSpec& s = spec(n.op);
    std::string at = what + ": node '" + printable(n.name) + "' (" + s.name + ")";
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
      Shape want = n.op == OpKind::kQConv2d ? Shape{n.conv.out_channels, n.conv.in_channels / n.conv.geometry.groups,
                                                    n.conv.kernel, n.conv.kernel}
                                            : Shape{n.linear.out_features, n.linear.in_features};
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
    const json j = parse_json(st.meta("graph"), path + ": graph");
    const std::string top = path + ": graph";
    int version = int_of(field(j, "version", top), top + " version");
    QF_CHECK(version >= Int8Graph::kMinVersion && version <= Int8Graph::kVersion,
             path + ": int8 model format version " + std::to_string(version) +
                 " is not supported (this qforge reads versions " + std::to_string(Int8Graph::kMinVersion) + " to " +
                 std::to_string(Int8Graph::kVersion) + ")");
    const json& values = field(j, "values", top);
    QF_CHECK(values.is_array(), top + ": values must be a list");
    for (auto& v : values) {
      const std::string at = top + ": value " + std::to_string(g.values.size());
      GraphValue gv;
      const json& dt = field(v, "dtype", at);
      QF_CHECK(dt == "u8" || dt == "f32", at + " has unknown dtype " + brief(dt));
      gv.quantized = dt == "u8";
      if (gv.quantized)
        gv.qp = {float_of(field(v, "scale", at), at + " scale"), int_of(field(v, "zero_point", at), at + " zero_point"),
                 0, 255};
      g.values.push_back(gv);
    }
    const json& nodes = field(j, "nodes", top);
    QF_CHECK(nodes.is_array(), top + ": nodes must be a list");
    for (auto& n : nodes) {
      GraphNode gn;
      const std::string node_at = top + ": node " + std::to_string(g.nodes.size());
      const json& name = field(n, "name", node_at);
      const json& op = field(n, "op", node_at);
      QF_CHECK(name.is_string() && op.is_string(), node_at + ": name and op must be strings");
      gn.name = name.get<std::string>();
      const std::string at = path + ": node '" + printable(gn.name) + "' (" + printable(op.get<std::string>()) + ")";
      gn.op = parse_op(op.get<std::string>(), path + ": node '" + printable(gn.name) + "'");
      gn.inputs = ints_of(field(n, "inputs", at), at + " inputs");
      gn.output = int_of(field(n, "output", at), at + " output");
      attrs_from_json(gn, field(n, "attrs", at), version, at);
      g.nodes.push_back(std::move(gn));
    }
    g.output = int_of(field(j, "output", top), top + " output");
    g.input_shape = ints_of(field(j, "input_shape", top), top + " input_shape");
    const json& classes = field(j, "classes", top);
    QF_CHECK(classes.is_array(), top + ": classes must be a list of strings");
    for (const json& c : classes) {
      QF_CHECK(c.is_string(), top + ": classes must be a list of strings, got " + brief(c));
      g.classes.push_back(c.get<std::string>());
    }
    g.config = parse_json(st.meta("config"), path + ": config");
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

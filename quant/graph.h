// The int8 graph: what `convert` produces and quant/runtime.h runs.
//
// Values are numbered; value 0 is the float NCHW input. A node reads values and
// writes one. Quantized values are uint8 NHWC with one (scale, zero point);
// float values are NCHW (or (N, K)). Ops:
//   Quantize        f32 -> u8                          (the model input)
//   QConv2d         u8 -> u8   weight I8 (OC,C/groups,KH,KW), bias I32, weight_scale F32; act none|relu|relu6
//   QLinear         u8 -> u8   weight I8 (N,K), bias I32, weight_scale F32
//   QAdd            u8, u8 -> u8   relu (true/false: MobileNetV2's residual joins have none)
//   QMaxPool2d      u8 -> u8   (output keeps the input's parameters)
//   QGlobalAvgPool  u8 (N,H,W,C) -> u8 (N,1,1,C)
//   Dequantize      u8 -> f32
//   Linear          f32 -> f32  weight F32, bias F32   (a layer kept in float)
//   DynamicLinear   f32 -> f32  weight I8, weight_scale F32, bias F32 (dynamic quantization)
// Saved as one safetensors file (.qfm): the tensors under "<node>.<name>",
// the graph as JSON in the metadata (key "graph", with a format version).
// Versions: 1 (ResNet: every conv groups 1, no "groups" attribute) and 2 (QConv2d has the
// attribute "groups"; a version-1 reader would ignore it and misread the weights, hence the bump).
// A graph is written in the oldest version that holds it: version 1 unless a conv is grouped, so
// files of ungrouped models stay readable by older qforge builds. Both versions are read.
// In memory a node is typed (OpKind, and its op's attribute struct); the JSON
// spelling of ops and attributes is read and written in graph.cpp only, so a
// loaded graph needs no string compares or JSON reads to run.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/conv_geometry.h"
#include "nn/safetensors.h"
#include "quant/activation.h"
#include "quant/qparams.h"

namespace qforge::quant {

struct GraphValue {
  bool quantized = true;  // u8 NHWC with qp, else f32
  QParams qp;
};

enum class OpKind {
  kQuantize,
  kQConv2d,
  kQLinear,
  kQAdd,
  kQMaxPool2d,
  kQGlobalAvgPool,
  kDequantize,
  kLinear,
  kDynamicLinear
};
// "Quantize", "QConv2d", ...: the op's name in .qfm files and messages.
const char* op_name(OpKind op);

// QConv2d: weight (out_channels, in_channels / groups, kernel, kernel), in_channels and out_channels
// multiples of groups. Stored in .qfm as the scalar attributes kernel, stride, padding, dilation (a
// square geometry) and, from version 2, groups.
struct ConvAttrs {
  int in_channels = 0, out_channels = 0, kernel = 1;
  ConvGeometry geometry;
};
// QLinear, Linear, DynamicLinear: weight (out_features, in_features).
struct LinearAttrs {
  int in_features = 0, out_features = 0;
};
// QMaxPool2d: a kernel x kernel window every stride pixels, padding <= kernel / 2 (dilation 1).
struct PoolAttrs {
  int kernel = 1, stride = 1, padding = 0;
  ConvGeometry geometry() const { return ConvGeometry::square(stride, padding); }
};

struct GraphNode {
  OpKind op = OpKind::kQuantize;
  std::string name;  // the module it came from
  std::vector<int> inputs;
  int output = -1;
  // The attributes of `op`; the others keep their defaults.
  ConvAttrs conv;        // QConv2d
  LinearAttrs linear;    // QLinear, Linear, DynamicLinear
  PoolAttrs pool;        // QMaxPool2d
  Act act = Act::kNone;  // QConv2d, QLinear: the fused activation; QAdd: kReLU or kNone ("relu": true/false)
};

struct Int8Graph {
  static constexpr int kVersion = 2;     // the newest format version this build reads and writes
  static constexpr int kMinVersion = 1;  // the oldest it reads
  std::vector<GraphValue> values;
  std::vector<GraphNode> nodes;
  int output = -1;
  std::vector<int> input_shape;  // C, H, W
  std::vector<std::string> classes;
  nlohmann::json config;  // the model's config (normalisation, architecture)
  std::map<std::string, nn::StEntry> tensors;

  const nn::StEntry& tensor(const GraphNode& n, const std::string& what) const;  // "<node>.<what>"
  // The version to_json writes: kMinVersion unless a node needs a newer one (a grouped conv: 2).
  int format_version() const;
  nlohmann::json to_json() const;
};

// Checks the graph: value ids in range and defined before use, attributes in
// range, the tensors each op needs with the right dtype and the shape the
// attributes describe. `what` names the file in errors.
void validate_graph(const Int8Graph& g, const std::string& what);

void save_int8_model(const std::string& path, const Int8Graph& g);
// Rejects a truncated or corrupted file, a wrong format or version, with the file's name.
Int8Graph load_int8_model(const std::string& path);

}  // namespace qforge::quant

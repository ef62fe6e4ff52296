// A thin layer over onnx::ModelProto (libonnx's generated protobuf classes) for the two
// exporters: unique names, typed initializers, nodes with attributes, and the atomic write.
// Internal to quant/onnx: only the exporters include the protobuf headers.
#pragma once
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "quant/onnx/onnx_export.h"

namespace qforge::quant::onnx_detail {

class OnnxBuilder {
 public:
  explicit OnnxBuilder(const std::string& graph_name);

  // base, or base_2, base_3, ... : a name no value, node or initializer has yet.
  std::string fresh(const std::string& base);

  // Initializers (named fresh(base)); return the name.
  std::string f32(const std::string& base, const std::vector<int64_t>& dims, const float* v);
  std::string i8(const std::string& base, const std::vector<int64_t>& dims, const int8_t* v);
  std::string u8(const std::string& base, const std::vector<int64_t>& dims, const uint8_t* v);
  std::string i32(const std::string& base, const std::vector<int64_t>& dims, const int32_t* v);
  std::string scalar_f32(const std::string& base, float v) { return f32(base, {}, &v); }
  std::string scalar_u8(const std::string& base, uint8_t v) { return u8(base, {}, &v); }

  // Adds a node (named name, or name_2, ... among nodes) writing one new value fresh(out); returns that value's name.
  std::string op(const std::string& op_type, const std::vector<std::string>& inputs, const std::string& name,
                 const std::string& out);
  // Adds a node with several outputs, named as given (already fresh).
  onnx::NodeProto& op_multi(const std::string& op_type, const std::vector<std::string>& inputs,
                            const std::vector<std::string>& outputs, const std::string& name);
  // The node op() added last, to set attributes on.
  onnx::NodeProto& last() { return *g_->mutable_node(g_->node_size() - 1); }
  static void attr(onnx::NodeProto& n, const std::string& name, int64_t v);
  static void attr(onnx::NodeProto& n, const std::string& name, float v);
  static void attr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v);

  // The graph's float input (N, C, H, W) and output (N, classes); N is the symbolic "N".
  void input(const std::string& name, const std::vector<int>& chw);
  void output(const std::string& name, int64_t classes);

  // Serializes to path (temporary file, renamed into place).
  OnnxExportSummary save(const std::string& path, const OnnxMetadata& meta);

 private:
  std::string init(const std::string& base, int32_t dtype, const std::vector<int64_t>& dims, const void* v,
                   size_t elem_bytes);
  onnx::ModelProto model_;
  onnx::GraphProto* g_;
  std::set<std::string> used_, node_names_;  // values and initializers; nodes
};

}  // namespace qforge::quant::onnx_detail

#include "quant/onnx/onnx_builder.h"

#include <cstdio>

#include "core/atomic_file.h"
#include "core/error.h"

namespace qforge::quant::onnx_detail {

OnnxBuilder::OnnxBuilder(const std::string& graph_name) {
  model_.set_ir_version(7);
  model_.set_producer_name("qforge");
  model_.set_producer_version("1");
  auto* opset = model_.add_opset_import();
  opset->set_domain("");
  opset->set_version(13);
  g_ = model_.mutable_graph();
  g_->set_name(graph_name);
}

std::string OnnxBuilder::fresh(const std::string& base) {
  std::string s = base;
  for (int n = 2; used_.count(s); ++n) s = base + "_" + std::to_string(n);
  used_.insert(s);
  return s;
}

std::string OnnxBuilder::init(const std::string& base, int32_t dtype, const std::vector<int64_t>& dims, const void* v,
                              size_t elem_bytes) {
  onnx::TensorProto* t = g_->add_initializer();
  const std::string name = fresh(base);
  t->set_name(name);
  t->set_data_type(dtype);
  int64_t n = 1;
  for (int64_t d : dims) {
    t->add_dims(d);
    n *= d;
  }
  // raw_data is little-endian, as the machines qforge runs on.
  t->set_raw_data(std::string(static_cast<const char*>(v), static_cast<size_t>(n) * elem_bytes));
  return name;
}

std::string OnnxBuilder::f32(const std::string& base, const std::vector<int64_t>& dims, const float* v) {
  return init(base, onnx::TensorProto::FLOAT, dims, v, 4);
}
std::string OnnxBuilder::i8(const std::string& base, const std::vector<int64_t>& dims, const int8_t* v) {
  return init(base, onnx::TensorProto::INT8, dims, v, 1);
}
std::string OnnxBuilder::u8(const std::string& base, const std::vector<int64_t>& dims, const uint8_t* v) {
  return init(base, onnx::TensorProto::UINT8, dims, v, 1);
}
std::string OnnxBuilder::i32(const std::string& base, const std::vector<int64_t>& dims, const int32_t* v) {
  return init(base, onnx::TensorProto::INT32, dims, v, 4);
}

onnx::NodeProto& OnnxBuilder::op_multi(const std::string& op_type, const std::vector<std::string>& inputs,
                                       const std::vector<std::string>& outputs, const std::string& name) {
  onnx::NodeProto* n = g_->add_node();
  n->set_op_type(op_type);
  std::string nn = name;
  for (int k = 2; !node_names_.insert(nn).second; ++k) nn = name + "_" + std::to_string(k);
  n->set_name(nn);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  return *n;
}

std::string OnnxBuilder::op(const std::string& op_type, const std::vector<std::string>& inputs, const std::string& name,
                            const std::string& out) {
  const std::string o = fresh(out);
  op_multi(op_type, inputs, {o}, name);
  return o;
}

void OnnxBuilder::attr(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void OnnxBuilder::attr(onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

void OnnxBuilder::attr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

namespace {

void set_float_type(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tt->mutable_shape();
  shape->add_dim()->set_dim_param("N");
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

}  // namespace

void OnnxBuilder::input(const std::string& name, const std::vector<int>& chw) {
  used_.insert(name);
  set_float_type(g_->add_input(), name, {chw.begin(), chw.end()});
}

void OnnxBuilder::output(const std::string& name, int64_t classes) {
  set_float_type(g_->add_output(), name, {classes});
}

OnnxExportSummary OnnxBuilder::save(const std::string& path, const OnnxMetadata& meta) {
  for (const auto& [k, v] : meta) {
    auto* p = model_.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  std::string bytes;
  QF_CHECK(model_.SerializeToString(&bytes), path + ": cannot serialize the ONNX model (over 2 GB?)");
  write_file_atomic(path, [&](std::FILE* f) {
    QF_CHECK(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size(), path + ": write failed");
  });
  return {g_->node_size(), g_->initializer_size()};
}

}  // namespace qforge::quant::onnx_detail

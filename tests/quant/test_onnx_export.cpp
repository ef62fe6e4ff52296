// quant/onnx: the ONNX models the exports write, read back through libonnx's protobuf classes:
// structure, attributes and initializer bytes. (Running them in ONNX Runtime against qforge's
// logits is tests/onnx/test_onnx_export.sh.)
#include <doctest/doctest.h>

#include "quant/onnx/onnx_export.h"

#ifdef QFORGE_HAVE_ONNX
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/resnet.h"

using namespace qforge;
using namespace qforge::quant;

namespace {

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("qforge_onnx_" + std::to_string(::getpid()) + "_" + name)).string();
}

onnx::ModelProto read_model(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  onnx::ModelProto m;
  REQUIRE(m.ParseFromIstream(&f));
  return m;
}

std::map<std::string, const onnx::TensorProto*> initializers(const onnx::ModelProto& m) {
  std::map<std::string, const onnx::TensorProto*> r;
  for (const auto& t : m.graph().initializer()) r[t.name()] = &t;
  return r;
}

template <class T>
std::vector<T> values(const onnx::TensorProto& t) {
  std::vector<T> v(t.raw_data().size() / sizeof(T));
  std::memcpy(v.data(), t.raw_data().data(), t.raw_data().size());
  return v;
}

const onnx::NodeProto& node_named(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& n : m.graph().node())
    if (n.name() == name) return n;
  FAIL("no node " << name);
  throw 0;
}

const onnx::NodeProto& producer(const onnx::ModelProto& m, const std::string& value) {
  for (const auto& n : m.graph().node())
    for (const auto& o : n.output())
      if (o == value) return n;
  FAIL("no node writes " << value);
  throw 0;
}

std::vector<int64_t> ints_attr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return {a.ints().begin(), a.ints().end()};
  return {};
}

int64_t int_attr(const onnx::NodeProto& n, const std::string& name, int64_t dflt = -1) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return a.i();
  return dflt;
}

std::vector<std::string> op_types(const onnx::ModelProto& m) {
  std::vector<std::string> r;
  for (const auto& n : m.graph().node()) r.push_back(n.op_type());
  return r;
}

// Quantize -> QConv2d (1 -> 3 channels, 3x3, padding 1, ReLU6) on 4x4 -> QLinear (48 -> 2) -> Dequantize:
// a linear layer right after a spatial value, whose .qfm weight columns are in the runtime's H,W,C order.
Int8Graph small_graph() {
  Int8Graph g;
  g.input_shape = {1, 4, 4};
  g.values = {
      {false, {}}, {true, {0.05f, 10, 0, 255}}, {true, {0.03f, 0, 0, 255}}, {true, {0.1f, 128, 0, 255}}, {false, {}}};
  GraphNode q;
  q.op = OpKind::kQuantize, q.name = "quant", q.inputs = {0}, q.output = 1;
  GraphNode c;
  c.op = OpKind::kQConv2d, c.name = "conv", c.inputs = {1}, c.output = 2, c.act = Act::kReLU6;
  c.conv = {1, 3, 3, ConvGeometry::square(1, 1)};
  GraphNode l;
  l.op = OpKind::kQLinear, l.name = "fc", l.inputs = {2}, l.output = 3;
  l.linear = {48, 2};
  GraphNode d;
  d.op = OpKind::kDequantize, d.name = "output", d.inputs = {3}, d.output = 4;
  g.nodes = {q, c, l, d};
  g.output = 4;
  std::vector<int8_t> cw(27), lw(96);
  for (size_t i = 0; i < cw.size(); ++i) cw[i] = static_cast<int8_t>(static_cast<int>(i) - 13);
  for (size_t i = 0; i < lw.size(); ++i) lw[i] = static_cast<int8_t>(static_cast<int>(i) - 48);
  std::vector<int32_t> cb = {100, -200, 300}, lb = {7, -7};
  std::vector<float> cs = {0.01f, 0.02f, 0.03f}, ls = {0.004f, 0.005f};
  g.tensors["conv.weight"] = nn::raw_entry("I8", {3, 1, 3, 3}, cw.data());
  g.tensors["conv.bias"] = nn::raw_entry("I32", {3}, cb.data());
  g.tensors["conv.weight_scale"] = nn::raw_entry("F32", {3}, cs.data());
  g.tensors["fc.weight"] = nn::raw_entry("I8", {2, 48}, lw.data());
  g.tensors["fc.bias"] = nn::raw_entry("I32", {2}, lb.data());
  g.tensors["fc.weight_scale"] = nn::raw_entry("F32", {2}, ls.data());
  return g;
}

}  // namespace

TEST_CASE("onnx export: the int8 graph as QDQ, opset 13, IR 7, with the .qfm's exact weights and scales") {
  REQUIRE(onnx_export_available());
  Int8Graph g = small_graph();
  const std::string path = temp_file("small.onnx");
  OnnxExportSummary s = export_int8_onnx(g, path, {{"qforge.classes", "[\"a\",\"b\"]"}});
  onnx::ModelProto m = read_model(path);
  std::filesystem::remove(path);
  CHECK(m.ir_version() == 7);
  REQUIRE(m.opset_import_size() == 1);
  CHECK(m.opset_import(0).domain() == "");
  CHECK(m.opset_import(0).version() == 13);
  REQUIRE(m.metadata_props_size() == 1);
  CHECK(m.metadata_props(0).value() == "[\"a\",\"b\"]");
  CHECK(s.nodes == m.graph().node_size());
  CHECK(op_types(m) == std::vector<std::string>{"QuantizeLinear", "DequantizeLinear", "DequantizeLinear",
                                                "DequantizeLinear", "Conv", "Clip", "QuantizeLinear",
                                                "DequantizeLinear", "DequantizeLinear", "Flatten", "DequantizeLinear",
                                                "Gemm", "QuantizeLinear", "DequantizeLinear"});
  // Input float N,1,4,4 (N symbolic), output "logits" float N,2.
  const auto& in = m.graph().input(0);
  CHECK(in.name() == "input");
  CHECK(in.type().tensor_type().elem_type() == onnx::TensorProto::FLOAT);
  CHECK(in.type().tensor_type().shape().dim(0).dim_param() == "N");
  CHECK(in.type().tensor_type().shape().dim(3).dim_value() == 4);
  CHECK(m.graph().output(0).name() == "logits");
  CHECK(m.graph().node(m.graph().node_size() - 1).output(0) == "logits");

  auto init = initializers(m);
  // The activation parameters: float scales, uint8 zero points.
  REQUIRE(init.count("quant.scale"));
  CHECK(values<float>(*init["quant.scale"]) == std::vector<float>{0.05f});
  CHECK(init["quant.zero_point"]->data_type() == onnx::TensorProto::UINT8);
  CHECK(values<uint8_t>(*init["fc.zero_point"]) == std::vector<uint8_t>{128});

  // Conv: int8 weight per channel (axis 0, zero points 0), int32 bias at s_in * s_w[c] (float product).
  const auto& conv = node_named(m, "conv");
  CHECK(ints_attr(conv, "kernel_shape") == std::vector<int64_t>{3, 3});
  CHECK(ints_attr(conv, "pads") == std::vector<int64_t>{1, 1, 1, 1});
  CHECK(int_attr(conv, "group") == 1);
  const auto& wdq = producer(m, conv.input(1));
  CHECK(wdq.op_type() == "DequantizeLinear");
  CHECK(int_attr(wdq, "axis") == 0);
  CHECK(init[wdq.input(0)]->data_type() == onnx::TensorProto::INT8);
  CHECK(init[wdq.input(0)]->raw_data() ==
        std::string(g.tensors["conv.weight"].bytes.begin(), g.tensors["conv.weight"].bytes.end()));
  CHECK(values<float>(*init[wdq.input(1)]) == std::vector<float>{0.01f, 0.02f, 0.03f});
  CHECK(values<int8_t>(*init[wdq.input(2)]) == std::vector<int8_t>{0, 0, 0});
  const auto& bdq = producer(m, conv.input(2));
  CHECK(init[bdq.input(0)]->data_type() == onnx::TensorProto::INT32);
  CHECK(values<int32_t>(*init[bdq.input(0)]) == std::vector<int32_t>{100, -200, 300});
  CHECK(values<float>(*init[bdq.input(1)]) == std::vector<float>{0.05f * 0.01f, 0.05f * 0.02f, 0.05f * 0.03f});
  // ReLU6 is Clip(0, 6) between the Conv and its QuantizeLinear.
  const auto& clip = node_named(m, "conv.relu6");
  CHECK(clip.input(0) == conv.output(0));
  CHECK(values<float>(*init[clip.input(1)]) == std::vector<float>{0.f});
  CHECK(values<float>(*init[clip.input(2)]) == std::vector<float>{6.f});

  // Gemm (transB) on the flattened uint8 value; its weight columns back in C,H,W order.
  const auto& gemm = node_named(m, "fc");
  CHECK(int_attr(gemm, "transB") == 1);
  const auto w = values<int8_t>(*init[producer(m, gemm.input(1)).input(0)]);
  REQUIRE(w.size() == 96);
  const auto& qfm = g.tensors["fc.weight"].bytes;
  for (int o = 0; o < 2; ++o)
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 16; ++p)  // p = h * 4 + x
        CHECK(w[o * 48 + c * 16 + p] == static_cast<int8_t>(qfm[o * 48 + p * 3 + c]));
  CHECK(producer(m, producer(m, gemm.input(0)).input(0)).op_type() == "Flatten");
  CHECK(values<float>(*init[producer(m, gemm.input(2)).input(1)]) ==
        std::vector<float>{0.03f * 0.004f, 0.03f * 0.005f});
}

TEST_CASE("onnx export: a dynamically quantized classifier as DynamicQuantizeLinear -> DQ -> Gemm(DQ weight)") {
  Int8Graph g = small_graph();
  // Replace the QLinear with Dequantize -> DynamicLinear on the conv's (spatial) output.
  g.values = {g.values[0], g.values[1], g.values[2], {false, {}}, {false, {}}};
  GraphNode d;
  d.op = OpKind::kDequantize, d.name = "fc.dequant", d.inputs = {2}, d.output = 3;
  GraphNode l;
  l.op = OpKind::kDynamicLinear, l.name = "fc", l.inputs = {3}, l.output = 4;
  l.linear = {48, 2};
  g.nodes = {g.nodes[0], g.nodes[1], d, l};
  std::vector<float> bias = {0.5f, -0.5f};
  g.tensors["fc.bias"] = nn::raw_entry("F32", {2}, bias.data());
  const std::string path = temp_file("dynamic.onnx");
  export_int8_onnx(g, path, {});
  onnx::ModelProto m = read_model(path);
  std::filesystem::remove(path);
  const auto& gemm = node_named(m, "fc");
  CHECK(gemm.output(0) == "logits");
  const auto& x = producer(m, gemm.input(0));
  CHECK(x.op_type() == "DequantizeLinear");
  const auto& dq = producer(m, x.input(0));
  CHECK(dq.op_type() == "DynamicQuantizeLinear");
  CHECK(dq.output(1) == x.input(1));
  CHECK(dq.output(2) == x.input(2));
  CHECK(producer(m, dq.input(0)).op_type() == "Flatten");  // the dequantized N,3,4,4 value
  const auto& wdq = producer(m, gemm.input(1));
  CHECK(int_attr(wdq, "axis") == 0);
  auto init = initializers(m);
  CHECK(init[wdq.input(0)]->data_type() == onnx::TensorProto::INT8);
  CHECK(values<float>(*init[gemm.input(2)]) == bias);
}

TEST_CASE("onnx export: ResNet18's int8 graph keeps every layer, ReLU as Relu before Q, adds as DQ, DQ -> Add -> Q") {
  Int8Graph g = load_int8_model(std::string(QFORGE_TESTS_DIR) + "/quant/fixtures/tiny_resnet18_v1.qfm");
  const std::string path = temp_file("r18.onnx");
  export_int8_onnx(g, path, {});
  onnx::ModelProto m = read_model(path);
  std::filesystem::remove(path);
  std::map<std::string, int> count;
  for (const auto& t : op_types(m)) ++count[t];
  int convs = 0, relus = 0, adds = 0;
  for (const auto& n : g.nodes) {
    convs += n.op == OpKind::kQConv2d;
    adds += n.op == OpKind::kQAdd;
    relus += n.act == Act::kReLU;
  }
  CHECK(count["Conv"] == convs);
  CHECK(count["Add"] == adds);
  CHECK(count["Relu"] == relus);
  CHECK(count["Gemm"] == 1);
  CHECK(count["GlobalAveragePool"] == 1);
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "Add") continue;
    CHECK(producer(m, n.input(0)).op_type() == "DequantizeLinear");
    CHECK(producer(m, n.input(1)).op_type() == "DequantizeLinear");
  }
  // Each DequantizeLinear of an activation has one reader (a QDQ fuser's node unit).
  std::map<std::string, int> readers;
  for (const auto& n : m.graph().node())
    for (const auto& i : n.input()) ++readers[i];
  for (const auto& n : m.graph().node())
    if (n.op_type() == "DequantizeLinear") CHECK(readers[n.output(0)] <= 1);
}

TEST_CASE("onnx export: a float ResNet18 as Conv, BatchNormalization, Relu, Add, pools, Flatten, Gemm") {
  auto net = nn::resnet18({.in_channels = 1, .num_classes = 10, .stem = "imagenet", .width = 0.125, .seed = 3});
  const std::string path = temp_file("float.onnx");
  export_float_onnx(*net, {1, 32, 32}, path, {});
  onnx::ModelProto m = read_model(path);
  std::filesystem::remove(path);
  std::map<std::string, int> count;
  for (const auto& t : op_types(m)) ++count[t];
  CHECK(count["Conv"] == 20);
  CHECK(count["BatchNormalization"] == 20);
  CHECK(count["Relu"] == 17);  // the stem's, one inside each block, and each block's Add + ReLU
  CHECK(count["Add"] == 8);
  CHECK(count["MaxPool"] == 1);
  CHECK(count["GlobalAveragePool"] == 1);
  CHECK(count["Flatten"] == 1);  // ResNet's reshape before fc
  CHECK(count["Gemm"] == 1);
  auto init = initializers(m);
  auto conv1 = std::static_pointer_cast<nn::Conv2d>(net->child("conv1"));
  REQUIRE(init.count("conv1.weight"));
  CHECK(values<float>(*init["conv1.weight"]) ==
        std::vector<float>(conv1->weight.data(), conv1->weight.data() + conv1->weight.numel()));
  const auto& c = node_named(m, "conv1");
  CHECK(ints_attr(c, "strides") == std::vector<int64_t>{2, 2});
  CHECK(ints_attr(c, "pads") == std::vector<int64_t>{3, 3, 3, 3});
  CHECK(m.graph().node(m.graph().node_size() - 1).op_type() == "Gemm");
  CHECK(m.graph().node(m.graph().node_size() - 1).output(0) == "logits");
  CHECK(net->training());  // the export leaves the training flag as it was
}

namespace {
class Mystery : public nn::Module {
 public:
  std::string type() const override { return "Mystery"; }
  Tensor forward(const Tensor& x) override { return x; }
};
}  // namespace

TEST_CASE("onnx export: a module the float export does not know is named in the error") {
  nn::Sequential s({std::make_shared<nn::Flatten>(), std::make_shared<Mystery>()});
  const std::string path = temp_file("mystery.onnx");
  try {
    export_float_onnx(s, {1, 2, 2}, path, {});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("cannot export module '1' (Mystery)") != std::string::npos);
  }
  CHECK(!std::filesystem::exists(path));
}

#else

TEST_CASE("onnx export: built without ONNX support, the exports say what to install") {
  CHECK(!qforge::quant::onnx_export_available());
  MESSAGE("qforge built without libonnx-dev / libprotobuf-dev: the ONNX export is off");
}

#endif

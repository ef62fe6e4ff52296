// A float network -> an fp32 ONNX model, from one trace of its leaf modules (see onnx_export.h).
#include <map>
#include <tuple>

#include "core/autograd.h"
#include "core/error.h"
#include "nn/batchnorm2d.h"
#include "nn/containers.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"
#include "quant/onnx/onnx_builder.h"

namespace qforge::quant {
namespace {

using onnx_detail::OnnxBuilder;

class FloatToOnnx {
 public:
  FloatToOnnx(nn::Module& root, const std::vector<int>& input_shape, const std::string& path)
      : root_(root), shape_(input_shape), path_(path), b_("qforge_float") {
    for (auto& [n, m] : root.named_modules()) names_[m.get()] = n;
  }

  OnnxExportSummary run(const OnnxMetadata& meta) {
    QF_CHECK(shape_.size() == 3, path_ + ": the float export needs the input shape C, H, W");
    const bool was_training = root_.training();
    root_.eval();
    NoGradGuard ng;
    Tensor x = Tensor::zeros({1, shape_[0], shape_[1], shape_[2]});
    b_.input("input", shape_);
    const std::string logits = b_.fresh("logits");
    value_[key(x)] = "input";
    std::vector<nn::TraceEvent> events;
    Tensor y;
    {
      nn::Tracer tracer([](const nn::Module& m) { return !nn::is_container(m); });
      y = root_(x);
      events = std::move(tracer.events);
    }
    root_.train(was_training);
    for (auto& e : events) emit(e);
    std::string out = input_of(y, "the network's output");
    QF_CHECK(y.dim() == 2, path_ + ": the network's output has " + std::to_string(y.dim()) +
                               " dimensions; the export expects logits (N, classes)");
    QF_CHECK(out != "input", path_ + ": the network computes nothing");
    auto& last = b_.last();
    QF_CHECK(last.output(0) == out, path_ + ": the network's output is not its last module's");
    last.set_output(0, logits);
    b_.output(logits, y.size(1));
    return b_.save(path_, meta);
  }

 private:
  using Key = std::tuple<const Storage*, int64_t, Shape>;
  static Key key(const Tensor& t) { return {t.impl()->storage.get(), t.impl()->offset, t.shape()}; }

  std::string input_of(const Tensor& t, const std::string& what) {
    auto it = value_.find(key(t));
    if (it != value_.end()) return it->second;
    // A reshape in a container's forward (ResNet's x.reshape({N, -1}) before fc): a view of a known
    // N,C,H,W value, same storage and offset, flattened to (N, C*H*W): an ONNX Flatten.
    auto v = view_of_.find({t.impl()->storage.get(), t.impl()->offset});
    if (v != view_of_.end() && t.dim() == 2 && v->second.second.size() == 4 && t.size(0) == v->second.second[0] &&
        t.numel() == numel_of(v->second.second)) {
      const std::string f =
          b_.op("Flatten", {v->second.first}, v->second.first + ".flatten", v->second.first + ".flat");
      value_[key(t)] = f;
      return f;
    }
    throw Error(path_ + ": " + what +
                " reads a tensor made outside the modules the export knows (an operation written in a container's "
                "forward?)");
  }

  std::string tensor(const std::string& name, const Tensor& t) {
    return b_.f32(name, {t.shape().begin(), t.shape().end()}, t.data());
  }

  void emit(const nn::TraceEvent& e) {
    const nn::Module& m = *e.module;
    const std::string name = names_.count(&m) ? names_[&m] : m.type();
    QF_CHECK(!m.post(), path_ + ": module '" + name + "' (" + m.type() +
                            ") carries an observer or fake-quant: export the float checkpoint, or convert the "
                            "prepared one to int8 and export the .qfm");
    const std::string in = input_of(e.inputs[0], "module '" + name + "' (" + m.type() + ")");
    const std::string out_name = name;
    std::string out;
    if (auto* c = dynamic_cast<const nn::Conv2d*>(&m)) {
      std::vector<std::string> ins = {in, tensor(name + ".weight", c->weight)};
      if (c->bias.defined()) ins.push_back(tensor(name + ".bias", c->bias));
      out = b_.op("Conv", ins, name, out_name);
      const ConvGeometry& g = c->geometry();
      auto& n = b_.last();
      OnnxBuilder::attr(n, "kernel_shape", std::vector<int64_t>{c->weight.size(2), c->weight.size(3)});
      OnnxBuilder::attr(n, "strides", std::vector<int64_t>{g.stride_h, g.stride_w});
      OnnxBuilder::attr(n, "pads", std::vector<int64_t>{g.pad_h, g.pad_w, g.pad_h, g.pad_w});
      OnnxBuilder::attr(n, "dilations", std::vector<int64_t>{g.dilation_h, g.dilation_w});
      OnnxBuilder::attr(n, "group", int64_t{g.groups});
    } else if (auto* bn = dynamic_cast<const nn::BatchNorm2d*>(&m)) {
      out = b_.op("BatchNormalization",
                  {in, tensor(name + ".weight", bn->weight), tensor(name + ".bias", bn->bias),
                   tensor(name + ".running_mean", bn->running_mean), tensor(name + ".running_var", bn->running_var)},
                  name, out_name);
      OnnxBuilder::attr(b_.last(), "epsilon", bn->eps);
    } else if (dynamic_cast<const nn::ReLU*>(&m)) {
      out = b_.op("Relu", {in}, name, out_name);
    } else if (dynamic_cast<const nn::ReLU6*>(&m)) {
      if (clip_min_.empty()) {
        clip_min_ = b_.scalar_f32("relu6.min", 0.f);
        clip_max_ = b_.scalar_f32("relu6.max", 6.f);
      }
      out = b_.op("Clip", {in, clip_min_, clip_max_}, name, out_name);
    } else if (auto* p = dynamic_cast<const nn::MaxPool2d*>(&m)) {
      out = b_.op("MaxPool", {in}, name, out_name);
      auto& n = b_.last();
      const Pool2dArgs& a = p->args;
      OnnxBuilder::attr(n, "kernel_shape", std::vector<int64_t>{a.kernel_h, a.kernel_w});
      OnnxBuilder::attr(n, "strides", std::vector<int64_t>{a.stride_h, a.stride_w});
      OnnxBuilder::attr(n, "pads", std::vector<int64_t>{a.pad_h, a.pad_w, a.pad_h, a.pad_w});
    } else if (dynamic_cast<const nn::AdaptiveAvgPool2d*>(&m)) {
      out = b_.op("GlobalAveragePool", {in}, name, out_name);
    } else if (dynamic_cast<const nn::Flatten*>(&m)) {
      out = b_.op("Flatten", {in}, name, out_name);
    } else if (auto* l = dynamic_cast<const nn::Linear*>(&m)) {
      Tensor bias = l->bias.defined() ? l->bias : Tensor::zeros({l->out_features()});
      QF_CHECK(e.inputs[0].dim() == 2, path_ + ": Linear '" + name + "' reads a " + std::to_string(e.inputs[0].dim()) +
                                           "-dimensional tensor; the export maps Linear to Gemm (N, K)");
      out = b_.op("Gemm", {in, tensor(name + ".weight", l->weight), tensor(name + ".bias", bias)}, name, out_name);
      OnnxBuilder::attr(b_.last(), "transB", int64_t{1});
    } else if (auto* a = dynamic_cast<const nn::Add*>(&m)) {
      QF_CHECK(e.inputs.size() == 2, path_ + ": Add '" + name + "' without two inputs");
      const std::string in2 = input_of(e.inputs[1], "module '" + name + "' (" + m.type() + ")");
      out = b_.op("Add", {in, in2}, name, a->relu ? name + ".sum" : out_name);
      if (a->relu) out = b_.op("Relu", {out}, name + ".relu", out_name);
    } else if (dynamic_cast<const nn::Dropout*>(&m) || dynamic_cast<const nn::Identity*>(&m)) {
      out = in;  // the identity in eval mode
    } else {
      throw Error(path_ + ": cannot export module '" + name + "' (" + m.type() +
                  ") to ONNX: supported are Conv2d, BatchNorm2d, ReLU, ReLU6, MaxPool2d, AdaptiveAvgPool2d, "
                  "Flatten, Linear, Add, Dropout, Identity");
    }
    value_[key(e.output)] = out;
    view_of_[{e.output.impl()->storage.get(), e.output.impl()->offset}] = {out, e.output.shape()};
  }

  nn::Module& root_;
  std::vector<int> shape_;
  std::string path_;
  OnnxBuilder b_;
  std::map<const nn::Module*, std::string> names_;
  std::map<Key, std::string> value_;
  std::map<std::pair<const Storage*, int64_t>, std::pair<std::string, Shape>> view_of_;  // the last value per storage
  std::string clip_min_, clip_max_;
};

}  // namespace

OnnxExportSummary export_float_onnx(nn::Module& model, const std::vector<int>& input_shape, const std::string& path,
                                    const OnnxMetadata& meta) {
  return FloatToOnnx(model, input_shape, path).run(meta);
}

}  // namespace qforge::quant

#include "quant/convert.h"

#include <cmath>
#include <map>

#include "core/autograd.h"
#include "core/error.h"
#include "nn/containers.h"
#include "nn/layers.h"
#include "quant/dynamic.h"
#include "quant/fused.h"

namespace qforge::quant {
namespace {

QParams act_qparams(const nn::Module& m, const std::string& name) {
  auto fq = std::dynamic_pointer_cast<FakeQuantize>(m.post());
  QF_CHECK(fq, "convert: '" + name + "' (" + m.type() + ") has no output quantization; prepare the model first");
  QF_CHECK(fq->observer()->has_data() || fq->lsq(),
           "convert: '" + name +
               "' output quantizer never saw data; calibrate (ptq) or train (qat) the prepared model first");
  auto qp = fq->qparams();
  QF_CHECK(qp.size() == 1, "convert: '" + name + "' output is quantized per channel; activations must be per tensor");
  return qp[0];
}

class Converter {
 public:
  Converter(nn::Module& root, const std::vector<int>& input_shape) : root_(root) {
    g_.input_shape = input_shape;
    for (auto& [n, m] : root.named_modules()) names_[m.get()] = n;
  }

  Int8Graph run() {
    root_.eval();
    NoGradGuard ng;
    Tensor x = Tensor::zeros({1, g_.input_shape[0], g_.input_shape[1], g_.input_shape[2]});
    g_.values.push_back({false, {}});
    value_of_[x.impl()->storage.get()] = 0;
    shape_of_[0] = x.shape();
    std::vector<nn::TraceEvent> events;
    {
      nn::Tracer tracer([](const nn::Module& m) { return !nn::is_container(m); });
      root_(x);
      events = std::move(tracer.events);
    }
    for (auto& e : events) node_for(e);
    int out = last_;
    if (g_.values[out].quantized) out = add_node(node(OpKind::kDequantize, "output", {out}), {false, {}});
    g_.output = out;
    return std::move(g_);
  }

 private:
  int input_value(const Tensor& t, const std::string& name) {
    auto it = value_of_.find(t.impl()->storage.get());
    QF_CHECK(it != value_of_.end(),
             "convert: the input of '" + name + "' comes from an operation outside the modules the converter knows");
    return it->second;
  }

  static GraphNode node(OpKind op, const std::string& name, std::vector<int> ins) {
    GraphNode n;
    n.op = op;
    n.name = name;
    n.inputs = std::move(ins);
    return n;
  }

  // Adds node n (its attributes set), writing a new value described by out; returns the value.
  int add_node(GraphNode n, GraphValue out) {
    g_.values.push_back(out);
    n.output = static_cast<int>(g_.values.size()) - 1;
    g_.nodes.push_back(std::move(n));
    return g_.nodes.back().output;
  }

  // Records that tensor t holds value v (a new value, or an alias such as a
  // Flatten's view, which keeps the shape the value was made with).
  void bind(const Tensor& t, int v) {
    value_of_[t.impl()->storage.get()] = v;
    shape_of_.emplace(v, t.shape());
    last_ = v;
  }

  // Weight, bias and scales of a quantized conv or linear, as the simulation computes them.
  void add_weights(const std::string& name, const Tensor& w, const Tensor& b, const FakeQuantize& wfq, float s_in) {
    QF_CHECK(wfq.observer()->has_data() || wfq.lsq(), "convert: '" + name +
                                                          "' weight quantizer never saw the weights; run the prepared "
                                                          "model forward in training mode or calibrate first");
    auto qps = wfq.qparams();
    const int oc = static_cast<int>(w.size(0));
    const int64_t per = w.numel() / oc;
    QF_CHECK(static_cast<int>(qps.size()) == oc || qps.size() == 1,
             "convert: '" + name + "' weight quantization does not match its channels");
    std::vector<int8_t> wq(w.numel());
    std::vector<int32_t> bq(oc);
    std::vector<float> ws(oc);
    for (int c = 0; c < oc; ++c) {
      const QParams& qp = qps.size() == 1 ? qps[0] : qps[c];
      QF_CHECK(qp.zero_point == 0 && qp.qmin >= -128 && qp.qmax <= 127,
               "convert: '" + name + "' weights must be symmetric int8");
      const float inv = 1.f / qp.scale;
      for (int64_t i = 0; i < per; ++i)
        wq[c * per + i] = static_cast<int8_t>(quantize_val(w.data()[c * per + i], inv, 0, qp.qmin, qp.qmax));
      ws[c] = qp.scale;
      double bv =
          b.defined() ? std::nearbyint(static_cast<double>(b.data()[c]) / (static_cast<double>(s_in) * qp.scale)) : 0.0;
      bq[c] = static_cast<int32_t>(std::clamp(bv, -2147483647.0, 2147483647.0));
    }
    g_.tensors[name + ".weight"] = nn::raw_entry("I8", w.shape(), wq.data());
    g_.tensors[name + ".bias"] = nn::raw_entry("I32", {oc}, bq.data());
    g_.tensors[name + ".weight_scale"] = nn::raw_entry("F32", {oc}, ws.data());
  }

  // One converter per prepared module type: it emits the module's int8 node(s) and binds its output.
  using Emit = void (Converter::*)(const nn::TraceEvent& e, const nn::Module& m, const std::string& name);
  struct Rule {
    const char* name;  // in the message for a module no rule takes
    bool (*is)(const nn::Module&);
    Emit emit;
  };
  template <class T>
  static bool is_a(const nn::Module& m) {
    return dynamic_cast<const T*>(&m) != nullptr;
  }
  static const std::vector<Rule>& rules() {
    static const std::vector<Rule> table = {
        {"ConvBnAct (Conv2d [+BatchNorm2d] [+ReLU|ReLU6], any groups)", is_a<ConvBnAct>, &Converter::conv},
        {"LinearAct (Linear [+ReLU])", is_a<LinearAct>, &Converter::linear},
        {"DynamicQuantLinear", is_a<DynamicQuantLinear>, &Converter::dynamic_linear},
        {"Add (with or without ReLU)", is_a<nn::Add>, &Converter::add},
        {"MaxPool2d", is_a<nn::MaxPool2d>, &Converter::maxpool},
        {"AdaptiveAvgPool2d", is_a<nn::AdaptiveAvgPool2d>, &Converter::avgpool},
        {"Identity", is_a<nn::Identity>, &Converter::identity},
        {"Flatten", is_a<nn::Flatten>, &Converter::identity},
        {"Dropout", is_a<nn::Dropout>, &Converter::dropout},
    };
    return table;
  }

  void node_for(const nn::TraceEvent& e) {
    const nn::Module& m = *e.module;
    const std::string name = names_.count(&m) ? names_[&m] : m.type();
    for (const Rule& r : rules())
      if (r.is(m)) return (this->*r.emit)(e, m, name);
    std::string supported;
    for (const Rule& r : rules()) supported += (supported.empty() ? "" : ", ") + std::string(r.name);
    throw Error("convert: cannot convert module '" + name + "' (" + m.type() + "): supported are " + supported +
                " (fuse and prepare the model first)");
  }

  int quantized_input(const nn::TraceEvent& e, const std::string& name) {
    const int in = input_value(e.inputs[0], name);
    QF_CHECK(g_.values[in].quantized, "convert: the input of '" + name + "' is not quantized");
    return in;
  }

  // Conv [+BN] [+ReLU/ReLU6], any groups (grouped weights are (OC, C/groups, KH, KW)); the activation
  // is the clamp of the output requantization.
  void conv(const nn::TraceEvent& e, const nn::Module& m, const std::string& name) {
    const auto& c = static_cast<const ConvBnAct&>(m);
    QF_CHECK(c.weight_fake_quant, "convert: '" + name + "' (" + m.type() +
                                      ") is kept in float; only a final linear layer can stay float in the int8 graph");
    const int in = quantized_input(e, name);
    // The weight the simulation fake-quantizes: conv.weight * (gamma * (1 / sqrt(var + eps))).
    Tensor w = c.conv->weight.clone();
    Tensor b;
    if (c.bn) {
      auto [fw, fb] = c.folded_weight_bias();
      w = fw;
      b = fb;
    } else if (c.conv->bias.defined()) {
      b = c.conv->bias;
    }
    add_weights(name, w, b, *c.weight_fake_quant, g_.values[in].qp.scale);
    const nn::Conv2dOptions& o = c.conv->options();
    GraphNode n = node(OpKind::kQConv2d, name, {in});
    n.conv = {o.in_channels, o.out_channels, o.kernel, o.geometry};
    n.act = c.act;
    bind(e.output, add_node(std::move(n), {true, act_qparams(m, name)}));
  }

  void linear(const nn::TraceEvent& e, const nn::Module& m, const std::string& name) {
    const auto& l = static_cast<const LinearAct&>(m);
    int in = input_value(e.inputs[0], name);
    const nn::Linear& lin = *l.linear;
    if (!l.weight_fake_quant) {
      // Float: its input is dequantized to NCHW, the order the weight already has.
      const Tensor& w = lin.weight;
      QF_CHECK(l.act == Act::kNone, "convert: float '" + name + "' with a fused activation is not supported");
      if (g_.values[in].quantized) in = add_node(node(OpKind::kDequantize, name + ".dequant", {in}), {false, {}});
      g_.tensors[name + ".weight"] = nn::f32_entry(w);
      Tensor b = lin.bias.defined() ? lin.bias : Tensor::zeros({lin.out_features()});
      g_.tensors[name + ".bias"] = nn::f32_entry(b);
      GraphNode n = node(OpKind::kLinear, name, {in});
      n.linear = {lin.in_features(), lin.out_features()};
      bind(e.output, add_node(std::move(n), {false, {}}));
      return;
    }
    QF_CHECK(g_.values[in].quantized, "convert: the input of '" + name + "' is not quantized");
    add_weights(name, permuted_linear_weight(lin.weight, in), lin.bias, *l.weight_fake_quant, g_.values[in].qp.scale);
    GraphNode n = node(OpKind::kQLinear, name, {in});
    n.linear = {lin.in_features(), lin.out_features()};
    n.act = l.act;
    bind(e.output, add_node(std::move(n), {true, act_qparams(m, name)}));
  }

  void dynamic_linear(const nn::TraceEvent& e, const nn::Module& m, const std::string& name) {
    const auto& d = static_cast<const DynamicQuantLinear&>(m);
    int in = input_value(e.inputs[0], name);
    if (g_.values[in].quantized) in = add_node(node(OpKind::kDequantize, name + ".dequant", {in}), {false, {}});
    g_.tensors[name + ".weight"] = nn::raw_entry("I8", {d.out_features, d.in_features}, d.weight.data());
    g_.tensors[name + ".weight_scale"] = nn::raw_entry("F32", {d.out_features}, d.weight_scale.data());
    g_.tensors[name + ".bias"] = nn::raw_entry("F32", {d.out_features}, d.bias.data());
    GraphNode n = node(OpKind::kDynamicLinear, name, {in});
    n.linear = {d.in_features, d.out_features};
    bind(e.output, add_node(std::move(n), {false, {}}));
  }

  // The residual join, with ReLU (ResNet) or without (MobileNetV2).
  void add(const nn::TraceEvent& e, const nn::Module& m, const std::string& name) {
    const auto& a = static_cast<const nn::Add&>(m);
    const int x = input_value(e.inputs[0], name), y = input_value(e.inputs[1], name);
    QF_CHECK(g_.values[x].quantized && g_.values[y].quantized,
             "convert: the inputs of '" + name + "' are not both quantized");
    GraphNode n = node(OpKind::kQAdd, name, {x, y});
    n.act = a.relu ? Act::kReLU : Act::kNone;
    bind(e.output, add_node(std::move(n), {true, act_qparams(m, name)}));
  }

  void maxpool(const nn::TraceEvent& e, const nn::Module& m, const std::string& name) {
    const auto& p = static_cast<const nn::MaxPool2d&>(m);
    const int in = quantized_input(e, name);
    QF_CHECK(!m.post(), "convert: '" + name + "' (MaxPool2d) should not have its own quantization");
    GraphNode n = node(OpKind::kQMaxPool2d, name, {in});
    n.pool = {p.args.kernel_h, p.args.stride_h, p.args.pad_h};
    bind(e.output, add_node(std::move(n), g_.values[in]));
  }

  void avgpool(const nn::TraceEvent& e, const nn::Module& m, const std::string& name) {
    const int in = quantized_input(e, name);
    bind(e.output, add_node(node(OpKind::kQGlobalAvgPool, name, {in}), {true, act_qparams(m, name)}));
  }

  // Identity, Flatten: a no-op, or where the model input is quantized (an Identity with output quantization).
  void identity(const nn::TraceEvent& e, const nn::Module& m, const std::string& name) {
    const int in = input_value(e.inputs[0], name);
    if (!m.post()) {
      bind(e.output, in);  // a no-op: the output is the input
    } else {
      QF_CHECK(!g_.values[in].quantized, "convert: '" + name + "' quantizes a value that is already quantized");
      bind(e.output, add_node(node(OpKind::kQuantize, name, {in}), {true, act_qparams(m, name)}));
    }
  }

  // Dropout is the identity in eval mode, where the graph runs: its output is its input.
  void dropout(const nn::TraceEvent& e, const nn::Module& m, const std::string& name) {
    QF_CHECK(!m.post(), "convert: '" + name + "' (Dropout) should not have its own quantization");
    bind(e.output, input_value(e.inputs[0], name));
  }

  // A linear layer after a Flatten of an (N,C,H,W) value: PyTorch flattens in
  // C,H,W order, the int8 runtime holds N,H,W,C; permute the weight's columns.
  Tensor permuted_linear_weight(const Tensor& w, int in) {
    const Shape& s = shape_of_[in];
    if (s.size() != 4 || (s[2] == 1 && s[3] == 1)) return w.clone();
    const int64_t C = s[1], H = s[2], W = s[3], out = w.size(0);
    Tensor p = Tensor::empty(w.shape());
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t x = 0; x < W; ++x)
            p.data()[o * C * H * W + (h * W + x) * C + c] = w.data()[o * C * H * W + (c * H + h) * W + x];
    return p;
  }

  nn::Module& root_;
  Int8Graph g_;
  std::map<const nn::Module*, std::string> names_;
  std::map<const Storage*, int> value_of_;
  std::map<int, Shape> shape_of_;
  int last_ = 0;
};

}  // namespace

Int8Graph convert(nn::Module& prepared, const std::vector<int>& input_shape) {
  QF_CHECK(input_shape.size() == 3, "convert: input shape must be C,H,W");
  return Converter(prepared, input_shape).run();
}

}  // namespace qforge::quant

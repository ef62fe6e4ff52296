// The int8 graph -> a QDQ ONNX model (see onnx_export.h for the op mapping).
#include <cstring>

#include "core/error.h"
#include "quant/onnx/onnx_builder.h"

namespace qforge::quant {
namespace {

using onnx_detail::OnnxBuilder;

template <class T>
std::vector<T> as_vector(const nn::StEntry& e) {
  std::vector<T> v(e.bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), e.bytes.data(), e.bytes.size());
  return v;
}

class Int8ToOnnx {
 public:
  Int8ToOnnx(const Int8Graph& g, const std::string& path) : g_(g), path_(path), b_("qforge_int8") {}

  OnnxExportSummary run(const OnnxMetadata& meta) {
    validate_graph(g_, path_);
    QF_CHECK(g_.input_shape.size() == 3, path_ + ": the int8 graph has no input shape (C, H, W)");
    const size_t V = g_.values.size();
    name_.assign(V, "");
    dims_.assign(V, {});
    scale_.assign(V, "");
    zp_.assign(V, "");
    b_.input("input", g_.input_shape);
    logits_ = b_.fresh("logits");
    name_[0] = "input";
    dims_[0] = {g_.input_shape[0], g_.input_shape[1], g_.input_shape[2]};
    for (const GraphNode& n : g_.nodes) emit(n);
    std::string out = name_[g_.output];
    if (g_.values[g_.output].quantized) out = dq(g_.output, "output");
    const auto& od = dims_[g_.output];
    int64_t classes = 1;
    for (int64_t d : od) classes *= d;
    if (od.size() != 1) out = b_.op("Flatten", {out}, "output_flatten", "output_flat");
    // The last node writes "logits" itself (no Identity).
    rename_output(out);
    b_.output(logits_, classes);
    return b_.save(path_, meta);
  }

 private:
  void rename_output(const std::string& out) {
    // The value `out` is written by the last node added (every path above ends with one).
    auto& last = b_.last();
    QF_CHECK(last.output_size() >= 1 && last.output(0) == out,
             path_ + ": the graph output is not written by its last node");
    last.set_output(0, logits_);
  }

  const QParams& qp_of(int v, const std::string& node) {
    const GraphValue& gv = g_.values[v];
    QF_CHECK(gv.quantized, path_ + ": node '" + node + "' reads a float value where uint8 is expected");
    QF_CHECK(gv.qp.zero_point >= 0 && gv.qp.zero_point <= 255 && gv.qp.qmin == 0 && gv.qp.qmax == 255,
             path_ + ": node '" + node + "': activations must be uint8 (zero point " +
                 std::to_string(gv.qp.zero_point) + ")");
    return gv.qp;
  }

  // The scale and zero point initializers of quantized value v, made on first use.
  void ensure_qparams(int v, const std::string& node) {
    if (!scale_[v].empty()) return;
    const QParams& qp = qp_of(v, node);
    scale_[v] = b_.scalar_f32(name_[v] + ".scale", qp.scale);
    zp_[v] = b_.scalar_u8(name_[v] + ".zero_point", static_cast<uint8_t>(qp.zero_point));
  }

  // A DequantizeLinear of value v for one consumer (each consumer its own, as QDQ fusers expect).
  std::string dq(int v, const std::string& consumer, const std::string& input_override = "") {
    ensure_qparams(v, consumer);
    const std::string in = input_override.empty() ? name_[v] : input_override;
    return b_.op("DequantizeLinear", {in, scale_[v], zp_[v]}, consumer + ".dequant", consumer + ".input_dq");
  }

  // QuantizeLinear of float x onto value v's grid; names the result after the node.
  std::string q(const std::string& x, int v, const std::string& node) {
    ensure_qparams(v, node);
    return b_.op("QuantizeLinear", {x, scale_[v], zp_[v]}, node + ".quant", node);
  }

  // Records the ONNX name and the C,H,W (or K) of the node's output.
  void bind(const GraphNode& n, const std::string& onnx_name, std::vector<int64_t> dims) {
    name_[n.output] = onnx_name;
    dims_[n.output] = std::move(dims);
  }

  // The int8 weight (OC, ...) dequantized per output channel, and the int32 bias at s_in * s_w[c].
  std::pair<std::string, std::string> weight_and_bias(const GraphNode& n, const std::vector<int8_t>& w,
                                                      const std::vector<int64_t>& wdims) {
    auto ws = as_vector<float>(g_.tensor(n, "weight_scale"));
    auto bias = as_vector<int32_t>(g_.tensor(n, "bias"));
    const int64_t oc = wdims[0];
    const float s_in = g_.values[n.inputs[0]].qp.scale;
    std::vector<int8_t> wzp(oc, 0);
    std::vector<float> bs(oc);
    for (int64_t c = 0; c < oc; ++c) bs[c] = s_in * ws[c];
    const std::string wq = b_.i8(n.name + ".weight", wdims, w.data());
    const std::string wsn = b_.f32(n.name + ".weight_scale", {oc}, ws.data());
    const std::string wzn = b_.i8(n.name + ".weight_zero_point", {oc}, wzp.data());
    std::string wdq = b_.op("DequantizeLinear", {wq, wsn, wzn}, n.name + ".weight_dequant", n.name + ".weight_dq");
    OnnxBuilder::attr(b_.last(), "axis", int64_t{0});
    const std::string bq = b_.i32(n.name + ".bias", {oc}, bias.data());
    const std::string bsn = b_.f32(n.name + ".bias_scale", {oc}, bs.data());
    std::string bdq = b_.op("DequantizeLinear", {bq, bsn}, n.name + ".bias_dequant", n.name + ".bias_dq");
    OnnxBuilder::attr(b_.last(), "axis", int64_t{0});
    return {wdq, bdq};
  }

  // Relu or Clip(0, 6) before Q: the requantization clamp qforge fuses.
  std::string act(const std::string& y, Act a, const std::string& node) {
    if (a == Act::kReLU) return b_.op("Relu", {y}, node + ".relu", node + ".relu_out");
    if (a == Act::kReLU6) {
      if (clip_min_.empty()) {
        clip_min_ = b_.scalar_f32("relu6.min", 0.f);
        clip_max_ = b_.scalar_f32("relu6.max", 6.f);
      }
      return b_.op("Clip", {y, clip_min_, clip_max_}, node + ".relu6", node + ".relu6_out");
    }
    return y;
  }

  // A rank-2 view of value v for Gemm: Flatten (on uint8 or float, a pure reshape) when v is N,C,H,W.
  std::string flat(int v, const std::string& node) {
    if (dims_[v].size() == 1) return name_[v];
    return b_.op("Flatten", {name_[v]}, node + ".flatten", node + ".flat");
  }

  void emit(const GraphNode& n) {
    const int in = n.inputs[0];
    const auto& id = dims_[in];
    switch (n.op) {
      case OpKind::kQuantize: {
        QF_CHECK(!g_.values[in].quantized, path_ + ": Quantize '" + n.name + "' reads a quantized value");
        name_[n.output] = n.name;  // the scale initializers are named after it
        bind(n, q(name_[in], n.output, n.name), id);
        return;
      }
      case OpKind::kQConv2d: {
        auto w = as_vector<int8_t>(g_.tensor(n, "weight"));
        const Shape& ws = g_.tensor(n, "weight").shape;
        const std::vector<int64_t> wd(ws.begin(), ws.end());
        auto [wdq, bdq] = weight_and_bias(n, w, wd);
        const ConvGeometry& geo = n.conv.geometry;
        std::string y = b_.op("Conv", {dq(in, n.name), wdq, bdq}, n.name, n.name + ".conv_out");
        auto& c = b_.last();
        OnnxBuilder::attr(c, "kernel_shape", std::vector<int64_t>{wd[2], wd[3]});
        OnnxBuilder::attr(c, "strides", std::vector<int64_t>{geo.stride_h, geo.stride_w});
        OnnxBuilder::attr(c, "pads", std::vector<int64_t>{geo.pad_h, geo.pad_w, geo.pad_h, geo.pad_w});
        OnnxBuilder::attr(c, "dilations", std::vector<int64_t>{geo.dilation_h, geo.dilation_w});
        OnnxBuilder::attr(c, "group", int64_t{geo.groups});
        y = act(y, n.act, n.name);
        name_[n.output] = n.name;
        bind(n, q(y, n.output, n.name),
             {wd[0], geo.out_h(static_cast<int>(id[1]), static_cast<int>(wd[2])),
              geo.out_w(static_cast<int>(id[2]), static_cast<int>(wd[3]))});
        return;
      }
      case OpKind::kQLinear: {
        auto w = as_vector<int8_t>(g_.tensor(n, "weight"));
        const int64_t N = n.linear.out_features, K = n.linear.in_features;
        if (id.size() == 3 && id[1] * id[2] > 1) w = nchw_columns(w, N, id);
        auto [wdq, bdq] = weight_and_bias(n, w, {N, K});
        const std::string x = dq(in, n.name, flat(in, n.name));
        std::string y = b_.op("Gemm", {x, wdq, bdq}, n.name, n.name + ".gemm_out");
        OnnxBuilder::attr(b_.last(), "transB", int64_t{1});
        y = act(y, n.act, n.name);
        name_[n.output] = n.name;
        bind(n, q(y, n.output, n.name), {N});
        return;
      }
      case OpKind::kQAdd: {
        const std::string a = dq(n.inputs[0], n.name), bb = dq(n.inputs[1], n.name);
        std::string y = b_.op("Add", {a, bb}, n.name, n.name + ".add_out");
        y = act(y, n.act, n.name);
        name_[n.output] = n.name;
        bind(n, q(y, n.output, n.name), id);
        return;
      }
      case OpKind::kQMaxPool2d: {
        const PoolAttrs& p = n.pool;
        std::string y = b_.op("MaxPool", {dq(in, n.name)}, n.name, n.name + ".pool_out");
        auto& m = b_.last();
        OnnxBuilder::attr(m, "kernel_shape", std::vector<int64_t>{p.kernel, p.kernel});
        OnnxBuilder::attr(m, "strides", std::vector<int64_t>{p.stride, p.stride});
        OnnxBuilder::attr(m, "pads", std::vector<int64_t>{p.padding, p.padding, p.padding, p.padding});
        name_[n.output] = n.name;
        auto os = [&](int64_t s) {
          return ConvGeometry::out_size(static_cast<int>(s), p.kernel, p.stride, p.padding, 1);
        };
        bind(n, q(y, n.output, n.name), {id[0], os(id[1]), os(id[2])});
        return;
      }
      case OpKind::kQGlobalAvgPool: {
        std::string y = b_.op("GlobalAveragePool", {dq(in, n.name)}, n.name, n.name + ".pool_out");
        name_[n.output] = n.name;
        bind(n, q(y, n.output, n.name), {id[0], 1, 1});
        return;
      }
      case OpKind::kDequantize:
        bind(n, dq(in, n.name), id);
        return;
      case OpKind::kLinear: {
        QF_CHECK(!g_.values[in].quantized, path_ + ": Linear '" + n.name + "' reads a quantized value");
        auto w = as_vector<float>(g_.tensor(n, "weight"));
        auto bias = as_vector<float>(g_.tensor(n, "bias"));
        const int64_t N = n.linear.out_features, K = n.linear.in_features;
        const std::string wn = b_.f32(n.name + ".weight", {N, K}, w.data());
        const std::string bn = b_.f32(n.name + ".bias", {N}, bias.data());
        bind(n, b_.op("Gemm", {flat(in, n.name), wn, bn}, n.name, n.name + ".out"), {N});
        OnnxBuilder::attr(b_.last(), "transB", int64_t{1});
        return;
      }
      case OpKind::kDynamicLinear: {
        QF_CHECK(!g_.values[in].quantized, path_ + ": DynamicLinear '" + n.name + "' reads a quantized value");
        auto w = as_vector<int8_t>(g_.tensor(n, "weight"));
        auto ws = as_vector<float>(g_.tensor(n, "weight_scale"));
        auto bias = as_vector<float>(g_.tensor(n, "bias"));
        const int64_t N = n.linear.out_features, K = n.linear.in_features;
        const std::string xq = b_.fresh(n.name + ".input_q"), xs = b_.fresh(n.name + ".input_scale"),
                          xz = b_.fresh(n.name + ".input_zero_point");
        b_.op_multi("DynamicQuantizeLinear", {flat(in, n.name)}, {xq, xs, xz}, n.name + ".quant");
        const std::string x = b_.op("DequantizeLinear", {xq, xs, xz}, n.name + ".dequant", n.name + ".input_dq");
        std::vector<int8_t> wzp(N, 0);
        const std::string wq = b_.i8(n.name + ".weight", {N, K}, w.data());
        const std::string wsn = b_.f32(n.name + ".weight_scale", {N}, ws.data());
        const std::string wzn = b_.i8(n.name + ".weight_zero_point", {N}, wzp.data());
        const std::string wdq =
            b_.op("DequantizeLinear", {wq, wsn, wzn}, n.name + ".weight_dequant", n.name + ".weight_dq");
        OnnxBuilder::attr(b_.last(), "axis", int64_t{0});
        const std::string bn = b_.f32(n.name + ".bias", {N}, bias.data());
        bind(n, b_.op("Gemm", {x, wdq, bn}, n.name, n.name + ".out"), {N});
        OnnxBuilder::attr(b_.last(), "transB", int64_t{1});
        return;
      }
    }
    throw Error(path_ + ": node '" + n.name + "': op " + op_name(n.op) + " has no ONNX export");
  }

  // QLinear after a spatial flatten: the .qfm weight's columns are in the runtime's (H, W, C)
  // order (quant/convert.cpp permutes them); ONNX flattens N,C,H,W in (C, H, W) order.
  static std::vector<int8_t> nchw_columns(const std::vector<int8_t>& w, int64_t out, const std::vector<int64_t>& chw) {
    const int64_t C = chw[0], H = chw[1], W = chw[2];
    std::vector<int8_t> r(w.size());
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t x = 0; x < W; ++x)
            r[o * C * H * W + (c * H + h) * W + x] = w[o * C * H * W + (h * W + x) * C + c];
    return r;
  }

  const Int8Graph& g_;
  std::string path_;
  OnnxBuilder b_;
  std::string logits_, clip_min_, clip_max_;
  std::vector<std::string> name_, scale_, zp_;  // per graph value: its ONNX tensor, and (uint8) its parameters
  std::vector<std::vector<int64_t>> dims_;      // per graph value: C,H,W or K (without N)
};

}  // namespace

bool onnx_export_available() { return true; }

OnnxExportSummary export_int8_onnx(const Int8Graph& g, const std::string& path, const OnnxMetadata& meta) {
  return Int8ToOnnx(g, path).run(meta);
}

}  // namespace qforge::quant

// ONNX export: the int8 graph as a QDQ model, and a float network as an fp32 model.
//
//   quant::export_int8_onnx(quant::load_int8_model("m.qfm"), "m.onnx", {});
//   quant::export_float_onnx(*net, {1, 28, 28}, "f.onnx", {});
//
// Both write opset 13, IR version 7, one input "input" (float N,C,H,W; N symbolic) and one
// output "logits" (float N,classes), through Debian's libonnx (onnx_proto, protobuf), to a
// temporary file renamed into place.
//
// The int8 graph becomes the QDQ form that ONNX Runtime, OpenVINO and TensorRT fuse back into
// integer kernels: every uint8 activation is a QuantizeLinear output (per tensor, its scale and
// zero point), read through its own DequantizeLinear by each consumer; weights are int8
// initializers dequantized per output channel (axis 0, zero points 0); biases int32 at scale
// input_scale x weight_scale[c]. Ops:
//   Quantize        QuantizeLinear
//   QConv2d         DQ -> Conv(DQ w, DQ b; group) [-> Relu | Clip(0, 6)] -> Q
//   QLinear         [Flatten (uint8)] -> DQ -> Gemm(transB) [-> Relu | Clip] -> Q
//   QAdd            DQ, DQ -> Add [-> Relu] -> Q
//   QMaxPool2d      DQ -> MaxPool -> Q (the input's parameters)
//   QGlobalAvgPool  DQ -> GlobalAveragePool -> Q
//   Dequantize      DequantizeLinear
//   Linear          [Flatten] -> Gemm (float)
//   DynamicLinear   DynamicQuantizeLinear -> DQ -> Gemm(DQ w per channel, float bias)
// qforge folds ReLU / ReLU6 into the requantization clamp ([zp, 255] / [zp, q(6)]); Relu or
// Clip(0, 6) right before Q computes the same clamp, and is the pattern runtimes fold away.
// qforge requantizes in fixed point (gemmlowp rounding), ONNX in float (round half to even):
// the two may differ by one step now and then, which later layers can carry on.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/module.h"
#include "quant/graph.h"

namespace qforge::quant {

// Model-level metadata written as metadata_props (e.g. "classes", "normalization").
using OnnxMetadata = std::map<std::string, std::string>;

// False when this qforge was built without libonnx-dev / libprotobuf-dev; the exports then throw.
bool onnx_export_available();

struct OnnxExportSummary {
  int nodes = 0, initializers = 0;
};

OnnxExportSummary export_int8_onnx(const Int8Graph& g, const std::string& path, const OnnxMetadata& meta);

// A float network (eval mode, BatchNorm2d as BatchNormalization from its running statistics),
// traced once on a zero input of input_shape (C, H, W). Leaf modules: Conv2d, BatchNorm2d, ReLU,
// ReLU6, MaxPool2d, AdaptiveAvgPool2d (global), Flatten, Linear, Add (with or without ReLU),
// Dropout and Identity (no-ops); any other module is named in the error.
OnnxExportSummary export_float_onnx(nn::Module& model, const std::vector<int>& input_shape, const std::string& path,
                                    const OnnxMetadata& meta);

}  // namespace qforge::quant

// qforge export: an int8 model's quantized weights as plain safetensors
// (int8 weights, their scales and zero points, int32 biases) plus a JSON
// manifest of the graph, readable without qforge (--format safetensors, the
// default); or, with --format onnx, an int8 model as a QDQ ONNX model or a float
// checkpoint as an fp32 ONNX model (quant/onnx/onnx_export.h).
#include <cstdio>

#include "apps/commands.h"
#include "apps/models.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "quant/graph.h"
#include "quant/onnx/onnx_export.h"
#include "quant/runtime.h"

namespace qforge::apps {
namespace {

// The model's classes and normalisation, for whoever feeds the ONNX model.
quant::OnnxMetadata onnx_metadata(const std::string& model, const LoadedModel& lm) {
  const nlohmann::json& cfg = lm.config.j;
  return {
      {"qforge.source", model},
      {"qforge.kind", lm.kind},
      {"qforge.classes", nlohmann::json(lm.classes).dump()},
      {"qforge.input",
       "float N,C,H,W = " + nlohmann::json(lm.input).dump() + ", normalised: (pixel / 255 - mean[c]) / std[c]"},
      {"qforge.normalization", nlohmann::json{{"mean", cfg.value("/data/mean"_json_pointer, nlohmann::json::array())},
                                              {"std", cfg.value("/data/std"_json_pointer, nlohmann::json::array())}}
                                   .dump()}};
}

void run_export_onnx(const std::string& model, const std::string& out) {
  QF_CHECK(quant::onnx_export_available(),
           out +
               ": this qforge was built without ONNX support; install libonnx-dev and libprotobuf-dev "
               "(scripts/setup.sh does) and rebuild");
  LoadedModel lm = load_model_file(model, nullptr);
  quant::OnnxExportSummary s;
  const char* what = "";
  if (lm.kind == "int8") {
    s = quant::export_int8_onnx(std::static_pointer_cast<quant::Int8Module>(lm.module)->runtime().graph(), out,
                                onnx_metadata(model, lm));
    what = "int8 QDQ";
  } else {
    QF_CHECK(lm.kind == "float", model + ": a " + lm.kind +
                                     " checkpoint (fake-quant simulation) has no ONNX export; convert it to int8 "
                                     "(qforge convert) and export the .qfm, or export the float checkpoint");
    QF_CHECK(lm.input.size() == 3, model + ": no input size stored in the checkpoint");
    s = quant::export_float_onnx(*lm.module, lm.input, out, onnx_metadata(model, lm));
    what = "fp32";
  }
  std::printf("wrote %s (%s ONNX, opset 13, IR 7: %d nodes, %d initializers)\n", out.c_str(), what, s.nodes,
              s.initializers);
}

void run_export(const std::string& model, const std::string& out) {
  quant::Int8Graph g = quant::load_int8_model(model);
  make_directories(out);
  std::vector<std::pair<std::string, nn::StEntry>> tensors;
  for (auto& [name, e] : g.tensors) {
    tensors.emplace_back(name, e);
    // Weights are symmetric: write their (zero) zero points beside the scales, so readers need no convention.
    if (name.size() > 13 && name.compare(name.size() - 13, 13, ".weight_scale") == 0) {
      std::vector<int32_t> zp(numel_of(e.shape), 0);
      tensors.emplace_back(name.substr(0, name.size() - 5) + "zero_point", nn::raw_entry("I32", e.shape, zp.data()));
    }
  }
  nn::write_safetensors(out + "/weights.safetensors", tensors, {{"format", "qforge-int8-weights"}, {"source", model}});
  nlohmann::json m = g.to_json();
  m["source"] = model;
  m["weights"] = "weights.safetensors";
  m["normalization"] = {{"mean", g.config.value("/data/mean"_json_pointer, nlohmann::json::array())},
                        {"std", g.config.value("/data/std"_json_pointer, nlohmann::json::array())}};
  m["scheme"] = {
      {"activations", "uint8, per tensor, affine: real = scale * (q - zero_point); layout NHWC"},
      {"weights",
       "int8, per output channel, symmetric (zero point 0): real = weight_scale[c] * q; layout (OC, C, KH, KW)"},
      {"bias", "int32 at scale input_scale * weight_scale[c]"},
      {"requantization",
       "acc (int32) = bias + sum (x - x_zero_point) * w; out = clamp(round(acc * input_scale * weight_scale[c] / "
       "output_scale) + output_zero_point), the multiplier as a fixed-point int32 and shift, rounded once "
       "(half up) in 64 bits"}};
  write_text_atomic(out + "/manifest.json", m.dump(2) + "\n");
  std::printf("wrote %s/weights.safetensors (%zu tensors) and %s/manifest.json (%zu nodes)\n", out.c_str(),
              tensors.size(), out.c_str(), g.nodes.size());
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto model = std::make_shared<std::string>(), out = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("safetensors");
  auto* c = app.add_subcommand("export",
                               "Export an int8 model's quantized weights (safetensors) and graph (JSON), or a model "
                               "as ONNX (--format onnx: int8 as QDQ, a float checkpoint as fp32)");
  c->add_option("--model", *model, "Int8 model (.qfm); with --format onnx also a float checkpoint (.safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--out", *out, "Output directory (safetensors) or file (onnx)")->required();
  c->add_option("--format", *format, "safetensors (weights + JSON manifest) or onnx")
      ->check(CLI::IsMember({"safetensors", "onnx"}))
      ->capture_default_str();
  c->callback([model, out, format] {
    if (*format == "onnx") {
      run_export_onnx(*model, *out);
    } else {
      run_export(*model, *out);
    }
  });
}

}  // namespace qforge::apps

// qforge export: an int8 model's quantized weights as plain safetensors
// (int8 weights, their scales and zero points, int32 biases) plus a JSON
// manifest of the graph, readable without qforge.
#include <cstdio>

#include "apps/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "quant/graph.h"

namespace qforge::apps {
namespace {

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
       "output_scale) + output_zero_point), the multiplier as a gemmlowp fixed-point int32 and shift"}};
  write_text_atomic(out + "/manifest.json", m.dump(2) + "\n");
  std::printf("wrote %s/weights.safetensors (%zu tensors) and %s/manifest.json (%zu nodes)\n", out.c_str(),
              tensors.size(), out.c_str(), g.nodes.size());
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto model = std::make_shared<std::string>(), out = std::make_shared<std::string>();
  auto* c = app.add_subcommand("export", "Export an int8 model's quantized weights (safetensors) and graph (JSON)");
  c->add_option("--model", *model, "Int8 model (.qfm)")->required()->check(CLI::ExistingFile);
  c->add_option("--out", *out, "Output directory")->required();
  c->callback([model, out] { run_export(*model, *out); });
}

}  // namespace qforge::apps

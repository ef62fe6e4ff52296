// qforge's own logits for the ONNX Runtime comparison (test_onnx_export.sh):
//   reference_logits MODEL PREFIX N [random|test]
// runs MODEL (.qfm int8 graph or float checkpoint) on N inputs and writes PREFIX.input.f32 (N,C,H,W),
// PREFIX.logits.f32 (N,classes), little-endian float32, and PREFIX.json: the shapes and, for an int8
// model whose output is a Dequantize of uint8, that value's scale (one quantization step of the logits);
// for test images also PREFIX.labels.i32 (int32).
// Inputs: "test" = the first N test images of the model's stored data config, normalised as eval does;
// "random" = normal(0, 1) (seed 1).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

#include "apps/datasets.h"
#include "apps/models.h"
#include "core/autograd.h"
#include "core/error.h"
#include "quant/runtime.h"

using namespace qforge;

namespace {

void write_f32(const std::string& path, const float* v, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v), static_cast<std::streamsize>(n * sizeof(float)));
  QF_CHECK(f.good(), path + ": write failed");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    QF_CHECK(argc == 4 || argc == 5, "usage: reference_logits MODEL PREFIX N [random|test]");
    const std::string model = argv[1], prefix = argv[2], source = argc == 5 ? argv[4] : "random";
    const int n = std::stoi(argv[3]);
    apps::LoadedModel lm = apps::load_model_file(model, nullptr);
    QF_CHECK(lm.input.size() == 3, model + ": no input shape stored");
    const int C = lm.input[0], H = lm.input[1], W = lm.input[2];
    std::vector<float> x;
    std::vector<int32_t> labels;
    if (source == "test") {
      lm.config.j["data"]["limit_test"] = n;  // the stored config may have limited it below n
      auto ds = apps::open_split(lm.config, "test");
      data::Loader loader = apps::make_eval_loader(ds, lm.config, n);
      loader.start_epoch(0);
      data::Batch b;
      QF_CHECK(loader.next(b) && b.n == n && b.c == C && b.h == H && b.w == W,
               model + ": the test split gives no batch of " + std::to_string(n) + " images");
      x = b.images;
      labels = b.labels;
    } else {
      QF_CHECK(source == "random", "inputs: 'random' or 'test', got '" + source + "'");
      std::mt19937_64 rng(1);
      std::normal_distribution<float> d(0.f, 1.f);
      x.resize(static_cast<size_t>(n) * C * H * W);
      for (float& v : x) v = d(rng);
    }
    NoGradGuard ng;
    lm.module->eval();
    std::map<std::string, Tensor> taps;
    const bool want_taps = std::getenv("QFORGE_REFERENCE_TAPS") != nullptr && lm.kind == "int8";
    Tensor y = want_taps ? std::static_pointer_cast<quant::Int8Module>(lm.module)->runtime().run(
                               Tensor::from({n, C, H, W}, x), &taps)
                         : (*lm.module)(Tensor::from({n, C, H, W}, x));
    // QFORGE_REFERENCE_TAPS set: every int8 value too, as PREFIX.tap.<node>.f32 (dequantized, NCHW), to find
    // the first layer where ONNX Runtime and qforge part.
    for (auto& [name, t] : taps) write_f32(prefix + ".tap." + name + ".f32", t.data(), static_cast<size_t>(t.numel()));
    QF_CHECK(y.dim() == 2 && y.size(0) == n, model + ": the output is not (N, classes)");
    nlohmann::json j = {{"model", model},        {"kind", lm.kind},      {"n", n},
                        {"input", {n, C, H, W}}, {"classes", y.size(1)}, {"inputs", source}};
    if (lm.kind == "int8") {
      const quant::Int8Graph& g = std::static_pointer_cast<quant::Int8Module>(lm.module)->runtime().graph();
      for (const auto& node : g.nodes)
        if (node.output == g.output && node.op == quant::OpKind::kDequantize) {
          j["out_scale"] = g.values[node.inputs[0]].qp.scale;
          j["out_zero_point"] = g.values[node.inputs[0]].qp.zero_point;
        }
    }
    write_f32(prefix + ".input.f32", x.data(), x.size());
    write_f32(prefix + ".logits.f32", y.data(), static_cast<size_t>(y.numel()));
    if (!labels.empty()) {
      std::ofstream f(prefix + ".labels.i32", std::ios::binary);
      f.write(reinterpret_cast<const char*>(labels.data()), static_cast<std::streamsize>(labels.size() * 4));
    }
    std::ofstream(prefix + ".json") << j.dump(1) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reference_logits: %s\n", e.what());
    return 1;
  }
}

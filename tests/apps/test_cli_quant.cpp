// End-to-end tests of qforge qat / ptq / convert / eval / export / debug / bench on tiny generated data.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "nn/safetensors.h"

using namespace qforge::testing;

namespace {

double json_top1(const RunResult& r) {
  auto j = nlohmann::json::parse(r.out);
  return j["top1"].get<double>();
}

}  // namespace

TEST_CASE("qat, ptq, convert, eval, export, debug and bench from the command line") {
  ScratchDir d("quant");
  std::string cfg = write_tiny_config(d);
  REQUIRE(run_qforge("train " + cfg).code == 0);
  std::string fl = d / "run/last.safetensors";
  const std::string q = " --set model.init_from=" + fl;

  RunResult qat =
      run_qforge("qat " + cfg + q + " --set train.epochs=1 --set optim.lr=0.01 --set output.dir=" + (d / "qat"));
  INFO(qat.out);
  REQUIRE(qat.code == 0);
  CHECK(qat.out.find("fake-quant simulation") != std::string::npos);
  CHECK(qat.out.find("top-1 agreement") != std::string::npos);
  std::string qfm = d / "qat/model.qfm";
  REQUIRE(fs::exists(qfm));
  CHECK(fs::file_size(qfm) < fs::file_size(fl) * 0.5);

  // The int8 model evaluates like any model; convert of the QAT checkpoint gives the same graph's answers.
  RunResult e1 = run_qforge("eval --json --model " + qfm + " --data " + cfg);
  INFO(e1.out);
  REQUIRE(e1.code == 0);
  CHECK(json_top1(e1) > 50.0);
  // A config given for its data only: eval and debug never read model.init_from (nor the train
  // split), so a config whose checkpoint is gone still serves; a missing test split is still an error.
  {
    auto j = nlohmann::json::parse(read_file(cfg));
    j["model"]["init_from"] = d / "runs/gone/last.safetensors";
    j["data"]["train"]["images"] = d / "gone-train-images.gz";
    std::ofstream(d / "gone.json") << j.dump();
    RunResult eg = run_qforge("eval --json --model " + qfm + " --data " + (d / "gone.json"));
    INFO(eg.out);
    REQUIRE(eg.code == 0);
    CHECK(json_top1(eg) == json_top1(e1));
    RunResult dg =
        run_qforge("debug --model " + fl + " --int8 " + qfm + " --data " + (d / "gone.json") + " --batches 1");
    INFO(dg.out);
    CHECK(dg.code == 0);
    j["data"]["test"]["images"] = d / "gone-test-images.gz";
    std::ofstream(d / "gone_test.json") << j.dump();
    RunResult et = run_qforge("eval --json --model " + qfm + " --data " + (d / "gone_test.json"));
    CHECK(et.code != 0);
    CHECK(et.out.find("data.test.images") != std::string::npos);
  }
  RunResult conv = run_qforge("convert --model " + (d / "qat/last.safetensors") + " --out " + (d / "again.qfm"));
  INFO(conv.out);
  REQUIRE(conv.code == 0);
  RunResult e2 = run_qforge("eval --json --model " + (d / "again.qfm") + " --data " + cfg);
  REQUIRE(e2.code == 0);
  CHECK(json_top1(e2) == json_top1(e1));
  // The QAT checkpoint itself evaluates as the fake-quant simulation.
  RunResult es = run_qforge("eval --json --model " + (d / "qat/last.safetensors") + " --data " + cfg);
  REQUIRE(es.code == 0);
  CHECK(std::abs(json_top1(es) - json_top1(e1)) <= 3.0);
  // qat reports the simulation from its last epoch's evaluation: the same figure as evaluating the
  // checkpoint it saved.
  {
    const std::string key = "fake-quant simulation: top-1 ";
    size_t at = qat.out.find(key);
    REQUIRE(at != std::string::npos);
    char want[32];
    std::snprintf(want, sizeof want, "%.2f%%", json_top1(es));
    CHECK(qat.out.substr(at + key.size(), std::strlen(want)) == want);
  }

  RunResult ptq = run_qforge("ptq " + cfg + q + " --set quant.calibration_batches=4 --set output.dir=" + (d / "ptq"));
  INFO(ptq.out);
  REQUIRE(ptq.code == 0);
  CHECK(ptq.out.find("static PTQ simulation") != std::string::npos);
  CHECK(fs::exists(d / "ptq/model.qfm"));
  CHECK(fs::exists(d / "ptq/ptq.safetensors"));
  RunResult dyn = run_qforge("ptq " + cfg + q + " --mode dynamic --set output.dir=" + (d / "dyn"));
  INFO(dyn.out);
  REQUIRE(dyn.code == 0);
  CHECK(dyn.out.find("dynamic quantization (1 Linear layer int8)") != std::string::npos);

  RunResult ex = run_qforge("export --model " + qfm + " --out " + (d / "export"));
  INFO(ex.out);
  REQUIRE(ex.code == 0);
  auto manifest = nlohmann::json::parse(read_file(d / "export/manifest.json"));
  CHECK(manifest["nodes"].size() > 20);
  CHECK(manifest["format"] == "qforge-int8");
  auto w = qforge::nn::read_safetensors(d / "export/weights.safetensors");
  CHECK(w.at("conv1.weight").dtype == "I8");
  CHECK(w.at("conv1.weight_scale").dtype == "F32");
  CHECK(w.at("conv1.weight_zero_point").dtype == "I32");
  CHECK(w.at("fc.bias").dtype == "I32");

  RunResult dbg = run_qforge("debug --model " + fl + " --int8 " + qfm + " --data " + cfg + " --batches 1");
  INFO(dbg.out);
  REQUIRE(dbg.code == 0);
  CHECK(dbg.out.find("SQNR") != std::string::npos);
  CHECK(dbg.out.find("layer4.1.conv2") != std::string::npos);

  RunResult b =
      run_qforge("bench --json --runs 2 --warmup 1 --batch 4 --model " + fl + " --int8 " + qfm + " --data " + cfg);
  INFO(b.out);
  REQUIRE(b.code == 0);
  auto bj = nlohmann::json::parse(b.out);
  for (const char* k :
       {"fp32_ms", "int8_ms", "fp32_file_mb", "int8_file_mb", "int8_peak_mb", "top1_agreement", "int8_top1"})
    CHECK(bj.contains(k));
  CHECK(bj["int8_top1"].get<double>() == json_top1(e1));

  // Bad inputs.
  RunResult bad1 = run_qforge("convert --model " + fl + " --out " + (d / "x.qfm"));
  CHECK(bad1.code != 0);
  CHECK(bad1.out.find("prepared checkpoint") != std::string::npos);
  CHECK(!fs::exists(d / "x.qfm"));
  RunResult bad2 = run_qforge("qat " + cfg);
  CHECK(bad2.code != 0);
  CHECK(bad2.out.find("model.init_from") != std::string::npos);
  std::string bytes = read_file(qfm);
  std::ofstream(d / "trunc.qfm", std::ios::binary) << bytes.substr(0, bytes.size() - 1000);
  RunResult bad3 = run_qforge("eval --model " + (d / "trunc.qfm") + " --data " + cfg);
  CHECK(bad3.code != 0);
  CHECK(bad3.out.find("trunc.qfm") != std::string::npos);
}

TEST_CASE("bench on random weights prints float and int8 figures") {
  RunResult b = run_qforge(
      "bench --json --runs 2 --warmup 1 --arch resnet18 --stem small --input 1x16x16 --batch 2 --classes 10");
  INFO(b.out);
  REQUIRE(b.code == 0);
  auto j = nlohmann::json::parse(b.out);
  CHECK(j["fp32_ms"].get<double>() > 0);
  CHECK(j["int8_ms"].get<double>() > 0);
  CHECK(j.contains("int8_isa"));
  RunResult t =
      run_qforge("bench --json --runs 2 --warmup 1 --arch resnet18 --stem small --input 1x16x16 --batch 4 --train");
  INFO(t.out);
  REQUIRE(t.code == 0);
  auto tj = nlohmann::json::parse(t.out);
  CHECK(tj["train_img_per_s"].get<double>() > 0);
  CHECK(tj["qat_train_img_per_s"].get<double>() > 0);
}

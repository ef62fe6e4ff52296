// End-to-end tests of qforge train / eval / info / data on tiny generated data.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "apps/checkpoint.h"
#include "cli_util.h"

using namespace qforge::testing;

TEST_CASE("train, eval on IDX and on an exported PNG directory, info") {
  ScratchDir d("train");
  std::string cfg = write_tiny_config(d);
  RunResult r = run_qforge("train " + cfg);
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("test acc") != std::string::npos);
  CHECK(fs::exists(d / "run/last.safetensors"));
  CHECK(fs::exists(d / "run/best.safetensors"));
  std::string metrics = read_file(d / "run/metrics.jsonl");
  CHECK(std::count(metrics.begin(), metrics.end(), '\n') == 2);

  RunResult e = run_qforge("eval --json --model " + (d / "run/last.safetensors") + " --data " + cfg);
  INFO(e.out);
  REQUIRE(e.code == 0);
  auto j = nlohmann::json::parse(e.out);
  double acc = j["top1"];
  CHECK(acc > 50.0);  // chance is 10%
  CHECK(j["n"] == 100);
  CHECK(j["confusion"].size() == 10);

  RunResult x = run_qforge("data export-images --images " + (d / "test-images.gz") + " --labels " +
                           (d / "test-labels.gz") + " --out " + (d / "png"));
  INFO(x.out);
  REQUIRE(x.code == 0);
  RunResult ed = run_qforge("eval --json --model " + (d / "run/last.safetensors") + " --data " + (d / "png"));
  INFO(ed.out);
  REQUIRE(ed.code == 0);
  CHECK(nlohmann::json::parse(ed.out)["top1"].get<double>() == acc);

  RunResult info = run_qforge("info " + (d / "run/last.safetensors"));
  INFO(info.out);
  CHECK(info.code == 0);
  CHECK(info.out.find("layer4.1.bn2.running_var") != std::string::npos);
  CHECK(info.out.find("qforge-checkpoint") != std::string::npos);
}

TEST_CASE("weights from elsewhere: a plain safetensors file with torchvision names") {
  ScratchDir d("foreign");
  std::string cfg = write_tiny_config(d);
  REQUIRE(run_qforge("train " + cfg + " --set train.epochs=1").code == 0);
  // Strip everything qforge adds: no metadata, no optimizer state; add torchvision's num_batches_tracked.
  auto ck = qforge::apps::load_checkpoint(d / "run/last.safetensors");
  std::vector<std::pair<std::string, qforge::nn::StEntry>> plain;
  for (auto& [n, e] : ck.file.tensors)
    if (n.rfind("optim.", 0) != 0) plain.emplace_back(n, e);
  int64_t tracked = 7;
  plain.emplace_back("bn1.num_batches_tracked", qforge::nn::raw_entry("I64", {}, &tracked));
  qforge::nn::write_safetensors(d / "foreign.safetensors", plain, {});
  RunResult e = run_qforge("eval --json --model " + (d / "foreign.safetensors") + " --data " + cfg);
  INFO(e.out);
  REQUIRE(e.code == 0);
  RunResult e0 = run_qforge("eval --json --model " + (d / "run/last.safetensors") + " --data " + cfg);
  REQUIRE(e0.code == 0);
  CHECK(nlohmann::json::parse(e.out)["top1"] == nlohmann::json::parse(e0.out)["top1"]);
  // A foreign file needs a config to say what it is.
  RunResult noarch = run_qforge("eval --model " + (d / "foreign.safetensors") + " --data " + (d / "run"));
  CHECK(noarch.code != 0);
  // And it can start a training run.
  RunResult t =
      run_qforge("train " + cfg + " --set train.epochs=1 --set model.init_from=" + (d / "foreign.safetensors") +
                 " --set output.dir=" + (d / "fine"));
  INFO(t.out);
  CHECK(t.code == 0);
}

TEST_CASE("resume reaches the same final weights as an uninterrupted run") {
  ScratchDir d("resume");
  std::string cfg = write_tiny_config(d);
  REQUIRE(run_qforge("train " + cfg + " --set output.dir=" + (d / "full")).code == 0);
  RunResult a = run_qforge("train " + cfg + " --set output.dir=" + (d / "cut") + " --max-steps 27");
  INFO(a.out);
  REQUIRE(a.code == 0);
  CHECK(a.out.find("--resume") != std::string::npos);
  RunResult b = run_qforge("train " + cfg + " --set output.dir=" + (d / "cut") + " --resume");
  INFO(b.out);
  REQUIRE(b.code == 0);
  auto full = qforge::apps::load_checkpoint(d / "full/last.safetensors");
  auto cut = qforge::apps::load_checkpoint(d / "cut/last.safetensors");
  REQUIRE(full.file.tensors.size() == cut.file.tensors.size());
  for (auto& [name, e] : full.file.tensors) {
    CAPTURE(name);
    REQUIRE(cut.file.has(name));
    CHECK(cut.file.at(name).bytes == e.bytes);
  }
  CHECK(cut.info.step == full.info.step);
}

TEST_CASE("bad inputs give errors that name the problem, and keep what was written") {
  ScratchDir d("bad");
  std::string cfg = write_tiny_config(d);
  auto expect_error = [](const std::string& args, std::vector<std::string> needles) {
    RunResult r = run_qforge(args);
    INFO(args);
    INFO(r.out);
    CHECK(r.code != 0);
    for (auto& n : needles) CHECK(r.out.find(n) != std::string::npos);
  };
  expect_error("train " + cfg + " --set train.epoch=3", {"unknown key 'train.epoch'", "--set"});
  std::ofstream(d / "typo.json") << R"({"train": {"bach_size": 3}})";
  expect_error("train " + (d / "typo.json"), {"unknown key 'train.bach_size'", "typo.json"});
  std::ofstream(d / "type.json") << R"({"train": {"epochs": "two"}})";
  expect_error("train " + (d / "type.json"), {"train.epochs", "must be an integer", "type.json"});
  std::ofstream(d / "broken.json") << R"({"train": )";
  expect_error("train " + (d / "broken.json"), {"broken.json", "not valid JSON"});
  expect_error("train " + cfg + " --set train.batch_size=0", {"train.batch_size", "at least 1"});
  expect_error("train " + cfg + " --set .train.epochs=3", {"empty key component"});
  expect_error("train " + cfg + " --set quant.skip=[1]", {"quant.skip", "strings"});
  expect_error("train " + cfg + " --set optim.schedule.kind=linear", {"optim.schedule.kind", "linear"});
  expect_error("train " + cfg + " --set data.train.images=/nonexistent/x.gz",
               {"data.train.images", "/nonexistent/x.gz"});
  expect_error("train " + cfg + " --set model.init_from=" + (d / "missing.safetensors"),
               {"model.init_from", "missing.safetensors"});

  // A good run, then one that diverges: the error says NaN/infinite, and last.safetensors is untouched.
  REQUIRE(run_qforge("train " + cfg + " --set train.epochs=1").code == 0);
  std::string before = read_file(d / "run/last.safetensors");
  expect_error("train " + cfg + " --set train.epochs=1 --set optim.lr=1e30 --set optim.schedule.kind=constant",
               {"loss is", "last good checkpoint", "optim.lr"});
  CHECK(read_file(d / "run/last.safetensors") == before);

  // A truncated model file is rejected by name.
  std::string bytes = before.substr(0, before.size() / 2);
  std::ofstream(d / "trunc.safetensors", std::ios::binary) << bytes;
  expect_error("eval --model " + (d / "trunc.safetensors") + " --data " + cfg, {"trunc.safetensors", "truncated"});
  // A corrupt header.
  std::string corrupt = before;
  for (int i = 8; i < 40; ++i) corrupt[i] = '#';
  std::ofstream(d / "corrupt.safetensors", std::ios::binary) << corrupt;
  expect_error("eval --model " + (d / "corrupt.safetensors") + " --data " + cfg, {"corrupt.safetensors"});

  // A corrupt image in a dataset directory is named.
  REQUIRE(run_qforge("data export-images --images " + (d / "test-images.gz") + " --labels " + (d / "test-labels.gz") +
                     " --out " + (d / "png"))
              .code == 0);
  std::string victim, good;
  for (auto& e : fs::recursive_directory_iterator(d.path / "png"))
    if (e.is_regular_file()) (victim.empty() ? victim : good) = e.path().string();
  // A directory whose classes do not match the model's.
  fs::create_directories(d.path / "other/cats");
  fs::copy_file(good, d.path / "other/cats/x.png");
  expect_error("eval --model " + (d / "run/last.safetensors") + " --data " + (d / "other"), {"cats", "other"});
  std::ofstream(victim, std::ios::binary) << "not a png";
  expect_error("eval --model " + (d / "run/last.safetensors") + " --data " + (d / "png"), {victim});
}

// A .qfm written before the int8 graph became typed (see fixtures/README.md) still loads, is
// written back with the same graph JSON, and runs to the same logits.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "nn/safetensors.h"
#include "quant/graph.h"
#include "quant/runtime.h"

using namespace qforge;
using namespace qforge::quant;

TEST_CASE("a version-1 .qfm from before the typed graph loads and runs to the same logits") {
  const std::string dir = std::string(QFORGE_TESTS_DIR) + "/quant/fixtures/";
  const std::string path = dir + "tiny_resnet18_v1.qfm";
  Int8Graph g = load_int8_model(path);
  REQUIRE(g.input_shape == std::vector<int>{1, 28, 28});
  // The format is unchanged: the graph is written back as it was read.
  CHECK(g.to_json().dump() == nn::read_safetensors(path).meta("graph"));

  auto read_logits = [&](const std::string& name) {
    std::vector<float> v;
    std::ifstream f(dir + name);
    std::string line;
    while (std::getline(f, line)) v.push_back(std::strtof(line.c_str(), nullptr));
    REQUIRE(v.size() == 20);
    return v;
  };
  // The logits under today's requantization (one rounding), and those the file was made with
  // (gemmlowp's two roundings, commit bf43881): at most 4 output steps apart on this tiny model.
  const std::vector<float> want = read_logits("tiny_resnet18_v1.logits.txt");
  const std::vector<float> then = read_logits("tiny_resnet18_v1.logits_bf43881.txt");
  const float step = 0.00647593755f;  // the output's scale
  int moved = 0;
  for (int i = 0; i < 20; ++i) {
    CAPTURE(i);
    CHECK(std::fabs(want[i] - then[i]) <= 4.5f * step);
    moved += want[i] != then[i];
  }
  CHECK(moved > 0);  // the requantization did change
  Tensor x = Tensor::empty({2, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 37) % 101) / 50.f - 1.f;
  for (Isa isa : supported_isas()) {
    CAPTURE(std::string(isa_name(isa)));
    Int8Runtime rt(g, isa);
    for (bool with_taps : {false, true}) {  // fused residual joins, and the ops in turn
      std::map<std::string, Tensor> taps;
      Tensor y = rt.run(x, with_taps ? &taps : nullptr);
      REQUIRE(y.numel() == 20);
      for (int i = 0; i < 20; ++i) {
        CAPTURE(i);
        CHECK(y.data()[i] == want[i]);
      }
    }
  }
}

TEST_CASE("activations: one name table, parsed back, unknown names rejected by name") {
  for (Act a : {Act::kNone, Act::kReLU, Act::kReLU6}) CHECK(parse_act(act_name(a), "test") == a);
  CHECK(std::string(act_name(Act::kReLU6)) == "relu6");
  CHECK(std::string(act_type_suffix(Act::kReLU)) == "ReLU");
  CHECK(std::string(act_type_suffix(Act::kNone)).empty());
  CHECK_THROWS_WITH_AS(parse_act("gelu", "node 'x'"), doctest::Contains("node 'x': unknown activation 'gelu'"), Error);

  // In a file: the fixture with one activation renamed (same length) fails to load, naming the node.
  const std::string dir = std::string(QFORGE_TESTS_DIR) + "/quant/fixtures/";
  std::string bytes;
  {
    std::ifstream f(dir + "tiny_resnet18_v1.qfm", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  const std::string relu = "act\\\":\\\"relu\\\"";
  auto pos = bytes.find(relu);
  REQUIRE(pos != std::string::npos);
  bytes.replace(pos + relu.size() - 6, 4, "gelu");
  auto tmp = std::filesystem::temp_directory_path() / ("qforge_badact_" + std::to_string(::getpid()) + ".qfm");
  std::ofstream(tmp, std::ios::binary) << bytes;
  CHECK_THROWS_WITH_AS(load_int8_model(tmp.string()), doctest::Contains("(QConv2d): unknown activation 'gelu'"), Error);
  std::filesystem::remove(tmp);
}

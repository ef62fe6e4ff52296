// A .qfm written before the int8 graph became typed (see fixtures/README.md) still loads, is
// written back with the same graph JSON, and runs to the same logits.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

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

  std::vector<float> want;
  {
    std::ifstream f(dir + "tiny_resnet18_v1.logits.txt");
    std::string line;
    while (std::getline(f, line)) want.push_back(std::strtof(line.c_str(), nullptr));
  }
  REQUIRE(want.size() == 20);
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

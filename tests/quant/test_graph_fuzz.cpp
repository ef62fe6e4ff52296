// load_int8_model on graphs whose JSON has the wrong types or sizes: each is an Error naming the
// file. nlohmann's get<int>() turned 2.5 into 2 and 1e300 into undefined behaviour, and deep nesting
// in the stored config overflowed the stack when the graph was copied or saved. The base file is
// fuzz_qfm's seed (tests/fuzz/corpus/qfm/seed-v1).
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "nn/safetensors.h"
#include "quant/graph.h"
#include "quant/runtime.h"

using namespace qforge;
using namespace qforge::quant;
using nlohmann::json;

namespace {

const std::string kSeed = std::string(QFORGE_TESTS_DIR) + "/fuzz/corpus/qfm/seed-v1";

// The seed with its graph JSON (and config text) changed by edit; returns the error loading it.
template <class F>
std::string error_with(F&& edit, const std::string& config = "{}") {
  nn::SafeTensors st = nn::read_safetensors(kSeed);
  json g = json::parse(st.meta("graph"));
  edit(g);
  std::map<std::string, std::string> meta = st.metadata;
  meta["graph"] = g.dump();
  meta["config"] = config;
  const std::string path =
      (std::filesystem::temp_directory_path() / ("qforge_graph_fuzz_" + std::to_string(::getpid()) + ".qfm")).string();
  nn::write_safetensors(path, {st.tensors.begin(), st.tensors.end()}, meta);
  std::string msg;
  try {
    load_int8_model(path);
  } catch (const Error& e) {
    msg = e.what();
    CHECK_MESSAGE(msg.find(path + ": ") == 0, msg);
    msg = msg.substr(path.size() + 2);
  }
  std::filesystem::remove(path);
  return msg;
}

}  // namespace

TEST_CASE("int8 graph: the seed loads and runs") {
  Int8Graph g = load_int8_model(kSeed);
  CHECK(g.nodes.size() == 5);
  Int8Runtime rt(g);
  CHECK(rt.run(Tensor::full({1, 2, 3, 3}, 0.5f)).shape() == Shape{1, 2});
  CHECK(error_with([](json&) {}) == "");
}

TEST_CASE("int8 graph: numbers of the wrong type or range name the field") {
  CHECK(error_with([](json& g) { g["version"] = 1e300; }) == "graph version must be an integer, got 1e+300");
  CHECK(error_with([](json& g) { g["version"] = "1"; }) == "graph version must be an integer, got \"1\"");
  CHECK(error_with([](json& g) { g["output"] = 5.5; }) == "graph output must be an integer, got 5.5");
  CHECK(error_with([](json& g) { g["output"] = 4294967301ull; }) == "graph output = 4294967301 is out of range");
  CHECK(error_with([](json& g) { g["input_shape"] = {2, 3.0, 3}; }) == "graph input_shape must be an integer, got 3.0");
  CHECK(error_with([](json& g) { g["values"][1]["zero_point"] = 1e20; }) ==
        "graph: value 1 zero_point must be an integer, got 1e+20");
  CHECK(error_with([](json& g) { g["values"][1]["scale"] = 1e300; }) ==
        "graph: value 1 scale = 1e+300 is not a finite float");
  CHECK(error_with([](json& g) { g["nodes"][1]["inputs"] = {1e10}; }) ==
        "node 'c' (QConv2d) inputs must be an integer, got 10000000000.0");
  CHECK(error_with([](json& g) { g["nodes"][1]["attrs"]["kernel"] = 3.5; }) ==
        "node 'c' (QConv2d): attribute 'kernel' must be an integer, got 3.5");
  CHECK(error_with([](json& g) {
          g["nodes"][1]["attrs"] = {1, 2};
        }) == "node 'c' (QConv2d): attribute 'kernel' missing");
  CHECK(error_with([](json& g) { g["nodes"][0]["name"] = 7; }) == "graph: node 0: name and op must be strings");
  CHECK(error_with([](json& g) { g["classes"] = {"a", 1}; }) == "graph: classes must be a list of strings, got 1");
  CHECK(error_with([](json& g) { g["values"] = {{"dtype", "u8"}}; }) == "graph: values must be a list");
  CHECK(error_with([](json& g) { g.erase("nodes"); }) == "graph has no 'nodes'");
}

TEST_CASE("int8 graph: names with control characters are quoted escaped") {
  CHECK(error_with([](json& g) { g["nodes"][1]["op"] = std::string("Q\0", 2); }) == "node 'c': unknown op 'Q\\x00'");
  CHECK(error_with([](json& g) { g["nodes"][1]["attrs"]["act"] = std::string("relu\n", 5); }) ==
        "node 'c' (QConv2d): unknown activation 'relu\\x0a' (expected none, relu or relu6)");
}

TEST_CASE("int8 graph: deep nesting in the graph or the stored config is an Error") {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK(error_with([](json&) {}, "{\"a\": " + deep + "}") == "config: JSON nested deeper than 64 levels");
  CHECK(error_with([](json&) {}, std::string("{}\0x", 4)) == "config: not valid JSON: a NUL byte at offset 2");
}

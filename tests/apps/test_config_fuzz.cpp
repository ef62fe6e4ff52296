// Config files and --set values that tests/fuzz/fuzz_config (or reading around what it found) showed
// mishandled: each is now an Error naming the file or the --set.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/config.h"
#include "cli_util.h"
#include "core/error.h"

using namespace qforge;
using namespace qforge::testing;
using nlohmann::json;

namespace {

std::string file_error(const ScratchDir& d, const std::string& text, const std::vector<std::string>& sets = {}) {
  const std::string path = d / "c.json";
  std::ofstream(path, std::ios::binary) << text;
  try {
    apps::load_config(path, sets, /*check_files=*/false);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("config: deep nesting is an Error naming the file, not a stack overflow") {
  // `qforge config` on {"model": [[[...]]]} 100000 deep crashed dumping the value into its message.
  ScratchDir d("cfgdeep");
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK(file_error(d, "{\"model\": " + deep + "}") == d / "c.json" + ": JSON nested deeper than 64 levels");
  // Through --set, too deep to be JSON, it is a string and the type check says so briefly.
  const std::string msg = file_error(d, "{}", {"train.epochs=" + deep});
  CHECK(msg.find("key 'train.epochs' in --set train.epochs=[[[[") == 0);
  CHECK(msg.find("must be an integer, got a string") != std::string::npos);
}

TEST_CASE("config: a key with control characters is quoted escaped, and the file still named") {
  // The NUL of "a\u0000b" cut the message before the file's name.
  ScratchDir d("cfgnul");
  CHECK(file_error(d, R"({"train": {"a\u0000b": 1}})") ==
        "unknown key 'train.a\\x00b' in " + d / "c.json" + " (known here: " +
            "epochs, batch_size, eval_batch_size, threads, sync_bn, seed, label_smoothing, checkpoint_every, log_every)");
  CHECK(file_error(d, std::string("{}\0{\"train\": 5}", 15)) ==
        d / "c.json" + ": not valid JSON: a NUL byte at offset 2");
}

TEST_CASE("config: integers are read as int, so they must fit 32 bits (the seed 64)") {
  // --set train.batch_size=4294967296 passed "at least 1" and reached the loader as 0.
  ScratchDir d("cfgint");
  CHECK(file_error(d, "{}", {"train.batch_size=4294967296"}) ==
        "key 'train.batch_size' in --set train.batch_size=4294967296 must fit in 32 bits (an int), got 4294967296");
  CHECK(file_error(d, R"({"train": {"epochs": 4294967297}})") ==
        "key 'train.epochs' in " + d / "c.json" + " must fit in 32 bits (an int), got 4294967297");
  CHECK(file_error(d, R"({"quant": {"overrides": {"fc": {"activation": {"bins": -4294967296}}}}})") ==
        "key 'quant.overrides.fc.activation.bins' in " + d / "c.json" +
            " must fit in 32 bits (an int), got -4294967296");
  CHECK(file_error(d, R"({"train": {"epochs": 2147483647, "seed": 18446744073709551615}})") == "");
}

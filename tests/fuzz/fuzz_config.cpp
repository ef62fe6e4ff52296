// Fuzz target: JSON configs and --set overrides.
// Input: the config file's text, optionally followed by a NUL byte and --set overrides, one per line
// ("train.epochs=3"; a NUL also ends one, as no command-line argument holds one). Properties: a bad config is an Error
// naming the file or the --set; a config that loads yields every typed view the commands read (transforms, SGD,
// schedule, input shape, qconfig) without another error, and its stored form (a checkpoint's "config") loads again.
#include <cmath>
#include <cstring>

#include "apps/config.h"
#include "fuzz_util.h"
#include "optim/schedule.h"
#include "quant/qconfig.h"

using namespace qforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t text = nul ? static_cast<size_t>(nul - data) : size;
  std::vector<std::string> sets;
  if (nul) {
    std::string rest(reinterpret_cast<const char*>(nul + 1), size - text - 1);
    for (size_t b = 0; b <= rest.size();) {
      size_t e = rest.find_first_of(std::string("\n\0", 2), b);  // an argument holds no NUL
      if (e == std::string::npos) e = rest.size();
      if (e > b) sets.push_back(rest.substr(b, e - b));
      b = e + 1;
    }
  }
  const std::string path = fuzz::write_input("config.json", data, text);
  apps::Config cfg;
  try {
    cfg = apps::load_config(path, sets, /*check_files=*/false);
  } catch (const Error& e) {
    fuzz::expect_names(e, {path, "--set"});
    return 0;
  }
  apps::transform_config(cfg);
  apps::sgd_options(cfg);
  const data::ImageSpec in = apps::model_input_spec(cfg);
  FUZZ_CHECK(in.channels > 0 && in.height > 0 && in.width > 0, data::to_string(in));
  optim::Schedule sched(apps::schedule_options(cfg), 7, cfg.j["train"]["epochs"].get<int>());
  for (int64_t step : {0, 1, 6, 7, 100})
    FUZZ_CHECK(std::isfinite(sched.lr(step)) && std::isfinite(sched.momentum(step, 0.9)), std::to_string(step));
  quant::qconfig_from_json(cfg.j["quant"], path);
  // What a checkpoint stores (the complete config) loads back to the same config.
  apps::Config again = apps::make_config(cfg.j, "stored", {}, false);
  FUZZ_CHECK(again.j == cfg.j, "the complete config does not load back to itself");
  return 0;
}

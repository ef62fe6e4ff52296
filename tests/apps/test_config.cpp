// The config schema: every key declared once (type, default, allowed values,
// meaning); loading checks names, types and ranges and names the key and the
// file; the quant module reads its typed values from the same keys.
#include <doctest/doctest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "apps/config.h"
#include "cli_util.h"
#include "core/error.h"
#include "quant/qconfig.h"

using namespace qforge;
using namespace qforge::testing;
using nlohmann::json;

namespace {

// The message of the Error that loading j (as file x.json) with overrides throws, or "" if none.
std::string load_error(const json& j, const std::vector<std::string>& sets = {}) {
  try {
    apps::make_config(j, "x.json", sets, /*check_files=*/false);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Every leaf path of a JSON object ("a.b" for {"a": {"b": 1}}); objects at a map key count as leaves.
void leaves(const json& j, const std::string& prefix, std::vector<std::string>& out) {
  for (auto& [k, v] : j.items()) {
    std::string p = prefix.empty() ? k : prefix + "." + k;
    if (v.is_object() && !v.empty())
      leaves(v, p, out);
    else
      out.push_back(p);
  }
}

}  // namespace

TEST_CASE("every key of the defaults is declared with a meaning, and its default passes its own checks") {
  std::vector<std::string> paths;
  leaves(apps::config_defaults(), "", paths);
  CHECK(paths.size() == apps::config_keys().keys().size());
  for (auto& p : paths) {
    INFO(p);
    const config::Key* k = apps::config_keys().find(p);
    REQUIRE(k);
    CHECK(k->meaning.size() >= 8);  // a phrase, not a placeholder
    CHECK_NOTHROW(config::KeySet::check(*k, k->def, p, "the defaults"));
    if (k->entry)
      for (auto& e : k->entry->keys()) {
        INFO(e.path);
        CHECK(e.meaning.size() >= 8);
      }
  }
  // The quant keys are quant's, mounted: one definition.
  for (auto& k : quant::qconfig_keys().keys()) CHECK(apps::config_keys().find("quant." + k.path));
  // Float defaults read as written.
  CHECK(apps::config_defaults()["quant"]["activation"]["averaging_constant"].dump() == "0.01");
  CHECK(apps::config_defaults()["quant"]["activation"]["percentile"].dump() == "99.99");
}

TEST_CASE("the defaults load, and the quant module reads QConfig's own defaults from them") {
  apps::Config c = apps::make_config(json::object(), "", {}, false);
  quant::QConfigMapping m = quant::qconfig_from_json(c.j["quant"], "the config");
  const quant::QConfig d;
  CHECK(m.global.activation.kind == d.activation.kind);
  CHECK(m.global.activation.averaging_constant == d.activation.averaging_constant);
  CHECK(m.global.activation.bins == d.activation.bins);
  CHECK(m.global.activation.percentile == d.activation.percentile);
  CHECK(m.global.weight.kind == d.weight.kind);
  CHECK(m.global.weight.averaging_constant == d.weight.averaging_constant);
  CHECK(m.global.per_channel == d.per_channel);
  CHECK(m.global.lsq == d.lsq);
  CHECK(m.overrides.empty());
  CHECK(m.skip.empty());
}

TEST_CASE("quant values reach the QConfigMapping; an override starts from the global qconfig") {
  json j = json::parse(R"({"quant": {"activation": {"observer": "histogram", "bins": 512},
                                     "weight": {"per_channel": false},
                                     "skip": ["fc"],
                                     "overrides": {"layer1.0.conv1": {"activation": {"percentile": 99.9,
                                                                                     "observer": "percentile"},
                                                                      "weight": {"lsq": true}}}}})");
  apps::Config c =
      apps::make_config(j, "x.json", {"quant.overrides.conv1.weight.observer=moving_average_minmax"}, false);
  quant::QConfigMapping m = quant::qconfig_from_json(c.j["quant"], c.path);
  CHECK(m.global.activation.kind == "histogram");
  CHECK(m.global.activation.bins == 512);
  CHECK_FALSE(m.global.per_channel);
  CHECK(m.skip.count("fc"));
  REQUIRE(m.overrides.count("layer1.0.conv1"));
  const quant::QConfig& o = m.overrides.at("layer1.0.conv1");
  CHECK(o.activation.kind == "percentile");
  CHECK(o.activation.percentile == doctest::Approx(99.9));
  CHECK(o.activation.bins == 512);  // inherited
  CHECK_FALSE(o.per_channel);       // inherited
  CHECK(o.lsq);
  REQUIRE(m.overrides.count("conv1"));
  CHECK(m.overrides.at("conv1").weight.kind == "moving_average_minmax");
  CHECK(m.for_module("fc") == nullptr);
  CHECK(m.for_module("layer2.0.conv1") == &m.global);
}

TEST_CASE("an unknown key names its path, the file and the known keys") {
  std::string e = load_error(json::parse(R"({"quant": {"activation": {"bin": 3}}})"));
  CHECK(e.find("unknown key 'quant.activation.bin'") != std::string::npos);
  CHECK(e.find("x.json") != std::string::npos);
  CHECK(e.find("observer, averaging_constant, bins, percentile") != std::string::npos);
  e = load_error(json::parse(R"({"modle": {}})"));
  CHECK(e.find("unknown key 'modle'") != std::string::npos);
  CHECK(e.find("model, data, train, optim, quant, output") != std::string::npos);
  // An override entry takes the same keys as the global qconfig, no others.
  e = load_error(json::parse(R"({"quant": {"overrides": {"fc": {"calibration_batches": 3}}}})"));
  CHECK(e.find("unknown key 'quant.overrides.fc.calibration_batches'") != std::string::npos);
  CHECK(e.find("activation, weight") != std::string::npos);
  e = load_error(json::parse(R"({"quant": {"overrides": {"fc": {"weight": {"bins": 8}}}}})"));
  CHECK(e.find("unknown key 'quant.overrides.fc.weight.bins'") != std::string::npos);
}

TEST_CASE("a wrong type names the key, the file and both types") {
  std::string e = load_error(json::parse(R"({"quant": {"activation": {"bins": 2.5}}})"));
  CHECK(e.find("key 'quant.activation.bins' in x.json must be an integer, got a number (2.5)") != std::string::npos);
  e = load_error(json::parse(R"({"train": {"epochs": "two"}})"));
  CHECK(e.find("key 'train.epochs' in x.json must be an integer, got a string") != std::string::npos);
  e = load_error(json::parse(R"({"quant": {"weight": {"per_channel": 1}}})"));
  CHECK(e.find("key 'quant.weight.per_channel' in x.json must be a boolean") != std::string::npos);
  e = load_error(json::parse(R"({"quant": {"overrides": {"fc": 3}}})"));
  CHECK(e.find("key 'quant.overrides.fc' in x.json must be an object") != std::string::npos);
  e = load_error(json::parse(R"({"optim": {"schedule": "cosine"}})"));
  CHECK(e.find("key 'optim.schedule' in x.json must be an object") != std::string::npos);
  e = load_error(json::parse(R"({"data": {"mean": [0.5, "a"]}})"));
  CHECK(e.find("key 'data.mean' in x.json must hold numbers") != std::string::npos);
}

TEST_CASE("values out of range or not among the allowed ones name the key and the file (or the --set)") {
  struct Case {
    const char* key;
    const char* value;
    const char* says;
  };
  const Case cases[] = {
      {"quant.activation.bins", "0", "at least 1"},
      {"quant.activation.percentile", "0", "in [50, 100]"},
      {"quant.activation.percentile", "100.5", "in [50, 100]"},
      {"quant.activation.averaging_constant", "0", "in (0, 1]"},
      {"quant.activation.averaging_constant", "1.5", "in (0, 1]"},
      {"quant.weight.averaging_constant", "-0.1", "in (0, 1]"},
      {"quant.activation.observer", "\"minmaxx\"", "one of: minmax, moving_average_minmax, histogram, percentile"},
      {"quant.weight.observer", "\"histogram\"", "one of: minmax, moving_average_minmax"},
      {"quant.overrides.fc.activation.bins", "0", "at least 1"},
      {"quant.overrides.fc.activation.observer", "\"mse\"", "one of: minmax"},
      {"quant.calibration_batches", "0", "at least 1"},
      {"quant.freeze_bn_epoch", "-2", "at least -1"},
      {"quant.mode", "\"weird\"", "one of: static, dynamic"},
      {"model.arch", "\"vgg16\"", "one of: resnet18"},
      {"model.in_channels", "2", "one of: 1, 3"},
      {"model.width", "0", "greater than 0"},
      {"optim.schedule.kind", "\"linear\"", "one of: constant, step, cosine, one_cycle"},
      {"optim.schedule.pct_start", "1", "in (0, 1)"},
      {"optim.momentum", "1", "in [0, 1)"},
      {"train.epochs", "-3", "at least 1"},
      {"train.batch_size", "0", "at least 1"},
      {"train.label_smoothing", "1", "in [0, 1)"},
      {"data.limit_train", "-1", "at least 0"},
      {"data.workers", "0", "at least 1"},
  };
  for (const Case& c : cases) {
    INFO(c.key, " = ", c.value);
    // As file content: {"a": {"b": value}} for "a.b".
    std::string ptr(c.key);
    std::replace(ptr.begin(), ptr.end(), '.', '/');
    ptr.insert(0, 1, '/');
    json j;
    j[json::json_pointer(ptr)] = json::parse(c.value);
    std::string e = load_error(j);
    CHECK(e.find(std::string("key '") + c.key + "' in x.json") != std::string::npos);
    CHECK(e.find(c.says) != std::string::npos);
    CHECK(e.find(std::string("got ") + c.value) != std::string::npos);
    // The same through --set, which is named instead of the file.
    std::string set = std::string(c.key) + "=" + c.value;
    e = load_error(json::object(), {set});
    CHECK(e.find(std::string("key '") + c.key + "' in --set " + set) != std::string::npos);
    CHECK(e.find(c.says) != std::string::npos);
  }
  // The bounds themselves are allowed.
  for (const char* s : {"quant.activation.bins=1", "quant.activation.percentile=100", "quant.activation.percentile=50",
                        "quant.activation.averaging_constant=1", "train.epochs=1", "quant.freeze_bn_epoch=-1",
                        "model.in_channels=3", "quant.activation.observer=percentile"}) {
    INFO(s);
    CHECK(load_error(json::object(), {s}) == "");
  }
}

TEST_CASE("every config in configs/ is valid") {
  int n = 0;
  for (auto& e : fs::directory_iterator(fs::path(source_dir()) / "configs")) {
    if (e.path().extension() != ".json") continue;
    INFO(e.path().string());
    // The data files and init_from live on the training machine; names, types and ranges are checked.
    CHECK_NOTHROW(apps::load_config(e.path().string(), {}, /*check_files=*/false));
    ++n;
  }
  CHECK(n >= 6);
}

TEST_CASE("qforge config --schema prints every key with its type, default and meaning") {
  RunResult r = run_qforge("config --schema");
  INFO(r.out);
  REQUIRE(r.code == 0);
  for (auto& k : apps::config_keys().keys()) {
    INFO(k.path);
    // Each key on its own line, with its type, default and meaning.
    size_t at = r.out.find("\n" + k.path + " ");
    REQUIRE(at != std::string::npos);
    std::string line = r.out.substr(at + 1, r.out.find('\n', at + 1) - at - 1);
    // (Built with append: GCC 12 warns falsely on " " + std::string here, -Wrestrict.)
    std::string type = config::type_name(k.type), def = k.def.dump();
    CHECK(line.find(type.insert(0, 1, ' ').append(1, ' ')) != std::string::npos);
    CHECK(line.find(def.insert(0, 1, ' ')) != std::string::npos);
    CHECK(line.find(k.meaning) != std::string::npos);
  }

  r = run_qforge("config --schema --json");
  REQUIRE(r.code == 0);
  json j = json::parse(r.out);
  REQUIRE(j.is_array());
  REQUIRE(j.size() == apps::config_keys().keys().size());
  for (size_t i = 0; i < j.size(); ++i) {
    const config::Key& k = apps::config_keys().keys()[i];
    CHECK(j[i]["key"] == k.path);
    CHECK(j[i]["type"] == config::type_name(k.type));
    CHECK(j[i]["default"] == k.def);
    CHECK(j[i]["meaning"] == k.meaning);
    CHECK(j[i]["allowed"] == config::allowed(k));
  }
}

TEST_CASE("qforge config FILE prints the complete config; --set is checked as file content is") {
  ScratchDir d("config");
  std::string cfg = write_tiny_config(d);
  RunResult r = run_qforge("config " + cfg + " --set quant.activation.bins=64");
  INFO(r.out);
  REQUIRE(r.code == 0);
  json j = json::parse(r.out);
  CHECK(j["quant"]["activation"]["bins"] == 64);
  CHECK(j["train"]["epochs"] == 2);             // from the file
  CHECK(j["train"]["eval_batch_size"] == 256);  // a default
  r = run_qforge("config " + cfg + " --set quant.activation.bins=0");
  CHECK(r.code != 0);
  CHECK(r.out.find("key 'quant.activation.bins' in --set quant.activation.bins=0 must be at least 1") !=
        std::string::npos);
  std::ofstream(d / "bad.json") << R"({"quant": {"activation": {"percentile": 0}}})";
  r = run_qforge("config " + (d / "bad.json"));
  CHECK(r.code != 0);
  CHECK(r.out.find("key 'quant.activation.percentile' in " + (d / "bad.json")) != std::string::npos);
}

TEST_CASE("data preprocessing keys: random_resized_crop, per-channel mean and std, folders at their own size") {
  struct Case {
    const char* set;
    const char* key;
    const char* says;
  };
  const Case cases[] = {
      {"data.std=[0.5, 0]", "data.std", "must hold numbers greater than 0, got 0"},
      {"data.random_resized_crop.scale=[0, 1]", "data.random_resized_crop.scale", "in (0, 1]"},
      {"data.random_resized_crop.scale=[0.5, 1.5]", "data.random_resized_crop.scale", "in (0, 1]"},
      {"data.random_resized_crop.scale=[0.9, 0.5]", "data.random_resized_crop.scale", "min <= max, got [0.9,0.5]"},
      {"data.random_resized_crop.scale=[0.5]", "data.random_resized_crop.scale", "give [min, max]"},
      {"data.random_resized_crop.ratio=[-1, 2]", "data.random_resized_crop.ratio", "greater than 0"},
      {"data.random_resized_crop.ratio=[2, 1, 3]", "data.random_resized_crop.ratio", "give [min, max]"},
      {"data.random_resized_crop.enabled=1", "data.random_resized_crop.enabled", "must be a boolean"},
  };
  for (const Case& c : cases) {
    INFO(c.set);
    std::string e = load_error(json::object(), {c.set});
    CHECK(e.find(std::string("key '") + c.key + "'") != std::string::npos);
    CHECK(e.find(c.says) != std::string::npos);
  }
  std::string e = load_error(json::object(), {"model.in_channels=3", "data.mean=[0.1, 0.2]"});
  CHECK(e.find("key 'data.mean' in x.json: has 2 values; give one for all channels or one per channel "
               "(model.in_channels = 3)") != std::string::npos);
  e = load_error(json::object(), {"data.std=[0.1, 0.2, 0.3]"});
  CHECK(e.find("key 'data.std' in x.json: has 3 values") != std::string::npos);
  e = load_error(json::object(), {"data.random_resized_crop.enabled=true", "data.random_crop_padding=2"});
  CHECK(e.find("key 'data.random_crop_padding' in x.json: random_resized_crop crops for training already") !=
        std::string::npos);
  for (auto sets : std::vector<std::vector<std::string>>{
           {"model.in_channels=3", "data.mean=[0.485, 0.456, 0.406]", "data.std=[0.229, 0.224, 0.225]"},
           {"model.in_channels=3", "data.mean=[0.5]", "data.std=[0.25]"},
           {"data.random_resized_crop.enabled=true", "data.random_resized_crop.scale=[1, 1]",
            "data.random_resized_crop.ratio=[1, 1]"}}) {
    CHECK(load_error(json::object(), sets) == "");
  }
  auto c = apps::make_config(json::object(), "x.json",
                             {"model.in_channels=3", "data.mean=[0.1, 0.2, 0.3]", "data.std=[1, 2, 4]",
                              "data.random_resized_crop.enabled=true", "data.random_resized_crop.scale=[0.2, 0.9]",
                              "data.random_resized_crop.ratio=[0.5, 2]"},
                             false);
  auto t = apps::transform_config(c);
  CHECK(t.mean == std::vector<float>{0.1f, 0.2f, 0.3f});
  CHECK(t.std == std::vector<float>{1, 2, 4});
  CHECK(t.random_resized_crop);
  CHECK(t.rrc_scale == std::array<double, 2>{0.2, 0.9});
  CHECK(t.rrc_ratio == std::array<double, 2>{0.5, 2});

  // A folder needs image_size (a square every image is stretched to) or a centre crop (own sizes).
  ScratchDir d("cfg_folder");
  fs::create_directories(d / "imgs/a");
  json j = {{"data", {{"test", {{"dir", d / "imgs"}}}}}};
  try {
    apps::make_config(j, "x.json", {}, true);
    FAIL("no error");
  } catch (const Error& err) {
    CHECK(std::string(err.what()).find("key 'data.image_size' in x.json: an image folder needs data.image_size") !=
          std::string::npos);
  }
  auto own = apps::make_config(j, "x.json", {"data.resize=40", "data.center_crop=32"}, true);
  CHECK(apps::model_input_spec(own) == qforge::data::ImageSpec{1, 32, 32});
  auto sq = apps::make_config(j, "x.json", {"data.image_size=20", "data.center_crop=16"}, true);
  CHECK(apps::model_input_spec(sq) == qforge::data::ImageSpec{1, 16, 16});
}

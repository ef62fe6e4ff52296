// Fine-tuning onto new classes: model.init_skip keeps a new head freshly initialised while the
// rest loads from model.init_from; optim.param_groups gives the head its own lr.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "apps/checkpoint.h"
#include "apps/config.h"
#include "apps/models.h"
#include "cli_util.h"
#include "core/error.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"

using namespace qforge;
using namespace qforge::testing;
using nlohmann::json;

namespace {

const json kModel = {
    {"arch", "resnet18"}, {"in_channels", 1}, {"num_classes", 10}, {"stem", "small"}, {"width", 0.125}};

apps::Config config_with(const json& model, const json& optim = json::object()) {
  return apps::make_config({{"model", model}, {"optim", optim}}, "ft.json", {}, false);
}

// A foreign (torchvision-named, no metadata) file of resnet18 at width 0.125 with a 1000-class head,
// plus torchvision's num_batches_tracked and, optionally, more entries.
std::string write_pretrained(const ScratchDir& dir, std::shared_ptr<nn::Module>& src,
                             const std::vector<std::pair<std::string, nn::StEntry>>& extra = {}) {
  src = nn::resnet18({.in_channels = 1, .num_classes = 1000, .stem = "small", .width = 0.125, .seed = 11});
  std::vector<std::pair<std::string, nn::StEntry>> entries;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(0.1f, 0.2f);
  for (auto& [n, t] : src->state_dict()) {
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] += u(rng);  // "pretrained": unlike any initialisation
    entries.emplace_back(n, nn::f32_entry(t));
  }
  const int64_t tracked = 5;
  entries.emplace_back("bn1.num_batches_tracked", nn::raw_entry("I64", {}, &tracked));
  for (auto& e : extra) entries.push_back(e);
  const std::string file = dir / ("pretrained" + std::to_string(extra.size()) + ".safetensors");
  nn::write_safetensors(file, entries, {});
  return file;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("init_skip: a 1000-class file into a 10-class model keeps the fresh head and loads the rest") {
  ScratchDir dir("init_skip");
  std::shared_ptr<nn::Module> src;
  const std::string file = write_pretrained(dir, src);
  apps::Config cfg = config_with(kModel);
  cfg.j["model"]["init_from"] = file;

  // Without init_skip: the head's shape mismatch names the file, the tensor, both shapes and the remedy.
  const std::string err = error_of([&] { apps::build_float_model(cfg); });
  CHECK(err.find(file + ": tensor 'fc.weight' has shape (1000,64), the model expects (10,64)") != std::string::npos);
  CHECK(err.find("key 'model.init_from' in ft.json") != std::string::npos);
  CHECK(err.find("model.init_skip") != std::string::npos);

  cfg.j["model"]["init_skip"] = {"fc"};
  auto model = apps::build_float_model(cfg);
  auto fresh = apps::build_network(cfg);  // what the head is initialised to (same seed)
  std::map<std::string, Tensor> pre, init;
  for (auto& [n, t] : src->state_dict()) pre[n] = t;
  for (auto& [n, t] : fresh->state_dict()) init[n] = t;
  int loaded = 0, kept = 0;
  for (auto& [n, t] : model->state_dict()) {
    CAPTURE(n);
    if (n.rfind("fc.", 0) == 0) {
      CHECK(same(t, init[n]));
      ++kept;
    } else {
      CHECK(same(t, pre[n]));
      CHECK_FALSE(same(t, init[n]));  // loading changed it
      ++loaded;
    }
  }
  CHECK(kept == 2);
  CHECK(loaded == static_cast<int>(model->state_dict().size()) - 2);

  // A prefix that names nothing in the model is a mistake, said with the key.
  cfg.j["model"]["init_skip"] = {"head"};
  const std::string none = error_of([&] { apps::build_float_model(cfg); });
  CHECK(none.find("skip prefix 'head' names no tensor of the model") != std::string::npos);
  CHECK(none.find("model.init_from") != std::string::npos);
  // "fc" covers fc.weight, not a name that merely starts with the letters.
  CHECK(nn::name_under("fc.weight", "fc"));
  CHECK(nn::name_under("fc", "fc"));
  CHECK(nn::name_under("layer1.0.conv1.weight", "layer1.0."));
  CHECK_FALSE(nn::name_under("fc2.weight", "fc"));
  CHECK_FALSE(nn::name_under("fc.weight", ""));
}

TEST_CASE("init_skip: names the model lacks are errors naming them, unless under a skipped prefix") {
  ScratchDir dir("init_extra");
  std::shared_ptr<nn::Module> src;
  const float v[2] = {1, 2};
  const std::string file = write_pretrained(
      dir, src, {{"fc.extra", nn::raw_entry("F32", {2}, v)}, {"aux.weight", nn::raw_entry("F32", {2}, v)}});
  apps::Config cfg = config_with(kModel);
  cfg.j["model"]["init_from"] = file;
  cfg.j["model"]["num_classes"] = 1000;
  const std::string err = error_of([&] { apps::build_float_model(cfg); });
  CHECK(err.find(file + ": 2 tensor(s) not in the model: aux.weight, fc.extra") != std::string::npos);
  cfg.j["model"]["init_skip"] = {"fc"};
  CHECK(error_of([&] { apps::build_float_model(cfg); }).find("1 tensor(s) not in the model: aux.weight") !=
        std::string::npos);
  cfg.j["model"]["init_skip"] = {"fc", "aux"};  // "aux" names nothing in the model
  CHECK(error_of([&] { apps::build_float_model(cfg); }).find("'aux' names no tensor") != std::string::npos);
}

TEST_CASE("param_groups: the config key, its checks, and the groups the optimizer gets") {
  apps::Config c = config_with(
      kModel, {{"param_groups", {{{"match", "fc.*"}, {"lr", 0.001}}, {{"match", "layer4.*"}, {"weight_decay", 0.0}}}}});
  auto g = apps::param_groups(c);
  REQUIRE(g.size() == 2);
  CHECK(g[0].match == "fc.*");
  CHECK(g[0].lr == 0.001f);
  CHECK_FALSE(g[0].weight_decay);
  CHECK(g[1].match == "layer4.*");
  CHECK_FALSE(g[1].lr);
  CHECK(g[1].weight_decay == 0.f);
  CHECK(apps::param_groups(config_with(kModel)).empty());
  // --set replaces the list.
  apps::Config s = apps::make_config({{"optim", {{"param_groups", {{{"match", "a"}}, {{"match", "b"}}}}}}}, "ft.json",
                                     {R"(optim.param_groups=[{"match": "fc.*", "lr": 0.5}])"}, false);
  REQUIRE(apps::param_groups(s).size() == 1);
  CHECK(apps::param_groups(s)[0].lr == 0.5f);

  auto err = [](const json& groups) { return error_of([&] { config_with(kModel, {{"param_groups", groups}}); }); };
  CHECK(err({{{"lr", 0.1}}}).find("key 'optim.param_groups[0]' in ft.json: needs \"match\"") != std::string::npos);
  CHECK(err({{{"match", "fc.*"}, {"lrr", 0.1}}}).find("unknown key 'optim.param_groups[0].lrr' in ft.json") !=
        std::string::npos);
  CHECK(err({{{"match", "fc.*"}, {"lr", -1}}}).find("optim.param_groups[0].lr") != std::string::npos);
  CHECK(err({{{"match", "fc.*"}}, 3}).find("optim.param_groups[1]") != std::string::npos);
  CHECK(err({{"match", "fc.*"}}).find("optim.param_groups") != std::string::npos);  // an object, not a list
  const config::Key* k = apps::config_keys().find("optim.param_groups");
  REQUIRE(k);
  REQUIRE(k->entry);
  CHECK(k->entry->find("match"));
  CHECK(k->entry->find("lr"));
  CHECK(k->entry->find("weight_decay"));
  CHECK(apps::config_keys().find("model.init_skip"));
}

TEST_CASE("param_groups: training moves the backbone at optim.lr and the head at its own tiny lr") {
  ScratchDir d("param_groups");
  const std::string cfg = write_tiny_config(d);
  RunResult r = run_qforge("train " + cfg + " --set train.epochs=1" +
                           R"( --set 'optim.param_groups=[{"match": "fc.*", "lr": 1e-9}]')");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("param group 'fc.*': 2 tensors, lr 1e-09") != std::string::npos);
  auto ck = apps::load_checkpoint(d / "run/last.safetensors");
  apps::Config c = apps::load_config(cfg, {}, false);
  auto init = apps::build_network(c);  // the run's initial weights (same seed)
  std::map<std::string, Tensor> now = ck.model_state();
  auto moved = [&](const std::string& name) {
    for (auto& [n, t] : init->state_dict())
      if (n == name) {
        double m = 0;
        for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(double(now[n].data()[i]) - t.data()[i]));
        return m;
      }
    FAIL("no tensor " << name);
    return 0.0;
  };
  CHECK(moved("conv1.weight") > 1e-3);
  CHECK(moved("layer4.1.conv2.weight") > 1e-4);
  CHECK(moved("fc.weight") < 1e-6);
  CHECK(moved("fc.bias") < 1e-6);
  // A group that matches nothing: the key path and the pattern.
  RunResult bad = run_qforge("train " + cfg + " --set train.epochs=1" +
                             R"( --set 'optim.param_groups=[{"match": "head.*", "lr": 0.1}]')");
  CHECK(bad.code != 0);
  CHECK(bad.out.find("optim.param_groups") != std::string::npos);
  CHECK(bad.out.find("'head.*'") != std::string::npos);
}

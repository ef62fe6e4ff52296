#include "apps/models.h"

#include <cstdio>

#include "core/error.h"
#include "nn/conv2d.h"
#include "nn/mobilenet_v2.h"
#include "nn/resnet.h"
#include "nn/torch_file.h"
#include "quant/fuse.h"
#include "quant/graph.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/runtime.h"

namespace qforge::apps {
namespace {

// One row per architecture: a new model is a builder reading its model.* keys and a row here
// (config.cpp takes model.arch's allowed values from this table).
std::shared_ptr<nn::Module> resnet18_of(const nlohmann::json& m, uint64_t seed) {
  nn::ResNetConfig rc;
  rc.in_channels = m["in_channels"];
  rc.num_classes = m["num_classes"];
  rc.stem = m["stem"];
  rc.width = m["width"];
  rc.seed = seed;
  return nn::resnet18(rc);
}

std::shared_ptr<nn::Module> mobilenet_v2_of(const nlohmann::json& m, uint64_t seed) {
  nn::MobileNetV2Config mc;
  mc.in_channels = m["in_channels"];
  mc.num_classes = m["num_classes"];
  mc.stem = m["stem"];
  // Optional keys: configs written before MobileNetV2 lack them.
  mc.width_mult = m.value("width_mult", 1.0);
  mc.dropout = m.value("dropout", 0.2f);
  mc.seed = seed;
  return nn::mobilenet_v2(mc);
}

struct Architecture {
  const char* name;
  std::shared_ptr<nn::Module> (*build)(const nlohmann::json& model, uint64_t seed);
};

constexpr Architecture kArchitectures[] = {
    {"resnet18", resnet18_of},
    {"mobilenet_v2", mobilenet_v2_of},
};

}  // namespace

std::vector<std::string> architectures() {
  std::vector<std::string> names;
  for (const Architecture& a : kArchitectures) names.emplace_back(a.name);
  return names;
}

std::shared_ptr<nn::Module> build_network(const Config& cfg) {
  const std::string arch = cfg.j["model"]["arch"];
  for (const Architecture& a : kArchitectures)
    if (arch == a.name) return a.build(cfg.j["model"], cfg.j["train"]["seed"].get<uint64_t>());
  std::string known;
  for (const Architecture& a : kArchitectures) known += (known.empty() ? "" : ", ") + std::string(a.name);
  throw Error(cfg.where("model.arch") + ": unknown architecture \"" + arch + "\" (" + known + ")");
}

std::shared_ptr<nn::Module> build_float_model(const Config& cfg) {
  auto model = build_network(cfg);
  std::string init = cfg.j["model"]["init_from"];
  if (!init.empty()) {
    LoadedCheckpoint ck = load_checkpoint(init);
    QF_CHECK(!ck.is_qforge || ck.info.kind == "float", init + " (" + cfg.where("model.init_from") + "): a " +
                                                           ck.info.kind + " checkpoint; a float one is needed");
    const auto skip = cfg.j["model"]["init_skip"].get<std::vector<std::string>>();
    std::vector<std::string> kept;
    try {
      kept = model->load_state_dict(ck.model_state(), init, true, skip);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (" + cfg.where("model.init_from") +
                  (skip.empty() ? "; to keep some of the model's own tensors, e.g. a new head, list their prefixes "
                                  "in model.init_skip"
                                : "; model.init_skip keeps " + nlohmann::json(skip).dump()) +
                  ")");
    }
    if (!kept.empty()) {
      std::string list;
      for (auto& k : kept) list += (list.empty() ? "" : ", ") + k;
      std::printf("%s: loaded; kept freshly initialised (model.init_skip): %s\n", init.c_str(), list.c_str());
    }
  }
  return model;
}

int fold_for_inference(nn::Module& model, const std::vector<int>& input_chw) {
  model.eval();
  const quant::FuseReport r = quant::fuse_modules(model, false, input_chw);
  int folded = 0;
  for (const quant::FusedGroup& g : r.fused) folded += g.pattern.find("BatchNorm2d") != std::string::npos;
  nn::freeze_conv_filters(model);
  return folded;
}

std::shared_ptr<nn::Module> build_prepared_model(const Config& cfg, const std::string& kind, bool load_init) {
  auto model = load_init ? build_float_model(cfg) : build_network(cfg);
  auto qc = quant::qconfig_from_json(cfg.j["quant"], cfg.path.empty() ? "the config" : cfg.path);
  data::ImageSpec in = model_input_spec(cfg);
  quant::FuseReport fr;
  if (kind == "qat") {
    model->train();
    fr = quant::fuse_modules(*model, true, {in.channels, in.height, in.width});
    quant::prepare_qat(*model, qc);
  } else {
    QF_CHECK(kind == "ptq", "unknown model kind " + kind);
    model->eval();
    fr = quant::fuse_modules(*model, false, {in.channels, in.height, in.width});
    quant::prepare(*model, qc);
  }
  for (auto& s : fr.skipped) std::fprintf(stderr, "warning: not fused: %s\n", s.describe().c_str());
  return model;
}

static bool is_int8_file(const nn::SafeTensors& st) {
  auto it = st.metadata.find("format");
  return it != st.metadata.end() && it->second == "qforge-int8";
}

LoadedModel load_model_file(const std::string& path, const Config* data_cfg) {
  if (!nn::is_zip_file(path)) {  // a PyTorch .pth is always a float state_dict
    // An int8 graph: run by the int8 runtime.
    nn::SafeTensors probe = nn::read_safetensors(path);
    if (is_int8_file(probe)) {
      quant::Int8Graph g = quant::load_int8_model(path);
      LoadedModel lm;
      lm.config = make_config(g.config, path + " (stored config)", {}, false);
      lm.classes = g.classes;
      lm.input = g.input_shape;
      lm.kind = "int8";
      lm.module = std::make_shared<quant::Int8Module>(std::make_shared<quant::Int8Runtime>(std::move(g)));
      return lm;
    }
  }
  LoadedCheckpoint ck = load_checkpoint(path);
  LoadedModel lm;
  if (ck.is_qforge) {
    lm.config = make_config(ck.config, path + " (stored config)", {}, false);
    lm.classes = ck.info.classes;
    lm.input = ck.info.input;
    lm.kind = ck.info.kind;
  } else {
    QF_CHECK(
        data_cfg,
        path + ": not a qforge checkpoint; give a config (--data CONFIG) whose model section names the architecture");
    lm.config = *data_cfg;
    lm.kind = "float";
  }
  if (lm.kind == "float") {
    lm.module = build_network(lm.config);
    lm.module->load_state_dict(ck.model_state(), path);
  } else {
    // The fake-quant simulation: the same prepared structure, then its saved state.
    lm.module = build_prepared_model(lm.config, lm.kind, false);
    lm.module->load_state_dict(ck.model_state(), path);
    quant::set_observers(*lm.module, false);
    quant::set_fake_quant(*lm.module, true);
  }
  lm.module->eval();
  return lm;
}

void ready_for_inference(LoadedModel& lm, const std::vector<int>& input_chw) {
  if (lm.kind == "float")
    fold_for_inference(*lm.module, input_chw);
  else
    nn::freeze_conv_filters(*lm.module);
}

}  // namespace qforge::apps

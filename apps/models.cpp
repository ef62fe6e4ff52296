#include "apps/models.h"

#include "core/error.h"
#include "nn/resnet.h"

namespace qforge::apps {
namespace {

std::shared_ptr<nn::Module> resnet_of(const Config& cfg) {
  const auto& m = cfg.j["model"];
  nn::ResNetConfig rc;
  rc.in_channels = m["in_channels"];
  rc.num_classes = m["num_classes"];
  rc.stem = m["stem"];
  rc.width = m["width"];
  rc.seed = cfg.j["train"]["seed"];
  return nn::resnet18(rc);
}

}  // namespace

std::shared_ptr<nn::Module> build_float_model(const Config& cfg) {
  auto model = resnet_of(cfg);
  std::string init = cfg.j["model"]["init_from"];
  if (!init.empty()) {
    LoadedCheckpoint ck = load_checkpoint(init);
    QF_CHECK(!ck.is_qforge || ck.info.kind == "float",
             init + " (" + cfg.where("model.init_from") + "): a " + ck.info.kind + " checkpoint; a float one is needed");
    model->load_state_dict(ck.model_state(), init);
  }
  return model;
}

LoadedModel load_model_file(const std::string& path, const Config* data_cfg) {
  LoadedCheckpoint ck = load_checkpoint(path);
  LoadedModel lm;
  if (ck.is_qforge) {
    lm.config = make_config(ck.config, path + " (stored config)", {}, false);
    lm.classes = ck.info.classes;
    lm.input = ck.info.input;
    lm.kind = ck.info.kind;
  } else {
    QF_CHECK(data_cfg, path + ": not a qforge checkpoint; give a config (--data CONFIG) whose model section names the architecture");
    lm.config = *data_cfg;
    lm.kind = "float";
  }
  QF_CHECK(lm.kind == "float", path + ": " + lm.kind + " checkpoints are evaluated after conversion (qforge convert)");
  lm.module = resnet_of(lm.config);
  lm.module->load_state_dict(ck.model_state(), path);
  lm.module->eval();
  return lm;
}

}  // namespace qforge::apps

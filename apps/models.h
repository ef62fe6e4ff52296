// Building and loading models for the commands: the float model a config
// describes, with model.init_from applied, and whatever a model file holds.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "apps/checkpoint.h"
#include "apps/config.h"
#include "nn/module.h"

namespace qforge::apps {

// The architectures model.arch may name (resnet18, mobilenet_v2, ...), one table in models.cpp.
std::vector<std::string> architectures();

// The network model.arch names, as model.* says, freshly initialised from train.seed
// (model.init_from is not applied): what bench and a checkpoint's stored config build.
std::shared_ptr<nn::Module> build_network(const Config& cfg);

// build_network(cfg), then loaded from
// model.init_from when set (a qforge checkpoint, or any safetensors or PyTorch
// .pth file with torchvision's names), except the prefixes model.init_skip lists.
std::shared_ptr<nn::Module> build_float_model(const Config& cfg);

// Float inference as deployed: BatchNorm folded into the convolution before it, and the ReLU or
// ReLU6 after it done in the convolution's output pass (quant::fuse_modules in eval mode, as
// ONNX Runtime and torch.fx fusion do), and the convolutions' filter caches frozen
// (nn::freeze_conv_filters: prepared once, as ONNX Runtime packs its weights once per session). In
// place, with the model in eval mode; a folded model is for inference only (no training, no
// checkpoint, no writes to its weights). Returns the number of BatchNorms folded.
int fold_for_inference(nn::Module& model, const std::vector<int>& input_chw);

// The float model, fused and prepared as the config's quant section says:
// kind "qat" (fuse keeping BN, prepare_qat; the model is left in training mode)
// or "ptq" (BN folded, prepare; observers on for calibration).
std::shared_ptr<nn::Module> build_prepared_model(const Config& cfg, const std::string& kind, bool load_init);

// A model file ready for evaluation, with what is needed to feed it.
struct LoadedModel {
  std::shared_ptr<nn::Module> module;
  Config config;  // the model's (from the file, or the one given for a foreign file)
  std::vector<std::string> classes;
  std::vector<int> input;  // C, H, W (empty when unknown)
  std::string kind;        // float, qat, ptq, int8
};

// data_cfg: needed for a foreign file (gives the architecture), else may be null.
LoadedModel load_model_file(const std::string& path, const Config* data_cfg);

// A loaded model made ready to run inference only (eval, predict) on input_chw images: a float
// model folded as deployed (fold_for_inference), a fake-quant simulation's convolution filters
// frozen (nn::freeze_conv_filters); an int8 graph as it is.
void ready_for_inference(LoadedModel& lm, const std::vector<int>& input_chw);

}  // namespace qforge::apps

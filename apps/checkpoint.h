// Checkpoints: a .safetensors file holding the model's state dict under
// torchvision's names, the optimizer's momentum buffers under "optim.", and
// metadata: format, kind (float, qat, ptq), epoch and step reached, the full
// config, the class names and the input shape.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apps/config.h"
#include "nn/module.h"
#include "nn/safetensors.h"
#include "optim/sgd.h"

namespace qforge::apps {

struct CheckpointInfo {
  std::string kind = "float";  // float | qat | ptq
  int epoch = 0;               // epochs completed
  int64_t batch = 0;           // batches done in the current epoch
  int64_t step = 0;            // global optimizer steps
  double test_acc = -1, best_acc = -1;
  std::vector<std::string> classes;
  std::vector<int> input;  // C, H, W
};

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::SGD* opt, const Config& cfg,
                     const CheckpointInfo& info);

struct LoadedCheckpoint {
  nn::SafeTensors file;
  bool is_qforge = false;  // false: a foreign file (torchvision names, no metadata; a .safetensors or a .pth)
  CheckpointInfo info;
  nlohmann::json config;                              // null for a foreign file
  std::map<std::string, Tensor> model_state() const;  // without "optim." and num_batches_tracked
  std::map<std::string, Tensor> optim_state() const;
};

// A qforge checkpoint, or a foreign weight file: any .safetensors, or a PyTorch .pth state_dict
// (nn/torch_file.h), recognised by content whatever its extension.
LoadedCheckpoint load_checkpoint(const std::string& path);

}  // namespace qforge::apps

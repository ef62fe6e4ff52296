// qforge info FILE: what a model file holds (a checkpoint, an int8 model, a PyTorch .pth). qforge info --system: what
// this machine and process run (CPU features, ISA level, options, kernels).
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/system_report.h"
#include "core/error.h"
#include "nn/safetensors.h"
#include "nn/torch_file.h"

namespace qforge::apps {
namespace {

void run_info(const std::string& path) {
  nn::SafeTensors st = nn::read_weight_file(path);  // a .safetensors (checkpoint, .qfm) or a PyTorch .pth
  std::printf("%s: %.2f MB, %zu tensors\n", path.c_str(), st.file_size / 1e6, st.tensors.size());
  for (auto& [k, v] : st.metadata) {
    if (k == "config" || k == "graph" || v.empty()) continue;  // long JSON documents
    std::printf("  %-10s %s\n", k.c_str(), v.c_str());
  }
  // The architecture from the stored config (checkpoints and int8 models carry one): what the tensors are of.
  auto cfg = st.metadata.find("config");
  if (cfg != st.metadata.end()) {
    auto j = nlohmann::json::parse(cfg->second, nullptr, false);
    if (j.is_object() && j.contains("model") && j["model"].is_object()) {
      nlohmann::json m = j["model"];
      m.erase("init_from");
      std::printf("  %-10s %s\n", "model", m.dump().c_str());
    }
  }
  // Tensors grouped by module (the name up to its last dot), in file order of names.
  std::map<std::string, int64_t> by_dtype;
  int64_t params = 0;
  std::printf("\n%-44s %-6s %s\n", "tensor", "dtype", "shape");
  for (auto& [name, e] : st.tensors) {
    std::string shape = shape_str(e.shape);
    std::printf("%-44s %-6s %s\n", name.c_str(), e.dtype.c_str(), shape.c_str());
    by_dtype[e.dtype] += numel_of(e.shape);
    bool is_param = name.rfind("optim.", 0) != 0 && name.find("running_") == std::string::npos &&
                    name.find("num_batches_tracked") == std::string::npos;
    if (is_param) params += numel_of(e.shape);
  }
  std::printf("\nparameters (excluding optimizer state and BN running statistics): %lld\n",
              static_cast<long long>(params));
  for (auto& [d, n] : by_dtype) std::printf("  %s: %lld elements\n", d.c_str(), static_cast<long long>(n));
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto system = std::make_shared<bool>(false);
  auto* c = app.add_subcommand("info", "Show the layers, shapes, parameter count and size of a model file");
  auto* file = c->add_option("file", *path, "A .safetensors checkpoint, .qfm int8 model or PyTorch .pth state_dict")
                   ->check(CLI::ExistingFile);
  c->add_flag("--system", *system, "Show the CPU's features, the selected ISA, the options and the kernels chosen")
      ->excludes(file);
  c->callback([path, system] {
    if (*system) {
      std::printf("%s", system_report().c_str());
      return;
    }
    QF_CHECK(!path->empty(), "info: expected a model file (or --system)");
    run_info(*path);
  });
}

}  // namespace qforge::apps

// qforge import FILE --arch A [model flags | --config CONFIG] --out OUT.safetensors:
// a foreign weight file (a PyTorch .pth state_dict, or a safetensors file with
// torchvision's names) as a qforge float checkpoint, with the architecture in
// its stored config. The weights are loaded into the network here, so a name
// or shape that does not fit is an error now, not at the first eval.
#include <cstdio>
#include <map>

#include "apps/checkpoint.h"
#include "apps/commands.h"
#include "apps/config.h"
#include "apps/models.h"
#include "core/error.h"

namespace qforge::apps {
namespace {

struct ImportArgs {
  std::string file, out, config, arch, stem;
  int num_classes = 0, in_channels = 0;
  double width = 0, width_mult = 0;
  std::vector<std::string> sets;
};

void run_import(const ImportArgs& a) {
  QF_CHECK(
      !a.arch.empty() || !a.config.empty(), "import: say what network the weights are for: --arch (" + [] {
        std::string s;
        for (auto& n : architectures()) s += (s.empty() ? "" : ", ") + n;
        return s;
      }() + ") or --config CONFIG");
  // The flags are config overrides, so they are checked as the config's keys are.
  std::vector<std::string> sets = a.sets;
  if (!a.arch.empty()) sets.push_back("model.arch=" + a.arch);
  if (!a.stem.empty()) sets.push_back("model.stem=" + a.stem);
  if (a.num_classes) sets.push_back("model.num_classes=" + std::to_string(a.num_classes));
  if (a.in_channels) sets.push_back("model.in_channels=" + std::to_string(a.in_channels));
  if (a.width) sets.push_back("model.width=" + nlohmann::json(a.width).dump());
  if (a.width_mult) sets.push_back("model.width_mult=" + nlohmann::json(a.width_mult).dump());
  sets.push_back("model.init_from=\"\"");  // the stored config describes the network, not where it came from
  sets.push_back("model.init_skip=[]");
  Config cfg =
      a.config.empty() ? make_config(nlohmann::json::object(), "", sets, false) : load_config(a.config, sets, false);

  LoadedCheckpoint ck = load_checkpoint(a.file);
  QF_CHECK(!ck.is_qforge, a.file + ": already a qforge checkpoint (" + ck.info.kind + ")");
  auto model = build_network(cfg);
  try {
    model->load_state_dict(ck.model_state(), a.file);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (the network: " + cfg.j["model"].dump() +
                "; --arch, --num-classes, --in-channels, --stem, --width, --width-mult or --config describe it)");
  }
  CheckpointInfo info;
  info.kind = "float";
  // The input size only when the config fixes it (data.image_size): IDX images keep their own size, which only
  // the data files know, and a wrong size stored here would make eval refuse the right data.
  if (cfg.j["data"]["image_size"].get<int>() > 0) {
    data::ImageSpec in = model_input_spec(cfg);
    info.input = {in.channels, in.height, in.width};
  }
  save_checkpoint(a.out, *model, nullptr, cfg, info);

  std::map<std::string, int> dtypes;
  for (auto& [_, e] : ck.file.tensors) ++dtypes[e.dtype];
  std::string kinds;
  for (auto& [d, n] : dtypes) kinds += (kinds.empty() ? "" : ", ") + std::to_string(n) + " " + d;
  auto fmt = ck.file.metadata.find("format");
  std::printf("read %s (%s): %zu tensors (%s)\n", a.file.c_str(),
              fmt != ck.file.metadata.end() ? fmt->second.c_str() : "safetensors", ck.file.tensors.size(),
              kinds.c_str());
  std::printf("wrote %s: %s %s, %zu tensors as F32\n", a.out.c_str(), cfg.j["model"]["arch"].get<std::string>().c_str(),
              cfg.j["model"].dump().c_str(), model->state_dict().size());
}

}  // namespace

void add_import_command(CLI::App& app) {
  auto a = std::make_shared<ImportArgs>();
  auto* c = app.add_subcommand(
      "import",
      "Turn a PyTorch .pth state_dict (or a safetensors file) with torchvision's names into a qforge checkpoint");
  c->add_option("file", a->file, "Weights: a PyTorch .pth (torch.save of a state_dict) or a .safetensors")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--out", a->out, "The qforge float checkpoint to write (.safetensors)")->required();
  c->add_option("--arch", a->arch, "Network architecture (model.arch)");
  c->add_option("--num-classes", a->num_classes, "model.num_classes (torchvision's: 1000)");
  c->add_option("--in-channels", a->in_channels, "model.in_channels (torchvision's: 3)");
  c->add_option("--stem", a->stem, "model.stem: imagenet (torchvision's) or small");
  c->add_option("--width", a->width, "resnet18: model.width");
  c->add_option("--width-mult", a->width_mult, "mobilenet_v2: model.width_mult");
  c->add_option("--config", a->config, "A config whose model (and data) sections describe the network")
      ->check(CLI::ExistingFile);
  c->add_option("--set", a->sets, "Override a config key: --set data.image_size=224 (repeatable)");
  c->callback([a] { run_import(*a); });
}

}  // namespace qforge::apps

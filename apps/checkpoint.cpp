#include "apps/checkpoint.h"

#include "core/error.h"
#include "nn/torch_file.h"

namespace qforge::apps {

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::SGD* opt, const Config& cfg,
                     const CheckpointInfo& info) {
  std::vector<std::pair<std::string, nn::StEntry>> entries;
  for (auto& [n, t] : model.state_dict()) entries.emplace_back(n, nn::f32_entry(t));
  if (opt)
    for (auto& [n, t] : opt->state()) entries.emplace_back("optim." + n, nn::f32_entry(t));
  std::map<std::string, std::string> meta{{"format", "qforge-checkpoint"},
                                          {"version", "1"},
                                          {"kind", info.kind},
                                          {"epoch", std::to_string(info.epoch)},
                                          {"batch", std::to_string(info.batch)},
                                          {"step", std::to_string(info.step)},
                                          {"test_acc", std::to_string(info.test_acc)},
                                          {"best_acc", std::to_string(info.best_acc)},
                                          {"classes", nlohmann::json(info.classes).dump()},
                                          {"input", nlohmann::json(info.input).dump()},
                                          {"config", cfg.j.dump()}};
  nn::write_safetensors(path, entries, meta);
}

LoadedCheckpoint load_checkpoint(const std::string& path) {
  LoadedCheckpoint c;
  c.file = nn::read_weight_file(path);  // a .safetensors, or a PyTorch .pth (told apart by content)
  auto it = c.file.metadata.find("format");
  c.is_qforge = it != c.file.metadata.end() && it->second == "qforge-checkpoint";
  if (!c.is_qforge) return c;
  QF_CHECK(c.file.meta("version") == "1",
           path + ": checkpoint version " + c.file.meta("version") + " is not supported (1)");
  try {
    c.info.kind = c.file.meta("kind");
    c.info.epoch = std::stoi(c.file.meta("epoch"));
    c.info.batch = std::stoll(c.file.meta("batch"));
    c.info.step = std::stoll(c.file.meta("step"));
    c.info.test_acc = std::stod(c.file.meta("test_acc"));
    c.info.best_acc = std::stod(c.file.meta("best_acc"));
    c.info.classes = nlohmann::json::parse(c.file.meta("classes")).get<std::vector<std::string>>();
    c.info.input = nlohmann::json::parse(c.file.meta("input")).get<std::vector<int>>();
    c.config = nlohmann::json::parse(c.file.meta("config"));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(path + ": corrupt checkpoint metadata: " + e.what());
  }
  return c;
}

std::map<std::string, Tensor> LoadedCheckpoint::model_state() const {
  std::map<std::string, Tensor> m;
  for (auto& [n, e] : file.tensors) {
    if (n.rfind("optim.", 0) == 0) continue;
    if (n.size() >= 19 && n.compare(n.size() - 19, 19, "num_batches_tracked") == 0) continue;
    m[n] = file.f32(n);
  }
  return m;
}

std::map<std::string, Tensor> LoadedCheckpoint::optim_state() const {
  std::map<std::string, Tensor> m;
  for (auto& [n, e] : file.tensors)
    if (n.rfind("optim.", 0) == 0) m[n.substr(6)] = file.f32(n);
  return m;
}

}  // namespace qforge::apps

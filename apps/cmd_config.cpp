// qforge config: the config schema (every key, its type, default and meaning),
// or a config file as the commands see it (defaults filled in, --set applied).
#include <cstdio>

#include "apps/commands.h"
#include "apps/config.h"
#include "core/error.h"

namespace qforge::apps {
namespace {

struct ConfigArgs {
  bool schema = false, json = false;
  std::string config;
  std::vector<std::string> sets;
};

nlohmann::json key_json(const config::Key& k) {
  nlohmann::json j = {{"key", k.path},
                      {"type", config::type_name(k.type)},
                      {"default", k.def},
                      {"allowed", allowed(k)},
                      {"meaning", k.meaning}};
  if (k.entry) {
    j["entry"] = nlohmann::json::array();
    for (auto& e : k.entry->keys()) j["entry"].push_back(key_json(e));
  }
  return j;
}

void print_schema(bool as_json) {
  const config::KeySet& keys = config_keys();
  if (as_json) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& k : keys.keys()) out.push_back(key_json(k));
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("%-36s %-15s %-23s %s\n", "key", "type", "default", "meaning");
  for (auto& k : keys.keys()) {
    std::string meaning = k.meaning, a = allowed(k);
    if (!a.empty()) meaning += " (" + a + ")";
    std::printf("%-36s %-15s %-23s %s\n", k.path.c_str(), config::type_name(k.type).c_str(), k.def.dump().c_str(),
                meaning.c_str());
  }
}

void run_config(const ConfigArgs& a) {
  if (a.schema) return print_schema(a.json);
  QF_CHECK(!a.config.empty(), "config: give a config file, or --schema");
  Config c = load_config(a.config, a.sets);
  std::printf("%s\n", c.j.dump(2).c_str());
}

}  // namespace

void add_config_command(CLI::App& app) {
  auto a = std::make_shared<ConfigArgs>();
  auto* c = app.add_subcommand("config",
                               "Print the config schema (--schema), or a config file with defaults and --set applied");
  c->add_flag("--schema", a->schema, "Every key with its type, default, allowed values and meaning");
  c->add_flag("--json", a->json, "With --schema: as JSON");
  c->add_option("config", a->config, "JSON config file")->check(CLI::ExistingFile);
  c->add_option("--set", a->sets, "Override a config key: --set train.epochs=3 (repeatable)");
  c->callback([a] { run_config(*a); });
}

}  // namespace qforge::apps

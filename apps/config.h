// The JSON config: one schema (config_keys()), validated on load. Every key has
// a default; an unknown key, a wrong type, a value out of range, a missing file
// or an impossible value is an error naming the key path and the config file
// (or the --set). `--set a.b=value` overrides any key (value parsed as JSON,
// else taken as a string), checked the same way.
//
//   Config cfg = load_config("configs/tiny.json", {"train.epochs=1"});
//   int e = cfg.j["train"]["epochs"];
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config_keys.h"
#include "data/transforms.h"
#include "optim/schedule.h"
#include "optim/sgd.h"

namespace qforge::apps {

struct Config {
  std::string path;                                 // the file it came from ("" for defaults)
  nlohmann::json j;                                 // complete: defaults filled in, validated
  std::string where(const std::string& key) const;  // "key 'a.b' in file.json"
};

// Every key of the config: type, default, allowed values, meaning. The quant
// keys that make a qconfig are quant::qconfig_keys(), mounted under "quant".
const config::KeySet& config_keys();
// config_keys() at their defaults, as a JSON object.
const nlohmann::json& config_defaults();

Config load_config(const std::string& path, const std::vector<std::string>& overrides = {}, bool check_files = true);
// A config given only for its test data (eval, debug, bench --data CONFIG): checks the files of
// data.test, and not model.init_from nor data.train, which these commands never read (a config
// whose checkpoint has since been moved still serves for its data).
Config load_data_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Validates j (a complete or partial config) against the schema; `path` is for
// messages. check_files = false skips the data files (a config stored in a
// checkpoint, used away from the machine that trained it).
Config make_config(const nlohmann::json& j, const std::string& path, const std::vector<std::string>& overrides = {},
                   bool check_files = true);

// Typed views of config sections.
data::TransformConfig transform_config(const Config& c);
optim::SGDOptions sgd_options(const Config& c);
std::vector<optim::ParamGroup> param_groups(const Config& c);  // optim.param_groups
optim::ScheduleOptions schedule_options(const Config& c);
// The model's input (C, H, W) after the eval transforms: folder images are
// decoded to data.image_size, or kept at their own sizes when it is 0 (then the
// centre crop gives the size); IDX images keep their size (28 for the MNIST family).
data::ImageSpec model_input_spec(const Config& c);
// True when data.train or data.test is an image folder.
bool uses_folders(const Config& c);

}  // namespace qforge::apps

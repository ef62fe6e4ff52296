#include "apps/config.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace qforge::apps {

using nlohmann::json;

const json& config_schema() {
  static const json schema = json::parse(R"({
    "model": {"arch": "resnet18", "in_channels": 1, "num_classes": 10, "stem": "small", "width": 1.0,
              "width_mult": 1.0, "dropout": 0.2, "init_from": ""},
    "data": {
      "train": {"images": "", "labels": "", "dir": ""},
      "test": {"images": "", "labels": "", "dir": ""},
      "image_size": 0,
      "mean": [0.0], "std": [1.0],
      "random_crop_padding": 0, "random_hflip": false, "resize": 0, "center_crop": 0,
      "workers": 2, "limit_train": 0, "limit_test": 0
    },
    "train": {"epochs": 1, "batch_size": 128, "eval_batch_size": 256, "threads": 0, "seed": 0,
              "label_smoothing": 0.0, "checkpoint_every": 0, "log_every": 50},
    "optim": {"lr": 0.1, "momentum": 0.9, "nesterov": false, "weight_decay": 0.0, "decay_bn_and_bias": true,
              "schedule": {"kind": "constant", "warmup_steps": 0, "step_epochs": 30, "gamma": 0.1, "min_lr": 0.0,
                           "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 10000.0,
                           "cycle_momentum": true}},
    "quant": {
      "activation": {"observer": "moving_average_minmax", "averaging_constant": 0.01, "bins": 2048,
                     "percentile": 99.99},
      "weight": {"observer": "minmax", "per_channel": true, "lsq": false},
      "skip": [],
      "overrides": {},
      "calibration_batches": 16,
      "freeze_bn_epoch": -1, "freeze_observer_epoch": -1,
      "mode": "static"
    },
    "output": {"dir": "runs/default"}
  })");
  return schema;
}

std::string Config::where(const std::string& key) const {
  return "key '" + key + "' in " + (path.empty() ? std::string("the config") : path);
}

namespace {

std::string type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return "null";
}

bool same_kind(const json& want, const json& got) {
  if (want.is_number_integer()) return got.is_number_integer();
  if (want.is_number()) return got.is_number();
  if (want.is_boolean()) return got.is_boolean();
  if (want.is_string()) return got.is_string();
  if (want.is_array()) return got.is_array();
  if (want.is_object()) return got.is_object();
  return false;
}

// Free-form objects: their keys are the user's (module names).
bool free_form(const std::string& key) { return key == "quant.overrides"; }

// Merges user values into the defaults, checking names and types.
void merge(json& dst, const json& src, const json& schema, const std::string& prefix, const std::string& file) {
  for (auto& [k, v] : src.items()) {
    std::string key = prefix.empty() ? k : prefix + "." + k;
    if (!schema.contains(k)) {
      std::string known;
      for (auto& [sk, _] : schema.items()) known += (known.empty() ? "" : ", ") + sk;
      throw Error("unknown key '" + key + "' in " + file + " (known here: " + known + ")");
    }
    const json& want = schema[k];
    if (!same_kind(want, v))
      throw Error("key '" + key + "' in " + file + " must be " + type_name(want) + ", got " + type_name(v) + " (" +
                  v.dump() + ")");
    if (want.is_object() && !free_form(key)) {
      merge(dst[k], v, want, key, file);
    } else if (want.is_array()) {
      // Lists hold the type of the default's elements; an empty default (quant.skip) holds strings.
      const json elem = want.empty() ? json("") : want[0];
      for (auto& e : v)
        if (!same_kind(elem, e))
          throw Error("key '" + key + "' in " + file + " must hold " + type_name(elem) + "s, got " + e.dump());
      dst[k] = v;
    } else {
      dst[k] = v;
    }
  }
}

json parse_value(const std::string& s) {
  try {
    return json::parse(s);
  } catch (...) {
    return json(s);  // a bare word is a string
  }
}

void check_file(const Config& c, const std::string& key, const std::string& file) {
  if (!file.empty() && !std::filesystem::exists(file)) throw Error(c.where(key) + ": file not found: " + file);
}

void check_dataset(const Config& c, const std::string& split) {
  const json& d = c.j["data"][split];
  std::string k = "data." + split;
  bool idx = !d["images"].get<std::string>().empty() || !d["labels"].get<std::string>().empty();
  bool dir = !d["dir"].get<std::string>().empty();
  QF_CHECK(!(idx && dir), c.where(k) + ": give either images+labels (IDX files) or dir (an image folder), not both");
  if (idx) {
    QF_CHECK(!d["images"].get<std::string>().empty() && !d["labels"].get<std::string>().empty(),
             c.where(k) + ": IDX data needs both 'images' and 'labels'");
    check_file(c, k + ".images", d["images"]);
    check_file(c, k + ".labels", d["labels"]);
  }
  if (dir) {
    QF_CHECK(std::filesystem::is_directory(d["dir"].get<std::string>()),
             c.where(k + ".dir") + ": directory not found: " + d["dir"].get<std::string>());
    QF_CHECK(c.j["data"]["image_size"].get<int>() > 0,
             c.where("data.image_size") + ": set the image size (pixels) for an image-folder dataset");
  }
}

void validate(const Config& c, bool check_files) {
  const json& m = c.j["model"];
  QF_CHECK(m["arch"] == "resnet18",
           c.where("model.arch") + ": unknown architecture " + m["arch"].dump() + " (resnet18)");
  QF_CHECK(m["stem"] == "small" || m["stem"] == "imagenet",
           c.where("model.stem") + ": must be \"small\" or \"imagenet\", got " + m["stem"].dump());
  QF_CHECK(m["in_channels"] == 1 || m["in_channels"] == 3, c.where("model.in_channels") + ": must be 1 or 3");
  QF_CHECK(m["num_classes"].get<int>() >= 2, c.where("model.num_classes") + ": must be at least 2");
  QF_CHECK(m["width"].get<double>() > 0, c.where("model.width") + ": must be positive");
  if (check_files) check_file(c, "model.init_from", m["init_from"]);
  const json& t = c.j["train"];
  for (const char* k : {"epochs", "batch_size", "eval_batch_size"})
    QF_CHECK(t[k].get<int>() >= 1, c.where(std::string("train.") + k) + ": must be at least 1");
  QF_CHECK(t["threads"].get<int>() >= 0, c.where("train.threads") + ": must be >= 0 (0 = all cores)");
  QF_CHECK(t["label_smoothing"].get<double>() >= 0 && t["label_smoothing"].get<double>() < 1,
           c.where("train.label_smoothing") + ": must be in [0, 1)");
  QF_CHECK(c.j["optim"]["lr"].get<double>() > 0, c.where("optim.lr") + ": must be positive");
  QF_CHECK(c.j["data"]["workers"].get<int>() >= 1, c.where("data.workers") + ": must be at least 1");
  const json& q = c.j["quant"];
  QF_CHECK(q["mode"] == "static" || q["mode"] == "dynamic",
           c.where("quant.mode") + ": must be \"static\" or \"dynamic\"");
  if (check_files) {
    check_dataset(c, "train");
    check_dataset(c, "test");
  }
  QF_CHECK(q["calibration_batches"].get<int>() >= 1, c.where("quant.calibration_batches") + ": must be at least 1");
  const json& o = c.j["optim"];
  const json& s = o["schedule"];
  QF_CHECK(o["momentum"].get<double>() >= 0 && o["momentum"].get<double>() < 1,
           c.where("optim.momentum") + ": must be in [0, 1)");
  QF_CHECK(o["weight_decay"].get<double>() >= 0, c.where("optim.weight_decay") + ": must be >= 0");
  QF_CHECK(s["kind"] == "constant" || s["kind"] == "step" || s["kind"] == "cosine" || s["kind"] == "one_cycle",
           c.where("optim.schedule.kind") + ": unknown schedule " + s["kind"].dump() +
               " (constant, step, cosine, one_cycle)");
  QF_CHECK(s["pct_start"].get<double>() > 0 && s["pct_start"].get<double>() < 1,
           c.where("optim.schedule.pct_start") + ": must be in (0, 1)");
  QF_CHECK(s["div_factor"].get<double>() > 0 && s["final_div_factor"].get<double>() > 0,
           c.where("optim.schedule.div_factor") + ": div_factor and final_div_factor must be positive");
  QF_CHECK(s["warmup_steps"].get<int64_t>() >= 0 && s["gamma"].get<double>() > 0 && s["step_epochs"].get<int>() >= 1,
           c.where("optim.schedule") + ": warmup_steps >= 0, gamma > 0 and step_epochs >= 1 are required");
  // Catches impossible normalisation and crops now rather than in a loader thread.
  try {
    model_input_spec(c);
  } catch (const Error& e) {
    throw Error(c.where("data") + ": " + e.what());
  }
}

}  // namespace

Config make_config(const json& user, const std::string& path, const std::vector<std::string>& overrides,
                   bool check_files) {
  Config c;
  c.path = path;
  std::string file = path.empty() ? "the config" : path;
  QF_CHECK(user.is_object(), file + ": the config must be a JSON object");
  c.j = config_schema();
  merge(c.j, user, config_schema(), "", file);
  for (const std::string& o : overrides) {
    auto eq = o.find('=');
    QF_CHECK(eq != std::string::npos && eq > 0, "--set " + o + ": expected key.path=value");
    std::string key = o.substr(0, eq);
    std::vector<std::string> parts;
    for (size_t b = 0;;) {
      size_t dot = key.find('.', b);
      parts.push_back(key.substr(b, dot == std::string::npos ? std::string::npos : dot - b));
      QF_CHECK(!parts.back().empty(), "--set " + o + ": empty key component in '" + key + "'");
      if (dot == std::string::npos) break;
      b = dot + 1;
    }
    // Build {"a": {"b": value}} and merge it like file content.
    json patch = parse_value(o.substr(eq + 1));
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) patch = json{{*it, patch}};
    merge(c.j, patch, config_schema(), "", "--set " + o);
  }
  validate(c, check_files);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream f(path);
  QF_CHECK(f, path + ": cannot open config file");
  json j;
  try {
    j = json::parse(f, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  return make_config(j, path, overrides);
}

data::TransformConfig transform_config(const Config& c) {
  const json& d = c.j["data"];
  data::TransformConfig t;
  t.mean = d["mean"].get<std::vector<float>>();
  t.std = d["std"].get<std::vector<float>>();
  t.random_crop_padding = d["random_crop_padding"];
  t.random_hflip = d["random_hflip"];
  t.resize = d["resize"];
  t.center_crop = d["center_crop"];
  return t;
}

data::ImageSpec model_input_spec(const Config& c) {
  int ch = c.j["model"]["in_channels"], size = c.j["data"]["image_size"];
  return data::output_spec(transform_config(c), {ch, size > 0 ? size : 28, size > 0 ? size : 28});
}

optim::SGDOptions sgd_options(const Config& c) {
  const json& o = c.j["optim"];
  optim::SGDOptions s;
  s.lr = o["lr"];
  s.momentum = o["momentum"];
  s.nesterov = o["nesterov"];
  s.weight_decay = o["weight_decay"];
  s.decay_bn_and_bias = o["decay_bn_and_bias"];
  return s;
}

optim::ScheduleOptions schedule_options(const Config& c) {
  const json& s = c.j["optim"]["schedule"];
  optim::ScheduleOptions o;
  o.kind = s["kind"];
  o.lr = c.j["optim"]["lr"];
  o.warmup_steps = s["warmup_steps"];
  o.step_epochs = s["step_epochs"];
  o.gamma = s["gamma"];
  o.min_lr = s["min_lr"];
  o.pct_start = s["pct_start"];
  o.div_factor = s["div_factor"];
  o.final_div_factor = s["final_div_factor"];
  o.cycle_momentum = s["cycle_momentum"];
  return o;
}

}  // namespace qforge::apps

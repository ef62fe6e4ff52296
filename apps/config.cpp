#include "apps/config.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "apps/models.h"
#include "core/error.h"
#include "core/json_util.h"
#include "quant/qconfig.h"

namespace qforge::apps {

using nlohmann::json;

namespace {

config::Key param_groups_key() {
  using namespace config;
  Key lr = number("lr", 0.0, "the group's learning rate, scaled by the schedule as optim.lr is (absent: optim.lr)",
                  positive());
  Key wd = number("weight_decay", 0.0, "the group's weight decay (absent: optim.weight_decay)", at_least(0));
  lr.def = wd.def = nullptr;  // absent means the optimizer's own
  auto entry = std::make_shared<KeySet>(
      std::vector<Key>{string("match", "", "glob over parameter names (* ? [...]), e.g. \"fc.*\"; required"), lr, wd});
  return object_list("optim.param_groups",
                     "per-group learning rates: [{\"match\": \"fc.*\", \"lr\": 0.1}]; the first group matching a "
                     "parameter takes it, the rest use optim.lr",
                     entry);
}

}  // namespace

const config::KeySet& config_keys() {
  using namespace config;
  static const KeySet keys = [] {
    const optim::ScheduleOptions sched;  // the schedule's defaults are its struct's
    KeySet k({
        string("model.arch", "resnet18", "network architecture", architectures()),
        integer_of("model.in_channels", 1,
                   "image channels (1 grey, 3 colour); images are converted to them as PIL does (grey copied to "
                   "R, G, B; RGB to ITU-R 601 luma; alpha dropped)",
                   {1, 3}),
        integer("model.num_classes", 10, "number of classes", at_least(2)),
        string("model.stem", "small", "small: 3x3 conv, no pool (28-32 px); imagenet: 7x7/2 conv + max pool",
               {"small", "imagenet"}),
        number("model.width", 1.0, "resnet18: channel multiplier (0.125 = an eighth of resnet18's channels)",
               positive()),
        number("model.width_mult", 1.0, "mobilenet_v2: width multiplier (torchvision's width_mult)", positive()),
        number("model.dropout", 0.2, "mobilenet_v2: dropout probability before the classifier", closed_open(0, 1)),
        string("model.init_from", "",
               "weights to start from: a .safetensors checkpoint or a PyTorch .pth state_dict (torchvision names); "
               "\"\" for random"),
        string_list("model.init_skip", {},
                    "with init_from: name prefixes kept freshly initialised, e.g. [\"fc\"] for a new head "
                    "([\"classifier\"] for mobilenet_v2)"),
        string("data.train.images", "", "training images (IDX file)"),
        string("data.train.labels", "", "training labels (IDX file)"),
        string("data.train.dir", "", "training image folder (one subfolder per class), instead of IDX"),
        string("data.test.images", "", "test images (IDX file)"),
        string("data.test.labels", "", "test labels (IDX file)"),
        string("data.test.dir", "", "test image folder (one subfolder per class), instead of IDX"),
        integer("data.image_size", 0,
                "pixels (square) an image folder's images are stretched to; 0: IDX images keep their size, and a "
                "folder's images keep their own sizes (then data.center_crop gives them one)",
                at_least(0)),
        number_list("data.mean", {0.0},
                    "mean subtracted after scaling pixels to [0, 1]: one value for all channels, or one per channel "
                    "(model.in_channels values)"),
        number_list("data.std", {1.0}, "standard deviation divided by: one value for all channels, or one per channel",
                    positive()),
        integer("data.random_crop_padding", 0, "training: pad by this many pixels, then crop randomly", at_least(0)),
        boolean("data.random_hflip", false, "training: flip images left-right at random"),
        integer("data.resize", 0, "scale the shorter side to this many pixels (0: keep)", at_least(0)),
        integer("data.center_crop", 0, "crop the centre to this square size (0: keep)", at_least(0)),
        boolean("data.random_resized_crop.enabled", false,
                "training: torchvision's RandomResizedCrop, to the size resize and center_crop give in eval, "
                "in place of them (and of random_crop_padding)"),
        number_list("data.random_resized_crop.scale", {0.08, 1.0},
                    "random_resized_crop: [min, max] fraction of the image's area the box covers", open_closed(0, 1)),
        number_list("data.random_resized_crop.ratio", {3.0 / 4.0, 4.0 / 3.0},
                    "random_resized_crop: [min, max] aspect ratio (width / height) of the box, drawn log-uniformly",
                    positive()),
        integer("data.workers", 2, "loader threads", at_least(1)),
        integer("data.limit_train", 0, "use only the first n training images (0: all)", at_least(0)),
        integer("data.limit_test", 0, "use only the first n test images (0: all)", at_least(0)),
        integer("train.epochs", 1, "passes over the training set", at_least(1)),
        integer("train.batch_size", 128, "training batch size (under mpirun, the global one: each rank takes its share)",
                at_least(1)),
        integer("train.eval_batch_size", 256, "evaluation batch size", at_least(1)),
        integer("train.threads", 0, "compute threads (0: all cores; under mpirun, per rank)", at_least(0)),
        boolean("train.sync_bn", true,
                "under mpirun: BatchNorm normalises with the global batch's statistics (false: each rank's own)"),
        integer64("train.seed", 0, "seed of initialization, shuffling and augmentation", at_least(0)),
        number("train.label_smoothing", 0.0, "label smoothing of the cross-entropy loss", closed_open(0, 1)),
        integer("train.checkpoint_every", 0, "save last.safetensors every n steps (0: at epoch ends)", at_least(0)),
        integer("train.log_every", 50, "print progress every n steps when not on a terminal (0: 50)", at_least(0)),
        number("optim.lr", sched.lr, "learning rate (one_cycle: the peak)", positive()),
        number("optim.momentum", 0.9, "SGD momentum", closed_open(0, 1)),
        boolean("optim.nesterov", false, "Nesterov momentum"),
        number("optim.weight_decay", 0.0, "L2 weight decay", at_least(0)),
        boolean("optim.decay_bn_and_bias", true, "apply weight decay to 1-D parameters (batch norm, biases) too"),
        param_groups_key(),
        string("optim.schedule.kind", sched.kind, "learning-rate schedule",
               {"constant", "step", "cosine", "one_cycle"}),
        integer("optim.schedule.warmup_steps", sched.warmup_steps, "linear warm-up steps (not one_cycle)", at_least(0)),
        integer("optim.schedule.step_epochs", sched.step_epochs, "step: multiply lr by gamma every n epochs",
                at_least(1)),
        number("optim.schedule.gamma", sched.gamma, "step: lr factor", positive()),
        number("optim.schedule.min_lr", sched.min_lr, "cosine: final learning rate", at_least(0)),
        number("optim.schedule.pct_start", sched.pct_start, "one_cycle: fraction of steps spent rising", open(0, 1)),
        number("optim.schedule.div_factor", sched.div_factor, "one_cycle: initial lr = lr / div_factor", positive()),
        number("optim.schedule.final_div_factor", sched.final_div_factor,
               "one_cycle: final lr = initial lr / final_div_factor", positive()),
        boolean("optim.schedule.cycle_momentum", sched.cycle_momentum, "one_cycle: cycle momentum inversely to lr"),
    });
    k.mount("quant", quant::qconfig_keys());
    k.add(integer("quant.calibration_batches", 16, "ptq: batches the observers see", at_least(1)));
    k.add(integer("quant.freeze_bn_epoch", -1, "qat: freeze batch-norm statistics from this epoch (-1: never)",
                  at_least(-1)));
    k.add(
        integer("quant.freeze_observer_epoch", -1, "qat: freeze observers from this epoch (-1: never)", at_least(-1)));
    k.add(string("quant.mode", "static",
                 "static: the whole int8 model; dynamic: int8 Linear layers, inputs quantized per batch",
                 {"static", "dynamic"}));
    k.add(string("output.dir", "runs/default", "directory for checkpoints and reports"));
    return k;
  }();
  return keys;
}

const json& config_defaults() {
  static const json d = config_keys().defaults();
  return d;
}

std::string Config::where(const std::string& key) const {
  return "key '" + key + "' in " + (path.empty() ? std::string("the config") : path);
}

namespace {

json parse_value(const std::string& s) {
  try {
    return parse_json(s, "--set");
  } catch (const Error&) {
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
    QF_CHECK(c.j["data"]["image_size"].get<int>() > 0 || c.j["data"]["center_crop"].get<int>() > 0,
             c.where("data.image_size") +
                 ": an image folder needs data.image_size (every image stretched to that square) or "
                 "data.center_crop (each image kept at its own size, then cropped to that square)");
  }
}

// Per-key types, ranges and allowed values are checked on merge (config_keys()); what is
// left here involves several keys or the file system.
void validate(const Config& c, bool check_files) {
  const json& m = c.j["model"];
  const json& groups = c.j["optim"]["param_groups"];
  for (size_t i = 0; i < groups.size(); ++i)
    QF_CHECK(
        groups[i].contains("match") && !groups[i]["match"].get<std::string>().empty(),
        c.where("optim.param_groups[" + std::to_string(i) + "]") + ": needs \"match\", a glob over parameter names");
  for (const auto& p : m["init_skip"])
    QF_CHECK(!p.get<std::string>().empty(), c.where("model.init_skip") + ": an empty prefix would skip everything");
  if (check_files) {
    check_file(c, "model.init_from", m["init_from"]);
    check_dataset(c, "train");
    check_dataset(c, "test");
  }
  const json& d = c.j["data"];
  const int ch = m["in_channels"];
  for (const char* key : {"mean", "std"}) {
    const size_t n = d[key].size();
    QF_CHECK(n == 1 || n == static_cast<size_t>(ch),
             c.where(std::string("data.") + key) + ": has " + std::to_string(n) +
                 " values; give one for all channels or one per channel (model.in_channels = " + std::to_string(ch) +
                 ")");
  }
  const json& rrc = d["random_resized_crop"];
  for (const char* key : {"scale", "ratio"}) {
    const json& v = rrc[key];
    QF_CHECK(
        v.size() == 2 && v[0].get<double>() <= v[1].get<double>(),
        c.where(std::string("data.random_resized_crop.") + key) + ": give [min, max] with min <= max, got " + v.dump());
  }
  QF_CHECK(!rrc["enabled"].get<bool>() || d["random_crop_padding"].get<int>() == 0,
           c.where("data.random_crop_padding") +
               ": random_resized_crop crops for training already; set random_crop_padding to 0");
  // Catches impossible normalisation and crops now rather than in a loader thread. Folder images are
  // decoded to image_size; IDX images keep their size (28 for the MNIST family).
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
  c.j = config_defaults();
  config_keys().merge(c.j, user, "", file);
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
    config_keys().merge(c.j, patch, "", "--set " + o);
  }
  validate(c, check_files);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides, bool check_files) {
  std::ifstream f(path, std::ios::binary);
  QF_CHECK(f, path + ": cannot open config file");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  QF_CHECK(!f.bad(), path + ": cannot read config file");
  return make_config(parse_json(text, path, /*ignore_comments=*/true), path, overrides, check_files);
}

Config load_data_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config c = load_config(path, overrides, false);
  check_dataset(c, "test");
  return c;
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
  const json& rrc = d["random_resized_crop"];
  t.random_resized_crop = rrc["enabled"];
  t.rrc_scale = {rrc["scale"][0].get<double>(), rrc["scale"][1].get<double>()};
  t.rrc_ratio = {rrc["ratio"][0].get<double>(), rrc["ratio"][1].get<double>()};
  return t;
}

bool uses_folders(const Config& c) {
  return !c.j["data"]["train"]["dir"].get<std::string>().empty() ||
         !c.j["data"]["test"]["dir"].get<std::string>().empty();
}

data::ImageSpec model_input_spec(const Config& c) {
  int ch = c.j["model"]["in_channels"], size = c.j["data"]["image_size"];
  if (size == 0 && uses_folders(c)) return data::output_spec_any_size(transform_config(c), ch);
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

std::vector<optim::ParamGroup> param_groups(const Config& c) {
  std::vector<optim::ParamGroup> out;
  for (const json& g : c.j["optim"]["param_groups"]) {
    optim::ParamGroup pg;
    pg.match = g["match"];
    if (g.contains("lr")) pg.lr = g["lr"].get<float>();
    if (g.contains("weight_decay")) pg.weight_decay = g["weight_decay"].get<float>();
    out.push_back(std::move(pg));
  }
  return out;
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

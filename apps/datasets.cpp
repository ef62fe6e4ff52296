#include "apps/datasets.h"

#include "core/error.h"
#include "data/channels.h"
#include "data/class_match.h"
#include "data/idx.h"
#include "data/image_folder.h"

namespace qforge::apps {
namespace {

// The first n images of a dataset.
class Subset final : public data::Dataset {
 public:
  Subset(std::shared_ptr<const data::Dataset> ds, size_t n) : ds_(std::move(ds)), n_(std::min(n, ds_->size())) {}
  size_t size() const override { return n_; }
  data::ImageSpec spec() const override { return ds_->spec(); }
  const std::vector<std::string>& classes() const override { return ds_->classes(); }
  int label(size_t i) const override { return ds_->label(i); }
  void get(size_t i, uint8_t* out) const override { ds_->get(i, out); }
  data::ImageSpec get_sized(size_t i, std::vector<uint8_t>& out) const override { return ds_->get_sized(i, out); }
  std::string describe(size_t i) const override { return ds_->describe(i); }

 private:
  std::shared_ptr<const data::Dataset> ds_;
  size_t n_;
};

}  // namespace

std::shared_ptr<const data::Dataset> open_folder(const std::string& dir, data::ImageSpec spec) {
  return std::make_shared<data::ImageFolder>(dir, spec);
}

std::shared_ptr<const data::Dataset> open_split(const Config& c, const std::string& split) {
  const auto& d = c.j["data"][split];
  std::shared_ptr<const data::Dataset> ds;
  int classes = c.j["model"]["num_classes"];
  if (!d["dir"].get<std::string>().empty()) {
    int size = c.j["data"]["image_size"];  // 0: each image's own size
    ds = open_folder(d["dir"], {c.j["model"]["in_channels"].get<int>(), size, size});
  } else if (!d["images"].get<std::string>().empty()) {
    std::vector<std::string> names;
    if (classes == 10) names = data::fashion_mnist_classes();
    ds = data::with_channels(data::load_idx(d["images"], d["labels"], names), c.j["model"]["in_channels"]);
  } else {
    throw Error(c.where("data." + split) + ": no dataset given (images+labels or dir)");
  }
  QF_CHECK(static_cast<int>(ds->classes().size()) <= classes, c.where("model.num_classes") + ": the " + split +
                                                                  " data has " + std::to_string(ds->classes().size()) +
                                                                  " classes, the model " + std::to_string(classes));
  size_t limit = c.j["data"]["limit_" + split].get<size_t>();
  if (limit > 0) ds = std::make_shared<Subset>(ds, limit);
  return ds;
}

Splits open_splits(const Config& c, const std::vector<std::string>& model_classes) {
  Splits s;
  s.train = open_split(c, "train");
  s.test = open_split(c, "test");
  s.classes = model_classes.empty() ? s.train->classes() : model_classes;
  const char* rename = "rename the folders to the model's class names";
  s.train = match_model_classes(s.classes, s.train, c.where("data.train"), "", rename);
  s.test = match_model_classes(s.classes, s.test, c.where("data.test"), "", rename);
  return s;
}

data::ImageSpec folder_decode_spec(const Config& c, const std::vector<int>& input) {
  const auto& d = c.j["data"];
  const int ch = c.j["model"]["in_channels"], size = d["image_size"];
  if (size > 0) return {ch, size, size};
  if (uses_folders(c) || (d["resize"].get<int>() > 0 && d["center_crop"].get<int>() > 0)) return {ch, 0, 0};
  if (input.size() == 3) return {ch, input[1], input[2]};
  data::ImageSpec in = model_input_spec(c);
  return {ch, in.height, in.width};
}

const char* const kClassMapHint =
    "say how with --class-map FILE (a JSON object {\"folder\": \"class\"} or lines folder=class)";

std::shared_ptr<const data::Dataset> match_model_classes(const std::vector<std::string>& model_classes,
                                                         std::shared_ptr<const data::Dataset> ds,
                                                         const std::string& what, const std::string& class_map,
                                                         const std::string& hint) {
  data::ClassMap map;
  if (!class_map.empty()) map = data::read_class_map(class_map);
  return data::match_classes(model_classes, std::move(ds), what, map, hint);
}

data::Loader make_eval_loader(std::shared_ptr<const data::Dataset> ds, const Config& c, int batch_size, int shard,
                              int shards) {
  data::LoaderOptions o;
  o.shard = shard;
  o.shards = shards;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.train = false;
  o.workers = c.j["data"]["workers"];
  return data::Loader(std::move(ds), transform_config(c), o);
}

}  // namespace qforge::apps

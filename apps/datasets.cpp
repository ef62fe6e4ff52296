#include "apps/datasets.h"

#include "core/error.h"
#include "data/export.h"
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
    int size = c.j["data"]["image_size"];
    ds = open_folder(d["dir"], {c.j["model"]["in_channels"].get<int>(), size, size});
  } else if (!d["images"].get<std::string>().empty()) {
    std::vector<std::string> names;
    if (classes == 10) names = data::fashion_mnist_classes();
    ds = data::load_idx(d["images"], d["labels"], names);
    QF_CHECK(c.j["model"]["in_channels"] == 1, c.where("model.in_channels") +
                                                   ": IDX images have 1 channel, the model expects " +
                                                   c.j["model"]["in_channels"].dump());
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

void check_model_classes(const std::vector<std::string>& model_classes, const data::Dataset& ds,
                         const std::string& what) {
  const auto& got = ds.classes();
  bool ok = got.size() == model_classes.size();
  for (size_t i = 0; ok && i < got.size(); ++i) {
    const std::string& m = model_classes[i];
    ok = got[i] == m || got[i] == data::export_class_dir(static_cast<int>(i), static_cast<int>(got.size()), m);
  }
  if (!ok) data::check_classes(model_classes, ds, what);  // throws with the details
}

data::Loader make_eval_loader(std::shared_ptr<const data::Dataset> ds, const Config& c, int batch_size) {
  data::LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.train = false;
  o.workers = c.j["data"]["workers"];
  return data::Loader(std::move(ds), transform_config(c), o);
}

}  // namespace qforge::apps

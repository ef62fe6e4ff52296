// Opens the datasets a config names (IDX files or an image folder), and the
// class-name check between a model and a dataset directory.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "apps/config.h"
#include "data/dataset.h"
#include "data/loader.h"

namespace qforge::apps {

// split: "train" or "test". IDX images keep their size; folders are decoded to
// model.in_channels x data.image_size^2. data.limit_<split> > 0 keeps only the first N.
std::shared_ptr<const data::Dataset> open_split(const Config& c, const std::string& split);

// An image folder decoded to `spec`.
std::shared_ptr<const data::Dataset> open_folder(const std::string& dir, data::ImageSpec spec);

// The model's classes must match the directory's, in order. A directory written
// by `qforge data export-images` ("03_Dress" for class 3 "Dress") matches too.
void check_model_classes(const std::vector<std::string>& model_classes, const data::Dataset& ds,
                         const std::string& what);

data::Loader make_eval_loader(std::shared_ptr<const data::Dataset> ds, const Config& c, int batch_size);

}  // namespace qforge::apps

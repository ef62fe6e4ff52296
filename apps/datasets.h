// Opens the datasets a config names (IDX files or an image folder) and a
// folder to evaluate a model on, and matches a dataset's classes to a model's.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "apps/config.h"
#include "data/dataset.h"
#include "data/loader.h"

namespace qforge::apps {

// split: "train" or "test". Images come with model.in_channels channels (IDX's grey
// copied to RGB for a 3-channel model). IDX images keep their size; folders are
// decoded to data.image_size squared, or kept at their own sizes when it is 0.
// data.limit_<split> > 0 keeps only the first N.
std::shared_ptr<const data::Dataset> open_split(const Config& c, const std::string& split);

// Both splits of a config, labelled with the model's classes: model_classes, or when
// empty the training split's (as `train` stores them); each split's classes are
// matched to them by name (data/class_match.h), so a test folder may name and order
// its folders otherwise.
struct Splits {
  std::shared_ptr<const data::Dataset> train, test;
  std::vector<std::string> classes;
};
Splits open_splits(const Config& c, const std::vector<std::string>& model_classes = {});

// An image folder decoded to `spec` (height = width = 0: each image's own size).
std::shared_ptr<const data::Dataset> open_folder(const std::string& dir, data::ImageSpec spec);

// What a folder's images are decoded to for the model that `model_cfg` (its stored
// config) and `input` (its C, H, W; may be empty) describe, so that the model's own
// transforms see what they saw in training: data.image_size squared when set; each
// image's own size for a model trained on folders of such images, and for an
// ImageNet-style resize + center_crop; else the model's input size (a model trained
// on IDX images, which kept their size through the transforms).
data::ImageSpec folder_decode_spec(const Config& model_cfg, const std::vector<int>& input);

// How the CLI tells a user to map classes, for match_model_classes' hint.
extern const char* const kClassMapHint;

// ds relabelled to the model's classes, folders matched to classes by name
// (data/class_match.h); class_map: a class-map file, or "" for none. `what` names
// the data in errors.
std::shared_ptr<const data::Dataset> match_model_classes(const std::vector<std::string>& model_classes,
                                                         std::shared_ptr<const data::Dataset> ds,
                                                         const std::string& what, const std::string& class_map = "",
                                                         const std::string& hint = kClassMapHint);

// shard of shards: the share of each batch one rank of a data-parallel run takes (data/loader.h).
data::Loader make_eval_loader(std::shared_ptr<const data::Dataset> ds, const Config& c, int batch_size, int shard = 0,
                              int shards = 1);

}  // namespace qforge::apps

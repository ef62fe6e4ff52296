// Matching a dataset's class names (an image folder's directory names) to a
// model's classes by name, and relabelling the dataset to the model's labels.
//
// torchvision numbers an ImageFolder's classes in the folders' sorted order, and
// a folder cannot be named "T-shirt/top"; so a model's labels can be neither the
// folders' positions nor their exact names. Names match when their keys match:
//
//   class_key("T-shirt/top") == class_key("T-shirt_top") == class_key("00_t_shirt top") == "tshirttop"
//
// A key drops an optional numeric prefix (digits, then one of "_-. ", as in
// qforge's own "00_T-shirt_top") and then every ' ', '_', '-', '/', '\', and
// folds ASCII case. A folder's class is found as:
//   1. the class map's entry for the folder (its name, else its key), when there is one;
//   2. else the model class of exactly the folder's name;
//   3. else the one model class with the folder's key (two: ambiguous, an error).
// Errors: folders the model has no class for (listed with the model classes no
// folder matched, and the hint), two folders on one class other than through the
// class map (ambiguous), a class-map entry naming no model class. Model classes
// without a folder are fine: a set may hold some of the classes only. Class-map
// entries for folders the set does not have are ignored, so one map serves
// several sets.
//
//   ClassMap m = read_class_map("map.txt");                 // "sneakers=Sneaker" lines, or JSON
//   auto ds2 = match_classes(model_classes, ds, "data/test", m);  // labels are the model's
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"

namespace qforge::data {

std::string class_key(const std::string& name);

// folder name -> class name, in the file's order.
using ClassMap = std::vector<std::pair<std::string, std::string>>;

// A JSON object {"folder": "class", ...}, or lines "folder=class" (split at the first
// '=', spaces around either side trimmed; blank lines and lines starting with '#'
// skipped). Throws Error naming the file (and line) on a bad or duplicate entry.
ClassMap read_class_map(const std::string& path);

// For each of data_classes, its label among model_classes, by the rules above.
// `what` names the dataset in errors (a directory, a config key); `hint` is added to
// the unmatched-names error (how to give a class map).
std::vector<int> match_class_names(const std::vector<std::string>& model_classes,
                                   const std::vector<std::string>& data_classes, const ClassMap& map,
                                   const std::string& what, const std::string& hint = "");

// ds relabelled: classes() are model_classes, label(i) = mapping[ds->label(i)].
std::shared_ptr<const Dataset> relabel(std::shared_ptr<const Dataset> ds, std::vector<std::string> model_classes,
                                       std::vector<int> mapping);

// match_class_names then relabel; ds itself when, without a map, its classes already are model_classes.
std::shared_ptr<const Dataset> match_classes(const std::vector<std::string>& model_classes,
                                             std::shared_ptr<const Dataset> ds, const std::string& what,
                                             const ClassMap& map = {}, const std::string& hint = "");

}  // namespace qforge::data

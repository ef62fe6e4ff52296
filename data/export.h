// export_images: writes any Dataset as a directory of PNGs that ImageFolder
// reads back with the same label for every image, e.g. to look at Fashion-MNIST
// or to feed it to a tool that wants files.
//
//   export_images(*load_idx(images, labels, fashion_mnist_classes()), "/tmp/fmnist");
//   // -> /tmp/fmnist/00_T-shirt_top/00000.png ... /tmp/fmnist/09_Ankle boot/09999.png
//
// Layout: out_dir/<LL>_<name>/<index>.png. LL is the label, zero-padded to the
// same width for all classes (at least 2 digits), so ImageFolder's sorted class
// order is the label order whatever the names are; <name> is the class name with
// '/' and '\' replaced by '_'. <index> is the dataset index, zero-padded so that
// within a class the files sort in index order. A 1-channel image is a grey PNG,
// 3 an RGB PNG. Existing files are overwritten; each is written to a temporary
// name and renamed into place. Every class gets its directory, even one without
// images, which ImageFolder then rejects rather than silently renumbering labels.
#pragma once
#include <string>

#include "data/dataset.h"

namespace qforge::data {

void export_images(const Dataset& ds, const std::string& out_dir);

// The directory name export_images uses for class `label` of `num_classes`.
std::string export_class_dir(int label, int num_classes, const std::string& name);

}  // namespace qforge::data

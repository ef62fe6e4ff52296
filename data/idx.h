// IDX datasets (MNIST, Fashion-MNIST): a uint8 images file (N x H x W) and a
// uint8 labels file (N), each either raw or gzipped (detected from the gzip
// magic, not the file name). Everything is read into memory at load time.
//
//   auto train = load_idx(dir + "/train-images-idx3-ubyte.gz",
//                         dir + "/train-labels-idx1-ubyte.gz", fashion_mnist_classes());
//
// Without class names the classes are "0".."9", and a label >= 10 is an error.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace qforge::data {

// T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
const std::vector<std::string>& fashion_mnist_classes();

// Images come out as 1 x H x W. Throws Error naming the file on a missing file,
// a bad magic number, a truncated or oversized file, a label count that differs
// from the image count, or a label outside [0, classes).
std::unique_ptr<Dataset> load_idx(const std::string& images_path, const std::string& labels_path,
                                  std::vector<std::string> class_names = {});

// Writes n = labels.size() images (images holds n*height*width bytes, row major)
// and their labels (0..255) as IDX files, gzipped when gzip is set. Each file is
// written to a temporary name and renamed into place.
void write_idx(const std::string& images_path, const std::string& labels_path, std::span<const uint8_t> images,
               std::span<const int> labels, int height, int width, bool gzip);

}  // namespace qforge::data

// ImageFolder: a directory of images laid out as torchvision's ImageFolder
// expects, root/<class>/<image> (images may sit in subdirectories of a class).
//
//   ImageFolder ds("/data/flowers/train", {3, 64, 64});  // decode to RGB 64x64
//   check_classes(expected_names, ds, "/data/flowers/train");
//
// Classes are the subdirectory names sorted byte-wise, so label = position in
// that order; within a class, files are sorted as torchvision does (directory,
// then file name). Files ending in .png .jpg .jpeg .bmp (any case) are images;
// other files are ignored. Unlike torchvision, entries whose names start with
// '.' are skipped (editor and notebook droppings such as .ipynb_checkpoints).
//
// The constructor only lists files. Decoding happens in get() (see image_file.h):
// the image is converted to the target channel count as PIL would (1: ITU-R 601
// luma, 3: RGB, alpha dropped) and, when its size differs, stretched to the
// target height x width. A target of height = width = 0 keeps every image's own
// size (spec() says so; read them with get_sized).
//
// The class names are the folders' names; data/class_match.h matches them to a
// model's classes by name.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace qforge::data {

class ImageFolder final : public Dataset {
 public:
  // Throws Error when root is missing, has no class directories, or a class has no images.
  ImageFolder(const std::string& root, ImageSpec target);

  size_t size() const override { return paths_.size(); }
  ImageSpec spec() const override { return target_; }
  const std::vector<std::string>& classes() const override { return classes_; }
  int label(size_t i) const override;
  // Throws Error naming the file when it cannot be read or decoded.
  void get(size_t i, uint8_t* out) const override;
  ImageSpec get_sized(size_t i, std::vector<uint8_t>& out) const override;
  std::string describe(size_t i) const override { return path(i); }

  const std::string& path(size_t i) const;

 private:
  ImageSpec target_;
  std::vector<std::string> classes_;
  std::vector<std::string> paths_;
  std::vector<int> labels_;
};

// Throws Error unless ds.classes() equals expected, in order. The message names
// `what` (a path or config key) and lists the missing, unexpected and misplaced names.
void check_classes(const std::vector<std::string>& expected, const Dataset& ds, const std::string& what);

}  // namespace qforge::data

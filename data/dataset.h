// Dataset: the interface every image source implements (IDX files, a directory
// of images). A dataset hands out decoded uint8 images in CHW order plus an int
// label; it knows nothing about tensors, transforms or batching (see loader.h).
//
//   std::shared_ptr<const Dataset> ds = load_idx(images, labels);
//   std::vector<uint8_t> img(image_bytes(ds->spec()));
//   ds->get(i, img.data());              // thread-safe
//   int y = ds->label(i);                // ds->classes()[y] is its name
//
// Images of one size are the rule. A dataset whose images keep their own sizes
// (a folder of photos read as they are) says so with spec().height = width = 0,
// hands its images out through get_sized() and throws from get().
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qforge::data {

struct ImageSpec {
  int channels = 0, height = 0, width = 0;
  bool operator==(const ImageSpec&) const = default;
};

inline size_t image_bytes(ImageSpec s) {
  return static_cast<size_t>(s.channels) * static_cast<size_t>(s.height) * static_cast<size_t>(s.width);
}

// "CxHxW", for error messages.
inline std::string to_string(ImageSpec s) {
  return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
}

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t size() const = 0;
  // Shape of every image get() returns.
  virtual ImageSpec spec() const = 0;
  // Class names; a label is an index into this list.
  virtual const std::vector<std::string>& classes() const = 0;
  virtual int label(size_t i) const = 0;
  // Writes image i as CHW uint8 (image_bytes(spec()) bytes). Must be thread-safe:
  // the loader calls it from several threads at once.
  virtual void get(size_t i, uint8_t* out) const = 0;
  // Image i at its own size: `out` is resized to hold it, its shape is returned. Thread-safe.
  virtual ImageSpec get_sized(size_t i, std::vector<uint8_t>& out) const {
    const ImageSpec s = spec();
    out.resize(image_bytes(s));
    get(i, out.data());
    return s;
  }
  // Image i in error messages: its file where it has one.
  virtual std::string describe(size_t i) const { return "image " + std::to_string(i); }
};

// True when the images keep their own sizes (see above).
inline bool has_varying_size(ImageSpec s) { return s.height == 0 || s.width == 0; }

}  // namespace qforge::data

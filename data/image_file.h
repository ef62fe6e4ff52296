// Reading one image file: decode (stb_image: PNG, JPEG, BMP, and what else stb
// reads), convert to the model's 1 or 3 channels as PIL would (data/channels.h),
// and either keep the image's own size or stretch it to a fixed one.
//
//   std::vector<uint8_t> chw;
//   ImageSpec s = load_image("cat.jpg", {3, 0, 0}, chw);   // own size: s = {3, h, w}
//   load_image("cat.jpg", {3, 64, 64}, chw);               // stretched to 64x64
//
// 16-bit PNGs are read at 16 bits (stbi_load_16) and reduced to their high byte,
// as PIL reduces 16-bit RGB and RGBA PNGs. (PIL opens a 16-bit grey PNG as mode
// "I" and then clips it at 255 in convert("L"/"RGB"), which turns nearly every
// pixel white; qforge takes the high byte there too.)
//
// ImageFiles is the Dataset of a list of files without labels (label -1), as
// `qforge predict` reads them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace qforge::data {

// Decodes `path` to CHW with target.channels (1 or 3) channels: at its own size when
// target.height = target.width = 0, else stretched (stb_image_resize) to target's size.
// Returns the shape written to `chw`. Throws Error naming the file when it cannot be
// read or decoded.
ImageSpec load_image(const std::string& path, ImageSpec target, std::vector<uint8_t>& chw);

class ImageFiles final : public Dataset {
 public:
  // target as for load_image; a height of 0 keeps every image's own size.
  ImageFiles(std::vector<std::string> paths, ImageSpec target);

  size_t size() const override { return paths_.size(); }
  ImageSpec spec() const override { return target_; }
  const std::vector<std::string>& classes() const override { return classes_; }
  int label(size_t) const override { return -1; }
  void get(size_t i, uint8_t* out) const override;
  ImageSpec get_sized(size_t i, std::vector<uint8_t>& out) const override;
  std::string describe(size_t i) const override;

 private:
  std::vector<std::string> paths_;
  ImageSpec target_;
  std::vector<std::string> classes_;
};

}  // namespace qforge::data

#include "data/export.h"

#include <stb_image_write.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"

namespace qforge::data {
namespace fs = std::filesystem;
namespace {

int digits(size_t n) {
  int d = 1;
  while (n >= 10) {
    n /= 10;
    ++d;
  }
  return d;
}

std::string zero_pad(size_t v, int width) {
  std::string s = std::to_string(v);
  if (static_cast<int>(s.size()) < width) s.insert(0, width - s.size(), '0');
  return s;
}

}  // namespace

std::string export_class_dir(int label, int num_classes, const std::string& name) {
  std::string clean = name;
  for (char& c : clean)
    if (c == '/' || c == '\\') c = '_';
  int width = std::max(2, digits(num_classes > 0 ? static_cast<size_t>(num_classes - 1) : 0));
  return zero_pad(static_cast<size_t>(label), width) + "_" + clean;
}

void export_images(const Dataset& ds, const std::string& out_dir) {
  const ImageSpec s = ds.spec();
  QF_CHECK(s.channels >= 1 && s.channels <= 4,
           out_dir + ": export_images: cannot write " + std::to_string(s.channels) + "-channel images as PNG");
  const std::vector<std::string>& classes = ds.classes();
  const int num_classes = static_cast<int>(classes.size());

  std::vector<std::string> dirs(classes.size());
  for (int c = 0; c < num_classes; ++c) {
    dirs[c] = (fs::path(out_dir) / export_class_dir(c, num_classes, classes[c])).string();
    std::error_code ec;
    fs::create_directories(dirs[c], ec);
    if (ec) throw Error(dirs[c] + ": cannot create directory: " + ec.message());
  }

  const int width = digits(ds.size() > 0 ? ds.size() - 1 : 0);
  const size_t plane = static_cast<size_t>(s.height) * s.width;
  std::vector<uint8_t> chw(image_bytes(s)), hwc(image_bytes(s));
  for (size_t i = 0; i < ds.size(); ++i) {
    int label = ds.label(i);
    QF_CHECK(label >= 0 && label < num_classes, out_dir + ": export_images: image " + std::to_string(i) +
                                                    " has label " + std::to_string(label) + " but the dataset has " +
                                                    std::to_string(num_classes) + " classes");
    ds.get(i, chw.data());
    for (size_t k = 0; k < plane; ++k)
      for (int c = 0; c < s.channels; ++c) hwc[k * s.channels + c] = chw[c * plane + k];

    std::string path = (fs::path(dirs[label]) / (zero_pad(i, width) + ".png")).string();
    // stbi_write_png ignores fwrite's result (a full disk gave a truncated PNG under the final name);
    // through a callback, write_file_atomic sees the stream's errors. No fsync per image.
    write_file_atomic(
        path,
        [&](std::FILE* f) {
          auto put = [](void* ctx, void* bytes, int n) {
            std::fwrite(bytes, 1, static_cast<size_t>(n), static_cast<std::FILE*>(ctx));
          };
          if (!stbi_write_png_to_func(put, f, s.width, s.height, s.channels, hwc.data(), s.width * s.channels))
            throw Error(path + ": cannot encode PNG");
        },
        /*sync=*/false);
  }
}

}  // namespace qforge::data

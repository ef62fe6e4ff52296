#include "data/image_file.h"

#include <stb_image.h>
#include <stb_image_resize.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "data/channels.h"

namespace qforge::data {
namespace {

void read_file(const std::string& path, std::vector<unsigned char>& buf) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw Error(path + ": cannot open image: " + std::strerror(errno));
  if (std::fseek(f.get(), 0, SEEK_END) != 0) throw Error(path + ": cannot read image: " + std::strerror(errno));
  long size = std::ftell(f.get());
  if (size < 0) throw Error(path + ": cannot read image: " + std::strerror(errno));
  if (size > INT32_MAX) throw Error(path + ": image file too large (over 2 GiB)");
  std::rewind(f.get());
  buf.resize(static_cast<size_t>(size));
  if (std::fread(buf.data(), 1, buf.size(), f.get()) != buf.size())
    throw Error(path + ": cannot read image: " + std::strerror(errno));
}

[[noreturn]] void decode_failed(const std::string& path) {
  const char* why = stbi_failure_reason();
  throw Error(path + ": cannot decode image: " + (why ? why : "unknown error"));
}

}  // namespace

ImageSpec load_image(const std::string& path, ImageSpec target, std::vector<uint8_t>& chw) {
  const int C = target.channels;
  QF_CHECK(C == 1 || C == 3, path + ": images are decoded to 1 or 3 channels, not " + std::to_string(C));
  QF_CHECK((target.height == 0 && target.width == 0) || (target.height > 0 && target.width > 0),
           path + ": bad target image size " + to_string(target));
  // Reused across calls: a worker thread decodes many images.
  thread_local std::vector<unsigned char> file, px8, resized, hwc;
  read_file(path, file);
  const int len = static_cast<int>(file.size());

  int w = 0, h = 0, comp = 0;
  if (stbi_is_16_bit_from_memory(file.data(), len)) {
    std::unique_ptr<stbi_us, void (*)(void*)> px(stbi_load_16_from_memory(file.data(), len, &w, &h, &comp, 0),
                                                 &stbi_image_free);
    if (!px) decode_failed(path);
    px8.resize(static_cast<size_t>(w) * h * comp);
    for (size_t k = 0; k < px8.size(); ++k) px8[k] = static_cast<uint8_t>(px.get()[k] >> 8);
  } else {
    std::unique_ptr<unsigned char, void (*)(void*)> px(stbi_load_from_memory(file.data(), len, &w, &h, &comp, 0),
                                                       &stbi_image_free);
    if (!px) decode_failed(path);
    px8.assign(px.get(), px.get() + static_cast<size_t>(w) * h * comp);
  }
  const size_t pixels = static_cast<size_t>(w) * h;

  if (target.height == 0) {
    chw.resize(static_cast<size_t>(C) * pixels);
    hwc_to_chw(chw.data(), C, px8.data(), comp, pixels);
    return {C, h, w};
  }
  const int H = target.height, W = target.width;
  // Channels first (PIL's conversion on the decoded pixels), then the stretch, interleaved.
  chw.resize(static_cast<size_t>(C) * pixels);
  hwc_to_chw(chw.data(), C, px8.data(), comp, pixels);
  if (w == W && h == H) return {C, H, W};
  resized.resize(static_cast<size_t>(C) * H * W);
  for (int c = 0; c < C; ++c)  // CHW planes are single-channel images to stb
    if (!stbir_resize_uint8(chw.data() + c * pixels, w, h, 0, resized.data() + static_cast<size_t>(c) * H * W, W, H, 0,
                            1))
      throw Error(path + ": cannot resize image from " + std::to_string(w) + "x" + std::to_string(h) + " to " +
                  std::to_string(W) + "x" + std::to_string(H));
  chw.swap(resized);
  return {C, H, W};
}

ImageFiles::ImageFiles(std::vector<std::string> paths, ImageSpec target) : paths_(std::move(paths)), target_(target) {
  QF_CHECK(target.channels == 1 || target.channels == 3,
           "ImageFiles: target channels must be 1 or 3, got " + std::to_string(target.channels));
  QF_CHECK((target.height == 0 && target.width == 0) || (target.height > 0 && target.width > 0),
           "ImageFiles: bad target size " + to_string(target));
}

std::string ImageFiles::describe(size_t i) const {
  QF_CHECK(i < paths_.size(),
           "ImageFiles: index " + std::to_string(i) + " out of range (" + std::to_string(paths_.size()) + " images)");
  return paths_[i];
}

ImageSpec ImageFiles::get_sized(size_t i, std::vector<uint8_t>& out) const {
  return load_image(describe(i), target_, out);
}

void ImageFiles::get(size_t i, uint8_t* out) const {
  QF_CHECK(!has_varying_size(target_), describe(i) + ": images keep their own sizes here; read them with get_sized");
  thread_local std::vector<uint8_t> chw;
  load_image(describe(i), target_, chw);
  std::memcpy(out, chw.data(), chw.size());
}

}  // namespace qforge::data

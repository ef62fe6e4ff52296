// Helpers shared by the data/ tests: a scratch directory that cleans up after
// itself, small image writers, and a way to look at the message of an Error.
#pragma once
#include <stb_image_write.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

namespace qforge::data::test {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("qforge-data-test-" + std::to_string(::getpid()) + "-" +
                                                      std::to_string(counter++) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The message of the qforge::Error that f throws, or "" when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const qforge::Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// HWC pixels, every value pseudo-random but fixed by `seed`.
inline std::vector<uint8_t> random_pixels(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(rng() >> 24);
  return v;
}

// Writes an HWC image by extension (.png, .bmp, .jpg); creates parent directories.
inline void write_image(const std::string& path, int w, int h, int comp, const std::vector<uint8_t>& hwc) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int ok = 0;
  if (ext == ".png") ok = stbi_write_png(path.c_str(), w, h, comp, hwc.data(), w * comp);
  if (ext == ".bmp") ok = stbi_write_bmp(path.c_str(), w, h, comp, hwc.data());
  if (ext == ".jpg" || ext == ".jpeg") ok = stbi_write_jpg(path.c_str(), w, h, comp, hwc.data(), 95);
  if (!ok) throw qforge::Error(path + ": test could not write image");
}

// A PNG of 16-bit samples (HWC, comp 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), written
// here because stb_image_write writes 8-bit PNGs only: signature, IHDR, one zlib IDAT
// of filter-0 rows of big-endian samples, IEND.
inline void write_png16(const std::string& path, int w, int h, int comp, const std::vector<uint16_t>& hwc) {
  static const uint8_t kColorType[5] = {0, 0, 4, 2, 6};
  auto be32 = [](std::vector<uint8_t>& v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
  };
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  auto chunk = [&](const char* type, const std::vector<uint8_t>& data) {
    be32(png, static_cast<uint32_t>(data.size()));
    std::vector<uint8_t> body(type, type + 4);
    body.insert(body.end(), data.begin(), data.end());
    png.insert(png.end(), body.begin(), body.end());
    be32(png, static_cast<uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size()))));
  };
  std::vector<uint8_t> ihdr;
  be32(ihdr, w);
  be32(ihdr, h);
  ihdr.insert(ihdr.end(), {16, kColorType[comp], 0, 0, 0});
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    for (int k = 0; k < w * comp; ++k) {
      uint16_t v = hwc[static_cast<size_t>(y) * w * comp + k];
      raw.push_back(static_cast<uint8_t>(v >> 8));
      raw.push_back(static_cast<uint8_t>(v));
    }
  }
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> z(n);
  if (compress(z.data(), &n, raw.data(), static_cast<uLong>(raw.size())) != Z_OK)
    throw qforge::Error(path + ": test could not compress PNG data");
  z.resize(n);
  chunk("IHDR", ihdr);
  chunk("IDAT", z);
  chunk("IEND", {});
  write_bytes(path, png);
}

}  // namespace qforge::data::test

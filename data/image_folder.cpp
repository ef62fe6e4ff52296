#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include "core/error.h"
#include "data/image_file.h"

namespace qforge::data {
namespace fs = std::filesystem;
namespace {

bool is_image_name(const std::string& name) {
  size_t dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == "png" || ext == "jpg" || ext == "jpeg" || ext == "bmp";
}

bool is_hidden(const fs::path& p) {
  std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// torchvision's order: os.walk directories sorted by path, files sorted within each.
std::vector<std::string> list_images(const fs::path& class_dir) {
  std::vector<std::pair<std::string, std::string>> found;  // (directory, file name)
  std::error_code ec;
  auto it = fs::recursive_directory_iterator(class_dir, fs::directory_options::follow_directory_symlink, ec);
  if (ec) throw Error(class_dir.string() + ": cannot list directory: " + ec.message());
  for (auto end = fs::recursive_directory_iterator(); it != end; it.increment(ec)) {
    if (ec) throw Error(class_dir.string() + ": cannot list directory: " + ec.message());
    const fs::path& p = it->path();
    if (is_hidden(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec)) continue;
    std::string name = p.filename().string();
    if (is_image_name(name)) found.emplace_back(p.parent_path().string(), name);
  }
  if (ec) throw Error(class_dir.string() + ": cannot list directory: " + ec.message());
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  paths.reserve(found.size());
  for (auto& [dir, name] : found) paths.push_back((fs::path(dir) / name).string());
  return paths;
}

std::string join_names(const std::vector<std::string>& names) {
  constexpr size_t kMaxShown = 20;
  std::string s = "[";
  for (size_t i = 0; i < names.size() && i < kMaxShown; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > kMaxShown) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s + "]";
}

}  // namespace

ImageFolder::ImageFolder(const std::string& root, ImageSpec target) : target_(target) {
  QF_CHECK(target.channels == 1 || target.channels == 3,
           root + ": ImageFolder: target channels must be 1 or 3, got " + std::to_string(target.channels));
  QF_CHECK((target.height > 0 && target.width > 0) || (target.height == 0 && target.width == 0),
           root + ": ImageFolder: bad target size " + to_string(target));
  std::error_code ec;
  if (!fs::exists(root, ec)) throw Error(root + ": image folder does not exist");
  if (!fs::is_directory(root, ec)) throw Error(root + ": image folder is not a directory");

  fs::directory_iterator it(root, ec);
  if (ec) throw Error(root + ": cannot list directory: " + ec.message());
  for (auto end = fs::directory_iterator(); it != end; it.increment(ec)) {
    if (ec) throw Error(root + ": cannot list directory: " + ec.message());
    if (!is_hidden(it->path()) && it->is_directory(ec)) classes_.push_back(it->path().filename().string());
  }
  if (ec) throw Error(root + ": cannot list directory: " + ec.message());
  if (classes_.empty()) throw Error(root + ": image folder has no class directories (expected root/<class>/<image>)");
  std::sort(classes_.begin(), classes_.end());

  for (size_t c = 0; c < classes_.size(); ++c) {
    fs::path dir = fs::path(root) / classes_[c];
    std::vector<std::string> files = list_images(dir);
    if (files.empty()) throw Error(dir.string() + ": class '" + classes_[c] + "' has no images (.png .jpg .jpeg .bmp)");
    for (auto& f : files) {
      paths_.push_back(std::move(f));
      labels_.push_back(static_cast<int>(c));
    }
  }
}

const std::string& ImageFolder::path(size_t i) const {
  QF_CHECK(i < paths_.size(),
           "ImageFolder: index " + std::to_string(i) + " out of range (" + std::to_string(paths_.size()) + " images)");
  return paths_[i];
}

int ImageFolder::label(size_t i) const {
  path(i);  // bounds check
  return labels_[i];
}

void ImageFolder::get(size_t i, uint8_t* out) const {
  QF_CHECK(!has_varying_size(target_), path(i) + ": this folder keeps each image's own size; read it with get_sized");
  thread_local std::vector<uint8_t> chw;
  load_image(path(i), target_, chw);
  std::memcpy(out, chw.data(), chw.size());
}

ImageSpec ImageFolder::get_sized(size_t i, std::vector<uint8_t>& out) const {
  return load_image(path(i), target_, out);
}

void check_classes(const std::vector<std::string>& expected, const Dataset& ds, const std::string& what) {
  const std::vector<std::string>& got = ds.classes();
  if (got == expected) return;
  auto absent_from = [](const std::vector<std::string>& a, const std::vector<std::string>& b) {
    std::vector<std::string> r;
    for (const auto& x : a)
      if (std::find(b.begin(), b.end(), x) == b.end()) r.push_back(x);
    return r;
  };
  std::vector<std::string> missing = absent_from(expected, got);
  std::vector<std::string> unexpected = absent_from(got, expected);
  std::string msg = what + ": classes do not match: expected " + std::to_string(expected.size()) + " " +
                    join_names(expected) + ", found " + std::to_string(got.size()) + " " + join_names(got);
  if (!missing.empty()) msg += "; missing " + join_names(missing);
  if (!unexpected.empty()) msg += "; unexpected " + join_names(unexpected);
  if (missing.empty() && unexpected.empty()) {
    size_t k = 0;
    while (k < got.size() && k < expected.size() && got[k] == expected[k]) ++k;
    msg += "; same names in a different order (first difference at label " + std::to_string(k) + ")";
  }
  throw Error(msg);
}

}  // namespace qforge::data

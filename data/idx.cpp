#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image_check.h"

namespace qforge::data {
namespace {

constexpr uint32_t kLabelsMagic = 0x00000801;  // uint8, 1 dim
constexpr uint32_t kImagesMagic = 0x00000803;  // uint8, 3 dims
// Guards the allocation against a corrupt header: far above any IDX set in use.
constexpr uint64_t kMaxBytes = uint64_t{1} << 36;
// gzread takes and returns int-sized counts.
constexpr size_t kChunk = size_t{1} << 24;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Reads a raw or gzipped file; gzip is recognised by its magic bytes, so a
// decompressed copy with a .gz name (or the reverse) still loads.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
    unsigned char m[2] = {0, 0};
    gzipped_ = std::fread(m, 1, 2, f) == 2 && m[0] == 0x1f && m[1] == 0x8b;
    if (!gzipped_) {
      std::rewind(f);
      file_ = f;
      return;
    }
    std::fclose(f);
    gz_ = gzopen(path.c_str(), "rb");
    if (!gz_) throw Error(path + ": cannot open gzip stream: " + std::strerror(errno));
    gzbuffer(gz_, 1 << 20);
  }
  ~Reader() {
    if (file_) std::fclose(file_);
    if (gz_) gzclose(gz_);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  bool gzipped() const { return gzipped_; }

  // Reads up to n bytes; returns fewer only at the end of the data.
  size_t read(void* buf, size_t n) {
    auto* p = static_cast<unsigned char*>(buf);
    size_t total = 0;
    while (total < n) {
      size_t want = std::min(n - total, kChunk);
      size_t got;
      if (file_) {
        got = std::fread(p + total, 1, want, file_);
        if (got < want && std::ferror(file_)) throw Error(path_ + ": read error: " + std::strerror(errno));
      } else {
        int r = gzread(gz_, p + total, static_cast<unsigned>(want));
        if (r < 0) throw Error(path_ + ": cannot decompress: " + gz_message());
        got = static_cast<size_t>(r);
      }
      total += got;
      if (got < want) break;
    }
    return total;
  }

  // Why a gzip stream ended early, for the truncation message.
  std::string gz_message() const {
    if (!gz_) return "";
    int err = 0;
    const char* msg = gzerror(gz_, &err);
    std::string m = msg && *msg ? msg : "unexpected end of data";
    // zlib prefixes the path, which our messages already start with.
    if (m.rfind(path_ + ": ", 0) == 0) m.erase(0, path_.size() + 2);
    return m;
  }

 private:
  std::string path_;
  bool gzipped_ = false;
  FILE* file_ = nullptr;
  gzFile gz_ = nullptr;
};

uint32_t read_be32(Reader& r, const std::string& path, const char* what) {
  unsigned char b[4];
  if (r.read(b, 4) != 4) throw Error(path + ": truncated IDX header (cannot read the " + std::string(what) + ")");
  return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
}

void check_magic(uint32_t got, uint32_t want, const std::string& path) {
  if (got == want) return;
  std::string hint;
  if (got == kLabelsMagic) hint = " (this is an IDX labels file)";
  if (got == kImagesMagic) hint = " (this is an IDX images file)";
  throw Error(path + ": bad magic number " + hex32(got) + ", expected " + hex32(want) +
              (want == kImagesMagic ? " (IDX uint8 images, 3 dims)" : " (IDX uint8 labels)") + hint);
}

// Reads exactly `bytes` payload bytes and insists the file ends there.
std::vector<uint8_t> read_payload(Reader& r, const std::string& path, uint64_t bytes, const std::string& what) {
  if (bytes > kMaxBytes)
    throw Error(path + ": header promises " + what + " (" + std::to_string(bytes) +
                " bytes): implausibly large, corrupt header?");
  std::vector<uint8_t> data;
  // Grow in chunks so a corrupt header in a short file fails on truncation, not on allocation.
  while (data.size() < bytes) {
    size_t old = data.size();
    size_t want = static_cast<size_t>(std::min<uint64_t>(bytes - old, kChunk));
    data.resize(old + want);
    size_t got = r.read(data.data() + old, want);
    if (got < want) {
      // zlib may drop the count of a partial read, so only a raw file gets a byte count.
      std::string why = r.gzipped() ? "the gzip stream ends early: " + r.gz_message()
                                    : "only " + std::to_string(old + got) + " bytes follow";
      throw Error(path + ": truncated IDX file: header promises " + what + " (" + std::to_string(bytes) +
                  " bytes) but " + why);
    }
  }
  unsigned char extra;
  if (r.read(&extra, 1) != 0) throw Error(path + ": trailing bytes after " + what + ": header and file size disagree");
  return data;
}

class IdxDataset final : public Dataset {
 public:
  IdxDataset(std::vector<uint8_t> pixels, std::vector<uint8_t> labels, int h, int w, std::vector<std::string> classes)
      : pixels_(std::move(pixels)), labels_(std::move(labels)), h_(h), w_(w), classes_(std::move(classes)) {}

  size_t size() const override { return labels_.size(); }
  ImageSpec spec() const override { return {1, h_, w_}; }
  const std::vector<std::string>& classes() const override { return classes_; }
  int label(size_t i) const override {
    QF_CHECK(i < labels_.size(), "IDX dataset: index " + std::to_string(i) + " out of range (" +
                                     std::to_string(labels_.size()) + " images)");
    return labels_[i];
  }
  void get(size_t i, uint8_t* out) const override {
    QF_CHECK(i < labels_.size(), "IDX dataset: index " + std::to_string(i) + " out of range (" +
                                     std::to_string(labels_.size()) + " images)");
    size_t n = static_cast<size_t>(h_) * static_cast<size_t>(w_);
    std::memcpy(out, pixels_.data() + i * n, n);
  }

 private:
  std::vector<uint8_t> pixels_;
  std::vector<uint8_t> labels_;
  int h_, w_;
  std::vector<std::string> classes_;
};

// Writes bytes to a raw or gzip file under a temporary name, then renames.
class Writer {
 public:
  Writer(const std::string& path, bool gzip) : path_(path), tmp_(temp_path_for(path)) {
    if (gzip) {
      gz_ = gzopen(tmp_.c_str(), "wb6");
      if (!gz_) throw Error(path_ + ": cannot create: " + std::strerror(errno));
    } else {
      file_ = std::fopen(tmp_.c_str(), "wb");
      if (!file_) throw Error(path_ + ": cannot create: " + std::strerror(errno));
    }
  }
  ~Writer() {
    // Only reached without commit() when an error is unwinding: drop the temporary.
    if (file_) std::fclose(file_);
    if (gz_) gzclose(gz_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void write(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (n > 0) {
      size_t chunk = std::min(n, kChunk);
      bool ok = file_ ? std::fwrite(p, 1, chunk, file_) == chunk
                      : gzwrite(gz_, p, static_cast<unsigned>(chunk)) == static_cast<int>(chunk);
      if (!ok) throw Error(path_ + ": write error: " + std::strerror(errno));
      p += chunk;
      n -= chunk;
    }
  }
  void write_be32(uint32_t v) {
    unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                          static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
    write(b, 4);
  }
  void commit() {
    bool ok;
    if (file_) {
      ok = std::fclose(file_) == 0;
      file_ = nullptr;
    } else {
      ok = gzclose(gz_) == Z_OK;
      gz_ = nullptr;
    }
    if (!ok) throw Error(path_ + ": write error on close: " + std::strerror(errno));
    rename_into_place(tmp_, path_);
    committed_ = true;
  }

 private:
  std::string path_, tmp_;
  FILE* file_ = nullptr;
  gzFile gz_ = nullptr;
  bool committed_ = false;
};

}  // namespace

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

std::unique_ptr<Dataset> load_idx(const std::string& images_path, const std::string& labels_path,
                                  std::vector<std::string> class_names) {
  if (class_names.empty())
    for (int i = 0; i < 10; ++i) class_names.push_back(std::to_string(i));

  Reader ir(images_path);
  check_magic(read_be32(ir, images_path, "magic number"), kImagesMagic, images_path);
  uint32_t n = read_be32(ir, images_path, "image count");
  uint32_t h = read_be32(ir, images_path, "image height");
  uint32_t w = read_be32(ir, images_path, "image width");
  // Both factors are below 2^32; the product with n is guarded against overflow.
  uint64_t hw = uint64_t{h} * w;
  // Bounded even when no image follows: with n = 0 nothing else bounds the buffers that users of
  // the dataset size from spec() (found by hand beside tests/fuzz/fuzz_idx).
  if (h == 0 || w == 0 || hw > kMaxImagePixels)
    throw Error(images_path + ": bad image size " + std::to_string(h) + "x" + std::to_string(w) +
                (hw > kMaxImagePixels ? " (over 2^28 pixels: corrupt header?)" : ""));
  uint64_t bytes = n > kMaxBytes / hw ? kMaxBytes + 1 : n * hw;
  std::vector<uint8_t> pixels = read_payload(
      ir, images_path, bytes, std::to_string(n) + " images of " + std::to_string(h) + "x" + std::to_string(w));

  Reader lr(labels_path);
  check_magic(read_be32(lr, labels_path, "magic number"), kLabelsMagic, labels_path);
  uint32_t nl = read_be32(lr, labels_path, "label count");
  if (nl != n)
    throw Error(labels_path + ": has " + std::to_string(nl) + " labels but " + images_path + " has " +
                std::to_string(n) + " images");
  std::vector<uint8_t> labels = read_payload(lr, labels_path, nl, std::to_string(nl) + " labels");
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= class_names.size())
      throw Error(labels_path + ": label " + std::to_string(labels[i]) + " at index " + std::to_string(i) +
                  " is outside [0, " + std::to_string(class_names.size()) +
                  ") (pass class names for a dataset with more classes)");
  }
  return std::make_unique<IdxDataset>(std::move(pixels), std::move(labels), static_cast<int>(h), static_cast<int>(w),
                                      std::move(class_names));
}

void write_idx(const std::string& images_path, const std::string& labels_path, std::span<const uint8_t> images,
               std::span<const int> labels, int height, int width, bool gzip) {
  QF_CHECK(height > 0 && width > 0,
           images_path + ": write_idx: bad image size " + std::to_string(height) + "x" + std::to_string(width));
  size_t n = labels.size();
  QF_CHECK(images.size() == n * static_cast<size_t>(height) * static_cast<size_t>(width),
           images_path + ": write_idx: " + std::to_string(images.size()) + " pixel bytes for " + std::to_string(n) +
               " images of " + std::to_string(height) + "x" + std::to_string(width));
  QF_CHECK(n <= UINT32_MAX, images_path + ": write_idx: too many images for IDX");
  std::vector<uint8_t> label_bytes(n);
  for (size_t i = 0; i < n; ++i) {
    QF_CHECK(labels[i] >= 0 && labels[i] <= 255, labels_path + ": write_idx: label " + std::to_string(labels[i]) +
                                                     " at index " + std::to_string(i) + " does not fit in uint8");
    label_bytes[i] = static_cast<uint8_t>(labels[i]);
  }

  Writer iw(images_path, gzip);
  iw.write_be32(kImagesMagic);
  iw.write_be32(static_cast<uint32_t>(n));
  iw.write_be32(static_cast<uint32_t>(height));
  iw.write_be32(static_cast<uint32_t>(width));
  iw.write(images.data(), images.size());
  iw.commit();

  Writer lw(labels_path, gzip);
  lw.write_be32(kLabelsMagic);
  lw.write_be32(static_cast<uint32_t>(n));
  lw.write(label_bytes.data(), n);
  lw.commit();
}

}  // namespace qforge::data

// Fuzz target: IDX datasets (an images file and a labels file, raw or gzipped).
// Input: a flags byte (bit 0: gzip the images file, bit 1: gzip the labels file, bit 2: 256 class
// names instead of 10), two bytes of little-endian split point, then the images file's bytes up to
// the split and the labels file's after it. Raw bytes that start with gzip's magic reach the gzip
// reader as they are, so corrupt streams are fuzzed too. Properties: a bad pair is an Error naming
// one of the two files; a loaded set hands out every image and label as dataset.h documents.
#include <zlib.h>

#include "data/idx.h"
#include "fuzz_util.h"

using namespace qforge;

namespace {

std::vector<uint8_t> gzip(const uint8_t* p, size_t n) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::vector<uint8_t> out(deflateBound(&z, n) + 32);
  z.next_in = const_cast<uint8_t*>(p);
  z.avail_in = static_cast<uInt>(n);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string write_part(const std::string& name, const uint8_t* p, size_t n, bool gz) {
  if (!gz) return fuzz::write_input(name, p, n);
  std::vector<uint8_t> z = gzip(p, n);
  return fuzz::write_input(name, z.data(), z.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  const size_t body = size - 3, split = std::min<size_t>(body, data[1] | size_t{data[2]} << 8);
  const uint8_t* p = data + 3;
  const std::string images = write_part("images", p, split, flags & 1);
  const std::string labels = write_part("labels", p + split, body - split, flags & 2);
  std::vector<std::string> classes;
  if (flags & 4)
    for (int i = 0; i < 256; ++i) classes.push_back("c" + std::to_string(i));
  std::unique_ptr<data::Dataset> ds;
  try {
    ds = data::load_idx(images, labels, classes);
  } catch (const Error& e) {
    fuzz::expect_names(e, {images, labels});
    return 0;
  }
  const data::ImageSpec s = ds->spec();
  FUZZ_CHECK(s.channels == 1 && s.height > 0 && s.width > 0, data::to_string(s));
  std::vector<uint8_t> img(data::image_bytes(s));  // as dataset.h shows: one image's buffer from spec()
  for (size_t i = 0; i < ds->size(); ++i) {
    ds->get(i, img.data());
    const int y = ds->label(i);
    FUZZ_CHECK(y >= 0 && static_cast<size_t>(y) < ds->classes().size(), std::to_string(y));
  }
  return 0;
}

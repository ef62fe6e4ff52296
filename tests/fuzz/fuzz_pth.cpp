// Fuzz target: PyTorch .pth files (nn/torch_file.h: a zip archive, its data.pkl and storages).
// Input: a flags byte, then either (bit 0 set) the file's bytes as they are, or the parts of an
// archive the harness zips itself with correct CRCs (so mutations reach what follows the unzip):
// a byte k (storages data/0 .. data/k-1, k < 16), then the pickle and each storage, each after its
// little-endian u16 length; bit 1 adds a byteorder member ("big" with bit 2, else "little").
// Properties: a bad file is a qforge::Error naming it; a file that reads has every tensor's bytes
// matching its shape and dtype, and converts to float when it is a float type.
#include <zip.h>

#include "fuzz_util.h"
#include "nn/torch_file.h"

using namespace qforge;

namespace {

struct Reader {
  const uint8_t* p;
  size_t n;
  std::string part() {  // a u16 length, then that many bytes (fewer at the end)
    if (n < 2) return {};
    size_t len = std::min<size_t>(p[0] | size_t{p[1]} << 8, n - 2);
    std::string s(reinterpret_cast<const char*>(p + 2), len);
    p += 2 + len, n -= 2 + len;
    return s;
  }
};

void add(zip_t* z, const std::string& name, const std::string& bytes) {
  // zip_source_buffer copies nothing: the strings outlive zip_close below.
  zip_source_t* s = zip_source_buffer(z, bytes.data(), bytes.size(), 0);
  const zip_int64_t i = s ? zip_file_add(z, name.c_str(), s, ZIP_FL_OVERWRITE) : -1;
  if (i < 0) std::abort();
  zip_set_file_compression(z, static_cast<zip_uint64_t>(i), ZIP_CM_STORE, 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string path = fuzz::path_in_scratch("in.pth");
  if (data[0] & 1) {
    fuzz::write_input("in.pth", data + 1, size - 1);
  } else {
    if (size < 2) return 0;
    Reader r{data + 2, size - 2};
    std::vector<std::string> parts = {r.part()};
    const int k = data[1] & 15;
    for (int i = 0; i < k; ++i) parts.push_back(r.part());
    std::remove(path.c_str());
    int err = 0;
    zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!z) std::abort();
    const std::string order = (data[0] & 4) ? "big" : "little";
    add(z, "archive/data.pkl", parts[0]);
    for (int i = 0; i < k; ++i) add(z, "archive/data/" + std::to_string(i), parts[i + 1]);
    if (data[0] & 2) add(z, "archive/byteorder", order);
    if (zip_close(z) != 0) std::abort();
  }
  nn::SafeTensors st;
  try {
    st = nn::read_weight_file(path);
  } catch (const Error& e) {
    fuzz::expect_names(e, {path});
    return 0;
  }
  for (auto& [name, e] : st.tensors) {
    FUZZ_CHECK(e.bytes.size() == static_cast<size_t>(numel_of(e.shape)) * nn::dtype_size(e.dtype), name);
    if (e.dtype == "F32" || e.dtype == "F64" || e.dtype == "F16" || e.dtype == "BF16")
      FUZZ_CHECK(st.f32(name).numel() == numel_of(e.shape), name);
  }
  return 0;
}

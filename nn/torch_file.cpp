#include "nn/torch_file.h"

#include <zip.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "core/error.h"
#include "nn/unpickler.h"

namespace qforge::nn {
namespace {

using pickle::Kind;
using pickle::Value;

std::vector<uint8_t> first_bytes(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  QF_CHECK(f, path + ": cannot open file");
  std::vector<uint8_t> b(n);
  f.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(n));
  b.resize(static_cast<size_t>(f.gcount()));
  return b;
}

// An archive opened read-only; never written back.
class Archive {
 public:
  explicit Archive(const std::string& path) : path_(path) {
    int code = 0;
    z_ = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!z_) {
      zip_error_t e;
      zip_error_init_with_code(&e, code);
      std::string msg = zip_error_strerror(&e);
      zip_error_fini(&e);
      throw Error(path + ": not a readable zip archive (a truncated or corrupt .pth file?): " + msg);
    }
  }
  ~Archive() { zip_discard(z_); }
  Archive(const Archive&) = delete;
  Archive& operator=(const Archive&) = delete;

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    const zip_int64_t n = zip_get_num_entries(z_, 0);
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* name = zip_get_name(z_, static_cast<zip_uint64_t>(i), 0);
      QF_CHECK(name, path_ + ": cannot read the archive's member names: " + zip_strerror(z_));
      out.emplace_back(name);
    }
    return out;
  }
  bool has(const std::string& name) const { return zip_name_locate(z_, name.c_str(), 0) >= 0; }

  // A member's bytes, its CRC checked; `what` says what it is for the messages.
  std::vector<uint8_t> read(const std::string& name, const std::string& what, uint64_t max_size) const {
    const zip_int64_t idx = zip_name_locate(z_, name.c_str(), 0);
    QF_CHECK(idx >= 0, path_ + ": the " + what + " ('" + name + "') is missing from the archive");
    zip_stat_t st;
    zip_stat_init(&st);
    QF_CHECK(zip_stat_index(z_, static_cast<zip_uint64_t>(idx), 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE),
             path_ + ": cannot read member '" + name + "': " + zip_strerror(z_));
    QF_CHECK(st.size <= max_size, path_ + ": member '" + name + "' is " + std::to_string(st.size) +
                                      " bytes, more than the " + std::to_string(max_size) + " a " + what + " may have");
    // Deflate expands at most ~1032 times: a larger claim is a corrupt (or hostile) header, not a reason to
    // allocate. torch.save stores members uncompressed.
    QF_CHECK((st.valid & ZIP_STAT_COMP_SIZE) && st.size / 1100 <= st.comp_size,
             path_ + ": member '" + name + "' claims " + std::to_string(st.size) + " bytes from " +
                 std::to_string(st.comp_size) + " compressed (corrupt file)");
    zip_file_t* f = zip_fopen_index(z_, static_cast<zip_uint64_t>(idx), 0);
    QF_CHECK(f, path_ + ": cannot open member '" + name + "': " + zip_strerror(z_));
    std::vector<uint8_t> buf;
    try {
      buf.resize(static_cast<size_t>(st.size));
    } catch (const std::bad_alloc&) {
      zip_fclose(f);
      throw Error(path_ + ": member '" + name + "' (" + std::to_string(st.size) + " bytes) does not fit in memory");
    }
    zip_int64_t got = buf.empty() ? 0 : zip_fread(f, buf.data(), buf.size());
    // One more read reaches the end of the member, where libzip compares the CRC.
    uint8_t extra;
    zip_int64_t more = got == static_cast<zip_int64_t>(buf.size()) ? zip_fread(f, &extra, 1) : 0;
    std::string err = got < 0 || more < 0 ? zip_file_strerror(f) : "";
    zip_fclose(f);
    QF_CHECK(err.empty(), path_ + ": cannot read member '" + name + "' (corrupt file?): " + err);
    QF_CHECK(got == static_cast<zip_int64_t>(buf.size()) && more == 0,
             path_ + ": member '" + name + "' is shorter or longer than the archive says (corrupt file)");
    return buf;
  }

 private:
  std::string path_;
  zip_t* z_ = nullptr;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The one folder holding data.pkl ("archive/data.pkl" -> "archive").
std::string archive_folder(const std::string& path, const std::vector<std::string>& names) {
  std::vector<std::string> found;
  for (auto& n : names) {
    if (!ends_with(n, "/data.pkl")) continue;
    std::string folder = n.substr(0, n.size() - 9);
    if (!folder.empty() && folder.find('/') == std::string::npos) found.push_back(folder);
  }
  QF_CHECK(!found.empty(), path + ": a zip archive without <folder>/data.pkl: not a file written by torch.save");
  QF_CHECK(found.size() == 1, path + ": a zip archive with " + std::to_string(found.size()) + " data.pkl members (" +
                                  found[0] + ", " + found[1] + "); torch.save writes one");
  const std::string& a = found[0];
  for (auto& n : names)
    QF_CHECK(n != a + "/constants.pkl" && n.rfind(a + "/code/", 0) != 0,
             path +
                 ": a TorchScript archive (torch.jit.save); qforge reads a state_dict saved with "
                 "torch.save(model.state_dict(), file)");
  return a;
}

int elem_size(const std::string& dtype) { return dtype_size(dtype); }

// The view as a contiguous tensor of its own dtype.
std::vector<uint8_t> gather(const Value& t, const Value& storage, const std::vector<uint8_t>& data) {
  const size_t es = static_cast<size_t>(elem_size(storage.dtype));
  int64_t n = 1;
  for (int64_t s : t.sizes) n *= s;
  std::vector<uint8_t> out(static_cast<size_t>(n) * es);
  if (n == 0) return out;
  // Row-major strides: one copy. (The unpickler checked that the view lies inside the storage.)
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t k = t.sizes.size(); k-- > 0;) {
    if (t.sizes[k] != 1 && t.strides[k] != expect) contiguous = false;
    expect *= t.sizes[k];
  }
  if (contiguous) {
    std::memcpy(out.data(), data.data() + static_cast<size_t>(t.i) * es, out.size());
    return out;
  }
  const size_t d = t.sizes.size();
  std::vector<int64_t> idx(d, 0);
  int64_t src = t.i;
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(out.data() + static_cast<size_t>(i) * es, data.data() + static_cast<size_t>(src) * es, es);
    for (size_t k = d; k-- > 0;) {  // odometer over the view's indices, last fastest
      src += t.strides[k];
      if (++idx[k] < t.sizes[k]) break;
      src -= t.strides[k] * t.sizes[k];
      idx[k] = 0;
    }
  }
  return out;
}

}  // namespace

bool is_zip_file(const std::string& path) {
  std::vector<uint8_t> b = first_bytes(path, 4);
  return b.size() == 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
}

SafeTensors read_torch_file(const std::string& path) {
  Archive zip(path);
  const std::vector<std::string> names = zip.names();
  const std::string folder = archive_folder(path, names);
  if (zip.has(folder + "/byteorder")) {
    std::vector<uint8_t> bo = zip.read(folder + "/byteorder", "byte order", 16);
    std::string order(bo.begin(), bo.end());
    QF_CHECK(order == "little", path + ": tensors stored " + order + "-endian; qforge reads little-endian files");
  }
  const std::string pkl_name = folder + "/data.pkl";
  std::vector<uint8_t> pkl = zip.read(pkl_name, "pickle", uint64_t{256} << 20);
  pickle::Pickle p = pickle::unpickle(pkl.data(), pkl.size(), path + ": " + pkl_name);

  // The state dict: the top level, or a dict under "state_dict" / "model".
  const Value& root = p.at(p.root);
  QF_CHECK(root.kind == Kind::Dict,
           path + ": holds " + std::string(pickle::kind_name(root.kind)) + ", not a state_dict (a dict of tensors)");
  const Value* sd = &root;
  std::string under;
  for (const char* key : {"state_dict", "model"})
    if (const Value* v = p.dict_get(root, key); v && v->kind == Kind::Dict) {
      sd = v;
      under = key;
      break;
    }
  std::map<std::string, const Value*> tensors;
  for (size_t i = 0; i + 1 < sd->items.size(); i += 2) {
    const Value& k = p.at(sd->items[i]);
    const Value& v = p.at(sd->items[i + 1]);
    const std::string shown = k.kind == Kind::Str ? "'" + k.s + "'" : std::string(pickle::kind_name(k.kind));
    if (k.kind != Kind::Str || v.kind != Kind::Tensor) {
      std::string msg = path + ": entry " + shown + (under.empty() ? "" : " of '" + under + "'") + " is " +
                        pickle::kind_name(v.kind) + ", not a tensor named by a string";
      if (under.empty()) msg += "; expected a state_dict, or a dict holding one under 'state_dict' or 'model'";
      throw Error(msg);
    }
    tensors[k.s] = &v;
  }
  QF_CHECK(!tensors.empty(),
           path + ": the state_dict" + (under.empty() ? "" : " under '" + under + "'") + " holds no tensors");

  SafeTensors st;
  st.path = path;
  st.file_size = std::filesystem::file_size(path);
  st.metadata = {{"format", "pytorch"}, {"archive", folder}, {"state_dict", under}};
  bool all_module = true;
  for (auto& [name, _] : tensors) all_module = all_module && name.rfind("module.", 0) == 0 && name.size() > 7;
  if (all_module) st.metadata["prefix_removed"] = "module.";

  std::map<std::string, std::vector<uint8_t>> storages;  // by key, each read once
  for (auto& [name, t] : tensors) {
    const Value& s = p.at(t->items[0]);
    const std::string member = folder + "/data/" + s.s;
    auto it = storages.find(s.s);
    if (it == storages.end()) {
      std::vector<uint8_t> bytes = zip.read(member, "storage of tensor '" + name + "'", uint64_t{1} << 40);
      const uint64_t need = static_cast<uint64_t>(s.i) * static_cast<uint64_t>(elem_size(s.dtype));
      QF_CHECK(bytes.size() >= need, path + ": storage '" + member + "' holds " + std::to_string(bytes.size()) +
                                         " bytes; tensor '" + name + "' needs " + std::to_string(s.i) + " " + s.dtype +
                                         " elements (" + std::to_string(need) + " bytes)");
      it = storages.emplace(s.s, std::move(bytes)).first;
    }
    StEntry e;
    e.dtype = s.dtype;
    e.shape.assign(t->sizes.begin(), t->sizes.end());
    e.bytes = gather(*t, s, it->second);
    st.tensors.emplace(all_module ? name.substr(7) : name, std::move(e));
  }
  return st;
}

SafeTensors read_weight_file(const std::string& path) {
  if (is_zip_file(path)) return read_torch_file(path);
  // torch.save before 1.6 (or with _use_new_zipfile_serialization=False): pickles back to back,
  // starting with PROTO 2 and LONG1 of the magic number 0x1950a86a20f9469cfc6c.
  std::vector<uint8_t> b = first_bytes(path, 4);
  QF_CHECK(!(b.size() == 4 && b[0] == 0x80 && b[1] == 0x02 && b[2] == 0x8a && b[3] == 0x0a),
           path +
               ": PyTorch's legacy format (torch.save before 1.6, or _use_new_zipfile_serialization=False) "
               "is not supported; re-save it with torch.save from PyTorch 1.6 or later");
  return read_safetensors(path);
}

}  // namespace qforge::nn

#include "nn/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_util.h"

namespace qforge::nn {

int dtype_size(const std::string& d) {
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "I8" || d == "U8" || d == "BOOL") return 1;
  if (d == "I64" || d == "F64" || d == "U64") return 8;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  return 0;
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in float
    const float v = std::ldexp(static_cast<float>(man), -24);
    return sign ? -v : v;
  }
  const uint32_t bits = exp == 31 ? sign | 0x7f800000u | (man << 13)  // inf, NaN
                                  : sign | ((exp + 112) << 23) | (man << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

StEntry f32_entry(const Tensor& t) { return raw_entry("F32", t.shape(), t.data()); }

const StEntry& SafeTensors::at(const std::string& name) const {
  auto it = tensors.find(name);
  QF_CHECK(it != tensors.end(), path + ": no tensor named '" + printable(name) + "'");
  return it->second;
}

Tensor SafeTensors::f32(const std::string& name) const {
  const StEntry& e = at(name);
  Tensor t = Tensor::empty(e.shape);
  if (e.dtype == "F32") {
    if (!e.bytes.empty()) std::memcpy(t.data(), e.bytes.data(), e.bytes.size());  // no null pointer to memcpy
  } else if (e.dtype == "F64") {
    for (int64_t i = 0; i < t.numel(); ++i) {
      double v;
      std::memcpy(&v, e.bytes.data() + 8 * i, 8);
      t.data()[i] = static_cast<float>(v);
    }
  } else if (e.dtype == "F16" || e.dtype == "BF16") {
    const bool bf = e.dtype == "BF16";
    for (int64_t i = 0; i < t.numel(); ++i) {
      uint16_t h;
      std::memcpy(&h, e.bytes.data() + 2 * i, 2);
      t.data()[i] = bf ? bf16_to_float(h) : f16_to_float(h);
    }
  } else {
    throw Error(path + ": tensor '" + printable(name) + "' is " + e.dtype +
                ", expected a float type (F32, F16, BF16, F64)");
  }
  return t;
}

std::string SafeTensors::meta(const std::string& key) const {
  auto it = metadata.find(key);
  QF_CHECK(it != metadata.end(), path + ": metadata has no '" + key + "'");
  return it->second;
}

SafeTensors read_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  QF_CHECK(f, path + ": cannot open file");
  SafeTensors st;
  st.path = path;
  st.file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  QF_CHECK(st.file_size >= 8, path + ": not a safetensors file (shorter than its 8-byte header length)");
  uint8_t lenb[8];
  f.read(reinterpret_cast<char*>(lenb), 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | lenb[i];
  QF_CHECK(hlen >= 2 && hlen <= st.file_size - 8 && hlen < (100u << 20),
           path + ": header length " + std::to_string(hlen) + " does not fit the file of " +
               std::to_string(st.file_size) + " bytes (truncated or not a safetensors file)");
  std::string header(hlen, '\0');
  f.read(header.data(), static_cast<std::streamsize>(hlen));
  QF_CHECK(f, path + ": cannot read the header");
  const nlohmann::json h = parse_json(header, path + ": header (corrupt file?)");
  QF_CHECK(h.is_object(), path + ": header is not a JSON object");
  const uint64_t data_size = st.file_size - 8 - hlen;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      QF_CHECK(v.is_object(), path + ": __metadata__ is not an object");
      for (auto& [k, mv] : v.items()) {
        QF_CHECK(mv.is_string(), path + ": metadata '" + printable(k) + "' is not a string");
        st.metadata[k] = mv.get<std::string>();
      }
      continue;
    }
    // Each field's type and range, before any get<>() (which would throw a JSON error without the
    // file's name).
    const std::string where = path + ": tensor '" + printable(name) + "'";
    QF_CHECK(v.is_object(), where + ": header entry is not an object: " + brief(v));
    QF_CHECK(v.contains("dtype") && v["dtype"].is_string(), where + ": dtype missing or not a string");
    QF_CHECK(v.contains("shape") && v["shape"].is_array(), where + ": shape missing or not an array");
    QF_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array(),
             where + ": data_offsets missing or not an array");
    const nlohmann::json& offs = v["data_offsets"];
    QF_CHECK(offs.size() == 2 && offs[0].is_number_unsigned() && offs[1].is_number_unsigned(),
             where + ": data_offsets must be two non-negative integers, not " + brief(offs));
    StEntry e;
    e.dtype = v["dtype"].get<std::string>();
    int ds = dtype_size(e.dtype);
    QF_CHECK(ds > 0, where + " has unknown dtype " + e.dtype);
    uint64_t elems = 1;
    for (auto& d : v["shape"]) {
      QF_CHECK(d.is_number_unsigned() && d.get<uint64_t>() < (uint64_t{1} << 31),
               where + " has a bad shape " + brief(v["shape"]));
      elems *= std::max<uint64_t>(1, d.get<uint64_t>());
      QF_CHECK(elems < (uint64_t{1} << 40), where + " is impossibly large " + brief(v["shape"]));
      e.shape.push_back(d.get<int64_t>());
    }
    uint64_t b = offs[0].get<uint64_t>(), en = offs[1].get<uint64_t>();
    QF_CHECK(b <= en, where + ": data_offsets " + brief(offs) + " are reversed");
    QF_CHECK(en <= data_size, where + " lies outside the file (offsets " + std::to_string(b) + ".." +
                                  std::to_string(en) + ", data is " + std::to_string(data_size) +
                                  " bytes; truncated file?)");
    QF_CHECK(en - b == static_cast<uint64_t>(numel_of(e.shape)) * ds,
             where + " has " + std::to_string(en - b) + " bytes for shape " + shape_str(e.shape) + " of " + e.dtype);
    e.bytes.resize(en - b);
    f.seekg(static_cast<std::streamoff>(8 + hlen + b));
    f.read(reinterpret_cast<char*>(e.bytes.data()), static_cast<std::streamsize>(en - b));
    QF_CHECK(f, where + ": cannot read its data");
    ranges.emplace_back(b, en);
    st.tensors.emplace(name, std::move(e));
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t pos = 0;
  for (auto& [b, e] : ranges) {
    QF_CHECK(b == pos, path + ": tensor data has a gap or an overlap at byte " + std::to_string(b) + " (corrupt file)");
    pos = e;
  }
  QF_CHECK(pos == data_size,
           path + ": " + std::to_string(data_size - pos) + " bytes after the last tensor (corrupt file)");
  return st;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, StEntry>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();  // not null: "{}" when there is nothing
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (auto& [name, e] : tensors) {
    QF_CHECK(e.bytes.size() == static_cast<size_t>(numel_of(e.shape)) * dtype_size(e.dtype),
             path + ": tensor '" + name + "' has the wrong number of bytes for its shape");
    h[name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {off, off + e.bytes.size()}}};
    off += e.bytes.size();
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // keeps the tensor data 8-byte aligned
  write_file_atomic(path, [&](std::FILE* f) {
    uint8_t lenb[8];
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) lenb[i] = static_cast<uint8_t>(n >> (8 * i));
    std::fwrite(lenb, 1, 8, f);
    std::fwrite(header.data(), 1, header.size(), f);
    for (auto& [_, e] : tensors)
      if (!e.bytes.empty()) std::fwrite(e.bytes.data(), 1, e.bytes.size(), f);  // no null pointer for an empty tensor
  });
}

}  // namespace qforge::nn

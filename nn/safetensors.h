// safetensors files: an 8-byte little-endian header length, a JSON header
// (name -> dtype, shape, data_offsets; plus "__metadata__", string -> string),
// then the raw little-endian tensor bytes. Float checkpoints and int8 models
// both use it, so they open in the wider ecosystem.
//
//   SafeTensors st = read_safetensors("model.safetensors");   // validated
//   Tensor w = st.f32("conv1.weight");
//   write_safetensors("out.safetensors", entries, {{"format", "qforge-checkpoint"}});
#pragma once
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace qforge::nn {

struct StEntry {
  std::string dtype;  // "F32", "F16", "BF16", "F64", "I8", "U8", "I16", "I32", "I64", "BOOL"
  Shape shape;
  std::vector<uint8_t> bytes;  // little-endian, numel * dtype size
};

int dtype_size(const std::string& dtype);  // 0 for an unknown dtype
// IEEE half and bfloat16 to float, exactly (subnormals, infinities and NaN included).
float f16_to_float(uint16_t h);
float bf16_to_float(uint16_t h);

StEntry f32_entry(const Tensor& t);
template <class T>
StEntry raw_entry(const std::string& dtype, const Shape& shape, const T* data) {
  StEntry e{dtype, shape, {}};
  e.bytes.resize(static_cast<size_t>(numel_of(shape)) * sizeof(T));
  if (!e.bytes.empty()) std::memcpy(e.bytes.data(), data, e.bytes.size());
  return e;
}

struct SafeTensors {
  std::string path;
  std::map<std::string, StEntry> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t file_size = 0;

  bool has(const std::string& name) const { return tensors.count(name) > 0; }
  const StEntry& at(const std::string& name) const;  // throws naming the file
  Tensor f32(const std::string& name) const;         // F32 (or F64, F16, BF16, converted)
  std::string meta(const std::string& key) const;    // throws when absent
};

// Validates the header length, the JSON, dtypes, shapes and that every tensor's
// byte range lies inside the file, without gaps or overlaps. Errors name the file.
SafeTensors read_safetensors(const std::string& path);

// Entries in the given order; written to a temporary and renamed into place.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, StEntry>>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace qforge::nn

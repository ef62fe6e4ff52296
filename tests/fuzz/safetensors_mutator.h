// A structure-aware mutator for the targets whose input is a safetensors file (libFuzzer builds only).
// Byte mutations of such a file nearly always change the header's length and so die at the first
// check; this one also mutates the header's text, or one metadata string (the .qfm graph), and
// writes the length back, so the mutated JSON reaches the code that interprets it.
#pragma once
#ifdef QFORGE_LIBFUZZER
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace qforge::fuzz {

// Mutates s in place with libFuzzer's own mutations, allowing it to grow by `room` bytes.
inline void mutate_string(std::string& s, size_t room) {
  const size_t n = s.size();
  s.resize(n + room);
  s.resize(LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(s.data()), n, n + room));
}

// meta_key: the metadata string to mutate as a whole (e.g. "graph"), or "" for none.
inline size_t mutate_safetensors(uint8_t* data, size_t size, size_t max_size, unsigned seed,
                                 const std::string& meta_key) {
  std::minstd_rand rng(seed);
  const unsigned mode = rng() % 3;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0 && size >= 8; --i) hlen = (hlen << 8) | data[i];
  if (mode == 0 || size < 8 || hlen > size - 8) return LLVMFuzzerMutate(data, size, max_size);
  std::string header(reinterpret_cast<const char*>(data) + 8, hlen);
  const std::string tail(reinterpret_cast<const char*>(data) + 8 + hlen, size - 8 - hlen);
  const size_t room = max_size > size ? std::min<size_t>(max_size - size, 256) : 0;
  if (mode == 1 || meta_key.empty()) {
    mutate_string(header, room);
  } else {
    nlohmann::json h = nlohmann::json::parse(header, nullptr, false);
    if (!h.is_object() || !h.contains("__metadata__") || !h["__metadata__"].is_object() ||
        !h["__metadata__"].contains(meta_key) || !h["__metadata__"][meta_key].is_string())
      return LLVMFuzzerMutate(data, size, max_size);
    std::string v = h["__metadata__"][meta_key];
    mutate_string(v, room);
    h["__metadata__"][meta_key] = v;
    header = h.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (8 + header.size() + tail.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) data[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(data + 8, header.data(), header.size());
  std::memcpy(data + 8 + header.size(), tail.data(), tail.size());
  return 8 + header.size() + tail.size();
}

}  // namespace qforge::fuzz
#endif

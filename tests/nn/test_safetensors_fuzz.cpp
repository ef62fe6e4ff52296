// read_safetensors and write_safetensors on the inputs tests/fuzz/fuzz_safetensors found (each also
// committed as tests/fuzz/corpus/safetensors/crash-*), and on their neighbours.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "nn/safetensors.h"

using namespace qforge;
using namespace qforge::nn;

namespace {

std::string scratch(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("qforge_stf_" + std::to_string(::getpid()) + "_" + name)).string();
}

// An 8-byte little-endian header length, the header, then `data` zero bytes.
std::string write_raw(const std::string& name, const std::string& header, size_t data) {
  const std::string path = scratch(name);
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
  f << header << std::string(data, '\0');
  return path;
}

std::string error_of(const std::string& path) {
  try {
    read_safetensors(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: an empty F32 tensor converts to an empty tensor") {
  // f32() passed a null pointer to memcpy for 0 bytes: undefined behaviour, reported by UBSan.
  const std::string path =
      write_raw("empty.safetensors", R"({"w":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})", 0);
  SafeTensors st = read_safetensors(path);
  std::filesystem::remove(path);
  Tensor t = st.f32("w");
  CHECK(t.shape() == Shape{0, 3});
  CHECK(t.numel() == 0);
}

TEST_CASE("safetensors: a file with nothing in it is written as {} and reads back") {
  // write_safetensors wrote the header "null" for no tensors and no metadata, which it then refused.
  const std::string path = scratch("nothing.safetensors");
  write_safetensors(path, {}, {});
  SafeTensors st = read_safetensors(path);
  CHECK(st.tensors.empty());
  CHECK(st.metadata.empty());
  CHECK(st.file_size == 16);  // the length, then "{}" padded to 8 bytes
  std::filesystem::remove(path);
}

TEST_CASE("safetensors: a NUL byte in the header is corruption, not its end") {
  // nlohmann's parser stopped at the NUL, so "{}\0<anything>" read as an empty file.
  const std::string path = write_raw("nul.safetensors", std::string("{}\0{\"w\":1}", 10), 0);
  CHECK(error_of(path) == path + ": header (corrupt file?): not valid JSON: a NUL byte at offset 2");
  std::filesystem::remove(path);
}

TEST_CASE("safetensors: deep nesting in the header is an Error naming the file, not a stack overflow") {
  // The error message dumped the entry: 100000 nested brackets overflowed the stack.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string path = write_raw("deep.safetensors", "{\"w\":" + deep + "}", 0);
  CHECK(error_of(path) == path + ": header (corrupt file?): JSON nested deeper than 64 levels");
  std::filesystem::remove(path);
  // Shallow, but large: the message quotes a little of it.
  std::string big = "[";
  for (int i = 0; i < 10000; ++i) big += std::to_string(i) + ",";
  big += "0]";
  const std::string path2 = write_raw("big.safetensors", "{\"w\":" + big + "}", 0);
  const std::string msg = error_of(path2);
  CHECK(msg.find(path2 + ": tensor 'w': header entry is not an object: [0,1,2,") == 0);
  CHECK(msg.size() < path2.size() + 150);
  std::filesystem::remove(path2);
}

TEST_CASE("safetensors: a tensor name with control characters is quoted escaped") {
  // A NUL in the name cut the message short where it is printed.
  const std::string path =
      write_raw("ctl.safetensors", R"({"a\u0000b":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
  const std::string msg = error_of(path);
  CHECK(msg.find('\0') == std::string::npos);
  CHECK(msg.find(path + ": tensor 'a\\x00b' has 8 bytes for shape") == 0);
  std::filesystem::remove(path);
}

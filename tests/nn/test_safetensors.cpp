// read_safetensors on crafted headers: every malformed field is a qforge::Error naming the file and
// the tensor, never a JSON library error nor a read outside the file.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "nn/safetensors.h"

using namespace qforge;
using namespace qforge::nn;

namespace {

std::string scratch(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("qforge_st_" + std::to_string(::getpid()) + "_" + name)).string();
}

// An 8-byte little-endian header length, the header, then `data` bytes.
std::string write_raw(const std::string& name, const std::string& header, size_t data) {
  const std::string path = scratch(name);
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
  f << header << std::string(data, '\0');
  return path;
}

// Reading `header` (with `data` bytes after it) fails with a message naming the file, the tensor `w`
// and containing `what`.
void rejects(const std::string& header, size_t data, const std::string& what) {
  CAPTURE(header);
  const std::string path = write_raw("bad.safetensors", header, data);
  std::string msg;
  bool ours = false;
  try {
    read_safetensors(path);
  } catch (const Error& e) {
    msg = e.what(), ours = true;
  } catch (const std::exception& e) {
    msg = e.what();
  }
  std::filesystem::remove(path);
  REQUIRE_MESSAGE(!msg.empty(), "accepted");
  CHECK_MESSAGE(ours, "not a qforge::Error: " << msg);
  CHECK_MESSAGE(msg.find(path) != std::string::npos, msg);
  CHECK_MESSAGE(msg.find("'w'") != std::string::npos, msg);
  CHECK_MESSAGE(msg.find(what) != std::string::npos, msg);
}

// The Error read_safetensors throws for `path`, or "" when it reads.
std::string error_of(const std::string& path) {
  try {
    read_safetensors(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: a well-formed crafted file reads") {
  const std::string path = write_raw("ok.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
  SafeTensors st = read_safetensors(path);
  std::filesystem::remove(path);
  REQUIRE(st.tensors.count("w") == 1);
  CHECK(st.tensors.at("w").shape == Shape{2});
}

TEST_CASE("safetensors: malformed header fields name the file, the tensor and the field") {
  rejects(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})", 8, "data_offsets");
  rejects(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0.0,8.0]}})", 8, "data_offsets");
  rejects(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8, "data_offsets");
  rejects(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,null]}})", 8, "data_offsets");
  rejects(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}})", 8, "data_offsets");
  rejects(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":{"a":0}}})", 8, "data_offsets");
  rejects(R"({"w":{"dtype":"F32","shape":[2]}})", 8, "data_offsets");
  rejects(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8, "dtype");
  rejects(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8, "dtype");
  rejects(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8, "dtype");
  rejects(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8, "shape");
  rejects(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "shape");
  rejects(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8, "shape");
  rejects(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8, "shape");
  rejects(R"({"w":[1,2]})", 8, "not an object");
  // Ranges: outside the data, reversed, the wrong size for the shape.
  rejects(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8, "outside");
  rejects(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "data_offsets");
  rejects(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "bytes for shape");
  rejects(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", 8, "outside");
}

TEST_CASE("safetensors: a truncated file names the file and the tensor") {
  const std::string hdr =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  rejects(hdr, 20, "outside");  // 4 bytes short
  const std::string path = write_raw("short.safetensors", hdr, 0);
  std::filesystem::resize_file(path, 8 + 10);  // cut inside the header
  CHECK_THROWS_WITH_AS(read_safetensors(path), doctest::Contains(path.c_str()), Error);
  std::filesystem::remove(path);
}

// The inputs tests/fuzz/fuzz_safetensors found (each also committed as
// tests/fuzz/corpus/safetensors/crash-*), and their neighbours.

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

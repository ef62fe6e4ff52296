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

// The runtime as an installed library: `cmake --install` of this build into a temporary prefix,
// then a separate C project (tests/quant/capi_consumer, with the example quant/capi/examples)
// configured with find_package(qforge) and built against it. Its programs load .qfm files made
// here and must give the C++ runtime's logits byte for byte, and classify a PNG as it would.
#include <doctest/doctest.h>
#include <stb_image_write.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "core/threads.h"
#include "data/idx.h"
#include "quant/graph.h"
#include "quant/runtime.h"
#include "tiny_int8.h"

using namespace qforge;
using namespace qforge::quant;
namespace fs = std::filesystem;

namespace {

struct Run {
  int code;
  std::string out;  // stdout and stderr
};

Run sh(const std::string& cmd) {
  std::FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::string q(const std::string& s) { return "'" + s + "'"; }  // paths here hold no quotes

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

void dump(const std::string& path, const void* p, size_t bytes) {
  std::ofstream(path, std::ios::binary).write(static_cast<const char*>(p), static_cast<std::streamsize>(bytes));
}

Tensor normalise(const std::vector<uint8_t>& px, int n, int hw, float mean, float sd) {
  Tensor x = Tensor::empty({n, 1, 1, hw});
  for (size_t i = 0; i < px.size(); ++i) x.data()[i] = (static_cast<float>(px[i]) / 255.0f - mean) / sd;
  return x;
}

}  // namespace

TEST_CASE("C API: the installed package builds a C program that runs .qfm models to qforge's bytes") {
  const fs::path root = fs::temp_directory_path() / ("qforge_install_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  auto at = [&](const std::string& s) { return (root / s).string(); };
  const std::string src = QFORGE_SOURCE_DIR_PATH, cmake = QFORGE_CMAKE_COMMAND;

  Run inst = sh(q(cmake) + " --install " + q(QFORGE_BUILD_DIR) + " --component runtime --prefix " + q(at("prefix")));
  INFO(inst.out);
  REQUIRE(inst.code == 0);
  CHECK(fs::exists(at("prefix/include/qforge_c.h")));
  std::string cfg_args = " -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=" + q(at("prefix")) +
                         " -DQFORGE_EXAMPLE_DIR=" + q(src + "/quant/capi/examples");
  const std::string sanitize = QFORGE_SANITIZE_FLAGS;  // the library's sanitizer runtime, if any
  if (!sanitize.empty()) cfg_args += " -DCMAKE_C_FLAGS=" + q(sanitize) + " -DCMAKE_EXE_LINKER_FLAGS=" + q(sanitize);
  Run conf = sh(q(cmake) + " -S " + q(src + "/tests/quant/capi_consumer") + " -B " + q(at("build")) + cfg_args);
  INFO(conf.out);
  REQUIRE(conf.code == 0);
  Run build = sh(q(cmake) + " --build " + q(at("build")) + " -j2");
  INFO(build.out);
  REQUIRE(build.code == 0);

  // A tiny model made here: float and uint8 batches through the installed library, byte for byte.
  set_num_threads(2);
  const int n = 3;
  Int8Graph g = testing::tiny_int8_graph(testing::TinyArch::kResNet18, 1, 28, 21, {0.286f}, {0.353f});
  g.classes[3] = "Dress";
  save_int8_model(at("m.qfm"), g);
  Int8Runtime rt(load_int8_model(at("m.qfm")));
  std::mt19937_64 rng(22);
  Tensor x = Tensor::randn({n, 1, 28, 28}, rng);
  std::vector<uint8_t> px(n * 784);
  for (auto& p : px) p = static_cast<uint8_t>(rng());
  const Tensor want = rt.run(x), want_u8 = rt.run(normalise(px, n, 784, 0.286f, 0.353f).reshape({n, 1, 28, 28}));
  dump(at("x.f32"), x.data(), x.numel() * sizeof(float));
  dump(at("px.u8"), px.data(), px.size());
  Run chk = sh(q(at("build/qf_check")) + " " + q(at("m.qfm")) + " " + std::to_string(n) + " " + q(at("x.f32")) + " " +
               q(at("y.f32")) + " " + q(at("px.u8")) + " " + q(at("y_u8.f32")));
  INFO(chk.out);
  REQUIRE(chk.code == 0);
  CHECK(chk.out.find("shape 1 28 28 classes 10\n") != std::string::npos);
  CHECK(chk.out.find("class 3 Dress\n") != std::string::npos);
  CHECK(chk.out.find("normalization 0.286000013 0.352999985\n") != std::string::npos);
  const std::string y = slurp(at("y.f32")), y_u8 = slurp(at("y_u8.f32"));
  REQUIRE(y.size() == want.numel() * sizeof(float));
  REQUIRE(y_u8.size() == want_u8.numel() * sizeof(float));
  CHECK(std::memcmp(y.data(), want.data(), y.size()) == 0);
  CHECK(std::memcmp(y_u8.data(), want_u8.data(), y_u8.size()) == 0);
  // 8 threads on the model through the installed library (its own pool), batches big enough to split.
  Run thr = sh(q(at("build/qf_threads")) + " " + q(at("m.qfm")) + " 16");
  INFO(thr.out);
  CHECK(thr.code == 0);
  CHECK(thr.out.find("threads ok: 0 wrong, 0 failed of 32 runs") != std::string::npos);

  // The example classifies a PNG with a Fashion-MNIST model (the committed fixture, trained briefly):
  // a test image when the dataset is installed, else a drawn one.
  const std::string fixture = src + "/tests/quant/fixtures/tiny_resnet18_v1.qfm";
  std::vector<uint8_t> img(784);
  const std::string fm = "/usr/share/datasets/fashion-mnist/t10k-";
  if (fs::exists(fm + "images-idx3-ubyte.gz")) {
    auto ds = data::load_idx(fm + "images-idx3-ubyte.gz", fm + "labels-idx1-ubyte.gz", data::fashion_mnist_classes());
    ds->get(0, img.data());
  } else {
    for (int i = 0; i < 784; ++i) img[i] = static_cast<uint8_t>((i % 28) * (i / 28) % 256);
  }
  REQUIRE(stbi_write_png(at("img.png").c_str(), 28, 28, 1, img.data(), 28));
  Int8Runtime fr(load_int8_model(fixture));
  const Tensor logits = fr.run(normalise(img, 1, 784, 0.286f, 0.353f).reshape({1, 1, 28, 28}));
  int best = 0;
  for (int k = 1; k < 10; ++k)
    if (logits.data()[k] > logits.data()[best]) best = k;
  double sum = 0;
  for (int k = 0; k < 10; ++k) sum += std::exp(double(logits.data()[k]) - logits.data()[best]);
  char line[256];
  std::snprintf(line, sizeof line, "%s\t%.6f\t%d\n", fr.graph().classes[best].c_str(), 1.0 / sum, best);
  Run cls = sh(q(at("build/example/classify")) + " " + q(fixture) + " " + q(at("img.png")));
  INFO(cls.out);
  REQUIRE(cls.code == 0);
  CHECK(cls.out == line);
  MESSAGE("classify: " << cls.out);
  // An RGB image of another size is converted and resized; a missing one is an error naming it.
  std::vector<uint8_t> rgb(56 * 40 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 7);
  REQUIRE(stbi_write_png(at("rgb.png").c_str(), 56, 40, 3, rgb.data(), 56 * 3));
  Run cls2 = sh(q(at("build/example/classify")) + " " + q(fixture) + " " + q(at("rgb.png")));
  INFO(cls2.out);
  CHECK(cls2.code == 0);
  CHECK(std::count(cls2.out.begin(), cls2.out.end(), '\t') == 2);
  Run cls3 = sh(q(at("build/example/classify")) + " " + q(fixture) + " " + q(at("none.png")));
  CHECK(cls3.code == 1);
  CHECK(cls3.out.find("none.png: cannot decode the image") != std::string::npos);
  Run cls4 = sh(q(at("build/example/classify")) + " " + q(at("none.qfm")) + " " + q(at("img.png")));
  CHECK(cls4.code == 1);
  CHECK(cls4.out.find("none.qfm") != std::string::npos);
  set_num_threads(1);
  fs::remove_all(root);
}

// nn/torch_file: PyTorch .pth files written by torch.save (tests/nn/fixtures/make_pth_fixtures.py
// made the committed ones), read without Python, against the safetensors copies the same
// script wrote. Also torchvision's ResNet18 and MobileNetV2, made at test time by
// make_torchvision_pth.py when Debian's python3-torch is there (skipped otherwise).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "core/autograd.h"
#include "core/error.h"
#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/mobilenet_v2.h"
#include "nn/resnet.h"
#include "nn/torch_file.h"
#include "python_torch.h"
#include "tensor_compare.h"

using namespace qforge;
using qforge::testing::max_abs_diff;
using namespace qforge::nn;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(QFORGE_TESTS_DIR) + "/nn/fixtures/";

// What load_state_dict takes: float tensors, without num_batches_tracked (qforge keeps no such buffer).
std::map<std::string, Tensor> float_state(const SafeTensors& st) {
  std::map<std::string, Tensor> sd;
  for (auto& [name, e] : st.tensors)
    if (!name.ends_with("num_batches_tracked") && name != "input" && name != "logits") sd[name] = st.f32(name);
  return sd;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

// The fixture's network: Sequential(Conv2d(2,6,3,p=1), BatchNorm2d(6), ReLU, AdaptiveAvgPool2d(1), Flatten,
// Linear(6,4)).
std::shared_ptr<Sequential> tiny_net() {
  std::mt19937_64 rng(99);
  return std::make_shared<Sequential>(std::vector<ModulePtr>{
      std::make_shared<Conv2d>(Conv2dOptions{2, 6, 3, 1, 1, 1, 1, true}, rng), std::make_shared<BatchNorm2d>(6),
      std::make_shared<ReLU>(), std::make_shared<AdaptiveAvgPool2d>(), std::make_shared<Flatten>(),
      std::make_shared<Linear>(6, 4, true, rng)});
}

Tensor logits_of(Module& net, const Tensor& x) {
  net.eval();
  NoGradGuard g;
  return net(x);
}

// Every tensor of a .pth equals the safetensors copy, bit for bit (num_batches_tracked as I64).
void check_same_tensors(const SafeTensors& pth, const SafeTensors& want) {
  size_t n = 0;
  for (auto& [name, e] : want.tensors) {
    if (name == "input" || name == "logits") continue;
    CAPTURE(name);
    ++n;
    REQUIRE(pth.has(name));
    const StEntry& got = pth.at(name);
    CHECK(got.dtype == e.dtype);
    CHECK(got.shape == e.shape);
    CHECK(got.bytes == e.bytes);
  }
  CHECK(pth.tensors.size() == n);
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& tag)
      : path((fs::temp_directory_path() / ("qforge_pth_" + tag + "_" + std::to_string(::getpid()))).string()) {}
  ~TempFile() { fs::remove_all(path); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST_CASE("torch_file: a state_dict .pth holds the safetensors copy's tensors and gives its logits") {
  SafeTensors want = read_safetensors(kDir + "tiny_net_expected.safetensors");
  REQUIRE(want.meta("magic") == "qforge-fixture-pth");
  REQUIRE(want.meta("version") == "1");
  REQUIRE(is_zip_file(kDir + "tiny_net.pth"));
  SafeTensors pth = read_weight_file(kDir + "tiny_net.pth");
  CHECK(pth.path == kDir + "tiny_net.pth");
  CHECK(pth.meta("format") == "pytorch");
  CHECK(pth.meta("archive") == "tiny_net");
  CHECK(pth.meta("state_dict") == "");
  CHECK(pth.file_size == fs::file_size(kDir + "tiny_net.pth"));
  check_same_tensors(pth, want);
  CHECK(pth.at("1.num_batches_tracked").dtype == "I64");

  auto a = tiny_net(), b = tiny_net();
  a->load_state_dict(float_state(pth), pth.path);
  b->load_state_dict(float_state(want), want.path);
  const Tensor x = want.f32("input");
  const Tensor ya = logits_of(*a, x);
  CHECK(same_bits(ya, logits_of(*b, x)));
  CHECK(max_abs_diff(ya, want.f32("logits")) < 1e-5);
  // The comparison means something: a fresh network is far off.
  CHECK(max_abs_diff(logits_of(*tiny_net(), x), want.f32("logits")) > 0.05);
}

TEST_CASE("torch_file: a dict under 'state_dict' or 'model' (DataParallel names), protocol 4, Parameters") {
  SafeTensors want = read_safetensors(kDir + "tiny_net_expected.safetensors");
  // {"state_dict": ..., "epoch": 3, "best_acc": 61.5, "optimizer": SGD's state_dict}: the rest is ignored.
  SafeTensors ck = read_weight_file(kDir + "tiny_net_checkpoint.pth");
  CHECK(ck.meta("state_dict") == "state_dict");
  check_same_tensors(ck, want);
  // {"model": {"module.0.weight": ...}, "epoch": 3}
  SafeTensors mk = read_weight_file(kDir + "tiny_net_model_key.pth");
  CHECK(mk.meta("state_dict") == "model");
  CHECK(mk.meta("prefix_removed") == "module.");
  check_same_tensors(mk, want);
  // Pickle protocol 4 (torch.save(..., pickle_protocol=4)): the same tensors.
  check_same_tensors(read_weight_file(kDir + "tiny_net_proto4.pth"), want);
  // dict(net.named_parameters()): Parameters, rebuilt by _rebuild_parameter; the parameters only.
  SafeTensors params = read_weight_file(kDir + "tiny_net_params.pth");
  CHECK(params.tensors.size() == 6);
  for (auto& [name, e] : params.tensors) {
    CAPTURE(name);
    REQUIRE(want.has(name));
    CHECK(e.bytes == want.at(name).bytes);
    CHECK(e.shape == want.at(name).shape);
  }
}

TEST_CASE("torch_file: views, shared storages and dtypes come out as PyTorch makes them contiguous") {
  SafeTensors want = read_safetensors(kDir + "views_expected.safetensors");
  SafeTensors pth = read_torch_file(kDir + "views.pth");
  auto dtypes = nlohmann::json::parse(want.meta("dtypes"));
  CHECK(pth.tensors.size() == want.tensors.size());
  CHECK(pth.tensors.size() == 14);
  for (auto& [name, e] : want.tensors) {
    CAPTURE(name);
    REQUIRE(pth.has(name));
    const StEntry& got = pth.at(name);
    CHECK(got.dtype == dtypes[name].get<std::string>());
    CHECK(got.shape == e.shape);
    if (e.dtype == "F32") {
      CHECK(same_bits(pth.f32(name), want.f32(name)));  // NaN, -0 and subnormals included
    } else {
      CHECK(got.bytes == e.bytes);
    }
  }
  // Spot checks against the script's own numbers.
  CHECK(pth.at("transposed").shape == Shape{6, 4});
  CHECK(pth.f32("transposed").data()[1] == pth.f32("base").data()[6]);  // (0,1) of base.t() is base (1,0)
  CHECK(pth.f32("col").data()[2] == pth.f32("base").data()[2 * 6 + 3]);
  CHECK(pth.f32("expanded").data()[2] == 1.5f);
  CHECK(pth.f32("expanded").data()[3] == -2.5f);
  Tensor h = pth.f32("half");
  CHECK(h.data()[0] == std::ldexp(1.f, -20));
  CHECK(std::signbit(h.data()[1]));
  CHECK(h.data()[2] == 65504.f);
  CHECK(std::isinf(h.data()[3]));
  CHECK(std::isnan(h.data()[4]));
  CHECK(same_bits(pth.f32("half_tail"), Tensor::from({3}, std::vector<float>(h.data() + 5, h.data() + 8))));
  CHECK(pth.at("scalar").shape.empty());
  CHECK(pth.f32("scalar").item() == 3.25f);
  CHECK(pth.at("empty").shape == Shape{0, 3});
  CHECK_THROWS_WITH_AS(pth.f32("i64"), doctest::Contains("'i64' is I64"), Error);
}

TEST_CASE("torch_file: a pickle naming os.system is refused, naming the global and the file, and nothing runs") {
  const std::string pwned = "/tmp/qforge_pth_fixture_pwned";  // what the pickle would touch
  fs::remove(pwned);
  const std::string f = kDir + "malicious.pth";
  CHECK_THROWS_WITH_AS(read_weight_file(f), doctest::Contains((f + ": malicious/data.pkl").c_str()), Error);
  CHECK_THROWS_WITH_AS(read_weight_file(f), doctest::Contains("refused the global 'os.system'"), Error);
  CHECK_FALSE(fs::exists(pwned));
}

TEST_CASE("torch_file: broken archives are errors naming the file") {
  auto fails = [](const std::string& file, std::vector<std::string> words) {
    CAPTURE(file);
    try {
      read_weight_file(file);
      FAIL("no error");
    } catch (const Error& e) {
      const std::string msg = e.what();
      CAPTURE(msg);
      CHECK(msg.rfind(file + ": ", 0) == 0);
      for (auto& w : words) CHECK(msg.find(w) != std::string::npos);
    }
  };
  fails(kDir + "missing_member.pth", {"'tiny_net/data/3'", "missing from the archive", "tensor '1.bias'"});
  fails(kDir + "short_storage.pth", {"'tiny_net/data/0'", "holds 216 bytes", "108 F32 elements (432 bytes)"});
  fails(kDir + "corrupt_crc.pth", {"tiny_net/data/0", "CRC"});

  // Truncated copies of a good file: the end of the archive (its directory) is gone.
  const std::string good = read_bytes(kDir + "tiny_net.pth");
  TempFile t("trunc");
  for (size_t n : {size_t{4}, size_t{30}, good.size() / 2, good.size() - 23, good.size() - 1}) {
    CAPTURE(n);
    std::ofstream(t.path, std::ios::binary) << good.substr(0, n);
    fails(t.path, {"zip archive"});
  }
  // Too short even for the magic number: not a zip, so read as a safetensors file.
  std::ofstream(t.path, std::ios::binary) << "PK";
  fails(t.path, {"safetensors"});
  // Random damage anywhere: an Error (or, where the damage is harmless, the same tensors), never a crash.
  std::mt19937_64 rng(7);
  int errors = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string b = good;
    for (int k = 0; k < 2; ++k) b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
    std::ofstream(t.path, std::ios::binary) << b;
    try {
      SafeTensors st = read_weight_file(t.path);
      CHECK(st.tensors.size() == 9);
    } catch (const Error& e) {
      ++errors;
      CHECK(std::string(e.what()).find(t.path) != std::string::npos);
    }
  }
  CHECK(errors > 0);
  // The legacy format (torch.save before 1.6): its own message.
  std::ofstream(t.path, std::ios::binary)
      << std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  fails(t.path, {"legacy format"});
}

TEST_CASE("torch_file: a shape mismatch names the file, the tensor and both shapes") {
  auto net = std::make_shared<Sequential>(
      std::vector<ModulePtr>{[] {
                               std::mt19937_64 rng(1);
                               return std::make_shared<Conv2d>(Conv2dOptions{2, 5, 3, 1, 1, 1, 1, true}, rng);
                             }(),
                             std::make_shared<BatchNorm2d>(5)});
  SafeTensors pth = read_weight_file(kDir + "tiny_net.pth");
  std::map<std::string, Tensor> sd;
  for (auto& n : {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"}) sd[n] = pth.f32(n);
  CHECK_THROWS_WITH_AS(net->load_state_dict(sd, pth.path),
                       doctest::Contains((kDir + "tiny_net.pth: tensor '0.weight' has shape (6,2,3,3), the model "
                                                 "expects (5,2,3,3)")
                                             .c_str()),
                       Error);
}

TEST_CASE("torch_file: half and bfloat16 conversions are exact") {
  CHECK(f16_to_float(0x3c00) == 1.f);
  CHECK(f16_to_float(0xc000) == -2.f);
  CHECK(f16_to_float(0x0001) == std::ldexp(1.f, -24));  // the smallest subnormal
  CHECK(f16_to_float(0x03ff) == std::ldexp(1023.f, -24));
  CHECK(f16_to_float(0x0400) == std::ldexp(1.f, -14));  // the smallest normal
  CHECK(f16_to_float(0x7bff) == 65504.f);
  CHECK(f16_to_float(0xfc00) == -INFINITY);
  CHECK(std::isnan(f16_to_float(0x7e00)));
  CHECK(std::signbit(f16_to_float(0x8000)));
  CHECK(bf16_to_float(0x3f80) == 1.f);
  CHECK(bf16_to_float(0xc0a0) == -5.f);
  CHECK(bf16_to_float(0x0001) == std::ldexp(1.f, -133));
  // Every finite half round-trips through float and back to the nearest half the hardware way: monotone.
  float prev = -INFINITY;
  for (uint32_t h = 0xfbff; h >= 0x8001; --h) {  // negative finite, from the most negative up
    float v = f16_to_float(static_cast<uint16_t>(h));
    REQUIRE(v > prev);
    prev = v;
  }
  for (uint32_t h = 0; h <= 0x7bff; ++h) {
    float v = f16_to_float(static_cast<uint16_t>(h));
    REQUIRE(v >= prev);
    prev = v;
  }
}

// torchvision's own networks, saved by torch.save(model.state_dict()): PyTorch's logits within 1e-4.
TEST_CASE("torch_file: torchvision resnet18 and mobilenet_v2 .pth files give PyTorch's logits" *
          doctest::skip(!qforge::testing::run_torch_cases())) {
  TempFile dir("torchvision");
  qforge::testing::make_torchvision_pth(dir.path, "resnet18 mobilenet_v2");
  for (std::string name : {"resnet18", "mobilenet_v2"}) {
    CAPTURE(name);
    SafeTensors pth = read_weight_file(dir.path + "/" + name + ".pth");
    SafeTensors ref = read_safetensors(dir.path + "/" + name + "_logits.safetensors");
    std::shared_ptr<Module> net;
    if (name == "resnet18")
      net = resnet18({.in_channels = 3, .num_classes = 10, .stem = "imagenet", .seed = 3});
    else
      net = mobilenet_v2({.num_classes = 10, .width_mult = 0.25, .stem = "imagenet", .seed = 3});
    net->load_state_dict(float_state(pth), pth.path);  // strict: the same names and shapes as torchvision's
    const Tensor want = ref.f32("logits");
    const Tensor y = logits_of(*net, ref.f32("input"));
    CHECK(max_abs_diff(y, want) < 1e-4);
    double spread = 0;
    for (int64_t i = 1; i < want.numel(); ++i)
      spread = std::max(spread, static_cast<double>(std::abs(want.data()[i] - want.data()[0])));
    CHECK(spread > 0.5);
  }
}

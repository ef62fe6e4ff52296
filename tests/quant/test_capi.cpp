// The C API (quant/capi/qforge_c.h), in process: the same bytes as the C++ runtime for float and
// uint8 input, class names and normalisation from the file, errors as codes with messages (never
// an exception), and 8 threads on one model with their own contexts.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/threads.h"
#include "qforge_c.h"
#include "quant/graph.h"
#include "quant/runtime.h"
#include "tiny_int8.h"

using namespace qforge;
using namespace qforge::quant;
using qforge::testing::TinyArch;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() / ("qforge_capi_" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// uint8 NCHW pixels and the floats qforge's data pipeline makes of them (data/transforms.cpp).
Tensor normalise(const std::vector<uint8_t>& px, int n, int c, int hw, const std::vector<float>& mean,
                 const std::vector<float>& sd) {
  Tensor x = Tensor::empty({n, c, 1, hw});
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < c; ++ch)
      for (int p = 0; p < hw; ++p) {
        const int64_t o = (int64_t(i) * c + ch) * hw + p;
        x.data()[o] = (static_cast<float>(px[o]) / 255.0f - mean[ch]) / sd[ch];
      }
  return x;
}

}  // namespace

TEST_CASE("C API: a .qfm runs to the C++ runtime's bytes, from float and from uint8 pixels") {
  REQUIRE(qf_set_num_threads(2, nullptr, 0) == QF_OK);  // the process pool, as set_num_threads
  CHECK(num_threads() == 2);
  TempDir d;
  const std::vector<float> mean = {0.485f, 0.456f, 0.406f}, sd = {0.229f, 0.224f, 0.225f};
  Int8Graph g = testing::tiny_int8_graph(TinyArch::kResNet18, 3, 20, 11, mean, sd);
  save_int8_model(d / "m.qfm", g);
  Int8Runtime rt(load_int8_model(d / "m.qfm"));

  char err[512];
  qf_model* m = nullptr;
  REQUIRE(qf_model_load((d / "m.qfm").c_str(), &m, err, sizeof err) == QF_OK);
  CHECK(std::string(err).empty());
  int c = 0, h = 0, w = 0;
  qf_model_input_shape(m, &c, &h, &w);
  CHECK(c == 3);
  CHECK(h == 20);
  CHECK(w == 20);
  CHECK(qf_model_num_classes(m) == 10);
  CHECK(std::string(qf_model_class_name(m, 7)) == "class7");
  CHECK(qf_model_class_name(m, 10) == nullptr);
  for (int ch = 0; ch < 3; ++ch) {
    float mu = 0, s = 0;
    REQUIRE(qf_model_normalization(m, ch, &mu, &s, err, sizeof err) == QF_OK);
    CHECK(mu == mean[ch]);
    CHECK(s == sd[ch]);
  }

  const int n = 5;
  std::mt19937_64 rng(12);
  Tensor x = Tensor::randn({n, 3, 20, 20}, rng);
  const Tensor want = rt.run(x);
  std::vector<float> got(n * 10, -1.f);
  qf_context* ctx = nullptr;
  REQUIRE(qf_context_create(m, &ctx, err, sizeof err) == QF_OK);
  REQUIRE(qf_run_float(ctx, x.data(), n, got.data(), err, sizeof err) == QF_OK);
  CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);

  std::vector<uint8_t> px(n * 3 * 400);
  for (auto& p : px) p = static_cast<uint8_t>(rng());
  const Tensor want_u8 = rt.run(normalise(px, n, 3, 400, mean, sd).reshape({n, 3, 20, 20}));
  REQUIRE(qf_run_u8(ctx, px.data(), n, got.data(), err, sizeof err) == QF_OK);
  CHECK(std::memcmp(got.data(), want_u8.data(), got.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(want_u8.data(), want.data(), got.size() * sizeof(float)) != 0);

  // The model handle may go before its contexts.
  qf_model_free(m);
  REQUIRE(qf_run_float(ctx, x.data(), n, got.data(), err, sizeof err) == QF_OK);
  CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  qf_context_free(ctx);
  set_num_threads(1);
}

TEST_CASE("C API: bad input comes back as a code and a message naming the problem") {
  TempDir d;
  char err[512];
  qf_model* m = nullptr;
  CHECK(qf_model_load((d / "missing.qfm").c_str(), &m, err, sizeof err) == QF_ERR_MODEL);
  CHECK(m == nullptr);
  CHECK(std::string(err).find("missing.qfm") != std::string::npos);
  CHECK(qf_model_load(nullptr, &m, err, sizeof err) == QF_ERR_ARGUMENT);
  CHECK(std::string(err) == "qforge: model path is NULL");
  // A file that is not a model, and a truncated one.
  std::ofstream(d / "junk.qfm") << "not a model at all";
  CHECK(qf_model_load((d / "junk.qfm").c_str(), &m, err, sizeof err) == QF_ERR_MODEL);
  CHECK(std::string(err).find("junk.qfm") != std::string::npos);
  Int8Graph g = testing::tiny_int8_graph(TinyArch::kResNet18, 1, 12, 13);
  save_int8_model(d / "m.qfm", g);
  std::filesystem::resize_file(d / "m.qfm", std::filesystem::file_size(d / "m.qfm") - 64);
  CHECK(qf_model_load((d / "m.qfm").c_str(), &m, err, sizeof err) == QF_ERR_MODEL);
  CHECK(std::string(err).find("m.qfm") != std::string::npos);
  // A normalisation that does not fit the model.
  g.config = {{"data", {{"mean", std::vector<float>{0.1f, 0.2f}}}}};
  save_int8_model(d / "mean.qfm", g);
  CHECK(qf_model_load((d / "mean.qfm").c_str(), &m, err, sizeof err) == QF_ERR_MODEL);
  CHECK(std::string(err).find("data.mean has 2 values but the model takes 1 channels") != std::string::npos);
  g.config = {{"data", {{"std", std::vector<float>{0.f}}}}};
  save_int8_model(d / "std.qfm", g);
  CHECK(qf_model_load((d / "std.qfm").c_str(), &m, err, sizeof err) == QF_ERR_MODEL);
  CHECK(std::string(err).find("data.std") != std::string::npos);
  // No normalisation in the config: 0 and 1.
  g.config = nlohmann::json::object();
  save_int8_model(d / "plain.qfm", g);
  REQUIRE(qf_model_load((d / "plain.qfm").c_str(), &m, err, sizeof err) == QF_OK);
  float mu = -1, s = -1;
  CHECK(qf_model_normalization(m, 0, &mu, &s, nullptr, 0) == QF_OK);
  CHECK(mu == 0.f);
  CHECK(s == 1.f);
  CHECK(qf_model_normalization(m, 1, &mu, &s, err, sizeof err) == QF_ERR_ARGUMENT);
  CHECK(std::string(err).find("channel 1 out of range") != std::string::npos);

  qf_context* ctx = nullptr;
  CHECK(qf_context_create(nullptr, &ctx, err, sizeof err) == QF_ERR_ARGUMENT);
  REQUIRE(qf_context_create(m, &ctx, err, sizeof err) == QF_OK);
  std::vector<float> x(2 * 144, 0.5f), y(20, -7.f);
  CHECK(qf_run_float(ctx, x.data(), 0, y.data(), err, sizeof err) == QF_ERR_ARGUMENT);
  CHECK(std::string(err).find("batch size 0 out of range") != std::string::npos);
  CHECK(qf_run_float(ctx, x.data(), -3, y.data(), err, sizeof err) == QF_ERR_ARGUMENT);
  CHECK(qf_run_float(ctx, x.data(), 1 << 30, y.data(), err, sizeof err) == QF_ERR_ARGUMENT);
  CHECK(qf_run_float(ctx, nullptr, 2, y.data(), err, sizeof err) == QF_ERR_ARGUMENT);
  CHECK(qf_run_float(ctx, x.data(), 2, nullptr, err, sizeof err) == QF_ERR_ARGUMENT);
  CHECK(qf_run_u8(nullptr, nullptr, 2, y.data(), err, sizeof err) == QF_ERR_ARGUMENT);
  CHECK(y[0] == -7.f);  // nothing written on error
  // A short message buffer gets a truncated, terminated message; none at all is fine.
  char tiny[8];
  CHECK(qf_run_float(ctx, x.data(), 0, y.data(), tiny, sizeof tiny) == QF_ERR_ARGUMENT);
  CHECK(std::string(tiny) == "qforge:");
  CHECK(qf_run_float(ctx, x.data(), 0, y.data(), nullptr, 0) == QF_ERR_ARGUMENT);
  // The context still runs.
  CHECK(qf_run_float(ctx, x.data(), 2, y.data(), err, sizeof err) == QF_OK);
  CHECK(y[0] != -7.f);
  CHECK(std::string(qf_status_name(QF_ERR_BUSY)) == "QF_ERR_BUSY");
  CHECK(std::string(qf_status_name(99)) == "unknown");
  CHECK(qf_api_version() == QF_API_VERSION);
  int c = 5, h = 5, w = 5;
  qf_model_input_shape(nullptr, &c, &h, &w);
  CHECK((c == 0 && h == 0 && w == 0));
  CHECK(qf_model_num_classes(nullptr) == 0);
  qf_context_free(ctx);
  qf_model_free(m);
}

TEST_CASE("C API: 8 threads on one model, each with its own context, give the serial bytes") {
  set_num_threads(2);
  TempDir d;
  save_int8_model(d / "m.qfm", testing::tiny_int8_graph(TinyArch::kMobileNetV2, 1, 28, 17));
  char err[512];
  qf_model* m = nullptr;
  REQUIRE(qf_model_load((d / "m.qfm").c_str(), &m, err, sizeof err) == QF_OK);
  constexpr int kThreads = 8, kRounds = 3, kN = 2;
  std::vector<std::vector<uint8_t>> px(kThreads, std::vector<uint8_t>(kN * 784));
  std::vector<std::vector<float>> want(kThreads, std::vector<float>(kN * 10));
  std::mt19937_64 rng(18);
  {
    qf_context* ctx = nullptr;
    REQUIRE(qf_context_create(m, &ctx, err, sizeof err) == QF_OK);
    for (int t = 0; t < kThreads; ++t) {
      for (auto& p : px[t]) p = static_cast<uint8_t>(rng());
      REQUIRE(qf_run_u8(ctx, px[t].data(), kN, want[t].data(), err, sizeof err) == QF_OK);
    }
    qf_context_free(ctx);
  }
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      char e[256];
      qf_context* ctx = nullptr;
      if (qf_context_create(m, &ctx, e, sizeof e) != QF_OK) {
        ++failed;
        return;
      }
      std::vector<float> y(kN * 10);
      for (int r = 0; r < kRounds; ++r) {
        if (qf_run_u8(ctx, px[t].data(), kN, y.data(), e, sizeof e) != QF_OK) ++failed;
        wrong += std::memcmp(y.data(), want[t].data(), y.size() * sizeof(float)) != 0;
      }
      qf_context_free(ctx);
    });
  for (auto& th : threads) th.join();
  CHECK(failed == 0);
  CHECK(wrong == 0);

  // One context used by two threads at once: the second call is refused, not raced.
  qf_context* shared = nullptr;
  REQUIRE(qf_context_create(m, &shared, err, sizeof err) == QF_OK);
  std::atomic<int> busy{0}, ok{0};
  std::vector<std::thread> pair;
  for (int t = 0; t < 2; ++t)
    pair.emplace_back([&, t] {
      char e[256];
      std::vector<float> y(kN * 10);
      for (int r = 0; r < 20; ++r) {
        const qf_status s = qf_run_u8(shared, px[t].data(), kN, y.data(), e, sizeof e);
        if (s == QF_ERR_BUSY) {
          ++busy;
          if (std::string(e).find("running another call") == std::string::npos) ++wrong;
        } else if (s == QF_OK) {
          ++ok;
          wrong += std::memcmp(y.data(), want[t].data(), y.size() * sizeof(float)) != 0;
        }
      }
    });
  for (auto& th : pair) th.join();
  CHECK(busy + ok == 40);
  CHECK(ok > 0);
  CHECK(wrong == 0);
  qf_context_free(shared);
  qf_model_free(m);
  set_num_threads(1);
}

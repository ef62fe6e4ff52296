// qforge bench: float32 (and int8) speed on random weights and data.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "apps/commands.h"
#include "apps/timing.h"
#include "core/autograd.h"
#include "core/blas.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/ops/loss.h"
#include "core/threads.h"
#include "nn/resnet.h"
#include "optim/sgd.h"

namespace qforge::apps {
namespace {

struct BenchArgs {
  std::string arch = "resnet18", stem = "imagenet", input = "3x224x224";
  int batch = 1, threads = 0, runs = 10, warmup = 3, num_classes = 0;
  bool train = false, json = false;
};

std::vector<int> parse_input(const std::string& s) {
  std::vector<int> v;
  size_t p = 0;
  while (p <= s.size()) {
    size_t q = s.find('x', p);
    std::string part = s.substr(p, q == std::string::npos ? std::string::npos : q - p);
    try {
      v.push_back(std::stoi(part));
    } catch (...) {
      throw Error("--input: expected CxHxW such as 3x224x224, got \"" + s + "\"");
    }
    if (q == std::string::npos) break;
    p = q + 1;
  }
  QF_CHECK(v.size() == 3 && v[0] > 0 && v[1] > 0 && v[2] > 0, "--input: expected CxHxW such as 3x224x224, got \"" + s + "\"");
  return v;
}

void run_bench(const BenchArgs& a) {
  QF_CHECK(a.arch == "resnet18", "bench: unknown --arch \"" + a.arch + "\" (resnet18)");
  set_num_threads(a.threads);
  auto in = parse_input(a.input);
  int classes = a.num_classes > 0 ? a.num_classes : (a.stem == "small" ? 10 : 1000);
  auto net = nn::resnet18({in[0], classes, a.stem, 1.0, 0});
  std::mt19937_64 rng(0);
  Tensor x = Tensor::randn({a.batch, in[0], in[1], in[2]}, rng);
  nlohmann::json out = {{"arch", a.arch},   {"stem", a.stem},         {"input", a.input},
                        {"batch", a.batch}, {"threads", num_threads()}, {"isa", cpu_summary()},
                        {"blas_core", blas_core_name()}};
  if (a.train) {
    std::vector<int32_t> labels(a.batch);
    for (int i = 0; i < a.batch; ++i) labels[i] = static_cast<int32_t>(rng() % classes);
    net->train();
    optim::SGD opt(net->named_parameters(), {0.01f, 0.9f, 0.f, false, true});
    double s = median_seconds(
        [&] {
          opt.zero_grad();
          cross_entropy((*net)(x), labels).backward();
          opt.step();
        },
        std::max(3, a.runs / 2), a.warmup);
    out["train_step_ms"] = s * 1e3;
    out["train_img_per_s"] = a.batch / s;
  } else {
    net->eval();
    NoGradGuard g;
    double s = median_seconds([&] { (*net)(x); }, a.runs, a.warmup);
    out["fp32_ms"] = s * 1e3;
    out["fp32_img_per_s"] = a.batch / s;
  }
  if (a.json) {
    std::printf("%s\n", out.dump(1).c_str());
  } else {
    for (auto& [k, v] : out.items()) std::printf("%-18s %s\n", k.c_str(), v.dump().c_str());
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* c = app.add_subcommand("bench", "Benchmark speed on random weights and data");
  c->add_option("--arch", a->arch, "Architecture")->capture_default_str();
  c->add_option("--stem", a->stem, "ResNet stem: imagenet or small")->capture_default_str();
  c->add_option("--input", a->input, "Input CxHxW")->capture_default_str();
  c->add_option("--batch", a->batch, "Batch size")->capture_default_str();
  c->add_option("--classes", a->num_classes, "Number of classes (default 10 for small stem, else 1000)");
  c->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  c->add_option("--runs", a->runs, "Timed runs (median is reported)")->capture_default_str();
  c->add_option("--warmup", a->warmup, "Untimed warm-up runs")->capture_default_str();
  c->add_flag("--train", a->train, "Time a training step (forward, backward, SGD) instead of inference");
  c->add_flag("--json", a->json, "Print one JSON object");
  c->callback([a] { run_bench(*a); });
}

}  // namespace qforge::apps

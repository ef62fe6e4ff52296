// MobileNetV2 in int8: a tiny prepared model (QAT and PTQ) converts to an int8 graph with depthwise
// convs, ReLU6 clamps and ReLU-less residual joins, which runs on every ISA level to the same
// bytes and agrees with the fake-quant simulation; grouped layers one at a time; the .qfm round trip.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops/loss.h"
#include "core/threads.h"
#include "nn/batchnorm2d.h"
#include "nn/containers.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/mobilenet_v2.h"
#include "nn/safetensors.h"
#include "optim/sgd.h"
#include "quant/convert.h"
#include "quant/fuse.h"
#include "quant/fused.h"
#include "quant/prepare.h"
#include "quant/runtime.h"

using namespace qforge;
using namespace qforge::quant;

namespace {

constexpr int kClasses = 10;
const std::vector<int> kInput = {1, 28, 28};

// width 0.25: 8..80 channels in 17 blocks (10 with a residual join), last_channel 1280; the small stem
// keeps 28 px through features.2, then 14, 7, 4.
std::shared_ptr<nn::MobileNetV2> tiny_mobilenet(uint64_t seed) {
  nn::MobileNetV2Config c;
  c.in_channels = 1;
  c.num_classes = kClasses;
  c.width_mult = 0.25;
  c.stem = "small";
  c.seed = seed;
  return nn::mobilenet_v2(c);
}

// A learnable problem so that the logits have margins: a bright 7x7 square in one of four quadrants
// (the class, 0..3 of 10) over noise.
void quadrant_batch(int n, std::mt19937_64& rng, Tensor& x, std::vector<int32_t>& y) {
  x = Tensor::randn({n, 1, 28, 28}, rng, 0.3f);
  y.resize(n);
  for (int i = 0; i < n; ++i) {
    y[i] = static_cast<int32_t>(rng() % 4);
    const int oy = (y[i] / 2) * 14 + static_cast<int>(rng() % 7), ox = (y[i] % 2) * 14 + static_cast<int>(rng() % 7);
    for (int a = 0; a < 7; ++a)
      for (int b = 0; b < 7; ++b) x.data()[int64_t(i) * 784 + (oy + a) * 28 + ox + b] += 2.f;
  }
}

Tensor forward_eval(nn::Module& m, const Tensor& x) {
  NoGradGuard g;
  m.eval();
  return m(x);
}

float output_step(nn::Module& net) {
  auto fq = std::dynamic_pointer_cast<FakeQuantize>(net.child("classifier")->child("1")->post());
  REQUIRE(fq);
  return fq->qparams()[0].scale;
}

int argmax_row(const Tensor& t, int i) {
  const int k = static_cast<int>(t.size(1));
  return static_cast<int>(std::max_element(t.data() + int64_t(i) * k, t.data() + int64_t(i + 1) * k) -
                          (t.data() + int64_t(i) * k));
}

int residual_blocks(nn::Module& net) {
  int n = 0;
  for (auto& [_, m] : net.named_modules())
    if (auto b = std::dynamic_pointer_cast<nn::InvertedResidual>(m)) n += b->residual();
  return n;
}

// A few SGD steps on the quadrant problem, in whatever mode (float or QAT) the model is in.
void train_steps(nn::Module& net, int steps, std::mt19937_64& rng) {
  net.train();
  optim::SGD opt(net.named_parameters(), {0.05f, 0.9f, 0.f, false, true});
  Tensor xb;
  std::vector<int32_t> yb;
  for (int step = 0; step < steps; ++step) {
    quadrant_batch(16, rng, xb, yb);
    opt.zero_grad();
    Tensor loss = cross_entropy(net(xb), yb);
    loss.backward();
    opt.step();
  }
}

int count_ops(const Int8Graph& g, OpKind op, int groups = 0) {
  int n = 0;
  for (auto& nd : g.nodes)
    n += nd.op == op && (groups == 0 || (op == OpKind::kQConv2d && (groups < 0 ? nd.conv.geometry.groups > 1
                                                                               : nd.conv.geometry.groups == groups)));
  return n;
}

// What the comparison found, for one ISA level.
struct Agreement {
  double max_steps = 0, median_steps = 0;
  int top1 = 0;
};

// Runs g on every level: the same bytes everywhere, fused residual joins == the ops in turn (taps),
// and the agreement with the simulation `sim` in output steps.
Agreement check_every_isa(const Int8Graph& g, const Tensor& x, const Tensor& sim, float step) {
  Agreement worst;
  Tensor y_scalar;
  worst.top1 = static_cast<int>(x.size(0));
  for (Isa isa : table_isas()) {
    CAPTURE(std::string(isa_name(isa)));
    Int8Runtime rt(g, isa);
    // MobileNetV2's residual joins have no ReLU: every one still runs inside its projection conv.
    CHECK(rt.fused_adds() == count_ops(g, OpKind::kQAdd));
    Tensor y = rt.run(x);
    REQUIRE(y.shape() == sim.shape());
    std::map<std::string, Tensor> taps;
    Tensor y_unfused = rt.run(x, &taps);
    CHECK(std::memcmp(y.data(), y_unfused.data(), y.numel() * sizeof(float)) == 0);
    if (isa == Isa::scalar) {
      y_scalar = y;
      // The per-layer profile (bench --profile): off by default, the same bytes when on, one row per
      // node that runs on its own (a residual join fused into its conv is the conv's row), each call timed.
      CHECK(rt.profile().empty());
      rt.set_profiling(true);
      Tensor yp = rt.run(x);
      rt.run(x);
      CHECK(std::memcmp(y.data(), yp.data(), y.numel() * sizeof(float)) == 0);
      const auto prof = rt.profile();
      CHECK(prof.size() == g.nodes.size() - count_ops(g, OpKind::kQAdd));
      int joined = 0;
      for (const auto& t : prof) {
        CHECK(t.calls.size() == 2);
        CHECK(t.seconds >= *std::min_element(t.calls.begin(), t.calls.end()));
        CHECK(t.seconds <= *std::max_element(t.calls.begin(), t.calls.end()));
        joined += t.op == "QConv2d+QAdd";
      }
      CHECK(joined == count_ops(g, OpKind::kQAdd));
      rt.set_profiling(false);
      CHECK(rt.profile().empty());
    }
    REQUIRE(y_scalar.defined());
    CHECK(std::memcmp(y.data(), y_scalar.data(), y.numel() * sizeof(float)) == 0);
    std::vector<double> d(y.numel());
    for (int64_t i = 0; i < y.numel(); ++i) d[i] = std::abs(y.data()[i] - sim.data()[i]) / step;
    std::sort(d.begin(), d.end());
    worst.max_steps = std::max(worst.max_steps, d.back());
    worst.median_steps = std::max(worst.median_steps, d[d.size() / 2]);
    int agree = 0;
    for (int i = 0; i < y.size(0); ++i) agree += argmax_row(y, i) == argmax_row(sim, i);
    worst.top1 = std::min(worst.top1, agree);
  }
  return worst;
}

// Layer by layer, each on the same input: the int8 graph's values (taps, dequantized: exactly the
// fake-quantized values of the simulation's grid) are fed to the simulation's module of each conv and
// join, whose output must lie within one step (of that value's scale) of the int8 node's, element for
// element. Unlike the logits, this does not let one-step differences compound through 50 layers.
struct LayerAgreement {
  int layers = 0;
  int64_t elems = 0, exact = 0;
  double max_steps = 0;
  std::string worst;
};

LayerAgreement check_layers(nn::Module& net, const Int8Graph& g, const Tensor& x, Isa isa) {
  std::map<std::string, nn::ModulePtr> mods;
  for (auto& [n, m] : net.named_modules()) mods[n] = m;
  std::map<std::string, Tensor> taps;
  Int8Runtime(g, isa).run(x, &taps);
  std::vector<std::string> writer(g.values.size());
  for (auto& nd : g.nodes) writer[nd.output] = nd.name;
  NoGradGuard ng;
  net.eval();
  LayerAgreement r;
  for (auto& nd : g.nodes) {
    if (nd.op != OpKind::kQConv2d && nd.op != OpKind::kQAdd) continue;
    CAPTURE(nd.name);
    REQUIRE(mods.count(nd.name));
    const Tensor& in0 = taps.at(writer[nd.inputs[0]]);
    const Tensor sim = nd.op == OpKind::kQAdd
                           ? (*std::static_pointer_cast<nn::Add>(mods[nd.name]))(in0, taps.at(writer[nd.inputs[1]]))
                           : (*mods[nd.name])(in0);
    const Tensor& got = taps.at(nd.name);
    REQUIRE(got.numel() == sim.numel());
    const double step = g.values[nd.output].qp.scale;
    ++r.layers;
    for (int64_t i = 0; i < got.numel(); ++i) {
      const double d = std::abs(double(got.data()[i]) - sim.data()[i]) / step;
      r.exact += d < 1e-3;
      if (d > r.max_steps) r.max_steps = d, r.worst = nd.name;
    }
    r.elems += got.numel();
  }
  return r;
}

void check_every_layer(nn::Module& net, const Int8Graph& g, const Tensor& x) {
  for (Isa isa : table_isas()) {
    CAPTURE(std::string(isa_name(isa)));
    const LayerAgreement l = check_layers(net, g, x, isa);
    MESSAGE(std::string(isa_name(isa)) << ", layer by layer (" << l.layers
                                       << " convs and joins, each on the int8 input): " << l.exact << " of " << l.elems
                                       << " elements exact, worst " << l.max_steps << " steps at " << l.worst);
    CHECK(l.layers == count_ops(g, OpKind::kQConv2d) + count_ops(g, OpKind::kQAdd));
    CHECK(l.max_steps <= 1.0001);
    CHECK(l.exact >= l.elems * 0.99);  // a step off is a rounding tie broken the other way: rare
  }
}

std::string temp_dir(const char* what) {
  auto dir =
      std::filesystem::temp_directory_path() / (std::string("qforge_") + what + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace

TEST_CASE("MobileNetV2 QAT -> int8: every ISA the same bytes, within steps of the simulation, .qfm round trip") {
  set_num_threads(2);
  auto net = tiny_mobilenet(1);
  net->train();
  fuse_modules(*net, true, kInput);
  prepare_qat(*net, QConfigMapping{});
  std::mt19937_64 rng(2);
  train_steps(*net, 12, rng);
  Tensor x;
  std::vector<int32_t> labels;
  quadrant_batch(32, rng, x, labels);
  Tensor sim = forward_eval(*net, x);
  const float step = output_step(*net);

  Int8Graph g = convert(*net, kInput);
  g.classes.assign(kClasses, "c");
  g.config = nlohmann::json::object();
  // 17 blocks: 17 depthwise convs (stride 1 and 2) on the depthwise kernels; 12 ReLU-less joins (the
  // small stem keeps features.2 at stride 1, 8 -> 8 channels: a join there too).
  CHECK(count_ops(g, OpKind::kQConv2d, -1) == 17);
  CHECK(residual_blocks(*net) == 12);
  CHECK(count_ops(g, OpKind::kQAdd) == 12);
  for (auto& nd : g.nodes) {
    if (nd.op == OpKind::kQAdd) CHECK(nd.act == Act::kNone);
    if (nd.op == OpKind::kQConv2d && nd.conv.geometry.groups > 1) CHECK(nd.act == Act::kReLU6);
  }
  CHECK(g.format_version() == 2);

  const Agreement a = check_every_isa(g, x, sim, step);
  MESSAGE("MobileNetV2 QAT int8 vs simulation: max " << a.max_steps << " steps, median " << a.median_steps
                                                     << ", top-1 agreement " << a.top1 << "/32");
  // 53 quantized layers: a one-step rounding difference in one layer can carry into the next; the
  // stated bounds, 3 steps at most and 1 typically, have margin over what was measured (1 step at
  // most, median 0, 32/32 agreement when written).
  CHECK(a.median_steps <= 1.0001);
  CHECK(a.max_steps <= 3.0001);
  CHECK(a.top1 >= 31);
  check_every_layer(*net, g, x);

  // The .qfm round trip: identical logits, the graph written back as read, in format version 2.
  const std::string dir = temp_dir("mbv2qfm");
  const std::string path = dir + "/m.qfm";
  save_int8_model(path, g);
  Int8Graph loaded = load_int8_model(path);
  CHECK(loaded.to_json().dump() == nn::read_safetensors(path).meta("graph"));
  CHECK(loaded.to_json()["version"] == 2);
  for (Isa isa : table_isas()) {
    Tensor y1 = Int8Runtime(g, isa).run(x), y2 = Int8Runtime(loaded, isa).run(x);
    CHECK(std::memcmp(y1.data(), y2.data(), y1.numel() * sizeof(float)) == 0);
  }
  // A version-1 reader ignores groups; this one refuses a grouped file that claims version 1.
  std::string bytes;
  {
    std::ifstream f(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  const std::string v2 = "\\\"version\\\":2";
  auto pos = bytes.find(v2);
  REQUIRE(pos != std::string::npos);
  std::string as_v1 = bytes, as_v3 = bytes;
  as_v1[pos + v2.size() - 1] = '1';
  as_v3[pos + v2.size() - 1] = '3';
  std::ofstream(dir + "/v1.qfm", std::ios::binary) << as_v1;
  std::ofstream(dir + "/v3.qfm", std::ios::binary) << as_v3;
  CHECK_THROWS_WITH_AS(load_int8_model(dir + "/v1.qfm"), doctest::Contains("attribute 'groups' in a version-1 file"),
                       Error);
  CHECK_THROWS_WITH_AS(load_int8_model(dir + "/v3.qfm"), doctest::Contains("reads versions 1 to 2"), Error);
  std::filesystem::remove_all(dir);
  set_num_threads(1);
}

TEST_CASE("MobileNetV2 PTQ -> int8: every ISA the same bytes, within steps of the simulation") {
  set_num_threads(2);
  // PTQ starts from a trained float model (an untrained one has near-tied logits, where one step decides top-1).
  auto net = tiny_mobilenet(3);
  std::mt19937_64 rng(4);
  train_steps(*net, 12, rng);
  net->eval();
  fuse_modules(*net, false, kInput);
  QConfigMapping qc;
  qc.global.activation.kind = "minmax";
  prepare(*net, qc);
  int left = 4;
  CHECK(calibrate(
            *net,
            [&](Tensor& xb) {
              std::vector<int32_t> unused;
              quadrant_batch(8, rng, xb, unused);
              return left-- > 0;
            },
            4) == 4);
  Tensor x;
  std::vector<int32_t> labels;
  quadrant_batch(32, rng, x, labels);
  Tensor sim = forward_eval(*net, x);
  Int8Graph g = convert(*net, kInput);
  CHECK(count_ops(g, OpKind::kQConv2d, -1) == 17);
  const Agreement a = check_every_isa(g, x, sim, output_step(*net));
  MESSAGE("MobileNetV2 PTQ int8 vs simulation: max " << a.max_steps << " steps, median " << a.median_steps
                                                     << ", top-1 agreement " << a.top1 << "/32");
  CHECK(a.median_steps <= 1.0001);
  CHECK(a.max_steps <= 3.0001);
  CHECK(a.top1 >= 31);
  check_every_layer(*net, g, x);
  set_num_threads(1);
}

TEST_CASE("convert: depthwise and grouped convs, one layer each, within one step of the simulation") {
  set_num_threads(2);
  std::mt19937_64 rng(30);
  struct Case {
    nn::Conv2dOptions conv;
    std::vector<int> input;
    ConvPath path;
  };
  auto opts = [](int in, int out, int k, int stride, int pad, int groups) {
    nn::Conv2dOptions o{in, out, k, stride, pad};
    o.geometry.groups = groups;
    return o;
  };
  const std::vector<Case> cases = {
      {opts(24, 24, 3, 1, 1, 24), {24, 9, 9}, ConvPath::kDepthwise3x3},
      {opts(40, 40, 3, 2, 1, 40), {40, 10, 11}, ConvPath::kDepthwise3x3},
      {opts(8, 8, 3, 1, 0, 8), {8, 7, 6}, ConvPath::kDepthwise3x3},
      {opts(16, 16, 5, 1, 2, 16), {16, 8, 8}, ConvPath::kGroupedRef},  // depthwise 5x5
      {opts(12, 12, 3, 1, 2, 12), {12, 6, 6}, ConvPath::kGroupedRef},  // padding 2
      {opts(12, 24, 3, 1, 1, 12), {12, 6, 6}, ConvPath::kGroupedRef},  // channel multiplier 2
      {opts(8, 12, 3, 2, 1, 4), {8, 9, 9}, ConvPath::kGroupedRef},     // 4 groups
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    CAPTURE(ci);
    const Case& c = cases[ci];
    auto net = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
        std::make_shared<nn::Conv2d>(c.conv, rng), std::make_shared<nn::BatchNorm2d>(c.conv.out_channels),
        std::make_shared<nn::ReLU6>()});
    // Non-trivial BN, so folding a grouped weight is tested.
    auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>(net->child("1"));
    std::uniform_real_distribution<float> u(0.5f, 1.5f), m(-0.3f, 0.3f);
    for (int i = 0; i < bn->channels(); ++i) {
      bn->weight.data()[i] = u(rng);
      bn->bias.data()[i] = m(rng);
      bn->running_mean.data()[i] = m(rng);
      bn->running_var.data()[i] = u(rng);
    }
    net->eval();
    fuse_modules(*net, false, c.input);
    QConfigMapping qc;
    qc.global.activation.kind = "minmax";
    prepare(*net, qc);
    const auto& in = c.input;
    int left = 3;
    calibrate(
        *net,
        [&](Tensor& x) {
          x = Tensor::randn({4, in[0], in[1], in[2]}, rng);
          return left-- > 0;
        },
        3);
    Tensor x = Tensor::randn({3, in[0], in[1], in[2]}, rng);
    Tensor sim = forward_eval(*net, x);
    auto fq = std::dynamic_pointer_cast<FakeQuantize>(net->child("0")->post());
    REQUIRE(fq);
    const float step = fq->qparams()[0].scale;
    Int8Graph g = convert(*net, in);
    REQUIRE(count_ops(g, OpKind::kQConv2d, c.conv.geometry.groups) == 1);
    // The weight is stored as PyTorch has it, (OC, C/groups, KH, KW).
    CHECK(g.tensors.at("0.weight").shape ==
          Shape{c.conv.out_channels, c.conv.in_channels / c.conv.geometry.groups, c.conv.kernel, c.conv.kernel});
    // The path the drivers pick for it.
    QConvParams qp;
    qp.geometry() = c.conv.geometry;
    qp.C = c.conv.in_channels, qp.OC = c.conv.out_channels, qp.KH = qp.KW = c.conv.kernel;
    CHECK(conv_path(qp) == c.path);
    std::vector<float> y0;
    for (Isa isa : table_isas()) {
      CAPTURE(std::string(isa_name(isa)));
      Tensor y = Int8Runtime(g, isa).run(x);
      Tensor s = sim.reshape({sim.size(0), -1});
      double d = 0;
      for (int64_t i = 0; i < y.numel(); ++i) d = std::max(d, double(std::abs(y.data()[i] - s.data()[i])));
      CHECK(d <= step * 1.0001);
      if (y0.empty()) y0.assign(y.data(), y.data() + y.numel());
      CHECK(std::equal(y0.begin(), y0.end(), y.data()));
    }
  }
  set_num_threads(1);
}

TEST_CASE("convert: the converter table names the supported module types for one it cannot convert") {
  auto net = tiny_mobilenet(5);
  net->eval();
  // Not fused / prepared: the stem's first conv is a bare Conv2d.
  try {
    convert(*net, kInput);
    FAIL("convert accepted an unprepared model");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("'features.0.0' (Conv2d)") != std::string::npos);
    for (const char* t : {"ConvBnAct", "LinearAct", "DynamicQuantLinear", "Add", "MaxPool2d", "AdaptiveAvgPool2d",
                          "Identity", "Flatten", "Dropout"})
      CHECK_MESSAGE(msg.find(t) != std::string::npos, t);
  }
}

TEST_CASE("int8 graph: groups are validated against the channels and the weight's shape") {
  std::mt19937_64 rng(40);
  nn::Conv2dOptions o{24, 24, 3, 1, 1};
  o.geometry.groups = 24;
  auto net = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{std::make_shared<nn::Conv2d>(o, rng)});
  net->eval();
  fuse_modules(*net, false, {24, 5, 5});
  prepare(*net, QConfigMapping{});
  int left = 1;
  calibrate(
      *net,
      [&](Tensor& x) {
        x = Tensor::randn({2, 24, 5, 5}, rng);
        return left-- > 0;
      },
      1);
  const Int8Graph g = convert(*net, {24, 5, 5});
  validate_graph(g, "ok");
  auto conv_node = [](Int8Graph& h) -> GraphNode& {
    for (auto& nd : h.nodes)
      if (nd.op == OpKind::kQConv2d) return nd;
    FAIL("no conv");
    throw 0;
  };
  Int8Graph bad = g;
  conv_node(bad).conv.geometry.groups = 5;
  CHECK_THROWS_WITH_AS(validate_graph(bad, "g5"), doctest::Contains("must be multiples of groups 5"), Error);
  bad = g;
  conv_node(bad).conv.geometry.groups = 12;  // divides 24, but the weight is (24, 1, 3, 3)
  CHECK_THROWS_WITH_AS(validate_graph(bad, "g12"), doctest::Contains("the attributes say"), Error);
  bad = g;
  conv_node(bad).conv.geometry.groups = 48;
  CHECK_THROWS_WITH_AS(validate_graph(bad, "g48"), doctest::Contains("'groups' = 48 is out of range"), Error);
  // An ungrouped graph is written as version 1, a grouped one as version 2.
  CHECK(g.format_version() == 2);
  CHECK(g.to_json()["nodes"][1]["attrs"]["groups"] == 24);
  Int8Graph plain = g;
  conv_node(plain).conv.geometry.groups = 1;
  CHECK(plain.format_version() == 1);
  CHECK_FALSE(plain.to_json()["nodes"][1]["attrs"].contains("groups"));
}

// Timing (skipped by default; -tc="bench*" --no-skip): MobileNetV2 1.0 at 224x224, PTQ-converted,
// int8 on every level against the float model, batch 1, the pool's threads.
TEST_CASE("bench MobileNetV2 int8 224x224 batch 1" * doctest::skip()) {
  set_num_threads(2);
  nn::MobileNetV2Config c;
  c.num_classes = 1000;
  auto net = nn::mobilenet_v2(c);
  net->eval();
  std::mt19937_64 rng(50);
  Tensor x = Tensor::randn({1, 3, 224, 224}, rng);
  auto best_ms = [](const std::function<void()>& f, int runs) {
    f();
    double best = 1e30;
    for (int i = 0; i < runs; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  const double float_ms = best_ms([&] { forward_eval(*net, x); }, 10);
  fuse_modules(*net, false, {3, 224, 224});
  QConfigMapping qc;
  qc.global.activation.kind = "minmax";
  prepare(*net, qc);
  int left = 1;
  calibrate(
      *net,
      [&](Tensor& xb) {
        xb = Tensor::randn({2, 3, 224, 224}, rng);
        return left-- > 0;
      },
      1);
  const Int8Graph g = convert(*net, {3, 224, 224});
  std::printf("\nMobileNetV2 1.0 224x224 batch 1, %d threads: float %.2f ms\n", num_threads(), float_ms);
  for (Isa isa : table_isas()) {
    Int8Runtime rt(g, isa);
    const double ms = best_ms([&] { rt.run(x); }, isa == Isa::scalar ? 2 : 20);
    std::printf("  int8 %-10s %8.2f ms  (weights %.2f MB, peak %.2f MB)\n", isa_name(isa), ms, rt.weight_bytes() / 1e6,
                rt.peak_bytes() / 1e6);
  }
  set_num_threads(1);
}

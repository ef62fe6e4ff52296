// Fusion, prepare, QAT, convert and the int8 runtime on small models.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops/loss.h"
#include "core/threads.h"
#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/resnet.h"
#include "optim/sgd.h"
#include "quant/convert.h"
#include "quant/dynamic.h"
#include "quant/fuse.h"
#include "quant/fused.h"
#include "quant/prepare.h"
#include "quant/runtime.h"
#include "tiny_problem.h"
#include "tensor_compare.h"

using namespace qforge;
using qforge::testing::max_abs_diff;
using namespace qforge::quant;

namespace {

std::shared_ptr<nn::ResNet> tiny_resnet(uint64_t seed, double width = 0.125) {
  return nn::resnet18({1, 10, "small", width, seed});
}

// Makes BN statistics non-trivial so folding is really tested.
void randomize_bn(nn::Module& m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.5f, 1.5f), c(-0.3f, 0.3f);
  for (auto& [_, mod] : m.named_modules())
    if (auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>(mod))
      for (int i = 0; i < bn->channels(); ++i) {
        bn->weight.data()[i] = u(rng);
        bn->bias.data()[i] = c(rng);
        bn->running_mean.data()[i] = c(rng);
        bn->running_var.data()[i] = u(rng);
      }
}

Tensor forward_eval(nn::Module& m, const Tensor& x) {
  NoGradGuard g;
  m.eval();
  return m(x);
}

QConfigMapping ptq_qconfig() {
  QConfigMapping qc;
  qc.global.activation.kind = "minmax";
  return qc;
}

std::function<bool(Tensor&)> random_batches(int n, int batch, uint64_t seed) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  auto left = std::make_shared<int>(n);
  return [=](Tensor& x) {
    if ((*left)-- <= 0) return false;
    x = Tensor::randn({batch, 1, 12, 12}, *rng);
    return true;
  };
}

}  // namespace

TEST_CASE("fusion: folded Conv+BN+ReLU equals conv, then BN, then ReLU in eval mode") {
  auto ref = tiny_resnet(1);
  randomize_bn(*ref, 2);
  auto fused = tiny_resnet(1);
  randomize_bn(*fused, 2);
  fused->eval();
  int n = fuse_modules(*fused, false, {1, 12, 12}).fused_modules();
  CHECK(n == 21);  // 20 convs (incl. 3 downsample) + fc
  CHECK(fused->child("conv1")->type() == "ConvReLU2d");
  CHECK(fused->child("bn1")->type() == "Identity");
  std::mt19937_64 rng(3);
  Tensor x = Tensor::randn({2, 1, 12, 12}, rng);
  Tensor a = forward_eval(*ref, x), b = forward_eval(*fused, x);
  CHECK(max_abs_diff(a, b) < 1e-4 * (1 + std::abs(a.data()[0])));
  // Fusing for evaluation needs eval mode.
  auto t = tiny_resnet(1);
  CHECK_THROWS_WITH_AS(fuse_modules(*t, false, {1, 12, 12}), doctest::Contains("eval()"), Error);
}

TEST_CASE("QAT ConvBn: with fake-quant off, training and eval forwards match the unfused model") {
  auto ref = tiny_resnet(4);
  randomize_bn(*ref, 5);
  auto q = tiny_resnet(4);
  randomize_bn(*q, 5);
  q->train();
  fuse_modules(*q, true, {1, 12, 12});
  CHECK(q->child("conv1")->type() == "ConvBnReLU2d");
  prepare_qat(*q, ptq_qconfig());
  set_fake_quant(*q, false);
  std::mt19937_64 rng(6);
  Tensor x = Tensor::randn({4, 1, 12, 12}, rng);
  ref->train();
  Tensor a = (*ref)(x), b = (*q)(x);  // batch statistics
  CHECK(max_abs_diff(a, b) < 1e-3);
  // The running statistics moved the same way.
  auto rm_ref = std::dynamic_pointer_cast<nn::BatchNorm2d>(ref->child("bn1"))->running_mean;
  auto rm_q = std::dynamic_pointer_cast<ConvBnAct>(q->child("conv1"))->bn->running_mean;
  CHECK(max_abs_diff(rm_ref, rm_q) < 1e-5);
  CHECK(max_abs_diff(forward_eval(*ref, x), forward_eval(*q, x)) < 1e-3);
  // prepare_qat needs training mode.
  auto t = tiny_resnet(4);
  t->eval();
  fuse_modules(*t, false, {1, 12, 12});
  CHECK_THROWS_WITH_AS(prepare_qat(*t, ptq_qconfig()), doctest::Contains("training mode"), Error);
}

TEST_CASE("evaluation never changes a prepared model") {
  auto q = tiny_resnet(7);
  q->train();
  fuse_modules(*q, true, {1, 12, 12});
  prepare_qat(*q, ptq_qconfig());
  std::mt19937_64 rng(8);
  (*q)(Tensor::randn({4, 1, 12, 12}, rng));  // one training forward: observers initialised
  std::map<std::string, std::vector<float>> before;
  for (auto& [n, t] : q->state_dict()) before[n] = std::vector<float>(t.data(), t.data() + t.numel());
  forward_eval(*q, Tensor::randn({4, 1, 12, 12}, rng, 5.f));
  for (auto& [n, t] : q->state_dict()) {
    CAPTURE(n);
    CHECK(std::equal(before[n].begin(), before[n].end(), t.data()));
  }
}

TEST_CASE("a prepared tiny model learns by QAT") {
  std::mt19937_64 rng(9);
  const int n = 64;
  auto [x, y] = testing::quadrant_problem(n, rng);
  auto net = testing::tiny_cnn(rng);
  net->train();
  fuse_modules(*net, true, {1, 8, 8});
  QConfigMapping qc;
  prepare_qat(*net, qc);
  CHECK(prepare_stats(*net).weight_points == 2);
  optim::SGD opt(net->named_parameters(), {0.1f, 0.9f, 0.f, false, true});
  float last = 0;
  for (int step = 0; step < 80; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy((*net)(x), y);
    loss.backward();
    opt.step();
    last = loss.item();
  }
  CHECK(last < 0.05f);
  Tensor logits = forward_eval(*net, x);
  int correct = 0;
  for (int i = 0; i < n; ++i) {
    int best = 0;
    for (int k = 1; k < 4; ++k)
      if (logits.data()[i * 4 + k] > logits.data()[i * 4 + best]) best = k;
    correct += best == y[i];
  }
  CHECK(correct == n);

  // Converted, the Sequential (with its Flatten of a 4x4 map) gives the simulation's answers.
  Int8Graph g = convert(*net, {1, 8, 8});
  Int8Runtime rt(g);
  Tensor z = rt.run(x);
  REQUIRE(z.shape() == logits.shape());
  auto out_fq = std::dynamic_pointer_cast<FakeQuantize>(net->child("5")->post());
  REQUIRE(out_fq);
  float step = out_fq->qparams()[0].scale;
  // Two quantized layers: the conv's rounding may differ by one step, which the linear layer can carry into a second.
  CHECK(max_abs_diff(z, logits) <= 2 * step + 1e-6);
}

TEST_CASE("convert: the int8 graph agrees with the fake-quant simulation, for every ISA") {
  set_num_threads(2);
  // Default BN statistics: a random network with random BN gains is chaotic, every one-step difference
  // doubling through the layers; folding random BN is covered by the single-layer test below.
  auto q = tiny_resnet(10, 0.25);
  q->eval();
  fuse_modules(*q, false, {1, 12, 12});
  prepare(*q, ptq_qconfig());
  CHECK(calibrate(*q, random_batches(4, 8, 12), 4) == 4);
  std::mt19937_64 rng(13);
  Tensor x = Tensor::randn({16, 1, 12, 12}, rng);
  Tensor sim = forward_eval(*q, x);
  Int8Graph g = convert(*q, {1, 12, 12});
  g.classes = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  g.config = nlohmann::json::object();
  auto out_fq = std::dynamic_pointer_cast<FakeQuantize>(std::dynamic_pointer_cast<LinearAct>(q->child("fc"))->post());
  const float step = out_fq->qparams()[0].scale;
  Tensor y_scalar;
  for (Isa isa : table_isas()) {
    CAPTURE(std::string(isa_name(isa)));
    Int8Runtime rt(g, isa);
    Tensor y = rt.run(x);
    // Without taps the residual joins run inside the convs: the same bytes as the two ops in turn
    // (taps), and as the scalar level.
    std::map<std::string, Tensor> taps;
    Tensor y_unfused = rt.run(x, &taps);
    CHECK(std::memcmp(y.data(), y_unfused.data(), y.numel() * sizeof(float)) == 0);
    if (isa == Isa::scalar) y_scalar = y;
    CHECK(std::memcmp(y.data(), y_scalar.data(), y.numel() * sizeof(float)) == 0);
    CHECK(std::memcmp(y.data(), rt.run(x).data(), y.numel() * sizeof(float)) == 0);
    // Each layer agrees within one step on the same input (tested below); through 20 layers of a random
    // network those one-step differences compound, so here: the typical (median) logit within one step,
    // and the same answers.
    std::vector<float> diff(y.numel());
    for (int64_t i = 0; i < y.numel(); ++i) diff[i] = std::abs(y.data()[i] - sim.data()[i]);
    std::nth_element(diff.begin(), diff.begin() + diff.size() / 2, diff.end());
    CHECK(diff[diff.size() / 2] <= step * 1.0001);
    int agree = 0;
    for (int i = 0; i < 16; ++i) {
      int a = 0, b = 0;
      for (int k = 1; k < 10; ++k) {
        if (y.data()[i * 10 + k] > y.data()[i * 10 + a]) a = k;
        if (sim.data()[i * 10 + k] > sim.data()[i * 10 + b]) b = k;
      }
      agree += a == b;
    }
    CHECK(agree >= 15);
    CHECK(rt.peak_bytes() > rt.weight_bytes());
  }

  // File round trip: identical outputs; truncated and corrupted files are rejected by name.
  auto dir = std::filesystem::temp_directory_path() / ("qforge_qfm_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "m.qfm").string();
  save_int8_model(path, g);
  Int8Runtime a(g), b(load_int8_model(path));
  CHECK(max_abs_diff(a.run(x), b.run(x)) == 0);
  std::string bytes;
  {
    std::ifstream f(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  std::ofstream(dir / "trunc.qfm", std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  CHECK_THROWS_WITH_AS(load_int8_model((dir / "trunc.qfm").string()), doctest::Contains("trunc.qfm"), Error);
  std::string bad = bytes;
  auto pos = bad.find("QConv2d");  // an op name inside the graph JSON
  REQUIRE(pos != std::string::npos);
  bad.replace(pos, 7, "QConvXd");
  std::ofstream(dir / "badop.qfm", std::ios::binary) << bad;
  CHECK_THROWS_WITH_AS(load_int8_model((dir / "badop.qfm").string()), doctest::Contains("QConvXd"), Error);
  // Attributes that disagree with the weights (the runtime sizes buffers from both) are rejected.
  std::string badk = bytes;
  auto kpos = badk.find("kernel\\\":3");
  REQUIRE(kpos != std::string::npos);
  badk[kpos + 9] = '5';  // the 3 of kernel\":3
  std::ofstream(dir / "badk.qfm", std::ios::binary) << badk;
  CHECK_THROWS_WITH_AS(load_int8_model((dir / "badk.qfm").string()), doctest::Contains("the attributes say"), Error);
  std::filesystem::remove_all(dir);
  set_num_threads(1);
}

TEST_CASE("convert: one layer of each kind matches the simulation within one quantization step") {
  set_num_threads(2);
  std::mt19937_64 rng(20);
  // conv+bn+relu (stride 2, padding), a residual-free pair of convs, max pool, average pool, flatten, linear.
  struct Case {
    std::vector<nn::ModulePtr> mods;
    std::vector<int> input;
  };
  std::vector<Case> cases;
  cases.push_back({{std::make_shared<nn::Conv2d>(nn::Conv2dOptions{3, 17, 3, 2, 1}, rng),
                    std::make_shared<nn::BatchNorm2d>(17), std::make_shared<nn::ReLU>()},
                   {3, 11, 9}});
  cases.push_back({{std::make_shared<nn::Conv2d>(nn::Conv2dOptions{5, 8, 1, 1, 0, 1, 1, true}, rng)}, {5, 6, 6}});
  cases.push_back(
      {{std::make_shared<nn::Conv2d>(nn::Conv2dOptions{4, 8, 3, 1, 1}, rng), std::make_shared<nn::MaxPool2d>(3, 2, 1)},
       {4, 9, 9}});
  cases.push_back(
      {{std::make_shared<nn::Conv2d>(nn::Conv2dOptions{4, 8, 3, 1, 1}, rng), std::make_shared<nn::AdaptiveAvgPool2d>()},
       {4, 7, 7}});
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    CAPTURE(ci);
    auto net = std::make_shared<nn::Sequential>(cases[ci].mods);
    randomize_bn(*net, 21);
    net->eval();
    fuse_modules(*net, false, cases[ci].input);
    prepare(*net, ptq_qconfig());
    const auto& in = cases[ci].input;
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
    // The step of the last quantized output.
    float step = 0;
    for (auto& [_, m] : net->named_modules())
      if (auto fq = std::dynamic_pointer_cast<FakeQuantize>(m->post())) step = fq->qparams()[0].scale;
    Int8Graph g = convert(*net, in);
    for (Isa isa : table_isas()) {
      CAPTURE(std::string(isa_name(isa)));
      Tensor y = Int8Runtime(g, isa).run(x);
      CHECK(max_abs_diff(y, sim.reshape({sim.size(0), -1})) <= step * 1.0001);
    }
  }
  set_num_threads(1);
}

TEST_CASE("prepare rejects skip and override names that are not modules of the model") {
  auto q = tiny_resnet(17);
  q->eval();
  fuse_modules(*q, false, {1, 12, 12});
  QConfigMapping qc;
  qc.skip.insert("layer1.0.conv");
  CHECK_THROWS_WITH_AS(prepare(*q, qc), doctest::Contains("'layer1.0.conv'"), Error);
}

TEST_CASE("convert names the module it cannot convert") {
  auto q = tiny_resnet(14);
  q->eval();
  // Not fused / prepared: the first conv is a bare Conv2d.
  CHECK_THROWS_WITH_AS(convert(*q, {1, 12, 12}), doctest::Contains("conv1"), Error);
}

TEST_CASE("dynamic quantization of Linear stays close to float") {
  std::mt19937_64 rng(15);
  nn::Linear lin(64, 10, true, rng);
  Tensor x = Tensor::randn({8, 64}, rng);
  Tensor ref = forward_eval(lin, x);
  DynamicQuantLinear dq(lin);
  Tensor y = dq(x);
  double scale = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) scale = std::max(scale, static_cast<double>(std::abs(ref.data()[i])));
  CHECK(max_abs_diff(y, ref) < 0.02 * scale);
  auto net = tiny_resnet(16);
  CHECK(quantize_dynamic(*net) == 1);
  CHECK(net->child("fc")->type() == "DynamicQuantLinear");
}

// Weight decay applies to BN's gamma by default, so a gamma can reach 0: the QAT ConvBn then divides
// the conv output by gamma / std = 0. The channel's output is BN's bias alone, forward and backward
// stay finite, and the converted model still matches the simulation.
TEST_CASE("QAT ConvBn: a BatchNorm gamma of exactly 0 keeps training, eval and the int8 model finite") {
  auto all_finite = [](const Tensor& t) {
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(t.data()[i])) return false;
    return true;
  };
  std::mt19937_64 rng(9);
  auto [x, y] = testing::quadrant_problem(64, rng);
  auto net = testing::tiny_cnn(rng);
  net->train();
  fuse_modules(*net, true, {1, 8, 8});
  prepare_qat(*net, QConfigMapping{});
  std::shared_ptr<ConvBnAct> cb;
  for (auto& [_, m] : net->named_modules())
    if (auto c = std::dynamic_pointer_cast<ConvBnAct>(m)) cb = c;
  REQUIRE(cb);
  REQUIRE(cb->bn);
  cb->bn->weight.data()[2] = 0.0f;
  cb->bn->bias.data()[2] = 0.25f;
  optim::SGD opt(net->named_parameters(), {0.05f, 0.9f, 1e-4f, false, true});
  for (int step = 0; step < 10; ++step) {
    opt.zero_grad();
    Tensor out = (*net)(x);
    REQUIRE(all_finite(out));
    Tensor loss = cross_entropy(out, y);
    REQUIRE(std::isfinite(loss.item()));
    loss.backward();
    for (auto& [name, p] : net->named_parameters())
      if (p.grad().defined()) REQUIRE_MESSAGE(all_finite(p.grad()), name << " has a non-finite gradient");
    opt.step();
  }
  REQUIRE(cb->bn->weight.data()[2] == 0.0f);  // 0 * decay, and no gradient through a zero channel
  CHECK(all_finite(cb->bn->running_mean));
  CHECK(all_finite(cb->bn->running_var));
  // The channel is BN's bias alone, after the ReLU: in eval through the fused module itself.
  {
    NoGradGuard g;
    cb->eval();
    Tensor c = cb->forward(x);  // before the output fake-quant
    REQUIRE(all_finite(c));
    const int64_t hw = c.size(2) * c.size(3);
    const float beta = std::max(0.0f, cb->bn->bias.data()[2]);  // trained from 0.25; then the ReLU
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t i = 0; i < hw; ++i) CHECK(c.data()[(n * c.size(1) + 2) * hw + i] == doctest::Approx(beta));
  }
  auto [fw, fb] = cb->folded_weight_bias();
  CHECK(all_finite(fw));
  CHECK(all_finite(fb));
  Tensor logits = forward_eval(*net, x);
  REQUIRE(all_finite(logits));
  Int8Graph g = convert(*net, {1, 8, 8});
  Tensor z = Int8Runtime(g).run(x);
  REQUIRE(z.shape() == logits.shape());
  auto out_fq = std::dynamic_pointer_cast<FakeQuantize>(net->child("5")->post());
  REQUIRE(out_fq);
  CHECK(max_abs_diff(z, logits) <= 2 * out_fq->qparams()[0].scale + 1e-6);
}

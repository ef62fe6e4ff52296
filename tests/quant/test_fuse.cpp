// Fusion matched on the traced data flow: what must fuse, what must not (and
// is reported), and that the fused model computes the unfused one's function.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>

#include "core/autograd.h"
#include "core/error.h"
#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/resnet.h"
#include "quant/fuse.h"
#include "quant/fused.h"
#include "tensor_compare.h"

using namespace qforge;
using qforge::testing::max_abs_diff;
using namespace qforge::quant;

namespace {

// A test network with its own forward. It derives from Sequential only so that
// nn::is_container (the registry of containers) descends into it when tracing.
class Net : public nn::Sequential {
 public:
  using Forward = std::function<Tensor(Net&, const Tensor&)>;
  explicit Net(Forward f) : f_(std::move(f)) {}
  Tensor forward(const Tensor& x) override { return f_(*this, x); }
  void add(const std::string& name, nn::ModulePtr m) { register_module(name, std::move(m)); }
  Tensor call(const std::string& name, const Tensor& x) { return (*child(name))(x); }
  Tensor add_of(const std::string& name, const Tensor& a, const Tensor& b) {
    return (*std::static_pointer_cast<nn::Add>(child(name)))(a, b);
  }

 private:
  Forward f_;
};

std::shared_ptr<nn::Conv2d> conv(int in, int out, std::mt19937_64& rng) {
  return std::make_shared<nn::Conv2d>(nn::Conv2dOptions{in, out, 3, 1, 1}, rng);
}

// Non-trivial BN statistics, so folding is really tested.
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

const std::vector<int> kInput{2, 6, 6};

// Builds the model twice from the same seed, fuses one (qat or not) and checks
// that both compute the same function in eval mode. Returns the fused model and its report.
struct Fused {
  std::shared_ptr<nn::Module> model;
  FuseReport report;
};
Fused fuse_and_compare(const std::function<std::shared_ptr<nn::Module>(std::mt19937_64&)>& make, bool qat) {
  std::mt19937_64 r1(11), r2(11), rx(12);
  auto ref = make(r1), fused = make(r2);
  randomize_bn(*ref, 13);
  randomize_bn(*fused, 13);
  qat ? fused->train() : fused->eval();
  FuseReport rep = fuse_modules(*fused, qat, kInput);
  CHECK(fused->training() == qat);  // the trace leaves the mode as it was
  Tensor x = Tensor::randn({3, kInput[0], kInput[1], kInput[2]}, rx);
  Tensor a = forward_eval(*ref, x), b = forward_eval(*fused, x);
  CHECK(max_abs_diff(a, b) < 1e-4);
  return {fused, rep};
}

template <class T>
bool is(const nn::Module& m, const std::string& name) {
  return std::dynamic_pointer_cast<T>(m.child(name)) != nullptr;
}

bool skipped(const FuseReport& r, const std::string& module, const std::string& reason_part) {
  for (auto& s : r.skipped)
    if (std::find(s.modules.begin(), s.modules.end(), module) != s.modules.end() &&
        s.reason.find(reason_part) != std::string::npos)
      return true;
  return false;
}

}  // namespace

TEST_CASE("fusion: a ReLU module called twice is not fused; the rest is, and the function is unchanged") {
  // relu(bn1(conv1(x))) and relu(add(bn2(conv2(y)), y)): one ReLU module for both.
  auto make = [](std::mt19937_64& rng) -> std::shared_ptr<nn::Module> {
    auto n = std::make_shared<Net>([](Net& n, const Tensor& x) {
      Tensor y = n.call("relu", n.call("bn1", n.call("conv1", x)));
      Tensor z = n.call("bn2", n.call("conv2", y));
      return n.call("relu", n.add_of("add", z, y));
    });
    n->add("conv1", conv(2, 4, rng));
    n->add("bn1", std::make_shared<nn::BatchNorm2d>(4));
    n->add("relu", std::make_shared<nn::ReLU>());
    n->add("conv2", conv(4, 4, rng));
    n->add("bn2", std::make_shared<nn::BatchNorm2d>(4));
    n->add("add", std::make_shared<nn::Add>(false));
    return n;
  };
  for (bool qat : {false, true}) {
    CAPTURE(qat);
    auto [m, r] = fuse_and_compare(make, qat);
    auto c1 = std::dynamic_pointer_cast<ConvBnAct>(m->child("conv1"));
    REQUIRE(c1);
    CHECK(c1->act == Act::kNone);  // conv1 + bn1 only
    CHECK((c1->bn != nullptr) == qat);
    CHECK(is<nn::Identity>(*m, "bn1"));
    CHECK(is<nn::ReLU>(*m, "relu"));
    CHECK(is<ConvBnAct>(*m, "conv2"));
    CHECK(is<nn::Identity>(*m, "bn2"));
    auto add = std::dynamic_pointer_cast<nn::Add>(m->child("add"));
    REQUIRE(add);
    CHECK(!add->relu);
    CHECK(r.fused_modules() == 2);
    REQUIRE(r.skipped.size() == 2);
    CHECK(skipped(r, "relu", "'relu' is called 2 times"));
    CHECK(r.skipped[0].pattern == "Conv2d+BatchNorm2d+ReLU");
    CHECK(r.skipped[1].pattern == "Add+ReLU");
    CHECK(r.skipped[1].describe() == "add + relu (Add+ReLU): 'relu' is called 2 times in the forward pass");
  }
}

TEST_CASE("fusion: a conv output read by a BN and an Add keeps its BN") {
  auto make = [](std::mt19937_64& rng) -> std::shared_ptr<nn::Module> {
    auto n = std::make_shared<Net>([](Net& n, const Tensor& x) {
      Tensor c = n.call("conv", x);
      return n.add_of("add", n.call("relu", n.call("bn", c)), c);
    });
    n->add("conv", conv(2, 4, rng));
    n->add("bn", std::make_shared<nn::BatchNorm2d>(4));
    n->add("relu", std::make_shared<nn::ReLU>());
    n->add("add", std::make_shared<nn::Add>(false));
    return n;
  };
  for (bool qat : {false, true}) {
    CAPTURE(qat);
    auto [m, r] = fuse_and_compare(make, qat);
    auto c = std::dynamic_pointer_cast<ConvBnAct>(m->child("conv"));
    REQUIRE(c);  // wrapped alone
    CHECK(!c->bn);
    CHECK(c->act == Act::kNone);
    CHECK(is<nn::BatchNorm2d>(*m, "bn"));
    CHECK(is<nn::ReLU>(*m, "relu"));
    REQUIRE(r.skipped.size() == 1);
    CHECK(r.skipped[0].pattern == "Conv2d+BatchNorm2d+ReLU");
    CHECK(r.skipped[0].modules == std::vector<std::string>{"conv", "bn", "relu"});
    CHECK(r.skipped[0].reason == "the output of 'conv' has 2 readers ('bn', 'add')");
    REQUIRE(r.fused.size() == 1);
    CHECK(r.fused[0].pattern == "Conv2d");
  }
}

TEST_CASE("fusion: a BN whose input is not a conv is reported and left alone") {
  auto make = [](std::mt19937_64& rng) -> std::shared_ptr<nn::Module> {
    return std::make_shared<nn::Sequential>(
        std::vector<nn::ModulePtr>{std::make_shared<nn::BatchNorm2d>(2), conv(2, 4, rng), std::make_shared<nn::ReLU>(),
                                   std::make_shared<nn::MaxPool2d>(2, 2, 0), std::make_shared<nn::BatchNorm2d>(4)});
  };
  for (bool qat : {false, true}) {
    CAPTURE(qat);
    auto [m, r] = fuse_and_compare(make, qat);
    CHECK(is<nn::BatchNorm2d>(*m, "0"));
    auto c = std::dynamic_pointer_cast<ConvBnAct>(m->child("1"));
    REQUIRE(c);
    CHECK(c->act == Act::kReLU);
    CHECK(!c->bn);
    CHECK(is<nn::Identity>(*m, "2"));
    CHECK(is<nn::BatchNorm2d>(*m, "4"));
    REQUIRE(r.fused.size() == 1);
    CHECK(r.fused[0].pattern == "Conv2d+ReLU");
    CHECK(r.fused[0].modules == std::vector<std::string>{"1", "2"});
    REQUIRE(r.skipped.size() == 2);
    CHECK(r.skipped[0].reason == "its input comes from the model input, not from a Conv2d");
    CHECK(r.skipped[1].modules == std::vector<std::string>{"4"});
    CHECK(r.skipped[1].reason == "its input comes from '3' (MaxPool2d), not from a Conv2d");
  }
}

TEST_CASE("fusion follows the data flow, not the order children are registered in") {
  // bn and relu registered before conv; forward runs conv, bn, relu.
  auto make = [](std::mt19937_64& rng) -> std::shared_ptr<nn::Module> {
    auto n =
        std::make_shared<Net>([](Net& n, const Tensor& x) { return n.call("relu", n.call("bn", n.call("conv", x))); });
    n->add("relu", std::make_shared<nn::ReLU6>());
    n->add("bn", std::make_shared<nn::BatchNorm2d>(4));
    n->add("conv", conv(2, 4, rng));
    return n;
  };
  for (bool qat : {false, true}) {
    CAPTURE(qat);
    auto [m, r] = fuse_and_compare(make, qat);
    auto c = std::dynamic_pointer_cast<ConvBnAct>(m->child("conv"));
    REQUIRE(c);
    CHECK(c->act == Act::kReLU6);
    CHECK((c->bn != nullptr) == qat);
    CHECK(c->type() == (qat ? "ConvBnReLU62d" : "ConvReLU62d"));
    CHECK(is<nn::Identity>(*m, "bn"));
    CHECK(is<nn::Identity>(*m, "relu"));
    CHECK(r.skipped.empty());
    REQUIRE(r.fused.size() == 1);
    CHECK(r.fused[0].pattern == "Conv2d+BatchNorm2d+ReLU6");
    CHECK(r.fused[0].modules == std::vector<std::string>{"conv", "bn", "relu"});
  }
}

TEST_CASE("fusion: Add followed by a ReLU module becomes an Add with ReLU; Linear+ReLU and a lone Linear") {
  auto make = [](std::mt19937_64& rng) -> std::shared_ptr<nn::Module> {
    auto n = std::make_shared<Net>([](Net& n, const Tensor& x) {
      Tensor y = n.call("relu_a", n.add_of("add", n.call("bn", n.call("conv", x)), x));
      y = n.call("flatten", n.call("pool", y));
      return n.call("fc2", n.call("relu_f", n.call("fc1", y)));
    });
    n->add("conv", conv(2, 2, rng));
    n->add("bn", std::make_shared<nn::BatchNorm2d>(2));
    n->add("add", std::make_shared<nn::Add>(false));
    n->add("relu_a", std::make_shared<nn::ReLU>());
    n->add("pool", std::make_shared<nn::AdaptiveAvgPool2d>());
    n->add("flatten", std::make_shared<nn::Flatten>());
    n->add("fc1", std::make_shared<nn::Linear>(2, 5, true, rng));
    n->add("relu_f", std::make_shared<nn::ReLU>());
    n->add("fc2", std::make_shared<nn::Linear>(5, 3, true, rng));
    return n;
  };
  for (bool qat : {false, true}) {
    CAPTURE(qat);
    auto [m, r] = fuse_and_compare(make, qat);
    auto add = std::dynamic_pointer_cast<nn::Add>(m->child("add"));
    REQUIRE(add);
    CHECK(add->relu);
    CHECK(is<nn::Identity>(*m, "relu_a"));
    auto f1 = std::dynamic_pointer_cast<LinearAct>(m->child("fc1"));
    auto f2 = std::dynamic_pointer_cast<LinearAct>(m->child("fc2"));
    REQUIRE(f1);
    REQUIRE(f2);
    CHECK(f1->act == Act::kReLU);
    CHECK(f2->act == Act::kNone);
    CHECK(is<nn::Identity>(*m, "relu_f"));
    CHECK(r.skipped.empty());
    CHECK(r.fused_modules() == 3);
    REQUIRE(r.fused.size() == 4);
    CHECK(r.fused[1].pattern == "Add+ReLU");
    CHECK(r.fused[1].modules == std::vector<std::string>{"add", "relu_a"});
  }
}

TEST_CASE("fusion: a ReLU that also feeds the model output is not fused") {
  // conv -> relu, and relu's input (the conv output) is also the model output.
  auto make = [](std::mt19937_64& rng) -> std::shared_ptr<nn::Module> {
    auto n = std::make_shared<Net>([](Net& n, const Tensor& x) {
      Tensor c = n.call("conv", x);
      n.call("relu", c);  // result unused: relu still reads c
      return c;
    });
    n->add("conv", conv(2, 4, rng));
    n->add("relu", std::make_shared<nn::ReLU>());
    return n;
  };
  auto [m, r] = fuse_and_compare(make, false);
  REQUIRE(r.skipped.size() == 1);
  CHECK(r.skipped[0].reason == "the output of 'conv' has 2 readers ('relu', the model output)");
  CHECK(is<nn::ReLU>(*m, "relu"));
}

TEST_CASE("fusion of ResNet18: the same structure as by registration order") {
  for (bool qat : {false, true}) {
    CAPTURE(qat);
    auto net = nn::resnet18({1, 10, "small", 0.125, 3});
    qat ? net->train() : net->eval();
    FuseReport r = fuse_modules(*net, qat, {1, 12, 12});
    CHECK(r.skipped.empty());
    CHECK(r.fused_modules() == 21);
    // Expected: what fusing consecutive children gave (and torchvision's quantizable ResNet).
    const std::string bn_relu = qat ? "ConvBnReLU2d" : "ConvReLU2d", bn_only = qat ? "ConvBn2d" : "Conv2d";
    std::map<std::string, std::string> want{{"conv1", bn_relu}, {"fc", "Linear"}};
    std::vector<std::string> identities{"bn1", "relu"};
    for (int l = 1; l <= 4; ++l)
      for (int b = 0; b < 2; ++b) {
        std::string p = "layer" + std::to_string(l) + "." + std::to_string(b) + ".";
        want[p + "conv1"] = bn_relu;
        want[p + "conv2"] = bn_only;
        for (const char* i : {"bn1", "relu", "bn2"}) identities.push_back(p + i);
        if (l > 1 && b == 0) {
          want[p + "downsample.0"] = bn_only;
          identities.push_back(p + "downsample.1");
        }
      }
    std::map<std::string, std::string> got;
    int identity_count = 0;
    for (auto& [name, m] : net->named_modules()) {
      if (std::dynamic_pointer_cast<ConvBnAct>(m) || std::dynamic_pointer_cast<LinearAct>(m)) got[name] = m->type();
      if (std::dynamic_pointer_cast<nn::Identity>(m)) ++identity_count;
      // Nothing left unfused outside the fused modules.
      if (name.find(".conv") == std::string::npos && name.find(".bn") == std::string::npos &&
          name.find(".linear") == std::string::npos) {
        CHECK_MESSAGE(!std::dynamic_pointer_cast<nn::BatchNorm2d>(m), name);
        CHECK_MESSAGE(!std::dynamic_pointer_cast<nn::ReLU>(m), name);
      }
    }
    CHECK(got == want);
    std::map<std::string, nn::ModulePtr> by_name;
    for (auto& [name, m] : net->named_modules()) by_name[name] = m;
    for (auto& n : identities) CHECK_MESSAGE(std::dynamic_pointer_cast<nn::Identity>(by_name[n]), n);
    // quant, maxpool (small stem) and the absorbed modules.
    CHECK(identity_count == static_cast<int>(identities.size()) + 2);
    CHECK(std::static_pointer_cast<nn::Add>(net->child("layer1")->child("0")->child("add_relu"))->relu);
  }
}

TEST_CASE("fusion: the example input must be C,H,W, and a wrong one names the shape") {
  auto net = nn::resnet18({1, 10, "small", 0.125, 3});
  net->eval();
  CHECK_THROWS_WITH_AS(fuse_modules(*net, false, {12, 12}), doctest::Contains("C,H,W"), Error);
  CHECK_THROWS_WITH_AS(fuse_modules(*net, false, {3, 12, 12}), doctest::Contains("(1,3,12,12)"), Error);
}

// SGD parameter groups: a glob picks parameters by name, the first match wins, the group's lr
// and weight decay apply to them and the lr scales with a schedule.
#include <doctest/doctest.h>

#include "core/error.h"
#include "optim/sgd.h"

using namespace qforge;

namespace {

// One plain SGD step (no momentum) on parameters whose gradient is all `g`: p - lr * (g + wd * p).
struct Net {
  Tensor conv = Tensor::from({2, 2}, {1.f, -2.f, 0.5f, 3.f}).requires_grad_();
  Tensor bias = Tensor::from({2}, {1.f, -1.f}).requires_grad_();
  Tensor fc_w = Tensor::from({2, 2}, {2.f, 4.f, -1.f, 0.25f}).requires_grad_();
  Tensor fc_b = Tensor::from({2}, {0.5f, 0.5f}).requires_grad_();
  nn::NamedTensors named() {
    return {{"conv1.weight", conv}, {"conv1.bias", bias}, {"fc.weight", fc_w}, {"fc.bias", fc_b}};
  }
  void set_grads(float g) {
    for (auto& [_, t] : named()) {
      t.zero_grad();
      for (int64_t i = 0; i < t.numel(); ++i) t.impl()->grad_data()[i] = g;
    }
  }
};

}  // namespace

TEST_CASE("param groups: the head's lr and weight decay differ, seen in the update") {
  Net n;
  const std::vector<float> conv0(n.conv.data(), n.conv.data() + 4), fc0(n.fc_w.data(), n.fc_w.data() + 4);
  const float bias0 = n.bias.data()[0], fcb0 = n.fc_b.data()[0];
  optim::SGD opt(n.named(), {.lr = 0.1f, .weight_decay = 0.01f},
                 {{.match = "fc.*", .lr = 0.001f, .weight_decay = 0.5f}});
  CHECK(opt.lr_of("fc.weight") == 0.001f);
  CHECK(opt.lr_of("fc.bias") == 0.001f);
  CHECK(opt.lr_of("conv1.weight") == 0.1f);
  CHECK(opt.weight_decay_of("fc.weight") == 0.5f);
  CHECK(opt.weight_decay_of("conv1.weight") == 0.01f);
  CHECK(opt.group_sizes() == std::vector<int>{2, 2});
  n.set_grads(0.5f);
  opt.step();
  for (int i = 0; i < 4; ++i) {
    CHECK(n.conv.data()[i] == conv0[i] - 0.1f * (0.5f + 0.01f * conv0[i]));
    CHECK(n.fc_w.data()[i] == fc0[i] - 0.001f * (0.5f + 0.5f * fc0[i]));
  }
  CHECK(n.bias.data()[0] == bias0 - 0.1f * (0.5f + 0.01f * bias0));
  CHECK(n.fc_b.data()[0] == fcb0 - 0.001f * (0.5f + 0.5f * fcb0));

  // A schedule halves the lr: every group's lr halves with it.
  opt.options.lr = 0.05f;
  CHECK(opt.lr_of("conv1.weight") == 0.05f);
  CHECK(opt.lr_of("fc.weight") == doctest::Approx(0.0005f).epsilon(1e-6));
  const float w = n.fc_w.data()[0];
  n.set_grads(1.f);
  opt.step();
  CHECK(n.fc_w.data()[0] == doctest::Approx(w - 0.0005 * (1.0 + 0.5 * w)).epsilon(1e-6));
}

TEST_CASE("param groups: the first match wins; a group may set only its weight decay; 1-D exemption holds") {
  Net n;
  optim::SGD opt(n.named(), {.lr = 0.1f, .weight_decay = 0.01f, .decay_bn_and_bias = false},
                 {{.match = "fc.weight", .lr = 0.3f}, {.match = "*", .weight_decay = 0.2f}});
  CHECK(opt.lr_of("fc.weight") == 0.3f);
  CHECK(opt.weight_decay_of("fc.weight") == 0.01f);  // its group sets no weight decay
  CHECK(opt.lr_of("fc.bias") == 0.1f);               // "*": lr from the options
  CHECK(opt.weight_decay_of("conv1.weight") == 0.2f);
  CHECK(opt.weight_decay_of("conv1.bias") == 0.f);  // 1-D, decay_bn_and_bias false
  CHECK(opt.group_sizes() == std::vector<int>{1, 3, 0});
}

TEST_CASE("param groups: a pattern that matches nothing is an error naming it") {
  Net n;
  CHECK_THROWS_WITH_AS(optim::SGD(n.named(), {}, {{.match = "head.*", .lr = 0.1f}}),
                       doctest::Contains("parameter group 0 ('head.*') matches no parameter"), Error);
  // Taken by an earlier group: said so.
  CHECK_THROWS_WITH_AS(optim::SGD(n.named(), {}, {{.match = "*"}, {.match = "fc.*"}}),
                       doctest::Contains("an earlier group may have taken them"), Error);
  CHECK_THROWS_WITH_AS(optim::SGD(n.named(), {}).lr_of("nope"), doctest::Contains("'nope'"), Error);
}

// The pretrained recipe of configs/resnet18_pretrained_fashion{,_qat}.json, as a user runs it: a
// 1000-class, 3-channel torchvision ResNet18 saved by PyTorch (random weights made at test time;
// the recipe is what is tested) fine-tuned onto Fashion-MNIST's 10 classes with model.init_skip,
// then QAT, then the int8 graph, evaluated. A few steps each. Skipped without Debian's
// python3-torch or dataset-fashion-mnist.
#include <doctest/doctest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "apps/checkpoint.h"
#include "cli_util.h"
#include "python_torch.h"
#include "quant/graph.h"

using namespace qforge;
using namespace qforge::testing;

TEST_CASE("cli: the pretrained recipe: a 1000-class torchvision resnet18 .pth, fine-tuned, QAT, int8" *
          doctest::skip(!run_torch_cases() || !fs::exists(kFashion))) {
  ScratchDir d("cli_pretrained");
  make_torchvision_pth(d.path.string(), "resnet18:1000");
  const std::string pth = d / "resnet18_1000.pth";
  const std::string few = " --set data.limit_train=256 --set data.limit_test=64";  // 2 steps of 128

  // Fine-tune: everything but the head comes from the file; the head is new, with its own lr.
  RunResult ft = run_qforge("train " + config_file("resnet18_pretrained_fashion.json") +
                            " --set model.init_from=" + pth + " --set output.dir=" + (d / "ft") + few);
  INFO(ft.out);
  REQUIRE(ft.code == 0);
  CHECK(ft.out.find("kept freshly initialised (model.init_skip): fc.weight, fc.bias") != std::string::npos);
  const std::string ck = d / "ft/last.safetensors";
  REQUIRE(fs::exists(ck));
  {
    auto file = apps::load_checkpoint(pth).model_state();
    auto mine = apps::load_checkpoint(ck).model_state();
    REQUIRE(mine.count("fc.weight") == 1);
    CHECK(mine.at("fc.weight").shape() == std::vector<int64_t>{10, 512});
    CHECK(file.at("fc.weight").shape() == std::vector<int64_t>{1000, 512});
    // Two small-lr steps moved the backbone a little from the file's values, not to something else.
    const Tensor& a = file.at("layer4.1.conv2.weight");
    const Tensor& b = mine.at("layer4.1.conv2.weight");
    REQUIRE(a.numel() == b.numel());
    double num = 0, den = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      num += double(a.data()[i] - b.data()[i]) * (a.data()[i] - b.data()[i]);
      den += double(a.data()[i]) * a.data()[i];
    }
    CHECK(num < 1e-2 * den);
    CHECK(num > 0);
  }

  // QAT from the fine-tuned checkpoint, converted to the int8 graph, evaluated on 3-channel 64 px input.
  RunResult q = run_qforge("qat " + config_file("resnet18_pretrained_fashion_qat.json") +
                           " --set model.init_from=" + ck + " --set output.dir=" + (d / "qat") + few);
  INFO(q.out);
  REQUIRE(q.code == 0);
  REQUIRE(fs::exists(d / "qat/model.qfm"));
  RunResult e = run_qforge("eval --json --model " + (d / "qat/model.qfm") + " --data " +
                           config_file("resnet18_pretrained_fashion_qat.json") + " --set data.limit_test=64");
  INFO(e.out);
  REQUIRE(e.code == 0);
  auto j = nlohmann::json::parse(e.out);
  CHECK(j["n"] == 64);
  // Grey 28 px IDX images became 3-channel 64 px input: the graph says so, and so does the stem's weight.
  const quant::Int8Graph g = quant::load_int8_model(d / "qat/model.qfm");
  CHECK(g.input_shape == std::vector<int>{3, 64, 64});
  RunResult info = run_qforge("info " + (d / "qat/model.qfm"));
  INFO(info.out);
  REQUIRE(info.code == 0);
  CHECK(info.out.find("(64,3,7,7)") != std::string::npos);
}

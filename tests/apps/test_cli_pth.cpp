// PyTorch .pth files on the command line: info lists them, import turns them into qforge
// checkpoints, eval and model.init_from take them as they are. The committed fixtures need no
// Python; the torchvision ResNet18 is made at test time (skipped without Debian's python3-torch).
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "apps/checkpoint.h"
#include "cli_util.h"
#include "python_torch.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"

using namespace qforge;
using namespace qforge::testing;

namespace {

const std::string kFixtures = source_dir() + "/tests/nn/fixtures/";

void expect_error(const std::string& args, const std::vector<std::string>& needles) {
  RunResult r = run_qforge(args);
  INFO(args);
  INFO(r.out);
  CHECK(r.code != 0);
  for (auto& n : needles) CHECK(r.out.find(n) != std::string::npos);
}

}  // namespace

TEST_CASE("cli: info lists a .pth file's tensors with their dtypes and shapes") {
  RunResult r = run_qforge("info " + kFixtures + "views.pth");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("14 tensors") != std::string::npos);
  CHECK(r.out.find("pytorch") != std::string::npos);
  for (const char* line : {"transposed                                   F32    (6,4)",
                           "half_tail                                    F16    (3)",
                           "bf16_t                                       BF16   (3,2)",
                           "f64                                          F64    (2,2)",
                           "i64                                          I64    (3)",
                           "scalar                                       F32    ()"})
    CHECK_MESSAGE(r.out.find(line) != std::string::npos, line);
  // A checkpoint dict: found under its key.
  RunResult c = run_qforge("info " + kFixtures + "tiny_net_checkpoint.pth");
  INFO(c.out);
  REQUIRE(c.code == 0);
  CHECK(c.out.find("state_dict state_dict") != std::string::npos);
  CHECK(c.out.find("1.running_var") != std::string::npos);

  expect_error("info " + kFixtures + "malicious.pth", {kFixtures + "malicious.pth", "refused the global 'os.system'"});
  expect_error("info " + kFixtures + "missing_member.pth", {kFixtures + "missing_member.pth", "tiny_net/data/3"});
}

TEST_CASE("cli: import checks the weights against the architecture and writes a qforge checkpoint") {
  ScratchDir d("import");
  // Not a resnet18: the error names the file and the tensors, and nothing is written.
  expect_error("import " + kFixtures + "tiny_net.pth --arch resnet18 --out " + (d / "x.safetensors"),
               {kFixtures + "tiny_net.pth: missing", "conv1.weight", "--arch"});
  CHECK_FALSE(fs::exists(d / "x.safetensors"));
  expect_error("import " + kFixtures + "tiny_net.pth --out " + (d / "x.safetensors"), {"--arch", "--config"});
  expect_error("import " + kFixtures + "tiny_net.pth --arch vgg --out " + (d / "x.safetensors"), {"model.arch", "vgg"});

  // A torchvision-named safetensors file (resnet18 at width 0.25, 1000 classes, 3 channels) imports too.
  auto src = nn::resnet18({.in_channels = 3, .num_classes = 1000, .stem = "imagenet", .width = 0.25, .seed = 4});
  std::vector<std::pair<std::string, nn::StEntry>> entries;
  for (auto& [n, t] : src->state_dict()) entries.emplace_back(n, nn::f32_entry(t));
  nn::write_safetensors(d / "tv.safetensors", entries, {});
  expect_error("import " + (d / "tv.safetensors") + " --arch resnet18 --width 0.25 --out " + (d / "x.safetensors"),
               {"tv.safetensors: tensor 'conv1.weight' has shape (16,3,7,7), the model expects (16,1,3,3)"});
  RunResult r = run_qforge("import " + (d / "tv.safetensors") +
                           " --arch resnet18 --width 0.25 --in-channels 3 --num-classes 1000 --stem imagenet "
                           "--set data.image_size=64 --out " +
                           (d / "x.safetensors"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  auto ck = apps::load_checkpoint(d / "x.safetensors");
  CHECK(ck.is_qforge);
  CHECK(ck.info.kind == "float");
  CHECK(ck.config["model"]["arch"] == "resnet18");
  CHECK(ck.config["model"]["num_classes"] == 1000);
  CHECK(ck.config["model"]["stem"] == "imagenet");
  CHECK(ck.info.input == std::vector<int>{3, 64, 64});
  auto st = ck.model_state();
  for (auto& [n, t] : src->state_dict()) {
    CAPTURE(n);
    REQUIRE(st.count(n));
    CHECK(std::memcmp(st[n].data(), t.data(), sizeof(float) * t.numel()) == 0);
  }
  // Importing a qforge checkpoint is refused.
  expect_error("import " + (d / "x.safetensors") + " --arch resnet18 --out " + (d / "y.safetensors"),
               {"already a qforge checkpoint"});
}

TEST_CASE("cli: a torchvision resnet18 .pth: eval, import and init_from with init_skip" *
          doctest::skip(!run_torch_cases())) {
  ScratchDir d("cli_pth");
  make_torchvision_pth(d.path.string(), "resnet18_small resnet18_small:1000");
  const std::string pth = d / "resnet18_small.pth";  // resnet18(num_classes=10), 1-channel 3x3 stride-1 stem
  const std::string cfg = write_tiny_config(d);
  const std::string net = " --set model.width=1 --set data.limit_test=20";

  RunResult info = run_qforge("info " + pth);
  INFO(info.out);
  REQUIRE(info.code == 0);
  CHECK(info.out.find("fc.weight                                    F32    (10,512)") != std::string::npos);
  CHECK(info.out.find("layer4.1.bn2.num_batches_tracked             I64    ()") != std::string::npos);

  RunResult e = run_qforge("eval --json --model " + pth + " --data " + cfg + net);
  INFO(e.out);
  REQUIRE(e.code == 0);
  RunResult imp = run_qforge("import " + pth + " --config " + cfg + net + " --out " + (d / "r.safetensors"));
  INFO(imp.out);
  REQUIRE(imp.code == 0);
  CHECK(imp.out.find("pytorch") != std::string::npos);
  RunResult e2 = run_qforge("eval --json --model " + (d / "r.safetensors") + " --data " + cfg + net);
  INFO(e2.out);
  REQUIRE(e2.code == 0);
  // IDX images of 12 px: the config does not fix the size, so the checkpoint stores none.
  CHECK(apps::load_checkpoint(d / "r.safetensors").info.input.empty());
  auto a = nlohmann::json::parse(e.out), b = nlohmann::json::parse(e2.out);
  CHECK(a["n"] == 20);
  CHECK(a["confusion"] == b["confusion"]);
  CHECK(a["top1"] == b["top1"]);

  // init_from a 1000-class .pth: the 10-class model needs init_skip for the head.
  const std::string pre = d / "resnet18_small_1000.pth";
  const std::string run =
      "train " + cfg + net + " --set model.init_from=" + pre + " --set output.dir=" + (d / "ft") + " --max-steps 1";
  expect_error(run, {pre + ": tensor 'fc.weight' has shape (1000,512), the model expects (10,512)", "model.init_skip"});
  RunResult ft = run_qforge(run + R"( --set 'model.init_skip=["fc"]')");
  INFO(ft.out);
  CHECK(ft.code == 0);
  CHECK(ft.out.find("kept freshly initialised (model.init_skip): fc.weight, fc.bias") != std::string::npos);
}

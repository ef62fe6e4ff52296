// A random-weight model and its int8 graph, for ONNX Runtime comparisons at sizes no test data has
// (tests/onnx/ort_latency.sh: ResNet18 3x224x224):
//   random_int8 ARCH CxHxW CLASSES OUT_PREFIX
// writes OUT_PREFIX.safetensors (float checkpoint) and OUT_PREFIX.qfm: BN folded, min/max
// observers calibrated on two batches of normal(0, 1) inputs (as `qforge bench` does).
#include <cstdio>
#include <random>

#include "apps/checkpoint.h"
#include "apps/models.h"
#include "core/error.h"
#include "quant/convert.h"
#include "quant/fuse.h"
#include "quant/prepare.h"

using namespace qforge;

int main(int argc, char** argv) {
  try {
    QF_CHECK(argc == 5, "usage: random_int8 ARCH CxHxW CLASSES OUT_PREFIX");
    const std::string arch = argv[1], prefix = argv[4];
    std::vector<int> in(3);
    QF_CHECK(std::sscanf(argv[2], "%dx%dx%d", &in[0], &in[1], &in[2]) == 3, "input: CxHxW");
    const std::string stem = in[1] <= 32 ? "small" : "imagenet";
    nlohmann::json j = {
        {"model", {{"arch", arch}, {"in_channels", in[0]}, {"num_classes", std::stoi(argv[3])}, {"stem", stem}}},
        {"train", {{"seed", 0}}}};
    const apps::Config cfg = apps::make_config(j, "random_int8", {}, false);
    auto net = apps::build_network(cfg);
    apps::CheckpointInfo info;
    info.input = in;
    apps::save_checkpoint(prefix + ".safetensors", *net, nullptr, cfg, info);
    net->eval();
    quant::fuse_modules(*net, false, in);
    quant::QConfigMapping qc;
    qc.global.activation.kind = "minmax";
    quant::prepare(*net, qc);
    std::mt19937_64 rng(1);
    int left = 2;
    quant::calibrate(
        *net,
        [&](Tensor& x) {
          x = Tensor::randn({4, in[0], in[1], in[2]}, rng);
          return left-- > 0;
        },
        2);
    quant::Int8Graph g = quant::convert(*net, in);
    g.config = cfg.j;
    quant::save_int8_model(prefix + ".qfm", g);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "random_int8: %s\n", e.what());
    return 1;
  }
}

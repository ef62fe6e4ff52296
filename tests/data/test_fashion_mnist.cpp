// Tests on the real Fashion-MNIST files, when the machine has them
// (Debian package dataset-fashion-mnist); skipped otherwise (decided up front, so the
// report counts them as skipped, not passed).
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>

#include "data/export.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

namespace {

const std::string kDir = "/usr/share/datasets/fashion-mnist";

bool have(const std::string& split) {
  return std::filesystem::exists(kDir + "/" + split + "-images-idx3-ubyte.gz") &&
         std::filesystem::exists(kDir + "/" + split + "-labels-idx1-ubyte.gz");
}

std::shared_ptr<const Dataset> load(const std::string& split) {
  return load_idx(kDir + "/" + split + "-images-idx3-ubyte.gz", kDir + "/" + split + "-labels-idx1-ubyte.gz",
                  fashion_mnist_classes());
}

}  // namespace

TEST_CASE("fashion-mnist: t10k loads, 10000 images of 28x28, 1000 per class" * doctest::skip(!have("t10k"))) {
  auto ds = load("t10k");
  REQUIRE(ds->size() == 10000);
  CHECK(ds->spec() == ImageSpec{1, 28, 28});
  CHECK(ds->classes() == fashion_mnist_classes());
  std::vector<int> counts(10);
  for (size_t i = 0; i < ds->size(); ++i) {
    int y = ds->label(i);
    REQUIRE((y >= 0 && y < 10));
    counts[y]++;
  }
  for (int c : counts) CHECK(c == 1000);
  CHECK(ds->label(0) == 9);  // the first test image is an ankle boot
}

// Throughput of the train pipeline; run with --no-skip (or -tc='*throughput*' --no-skip).
TEST_CASE("fashion-mnist: loader throughput" * doctest::skip()) {
  REQUIRE_MESSAGE(have("train"), "Fashion-MNIST not found in " << kDir);  // asked for by --no-skip
  auto t0 = std::chrono::steady_clock::now();
  auto ds = load("train");
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(ds->size() == 60000);
  MESSAGE("load_idx(train): " << load_s << " s");
  TransformConfig tf{.mean = {0.2860f}, .std = {0.3530f}, .random_crop_padding = 4, .random_hflip = true};
  auto measure = [&](std::shared_ptr<const Dataset> d, const std::string& what) {
    for (bool train : {true, false}) {
      for (int workers : {1, 2}) {
        Loader l(d, tf, {.batch_size = 128, .shuffle = true, .train = train, .seed = 1, .workers = workers});
        Batch b;
        for (int epoch = 0; epoch < 2; ++epoch) {  // the first epoch warms up buffers
          auto t = std::chrono::steady_clock::now();
          l.start_epoch(epoch);
          size_t n = 0;
          while (l.next(b)) n += b.n;
          double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
          CHECK(n == d->size());
          if (epoch == 1)
            MESSAGE(what << std::string(train ? ", augmented" : ", plain") << ", workers=" << workers << ": "
                         << static_cast<long>(n / s) << " images/s");
        }
      }
    }
  };
  measure(ds, "IDX train");
  // The same pipeline decoding PNG files (t10k exported as an image folder).
  TempDir dir;
  export_images(*load("t10k"), dir / "t10k");
  measure(std::make_shared<ImageFolder>(dir / "t10k", ImageSpec{1, 28, 28}), "PNG t10k");
}

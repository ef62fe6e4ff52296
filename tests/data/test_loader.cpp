#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <thread>

#include "data/image_folder.h"
#include "data/loader.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

namespace {

// Image i is 1x4x4 filled with a pattern unique to i; label i % 3. Optionally
// throws at one index or sleeps per image (to keep workers busy).
class FakeDataset final : public Dataset {
 public:
  explicit FakeDataset(size_t n, long fail_at = -1, int sleep_us = 0) : n_(n), fail_at_(fail_at), sleep_us_(sleep_us) {}
  size_t size() const override { return n_; }
  ImageSpec spec() const override { return {1, 4, 4}; }
  const std::vector<std::string>& classes() const override { return classes_; }
  int label(size_t i) const override { return static_cast<int>(i % 3); }
  void get(size_t i, uint8_t* out) const override {
    if (static_cast<long>(i) == fail_at_) throw qforge::Error("fake: image " + std::to_string(i) + " is broken");
    if (sleep_us_) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    for (int k = 0; k < 16; ++k) out[k] = static_cast<uint8_t>(i * 7 + k * 13);
  }

 private:
  size_t n_;
  long fail_at_;
  int sleep_us_;
  std::vector<std::string> classes_ = {"a", "b", "c"};
};

const TransformConfig kAugment{.mean = {0.5f}, .std = {0.25f}, .random_crop_padding = 2, .random_hflip = true};

std::vector<Batch> epoch_batches(Loader& l, int epoch, size_t first = 0) {
  l.start_epoch(epoch, first);
  std::vector<Batch> out;
  Batch b;
  while (l.next(b)) out.push_back(b);
  return out;
}

std::vector<int64_t> all_indices(const std::vector<Batch>& bs) {
  std::vector<int64_t> v;
  for (auto& b : bs) v.insert(v.end(), b.indices.begin(), b.indices.end());
  return v;
}

bool same(const Batch& a, const Batch& b) {
  return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w && a.images == b.images && a.labels == b.labels &&
         a.indices == b.indices;
}

bool same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](const Batch& x, const Batch& y) { return same(x, y); });
}

}  // namespace

TEST_CASE("loader: every index once per epoch, with the right images and labels") {
  auto ds = std::make_shared<FakeDataset>(103);
  Loader l(ds, {}, {.batch_size = 10, .shuffle = true, .seed = 5, .workers = 2});
  CHECK(l.num_batches() == 11);
  CHECK(l.output_spec() == ImageSpec{1, 4, 4});
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<Batch> bs = epoch_batches(l, epoch);
    REQUIRE(bs.size() == 11);
    CHECK(bs.back().n == 3);
    std::vector<int64_t> idx = all_indices(bs);
    std::vector<int64_t> sorted = idx;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> want(103);
    std::iota(want.begin(), want.end(), 0);
    CHECK(sorted == want);
    CHECK(idx != want);  // shuffled
    uint8_t img[16];
    for (auto& b : bs) {
      CHECK((b.c == 1 && b.h == 4 && b.w == 4));
      REQUIRE(b.images.size() == static_cast<size_t>(b.n) * 16);
      for (int k = 0; k < b.n; ++k) {
        CHECK(b.labels[k] == b.indices[k] % 3);
        ds->get(b.indices[k], img);
        for (int p = 0; p < 16; ++p) CHECK(b.images[k * 16 + p] == img[p] / 255.0f);
      }
    }
  }
}

TEST_CASE("loader: drop_last and no shuffle") {
  auto ds = std::make_shared<FakeDataset>(103);
  Loader l(ds, {}, {.batch_size = 10, .drop_last = true});
  CHECK(l.num_batches() == 10);
  std::vector<int64_t> idx = all_indices(epoch_batches(l, 0));
  std::vector<int64_t> want(100);
  std::iota(want.begin(), want.end(), 0);
  CHECK(idx == want);
}

TEST_CASE("loader: order depends on seed and epoch only") {
  auto ds = std::make_shared<FakeDataset>(50);
  LoaderOptions o{.batch_size = 8, .shuffle = true, .train = true, .seed = 42};
  Loader a(ds, kAugment, o), b(ds, kAugment, o);
  auto a0 = epoch_batches(a, 0), b0 = epoch_batches(b, 0);
  CHECK(same(a0, b0));
  auto a1 = epoch_batches(a, 1);
  CHECK(all_indices(a0) != all_indices(a1));
  o.seed = 43;
  Loader c(ds, kAugment, o);
  CHECK(all_indices(epoch_batches(c, 0)) != all_indices(a0));
  // The loader uses exactly the documented permutation.
  std::vector<int64_t> perm;
  for (size_t i : epoch_permutation(50, 42, 1)) perm.push_back(static_cast<int64_t>(i));
  CHECK(all_indices(a1) == perm);
}

TEST_CASE("loader: epoch_permutation is pinned") {
  // Golden values: a change here silently breaks resuming runs started before it.
  std::vector<size_t> p = epoch_permutation(10, 1234, 3);
  std::vector<size_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(p == std::vector<size_t>{6, 9, 0, 1, 2, 3, 8, 5, 7, 4});
  CHECK(sample_seed(1234, 3, 7) == 3828048326u);
}

TEST_CASE("loader: batches do not depend on workers or prefetch") {
  auto ds = std::make_shared<FakeDataset>(77);
  LoaderOptions o{.batch_size = 6, .shuffle = true, .train = true, .seed = 9};
  o.workers = 1;
  o.prefetch = 1;
  Loader one(ds, kAugment, o);
  o.workers = 3;
  o.prefetch = 8;
  Loader three(ds, kAugment, o);
  for (int epoch = 0; epoch < 2; ++epoch) {
    auto x = epoch_batches(one, epoch), y = epoch_batches(three, epoch);
    CHECK(same(x, y));
  }
  // Augmentation actually happened: the same image differs between epochs.
  auto e0 = epoch_batches(one, 0), e1 = epoch_batches(one, 1);
  auto image_of = [](const std::vector<Batch>& bs, int64_t idx) {
    for (auto& b : bs)
      for (int k = 0; k < b.n; ++k)
        if (b.indices[k] == idx) return std::vector<float>(b.images.begin() + k * 16, b.images.begin() + (k + 1) * 16);
    return std::vector<float>();
  };
  int differ = 0;
  for (int64_t i = 0; i < 77; ++i) differ += image_of(e0, i) != image_of(e1, i);
  CHECK(differ > 50);
}

TEST_CASE("loader: resume at batch k gives the remaining batches") {
  auto ds = std::make_shared<FakeDataset>(64);
  LoaderOptions o{.batch_size = 5, .shuffle = true, .train = true, .seed = 3, .workers = 2};
  Loader full(ds, kAugment, o);
  auto want = epoch_batches(full, 4);
  REQUIRE(want.size() == 13);
  for (size_t k : {size_t{0}, size_t{1}, size_t{7}, size_t{12}, size_t{13}}) {
    Loader resumed(ds, kAugment, o);
    auto got = epoch_batches(resumed, 4, k);
    CHECK(same(got, std::vector<Batch>(want.begin() + k, want.end())));
  }
  CHECK(contains(error_of([&] { full.start_epoch(0, 14); }), "14"));
}

TEST_CASE("loader: start_epoch mid-epoch and destruction mid-epoch") {
  auto ds = std::make_shared<FakeDataset>(200, -1, 200);  // 0.2 ms per image
  LoaderOptions o{.batch_size = 4, .shuffle = true, .seed = 1, .workers = 3, .prefetch = 3};
  Loader ref(std::make_shared<FakeDataset>(200), {}, o);
  auto want = epoch_batches(ref, 1);
  {
    Loader l(ds, {}, o);
    l.start_epoch(0);
    Batch b;
    REQUIRE(l.next(b));
    REQUIRE(l.next(b));
    CHECK(same(epoch_batches(l, 1), want));
    l.start_epoch(2);
    REQUIRE(l.next(b));
  }  // destroyed with workers busy: must join, not hang or crash
  Loader never(ds, {}, o);
  never.start_epoch(0);
}

TEST_CASE("loader: an error in a worker is re-thrown by next, in order") {
  auto ds = std::make_shared<FakeDataset>(100, 57);
  Loader l(ds, {}, {.batch_size = 10, .workers = 3});
  for (int round = 0; round < 2; ++round) {
    l.start_epoch(0);
    Batch b;
    for (int i = 0; i < 5; ++i) {
      REQUIRE(l.next(b));
      CHECK(b.indices[0] == i * 10);
    }
    CHECK(contains(error_of([&] { l.next(b); }), "image 57 is broken"));
    CHECK(contains(error_of([&] { l.next(b); }), "image 57 is broken"));  // sticky
  }
  // Resuming past the broken batch works.
  l.start_epoch(0, 6);
  Batch b;
  int n = 0;
  while (l.next(b)) ++n;
  CHECK(n == 4);
}

TEST_CASE("loader: a corrupt image file surfaces with its path") {
  TempDir dir;
  for (int i = 0; i < 6; ++i) write_image(dir / ("r/c/" + std::to_string(i) + ".png"), 4, 4, 1, random_pixels(16, i));
  write_bytes(dir / "r/c/3.png", {'n', 'o', 'p', 'e'});
  auto ds = std::make_shared<ImageFolder>(dir / "r", ImageSpec{1, 4, 4});
  Loader l(ds, {}, {.batch_size = 2, .workers = 2});
  l.start_epoch(0);
  Batch b;
  CHECK(l.next(b));
  std::string e = error_of([&] { l.next(b); });
  CHECK(contains(e, dir / "r/c/3.png"));
}

TEST_CASE("loader: misuse") {
  auto ds = std::make_shared<FakeDataset>(10);
  Loader l(ds, {}, {.batch_size = 4});
  Batch b;
  CHECK(contains(error_of([&] { l.next(b); }), "start_epoch"));
  CHECK(contains(error_of([&] { Loader(ds, {}, {.batch_size = 0}); }), "batch_size"));
  CHECK(contains(error_of([&] { Loader(ds, {.mean = {1, 2}}, {}); }), "mean"));
  CHECK(contains(error_of([&] { Loader(nullptr, {}, {}); }), "null"));
  Loader empty(std::make_shared<FakeDataset>(0), {}, {.batch_size = 4});
  CHECK(empty.num_batches() == 0);
  empty.start_epoch(0);
  CHECK(!empty.next(b));
}

TEST_CASE("loader: a folder of mixed sizes and formats, each image at its own size, centre-cropped") {
  TempDir dir;
  // A 10x10 grey PNG whose pixel (y, x) is 10y + x, the same as RGB BMP and RGBA PNG at 12x16, and a 3x3 JPEG.
  std::vector<uint8_t> g(100);
  for (int k = 0; k < 100; ++k) g[k] = static_cast<uint8_t>(k);
  write_image(dir / "r/a/0.png", 10, 10, 1, g);
  std::vector<uint8_t> rgb(12 * 16 * 3), rgba(12 * 16 * 4);
  for (int k = 0; k < 12 * 16; ++k) {
    for (int c = 0; c < 3; ++c) rgb[k * 3 + c] = static_cast<uint8_t>(k + c);
    for (int c = 0; c < 4; ++c) rgba[k * 4 + c] = static_cast<uint8_t>(c == 3 ? 0 : k + c);
  }
  write_image(dir / "r/a/1.bmp", 16, 12, 3, rgb);
  write_image(dir / "r/b/2.png", 16, 12, 4, rgba);
  write_image(dir / "r/b/3.jpg", 3, 3, 3, std::vector<uint8_t>(27, 50));
  auto ds = std::make_shared<ImageFolder>(dir / "r", ImageSpec{3, 0, 0});
  CHECK(has_varying_size(ds->spec()));
  std::vector<uint8_t> px(3);
  CHECK(contains(error_of([&] { ds->get(0, px.data()); }), "get_sized"));

  const TransformConfig cfg{.center_crop = 4};
  CHECK(contains(error_of([&] { Loader(ds, TransformConfig{}, {}); }), "centre crop"));
  Loader l(ds, cfg, {.batch_size = 3, .workers = 2});
  CHECK(l.output_spec() == ImageSpec{3, 4, 4});
  l.start_epoch(0);
  Batch b;
  REQUIRE(l.next(b));
  REQUIRE(b.n == 3);
  CHECK(b.labels == std::vector<int32_t>{0, 0, 1});
  // Image 0: grey copied to RGB, centre 4x4 of 10x10 starts at (3, 3).
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) CHECK(b.images[(c * 4 + y) * 4 + x] == ((3 + y) * 10 + 3 + x) / 255.0f);
  // Images 1 and 2 (BMP RGB, PNG RGBA with alpha 0): the same pixels; centre of 12x16 starts at (4, 6).
  for (int i = 1; i <= 2; ++i)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x)
          CHECK(b.images[((i * 3 + c) * 4 + y) * 4 + x] == static_cast<uint8_t>((4 + y) * 16 + 6 + x + c) / 255.0f);
  // The 3x3 JPEG cannot give a 4x4 crop: the error names it.
  std::string e = error_of([&] { l.next(b); });
  CHECK(contains(e, dir / "r/b/3.jpg"));
  CHECK(contains(e, "larger than"));
}

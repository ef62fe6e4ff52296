#include <doctest/doctest.h>

#include <set>
#include <tuple>

#include "data/transforms.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

namespace {

std::vector<float> run(const TransformConfig& cfg, const std::vector<uint8_t>& img, ImageSpec in, std::mt19937& rng,
                       bool train) {
  ImageSpec out = output_spec(cfg, in);
  std::vector<float> v(image_bytes(out));
  apply_transform(cfg, img.data(), in, v.data(), out, rng, train);
  return v;
}

std::vector<float> run(const TransformConfig& cfg, const std::vector<uint8_t>& img, ImageSpec in) {
  std::mt19937 rng(0);
  return run(cfg, img, in, rng, false);
}

}  // namespace

TEST_CASE("transforms: normalize is (x / 255 - mean) / std, exactly") {
  const ImageSpec in{3, 2, 2};
  std::vector<uint8_t> img = {0, 1, 128, 255, 7, 8, 9, 10, 200, 201, 254, 3};
  TransformConfig cfg{.mean = {0.485f, 0.456f, 0.406f}, .std = {0.229f, 0.224f, 0.225f}};
  std::vector<float> out = run(cfg, img, in);
  REQUIRE(out.size() == 12);
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 4; ++k) CHECK(out[c * 4 + k] == (img[c * 4 + k] / 255.0f - cfg.mean[c]) / cfg.std[c]);

  cfg = {.mean = {0.5f}, .std = {0.25f}};  // one value for every channel
  out = run(cfg, img, in);
  for (int i = 0; i < 12; ++i) CHECK(out[i] == (img[i] / 255.0f - 0.5f) / 0.25f);

  out = run({}, img, in);  // no mean/std: x / 255
  for (int i = 0; i < 12; ++i) CHECK(out[i] == img[i] / 255.0f);
}

TEST_CASE("transforms: random crop with zero padding and flip, on a hand-made image") {
  // 1x3x3:  1 2 3 / 4 5 6 / 7 8 9
  const ImageSpec in{1, 3, 3};
  std::vector<uint8_t> img = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  TransformConfig cfg{.random_crop_padding = 1, .random_hflip = true};
  CHECK(output_spec(cfg, in) == in);

  // The draws are documented: crop row in [0, 2p], crop column in [0, 2p], then the flip bit.
  std::set<std::tuple<int, int, int>> seen;
  for (uint32_t seed = 0; seed < 200; ++seed) {
    std::mt19937 rng(seed), replay(seed);
    std::vector<float> out = run(cfg, img, in, rng, true);
    int i = static_cast<int>(uniform_below(replay, 3)), j = static_cast<int>(uniform_below(replay, 3));
    int flip = static_cast<int>(uniform_below(replay, 2));
    CHECK(rng() == replay());  // no other draws
    seen.insert({i, j, flip});
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 3; ++x) {
        int xc = flip ? 2 - x : x;
        int sy = y + i - 1, sx = xc + j - 1;
        float want = (sy < 0 || sy > 2 || sx < 0 || sx > 2) ? 0.0f : img[sy * 3 + sx] / 255.0f;
        CHECK(out[y * 3 + x] == want);
      }
  }
  CHECK(seen.size() == 18);  // every offset, with and without flip

  // One case written out by hand: crop at padded (0, 2), i.e. shifted up-right, then flipped.
  //   padded:  0 0 0 0 0      crop rows 0..2, cols 2..4:  0 0 0     flipped:  0 0 0
  //            0 1 2 3 0                                 2 3 0               0 3 2
  //            0 4 5 6 0                                 5 6 0               0 6 5
  for (uint32_t seed = 0;; ++seed) {
    std::mt19937 probe(seed);
    if (uniform_below(probe, 3) != 0 || uniform_below(probe, 3) != 2 || uniform_below(probe, 2) != 1) continue;
    std::mt19937 rng(seed);
    std::vector<float> out = run(cfg, img, in, rng, true);
    std::vector<int> want = {0, 0, 0, 0, 3, 2, 0, 6, 5};
    for (int k = 0; k < 9; ++k) CHECK(out[k] * 255.0f == doctest::Approx(want[k]));
    break;
  }
}

TEST_CASE("transforms: padding is pixel value 0 before normalization") {
  const ImageSpec in{1, 2, 2};
  std::vector<uint8_t> img = {255, 255, 255, 255};
  TransformConfig cfg{.mean = {0.5f}, .std = {0.5f}, .random_crop_padding = 2};
  bool saw_pad = false;
  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::mt19937 rng(seed);
    for (float v : run(cfg, img, in, rng, true)) {
      CHECK((v == -1.0f || v == 1.0f));
      saw_pad |= v == -1.0f;
    }
  }
  CHECK(saw_pad);
}

TEST_CASE("transforms: eval ignores the augmentation and leaves the rng alone") {
  const ImageSpec in{2, 4, 5};
  std::vector<uint8_t> img = random_pixels(40, 5);
  TransformConfig cfg{.mean = {0.1f, 0.2f}, .std = {0.3f, 0.4f}, .random_crop_padding = 4, .random_hflip = true};
  std::mt19937 rng(9), untouched(9);
  std::vector<float> out = run(cfg, img, in, rng, false);
  CHECK(rng() == untouched());
  TransformConfig plain{.mean = cfg.mean, .std = cfg.std};
  CHECK(out == run(plain, img, in));
}

TEST_CASE("transforms: center crop follows torchvision") {
  std::vector<uint8_t> img(25);
  for (int k = 0; k < 25; ++k) img[k] = static_cast<uint8_t>(k);
  const ImageSpec in{1, 5, 5};
  auto crop = [&](int size) {
    // The padding only matters in train mode; it makes a crop larger than the image legal.
    std::vector<float> out = run({.random_crop_padding = 1, .center_crop = size}, img, in);
    std::vector<int> px;
    for (float v : out) px.push_back(static_cast<int>(std::lround(v * 255.0f)));
    return px;
  };
  CHECK(crop(3) == std::vector<int>{6, 7, 8, 11, 12, 13, 16, 17, 18});
  // Offset round((5 - 4) / 2) = round(0.5) = 0 under round-half-to-even.
  CHECK(crop(4) == std::vector<int>{0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18});
  // round((5 - 2) / 2) = round(1.5) = 2.
  CHECK(crop(2) == std::vector<int>{12, 13, 17, 18});
  // Larger than the image: zero padding, (7 - 5) // 2 = 1 on the top/left.
  std::vector<int> big = crop(7);
  REQUIRE(big.size() == 49);
  CHECK(big[0] == 0);
  CHECK(big[1 * 7 + 2] == 1);
  CHECK(big[5 * 7 + 5] == 24);
  CHECK(big[6 * 7 + 6] == 0);
}

TEST_CASE("transforms: resize keeps the aspect ratio, then center crop") {
  const ImageSpec in{1, 4, 8};
  std::vector<uint8_t> img(32, 77);
  TransformConfig cfg{.resize = 2};
  CHECK(output_spec(cfg, in) == ImageSpec{1, 2, 4});
  for (float v : run(cfg, img, in)) CHECK(v * 255.0f == doctest::Approx(77).epsilon(0.01));
  cfg.center_crop = 2;
  CHECK(output_spec(cfg, in) == ImageSpec{1, 2, 2});
  CHECK(output_spec({.resize = 10}, {3, 30, 20}) == ImageSpec{3, 15, 10});
  CHECK(output_spec({.resize = 256}, {3, 375, 500}) == ImageSpec{3, 256, 341});
  // Train mode: the same shape, a random crop of the resized image.
  std::mt19937 rng(1);
  cfg = {.resize = 4, .center_crop = 3};
  CHECK(run(cfg, img, in, rng, true).size() == 9);
}

TEST_CASE("transforms: same rng seed, same output; other seeds differ") {
  const ImageSpec in{3, 8, 8};
  std::vector<uint8_t> img = random_pixels(192, 11);
  TransformConfig cfg{.mean = {0.5f}, .std = {0.5f}, .random_crop_padding = 2, .random_hflip = true};
  std::mt19937 a(123), b(123);
  std::vector<float> first = run(cfg, img, in, a, true);
  CHECK(first == run(cfg, img, in, b, true));
  int differ = 0;
  for (uint32_t s = 0; s < 10; ++s) {
    std::mt19937 r(s);
    differ += run(cfg, img, in, r, true) != first;
  }
  CHECK(differ >= 8);
}

TEST_CASE("transforms: config errors") {
  const ImageSpec in{3, 8, 8};
  CHECK(contains(error_of([&] { output_spec({.mean = {0.1f, 0.2f}}, in); }), "mean has 2"));
  CHECK(contains(error_of([&] { output_spec({.std = {1.0f, 0.0f, 1.0f}}, in); }), "std"));
  CHECK(contains(error_of([&] { output_spec({.center_crop = 11}, in); }), "larger"));
  CHECK(error_of([&] { output_spec({.random_crop_padding = 2, .center_crop = 11}, in); }).empty());
  CHECK(contains(error_of([&] { output_spec({.resize = -1}, in); }), "resize"));
  std::vector<uint8_t> img(192);
  std::vector<float> out(192);
  std::mt19937 rng;
  CHECK(contains(error_of([&] {
                   apply_transform({}, img.data(), in, out.data(), {3, 4, 4}, rng, false);
                 }),
                 "does not match"));
}

TEST_CASE("transforms: uniform_below is portable and in range") {
  // std::mt19937's first output for the default seed is fixed by the standard: 3499211612.
  std::mt19937 rng;
  CHECK(uniform_below(rng, 10) == 3499211612u % 10);
  std::vector<int> counts(7);
  for (int i = 0; i < 7000; ++i) counts[uniform_below(rng, 7)]++;
  for (int c : counts) CHECK((c > 850 && c < 1150));
  std::mt19937_64 r64(1);
  for (int i = 0; i < 100; ++i) CHECK(uniform_below(r64, 3) < 3);
}

TEST_CASE("transforms: per-channel mean and std, one value each or one for all") {
  const ImageSpec in{3, 1, 2};
  const std::vector<uint8_t> img = {0, 51, 102, 153, 204, 255};
  TransformConfig cfg{.mean = {0.1f, 0.2f, 0.3f}, .std = {0.5f, 0.25f, 0.125f}};
  std::vector<float> out = run(cfg, img, in);
  const float m[3] = {0.1f, 0.2f, 0.3f}, s[3] = {0.5f, 0.25f, 0.125f};
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 2; ++k) CHECK(out[c * 2 + k] == (img[c * 2 + k] / 255.0f - m[c]) / s[c]);
  CHECK(out[0] == doctest::Approx(-0.2).epsilon(1e-6));
  CHECK(out[5] == doctest::Approx((1.0 - 0.3) / 0.125).epsilon(1e-6));
  cfg = {.mean = {0.1f, 0.2f}, .std = {0.5f}};
  CHECK(contains(error_of([&] { output_spec(cfg, in); }), "mean has 2 values but the image has 3 channels"));
  cfg = {.mean = {0.1f}, .std = {0.5f, 1.0f, 0.0f}};
  CHECK(contains(error_of([&] { output_spec(cfg, in); }), "nonzero"));
}

TEST_CASE("transforms: random_resized_crop_box is seeded, inside the image, within scale and ratio") {
  TransformConfig cfg;  // torchvision's defaults: scale (0.08, 1), ratio (3/4, 4/3)
  std::set<std::tuple<int, int, int, int>> seen;
  for (auto [h, w] : {std::pair{32, 32}, {20, 50}, {50, 20}, {7, 9}, {224, 300}}) {
    for (uint32_t seed = 0; seed < 300; ++seed) {
      std::mt19937 a(seed), b(seed);
      CropBox box = random_resized_crop_box(h, w, cfg, a);
      CHECK(box == random_resized_crop_box(h, w, cfg, b));  // same seed, same box
      CHECK(box.top >= 0);
      CHECK(box.left >= 0);
      CHECK(box.height >= 1);
      CHECK(box.width >= 1);
      CHECK(box.top + box.height <= h);
      CHECK(box.left + box.width <= w);
      seen.insert({box.top, box.left, box.height, box.width});
    }
  }
  CHECK(seen.size() > 500);  // the seeds give different boxes

  // A box that fits first time: its area and aspect ratio come from the ranges (up to rounding).
  cfg.rrc_scale = {0.25, 0.5};
  cfg.rrc_ratio = {0.5, 2.0};
  for (uint32_t seed = 0; seed < 200; ++seed) {
    std::mt19937 rng(seed);
    CropBox box = random_resized_crop_box(400, 400, cfg, rng);
    const double area = box.height * box.width / (400.0 * 400.0), ratio = double(box.width) / box.height;
    CHECK(area >= 0.25 * 0.97);
    CHECK(area <= 0.5 * 1.03);
    CHECK(ratio >= 0.5 * 0.99);
    CHECK(ratio <= 2.0 * 1.01);
  }
  // Exact: a quarter of the area, square: round(sqrt(400)) = 20.
  cfg.rrc_scale = {0.25, 0.25};
  cfg.rrc_ratio = {1, 1};
  std::mt19937 rng(5);
  CropBox box = random_resized_crop_box(40, 40, cfg, rng);
  CHECK(box.height == 20);
  CHECK(box.width == 20);
}

TEST_CASE("transforms: random_resized_crop_box falls back to torchvision's centred box") {
  TransformConfig cfg;
  std::mt19937 rng(1);
  // The whole area at aspect 2..3 never fits a square: the widest box of ratio 2, centred.
  cfg.rrc_scale = {1, 1};
  cfg.rrc_ratio = {2, 3};
  CHECK(random_resized_crop_box(30, 30, cfg, rng) == CropBox{7, 0, 15, 30});
  // Aspect 0.2..0.3: the tallest box of ratio 0.3, centred: w = round(30 * 0.3) = 9, left = (30 - 9) // 2.
  cfg.rrc_ratio = {0.2, 0.3};
  CHECK(random_resized_crop_box(30, 30, cfg, rng) == CropBox{0, 10, 30, 9});
  // Square boxes of the whole area of a 20x30 image never fit: the image's ratio 1.5 > 1, so 20x20 centred.
  cfg.rrc_ratio = {1, 1};
  CHECK(random_resized_crop_box(20, 30, cfg, rng) == CropBox{0, 5, 20, 20});
  // The whole square image fits a square box of all its area at once.
  cfg.rrc_scale = {1, 1};
  cfg.rrc_ratio = {1, 1};
  CHECK(random_resized_crop_box(30, 30, cfg, rng) == CropBox{0, 0, 30, 30});
}

TEST_CASE("transforms: random_resized_crop in training crops from the original and keeps eval's size") {
  const ImageSpec in{2, 8, 8};
  std::vector<uint8_t> img(2 * 64);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>(i);
  TransformConfig cfg{.resize = 6, .center_crop = 4, .random_resized_crop = true};
  cfg.rrc_scale = {0.25, 0.25};  // 4x4 boxes of the 8x8 image: the output size, so a plain crop
  cfg.rrc_ratio = {1, 1};
  CHECK(output_spec(cfg, in) == ImageSpec{2, 4, 4});
  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::mt19937 rng(seed), copy(seed);
    std::vector<float> out = run(cfg, img, in, rng, true);
    const CropBox box = random_resized_crop_box(8, 8, cfg, copy);
    REQUIRE(box.height == 4);
    for (int c = 0; c < 2; ++c)
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x)
          CHECK(out[(c * 4 + y) * 4 + x] == img[c * 64 + (box.top + y) * 8 + box.left + x] / 255.0f);
    CHECK(rng() == copy());  // no draws besides the box's (no flip configured)
  }
  // A box of another size is stretched to the output: a flat image stays flat.
  cfg.rrc_scale = {0.5, 1};
  std::vector<uint8_t> flat(2 * 64, 77);
  std::mt19937 rng(9);
  for (float v : run(cfg, flat, in, rng, true)) CHECK(v == doctest::Approx(77 / 255.0f).epsilon(1e-6));
  // Eval ignores it: resize 8 -> 6, centre 4x4.
  std::vector<float> ev = run(cfg, img, in);
  std::vector<float> plain = run(TransformConfig{.resize = 6, .center_crop = 4}, img, in);
  CHECK(ev == plain);
}

TEST_CASE("transforms: random_resized_crop and varying-size config errors") {
  const ImageSpec in{1, 8, 8};
  TransformConfig cfg{.random_resized_crop = true};
  cfg.rrc_scale = {0, 1};
  CHECK(contains(error_of([&] { output_spec(cfg, in); }), "scale must satisfy 0 < min <= max <= 1"));
  cfg.rrc_scale = {0.5, 1.5};
  CHECK(contains(error_of([&] { output_spec(cfg, in); }), "scale"));
  cfg.rrc_scale = {0.9, 0.5};
  CHECK(contains(error_of([&] { output_spec(cfg, in); }), "scale"));
  cfg.rrc_scale = {0.5, 1};
  cfg.rrc_ratio = {-1, 2};
  CHECK(contains(error_of([&] { output_spec(cfg, in); }), "ratio must satisfy 0 < min <= max"));
  cfg.rrc_ratio = {1, 2};
  cfg.random_crop_padding = 2;
  CHECK(contains(error_of([&] { output_spec(cfg, in); }), "choose one"));
  CHECK(contains(error_of([&] { output_spec_any_size(TransformConfig{.resize = 10}, 3); }), "centre crop"));
  CHECK(output_spec_any_size(TransformConfig{.resize = 10, .center_crop = 8}, 3) == ImageSpec{3, 8, 8});
  CHECK(contains(error_of([&] { output_spec_any_size(TransformConfig{.resize = 6, .center_crop = 8}, 3); }),
                 "larger than"));
}

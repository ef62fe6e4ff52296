// Decoding image files as PIL would hand them to torchvision (expected values for
// 16-bit PNGs printed by PIL 9.4 on the same samples).
#include <doctest/doctest.h>

#include <cstdlib>

#include "data/image_file.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

TEST_CASE("image_file: PNG grey, grey+alpha, RGB, RGBA, BMP and JPEG decode to PIL's values") {
  TempDir dir;
  const int w = 3, h = 2;
  std::vector<uint8_t> chw;
  SUBCASE("RGBA PNG: alpha dropped, or luma") {
    std::vector<uint8_t> rgba = random_pixels(w * h * 4, 11);
    write_image(dir / "a.png", w, h, 4, rgba);
    CHECK(load_image(dir / "a.png", {3, 0, 0}, chw) == ImageSpec{3, h, w});
    for (int k = 0; k < w * h; ++k)
      for (int c = 0; c < 3; ++c) CHECK(chw[c * w * h + k] == rgba[k * 4 + c]);
    CHECK(load_image(dir / "a.png", {1, 0, 0}, chw) == ImageSpec{1, h, w});
    for (int k = 0; k < w * h; ++k)
      CHECK(chw[k] == (rgba[k * 4] * 19595 + rgba[k * 4 + 1] * 38470 + rgba[k * 4 + 2] * 7471 + 0x8000) >> 16);
  }
  SUBCASE("grey+alpha PNG and grey BMP to RGB") {
    std::vector<uint8_t> la = random_pixels(w * h * 2, 12);
    write_image(dir / "la.png", w, h, 2, la);
    load_image(dir / "la.png", {3, 0, 0}, chw);
    for (int k = 0; k < w * h; ++k)
      for (int c = 0; c < 3; ++c) CHECK(chw[c * w * h + k] == la[k * 2]);
    std::vector<uint8_t> grey = random_pixels(w * h, 13);
    write_image(dir / "g.bmp", w, h, 1, grey);
    CHECK(load_image(dir / "g.bmp", {3, 0, 0}, chw) == ImageSpec{3, h, w});
    for (int k = 0; k < w * h; ++k)
      for (int c = 0; c < 3; ++c) CHECK(chw[c * w * h + k] == grey[k]);
  }
  SUBCASE("JPEG: RGB, lossy") {
    write_image(dir / "j.jpg", 16, 16, 3, std::vector<uint8_t>(16 * 16 * 3, 90));
    CHECK(load_image(dir / "j.jpg", {3, 0, 0}, chw) == ImageSpec{3, 16, 16});
    for (uint8_t v : chw) CHECK(std::abs(int(v) - 90) <= 2);
  }
  SUBCASE("stretched to a fixed size") {
    write_image(dir / "f.png", 5, 7, 3, std::vector<uint8_t>(5 * 7 * 3, 40));
    CHECK(load_image(dir / "f.png", {1, 4, 6}, chw) == ImageSpec{1, 4, 6});
    REQUIRE(chw.size() == 24);
    for (uint8_t v : chw) CHECK(v == 40);
  }
}

TEST_CASE("image_file: 16-bit PNGs keep their high byte, as PIL does for RGB") {
  TempDir dir;
  // PIL 9.4 on a 16-bit RGB PNG of these values: 0 0 0 1 1 127 128 255 255 255.
  const std::vector<uint16_t> v = {0, 1, 255, 256, 300, 32767, 32768, 65280, 65407, 65535};
  const std::vector<uint8_t> want = {0, 0, 0, 1, 1, 127, 128, 255, 255, 255};
  const int n = static_cast<int>(v.size());
  std::vector<uint8_t> chw;
  SUBCASE("RGB") {
    std::vector<uint16_t> rgb;
    for (uint16_t x : v) rgb.insert(rgb.end(), {x, x, static_cast<uint16_t>(65535 - x)});
    write_png16(dir / "rgb16.png", n, 1, 3, rgb);
    CHECK(load_image(dir / "rgb16.png", {3, 0, 0}, chw) == ImageSpec{3, 1, n});
    for (int k = 0; k < n; ++k) {
      CHECK(chw[k] == want[k]);
      CHECK(chw[n + k] == want[k]);
      CHECK(chw[2 * n + k] == 255 - want[k]);
    }
  }
  SUBCASE("RGBA, alpha dropped") {
    std::vector<uint16_t> rgba;
    for (uint16_t x : v) rgba.insert(rgba.end(), {x, 0, 65535, 1000});
    write_png16(dir / "rgba16.png", n, 1, 4, rgba);
    load_image(dir / "rgba16.png", {3, 0, 0}, chw);
    for (int k = 0; k < n; ++k) {
      CHECK(chw[k] == want[k]);
      CHECK(chw[n + k] == 0);
      CHECK(chw[2 * n + k] == 255);
    }
  }
  SUBCASE("grey: the high byte too (PIL would clip at 255), to 1 and to 3 channels") {
    write_png16(dir / "g16.png", n, 1, 1, v);
    CHECK(load_image(dir / "g16.png", {1, 0, 0}, chw) == ImageSpec{1, 1, n});
    CHECK(chw == want);
    load_image(dir / "g16.png", {3, 0, 0}, chw);
    for (int c = 0; c < 3; ++c)
      for (int k = 0; k < n; ++k) CHECK(chw[c * n + k] == want[k]);
  }
}

TEST_CASE("image_file: unreadable images throw naming the file") {
  TempDir dir;
  std::vector<uint8_t> chw;
  write_bytes(dir / "text.png", {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  std::string e = error_of([&] { load_image(dir / "text.png", {3, 0, 0}, chw); });
  CHECK(contains(e, dir / "text.png"));
  CHECK(contains(e, "cannot decode"));
  write_png16(dir / "ok16.png", 4, 4, 3, std::vector<uint16_t>(48, 999));
  auto png = read_bytes(dir / "ok16.png");
  png.resize(png.size() - 20);  // into the IDAT chunk
  write_bytes(dir / "cut16.png", png);
  e = error_of([&] { load_image(dir / "cut16.png", {3, 0, 0}, chw); });
  CHECK(contains(e, dir / "cut16.png"));
  CHECK(contains(e, "cannot decode"));
  e = error_of([&] { load_image(dir / "missing.jpg", {3, 0, 0}, chw); });
  CHECK(contains(e, dir / "missing.jpg"));
  CHECK(contains(e, "cannot open"));
  CHECK(contains(error_of([&] { load_image(dir / "ok16.png", {2, 0, 0}, chw); }), "1 or 3 channels"));

  ImageFiles files({dir / "ok16.png", dir / "text.png"}, {3, 0, 0});
  CHECK(files.size() == 2);
  CHECK(files.label(0) == -1);
  CHECK(has_varying_size(files.spec()));
  CHECK(files.get_sized(0, chw) == ImageSpec{3, 4, 4});
  CHECK(chw == std::vector<uint8_t>(48, 999 >> 8));
  CHECK(files.describe(1) == dir / "text.png");
  e = error_of([&] { files.get_sized(1, chw); });
  CHECK(contains(e, dir / "text.png"));
}

// Channel conversion as PIL does it (the expected values below were printed by
// PIL 9.4: Image.convert("L") and convert("RGB") on the same pixels).
#include <doctest/doctest.h>

#include "data/channels.h"
#include "data/idx.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

TEST_CASE("channels: luma601 is PIL's convert(\"L\")") {
  CHECK(luma601(255, 0, 0) == 76);
  CHECK(luma601(0, 255, 0) == 150);  // stb's (77, 150, 29) >> 8 would give 149
  CHECK(luma601(0, 0, 255) == 29);
  CHECK(luma601(10, 200, 77) == 129);
  CHECK(luma601(100, 50, 25) == 62);
  CHECK(luma601(255, 255, 255) == 255);
  for (int v = 0; v < 256; ++v) CHECK(luma601(v, v, v) == v);  // grey stays grey: the weights sum to 2^16
}

TEST_CASE("channels: hwc_to_chw from 1..4 components to 1 or 3 channels") {
  // Two pixels: (10, 200, 77, alpha 0) and (100, 50, 25, alpha 128).
  const std::vector<uint8_t> rgba = {10, 200, 77, 0, 100, 50, 25, 128};
  std::vector<uint8_t> out(6);
  hwc_to_chw(out.data(), 3, rgba.data(), 4, 2);
  CHECK(out == std::vector<uint8_t>{10, 100, 200, 50, 77, 25});  // alpha dropped, not composited
  hwc_to_chw(out.data(), 1, rgba.data(), 4, 2);
  CHECK(out[0] == 129);
  CHECK(out[1] == 62);
  const std::vector<uint8_t> rgb = {10, 200, 77, 100, 50, 25};
  hwc_to_chw(out.data(), 1, rgb.data(), 3, 2);
  CHECK(out[0] == 129);
  CHECK(out[1] == 62);
  hwc_to_chw(out.data(), 3, rgb.data(), 3, 2);
  CHECK(out == std::vector<uint8_t>{10, 100, 200, 50, 77, 25});
  const std::vector<uint8_t> la = {10, 0, 100, 128};  // grey + alpha
  hwc_to_chw(out.data(), 3, la.data(), 2, 2);
  CHECK(out == std::vector<uint8_t>{10, 100, 10, 100, 10, 100});
  hwc_to_chw(out.data(), 1, la.data(), 2, 2);
  CHECK(out[0] == 10);
  CHECK(out[1] == 100);
  const std::vector<uint8_t> grey = {7, 250};
  hwc_to_chw(out.data(), 3, grey.data(), 1, 2);
  CHECK(out == std::vector<uint8_t>{7, 250, 7, 250, 7, 250});
  CHECK(contains(error_of([&] { hwc_to_chw(out.data(), 2, grey.data(), 1, 2); }), "1 or 3"));
  CHECK(contains(error_of([&] { hwc_to_chw(out.data(), 3, grey.data(), 5, 2); }), "1 to 4"));
}

TEST_CASE("channels: convert_chw and with_channels on IDX images") {
  std::vector<uint8_t> out(6);
  const std::vector<uint8_t> planes = {10, 100, 200, 50, 77, 25};  // R, G, B planes of two pixels
  convert_chw(out.data(), 1, planes.data(), 3, 2);
  CHECK(out[0] == 129);
  CHECK(out[1] == 62);

  TempDir dir;
  // Two 2x3 grey images, labels 4 and 7.
  std::vector<uint8_t> px = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};
  std::vector<int> labels = {4, 7};
  write_idx(dir / "img", dir / "lab", px, labels, 2, 3, false);
  std::shared_ptr<const Dataset> grey = load_idx(dir / "img", dir / "lab");
  CHECK(with_channels(grey, 1) == grey);  // nothing to convert
  auto rgb = with_channels(grey, 3);
  CHECK(rgb->spec() == ImageSpec{3, 2, 3});
  CHECK(rgb->label(1) == 7);
  CHECK(rgb->classes() == grey->classes());
  std::vector<uint8_t> img(18);
  rgb->get(1, img.data());
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 6; ++k) CHECK(img[c * 6 + k] == px[6 + k]);
  std::vector<uint8_t> sized;
  CHECK(rgb->get_sized(0, sized) == ImageSpec{3, 2, 3});
  CHECK(sized == std::vector<uint8_t>{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5});
  // And back: luma of a grey RGB image is the grey.
  auto back = with_channels(rgb, 1);
  std::vector<uint8_t> g(6);
  back->get(1, g.data());
  CHECK(g == std::vector<uint8_t>(px.begin() + 6, px.end()));
}

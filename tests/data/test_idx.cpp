#include <doctest/doctest.h>

#include <filesystem>

#include "data/idx.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

namespace {

struct TinySet {
  int n = 7, h = 5, w = 3;  // h != w catches a transposed reader
  std::vector<uint8_t> pixels = random_pixels(7 * 5 * 3, 1);
  std::vector<int> labels = {3, 0, 9, 1, 1, 7, 2};
};

void check_matches(const Dataset& ds, const TinySet& t) {
  REQUIRE(ds.size() == static_cast<size_t>(t.n));
  CHECK(ds.spec() == ImageSpec{1, t.h, t.w});
  std::vector<uint8_t> img(image_bytes(ds.spec()));
  for (int i = 0; i < t.n; ++i) {
    ds.get(i, img.data());
    CHECK(std::equal(img.begin(), img.end(), t.pixels.begin() + i * t.h * t.w));
    CHECK(ds.label(i) == t.labels[i]);
  }
}

}  // namespace

TEST_CASE("idx: raw and gzip round trip") {
  TempDir dir;
  TinySet t;
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    std::string im = dir / (gz ? "im.gz" : "im"), lb = dir / (gz ? "lb.gz" : "lb");
    write_idx(im, lb, t.pixels, t.labels, t.h, t.w, gz);
    std::vector<uint8_t> head = read_bytes(im);
    REQUIRE(head.size() >= 4);
    CHECK((head[0] == 0x1f && head[1] == 0x8b) == gz);
    auto ds = load_idx(im, lb);
    check_matches(*ds, t);
    CHECK(ds->classes() == std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
    CHECK(load_idx(im, lb, fashion_mnist_classes())->classes() == fashion_mnist_classes());
  }
  // No temporaries left behind by the atomic writes.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) {
    CHECK(!contains(e.path().filename().string(), ".tmp"));
    ++files;
  }
  CHECK(files == 4);
}

TEST_CASE("idx: gzip is detected by content, not by name") {
  TempDir dir;
  TinySet t;
  write_idx(dir / "im.raw", dir / "lb.raw", t.pixels, t.labels, t.h, t.w, /*gzip=*/true);
  check_matches(*load_idx(dir / "im.raw", dir / "lb.raw"), t);
  write_idx(dir / "im.gz", dir / "lb.gz", t.pixels, t.labels, t.h, t.w, /*gzip=*/false);
  check_matches(*load_idx(dir / "im.gz", dir / "lb.gz"), t);
}

TEST_CASE("idx: fashion_mnist_classes") {
  const auto& c = fashion_mnist_classes();
  REQUIRE(c.size() == 10);
  CHECK(c[0] == "T-shirt/top");
  CHECK(c[9] == "Ankle boot");
}

TEST_CASE("idx: errors name the file") {
  TempDir dir;
  TinySet t;
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    std::string sfx = gz ? ".gz" : "";
    std::string im = dir / ("images" + sfx), lb = dir / ("labels" + sfx);
    // Plain blocks, not SUBCASEs: doctest subcases do not mix with loops.
    auto fresh = [&] { write_idx(im, lb, t.pixels, t.labels, t.h, t.w, gz); };
    fresh();

    {  // missing
      std::string e = error_of([&] { load_idx(dir / "nope-images", lb); });
      CHECK(contains(e, "nope-images"));
      e = error_of([&] { load_idx(im, dir / "nope-labels"); });
      CHECK(contains(e, "nope-labels"));
    }
    {  // files swapped: bad magic
      fresh();
      std::string e = error_of([&] { load_idx(lb, im); });
      CHECK(contains(e, lb));
      CHECK(contains(e, "magic"));
      CHECK(contains(e, "labels file"));
    }
    {  // garbage
      fresh();
      std::string junk = dir / "junk.bin";
      write_bytes(junk, {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!'});
      std::string e = error_of([&] { load_idx(junk, lb); });
      CHECK(contains(e, "junk.bin"));
      CHECK(contains(e, "magic"));
      write_bytes(junk, {0, 0});
      CHECK(contains(error_of([&] { load_idx(junk, lb); }), "junk.bin"));
    }
    {  // truncated images
      fresh();
      auto bytes = read_bytes(im);
      bytes.resize(bytes.size() - (gz ? 10 : 4));
      write_bytes(im, bytes);
      std::string e = error_of([&] { load_idx(im, lb); });
      CHECK(contains(e, im));
      CHECK(contains(e, "truncated"));
    }
    {  // truncated labels
      fresh();
      auto bytes = read_bytes(lb);
      bytes.resize(bytes.size() - (gz ? 12 : 1));
      write_bytes(lb, bytes);
      std::string e = error_of([&] { load_idx(im, lb); });
      CHECK(contains(e, lb));
    }
    {  // label count differs from image count
      fresh();
      std::string lb6 = dir / "six-labels";
      write_idx(dir / "six-images", lb6, std::vector<uint8_t>(6 * t.h * t.w), std::vector<int>{0, 1, 2, 3, 4, 5}, t.h,
                t.w, gz);
      std::string e = error_of([&] { load_idx(im, lb6); });
      CHECK(contains(e, "six-labels"));
      CHECK(contains(e, "6 labels"));
      CHECK(contains(e, "7 images"));
    }
    {  // label out of range
      fresh();
      std::string lb_big = dir / "big-labels";
      auto labels = t.labels;
      labels[4] = 10;
      write_idx(dir / "big-images", lb_big, t.pixels, labels, t.h, t.w, gz);
      std::string e = error_of([&] { load_idx(im, lb_big); });
      CHECK(contains(e, "big-labels"));
      CHECK(contains(e, "label 10 at index 4"));
      // With enough class names the same file loads.
      std::vector<std::string> names(11, "x");
      CHECK(load_idx(im, lb_big, names)->label(4) == 10);
    }
    {  // trailing bytes
      fresh();
      auto bytes = read_bytes(lb);
      if (!gz) {
        bytes.push_back(0);
        write_bytes(lb, bytes);
        CHECK(contains(error_of([&] { load_idx(im, lb); }), lb));
      }
    }
  }
}

TEST_CASE("idx: write_idx rejects bad input") {
  TempDir dir;
  CHECK(contains(
      error_of([&] { write_idx(dir / "i", dir / "l", std::vector<uint8_t>(5), std::vector<int>{0}, 2, 2, false); }),
      "pixel bytes"));
  CHECK(contains(
      error_of([&] { write_idx(dir / "i", dir / "l", std::vector<uint8_t>(4), std::vector<int>{300}, 2, 2, false); }),
      "300"));
}

TEST_CASE("idx: an image size over 2^28 pixels is refused even with no images") {
  // With 0 images nothing else bounded it, and a buffer sized from spec() failed with std::bad_alloc.
  TempDir dir;
  std::vector<uint8_t> im = {0, 0, 8, 3, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff};
  write_bytes(dir / "im", im);
  write_bytes(dir / "lb", {0, 0, 8, 1, 0, 0, 0, 0});
  CHECK(error_of([&] { load_idx(dir / "im", dir / "lb"); }) ==
        dir / "im" + ": bad image size 2147483647x2147483647 (over 2^28 pixels: corrupt header?)");
  im[9] = im[10] = im[11] = 0, im[8] = 0, im[11] = 0;  // 0 x 2147483647
  write_bytes(dir / "im", im);
  CHECK(error_of([&] { load_idx(dir / "im", dir / "lb"); }) == dir / "im" + ": bad image size 0x2147483647");
  // 16384 x 16384, no images: the largest accepted.
  im = {0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0x40, 0};
  write_bytes(dir / "im", im);
  CHECK(load_idx(dir / "im", dir / "lb")->spec() == ImageSpec{1, 16384, 16384});
}

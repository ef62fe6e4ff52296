#include <doctest/doctest.h>

#include <filesystem>

#include "data/image_folder.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

namespace {

// root/cat: a.png (RGB 8x6), b.bmp (grey 4x4), sub/c.JPG (RGB 16x16)
// root/dog: y.PNG (RGBA 8x8), z.jpeg (grey 8x8), notes.txt
// ignored: root/.hidden/h.png, root/dog/.h.png, root/stray.png (a file, not a class)
struct Tree {
  TempDir dir;
  std::string root = dir / "root";
  std::vector<uint8_t> y_rgba = random_pixels(8 * 8 * 4, 7);
  Tree() {
    write_image(root + "/cat/a.png", 8, 6, 3, std::vector<uint8_t>(8 * 6 * 3, 200));
    write_image(root + "/cat/b.bmp", 4, 4, 1, std::vector<uint8_t>(4 * 4, 90));
    write_image(root + "/cat/sub/c.JPG", 16, 16, 3, std::vector<uint8_t>(16 * 16 * 3, 128));
    write_image(root + "/dog/y.PNG", 8, 8, 4, y_rgba);
    write_image(root + "/dog/z.jpeg", 8, 8, 1, std::vector<uint8_t>(8 * 8, 60));
    write_bytes(root + "/dog/notes.txt", {'h', 'i'});
    write_image(root + "/.hidden/h.png", 8, 8, 1, std::vector<uint8_t>(64, 1));
    write_image(root + "/dog/.h.png", 8, 8, 1, std::vector<uint8_t>(64, 1));
    write_image(root + "/stray.png", 8, 8, 1, std::vector<uint8_t>(64, 1));
  }
};

std::string name_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

}  // namespace

TEST_CASE("image_folder: classes, labels and order follow torchvision") {
  Tree t;
  ImageFolder ds(t.root, {3, 8, 8});
  CHECK(ds.classes() == std::vector<std::string>{"cat", "dog"});
  REQUIRE(ds.size() == 5);
  std::vector<std::string> names;
  for (size_t i = 0; i < ds.size(); ++i) names.push_back(name_of(ds.path(i)));
  CHECK(names == std::vector<std::string>{"a.png", "b.bmp", "c.JPG", "y.PNG", "z.jpeg"});
  std::vector<int> labels;
  for (size_t i = 0; i < ds.size(); ++i) labels.push_back(ds.label(i));
  CHECK(labels == std::vector<int>{0, 0, 0, 1, 1});
  CHECK(ds.spec() == ImageSpec{3, 8, 8});
}

TEST_CASE("image_folder: decode converts channels and resizes") {
  Tree t;
  SUBCASE("RGB target") {
    ImageFolder ds(t.root, {3, 8, 8});
    std::vector<uint8_t> img(3 * 8 * 8);
    // y.PNG is already 8x8: exact pixels, alpha dropped, HWC -> CHW.
    ds.get(3, img.data());
    for (int k = 0; k < 64; ++k)
      for (int c = 0; c < 3; ++c) CHECK(img[c * 64 + k] == t.y_rgba[k * 4 + c]);
    // Flat images stay flat through resize (8x6 -> 8x8, 4x4 -> 8x8, 16x16 -> 8x8).
    auto flat = [&](size_t i, int value, int tol) {
      ds.get(i, img.data());
      for (uint8_t v : img) CHECK(std::abs(int(v) - value) <= tol);
    };
    flat(0, 200, 1);
    flat(1, 90, 1);   // grey replicated to three channels
    flat(2, 128, 3);  // JPEG is lossy
  }
  SUBCASE("grey target, other size") {
    ImageFolder ds(t.root, {1, 5, 7});
    std::vector<uint8_t> img(5 * 7);
    ds.get(4, img.data());
    for (uint8_t v : img) CHECK(std::abs(int(v) - 60) <= 2);
    // RGBA -> alpha dropped, then PIL's convert("L"): ITU-R 601 luma in 16-bit fixed point.
    ImageFolder same(t.root, {1, 8, 8});
    std::vector<uint8_t> g(64);
    same.get(3, g.data());
    for (int k = 0; k < 64; ++k) {
      const uint8_t* p = &t.y_rgba[k * 4];
      CHECK(int(g[k]) == (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
    }
  }
}

TEST_CASE("image_folder: a corrupt or vanished image throws naming the file") {
  Tree t;
  write_bytes(t.root + "/dog/broken.png", {0x89, 'P', 'N', 'G', 1, 2, 3, 4, 5});
  // A real PNG cut in half.
  auto png = read_bytes(t.root + "/cat/a.png");
  png.resize(png.size() / 2);
  write_bytes(t.root + "/cat/half.png", png);
  ImageFolder ds(t.root, {3, 8, 8});
  std::vector<uint8_t> img(3 * 8 * 8);
  for (size_t i = 0; i < ds.size(); ++i) {
    std::string name = name_of(ds.path(i));
    std::string e = error_of([&] { ds.get(i, img.data()); });
    if (name == "broken.png" || name == "half.png") {
      CHECK(contains(e, ds.path(i)));
      CHECK(contains(e, "cannot decode"));
    } else {
      CHECK(e.empty());
    }
  }
  std::filesystem::remove(t.root + "/cat/a.png");
  std::string e = error_of([&] { ds.get(0, img.data()); });
  CHECK(contains(e, "a.png"));
  CHECK(contains(e, "cannot open"));
}

TEST_CASE("image_folder: layout errors") {
  TempDir dir;
  CHECK(contains(error_of([&] { ImageFolder(dir / "missing", {1, 4, 4}); }), "missing"));
  std::filesystem::create_directories(dir / "empty");
  std::string e = error_of([&] { ImageFolder(dir / "empty", {1, 4, 4}); });
  CHECK(contains(e, "empty"));
  CHECK(contains(e, "no class directories"));
  // A loose image at the root is not a class.
  write_image(dir / "flat/img.png", 4, 4, 1, std::vector<uint8_t>(16));
  CHECK(contains(error_of([&] { ImageFolder(dir / "flat", {1, 4, 4}); }), "no class"));
  write_image(dir / "r/good/img.png", 4, 4, 1, std::vector<uint8_t>(16));
  write_bytes(dir / "r/nothing/readme.txt", {'x'});
  e = error_of([&] { ImageFolder(dir / "r", {1, 4, 4}); });
  CHECK(contains(e, "nothing"));
  CHECK(contains(e, "no images"));
  CHECK(contains(error_of([&] { ImageFolder(dir / "r", {2, 4, 4}); }), "channels"));
  CHECK(contains(error_of([&] { ImageFolder(dir / "r", {1, 0, 4}); }), "size"));
}

TEST_CASE("image_folder: check_classes") {
  Tree t;
  ImageFolder ds(t.root, {1, 8, 8});
  check_classes({"cat", "dog"}, ds, "cfg.data.classes");
  std::string e = error_of([&] { check_classes({"cat", "dog", "eel"}, ds, "cfg.data.classes"); });
  CHECK(contains(e, "cfg.data.classes"));
  CHECK(contains(e, "missing ['eel']"));
  e = error_of([&] { check_classes({"cat"}, ds, "x"); });
  CHECK(contains(e, "unexpected ['dog']"));
  e = error_of([&] { check_classes({"dog", "cat"}, ds, "x"); });
  CHECK(contains(e, "different order"));
}

#include <doctest/doctest.h>

#include <filesystem>
#include <set>

#include "data/export.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

TEST_CASE("export: class directory names keep label order") {
  CHECK(export_class_dir(0, 10, "T-shirt/top") == "00_T-shirt_top");
  CHECK(export_class_dir(9, 10, "Ankle boot") == "09_Ankle boot");
  CHECK(export_class_dir(7, 100, "a\\b") == "07_a_b");
  CHECK(export_class_dir(7, 101, "x") == "007_x");
}

TEST_CASE("export: IDX -> PNG folder -> ImageFolder keeps pixels and labels") {
  TempDir dir;
  const int n = 23, h = 5, w = 4;
  std::vector<uint8_t> pixels = random_pixels(n * h * w, 3);
  std::vector<int> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = (i * 7) % 10;  // every class, not in index order
  write_idx(dir / "im.gz", dir / "lb.gz", pixels, labels, h, w, true);
  auto src = load_idx(dir / "im.gz", dir / "lb.gz", fashion_mnist_classes());

  export_images(*src, dir / "out");
  ImageFolder back(dir / "out", {1, h, w});
  REQUIRE(back.classes().size() == 10);
  for (int c = 0; c < 10; ++c) CHECK(back.classes()[c] == export_class_dir(c, 10, fashion_mnist_classes()[c]));
  REQUIRE(back.size() == static_cast<size_t>(n));

  std::set<long> seen;
  std::vector<uint8_t> a(h * w), b(h * w);
  long prev = -1;
  int prev_label = -1;
  for (size_t i = 0; i < back.size(); ++i) {
    std::filesystem::path p = back.path(i);
    CHECK(p.extension() == ".png");
    long idx = std::stol(p.stem().string());
    seen.insert(idx);
    CHECK(back.label(i) == src->label(idx));
    back.get(i, a.data());
    src->get(idx, b.data());
    CHECK(a == b);
    // Within a class, files come back in source index order.
    if (back.label(i) == prev_label) CHECK(idx > prev);
    prev = idx;
    prev_label = back.label(i);
  }
  CHECK(seen.size() == static_cast<size_t>(n));

  // Exporting again over the same directory overwrites and leaves no temporaries.
  export_images(*src, dir / "out");
  size_t files = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir.path() / "out"))
    if (e.is_regular_file()) {
      CHECK(e.path().extension() == ".png");
      ++files;
    }
  CHECK(files == static_cast<size_t>(n));
}

TEST_CASE("export: RGB round trip") {
  TempDir dir;
  std::vector<std::vector<uint8_t>> imgs;
  for (int i = 0; i < 4; ++i) {
    imgs.push_back(random_pixels(6 * 5 * 3, 10 + i));
    write_image(dir / ("in/" + std::string(i < 2 ? "red" : "blue") + "/" + std::to_string(i) + ".png"), 6, 5, 3,
                imgs.back());
  }
  ImageFolder src(dir / "in", {3, 5, 6});
  export_images(src, dir / "out");
  ImageFolder back(dir / "out", {3, 5, 6});
  CHECK(back.classes() == std::vector<std::string>{"00_blue", "01_red"});
  REQUIRE(back.size() == src.size());
  std::vector<uint8_t> a(90), b(90);
  for (size_t i = 0; i < src.size(); ++i) {
    // Same class order (blue < red) and index order, so the same positions.
    CHECK(back.label(i) == src.label(i));
    back.get(i, a.data());
    src.get(i, b.data());
    CHECK(a == b);
  }
}

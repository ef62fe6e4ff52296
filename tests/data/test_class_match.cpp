#include <doctest/doctest.h>

#include "data/class_match.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

namespace {

// torchvision's ImageFolder of Fashion-MNIST: the folders sorted byte-wise.
const std::vector<std::string> kTorchvisionFolders = {"Ankle_boot", "Bag",   "Coat",    "Dress",       "Pullover",
                                                      "Sandal",     "Shirt", "Sneaker", "T-shirt_top", "Trouser"};

std::vector<int> match(const std::vector<std::string>& model, const std::vector<std::string>& folders,
                       const ClassMap& map = {}) {
  return match_class_names(model, folders, map, "/data/set", "HINT");
}

}  // namespace

TEST_CASE("class_match: keys ignore case, spaces, _ - / and a numeric prefix") {
  CHECK(class_key("T-shirt/top") == "tshirttop");
  CHECK(class_key("T-shirt_top") == "tshirttop");
  CHECK(class_key("00_T-shirt_top") == "tshirttop");
  CHECK(class_key("t shirt TOP") == "tshirttop");
  CHECK(class_key("Ankle boot") == "ankleboot");
  CHECK(class_key("09_Ankle boot") == "ankleboot");
  CHECK(class_key("123-Ankle-Boot") == "ankleboot");
  CHECK(class_key("7.up") == "up");
  CHECK(class_key("a\\b") == "ab");
  // Digits alone, or with nothing after the separator, are the name, not a prefix.
  CHECK(class_key("3") == "3");
  CHECK(class_key("10_") == "10");
  CHECK(class_key("3d") == "3d");
  CHECK(class_key("Dress") == "dress");
}

TEST_CASE("class_match: torchvision's folders map to Fashion-MNIST's labels by name") {
  const auto& model = fashion_mnist_classes();
  // T-shirt/top 0, Trouser 1, Pullover 2, Dress 3, Coat 4, Sandal 5, Shirt 6, Sneaker 7, Bag 8, Ankle boot 9.
  CHECK(match(model, kTorchvisionFolders) == std::vector<int>{9, 8, 4, 3, 2, 5, 6, 7, 0, 1});
  // qforge's export names, and any case and separators.
  CHECK(match(model, {"00_T-shirt_top", "01_Trouser", "09_Ankle boot"}) == std::vector<int>{0, 1, 9});
  CHECK(match(model, {"ANKLE-BOOT", "t shirt top", "sneaker"}) == std::vector<int>{9, 0, 7});
  // A folder of the model's exact name wins over key matches.
  CHECK(match({"a-b", "a_b"}, {"a_b", "a-b"}) == std::vector<int>{1, 0});
  // A set may hold some of the classes only.
  CHECK(match(model, {"Bag"}) == std::vector<int>{8});
}

TEST_CASE("class_match: unmatched names are listed on both sides, with the folder and the hint") {
  std::string e = error_of([] { match({"Ankle boot", "Bag", "Coat"}, {"Ankle_boot", "Boots", "Purse"}); });
  CHECK(contains(e, "/data/set: 2 of 3 folders match no class of the model by name: ['Boots', 'Purse']"));
  CHECK(contains(e, "model classes without a folder: ['Bag', 'Coat']"));
  CHECK(contains(e, "HINT"));
}

TEST_CASE("class_match: ambiguities are errors") {
  // Two folders on one class.
  std::string e = error_of([] { match(fashion_mnist_classes(), {"Ankle_boot", "ankle boot"}); });
  CHECK(contains(e, "/data/set"));
  CHECK(contains(e, "['Ankle_boot', 'ankle boot']"));
  CHECK(contains(e, "'Ankle boot'"));
  // One folder, two model classes with its key.
  e = error_of([] { match({"a-b", "a_b"}, {"A B"}); });
  CHECK(contains(e, "folder 'A B' matches several model classes"));
  CHECK(contains(e, "['a-b', 'a_b']"));
}

TEST_CASE("class_match: class maps, as lines and as JSON") {
  TempDir dir;
  const std::vector<std::string> model = {"Ankle boot", "Bag", "Coat"};
  const std::vector<std::string> folders = {"boots", "coats", "sacks"};
  CHECK(contains(error_of([&] { match(model, folders); }), "['boots', 'coats', 'sacks']"));
  write_bytes(dir / "map.txt", {});
  std::ofstream(dir / "map.txt") << "# folder=class\n\nboots=Ankle boot\r\n  sacks = bag \ncoats=Coat\nunused=Bag\n";
  ClassMap m = read_class_map(dir / "map.txt");
  REQUIRE(m.size() == 4);
  CHECK(m[1] == std::pair<std::string, std::string>{"sacks", "bag"});
  // "bag" is Bag by key; "unused" names no folder of this set and is ignored.
  CHECK(match(model, folders, m) == std::vector<int>{0, 2, 1});

  std::ofstream(dir / "map.json") << R"({"sacks": "Bag", "boots": "Ankle boot", "coats": "Coat"})";
  m = read_class_map(dir / "map.json");
  CHECK(m.front().first == "sacks");  // file order kept
  CHECK(match(model, folders, m) == std::vector<int>{0, 2, 1});
  // The map may put several folders on one class; matching by name may not.
  std::ofstream(dir / "many.txt") << "boots=Ankle boot\nwellies=Ankle boot\n";
  CHECK(match(model, {"boots", "wellies"}, read_class_map(dir / "many.txt")) == std::vector<int>{0, 0});
  // A map overrides even an exact name.
  std::ofstream(dir / "swap.txt") << "Bag=Coat\nCoat=Bag\n";
  CHECK(match(model, {"Bag", "Coat"}, read_class_map(dir / "swap.txt")) == std::vector<int>{2, 1});

  std::ofstream(dir / "bad_class.txt") << "boots=Wellington\n";
  std::string e = error_of([&] { match(model, {"boots"}, read_class_map(dir / "bad_class.txt")); });
  CHECK(contains(e, "'boots' to 'Wellington', which is not a class of the model"));
  std::ofstream(dir / "no_eq.txt") << "boots=Ankle boot\nsacks Bag\n";
  e = error_of([&] { read_class_map(dir / "no_eq.txt"); });
  CHECK(contains(e, dir / "no_eq.txt:2"));
  CHECK(contains(e, "expected folder=class"));
  std::ofstream(dir / "twice.txt") << "boots=Ankle boot\nboots=Bag\n";
  CHECK(contains(error_of([&] { read_class_map(dir / "twice.txt"); }), "'boots' is mapped twice"));
  std::ofstream(dir / "empty.txt") << "boots=\n";
  CHECK(contains(error_of([&] { read_class_map(dir / "empty.txt"); }), "empty class name"));
  std::ofstream(dir / "bad.json") << R"({"boots": 3})";
  e = error_of([&] { read_class_map(dir / "bad.json"); });
  CHECK(contains(e, dir / "bad.json"));
  CHECK(contains(e, "'boots' must be a string"));
  std::ofstream(dir / "broken.json") << R"({"boots": )";
  CHECK(contains(error_of([&] { read_class_map(dir / "broken.json"); }), "not valid JSON"));
  CHECK(contains(error_of([&] { read_class_map(dir / "nope.txt"); }), "cannot open class map"));
}

TEST_CASE("class_match: a folder in torchvision's order gets the model's labels") {
  TempDir dir;
  // One image per folder whose pixel value is its Fashion-MNIST label times 20.
  const auto& model = fashion_mnist_classes();
  const std::vector<int> want = {9, 8, 4, 3, 2, 5, 6, 7, 0, 1};
  for (size_t f = 0; f < kTorchvisionFolders.size(); ++f)
    write_image(dir / (kTorchvisionFolders[f] + "/x.png"), 2, 2, 1,
                std::vector<uint8_t>(4, static_cast<uint8_t>(want[f] * 20)));
  auto folder = std::make_shared<ImageFolder>(dir.path().string(), ImageSpec{1, 2, 2});
  CHECK(folder->label(0) == 0);  // torchvision's numbering: Ankle_boot first
  auto ds = match_classes(model, folder, "dir");
  CHECK(ds->classes() == model);
  REQUIRE(ds->size() == 10);
  std::vector<uint8_t> img(4);
  for (size_t i = 0; i < ds->size(); ++i) {
    ds->get(i, img.data());
    CHECK(ds->label(i) == img[0] / 20);
    CHECK(ds->describe(i) == folder->path(i));
  }
  // Already the model's classes: the dataset itself.
  CHECK(match_classes(folder->classes(), folder, "dir") == folder);
}

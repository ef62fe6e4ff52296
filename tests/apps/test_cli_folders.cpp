// End-to-end tests of real folders and files: a torchvision-named ImageFolder
// evaluated by class name, class maps, models with another channel count than
// the data, photos of mixed sizes and formats read with the model's own
// preprocessing, and `qforge predict`.
#include <doctest/doctest.h>
#include <stb_image.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "data/test_util.h"

using namespace qforge::testing;
using nlohmann::json;
namespace dt = qforge::data::test;

namespace {

// torchvision's folder name for a qforge export directory: "09_Ankle boot" -> "Ankle_boot".
std::string torchvision_name(std::string dir) {
  dir = dir.substr(dir.find('_') + 1);
  std::replace(dir.begin(), dir.end(), ' ', '_');
  return dir;
}

// Trains the tiny config, exports its test set as PNGs (d/png, qforge's names), and
// returns the eval JSON of the model on the IDX test set.
json train_and_export(const ScratchDir& d, const std::string& cfg, const std::string& sets = "") {
  RunResult t = run_qforge("train " + cfg + sets);
  INFO(t.out);
  REQUIRE(t.code == 0);
  RunResult x = run_qforge("data export-images --images " + (d / "test-images.gz") + " --labels " +
                           (d / "test-labels.gz") + " --out " + (d / "png"));
  INFO(x.out);
  REQUIRE(x.code == 0);
  RunResult e = run_qforge("eval --json --model " + (d / "run/last.safetensors") + " --data " + cfg + sets);
  INFO(e.out);
  REQUIRE(e.code == 0);
  return json::parse(e.out);
}

// A copy of d/png with torchvision's folder names.
std::string torchvision_copy(const ScratchDir& d, const std::string& name) {
  std::string root = d / name;
  fs::create_directories(root);
  for (auto& e : fs::directory_iterator(d / "png"))
    fs::copy(e.path(), fs::path(root) / torchvision_name(e.path().filename().string()), fs::copy_options::recursive);
  return root;
}

// Every exported PNG as (path, label), label from its "NN_" folder prefix, in a fixed order.
std::vector<std::pair<std::string, int>> exported(const ScratchDir& d) {
  std::vector<std::pair<std::string, int>> v;
  for (auto& e : fs::recursive_directory_iterator(d / "png"))
    if (e.is_regular_file())
      v.emplace_back(e.path().string(), std::stoi(e.path().parent_path().filename().string().substr(0, 2)));
  std::sort(v.begin(), v.end());
  return v;
}

// Grey HWC pixels of a PNG.
std::vector<uint8_t> read_grey(const std::string& path, int& w, int& h) {
  int comp = 0;
  unsigned char* px = stbi_load(path.c_str(), &w, &h, &comp, 1);
  REQUIRE(px);
  std::vector<uint8_t> v(px, px + w * h);
  stbi_image_free(px);
  return v;
}

}  // namespace

TEST_CASE("eval on a torchvision-named folder: classes matched by name, labels by name; class maps") {
  ScratchDir d("folders_tv");
  std::string cfg = write_tiny_config(d);
  json ref = train_and_export(d, cfg);
  const std::string model = d / "run/last.safetensors";
  std::string tv = torchvision_copy(d, "tv");
  REQUIRE(fs::is_directory(tv + "/Ankle_boot"));
  REQUIRE(fs::is_directory(tv + "/T-shirt_top"));

  RunResult e = run_qforge("eval --json --model " + model + " --data " + tv);
  INFO(e.out);
  REQUIRE(e.code == 0);
  json j = json::parse(e.out);
  // Alphabetical folders, the model's labels: the same confusion matrix, in the model's class order.
  CHECK(j["n"] == 100);
  CHECK(j["top1"] == ref["top1"]);
  CHECK(j["confusion"] == ref["confusion"]);
  CHECK(j["classes"][0] == "T-shirt/top");
  CHECK(j["classes"][9] == "Ankle boot");

  // A folder named otherwise: the error lists both sides and names the directory.
  fs::rename(tv + "/Bag", tv + "/Sacks");
  RunResult bad = run_qforge("eval --model " + model + " --data " + tv);
  INFO(bad.out);
  CHECK(bad.code != 0);
  CHECK(bad.out.find(tv + ": 1 of 10 folders match no class of the model by name: ['Sacks']") != std::string::npos);
  CHECK(bad.out.find("model classes without a folder: ['Bag']") != std::string::npos);
  CHECK(bad.out.find("--class-map") != std::string::npos);
  // A class map says how, as lines or as JSON.
  std::ofstream(d / "map.txt") << "# folder=class\nSacks=Bag\n";
  std::ofstream(d / "map.json") << R"({"Sacks": "Bag"})";
  for (const char* m : {"map.txt", "map.json"}) {
    RunResult mapped = run_qforge("eval --json --model " + model + " --data " + tv + " --class-map " + (d / m));
    INFO(mapped.out);
    REQUIRE(mapped.code == 0);
    CHECK(json::parse(mapped.out)["confusion"] == ref["confusion"]);
  }
  std::ofstream(d / "wrong.txt") << "Sacks=Handbag\n";
  RunResult wrong = run_qforge("eval --model " + model + " --data " + tv + " --class-map " + (d / "wrong.txt"));
  CHECK(wrong.code != 0);
  CHECK(wrong.out.find("'Handbag', which is not a class of the model") != std::string::npos);

  // Two folders on one class by name: ambiguous.
  fs::copy(tv + "/Coat", tv + "/COAT", fs::copy_options::recursive);
  RunResult amb = run_qforge("eval --model " + model + " --data " + tv + " --class-map " + (d / "map.txt"));
  INFO(amb.out);
  CHECK(amb.code != 0);
  CHECK(amb.out.find("['COAT', 'Coat'] all match the model's class 'Coat'") != std::string::npos);
  // Images of a class the model lacks are an error, unless mapped.
  fs::remove_all(tv + "/COAT");
  fs::copy(tv + "/Shirt", tv + "/Hats", fs::copy_options::recursive);
  RunResult extra = run_qforge("eval --model " + model + " --data " + tv + " --class-map " + (d / "map.txt"));
  CHECK(extra.code != 0);
  CHECK(extra.out.find("['Hats']") != std::string::npos);
}

TEST_CASE("predict: top-k with softmax probabilities, --json, --labels, int8 models") {
  ScratchDir d("folders_predict");
  std::string cfg = write_tiny_config(d);
  json ref = train_and_export(d, cfg);
  const std::string model = d / "run/last.safetensors";
  auto files = exported(d);
  REQUIRE(files.size() == 100);

  // Text: per image its path, then k lines "rank name probability%", most probable first.
  RunResult t =
      run_qforge("predict --top-k 3 --model " + model + " '" + files[0].first + "' '" + files[50].first + "'");
  INFO(t.out);
  REQUIRE(t.code == 0);
  std::istringstream lines(t.out);
  std::string line;
  std::vector<std::string> all;
  while (std::getline(lines, line)) all.push_back(line);
  REQUIRE(all.size() == 8);
  CHECK(all[0] == files[0].first);
  CHECK(all[4] == files[50].first);
  for (int img = 0; img < 2; ++img) {
    double last = 101;
    for (int r = 1; r <= 3; ++r) {
      const std::string& l = all[img * 4 + r];
      CHECK(std::stoi(l) == r);
      double pct = std::stod(l.substr(l.rfind(' ') + 1));
      CHECK(pct <= last);
      last = pct;
    }
  }

  // JSON for all 100 test images: predict's top-1 is eval's prediction, so its accuracy is eval's.
  std::string args;
  for (auto& [p, label] : files) args += " '" + p + "'";
  RunResult js = run_qforge("predict --json --top-k 10 --batch 7 --model " + model + args);
  REQUIRE(js.code == 0);
  json pj = json::parse(js.out);
  REQUIRE(pj["predictions"].size() == 100);
  int correct = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const json& p = pj["predictions"][i];
    CHECK(p["image"] == files[i].first);
    REQUIRE(p["top"].size() == 10);
    double sum = 0, last = 2;
    for (auto& c : p["top"]) {
      double prob = c["probability"];
      CHECK(prob <= last);
      CHECK(prob >= 0);
      last = prob;
      sum += prob;
      CHECK(c["class"] == ref["classes"][c["label"].get<int>()]);
    }
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-9));  // all classes: the whole softmax
    correct += p["top"][0]["label"] == files[i].second;
  }
  CHECK(correct == ref["correct"]);
  RunResult k3 = run_qforge("predict --json --top-k 3 --model " + model + " '" + files[7].first + "'");
  REQUIRE(k3.code == 0);
  json top3 = json::parse(k3.out)["predictions"][0]["top"];
  REQUIRE(top3.size() == 3);
  double sum3 = 0;
  for (auto& c : top3) sum3 += c["probability"].get<double>();
  CHECK(sum3 <= 1.0 + 1e-12);
  for (int r = 0; r < 3; ++r) {  // batches of 7 and of 1 may round differently in the last bits
    CHECK(top3[r]["label"] == pj["predictions"][7]["top"][r]["label"]);
    CHECK(top3[r]["probability"].get<double>() ==
          doctest::Approx(pj["predictions"][7]["top"][r]["probability"].get<double>()).epsilon(1e-5));
  }

  // --labels: names from a file, as many as the model has classes.
  std::ofstream(d / "labels.txt") << "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n";
  RunResult lab = run_qforge("predict --json --top-k 1 --labels " + (d / "labels.txt") + " --model " + model + " '" +
                             files[0].first + "'");
  REQUIRE(lab.code == 0);
  json l0 = json::parse(lab.out)["predictions"][0]["top"][0];
  const char* names[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
  CHECK(l0["class"] == names[l0["label"].get<int>()]);
  std::ofstream(d / "nine.txt") << "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
  RunResult nine =
      run_qforge("predict --labels " + (d / "nine.txt") + " --model " + model + " '" + files[0].first + "'");
  CHECK(nine.code != 0);
  CHECK(nine.out.find(d / "nine.txt" + ": 9 class names, the model has 10 classes") != std::string::npos);
  CHECK(run_qforge("predict --top-k 0 --model " + model + " '" + files[0].first + "'").code != 0);
  // An image that does not decode: named.
  dt::write_bytes(d / "broken.png", {0x89, 'P', 'N', 'G', 0, 1, 2});
  RunResult broken = run_qforge("predict --model " + model + " '" + files[0].first + "' " + (d / "broken.png"));
  CHECK(broken.code != 0);
  CHECK(broken.out.find(d / "broken.png" + ": cannot decode image") != std::string::npos);

  // An int8 model predicts the classes its own eval does.
  RunResult ptq = run_qforge("ptq " + cfg + " --set model.init_from=" + model + " --set output.dir=" + (d / "ptq"));
  INFO(ptq.out);
  REQUIRE(ptq.code == 0);
  RunResult qe = run_qforge("eval --json --model " + (d / "ptq/model.qfm") + " --data " + (d / "png"));
  REQUIRE(qe.code == 0);
  RunResult qp = run_qforge("predict --json --top-k 1 --model " + (d / "ptq/model.qfm") + args);
  INFO(qp.out);
  REQUIRE(qp.code == 0);
  json qj = json::parse(qp.out);
  CHECK(qj["kind"] == "int8");
  int qcorrect = 0;
  for (size_t i = 0; i < files.size(); ++i) qcorrect += qj["predictions"][i]["top"][0]["label"] == files[i].second;
  CHECK(qcorrect == json::parse(qe.out)["correct"]);
}

TEST_CASE("a 3-channel model on 1-channel IDX data, a 1-channel model on RGB, RGBA, 16-bit and BMP files") {
  ScratchDir d("folders_channels");
  std::string cfg = write_tiny_config(d);
  // 3 channels: IDX grey copied to R, G, B; per-channel mean and std.
  const std::string rgb_sets =
      " --set model.in_channels=3 --set data.mean=[0.2,0.2,0.2] --set data.std=[0.3,0.3,0.3] --set train.epochs=1";
  json ref3 = train_and_export(d, cfg, rgb_sets);
  CHECK(ref3["top1"].get<double>() > 30.0);
  RunResult e3 = run_qforge("eval --json --model " + (d / "run/last.safetensors") + " --data " + (d / "png"));
  INFO(e3.out);
  REQUIRE(e3.code == 0);
  CHECK(json::parse(e3.out)["confusion"] == ref3["confusion"]);  // grey PNGs give the same RGB input
  fs::remove_all(d / "run");

  // 1 channel, on files of other kinds holding the same grey pixels: the same probabilities.
  RunResult t = run_qforge("train " + cfg + " --set train.epochs=1");
  REQUIRE(t.code == 0);
  const std::string model = d / "run/last.safetensors";
  auto files = exported(d);
  std::vector<std::string> originals, variants;
  for (int i = 0; i < 5; ++i) {
    int w = 0, h = 0;
    std::vector<uint8_t> g = read_grey(files[i * 20].first, w, h);
    std::vector<uint8_t> rgb, rgba;
    std::vector<uint16_t> g16;
    for (uint8_t v : g) {
      rgb.insert(rgb.end(), {v, v, v});
      rgba.insert(rgba.end(), {v, v, v, static_cast<uint8_t>(v * 7)});  // any alpha: dropped
      g16.push_back(static_cast<uint16_t>(v * 256 + v * 37 % 256));     // the high byte is v
    }
    std::string base = d / ("photos/c/" + std::to_string(i));
    dt::write_image(base + "_rgb.png", w, h, 3, rgb);
    dt::write_image(base + "_rgba.png", w, h, 4, rgba);
    dt::write_image(base + "_rgb.bmp", w, h, 3, rgb);
    dt::write_png16(base + "_16.png", w, h, 1, g16);
    for (const char* suffix : {"_rgb.png", "_rgba.png", "_rgb.bmp", "_16.png"}) {
      originals.push_back(files[i * 20].first);
      variants.push_back(base + suffix);
    }
  }
  auto predict = [&](const std::vector<std::string>& paths) {
    std::string args;
    for (auto& p : paths) args += " '" + p + "'";
    RunResult r = run_qforge("predict --json --top-k 10 --model " + model + args);
    INFO(r.out);
    REQUIRE(r.code == 0);
    return json::parse(r.out)["predictions"];
  };
  json po = predict(originals), pv = predict(variants);
  REQUIRE(pv.size() == variants.size());
  for (size_t i = 0; i < variants.size(); ++i) {
    INFO(variants[i]);
    CHECK(pv[i]["top"] == po[i]["top"]);
  }
  // Larger photos and a JPEG are stretched to the model's 12x12 and evaluate; a corrupt one is named.
  std::vector<uint8_t> big(36 * 24 * 3);
  for (size_t k = 0; k < big.size(); ++k) big[k] = static_cast<uint8_t>(k * 31);
  dt::write_image(d / "photos/c/big.jpg", 36, 24, 3, big);
  dt::write_image(d / "photos/c/big.png", 24, 36, 4, std::vector<uint8_t>(24 * 36 * 4, 99));
  std::ofstream(d / "photos.txt") << "c=Bag\n";
  RunResult ev =
      run_qforge("eval --json --model " + model + " --data " + (d / "photos") + " --class-map " + (d / "photos.txt"));
  INFO(ev.out);
  REQUIRE(ev.code == 0);
  CHECK(json::parse(ev.out)["n"] == 22);
  dt::write_bytes(d / "photos/c/zz_corrupt.jpg", {0xff, 0xd8, 0xff, 0xe0, 1, 2, 3});
  RunResult bad =
      run_qforge("eval --model " + model + " --data " + (d / "photos") + " --class-map " + (d / "photos.txt"));
  CHECK(bad.code != 0);
  CHECK(bad.out.find(d / "photos/c/zz_corrupt.jpg" + ": cannot decode image") != std::string::npos);
}

TEST_CASE("a model trained on folders keeps its preprocessing: eval --data DIR reads images as training did") {
  ScratchDir d("folders_train");
  std::string cfg = write_tiny_config(d);
  json ref = train_and_export(d, cfg, " --set train.epochs=1");
  // The training set as torchvision names its folders, the test set as qforge exports it.
  RunResult x = run_qforge("data export-images --images " + (d / "train-images.gz") + " --labels " +
                           (d / "train-labels.gz") + " --out " + (d / "train_png"));
  REQUIRE(x.code == 0);
  fs::create_directories(d / "train_tv");
  for (auto& e : fs::directory_iterator(d / "train_png"))
    fs::rename(e.path(), d / ("train_tv/" + torchvision_name(e.path().filename().string())));

  struct Case {
    const char* name;
    std::string sets;
  };
  const Case cases[] = {
      // Stretched to 16x16 then centre-cropped to 12 (a zoom): eval of the folder must do the same.
      {"square", " --set data.image_size=16 --set data.center_crop=12"},
      // Each image at its own size, RandomResizedCrop in training, resize + centre crop in eval.
      {"own",
       " --set data.image_size=0 --set data.resize=14 --set data.center_crop=12"
       " --set data.random_resized_crop.enabled=true --set data.random_resized_crop.scale=[0.5,1]"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    std::string out = d / (std::string("run_") + c.name);
    std::string sets =
        " --set data.train.images= --set data.train.labels= --set data.test.images="
        " --set data.test.labels= --set data.train.dir=" +
        (d / "train_tv") + " --set data.test.dir=" + (d / "png") + " --set output.dir=" + out +
        " --set train.epochs=1" + c.sets;
    RunResult t = run_qforge("train " + cfg + sets);
    INFO(t.out);
    REQUIRE(t.code == 0);
    const std::string m = out + "/last.safetensors";
    RunResult info = run_qforge("info " + m);
    // The classes are the training folders' names, in torchvision's order.
    CHECK(info.out.find("[\"Ankle_boot\",\"Bag\",\"Coat\"") != std::string::npos);
    RunResult ec = run_qforge("eval --json --model " + m + " --data " + cfg + sets);
    INFO(ec.out);
    REQUIRE(ec.code == 0);
    RunResult ed = run_qforge("eval --json --model " + m + " --data " + (d / "png"));
    INFO(ed.out);
    REQUIRE(ed.code == 0);
    json jc = json::parse(ec.out), jd = json::parse(ed.out);
    CHECK(jd["confusion"] == jc["confusion"]);
    CHECK(jd["classes"][0] == "Ankle_boot");
    CHECK(jd["top1"].get<double>() > 20.0);
  }
  // PTQ of the folder-trained model: the int8 graph keeps the training folders' classes and labels.
  RunResult ptq = run_qforge("ptq " + cfg + " --set model.init_from=" + (d / "run_square/last.safetensors") +
                             " --set data.train.images= --set data.train.labels= --set data.test.images="
                             " --set data.test.labels= --set data.train.dir=" +
                             (d / "train_tv") + " --set data.test.dir=" + (d / "png") +
                             " --set data.image_size=16 --set data.center_crop=12 --set output.dir=" + (d / "ptq"));
  INFO(ptq.out);
  REQUIRE(ptq.code == 0);
  RunResult qe = run_qforge("eval --json --model " + (d / "ptq/model.qfm") + " --data " + (d / "png"));
  INFO(qe.out);
  REQUIRE(qe.code == 0);
  CHECK(json::parse(qe.out)["classes"][0] == "Ankle_boot");
  RunResult fe = run_qforge("eval --json --model " + (d / "run_square/last.safetensors") + " --data " + (d / "png"));
  REQUIRE(fe.code == 0);
  CHECK(std::abs(json::parse(qe.out)["top1"].get<double>() - json::parse(fe.out)["top1"].get<double>()) < 15.0);
}

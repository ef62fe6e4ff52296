// Writes the fuzz targets' seed corpora with qforge's own writers: small valid files of every kind
// each loader reads. Usage: fuzz_make_seeds OUT_DIR (writes OUT_DIR/<target>/seed-*); the committed
// tests/fuzz/corpus was made by `fuzz_make_seeds tests/fuzz/corpus` from the source root.
#include <stb_image_write.h>
#include <zip.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "apps/checkpoint.h"
#include "apps/config.h"
#include "core/error.h"
#include "data/idx.h"
#include "nn/linear.h"
#include "optim/sgd.h"
#include "quant/graph.h"

using namespace qforge;
namespace fs = std::filesystem;

namespace {

fs::path out_root;
std::mt19937_64 rng(7);

std::vector<uint8_t> read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

void put(const std::string& target, const std::string& name, const std::vector<uint8_t>& bytes) {
  fs::create_directories(out_root / target);
  std::ofstream f(out_root / target / name, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  std::printf("%s/%s: %zu bytes\n", target.c_str(), name.c_str(), bytes.size());
}

// Writes with a file-based writer into a scratch file, then returns the bytes.
template <class F>
std::vector<uint8_t> via_file(F&& write) {
  const fs::path p = fs::temp_directory_path() / ("qforge_seed_" + std::to_string(rng()));
  write(p.string());
  std::vector<uint8_t> b = read_all(p);
  fs::remove(p);
  return b;
}

template <class T>
nn::StEntry entry(const std::string& dtype, const Shape& shape) {
  std::vector<T> v(static_cast<size_t>(numel_of(shape)));
  for (auto& x : v) x = static_cast<T>(static_cast<int>(rng() % 7) - 3);
  return nn::raw_entry(dtype, shape, v.data());
}

void safetensors_seeds() {
  put("safetensors", "seed-dtypes", via_file([](const std::string& p) {
        nn::write_safetensors(p,
                              {{"f32", entry<float>("F32", {2, 3})},
                               {"f64", entry<double>("F64", {2})},
                               {"i8", entry<int8_t>("I8", {3})},
                               {"u8", entry<uint8_t>("U8", {1, 1, 2})},
                               {"i32", entry<int32_t>("I32", {2})},
                               {"i64", entry<int64_t>("I64", {})},
                               {"f16", entry<uint16_t>("F16", {2})},
                               {"empty", entry<float>("F32", {0, 4})}},
                              {{"k", "v"}});
      }));
  put("safetensors", "seed-empty", via_file([](const std::string& p) { nn::write_safetensors(p, {}, {}); }));
  // A float checkpoint: model state, optimizer state and the metadata load_checkpoint reads.
  put("safetensors", "seed-checkpoint", via_file([](const std::string& p) {
        nn::Linear lin(3, 2, true, rng);
        optim::SGD opt(lin.named_parameters(), {});
        apps::Config cfg = apps::make_config(nlohmann::json::object(), "", {}, false);
        cfg.j = {{"model", {{"arch", "resnet18"}}}};  // a short config keeps the seed small
        apps::CheckpointInfo info;
        info.epoch = 1, info.step = 5, info.classes = {"a", "b"}, info.input = {1, 4, 4};
        apps::save_checkpoint(p, lin, &opt, cfg, info);
      }));
}

quant::GraphValue u8(float scale, int zp) { return {true, {scale, zp, 0, 255}}; }

void add_weights(quant::Int8Graph& g, const std::string& node, const Shape& w) {
  g.tensors[node + ".weight"] = entry<int8_t>("I8", w);
  g.tensors[node + ".bias"] = entry<int32_t>("I32", {w[0]});
  std::vector<float> s(static_cast<size_t>(w[0]), 0.02f);
  g.tensors[node + ".weight_scale"] = nn::raw_entry("F32", {w[0]}, s.data());
}

quant::GraphNode node(quant::OpKind op, const std::string& name, std::vector<int> in, int out) {
  quant::GraphNode n;
  n.op = op, n.name = name, n.inputs = std::move(in), n.output = out;
  return n;
}

void qfm_seeds() {
  using quant::OpKind;
  // Quantize, conv, max pool, grouped conv (format version 2), add with ReLU, global pool, linear, dequantize.
  quant::Int8Graph g;
  g.input_shape = {1, 6, 6};
  g.classes = {"a", "b", "c"};
  g.config = {{"data", {{"mean", {0.5}}, {"std", {0.5}}}}};
  g.values = {{false, {}},  u8(0.03f, 128), u8(0.05f, 0),  u8(0.05f, 0), u8(0.04f, 0),
              u8(0.06f, 0), u8(0.06f, 0),   u8(0.1f, 120), {false, {}}};
  g.nodes.push_back(node(OpKind::kQuantize, "quant", {0}, 1));
  auto conv = node(OpKind::kQConv2d, "conv1", {1}, 2);
  conv.conv = {1, 2, 3, ConvGeometry::square(1, 1)};
  conv.act = quant::Act::kReLU;
  add_weights(g, "conv1", {2, 1, 3, 3});
  g.nodes.push_back(conv);
  auto pool = node(OpKind::kQMaxPool2d, "pool", {2}, 3);
  pool.pool = {2, 2, 0};
  g.nodes.push_back(pool);
  auto dw = node(OpKind::kQConv2d, "dw", {3}, 4);
  dw.conv = {2, 2, 3, ConvGeometry::square(1, 1, 1, 2)};
  add_weights(g, "dw", {2, 1, 3, 3});
  g.nodes.push_back(dw);
  auto add = node(OpKind::kQAdd, "add", {4, 3}, 5);
  add.act = quant::Act::kReLU;
  g.nodes.push_back(add);
  g.nodes.push_back(node(OpKind::kQGlobalAvgPool, "gap", {5}, 6));
  auto fc = node(OpKind::kQLinear, "fc", {6}, 7);
  fc.linear = {2, 3};
  add_weights(g, "fc", {3, 2});
  g.nodes.push_back(fc);
  g.nodes.push_back(node(OpKind::kDequantize, "dequant", {7}, 8));
  g.output = 8;
  put("qfm", "seed-v2", via_file([&](const std::string& p) { quant::save_int8_model(p, g); }));

  // Version 1 (no grouped conv), ending in a float Linear and a dynamically quantized one.
  quant::Int8Graph h;
  h.input_shape = {2, 3, 3};
  h.classes = {"x", "y"};
  h.config = nlohmann::json::object();
  h.values = {{false, {}}, u8(0.02f, 100), u8(0.05f, 3), {false, {}}, {false, {}}, {false, {}}};
  h.nodes.push_back(node(OpKind::kQuantize, "q", {0}, 1));
  auto c2 = node(OpKind::kQConv2d, "c", {1}, 2);
  c2.conv = {2, 1, 3, ConvGeometry::square(2, 1)};
  c2.act = quant::Act::kReLU6;
  add_weights(h, "c", {1, 2, 3, 3});
  h.nodes.push_back(c2);
  h.nodes.push_back(node(OpKind::kDequantize, "dq", {2}, 3));
  auto lin = node(OpKind::kLinear, "lin", {3}, 4);
  lin.linear = {4, 3};
  h.tensors["lin.weight"] = entry<float>("F32", {3, 4});
  h.tensors["lin.bias"] = entry<float>("F32", {3});
  h.nodes.push_back(lin);
  auto dyn = node(OpKind::kDynamicLinear, "dyn", {4}, 5);
  dyn.linear = {3, 2};
  h.tensors["dyn.weight"] = entry<int8_t>("I8", {2, 3});
  std::vector<float> s = {0.1f, 0.2f};
  h.tensors["dyn.weight_scale"] = nn::raw_entry("F32", {2}, s.data());
  h.tensors["dyn.bias"] = entry<float>("F32", {2});
  h.nodes.push_back(dyn);
  h.output = 5;
  put("qfm", "seed-v1", via_file([&](const std::string& p) { quant::save_int8_model(p, h); }));
}

void idx_seeds() {
  const int n = 3, hh = 4, ww = 5;
  std::vector<uint8_t> px(n * hh * ww);
  for (auto& x : px) x = static_cast<uint8_t>(rng());
  const std::vector<int> labels = {0, 9, 4};
  for (bool gz : {false, true}) {
    const fs::path dir = fs::temp_directory_path() / ("qforge_seed_idx_" + std::to_string(rng()));
    fs::create_directories(dir);
    data::write_idx((dir / "i").string(), (dir / "l").string(), px, labels, hh, ww, gz);
    std::vector<uint8_t> im = read_all(dir / "i"), lb = read_all(dir / "l");
    fs::remove_all(dir);
    // flags, split (little-endian), images, labels. Raw bytes: the harness writes them as they are
    // (gzipped ones included, which then reach the gzip reader); flags 3 gzips raw ones itself.
    for (uint8_t flags : gz ? std::vector<uint8_t>{0} : std::vector<uint8_t>{0, 3, 4}) {
      std::vector<uint8_t> in;
      in.reserve(3 + im.size() + lb.size());
      in.push_back(flags);
      in.push_back(static_cast<uint8_t>(im.size()));
      in.push_back(static_cast<uint8_t>(im.size() >> 8));
      in.insert(in.end(), im.begin(), im.end());
      in.insert(in.end(), lb.begin(), lb.end());
      put("idx", std::string("seed-") + (gz ? "gz" : "raw") + "-flags" + std::to_string(flags), in);
    }
  }
}

void image_seeds() {
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  struct Kind {
    const char* name;
    uint8_t ext;  // index into the harness's extensions: png, jpg, jpeg, bmp
  };
  for (int comp : {1, 3, 4}) {
    const int w = 5, h = 4;
    std::vector<uint8_t> px(static_cast<size_t>(w) * h * comp);
    for (auto& x : px) x = static_cast<uint8_t>(rng());
    for (Kind k : {Kind{"png", 0}, Kind{"jpg", 1}, Kind{"bmp", 3}}) {
      // Target: 3 channels when comp is 3 or 4; 4x5 (no resize) for the first, 7x3 (resize) else.
      const bool resize = comp != 1;
      std::vector<uint8_t> in = {static_cast<uint8_t>(k.ext | (comp == 1 ? 0 : 4)),
                                 static_cast<uint8_t>(resize ? 6 : 3), static_cast<uint8_t>(resize ? 2 : 4)};
      int ok = 0;
      if (k.ext == 0) ok = stbi_write_png_to_func(sink, &in, w, h, comp, px.data(), w * comp);
      if (k.ext == 1) ok = stbi_write_jpg_to_func(sink, &in, w, h, comp, px.data(), 90);
      if (k.ext == 3) ok = stbi_write_bmp_to_func(sink, &in, w, h, comp, px.data());
      if (!ok) throw Error(std::string("cannot write a ") + k.name + " seed");
      put("image", std::string("seed-") + k.name + "-c" + std::to_string(comp), in);
    }
  }
}

void config_seeds(const fs::path& src) {
  for (const char* name : {"tiny.json", "tiny_qat.json", "tiny_mobilenet_v2_ptq.json"})
    put("config", std::string("seed-") + name, read_all(src / "configs" / name));
  std::string with_sets =
      std::string(R"({"train": {"epochs": 2}, "quant": {"overrides": {"fc": {"weight": {"per_channel": false}}}}})") +
      '\0' + "train.batch_size=3\noptim.schedule.kind=step\ndata.mean=[0.1,0.2,0.3]\n" +
      "model.in_channels=3\ndata.std=[1,1,1]\nquant.skip=[\"fc\"]";
  put("config", "seed-sets", std::vector<uint8_t>(with_sets.begin(), with_sets.end()));
}

// A member of a zip archive (empty when absent; *present says which).
std::vector<uint8_t> zip_member(const fs::path& archive, const std::string& name, bool* present = nullptr) {
  int err = 0;
  zip_t* z = zip_open(archive.c_str(), ZIP_RDONLY, &err);
  if (!z) throw Error(archive.string() + ": cannot open");
  std::vector<uint8_t> out;
  zip_stat_t st;
  if (present) *present = false;
  if (zip_stat(z, name.c_str(), 0, &st) == 0) {
    if (present) *present = true;
    out.resize(st.size);
    zip_file_t* f = zip_fopen(z, name.c_str(), 0);
    if (!f || (st.size && zip_fread(f, out.data(), out.size()) != static_cast<zip_int64_t>(out.size())))
      throw Error(archive.string() + ": cannot read " + name);
    zip_fclose(f);
  }
  zip_discard(z);
  return out;
}

// From the .pth fixtures of tests/nn: their pickles (fuzz_pickle), the files as they are, and their
// parts for fuzz_pth to zip (flags 2: a byteorder member; k storages; each part after its u16 length).
void pth_seeds(const fs::path& src) {
  const fs::path dir = src / "tests/nn/fixtures";
  for (const char* name : {"tiny_net", "views", "malicious", "tiny_net_proto4"}) {
    const fs::path file = dir / (std::string(name) + ".pth");
    const std::string folder = std::string(name) == "views" ? "views.pth" : name;
    std::vector<uint8_t> pkl = zip_member(file, folder + "/data.pkl");
    put("pickle", std::string("seed-") + name, pkl);
    std::vector<uint8_t> raw = {1};
    std::vector<uint8_t> bytes = read_all(file);
    raw.insert(raw.end(), bytes.begin(), bytes.end());
    put("pth", std::string("seed-raw-") + name, raw);
    std::vector<std::vector<uint8_t>> parts = {pkl};
    for (int k = 0; k < 15; ++k) {
      bool present = false;
      std::vector<uint8_t> m = zip_member(file, folder + "/data/" + std::to_string(k), &present);
      if (!present) break;
      parts.push_back(m);
    }
    std::vector<uint8_t> in = {2, static_cast<uint8_t>(parts.size() - 1)};
    for (auto& p : parts) {
      in.push_back(static_cast<uint8_t>(p.size()));
      in.push_back(static_cast<uint8_t>(p.size() >> 8));
      in.insert(in.end(), p.begin(), p.end());
    }
    put("pth", std::string("seed-parts-") + name, in);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds OUT_DIR\n");
    return 2;
  }
  out_root = argv[1];
  try {
    safetensors_seeds();
    qfm_seeds();
    idx_seeds();
    image_seeds();
    config_seeds(QFORGE_SOURCE_DIR_PATH);
    pth_seeds(QFORGE_SOURCE_DIR_PATH);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}

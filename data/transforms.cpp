#include "data/transforms.h"

#include <stb_image_resize.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qforge::data {
namespace {

struct Geometry {
  int rh, rw;  // after resize
  int oh, ow;  // after crop
};

Geometry geometry(const TransformConfig& cfg, ImageSpec in) {
  Geometry g{in.height, in.width, 0, 0};
  if (cfg.resize > 0) {
    // torchvision Resize(int): the shorter side becomes `resize`, the longer one is truncated.
    int64_t r = cfg.resize;
    if (in.height <= in.width) {
      g.rh = cfg.resize;
      g.rw = static_cast<int>(r * in.width / in.height);
    } else {
      g.rw = cfg.resize;
      g.rh = static_cast<int>(r * in.height / in.width);
    }
  }
  g.oh = cfg.center_crop > 0 ? cfg.center_crop : g.rh;
  g.ow = cfg.center_crop > 0 ? cfg.center_crop : g.rw;
  return g;
}

// torchvision CenterCrop: offset int(round(d / 2)) with Python's round-half-to-even; a crop
// larger than the image pads (crop - size) // 2 on the top/left.
int center_offset(int size, int crop) {
  int d = size - crop;
  if (d < 0) return -((-d) / 2);
  int k = d / 2;
  if (d % 2 == 1 && k % 2 == 1) ++k;
  return k;
}

float channel_value(const std::vector<float>& v, int c, float fallback) {
  if (v.empty()) return fallback;
  return v.size() == 1 ? v[0] : v[c];
}

}  // namespace

uint32_t uniform_below(std::mt19937& rng, uint32_t n) {
  // Draws below 2^32 mod n would make the small residues likelier; reject them.
  uint32_t threshold = (0u - n) % n;
  for (;;) {
    uint32_t x = static_cast<uint32_t>(rng());
    if (x >= threshold) return x % n;
  }
}

uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  uint64_t threshold = (uint64_t{0} - n) % n;
  for (;;) {
    uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

ImageSpec output_spec(const TransformConfig& cfg, ImageSpec in) {
  QF_CHECK(in.channels > 0 && in.height > 0 && in.width > 0, "transform: bad input image shape " + to_string(in));
  QF_CHECK(cfg.resize >= 0, "transform: resize must be >= 0, got " + std::to_string(cfg.resize));
  QF_CHECK(cfg.center_crop >= 0, "transform: center_crop must be >= 0, got " + std::to_string(cfg.center_crop));
  QF_CHECK(cfg.random_crop_padding >= 0,
           "transform: random_crop_padding must be >= 0, got " + std::to_string(cfg.random_crop_padding));
  auto check_len = [&](const std::vector<float>& v, const char* name) {
    QF_CHECK(v.empty() || v.size() == 1 || v.size() == static_cast<size_t>(in.channels),
             std::string("transform: ") + name + " has " + std::to_string(v.size()) + " values but the image has " +
                 std::to_string(in.channels) + " channels");
  };
  check_len(cfg.mean, "mean");
  check_len(cfg.std, "std");
  for (float s : cfg.std)
    QF_CHECK(std::isfinite(s) && s != 0.0f,
             "transform: std values must be finite and nonzero, got " + std::to_string(s));
  Geometry g = geometry(cfg, in);
  QF_CHECK(g.rh > 0 && g.rw > 0,
           "transform: resize " + std::to_string(cfg.resize) + " of " + to_string(in) + " gives an empty image");
  const int p = cfg.random_crop_padding;
  QF_CHECK(g.oh <= g.rh + 2 * p && g.ow <= g.rw + 2 * p,
           "transform: crop " + std::to_string(g.oh) + "x" + std::to_string(g.ow) + " is larger than the " +
               std::to_string(g.rh) + "x" + std::to_string(g.rw) + " image plus padding " + std::to_string(p));
  return {in.channels, g.oh, g.ow};
}

void apply_transform(const TransformConfig& cfg, const uint8_t* chw, ImageSpec in, float* out, ImageSpec out_spec,
                     std::mt19937& rng, bool train) {
  ImageSpec want = output_spec(cfg, in);
  QF_CHECK(out_spec == want,
           "transform: output shape " + to_string(out_spec) + " does not match the config's " + to_string(want));
  const Geometry g = geometry(cfg, in);
  const int C = in.channels;

  const uint8_t* src = chw;
  if (g.rh != in.height || g.rw != in.width) {
    // Per worker thread, so steady-state batches allocate nothing here.
    thread_local std::vector<uint8_t> resized;
    resized.resize(static_cast<size_t>(C) * g.rh * g.rw);
    for (int c = 0; c < C; ++c) {
      // CHW planes are single-channel images to stb.
      int ok = stbir_resize_uint8(chw + static_cast<size_t>(c) * in.height * in.width, in.width, in.height, 0,
                                  resized.data() + static_cast<size_t>(c) * g.rh * g.rw, g.rw, g.rh, 0, 1);
      QF_CHECK(ok, "transform: resize from " + to_string(in) + " failed");
    }
    src = resized.data();
  }
  const int sh = g.rh, sw = g.rw, oh = g.oh, ow = g.ow;

  // Source pixel of output (y, x) before the flip is (y + dy, x + dx); outside is padding.
  int dy, dx;
  if (train) {
    const int p = cfg.random_crop_padding;
    dy = static_cast<int>(uniform_below(rng, static_cast<uint32_t>(sh + 2 * p - oh + 1))) - p;
    dx = static_cast<int>(uniform_below(rng, static_cast<uint32_t>(sw + 2 * p - ow + 1))) - p;
  } else {
    dy = center_offset(sh, oh);
    dx = center_offset(sw, ow);
  }
  const bool flip = train && cfg.random_hflip && uniform_below(rng, 2) == 1;

  // Cropped columns [lo, hi) read real pixels; the rest are padding.
  const int lo = std::clamp(-dx, 0, ow), hi = std::clamp(sw - dx, lo, ow);
  for (int c = 0; c < C; ++c) {
    const float m = channel_value(cfg.mean, c, 0.0f), s = channel_value(cfg.std, c, 1.0f);
    const float pad = (0.0f / 255.0f - m) / s;
    for (int y = 0; y < oh; ++y) {
      float* o = out + (static_cast<size_t>(c) * oh + y) * ow;
      const int sy = y + dy;
      if (sy < 0 || sy >= sh) {
        std::fill(o, o + ow, pad);
        continue;
      }
      const uint8_t* row = src + (static_cast<size_t>(c) * sh + sy) * sw;
      if (!flip) {
        std::fill(o, o + lo, pad);
        for (int x = lo; x < hi; ++x) o[x] = (static_cast<float>(row[x + dx]) / 255.0f - m) / s;
        std::fill(o + hi, o + ow, pad);
      } else {
        // Output column x shows cropped column ow - 1 - x.
        std::fill(o, o + (ow - hi), pad);
        for (int x = ow - hi; x < ow - lo; ++x) o[x] = (static_cast<float>(row[ow - 1 - x + dx]) / 255.0f - m) / s;
        std::fill(o + (ow - lo), o + ow, pad);
      }
    }
  }
}

}  // namespace qforge::data

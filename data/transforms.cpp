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

// Uniform in [0, 1) from one 32-bit draw.
double uniform01(std::mt19937& rng) { return static_cast<double>(rng()) * (1.0 / 4294967296.0); }

// Python's round(): to nearest, ties to even.
int round_half_even(double x) {
  double r = std::floor(x);
  const double d = x - r;
  if (d > 0.5 || (d == 0.5 && std::fmod(r, 2.0) != 0.0)) r += 1.0;
  return static_cast<int>(r);
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
  if (cfg.random_resized_crop) {
    const auto& sc = cfg.rrc_scale;
    const auto& ra = cfg.rrc_ratio;
    QF_CHECK(sc[0] > 0 && sc[0] <= sc[1] && sc[1] <= 1,
             "transform: random_resized_crop scale must satisfy 0 < min <= max <= 1, got [" + std::to_string(sc[0]) +
                 ", " + std::to_string(sc[1]) + "]");
    QF_CHECK(ra[0] > 0 && ra[0] <= ra[1] && std::isfinite(ra[1]),
             "transform: random_resized_crop ratio must satisfy 0 < min <= max, got [" + std::to_string(ra[0]) + ", " +
                 std::to_string(ra[1]) + "]");
    QF_CHECK(cfg.random_crop_padding == 0,
             "transform: random_resized_crop and random_crop_padding both crop for training; choose one");
  }
  Geometry g = geometry(cfg, in);
  QF_CHECK(g.rh > 0 && g.rw > 0,
           "transform: resize " + std::to_string(cfg.resize) + " of " + to_string(in) + " gives an empty image");
  const int p = cfg.random_crop_padding;
  QF_CHECK(g.oh <= g.rh + 2 * p && g.ow <= g.rw + 2 * p,
           "transform: crop " + std::to_string(g.oh) + "x" + std::to_string(g.ow) + " is larger than the " +
               std::to_string(g.rh) + "x" + std::to_string(g.rw) + " image plus padding " + std::to_string(p));
  return {in.channels, g.oh, g.ow};
}

ImageSpec output_spec_any_size(const TransformConfig& cfg, int channels) {
  QF_CHECK(cfg.center_crop > 0,
           "transform: images of different sizes need a centre crop (center_crop) to come out the same size");
  // Any image large enough gives the crop; one of the crop's size stands for them all.
  return output_spec(cfg, {channels, cfg.center_crop, cfg.center_crop});
}

CropBox random_resized_crop_box(int height, int width, const TransformConfig& cfg, std::mt19937& rng) {
  QF_CHECK(height > 0 && width > 0,
           "random_resized_crop_box: empty image " + std::to_string(height) + "x" + std::to_string(width));
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(cfg.rrc_ratio[0]), log_hi = std::log(cfg.rrc_ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (cfg.rrc_scale[0] + (cfg.rrc_scale[1] - cfg.rrc_scale[0]) * uniform01(rng));
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * uniform01(rng));
    const int w = round_half_even(std::sqrt(target * aspect));
    const int h = round_half_even(std::sqrt(target / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int top = static_cast<int>(uniform_below(rng, static_cast<uint32_t>(height - h + 1)));
      const int left = static_cast<int>(uniform_below(rng, static_cast<uint32_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  // torchvision's fallback: the whole image, trimmed to the nearest allowed aspect ratio, centred.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < cfg.rrc_ratio[0]) {
    h = std::max(1, round_half_even(w / cfg.rrc_ratio[0]));
  } else if (in_ratio > cfg.rrc_ratio[1]) {
    w = std::max(1, round_half_even(h * cfg.rrc_ratio[1]));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

void apply_transform(const TransformConfig& cfg, const uint8_t* chw, ImageSpec in, float* out, ImageSpec out_spec,
                     std::mt19937& rng, bool train) {
  ImageSpec want = output_spec(cfg, in);
  QF_CHECK(out_spec == want,
           "transform: output shape " + to_string(out_spec) + " does not match the config's " + to_string(want));
  const Geometry g = geometry(cfg, in);
  const int C = in.channels;

  // Per worker thread, so steady-state batches allocate nothing here.
  thread_local std::vector<uint8_t> resized;
  const uint8_t* src = chw;
  int sh, sw, dy, dx;  // source size; output pixel (y, x) before the flip is source (y + dy, x + dx)
  const int oh = g.oh, ow = g.ow;
  if (train && cfg.random_resized_crop) {
    const CropBox b = random_resized_crop_box(in.height, in.width, cfg, rng);
    const size_t plane = static_cast<size_t>(in.height) * in.width;
    resized.resize(static_cast<size_t>(C) * oh * ow);
    for (int c = 0; c < C; ++c) {
      const uint8_t* box = chw + c * plane + static_cast<size_t>(b.top) * in.width + b.left;
      uint8_t* o = resized.data() + static_cast<size_t>(c) * oh * ow;
      if (b.height == oh && b.width == ow) {  // a plain crop: no resampling blur
        for (int y = 0; y < oh; ++y)
          std::copy(box + static_cast<size_t>(y) * in.width, box + y * in.width + ow, o + y * ow);
      } else {
        int ok = stbir_resize_uint8(box, b.width, b.height, in.width, o, ow, oh, 0, 1);
        QF_CHECK(ok, "transform: random resized crop of " + to_string(in) + " failed");
      }
    }
    src = resized.data();
    sh = oh;
    sw = ow;
    dy = dx = 0;
  } else {
    if (g.rh != in.height || g.rw != in.width) {
      resized.resize(static_cast<size_t>(C) * g.rh * g.rw);
      for (int c = 0; c < C; ++c) {
        // CHW planes are single-channel images to stb.
        int ok = stbir_resize_uint8(chw + static_cast<size_t>(c) * in.height * in.width, in.width, in.height, 0,
                                    resized.data() + static_cast<size_t>(c) * g.rh * g.rw, g.rw, g.rh, 0, 1);
        QF_CHECK(ok, "transform: resize from " + to_string(in) + " failed");
      }
      src = resized.data();
    }
    sh = g.rh;
    sw = g.rw;
    if (train) {
      const int p = cfg.random_crop_padding;
      dy = static_cast<int>(uniform_below(rng, static_cast<uint32_t>(sh + 2 * p - oh + 1))) - p;
      dx = static_cast<int>(uniform_below(rng, static_cast<uint32_t>(sw + 2 * p - ow + 1))) - p;
    } else {
      dy = center_offset(sh, oh);
      dx = center_offset(sw, ow);
    }
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

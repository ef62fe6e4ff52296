// Transforms: uint8 CHW image in, normalized float CHW out, with optional
// augmentation. One fixed pipeline, configured by TransformConfig:
//
//   1. resize > 0:      shorter side scaled to `resize`, aspect kept (torchvision Resize(int)).
//   2. crop to S x S where S = center_crop, or keep the (resized) size when center_crop == 0:
//        train: at a random position in the image zero-padded by random_crop_padding on
//               every side (torchvision RandomCrop(S, padding)); the padding pixel is 0
//               before normalization, as in torchvision;
//        eval:  at the center, no padding (torchvision CenterCrop; zero-filled where S is
//               larger than the image, which the padding allows).
//      train with random_resized_crop: steps 1 and 2 are replaced by torchvision's
//               RandomResizedCrop: a box of a random area (fraction of the image in
//               rrc_scale) and aspect ratio (log-uniform in rrc_ratio) at a random place
//               in the image as it came (before resize), stretched to the output size
//               that eval's steps 1 and 2 give; after 10 boxes that do not fit, the
//               largest centred box whose aspect ratio is within rrc_ratio.
//   3. train and random_hflip: mirror left-right with probability 1/2.
//   4. out = (x / 255 - mean[c]) / std[c]; mean/std hold one value per channel, one value
//      for all channels, or nothing (then out = x / 255).
//
// CIFAR recipe: {mean, std, .random_crop_padding = 4, .random_hflip = true}.
// ImageNet-style: {mean, std, .random_hflip = true, .resize = 256, .center_crop = 224,
//                  .random_resized_crop = true}: train RandomResizedCrop(224) + flip,
//                  eval Resize(256) + CenterCrop(224).
//
// Randomness comes only from `rng`, through a fixed sequence of draws (crop row,
// crop column, flip; or random_resized_crop_box's draws, flip), so a given rng
// state gives the same output on any platform. Resampling is stb_image_resize's
// (Mitchell down, Catmull-Rom up), not PIL's bilinear: close to torchvision, not
// bit-identical.
#pragma once
#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "data/dataset.h"

namespace qforge::data {

struct TransformConfig {
  // Initialized so designated initializers may omit them without -Wextra warnings.
  std::vector<float> mean = {}, std = {};
  int random_crop_padding = 0;
  bool random_hflip = false;
  int resize = 0;
  int center_crop = 0;
  bool random_resized_crop = false;
  std::array<double, 2> rrc_scale = {0.08, 1.0};             // area fraction, 0 < lo <= hi <= 1
  std::array<double, 2> rrc_ratio = {3.0 / 4.0, 4.0 / 3.0};  // width / height, 0 < lo <= hi
};

// Shape apply_transform produces from `in` (the same in train and eval). Throws
// Error on an invalid config: negative sizes, mean/std of the wrong length, a
// zero std, a crop larger than the padded image, random_resized_crop ranges out
// of bounds or combined with random_crop_padding.
ImageSpec output_spec(const TransformConfig& cfg, ImageSpec in);

// The shape for images of varying sizes (a folder read at each image's own size):
// fixed only by a centre crop, so it throws unless center_crop > 0.
ImageSpec output_spec_any_size(const TransformConfig& cfg, int channels);

// A box of an image, in pixels.
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
  bool operator==(const CropBox&) const = default;
};

// torchvision's RandomResizedCrop.get_params for a height x width image, with cfg's
// rrc_scale and rrc_ratio: up to 10 tries of (area fraction uniform in scale, log
// aspect ratio uniform in log(ratio); width and height rounded half to even as
// Python's round), the first that fits placed uniformly; else the centred fallback.
// Draws per try: scale, ratio, and when it fits, top then left.
CropBox random_resized_crop_box(int height, int width, const TransformConfig& cfg, std::mt19937& rng);

// chw: image of shape `in`; out: output_spec(cfg, in) floats (out_spec must equal it).
void apply_transform(const TransformConfig& cfg, const uint8_t* chw, ImageSpec in, float* out, ImageSpec out_spec,
                     std::mt19937& rng, bool train);

// Uniform integer in [0, n), n > 0, by rejection: unlike std::uniform_int_distribution
// its output is the same with every standard library.
uint32_t uniform_below(std::mt19937& rng, uint32_t n);
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n);

}  // namespace qforge::data

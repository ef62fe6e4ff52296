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
//   3. train and random_hflip: mirror left-right with probability 1/2.
//   4. out = (x / 255 - mean[c]) / std[c]; mean/std hold one value per channel, one value
//      for all channels, or nothing (then out = x / 255).
//
// CIFAR recipe: {mean, std, .random_crop_padding = 4, .random_hflip = true}.
// ImageNet-style eval: {mean, std, .resize = 256, .center_crop = 224}.
//
// Randomness comes only from `rng`, through a fixed sequence of draws (crop row,
// crop column, flip), so a given rng state gives the same output on any platform.
#pragma once
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
};

// Shape apply_transform produces from `in` (the same in train and eval). Throws
// Error on an invalid config: negative sizes, mean/std of the wrong length, a
// zero std, or a crop larger than the padded image.
ImageSpec output_spec(const TransformConfig& cfg, ImageSpec in);

// chw: image of shape `in`; out: output_spec(cfg, in) floats (out_spec must equal it).
void apply_transform(const TransformConfig& cfg, const uint8_t* chw, ImageSpec in, float* out, ImageSpec out_spec,
                     std::mt19937& rng, bool train);

// Uniform integer in [0, n), n > 0, by rejection: unlike std::uniform_int_distribution
// its output is the same with every standard library.
uint32_t uniform_below(std::mt19937& rng, uint32_t n);
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n);

}  // namespace qforge::data

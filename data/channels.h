// Channel conversion between the image kinds a file may hold and the 1 or 3
// channels a model takes, with PIL's arithmetic, so an image reaches a model as
// torchvision's pipeline (PIL convert("RGB") / convert("L")) would hand it over:
//
//   from \ to     1 (grey)                     3 (RGB)
//   1 grey        as is                        grey copied to R, G, B
//   2 grey+alpha  alpha dropped                grey copied, alpha dropped
//   3 RGB         luma (ITU-R 601, below)      as is
//   4 RGBA        alpha dropped, then luma     alpha dropped (not composited)
//
// Dropping alpha is what PIL's convert("RGB") does, and so what torchvision's
// ImageFolder loader does: a transparent pixel shows its stored colour.
//
//   std::vector<uint8_t> chw(3 * h * w);
//   hwc_to_chw(chw.data(), 3, stb_pixels, comp, h * w);  // decoded file -> model channels
//   auto rgb = with_channels(load_idx(...), 3);          // Fashion-MNIST for a 3-channel model
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "data/dataset.h"

namespace qforge::data {

// PIL's convert("L"): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, ITU-R 601-2 luma
// (0.299, 0.587, 0.114) in 16-bit fixed point, rounded.
inline uint8_t luma601(uint8_t r, uint8_t g, uint8_t b) {
  return static_cast<uint8_t>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

// out (channels, pixels) planar; in (pixels, comp) interleaved as decoders give it.
// comp in 1..4, channels 1 or 3; conversion as in the table above.
void hwc_to_chw(uint8_t* out, int channels, const uint8_t* in, int comp, size_t pixels);

// out (to, pixels), in (from, pixels), both planar; from and to are 1 or 3.
void convert_chw(uint8_t* out, int to, const uint8_t* in, int from, size_t pixels);

// ds with its images converted to `channels` (1 or 3); ds itself when it already has them.
std::shared_ptr<const Dataset> with_channels(std::shared_ptr<const Dataset> ds, int channels);

}  // namespace qforge::data

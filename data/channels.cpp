#include "data/channels.h"

#include <cstring>
#include <vector>

#include "core/error.h"

namespace qforge::data {
namespace {

class WithChannels final : public Dataset {
 public:
  WithChannels(std::shared_ptr<const Dataset> ds, int channels) : ds_(std::move(ds)), channels_(channels) {}
  size_t size() const override { return ds_->size(); }
  ImageSpec spec() const override {
    ImageSpec s = ds_->spec();
    s.channels = channels_;
    return s;
  }
  const std::vector<std::string>& classes() const override { return ds_->classes(); }
  int label(size_t i) const override { return ds_->label(i); }
  void get(size_t i, uint8_t* out) const override {
    const ImageSpec s = ds_->spec();
    thread_local std::vector<uint8_t> src;
    src.resize(image_bytes(s));
    ds_->get(i, src.data());
    convert_chw(out, channels_, src.data(), s.channels, static_cast<size_t>(s.height) * s.width);
  }
  ImageSpec get_sized(size_t i, std::vector<uint8_t>& out) const override {
    thread_local std::vector<uint8_t> src;
    ImageSpec s = ds_->get_sized(i, src);
    out.resize(static_cast<size_t>(channels_) * s.height * s.width);
    convert_chw(out.data(), channels_, src.data(), s.channels, static_cast<size_t>(s.height) * s.width);
    return {channels_, s.height, s.width};
  }
  std::string describe(size_t i) const override { return ds_->describe(i); }

 private:
  std::shared_ptr<const Dataset> ds_;
  int channels_;
};

}  // namespace

void hwc_to_chw(uint8_t* out, int channels, const uint8_t* in, int comp, size_t pixels) {
  QF_CHECK(comp >= 1 && comp <= 4, "hwc_to_chw: images have 1 to 4 components, got " + std::to_string(comp));
  QF_CHECK(channels == 1 || channels == 3,
           "hwc_to_chw: target channels must be 1 or 3, got " + std::to_string(channels));
  if (channels == 1) {
    if (comp <= 2) {
      for (size_t k = 0; k < pixels; ++k) out[k] = in[k * comp];
    } else {
      for (size_t k = 0; k < pixels; ++k) out[k] = luma601(in[k * comp], in[k * comp + 1], in[k * comp + 2]);
    }
    return;
  }
  for (int c = 0; c < 3; ++c) {
    uint8_t* o = out + c * pixels;
    const int src = comp <= 2 ? 0 : c;  // grey feeds every channel
    for (size_t k = 0; k < pixels; ++k) o[k] = in[k * comp + src];
  }
}

void convert_chw(uint8_t* out, int to, const uint8_t* in, int from, size_t pixels) {
  QF_CHECK((from == 1 || from == 3) && (to == 1 || to == 3),
           "convert_chw: channels must be 1 or 3, got " + std::to_string(from) + " -> " + std::to_string(to));
  if (from == to) {
    std::memcpy(out, in, static_cast<size_t>(to) * pixels);
  } else if (to == 3) {
    for (int c = 0; c < 3; ++c) std::memcpy(out + c * pixels, in, pixels);
  } else {
    const uint8_t *r = in, *g = in + pixels, *b = in + 2 * pixels;
    for (size_t k = 0; k < pixels; ++k) out[k] = luma601(r[k], g[k], b[k]);
  }
}

std::shared_ptr<const Dataset> with_channels(std::shared_ptr<const Dataset> ds, int channels) {
  QF_CHECK(ds != nullptr, "with_channels: dataset is null");
  QF_CHECK(channels == 1 || channels == 3, "with_channels: channels must be 1 or 3, got " + std::to_string(channels));
  const int from = ds->spec().channels;
  if (from == channels) return ds;
  QF_CHECK(from == 1 || from == 3,
           "with_channels: cannot convert " + std::to_string(from) + "-channel images to " + std::to_string(channels));
  return std::make_shared<WithChannels>(std::move(ds), channels);
}

}  // namespace qforge::data

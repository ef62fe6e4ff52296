#include "nn/init.h"

#include <cmath>

namespace qforge::nn {

void kaiming_normal_fan_out(Tensor& w, std::mt19937_64& rng) {
  int64_t fan_out = w.numel() / w.size(1);
  std::normal_distribution<float> d(0.f, std::sqrt(2.f / static_cast<float>(fan_out)));
  for (int64_t i = 0; i < w.numel(); ++i) w.data()[i] = d(rng);
}

void uniform_fan_in(Tensor& t, int64_t fan_in, std::mt19937_64& rng) {
  float b = 1.f / std::sqrt(static_cast<float>(fan_in));
  std::uniform_real_distribution<float> d(-b, b);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = d(rng);
}

}  // namespace qforge::nn

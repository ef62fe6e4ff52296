#include "nn/containers.h"

#include "nn/layers.h"
#include "nn/mobilenet_v2.h"
#include "nn/resnet.h"

namespace qforge::nn {

template <class... T>
static bool is_any(const Module& m) {
  return (... || (dynamic_cast<const T*>(&m) != nullptr));
}

bool is_container(const Module& m) { return is_any<Sequential, BasicBlock, ResNet, InvertedResidual, MobileNetV2>(m); }

}  // namespace qforge::nn

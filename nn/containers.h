// The one list of container modules: those whose forward only routes data
// between children (Sequential, BasicBlock, ResNet, InvertedResidual,
// MobileNetV2). Tracing (the converter, `qforge debug`) descends into them;
// every other module (Conv2d, Add, Dropout, a fused layer, ...) is a leaf.
// A new model registers its block and network types here.
#pragma once
#include "nn/module.h"

namespace qforge::nn {

bool is_container(const Module& m);

}  // namespace qforge::nn

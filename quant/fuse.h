// Fusion, found without the user listing modules: in every module, each run of
// consecutive children Conv2d [BatchNorm2d] [ReLU | ReLU6] becomes one
// ConvBnAct, and Linear [ReLU | ReLU6] one LinearAct (a lone Conv2d or Linear
// is wrapped too, so prepare and convert see one kind of layer). The absorbed
// children are replaced by Identity, keeping their names, so a forward that
// calls them by name (ResNet, BasicBlock) still runs. Children are taken in
// registration order, which for Sequential, ResNet and BasicBlock is the
// data-flow order. The residual Add already carries its ReLU.
//
//   fuse_modules(*model, /*qat=*/false);  // eval / PTQ: BN folded into the conv
//   fuse_modules(*model, /*qat=*/true);   // QAT: BN kept, learning from batches
#pragma once
#include "nn/module.h"

namespace qforge::quant {

// Returns the number of fused modules created. qat = false folds BN with its
// running statistics (the model must be in eval mode); qat = true keeps it.
int fuse_modules(nn::Module& root, bool qat);

}  // namespace qforge::quant

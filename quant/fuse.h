// Fusion as a table of patterns matched on the traced data flow (torch.ao's
// fusion patterns): one forward pass of the model on an example input records
// every leaf module call (nn::Tracer, leaves = !nn::is_container), and each
// chain of calls that follows a row of the table becomes one module:
//
//   Conv2d BatchNorm2d ReLU|ReLU6  -> ConvBnAct     Linear ReLU|ReLU6 -> LinearAct
//   Conv2d BatchNorm2d             -> ConvBnAct     Linear            -> LinearAct
//   Conv2d ReLU|ReLU6              -> ConvBnAct     Add ReLU          -> Add(relu = true)
//   Conv2d                         -> ConvBnAct     Add               -> (already an Add)
//
// (a lone Conv2d or Linear is wrapped, so prepare and convert see one kind of
// layer; wrapping one module changes nothing it computes, so it is done however
// often the module is called, and also to those the trace did not reach). A
// chain of several modules fuses only when every intermediate value has
// exactly one reader, the next module of the row, and every module of the
// chain is called exactly once; otherwise it is left unfused and reported with
// the reason, never fused wrongly. A BatchNorm2d not fed by a Conv2d is
// reported too. The order children are registered in does not matter.
// Absorbed modules are replaced by Identity, keeping their names, so a forward
// that calls them by name (ResNet, BasicBlock) still runs.
//
// What the trace cannot see: reads of a module's output by tensor operations
// written directly in a container's forward (not modules). Such a read of a
// chain's intermediate value (say, a conv output also added with `+`) would be
// missed; models should use nn::Add and other modules for these joins.
//
//   auto r = fuse_modules(*model, /*qat=*/false, {3, 32, 32});  // eval / PTQ: BN folded into the conv
//   auto r = fuse_modules(*model, /*qat=*/true, {3, 32, 32});   // QAT: BN kept, learning from batches
//   for (auto& s : r.skipped) warn(s.describe());
#pragma once
#include <string>
#include <vector>

#include "nn/module.h"

namespace qforge::quant {

struct FusedGroup {
  std::string pattern;               // the table row, e.g. "Conv2d+BatchNorm2d+ReLU"
  std::vector<std::string> modules;  // dotted names, in data-flow order; the first holds the fused module
};

struct SkippedFusion {
  std::string pattern;               // the row that would have applied
  std::vector<std::string> modules;  // the candidate chain
  std::string reason;
  std::string describe() const;  // "layer1.0.conv1 + layer1.0.bn1 (Conv2d+BatchNorm2d): reason"
};

struct FuseReport {
  std::vector<FusedGroup> fused;  // every new module (a wrapped lone conv included), and Add+ReLU folds
  std::vector<SkippedFusion> skipped;
  // The number of ConvBnAct and LinearAct modules created.
  int fused_modules() const;
};

// input_shape: C, H, W of one example (a batch of one, zeros, is traced with
// gradients off, every module in eval mode; training flags are restored).
// qat = false folds BN with its running statistics (the model must be in eval
// mode); qat = true keeps it.
FuseReport fuse_modules(nn::Module& root, bool qat, const std::vector<int>& input_shape);

}  // namespace qforge::quant

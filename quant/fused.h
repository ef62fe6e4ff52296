// Fused modules, what quant/fuse.h turns Conv2d+BatchNorm2d+ReLU and
// Linear+ReLU into (PyTorch's intrinsic ConvBnReLU2d, ConvReLU2d, LinearReLU).
//
// ConvBnAct keeps its BatchNorm2d for QAT: the weight that is fake-quantized
// is the BN-folded one, w * gamma / sqrt(running_var + eps), and the conv
// output is divided back before BN normalises it with the batch statistics
// (Jacob et al. 2018; PyTorch's _forward_approximate). In eval mode, or with
// freeze_bn, BN uses its running statistics and the module computes exactly
// the folded convolution the int8 graph runs. Without BN (PTQ, where fold_bn()
// has moved it into the weights), it is a plain conv + bias + activation.
#pragma once
#include <memory>

#include "nn/batchnorm2d.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "quant/activation.h"
#include "quant/fake_quant.h"

namespace qforge::quant {

Tensor apply_act(const Tensor& x, Act a);

class ConvBnAct : public nn::Module {
 public:
  ConvBnAct(std::shared_ptr<nn::Conv2d> conv, std::shared_ptr<nn::BatchNorm2d> bn, Act act);
  std::string type() const override;
  Tensor forward(const Tensor& x) override;

  // Moves BN (its running statistics) into the conv weight and bias; drops BN.
  void fold_bn();
  void set_weight_fake_quant(std::shared_ptr<FakeQuantize> fq);

  // The weight and bias the int8 graph uses: BN folded from running statistics
  // (not yet fake-quantized), whether or not BN is still attached.
  std::pair<Tensor, Tensor> folded_weight_bias() const;

  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;              // null once folded
  std::shared_ptr<FakeQuantize> weight_fake_quant;  // null until prepare
  Act act;
  bool freeze_bn = false;
};

class LinearAct : public nn::Module {
 public:
  LinearAct(std::shared_ptr<nn::Linear> linear, Act act);
  std::string type() const override;
  Tensor forward(const Tensor& x) override;
  void set_weight_fake_quant(std::shared_ptr<FakeQuantize> fq);

  std::shared_ptr<nn::Linear> linear;
  std::shared_ptr<FakeQuantize> weight_fake_quant;
  Act act;
};

}  // namespace qforge::quant

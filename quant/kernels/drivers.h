// int8 operators: what the converter and the runtime call.
//
// A quick tour, for a quantized Conv2d + ReLU in a ResNet:
//
//   QConvParams p;                       // shapes, strides, padding, zero points, clamp
//   p.N = 1; p.H = p.W = 56; p.C = 64; p.OC = 64; p.KH = p.KW = 3; p.pad_h = p.pad_w = 1;
//   p.in_zero_point = x.zero_point;
//   p.out_zero_point = y.zero_point; p.out_qmin = y.zero_point; p.out_qmax = 255;   // fused ReLU
//   auto m = requant_multipliers(x.scale, w_scales.data(), p.OC, y.scale);         // per channel
//   PackedConvWeights w = pack_conv_weights(p, w_int8_oihw, bias_int32, m.data()); // once, at load
//   qconv2d(p, w, x_nhwc, y_nhwc);                                                  // every run
//
// Activations are uint8 NHWC; weights int8 in PyTorch's (OC, C/groups, KH, KW) order,
// symmetric per output channel; bias int32 at scale s_in * s_w[oc] (not yet
// corrected for the input zero point: packing folds -in_zp * sum(w) in).
// Every driver splits its work over the process thread pool (core/threads.h)
// and runs the kernels of one ISA level: the one the packed weights were
// packed for, or the `isa` argument (default: dispatch's selection). Argument
// order: parameters, weights, inputs, outputs. Shapes are checked; errors are
// qforge::Error naming the op and both shapes.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/kernels/dispatch.h"
#include "quant/kernels/kernels.h"
#include "quant/kernels/qdwconv2d.h"
#include "quant/qparams.h"

namespace qforge::quant {

// Bytes whose data() is 64-byte aligned, copyable.
class AlignedBytes {
 public:
  void resize(size_t n) {
    raw_.assign(n + 63, 0);
    size_ = n;
  }
  size_t size() const { return size_; }
  uint8_t* data() { return align(raw_.data()); }
  const uint8_t* data() const { return align(const_cast<uint8_t*>(raw_.data())); }

 private:
  static uint8_t* align(uint8_t* p) { return p + ((64 - reinterpret_cast<uintptr_t>(p) % 64) % 64); }
  std::vector<uint8_t> raw_;
  size_t size_ = 0;
};

// M = s_in * s_w[oc] / s_out per output channel, as fixed-point multipliers.
std::vector<FixedPointMultiplier> requant_multipliers(float in_scale, const float* weight_scales, int OC,
                                                      float out_scale);

// ---------------------------------------------------------------------------
// Conv2d: in (N,H,W,C) u8 -> out (N,OH,OW,OC) u8. The geometry (stride_h, pad_h, dilation_h, groups,
// ...) is the inherited ConvGeometry (core/conv_geometry.h). How it runs depends on the groups
// (conv_path): groups 1 on the GEMM kernels; depthwise 3x3 (MobileNet's) on the depthwise
// kernels; any other grouping on the scalar grouped reference (correct, slow).
struct QConvParams : ConvGeometry {
  int N = 1, H = 0, W = 0, C = 0;
  int OC = 0, KH = 1, KW = 1;
  int32_t in_zero_point = 0;
  int32_t out_zero_point = 0, out_qmin = 0, out_qmax = 255;  // fused ReLU: out_qmin = out_zero_point
  ConvGeometry& geometry() { return *this; }
  const ConvGeometry& geometry() const { return *this; }
  int OH() const { return out_h(H, KH); }
  int OW() const { return out_w(W, KW); }
};

enum class ConvPath {
  kGemm,          // groups 1: qconv2d_* (and qconv2d_pos) of the kernel table
  kDepthwise3x3,  // groups == C == OC, 3x3, stride 1 or 2 (both axes), padding 0 or 1 (both), dilation 1
  kGroupedRef,    // any other groups > 1: qconv2d_grouped__ref
};
ConvPath conv_path(const QConvParams& p);
const char* conv_path_name(ConvPath path);  // "gemm", "depthwise3x3", "grouped_ref"

struct PackedConvWeights {
  QConvParams params;  // as packed; N, H, W are not used (any input size may run)
  Isa isa = Isa::scalar;
  ConvPath path = ConvPath::kGemm;
  // kGemm: (OC, KH, KW, C), kept only when packed for scalar; kGroupedRef: (OC, KH, KW, C/groups);
  // kDepthwise3x3: (3, 3, C), kept only when packed for scalar.
  std::vector<int8_t> weight;
  std::vector<int32_t> bias;                  // (OC) as given
  std::vector<FixedPointMultiplier> requant;  // (OC)
  std::vector<int32_t> weight_sum;            // (OC) sum of each channel's weights (kGemm)
  // SIMD side (see QConvArgs): OCp = roundup(OC, 16); kDepthwise3x3: the per-channel arrays of
  // QDwConvArgs, OCp = dwconv_padded_channels(C) entries (zero_row too).
  std::vector<int32_t> bias_packed, rq_multiplier, rq_lshift, rq_rshift;  // (OCp)
  std::vector<uint8_t> zero_row;                                          // ktp bytes of in_zero_point
  std::vector<int32_t> tap_wsum;  // (taps, OCp) per-tap weight sums, when the batch-major kernel can run
  AlignedBytes packed;
  int OCp = 0, taps = 0, kt = 0, ktp = 0;
  bool row_merged = false;

  // The kernels' view for an input of p.N x p.H x p.W (checked against what was packed).
  QConvArgs args(const QConvParams& p) const;
  // The depthwise kernels' view (path kDepthwise3x3).
  QDwConvArgs dw_args(const QConvParams& p) const;
};

// weight (OC, C/groups, KH, KW) int8 (PyTorch's order), bias (OC) int32 or null, requant (OC).
// Packs for `isa`'s kernel of conv_path(p).
PackedConvWeights pack_conv_weights(const QConvParams& p, const int8_t* weight, const int32_t* bias,
                                    const FixedPointMultiplier* requant, Isa isa = selected_isa());
void qconv2d(const QConvParams& p, const PackedConvWeights& w, const uint8_t* in, uint8_t* out);
// The convolution followed by the residual join: out = qadd(conv(in), residual) with `add`
// (the conv's output is the add's input a), byte for byte the two ops in turn; in one pass
// (the add in the conv's epilogue) where the ISA's GEMM kernels fuse it (conv_fused_add), else
// (and for grouped convolutions) the two ops in turn.
void qconv2d_add(const QConvParams& p, const PackedConvWeights& w, const uint8_t* in, const QAddParams& add,
                 const uint8_t* residual, uint8_t* out);

// ---------------------------------------------------------------------------
// Linear (GEMM): in (M,K) u8 -> out (M,N) u8; a 1x1 convolution over M rows.
struct QLinearParams {
  int M = 1, K = 0, N = 0;
  int32_t in_zero_point = 0;
  int32_t out_zero_point = 0, out_qmin = 0, out_qmax = 255;
};
using PackedLinearWeights = PackedConvWeights;
// weight (N,K) int8, bias (N) int32 or null, requant (N)
PackedLinearWeights pack_linear_weights(const QLinearParams& p, const int8_t* weight, const int32_t* bias,
                                        const FixedPointMultiplier* requant, Isa isa = selected_isa());
void qlinear(const QLinearParams& p, const PackedLinearWeights& w, const uint8_t* in, uint8_t* out);
// The int32 accumulators instead: out[m][n] = bias[n] + sum_k (in[m][k] - in_zp) * w[n][k].
void qlinear_i32(const QLinearParams& p, const PackedLinearWeights& w, const uint8_t* in, int32_t* out);

// Dynamic quantization: float in, float out. Each call quantizes its input to
// uint8 from the input's min/max (choose_qparams_affine, 0..255), multiplies
// by the int8 weights in int32, and dequantizes with s_in * s_w[n], + bias.
struct DynamicLinearWeights {
  int K = 0, N = 0;
  PackedLinearWeights packed;
  std::vector<float> weight_scale;  // (N)
  std::vector<float> bias;          // (N), zeros if none
};
// weight (N,K) int8, weight_scale (N), bias (N) float or null
DynamicLinearWeights pack_linear_dynamic(int K, int N, const int8_t* weight, const float* weight_scale,
                                         const float* bias, Isa isa = selected_isa());
// in (M,K) float -> out (M,N) float
void qlinear_dynamic(const DynamicLinearWeights& w, int M, const float* in, float* out);

// ---------------------------------------------------------------------------
// Add: out = a + b, each with its own (scale, zero point); relu clamps at the output zero point.
QAddParams make_qadd_params(const QParams& a, const QParams& b, const QParams& out, bool relu);
void qadd(const QAddParams& p, int64_t n, const uint8_t* a, const uint8_t* b, uint8_t* out, Isa isa = selected_isa());

// Max pooling, NHWC, floor mode; padded positions are ignored.
QPool2dParams make_pool2d_params(int N, int H, int W, int C, int KH, int KW, int stride_h, int stride_w, int pad_h,
                                 int pad_w);
void qmaxpool2d(const QPool2dParams& p, const uint8_t* in, uint8_t* out, Isa isa = selected_isa());

// Global average pooling: in (N,H,W,C) -> out (N,C), requantized from `in` to `out` qparams.
QGlobalAvgPoolParams make_global_avgpool_params(int N, int H, int W, int C, const QParams& in, const QParams& out);
void qglobal_avgpool(const QGlobalAvgPoolParams& p, const uint8_t* in, uint8_t* out, Isa isa = selected_isa());

// float (N,C,H,W) -> uint8 (N,H,W,C) with quantize_val; and back. H = W = 1 for plain (N,C) arrays.
void quantize_nchw_to_nhwc(const QParams& qp, int N, int C, int H, int W, const float* in, uint8_t* out,
                           Isa isa = selected_isa());
void dequantize_nhwc_to_nchw(const QParams& qp, int N, int C, int H, int W, const uint8_t* in, float* out,
                             Isa isa = selected_isa());

}  // namespace qforge::quant

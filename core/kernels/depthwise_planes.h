// The per-plane kernels of the depthwise convolution (depthwise.h), one table
// per instruction set. A kernel handles one channel plane of one image, no
// threads, no allocation; depthwise.cpp splits the planes over the pool.
//
// Every table runs the same source (depthwise_planes.inc) compiled with its own
// ISA flags and -ffp-contract=off, vectorised only along a row: each output
// element sees the same operations in the same order, so all tables give the
// same bits (tests/core/test_depthwise.cpp checks it).
#pragma once
#include <algorithm>

namespace qforge::depthwise_detail {

// One plane's geometry: input h x w, output oh x ow, kernel kh x kw, strides,
// padding and dilation.
struct PlaneGeo {
  int h, w, oh, ow;
  int kh, kw, sh, sw, ph, pw, dh, dw;
};

// Other stride-1 planes narrower than this (output columns) run 3x3 kernels on a
// padded copy, flattened: a row of 7 outputs would leave most of a vector idle and
// most of the work at the edges.
constexpr int kFlatBelow = 32;

// Stride-1, padding-1 planes at least this wide whose output is as large as the
// input (every stride-1 depthwise layer of a MobileNet) run 3x3 kernels in place,
// all rows as one (forward_3x3_same in depthwise_planes.inc), without a copy.
constexpr int kSameFrom = 5;

// The flattened layout for stride s (1 in use): the input padded to rows of wp floats
// (p_size floats, zeros around it), the outputs in rows of wp as well (len
// floats, a multiple of 16; the columns past OW are junk or zero).
struct FlatLayout {
  int wp;
  long len, p_size;
};
static inline FlatLayout flat_layout(const PlaneGeo& g, int s) {
  FlatLayout f;
  f.wp = s * g.ow + 2;
  f.len = (static_cast<long>(g.oh) * f.wp + 15) / 16 * 16;
  const long rows = static_cast<long>(s) * (g.oh - 1) + 3;
  f.p_size = std::max(rows * f.wp, s * (f.len - 1) + 2L * f.wp + 3);
  return f;
}

// Stride 2: the padded input split by row and column parity into four
// quarter planes of rows wq = OW + 1 (qs floats each, zeros around), so that
// every tap reads a contiguous run; the outputs in rows of wq (len floats).
struct QuarterLayout {
  int wq;
  long len, qs;
};
static inline QuarterLayout quarter_layout(const PlaneGeo& g) {
  QuarterLayout q;
  q.wq = g.ow + 1;
  q.len = (static_cast<long>(g.oh) * q.wq + 15) / 16 * 16;
  q.qs = q.len + q.wq + 2;
  return q;
}

// Small planes run kBlock channels of an image at once, one channel per lane
// (forward_blocked): a 7x7 plane has too few columns to fill a vector, and
// most of its outputs sit at an edge. Per output, on an AMD EPYC Zen 4 with
// AVX-512 (one thread, 128 planes), against the plane kernels: 7x7 stride 1
// 0.90 ns against 1.40, 4x4 1.40 against 2.76, stride 2 onto 7x7 1.76 against
// 2.42 and onto 4x4 2.05 against 3.68; at 14x14 stride 1 0.81 against 0.71, so
// stride 1 takes it up to 8x8 outputs only. Measured again once its weights were
// turned once per call and its frame of zeros kept (AMD EPYC Zen 5, 14x14 stride 1,
// 64 images of 192 planes, one thread): 2.46 ms against the plane kernels' 1.46.
constexpr int kBlock = 16;
constexpr int kBlockedMax = 14 * 14, kBlockedMaxStride1 = 8 * 8;
constexpr int kBlockedRun = 8;    // outputs of a row computed together
constexpr int kBlockedTaps = 25;  // kernels up to 5x5
static inline bool blocked_applies(const PlaneGeo& g) {
  const long outputs = static_cast<long>(g.oh) * g.ow;
  return outputs <= (g.sh == 1 && g.sw == 1 ? kBlockedMaxStride1 : kBlockedMax) &&
         static_cast<long>(g.h + 2 * g.ph) * (g.w + 2 * g.pw) <= 4 * kBlockedMax && g.kh * g.kw <= kBlockedTaps;
}

// forward_blocked's weights for cnt <= kBlock planes (w: KH*KW floats per plane, bias one per plane
// or null): wl[t * kBlock + c] = plane c's tap t, then wl[KH*KW * kBlock + c] its bias; zeros for
// c >= cnt. Turned once per call of the convolution, not per image.
static inline void blocked_lanes(float* wl, const float* w, const float* bias, int cnt, int taps) {
  for (int t = 0; t <= taps; ++t)
    for (int c = 0; c < kBlock; ++c)
      wl[t * kBlock + c] = c >= cnt ? 0.f : t < taps ? w[c * taps + t] : bias ? bias[c] : 0.f;
}

// forward_blocked's input planes with the zeros around them: hp x wp positions,
// enough for every tap of every output, rows wide enough for whole runs of
// kBlockedRun outputs (the last run of a row reads zeros past its end).
struct BlockedLayout {
  int hp, wp;
};
static inline BlockedLayout blocked_layout(const PlaneGeo& g) {
  const int runs = (g.ow + kBlockedRun - 1) / kBlockedRun;
  return {std::max(g.h + 2 * g.ph, (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1),
          std::max(g.w + 2 * g.pw, (runs * kBlockedRun - 1) * g.sw + (g.kw - 1) * g.dw + 1)};
}

// The scratch floats the kernels need for a plane of this geometry.
static inline long work_floats(const PlaneGeo& g) {
  const PlaneGeo t{g.oh, g.ow, g.h, g.w, g.kh, g.kw, 1, 1, 0, 0, 1, 1};  // dinp at stride 1, as a forward
  long n = 0;
  for (const PlaneGeo& x : {g, t}) {
    const FlatLayout f = flat_layout(x, 1);
    n = std::max(n, f.p_size + f.len);
  }
  const QuarterLayout q = quarter_layout(g);
  n = std::max(n, 4 * q.qs + q.len);
  if (blocked_applies(g)) {
    const BlockedLayout b = blocked_layout(g);
    n = std::max(n, (static_cast<long>(b.hp) * b.wp + static_cast<long>(g.oh) * g.ow) * kBlock);
  }
  return n + 16;
}

struct DepthwiseKernels {
  const char* name;
  // out (OH,OW) = bias + correlation of in (H,W) with w (KH,KW) under the
  // geometry. zeros: at least max(H, W, OH, OW) + 16 zero floats; work:
  // work_floats(g) floats of scratch.
  void (*forward)(float* out, const float* in, const float* w, float bias, const PlaneGeo& g, const float* zeros,
                  float* work);
  // forward for cnt <= kBlock planes of one image (blocked_applies(g)): in holds
  // them H*W floats apart, out OH*OW apart; wl their weights and biases turned to
  // lanes (blocked_lanes: KH*KW + 1 rows of kBlock floats); with relu, each output
  // then clamped to [0, hi]. work: work_floats(g) floats; frame_zero: work is as a
  // call on the same geometry left it (whose frame of zeros is then not written again).
  void (*forward_blocked)(float* out, const float* in, const float* wl, int cnt, const PlaneGeo& g, bool relu, float hi,
                          float* work, bool frame_zero);
  // dinp (H,W) += the transposed correlation of dout (OH,OW) with w (KH,KW).
  void (*backward_input)(float* dinp, const float* dout, const float* w, const PlaneGeo& g, const float* zeros,
                         float* work);
  // sums[t] = sum over the plane of dout * the input under tap t (t < KH*KW,
  // row-major); sums[KH*KW] = sum of dout. Written, not added.
  void (*backward_weight)(float* sums, const float* dout, const float* in, const PlaneGeo& g, const float* zeros,
                          float* work);
};

extern const DepthwiseKernels depthwise_planes__ref;     // the x86-64 baseline (SSE2)
extern const DepthwiseKernels depthwise_planes__avx2;    // -mavx2 -mfma
extern const DepthwiseKernels depthwise_planes__avx512;  // -mavx512f/bw/dq/vl, 512-bit vectors

// The selected level's planes (float_kernels() in core/kernels/dispatch.h chooses).
const DepthwiseKernels& depthwise_kernels();

}  // namespace qforge::depthwise_detail

namespace qforge {
struct Conv2dShape;
}

namespace qforge::depthwise_detail {

// depthwise_forward and depthwise_backward with a given table (tests compare the tables).
void forward_with(const DepthwiseKernels& k, float* out, const float* inp, const float* weight, const float* bias,
                  const Conv2dShape& s, bool relu = false, float hi = 0.f);
void backward_with(const DepthwiseKernels& k, float* dinp, float* dweight, float* dbias, const float* dout,
                   const float* inp, const float* weight, const Conv2dShape& s);

}  // namespace qforge::depthwise_detail

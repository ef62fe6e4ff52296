#include "core/ops/depthwise.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/kernels/depthwise_planes.h"
#include "core/kernels/dispatch.h"
#include "core/ops/scratch.h"
#include "core/threads.h"

namespace qforge {
namespace depthwise_detail {

const DepthwiseKernels& depthwise_kernels() { return *float_kernels().depthwise; }

namespace {

PlaneGeo plane_geo(const Conv2dShape& s) {
  QF_CHECK(s.a.groups == s.c, "depthwise conv2d: groups=" + std::to_string(s.a.groups) + " with " +
                                  std::to_string(s.c) + " input channels is not depthwise");
  const ConvGeometry& a = s.a;
  return {s.h, s.w, s.oh, s.ow, s.kh, s.kw, a.stride_h, a.stride_w, a.pad_h, a.pad_w, a.dilation_h, a.dilation_w};
}

// The row of zeros the kernels read for rows in the padding.
std::vector<float> zero_row(const Conv2dShape& s) {
  return std::vector<float>(std::max({s.h, s.w, s.oh, s.ow}) + 16, 0.f);
}

// Runs fn(n, c, work) for every input plane, work the kernels' scratch, in pieces of about 64K multiply-adds
// (per_plane each) so that small planes do not cost a hand-off each.
template <typename F>
void for_each_plane(const Conv2dShape& s, int64_t per_plane, F&& fn) {
  const int64_t planes = static_cast<int64_t>(s.n) * s.c;
  const int64_t piece = std::clamp<int64_t>((64 << 10) / std::max<int64_t>(per_plane, 1), 1,
                                            std::max<int64_t>(1, planes / (4 * num_threads())));
  const size_t work = static_cast<size_t>(work_floats(plane_geo(s)));
  parallel_pieces(planes, piece, [&](int64_t b, int64_t e) {
    // The kernels' scratch, one per thread, kept between calls.
    thread_local std::vector<float> scratch;
    if (scratch.size() < work) scratch.resize(work);
    for (int64_t i = b; i < e; ++i) fn(static_cast<int>(i / s.c), static_cast<int>(i % s.c), scratch.data());
  });
}

}  // namespace

void forward_with(const DepthwiseKernels& k, float* out, const float* inp, const float* weight, const float* bias,
                  const Conv2dShape& s, bool relu, float hi) {
  const PlaneGeo g = plane_geo(s);
  const int m_per_c = s.oc / s.c, taps = s.kh * s.kw;
  const int64_t hw = static_cast<int64_t>(s.h) * s.w, ohw = static_cast<int64_t>(s.oh) * s.ow;
  if (m_per_c == 1 && blocked_applies(g)) {  // kBlock channels at once
    const int blocks = (s.c + kBlock - 1) / kBlock;
    const int64_t lanes = static_cast<int64_t>(taps + 1) * kBlock;  // per block
    auto wl = scratch_floats(blocks * lanes);                       // fully written before it is read
    for (int j = 0; j < blocks; ++j)
      blocked_lanes(wl.get() + j * lanes, weight + static_cast<int64_t>(j) * kBlock * taps,
                    bias ? bias + j * kBlock : nullptr, std::min(kBlock, s.c - j * kBlock), taps);
    const size_t work = static_cast<size_t>(work_floats(g));
    // Pieces of about 64K multiply-adds, as for_each_plane's: one block at a time, the threads'
    // shared counter cost more than the blocks (64 images of 384 7x7 planes, AMD EPYC Zen 5: 0.58
    // ms on one thread, 0.84-0.89 on two).
    const int64_t units = static_cast<int64_t>(s.n) * blocks;
    const int64_t piece = std::clamp<int64_t>((64 << 10) / (static_cast<int64_t>(kBlock) * ohw * taps), 1,
                                              std::max<int64_t>(1, units / (4 * num_threads())));
    parallel_pieces(units, piece, [&](int64_t b, int64_t e) {
      // The kernels' scratch, one per thread, kept between calls; its frame of zeros is kept too
      // while the geometry stays the same (a new buffer, from a resize, has none yet).
      thread_local std::vector<float> scratch;
      thread_local PlaneGeo zeroed_for{};
      const bool resized = scratch.size() < work;
      if (resized) scratch.resize(work);
      bool frame_zero = !resized && std::memcmp(&zeroed_for, &g, sizeof g) == 0;
      zeroed_for = g;
      for (int64_t i = b; i < e; ++i, frame_zero = true) {
        const int64_t n = i / blocks, j = i % blocks, c0 = j * kBlock;
        k.forward_blocked(out + (n * s.oc + c0) * ohw, inp + (n * s.c + c0) * hw, wl.get() + j * lanes,
                          static_cast<int>(std::min<int64_t>(kBlock, s.c - c0)), g, relu, hi, scratch.data(),
                          frame_zero);
      }
    });
    return;
  }
  const std::vector<float> zeros = zero_row(s);
  // The clamp at the selected level while the plane is in cache: its bits are every level's
  // (bias_clamp.inc), clamp_relu_value's with a bias of +0. (A small gain: in perf's samples of
  // MobileNetV2's float inference at 224 b1, AMD EPYC Zen 5, the baseline build's loop it replaces
  // took 4.2%, the clamp's share grew by 3.5%.)
  const BiasClampKernel clamp = float_kernels().bias_clamp;
  for_each_plane(s, m_per_c * ohw * taps, [&](int n, int c, float* work) {
    for (int m = 0; m < m_per_c; ++m) {
      const int64_t co = static_cast<int64_t>(c) * m_per_c + m;
      float* o = out + (static_cast<int64_t>(n) * s.oc + co) * ohw;
      k.forward(o, inp + (static_cast<int64_t>(n) * s.c + c) * hw, weight + co * taps, bias ? bias[co] : 0.f, g,
                zeros.data(), work);
      if (relu) clamp(o, o, ohw, 0.f, hi);
    }
  });
}

void backward_with(const DepthwiseKernels& k, float* dinp, float* dweight, float* dbias, const float* dout,
                   const float* inp, const float* weight, const Conv2dShape& s) {
  if (!dinp && !dweight && !dbias) return;
  const PlaneGeo g = plane_geo(s);
  const int m_per_c = s.oc / s.c, taps = s.kh * s.kw;
  const int64_t hw = static_cast<int64_t>(s.h) * s.w, ohw = static_cast<int64_t>(s.oh) * s.ow;
  const std::vector<float> zeros = zero_row(s);
  // Per image and output channel: the taps' sums, then the bias's; fully
  // written before they are read. Summed over the batch below in image order,
  // so the bits do not depend on which thread took which plane.
  const bool sums_wanted = dweight || dbias;
  auto sums = scratch_floats(sums_wanted ? static_cast<size_t>(s.n) * s.oc * (taps + 1) : 0);
  for_each_plane(s, 2 * m_per_c * ohw * taps, [&](int n, int c, float* work) {
    for (int m = 0; m < m_per_c; ++m) {
      const int64_t co = static_cast<int64_t>(c) * m_per_c + m, plane = static_cast<int64_t>(n) * s.oc + co;
      const float* d = dout + plane * ohw;
      if (dinp)
        k.backward_input(dinp + (static_cast<int64_t>(n) * s.c + c) * hw, d, weight + co * taps, g, zeros.data(), work);
      if (sums_wanted)
        k.backward_weight(sums.get() + plane * (taps + 1), d, inp + (static_cast<int64_t>(n) * s.c + c) * hw, g,
                          zeros.data(), work);
    }
  });
  if (!sums_wanted) return;
  // Image by image over a range of channels, so the reads are contiguous.
  parallel_for(s.oc, 16, [&](int64_t b, int64_t e) {
    const int64_t row = taps + 1, width = (e - b) * row;
    std::vector<double> total(width, 0.0);
    for (int n = 0; n < s.n; ++n) {
      const float* p = sums.get() + (static_cast<int64_t>(n) * s.oc + b) * row;
      for (int64_t i = 0; i < width; ++i) total[i] += p[i];
    }
    for (int64_t co = b; co < e; ++co) {
      const double* t = total.data() + (co - b) * row;
      if (dweight)
        for (int i = 0; i < taps; ++i) dweight[co * taps + i] += static_cast<float>(t[i]);
      if (dbias) dbias[co] += static_cast<float>(t[taps]);
    }
  });
}

}  // namespace depthwise_detail

bool depthwise_applies(const Conv2dShape& s) { return s.a.groups > 1 && s.a.groups == s.c; }

void depthwise_forward(float* out, const float* inp, const float* weight, const float* bias, const Conv2dShape& s,
                       bool relu, float hi) {
  depthwise_detail::forward_with(depthwise_detail::depthwise_kernels(), out, inp, weight, bias, s, relu, hi);
}

void depthwise_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const Conv2dShape& s) {
  depthwise_detail::backward_with(depthwise_detail::depthwise_kernels(), dinp, dweight, dbias, dout, inp, weight, s);
}

}  // namespace qforge

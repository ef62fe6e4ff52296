// The fake-quantization kernels of quant/fake_quant.cpp: its forward, STE
// backward and LSQ backward loops over one chunk, once per instruction set
// (fake_quant__ref.cpp, fake_quant__avx2.cpp), chosen by quant/kernels/dispatch.cpp.
// Every level runs the same loops (fake_quant_loops.h), so the bits are the
// reference's: the avx2 file only lets the compiler use vroundps for
// std::nearbyint (a libm call on generic x86-64) and vectorise.
#pragma once
#include <cstdint>

#include "core/cpu.h"

namespace qforge::quant::fq {

constexpr int64_t kTile = 2048;  // elements whose mask bytes are packed at once (a multiple of 64)

// One channel's constants. The clamp bounds are widened by one step on each
// side, so one rounding gives both the clamped value and whether the clamp
// was active (the STE mask).
struct Chan {
  float scale, inv_scale;
  int32_t zp, qmin, qmax;
  float rlo, rhi;  // qmin - 1 - zp, qmax + 1 - zp
};

// x viewed as (outer, channels, inner): the channel of flat element i is (i / inner) % channels.
struct Layout {
  int64_t n = 0, channels = 1, inner = 1;
};

// One level's kernels, indexed by their template flags.
struct FakeQuantKernels {
  Isa isa;
  const char* name;
  // x, out [b, e) -> out = (clamp(round(x * inv_scale) + zp) - zp) * scale; with [1], mask bit i = not clamped.
  // b is a multiple of 64, so chunks never share a mask word.
  void (*forward[2])(float* out, uint64_t* mask, const float* x, int64_t b, int64_t e, const Layout& L,
                     const Chan* ch);  // [with mask]
  // STE: dx = mask ? dout : 0 over mask words [wb, we) of n elements; [1] assigns, [0] adds.
  void (*ste_backward[2])(float* dx, const float* dout, const uint64_t* mask, int64_t wb, int64_t we, int64_t n);
  // LSQ backward over [b, e): [with dx][assign dx]; ds[c] += the channel's scale gradient sum when need_ds.
  void (*lsq_backward[2][2])(float* dx, double* ds, const float* dout, const float* x, int64_t b, int64_t e,
                             const Layout& L, const Chan* ch, bool need_ds);
};

extern const FakeQuantKernels fake_quant__ref;
extern const FakeQuantKernels fake_quant__avx2;

// The highest table at or below `isa` (throws if the CPU lacks `isa`), and the selected level's.
const FakeQuantKernels& fake_quant_kernels_for(Isa isa);
const FakeQuantKernels& fake_quant_kernels();

}  // namespace qforge::quant::fq

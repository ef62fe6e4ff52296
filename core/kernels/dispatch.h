// core's float kernel tables, one per instruction-set level that has one
// (core/cpu.h); a level picks the highest table at or below it. The one place
// that chooses a float kernel: core/ops/gemm_f32.cpp, core/ops/winograd.cpp and
// core/ops/conv2d.cpp take theirs from here.
#pragma once
#include "core/cpu.h"
#include "core/kernels/depthwise_planes.h"
#include "core/kernels/kernels.h"
#include "core/kernels/winograd_f4x4_blocks.h"

namespace qforge {

struct FloatKernelTable {
  Isa isa;
  const char* name;
  // The float GEMM of plain products, or null where OpenBLAS is faster (on
  // AVX2 a 6x16 kernel of this kind ran at 0.7-1.0x OpenBLAS's Haswell kernels).
  GemmF32Kernel gemm_f32;
  const char* gemm_f32_name;  // the kernel's symbol, or "openblas"
  // The depth-vector GEMM for few columns and a long k (core/ops/gemm_f32.h), or null.
  GemmF32DotKernel gemm_f32_dot;
  const char* gemm_f32_dot_name;  // the kernel's symbol, or "none"
  // The direct convolution of layers with few input channels (core/ops/conv2d.h,
  // conv2d_direct_taps), or null where im2col runs them.
  ConvTapsKernel conv_taps;
  const char* conv_taps_name;  // the kernel's symbol, or "none"
  // Winograd F(4x4,3x3) transforms, or null: at the scalar level Winograd is
  // not used (the tile-by-tile transforms cost more than they save).
  const winograd_detail::BlockKernels* winograd;
  const char* winograd_name;  // the blocks' symbol, or "none"
  // Depthwise convolution planes (core/ops/depthwise.h); every level has one, all with the
  // reference's bits. Its name is the symbol's.
  const depthwise_detail::DepthwiseKernels* depthwise;
  // A convolution's bias and activation clamp (kernels.h); every level has one, with the reference's bits.
  BiasClampKernel bias_clamp;
  const char* bias_clamp_name;
  // Max pooling without argmax (kernels.h); every level has one, with the reference's bits.
  MaxPoolKernel max_pool;
  const char* max_pool_name;
};

// The highest table at or below `isa`; throws qforge::Error if this CPU lacks `isa`.
const FloatKernelTable& float_kernels_for(Isa isa);
// The table of the selected level.
const FloatKernelTable& float_kernels();

// The Winograd blocks of a level (tests walk the supported levels; the scalar
// level gets the reference blocks, which every level's blocks must match).
const winograd_detail::BlockKernels& winograd_blocks_for(Isa isa);
const char* winograd_blocks_name(Isa isa);
// The selected level's (the transforms and the channels-last layout passes, core/ops/channels_last.h).
const winograd_detail::BlockKernels& winograd_blocks();

}  // namespace qforge

// The depthwise plane kernels for the x86-64 baseline (SSE2): the portable
// table, which the AVX2 and AVX-512 ones must match bit for bit.
#define QFORGE_DEPTHWISE_ISA depthwise_planes__ref
#define QFORGE_DEPTHWISE_NAME "depthwise_planes__ref"
#include "core/kernels/depthwise_planes.inc"

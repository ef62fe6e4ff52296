// The convolutions' bias and clamp compiled for the avx2 level (core/kernels/bias_clamp.inc).
#define QFORGE_BIAS_CLAMP_ISA bias_clamp__avx2
#include "core/kernels/bias_clamp.inc"

// The convolutions' bias and clamp compiled for the ref level (core/kernels/bias_clamp.inc).
#define QFORGE_BIAS_CLAMP_ISA bias_clamp__ref
#include "core/kernels/bias_clamp.inc"

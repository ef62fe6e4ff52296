// Max pooling without argmax compiled for the avx2 level (core/kernels/max_pool.inc).
#define QFORGE_MAX_POOL_ISA max_pool__avx2
#include "core/kernels/max_pool.inc"

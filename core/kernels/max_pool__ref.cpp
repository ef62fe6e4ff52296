// Max pooling without argmax compiled for the ref level (core/kernels/max_pool.inc).
#define QFORGE_MAX_POOL_ISA max_pool__ref
#include "core/kernels/max_pool.inc"

// The depthwise plane kernels compiled for AVX-512 with 512-bit vectors (core/CMakeLists.txt).
#define QFORGE_DEPTHWISE_ISA kDepthwiseAvx512
#define QFORGE_DEPTHWISE_NAME "avx512"
#include "core/ops/depthwise_rows.h"

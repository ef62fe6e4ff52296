// The depthwise plane kernels compiled for AVX2 (core/CMakeLists.txt).
#define QFORGE_DEPTHWISE_ISA kDepthwiseAvx2
#define QFORGE_DEPTHWISE_NAME "avx2"
#include "core/ops/depthwise_rows.h"

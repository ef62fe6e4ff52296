// The depthwise plane kernels compiled for AVX-512 with 512-bit vectors (core/CMakeLists.txt).
#define QFORGE_DEPTHWISE_ISA depthwise_planes__avx512
#define QFORGE_DEPTHWISE_NAME "depthwise_planes__avx512"
#include "core/kernels/depthwise_planes.inc"

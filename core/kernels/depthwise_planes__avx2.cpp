// The depthwise plane kernels compiled for AVX2 (core/CMakeLists.txt).
#define QFORGE_DEPTHWISE_ISA depthwise_planes__avx2
#define QFORGE_DEPTHWISE_NAME "depthwise_planes__avx2"
#include "core/kernels/depthwise_planes.inc"

// A 16x16 transpose of floats held as 16 of GCC's generic 64-byte vectors, for
// the kernel files compiled once per instruction set (the depthwise planes, the
// Winograd blocks): one AVX-512 register, two AVX2 or four SSE registers each.
// Everything here has internal linkage (anonymous namespace), so each file
// keeps its own copy built with its own flags and no copy can stand in for
// another ISA's at link time. __builtin_shufflevector: GCC 12 and clang alike.
#pragma once

namespace qforge {
namespace {

typedef float Floats16 __attribute__((vector_size(64)));

// r[i] lane j <-> r[j] lane i, for the 16 vectors from r: four rounds, round d
// swapping bit d of the row with bit d of the lane.
inline void transpose16(Floats16* r) {
  for (int i = 0; i < 16; i += 2) {
    const Floats16 a = r[i], b = r[i + 1];
    r[i] = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    r[i + 1] = __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  }
  for (int i = 0; i < 16; ++i) {
    if (i & 2) continue;
    const Floats16 a = r[i], b = r[i + 2];
    r[i] = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    r[i + 2] = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  }
  for (int i = 0; i < 16; ++i) {
    if (i & 4) continue;
    const Floats16 a = r[i], b = r[i + 4];
    r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    r[i + 4] = __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  }
  for (int i = 0; i < 8; ++i) {
    const Floats16 a = r[i], b = r[i + 8];
    r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    r[i + 8] = __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  }
}

}  // namespace
}  // namespace qforge

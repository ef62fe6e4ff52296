// Process-wide setup a program using qforge calls once, first thing in main
// (apps/main.cpp, tests/test_main.cpp): an explicit call rather than a static
// initializer, so its order and presence are visible.
#pragma once

namespace qforge {

// Keeps freed memory in the heap (see process.cpp). Idempotent.
void init_process();

}  // namespace qforge

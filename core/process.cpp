#include "core/process.h"

#include <malloc.h>

namespace qforge {

// Activations of tens of MB are freed and allocated again every step. Kept in
// the heap (not returned to the kernel), they cost no page faults next time.
void init_process() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace qforge

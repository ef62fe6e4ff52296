#include "core/process_group.h"

namespace qforge {
namespace {
ProcessGroup* g_group = nullptr;
}

ProcessGroup* process_group() { return g_group; }
void set_process_group(ProcessGroup* g) { g_group = g && g->size() > 1 ? g : nullptr; }

}  // namespace qforge

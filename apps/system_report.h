// What this process runs on: the CPU's features, the selected ISA level, the
// options with their values and the kernel each table picked. For
// `qforge info --system` and `qforge bench`.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace qforge::apps {

// (family, chosen kernel) for every kernel table, in a fixed order.
std::vector<std::pair<std::string, std::string>> chosen_kernels();

// The whole report as text, one item a line.
std::string system_report();

}  // namespace qforge::apps

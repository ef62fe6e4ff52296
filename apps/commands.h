// Each subcommand of the qforge CLI registers itself on the app.
#pragma once
#include <CLI/CLI.hpp>

namespace qforge::apps {

void add_bench_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_data_command(CLI::App& app);

}  // namespace qforge::apps

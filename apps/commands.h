// Each subcommand of the qforge CLI registers itself on the app.
#pragma once
#include <CLI/CLI.hpp>

namespace qforge::apps {

// The positional CONFIG and the repeatable --set, shared by train, qat and ptq.
void add_config_options(CLI::App* c, std::string& config, std::vector<std::string>& sets);

void add_bench_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_predict_command(CLI::App& app);  // predict --model FILE IMAGE...
void add_info_command(CLI::App& app);
void add_import_command(CLI::App& app);  // import FILE.pth --arch ... --out FILE.safetensors
void add_data_command(CLI::App& app);
void add_quant_commands(CLI::App& app);  // qat, ptq, convert
void add_export_command(CLI::App& app);
void add_debug_command(CLI::App& app);
void add_config_command(CLI::App& app);  // config --schema, config FILE

}  // namespace qforge::apps

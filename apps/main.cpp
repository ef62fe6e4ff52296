// qforge: train, quantize, convert, evaluate and benchmark from JSON configs.
#include <cstdio>
#include <exception>

#include "apps/blas_env.h"
#include "apps/commands.h"
#include "core/error.h"
#include "core/process.h"

int main(int argc, char** argv) {
  try {
    qforge::init_process();
    qforge::apps::ensure_blas_coretype(argv);  // reads the options: a bad value stops here, named
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qforge: error: %s\n", e.what());
    return 1;
  }
  CLI::App app{"qforge: quantization-aware training and int8 inference for CPUs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "qforge 0.1");
  qforge::apps::add_train_command(app);
  qforge::apps::add_quant_commands(app);
  qforge::apps::add_eval_command(app);
  qforge::apps::add_predict_command(app);
  qforge::apps::add_info_command(app);
  qforge::apps::add_import_command(app);
  qforge::apps::add_bench_command(app);
  qforge::apps::add_export_command(app);
  qforge::apps::add_debug_command(app);
  qforge::apps::add_data_command(app);
  qforge::apps::add_config_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "qforge: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

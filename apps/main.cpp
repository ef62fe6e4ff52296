// qforge: train, quantize, convert, evaluate and benchmark from JSON configs.
#include <cstdio>
#include <exception>

#include "apps/blas_env.h"
#include "apps/commands.h"
#include "apps/distributed.h"
#include "core/error.h"
#include "core/process.h"

int main(int argc, char** argv) {
  try {
    qforge::init_process();
    qforge::apps::ensure_blas_coretype(argv);  // reads the options: a bad value stops here, named
    qforge::apps::start_distributed(&argc, &argv);  // under mpirun: joins the job
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qforge: error: %s\n", e.what());
    qforge::apps::abort_distributed(1);
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
    const int code = app.exit(e);
    qforge::apps::stop_distributed();  // every rank parsed the same arguments
    return code;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    // In a data-parallel run, the rank that failed stops them all, rather than leave them waiting.
    if (qforge::ProcessGroup* g = qforge::process_group())
      std::fprintf(stderr, "qforge: error (rank %d of %d): %s\n", g->rank(), g->size(), e.what());
    else
      std::fprintf(stderr, "qforge: error: %s\n", e.what());
    qforge::apps::abort_distributed(1);
    return 1;
  }
  qforge::apps::stop_distributed();
  return 0;
}

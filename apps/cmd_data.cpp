// qforge data export-images: an IDX set as a directory of PNGs.
#include <cstdio>

#include "apps/commands.h"
#include "data/export.h"
#include "data/idx.h"

namespace qforge::apps {
namespace {

struct ExportArgs {
  std::string images, labels, out;
  bool numeric = false;
};

void run_export(const ExportArgs& a) {
  std::vector<std::string> names;
  auto probe = data::load_idx(a.images, a.labels);
  if (!a.numeric && probe->classes().size() == 10) names = data::fashion_mnist_classes();
  auto ds = names.empty() ? std::move(probe) : data::load_idx(a.images, a.labels, names);
  data::export_images(*ds, a.out);
  std::printf("wrote %zu images in %zu classes to %s\n", ds->size(), ds->classes().size(), a.out.c_str());
}

}  // namespace

void add_data_command(CLI::App& app) {
  auto* c = app.add_subcommand("data", "Dataset tools");
  c->require_subcommand(1);
  auto a = std::make_shared<ExportArgs>();
  auto* e = c->add_subcommand("export-images", "Write an IDX image set as a directory of PNGs (root/<class>/<n>.png)");
  e->add_option("--images", a->images, "IDX images file (.gz or raw)")->required()->check(CLI::ExistingFile);
  e->add_option("--labels", a->labels, "IDX labels file (.gz or raw)")->required()->check(CLI::ExistingFile);
  e->add_option("--out", a->out, "Output directory")->required();
  e->add_flag("--numeric-classes", a->numeric, "Name classes 0..9 instead of Fashion-MNIST's names");
  e->callback([a] { run_export(*a); });
}

}  // namespace qforge::apps

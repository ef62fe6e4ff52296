// The test binaries' main: the process setup qforge's programs do, then doctest.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "core/process.h"

int main(int argc, char** argv) {
  qforge::init_process();
  doctest::Context context(argc, argv);
  return context.run();
}

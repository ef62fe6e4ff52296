// qforge::Error: every library error. The message names the thing at fault
// (key path, file, op, both shapes); the CLI prints it on one line.
#pragma once
#include <stdexcept>
#include <string>

namespace qforge {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// QF_CHECK(cond, msg): throw Error(msg) unless cond. msg may be any std::string expression.
#define QF_CHECK(cond, msg)                  \
  do {                                       \
    if (!(cond)) throw ::qforge::Error(msg); \
  } while (0)

}  // namespace qforge

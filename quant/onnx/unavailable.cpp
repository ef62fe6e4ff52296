// The exports in a qforge built without libonnx-dev / libprotobuf-dev (see quant/onnx/CMakeLists.txt).
#include "core/error.h"
#include "quant/onnx/onnx_export.h"

namespace qforge::quant {
namespace {

[[noreturn]] void unavailable(const std::string& path) {
  throw Error(path +
              ": this qforge was built without ONNX support; install libonnx-dev and libprotobuf-dev "
              "(scripts/setup.sh does) and rebuild");
}

}  // namespace

bool onnx_export_available() { return false; }

OnnxExportSummary export_int8_onnx(const Int8Graph&, const std::string& path, const OnnxMetadata&) {
  unavailable(path);
}

OnnxExportSummary export_float_onnx(nn::Module&, const std::vector<int>&, const std::string& path,
                                    const OnnxMetadata&) {
  unavailable(path);
}

}  // namespace qforge::quant

// The portable fake-quantization kernels: the definition of the bits.
#include "quant/kernels/fake_quant_loops.h"

namespace qforge::quant::fq {

const FakeQuantKernels fake_quant__ref = make_table(Isa::scalar, "fake_quant__ref");

}  // namespace qforge::quant::fq

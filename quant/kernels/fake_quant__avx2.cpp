// The AVX2 fake-quantization kernels: the reference loops compiled with AVX2 and FMA
// (nearbyint becomes vroundps and the loops vectorise).
#include "quant/kernels/fake_quant_loops.h"

namespace qforge::quant::fq {

const FakeQuantKernels fake_quant__avx2 = make_table(Isa::avx2, "fake_quant__avx2");

}  // namespace qforge::quant::fq

// PyTorch weight files (.pth, .pt), read without Python and without executing
// anything: the zip archive torch.save writes since PyTorch 1.6
// (<archive>/data.pkl, the pickled object, plus <archive>/data/<key>, one
// member per storage; the folder name <archive> varies), opened with libzip,
// its pickle read by nn/unpickler.h's restricted reader.
//
//   SafeTensors st = read_weight_file("resnet18.pth");   // or a .safetensors: told apart by content
//   Tensor w = st.f32("conv1.weight");                    // F16, BF16 and F64 converted
//
// What is accepted:
//  * a state_dict (torch.save(model.state_dict(), f)): a dict of name -> tensor;
//  * a dict holding one under "state_dict" or, failing that, "model" (as
//    training scripts save it); its other entries (epoch, optimizer state, ...)
//    are parsed as plain data and ignored, their storages never read. Every
//    global anywhere in the pickle must still be on the allow-list: a file that
//    also pickles, say, an argparse.Namespace is refused, naming it (the same
//    stance as torch.load(weights_only=True));
//  * names all starting with "module." (nn.DataParallel) lose that prefix.
// Tensors may be views (storage offset, strides) and share storages; each
// comes out contiguous in its own dtype (F32, F16, BF16, F64, I64, I32, I16,
// I8, U8, BOOL). Refused, with an error naming the file: a truncated or
// corrupt archive (CRCs are checked), a missing storage member, a storage
// smaller than its views, a big-endian file, the legacy pre-1.6 format,
// TorchScript archives (torch.jit.save) and whole pickled modules.
#pragma once
#include <string>

#include "nn/safetensors.h"

namespace qforge::nn {

// True when the file starts as a zip archive does ("PK\3\4").
bool is_zip_file(const std::string& path);

// The state_dict in a PyTorch zip file. metadata: "format" = "pytorch",
// "archive" (the folder inside the zip), "state_dict" (the key it was found
// under, "" for the top level), "prefix_removed" ("module." or absent).
SafeTensors read_torch_file(const std::string& path);

// A .safetensors or a PyTorch zip file, told apart by its first bytes.
SafeTensors read_weight_file(const std::string& path);

}  // namespace qforge::nn

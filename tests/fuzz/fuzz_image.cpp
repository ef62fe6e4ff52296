// Fuzz target: image files read through ImageFolder (stb_image's PNG, JPEG and BMP decoders, then
// the resize to the target size).
// Input: a byte choosing the extension (png, jpg, jpeg, bmp) and the target channels (1 or 3), a
// byte each for the target height and width (1 to 64), then the file's bytes, written as
// root/c/x.<ext>. Properties: a bad file is an Error naming it; a good one decodes to the target.
//
// The bytes go to ImageFolder only when check_encoded_image (data/image_check.h) accepts them:
// Debian's stb_image writes out of bounds on some JPEGs that check rejects, so ImageFolder::get must
// call it before stbi_load_from_memory (it does not yet: image_folder.cpp belongs to another
// branch). Both steps must fail only with an Error naming the file.
#include "data/image_check.h"
#include "data/image_folder.h"
#include "fuzz_util.h"

using namespace qforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  static const char* kExt[] = {"png", "jpg", "jpeg", "bmp"};
  const std::string ext = kExt[data[0] & 3];
  const data::ImageSpec target{(data[0] & 4) ? 3 : 1, 1 + data[1] % 64, 1 + data[2] % 64};
  const std::string root = fuzz::path_in_scratch("folder");
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  const std::string file = fuzz::write_input("folder/c/x." + ext, data + 3, size - 3);
  try {
    data::check_encoded_image(data + 3, size - 3, file);
  } catch (const Error& e) {
    fuzz::expect_names(e, {file});
    return 0;
  }
  data::ImageFolder ds(root, target);
  FUZZ_CHECK(ds.size() == 1 && ds.spec() == target, data::to_string(ds.spec()));
  std::vector<uint8_t> img(data::image_bytes(target));
  try {
    ds.get(0, img.data());
  } catch (const Error& e) {
    fuzz::expect_names(e, {file});
  }
  return 0;
}

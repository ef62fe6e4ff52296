// check_encoded_image (data/image_check.h) on what tests/fuzz/fuzz_image found in Debian's stb_image
// (the inputs are committed as tests/fuzz/corpus/image/crash-*, after the harness's 3 bytes of
// target spec) and on headers that claim more pixels than their file can hold.
#include <doctest/doctest.h>

#include "data/image_check.h"
#include "test_util.h"

using namespace qforge::data;
using namespace qforge::data::test;

namespace {

std::string check_error(const std::vector<uint8_t>& bytes, const std::string& path = "dir/c/x.png") {
  return error_of([&] { check_encoded_image(bytes.data(), bytes.size(), path); });
}

std::vector<uint8_t> fuzz_input(const std::string& name) {
  std::vector<uint8_t> b = read_bytes(std::string(QFORGE_TESTS_DIR) + "/fuzz/corpus/image/" + name);
  REQUIRE(b.size() > 3);
  return {b.begin() + 3, b.end()};  // the harness's target spec comes first
}

std::vector<uint8_t> encoded(const std::string& ext, int w, int h, int comp) {
  TempDir dir;
  write_image(dir / ("x" + ext), w, h, comp, random_pixels(static_cast<size_t>(w) * h * comp, 5));
  return read_bytes(dir / ("x" + ext));
}

void put_le32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

void put_be32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

}  // namespace

TEST_CASE("image check: PNG, JPEG and BMP files pass") {
  for (const char* ext : {".png", ".jpg", ".bmp"})
    for (int comp : {1, 3, 4}) {
      CAPTURE(ext);
      CAPTURE(comp);
      CHECK(check_error(encoded(ext, 7, 5, comp)) == "");
    }
}

TEST_CASE("image check: a JPEG Huffman table of more than 256 codes") {
  // stb_image 2.27 wrote past its code-size table (UBSan: index 257 out of bounds for stbi_uc[257]).
  CHECK(check_error(fuzz_input("crash-jpeg-dht-over-256"), "a/b.jpg") ==
        "a/b.jpg: corrupt JPEG: a Huffman table (DHT at byte 173) holds 270 codes, more than 256");
  // The same table in a valid file: one count raised past 256 in all.
  std::vector<uint8_t> jpg = encoded(".jpg", 8, 8, 1);
  size_t dht = 0;
  for (size_t i = 0; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xff && jpg[i + 1] == 0xc4) {
      dht = i;
      break;
    }
  REQUIRE(dht > 0);
  jpg[dht + 5 + 15] = 255;  // marker, length, class/id, then 16 counts: the count of 16-bit codes
  CHECK(contains(check_error(jpg, "p.jpg"), "p.jpg: corrupt JPEG: a Huffman table"));
}

TEST_CASE("image check: a BMP of no rows") {
  // stb_image decoded it, then stb_image_resize divided by its height (UBSan: -nan to int).
  CHECK(check_error(fuzz_input("crash-bmp-zero-height"), "z.bmp") ==
        "z.bmp: image header claims 1x0 pixels (corrupt file)");
}

TEST_CASE("image check: a PNG whose first image data chunk is empty") {
  // stb_image copied the empty chunk from its not yet allocated buffer (UBSan: null pointer to memcpy).
  CHECK(check_error(fuzz_input("crash-png-empty-first-idat"), "e.png") ==
        "e.png: PNG whose first image data chunk (IDAT at byte 33) is empty, which stb_image cannot read safely");
  // A valid file with an empty IDAT chunk put before its data: refused; after it: read.
  const std::vector<uint8_t> png = encoded(".png", 7, 5, 3);
  size_t idat = 8;
  while (idat + 8 <= png.size() && std::string(png.begin() + idat + 4, png.begin() + idat + 8) != "IDAT")
    idat += 12 + (size_t{png[idat]} << 24 | size_t{png[idat + 1]} << 16 | size_t{png[idat + 2]} << 8 | png[idat + 3]);
  REQUIRE(idat + 8 <= png.size());
  const std::vector<uint8_t> empty = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xaf, 0x06, 0x1e};  // CRC of "IDAT"
  std::vector<uint8_t> before = png;
  before.insert(before.begin() + static_cast<std::ptrdiff_t>(idat), empty.begin(), empty.end());
  CHECK(contains(check_error(before, "b.png"), "b.png: PNG whose first image data chunk"));
  const size_t after_at =
      idat + 12 + (size_t{png[idat]} << 24 | size_t{png[idat + 1]} << 16 | size_t{png[idat + 2]} << 8 | png[idat + 3]);
  std::vector<uint8_t> after = png;
  after.insert(after.begin() + static_cast<std::ptrdiff_t>(after_at), empty.begin(), empty.end());
  CHECK(check_error(after, "a.png") == "");
}

TEST_CASE("image check: a PNG chunk claiming more bytes than the file holds") {
  // stb_image grew its buffer to the claimed length (2 GiB: out of memory in fuzz_image).
  CHECK(contains(check_error(fuzz_input("oom-png-chunk-longer-than-file"), "o.png"),
                 "o.png: corrupt PNG: a chunk at byte "));
  std::vector<uint8_t> png = encoded(".png", 7, 5, 3);
  put_be32(png, 8, 1u << 30);  // the IHDR chunk's length
  CHECK(check_error(png, "l.png") ==
        "l.png: corrupt PNG: a chunk at byte 8 claims 1073741824 bytes, more than the file holds");
}

TEST_CASE("image check: more pixels than the file can hold, or than qforge decodes") {
  // stb allocates what the header says and decodes missing data as zeros: 100 bytes could ask for 3 GB.
  std::vector<uint8_t> bmp = encoded(".bmp", 2, 2, 3);
  put_le32(bmp, 18, 16000);
  put_le32(bmp, 22, 16000);
  CHECK(check_error(bmp, "big.bmp") == "big.bmp: image header claims 16000x16000 pixels, more than a file of " +
                                           std::to_string(bmp.size()) + " bytes can hold (corrupt or hostile file)");
  std::vector<uint8_t> png = encoded(".png", 2, 2, 1);
  put_be32(png, 16, 20000);  // IHDR width and height (stb does not check the CRC)
  put_be32(png, 20, 20000);
  CHECK(contains(check_error(png, "big.png"), "big.png: image header claims 20000x20000 pixels, more than qforge"));
}

TEST_CASE("image check: other formats, whatever the name") {
  // stb picks its decoder from the content: GIF, PSD, TGA, HDR, ... are not for an image folder.
  const std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0, ';'};
  CHECK(check_error(gif, "x.png") == "x.png: not a PNG, JPEG or BMP file (by its first bytes, whatever its name says)");
  CHECK(contains(check_error({}, "e.jpg"), "e.jpg: not a PNG"));
  CHECK(contains(check_error({0xff, 0xd8}, "t.jpg"), "t.jpg: cannot decode image"));
}

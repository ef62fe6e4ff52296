// Checks an encoded image before stb_image decodes it. stb_image (Debian 12's libstb, v2.27) trusts
// its input more than a downloaded dataset deserves:
//  - it picks the decoder from the content, so a file named .png may reach its GIF, PSD, PIC, TGA,
//    HDR or PNM decoders: only PNG, JPEG and BMP signatures are let through (the extensions
//    ImageFolder lists);
//  - a JPEG Huffman table (DHT) with more than 256 codes makes it write past its table (fixed in
//    stb 2.28; found by tests/fuzz/fuzz_image);
//  - a PNG whose first IDAT chunk is empty makes it memcpy from a null pointer (found by fuzz_image);
//  - it decodes a BMP claiming 0 rows, which stb_image_resize then divides by (found by fuzz_image);
//  - it allocates and decodes whatever size the header claims, filling missing data with zeros, so a
//    100-byte BMP or JPEG can ask for gigabytes: the pixel count is bounded by the file's size (per
//    format, above any real file's compression ratio) and by kMaxImagePixels.
//
//   check_encoded_image(bytes.data(), bytes.size(), path);   // throws Error naming path
//   stbi_load_from_memory(bytes.data(), ...);
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace qforge::data {

// 2^28 pixels: 16384 x 16384.
constexpr uint64_t kMaxImagePixels = uint64_t{1} << 28;

// Throws Error naming path when the bytes are not a PNG, JPEG or BMP file stb_image may safely
// decode (see above). A file that passes may still fail to decode (stb reports why).
void check_encoded_image(const unsigned char* data, size_t size, const std::string& path);

}  // namespace qforge::data

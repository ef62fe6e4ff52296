#include "data/image_check.h"

#include <stb_image.h>

#include <climits>
#include <cstring>

#include "core/error.h"

namespace qforge::data {
namespace {

enum class Format { kPng, kJpeg, kBmp, kOther };

Format sniff(const unsigned char* p, size_t n) {
  static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n >= 8 && std::memcmp(p, png, 8) == 0) return Format::kPng;
  if (n >= 2 && p[0] == 0xff && p[1] == 0xd8) return Format::kJpeg;
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return Format::kBmp;
  return Format::kOther;
}

// Every DHT segment stb could read: any FF C4 pair (in valid data 0xFF is stuffed as FF 00, so this
// finds the markers and, in corrupt data, more), parsed as stb 2.27's stbi__process_marker does,
// bytes past the end reading as 0 like its stbi__get8.
void check_jpeg_huffman_tables(const unsigned char* p, size_t n, const std::string& path) {
  auto byte = [&](size_t i) -> int { return i < n ? p[i] : 0; };
  for (size_t m = 0; m + 1 < n; ++m) {
    if (p[m] != 0xff || p[m + 1] != 0xc4) continue;
    size_t i = m + 2;
    int L = (byte(i) << 8 | byte(i + 1)) - 2;
    i += 2;
    while (L > 0) {
      const int q = byte(i++);
      if ((q >> 4) > 1 || (q & 15) > 3) break;  // stb rejects the table
      int codes = 0;
      for (int k = 0; k < 16; ++k) codes += byte(i++);
      if (codes > 256)
        throw Error(path + ": corrupt JPEG: a Huffman table (DHT at byte " + std::to_string(m) + ") holds " +
                    std::to_string(codes) + " codes, more than 256");
      i += static_cast<size_t>(codes);
      L -= 17 + codes;
    }
  }
}

// stb 2.27 copies each IDAT chunk into a buffer it allocates on the first non-empty one: an empty
// first IDAT is copied (0 bytes) from a null pointer. Legal PNG, but no encoder writes it. It also
// grows that buffer to a chunk's claimed length (up to 1 GiB) before reading it: a chunk claiming more
// than the file holds is refused.
void check_png_chunks(const unsigned char* p, size_t n, const std::string& path) {
  auto be32 = [&](size_t i) {
    return uint32_t{p[i]} << 24 | uint32_t{p[i + 1]} << 16 | uint32_t{p[i + 2]} << 8 | p[i + 3];
  };
  bool data_seen = false;
  for (size_t i = 8; i + 8 <= n;) {
    const uint32_t len = be32(i);
    if (len > n - i - 8)
      throw Error(path + ": corrupt PNG: a chunk at byte " + std::to_string(i) + " claims " + std::to_string(len) +
                  " bytes, more than the file holds");
    if (std::memcmp(p + i + 4, "IDAT", 4) == 0) {
      if (len == 0 && !data_seen)
        throw Error(path + ": PNG whose first image data chunk (IDAT at byte " + std::to_string(i) +
                    ") is empty, which stb_image cannot read safely");
      data_seen = true;
    }
    if (std::memcmp(p + i + 4, "IEND", 4) == 0) return;
    i += 12 + static_cast<size_t>(len);  // length, type, data, CRC
  }
}

}  // namespace

void check_encoded_image(const unsigned char* data, size_t size, const std::string& path) {
  const Format f = sniff(data, size);
  if (f == Format::kOther)
    throw Error(path + ": not a PNG, JPEG or BMP file (by its first bytes, whatever its name says)");
  if (size > INT_MAX) throw Error(path + ": image file too large (over 2 GiB)");
  if (f == Format::kJpeg) check_jpeg_huffman_tables(data, size, path);
  if (f == Format::kPng) check_png_chunks(data, size, path);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &comp)) {
    const char* why = stbi_failure_reason();
    throw Error(path + ": cannot decode image: " + (why ? why : "unknown error"));
  }
  // stb 2.27 decodes a BMP of height 0 (as 0 rows), which its resizer then divides by.
  if (w < 1 || h < 1)
    throw Error(path + ": image header claims " + std::to_string(w) + "x" + std::to_string(h) +
                " pixels (corrupt file)");
  // The most pixels a real file of this size can hold: BMP (uncompressed in stb) 8 per byte at 1 bit
  // per pixel; JPEG under 512 per byte (each 8x8 block's DC code takes a bit at least); PNG about 8
  // times deflate's 1032:1 at 1 bit per pixel.
  const uint64_t per_byte = f == Format::kBmp ? 8 : f == Format::kJpeg ? 1024 : 16384;
  const uint64_t pixels = static_cast<uint64_t>(w) * static_cast<uint64_t>(h);
  if (pixels > kMaxImagePixels || pixels > per_byte * size)
    throw Error(path + ": image header claims " + std::to_string(w) + "x" + std::to_string(h) + " pixels, " +
                (pixels > kMaxImagePixels ? "more than qforge decodes (2^28)"
                                          : "more than a file of " + std::to_string(size) + " bytes can hold") +
                " (corrupt or hostile file)");
}

}  // namespace qforge::data

// Fuzz builds only: stb_image and stb_image_resize compiled from Debian's headers with the fuzzer's
// coverage and sanitizers. These definitions take precedence over libstb.so's, so ImageFolder's
// calls reach code that libFuzzer can see into and ASan can check.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_resize.h>

/* Classifies an image with a qforge int8 model, through the C API.
 *
 *   classify MODEL.qfm IMAGE.png
 *
 * prints the most likely class, its probability (softmax of the logits) and
 * its index, tab-separated:  Sneaker<TAB>0.912345<TAB>7
 * The image is decoded by stb_image (PNG, JPEG, BMP, ...) to the model's
 * channels (grey or RGB), resized to the model's input size if it differs,
 * and normalised by the runtime as in training (qf_run_u8). */
#include <math.h>
#include <qforge_c.h>
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  char err[512];
  qf_model* model = NULL;
  qf_context* ctx = NULL;
  unsigned char *hwc = NULL, *resized = NULL, *chw = NULL;
  float* logits = NULL;
  int status = 1;
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL.qfm IMAGE\n", argv[0]);
    return 2;
  }
  if (qf_model_load(argv[1], &model, err, sizeof err) != QF_OK) {
    fprintf(stderr, "classify: %s\n", err);
    return 1;
  }
  int C, H, W;
  qf_model_input_shape(model, &C, &H, &W);
  const int K = qf_model_num_classes(model);

  int w, h, comp;
  hwc = stbi_load(argv[2], &w, &h, &comp, C); /* C channels, interleaved */
  if (!hwc) {
    fprintf(stderr, "classify: %s: cannot decode the image (%s)\n", argv[2], stbi_failure_reason());
    goto done;
  }
  const unsigned char* px = hwc;
  if (w != W || h != H) {
    resized = malloc((size_t)W * H * C);
    if (!resized || !stbir_resize_uint8(hwc, w, h, 0, resized, W, H, 0, C)) {
      fprintf(stderr, "classify: %s: cannot resize %dx%d to %dx%d\n", argv[2], w, h, W, H);
      goto done;
    }
    px = resized;
  }
  chw = malloc((size_t)W * H * C); /* the runtime takes planar channels */
  logits = malloc(sizeof(float) * K);
  if (!chw || !logits) {
    fprintf(stderr, "classify: out of memory\n");
    goto done;
  }
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < H * W; ++i) chw[c * H * W + i] = px[i * C + c];

  if (qf_context_create(model, &ctx, err, sizeof err) != QF_OK ||
      qf_run_u8(ctx, chw, 1, logits, err, sizeof err) != QF_OK) {
    fprintf(stderr, "classify: %s\n", err);
    goto done;
  }
  int best = 0;
  for (int k = 1; k < K; ++k)
    if (logits[k] > logits[best]) best = k;
  double sum = 0;
  for (int k = 0; k < K; ++k) sum += exp((double)logits[k] - logits[best]);
  const char* name = qf_model_class_name(model, best);
  printf("%s\t%.6f\t%d\n", name ? name : "?", 1.0 / sum, best);
  status = 0;

done:
  free(logits);
  free(chw);
  free(resized);
  stbi_image_free(hwc);
  qf_context_free(ctx);
  qf_model_free(model);
  return status;
}

/* Runs a model through the installed C API and writes what it gives, for
 * tests/quant/test_capi_install.cpp to compare with qforge's C++ runtime:
 *
 *   qf_check MODEL.qfm N INPUT.f32 LOGITS.f32 PIXELS.u8 LOGITS_U8.f32
 *
 * INPUT.f32: N images float (N,C,H,W); PIXELS.u8: N images uint8 (N,C,H,W).
 * Prints the model's shape and class names; checks the error paths. Exit 0
 * only if every call behaved. */
#include <qforge_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define EXPECT(cond)                                                 \
  do {                                                               \
    if (!(cond)) {                                                   \
      fprintf(stderr, "qf_check:%d: failed: %s\n", __LINE__, #cond); \
      ++failures;                                                    \
    }                                                                \
  } while (0)

static void* read_all(const char* path, size_t bytes) {
  FILE* f = fopen(path, "rb");
  void* p = malloc(bytes ? bytes : 1);
  if (!f || !p || fread(p, 1, bytes, f) != bytes) {
    fprintf(stderr, "qf_check: cannot read %zu bytes from %s\n", bytes, path);
    exit(1);
  }
  fclose(f);
  return p;
}

static void write_all(const char* path, const void* p, size_t bytes) {
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
    fprintf(stderr, "qf_check: cannot write %s\n", path);
    exit(1);
  }
}

int main(int argc, char** argv) {
  char err[512];
  if (argc != 7) {
    fprintf(stderr, "usage: qf_check MODEL N INPUT.f32 LOGITS.f32 PIXELS.u8 LOGITS_U8.f32\n");
    return 2;
  }
  EXPECT(qf_api_version() == QF_API_VERSION);

  /* Errors come back as codes with a message. */
  qf_model* none = NULL;
  EXPECT(qf_model_load("/nonexistent/model.qfm", &none, err, sizeof err) == QF_ERR_MODEL);
  EXPECT(none == NULL && strstr(err, "/nonexistent/model.qfm") != NULL);
  EXPECT(qf_model_load(NULL, &none, err, sizeof err) == QF_ERR_ARGUMENT);
  EXPECT(strcmp(qf_status_name(QF_ERR_MODEL), "QF_ERR_MODEL") == 0);

  qf_model* model = NULL;
  if (qf_model_load(argv[1], &model, err, sizeof err) != QF_OK) {
    fprintf(stderr, "qf_check: %s\n", err);
    return 1;
  }
  int c, h, w;
  qf_model_input_shape(model, &c, &h, &w);
  const int k = qf_model_num_classes(model), n = atoi(argv[2]);
  printf("shape %d %d %d classes %d\n", c, h, w, k);
  for (int i = 0; i < k; ++i)
    printf("class %d %s\n", i, qf_model_class_name(model, i) ? qf_model_class_name(model, i) : "(none)");
  EXPECT(qf_model_class_name(model, k) == NULL && qf_model_class_name(model, -1) == NULL);
  float mean = -1, sd = -1;
  EXPECT(qf_model_normalization(model, 0, &mean, &sd, err, sizeof err) == QF_OK);
  printf("normalization %.9g %.9g\n", mean, sd);
  EXPECT(qf_model_normalization(model, c, &mean, &sd, err, sizeof err) == QF_ERR_ARGUMENT);

  const size_t per_image = (size_t)c * h * w;
  float* x = read_all(argv[3], sizeof(float) * per_image * n);
  unsigned char* px = read_all(argv[5], per_image * n);
  float* logits = malloc(sizeof(float) * k * n);
  qf_context* ctx = NULL;
  EXPECT(qf_context_create(model, &ctx, err, sizeof err) == QF_OK);
  /* The model may go first: the context keeps it alive. */
  qf_model_free(model);
  EXPECT(qf_run_float(ctx, x, 0, logits, err, sizeof err) == QF_ERR_ARGUMENT);
  EXPECT(strstr(err, "batch size 0") != NULL);
  EXPECT(qf_run_float(ctx, NULL, n, logits, err, sizeof err) == QF_ERR_ARGUMENT);
  EXPECT(qf_run_float(NULL, x, n, logits, err, sizeof err) == QF_ERR_ARGUMENT);

  if (qf_run_float(ctx, x, n, logits, err, sizeof err) != QF_OK) {
    fprintf(stderr, "qf_check: %s\n", err);
    return 1;
  }
  write_all(argv[4], logits, sizeof(float) * k * n);
  if (qf_run_u8(ctx, px, n, logits, err, sizeof err) != QF_OK) {
    fprintf(stderr, "qf_check: %s\n", err);
    return 1;
  }
  write_all(argv[6], logits, sizeof(float) * k * n);

  qf_context_free(ctx);
  qf_context_free(NULL);
  qf_model_free(NULL);
  free(logits);
  free(px);
  free(x);
  return failures == 0 ? 0 : 1;
}

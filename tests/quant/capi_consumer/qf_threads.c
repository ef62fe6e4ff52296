/* 8 threads on one model through the installed C API, each with its own
 * context, against serial results byte for byte:
 *
 *   qf_threads MODEL.qfm BATCH
 *
 * Exit 0 and "threads ok" when every run matched. Built by the consumer
 * project (tests/quant/test_capi_install.cpp) and by scripts/tsan_runtime.sh
 * under ThreadSanitizer. */
#include <pthread.h>
#include <qforge_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kThreads = 8, kRounds = 4 };

static qf_model* model;
static int batch, per_image, classes;
static unsigned char* pixels[kThreads];
static float* want[kThreads];
static int wrong, failed;

static void* worker(void* arg) {
  const int t = (int)(long)arg;
  char err[256];
  qf_context* ctx = NULL;
  float* y = malloc(sizeof(float) * batch * classes);
  if (!y || qf_context_create(model, &ctx, err, sizeof err) != QF_OK) {
    __atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
    free(y);
    return NULL;
  }
  for (int r = 0; r < kRounds; ++r) {
    if (qf_run_u8(ctx, pixels[t], batch, y, err, sizeof err) != QF_OK) {
      fprintf(stderr, "qf_threads: %s\n", err);
      __atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
    } else if (memcmp(y, want[t], sizeof(float) * batch * classes) != 0) {
      __atomic_add_fetch(&wrong, 1, __ATOMIC_RELAXED);
    }
  }
  qf_context_free(ctx);
  free(y);
  return NULL;
}

int main(int argc, char** argv) {
  char err[256];
  if (argc != 3) {
    fprintf(stderr, "usage: qf_threads MODEL.qfm BATCH\n");
    return 2;
  }
  batch = atoi(argv[2]);
  if (qf_model_load(argv[1], &model, err, sizeof err) != QF_OK || qf_set_num_threads(2, err, sizeof err) != QF_OK) {
    fprintf(stderr, "qf_threads: %s\n", err);
    return 1;
  }
  int c, h, w;
  qf_model_input_shape(model, &c, &h, &w);
  per_image = c * h * w;
  classes = qf_model_num_classes(model);
  qf_context* ctx = NULL;
  if (qf_context_create(model, &ctx, err, sizeof err) != QF_OK) return 1;
  for (int t = 0; t < kThreads; ++t) {
    pixels[t] = malloc((size_t)batch * per_image);
    want[t] = malloc(sizeof(float) * batch * classes);
    if (!pixels[t] || !want[t]) return 1;
    for (int i = 0; i < batch * per_image; ++i) pixels[t][i] = (unsigned char)(i * (t + 3) + 7 * t);
    if (qf_run_u8(ctx, pixels[t], batch, want[t], err, sizeof err) != QF_OK) {
      fprintf(stderr, "qf_threads: %s\n", err);
      return 1;
    }
  }
  qf_context_free(ctx);
  pthread_t th[kThreads];
  for (long t = 0; t < kThreads; ++t) pthread_create(&th[t], NULL, worker, (void*)t);
  for (int t = 0; t < kThreads; ++t) pthread_join(th[t], NULL);
  for (int t = 0; t < kThreads; ++t) {
    free(pixels[t]);
    free(want[t]);
  }
  qf_model_free(model);
  printf("threads %s: %d wrong, %d failed of %d runs\n", wrong || failed ? "FAILED" : "ok", wrong, failed,
         kThreads * kRounds);
  return wrong || failed ? 1 : 0;
}

/* qforge's int8 runtime for C (and any language with a C FFI).
 *
 * Load a .qfm model once, make one context per thread, run batches:
 *
 *   #include <qforge_c.h>
 *
 *   char err[512];
 *   qf_model* model;
 *   if (qf_model_load("model.qfm", &model, err, sizeof err) != QF_OK) {
 *     fprintf(stderr, "%s\n", err);
 *     return 1;
 *   }
 *   int c, h, w;
 *   qf_model_input_shape(model, &c, &h, &w);           // e.g. 1, 28, 28
 *   int k = qf_model_num_classes(model);               // logits per image
 *   qf_context* ctx;
 *   qf_context_create(model, &ctx, err, sizeof err);
 *   float* logits = malloc(sizeof(float) * n * k);
 *   qf_run_u8(ctx, pixels, n, logits, err, sizeof err);  // pixels: n images, uint8 NCHW
 *   printf("%s\n", qf_model_class_name(model, best));   // "Sneaker"
 *   qf_context_free(ctx);
 *   qf_model_free(model);
 *
 * Errors. A function that can fail returns a qf_status: QF_OK (0) or an error
 * code, and writes a one-line message naming the problem (and the file) into
 * err (err_size bytes, always NUL-terminated, truncated if longer; err may be
 * NULL). No C++ exception crosses this interface and no call aborts the
 * process on bad input; on error the out-parameters are left unchanged. The
 * message is only in err (no hidden per-thread state), so callers from
 * languages that move work between OS threads read the right one.
 *
 * Threads. A model is immutable once loaded: any number of threads may use one
 * model at once, each with its own context (a context holds one call's scratch:
 * the activation buffers). A context serves one call at a time; a second call
 * on a context already running returns QF_ERR_BUSY. Each op of a call is split
 * over the process's worker threads (qf_set_num_threads); when several threads
 * run at once, an op that finds the workers busy runs on its caller's thread.
 * Results are the same bytes however the work is split. When serving many
 * threads, qf_set_num_threads(1) leaves each call on its own thread.
 *
 * Lifetime. A context keeps its model's weights alive: qf_model_free may come
 * before qf_context_free. Both accept NULL.
 *
 * Results are those of qforge's own int8 runtime for the same input, byte for
 * byte (same instruction-set level: the CPU's best, capped by the environment
 * variable QFORGE_ISA=scalar|avx2|avx512|avx512vnni).
 */
#ifndef QFORGE_C_H
#define QFORGE_C_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define QF_API
#else
#define QF_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define QF_API_VERSION 1 /* bumped when a declaration below changes */

typedef enum qf_status {
  QF_OK = 0,
  QF_ERR_ARGUMENT = 1,  /* a null pointer, a count out of range */
  QF_ERR_MODEL = 2,     /* the file is missing, unreadable, truncated, or not a valid .qfm */
  QF_ERR_RUN = 3,       /* the model could not run on this input */
  QF_ERR_NO_MEMORY = 4, /* an allocation failed */
  QF_ERR_BUSY = 5,      /* the context is running another call */
  QF_ERR_INTERNAL = 6   /* anything else (a bug: please report the message) */
} qf_status;

typedef struct qf_model qf_model;     /* a loaded .qfm: graph, packed weights, classes */
typedef struct qf_context qf_context; /* one caller's scratch for running a model */

/* QF_API_VERSION of the library (a program may check it against the header's). */
QF_API int qf_api_version(void);
/* "QF_OK", "QF_ERR_MODEL", ...; "unknown" for other values. */
QF_API const char* qf_status_name(int status);

/* Worker threads for the process (n <= 0: one per core, the default). Waits
 * for a running op to finish. Affects every model. */
QF_API qf_status qf_set_num_threads(int n, char* err, size_t err_size);

/* Loads a .qfm file; the weights are packed for this CPU. *model is set on success. */
QF_API qf_status qf_model_load(const char* path, qf_model** model, char* err, size_t err_size);
QF_API void qf_model_free(qf_model* model);

/* The input one image has: channels, height, width (all set; 0 if model is NULL). */
QF_API void qf_model_input_shape(const qf_model* model, int* channels, int* height, int* width);
/* Logits per image (0 if model is NULL). */
QF_API int qf_model_num_classes(const qf_model* model);
/* The name of class i as trained ("Sneaker"), or NULL if i is out of range or
 * the model stores no names. Owned by the model. */
QF_API const char* qf_model_class_name(const qf_model* model, int i);
/* The normalisation qf_run_u8 applies to channel c (from the model's training
 * config; 0 and 1 where it had none): x = (pixel / 255 - mean) / std. */
QF_API qf_status qf_model_normalization(const qf_model* model, int c, float* mean, float* std, char* err,
                                        size_t err_size);

/* A context for running `model`. */
QF_API qf_status qf_context_create(const qf_model* model, qf_context** ctx, char* err, size_t err_size);
QF_API void qf_context_free(qf_context* ctx);

/* input: n images, float (n, C, H, W) row-major, normalised as in training.
 * logits: n * qf_model_num_classes floats, written on success. */
QF_API qf_status qf_run_float(qf_context* ctx, const float* input, int n, float* logits, char* err, size_t err_size);
/* pixels: n images, uint8 (n, C, H, W) row-major, planar (all of channel 0,
 * then channel 1, ...; for one channel that is simply the rows of pixels),
 * raw 0..255; each is normalised as (pixel / 255 - mean[c]) / std[c], in
 * float exactly as qforge's data pipeline does, then run as qf_run_float.
 * Interleaved RGB (HWC, as stb_image and most decoders give) must be
 * transposed by the caller. */
QF_API qf_status qf_run_u8(qf_context* ctx, const uint8_t* pixels, int n, float* logits, char* err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif /* QFORGE_C_H */

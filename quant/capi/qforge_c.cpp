// The C API (qforge_c.h) over quant::Int8Runtime. Every entry point catches
// everything: C callers get a status and a message, never an exception.
#include "quant/capi/qforge_c.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "quant/graph.h"
#include "quant/runtime.h"

namespace {

using qforge::quant::Int8Graph;
using qforge::quant::Int8Runtime;

// What a model handle shares with its contexts (kept alive by the last of them).
struct Model {
  std::unique_ptr<Int8Runtime> rt;
  int c = 0, h = 0, w = 0, classes = 0;
  std::vector<std::string> names;
  std::vector<float> mean, std;  // per channel
};

// A caller's failure, with its status (thrown inside this file only).
struct Failure {
  qf_status status;
  std::string message;
};

void write_error(char* err, size_t err_size, const std::string& msg) {
  if (!err || err_size == 0) return;
  const size_t n = std::min(msg.size(), err_size - 1);
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

// Runs f, turning every exception into a status and a message.
template <class F>
qf_status guarded(char* err, size_t err_size, qf_status error_status, F&& f) {
  try {
    f();
    write_error(err, err_size, "");
    return QF_OK;
  } catch (const Failure& e) {
    write_error(err, err_size, e.message);
    return e.status;
  } catch (const std::bad_alloc&) {
    write_error(err, err_size, "qforge: out of memory");
    return QF_ERR_NO_MEMORY;
  } catch (const qforge::Error& e) {
    write_error(err, err_size, e.what());
    return error_status;
  } catch (const std::exception& e) {
    write_error(err, err_size, std::string("qforge: internal error: ") + e.what());
    return QF_ERR_INTERNAL;
  } catch (...) {
    write_error(err, err_size, "qforge: internal error (unknown exception)");
    return QF_ERR_INTERNAL;
  }
}

void require(bool ok, const std::string& msg) {
  if (!ok) throw Failure{QF_ERR_ARGUMENT, msg};
}

// data.mean / data.std of the training config: one value for every channel, or one per channel.
std::vector<float> channel_values(const nlohmann::json& config, const char* key, float fallback, int channels,
                                  const std::string& path) {
  std::vector<float> v;
  const std::string name = std::string("data.") + key;
  if (config.is_object() && config.contains("data") && config["data"].is_object() && config["data"].contains(key)) {
    const nlohmann::json& j = config["data"][key];
    QF_CHECK(j.is_array(), path + ": config " + name + " is not a list of numbers");
    for (const auto& x : j) {
      QF_CHECK(x.is_number(), path + ": config " + name + " is not a list of numbers");
      v.push_back(x.get<float>());
    }
  }
  QF_CHECK(v.empty() || v.size() == 1 || static_cast<int>(v.size()) == channels,
           path + ": config " + name + " has " + std::to_string(v.size()) + " values but the model takes " +
               std::to_string(channels) + " channels");
  std::vector<float> out(channels, fallback);
  for (int c = 0; c < channels; ++c)
    if (!v.empty()) out[c] = v.size() == 1 ? v[0] : v[c];
  return out;
}

}  // namespace

struct qf_model {
  std::shared_ptr<const Model> m;
};

struct qf_context {
  std::shared_ptr<const Model> m;
  Int8Runtime::Context ctx;
  std::vector<float> staging;  // qf_run_u8's normalised input
  std::atomic<bool> busy{false};
};

namespace {

// Checks the call's arguments and claims the context for it.
class Call {
 public:
  Call(qf_context* ctx, const void* input, int n, float* logits) : ctx_(ctx) {
    require(ctx != nullptr, "qforge: context is NULL");
    require(input != nullptr, "qforge: input is NULL");
    require(logits != nullptr, "qforge: logits is NULL");
    const Model& m = *ctx->m;
    const int64_t per_image = int64_t{m.c} * m.h * m.w;
    require(n > 0 && n <= INT_MAX / std::max<int64_t>(per_image, 1),
            "qforge: batch size " + std::to_string(n) + " out of range (1.." +
                std::to_string(INT_MAX / std::max<int64_t>(per_image, 1)) + " images of " + std::to_string(m.c) + "x" +
                std::to_string(m.h) + "x" + std::to_string(m.w) + ")");
    if (ctx->busy.exchange(true, std::memory_order_acquire))
      throw Failure{QF_ERR_BUSY, "qforge: the context is running another call (one context per thread)"};
  }
  ~Call() { ctx_->busy.store(false, std::memory_order_release); }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

 private:
  qf_context* ctx_;
};

}  // namespace

extern "C" {

int qf_api_version(void) { return QF_API_VERSION; }

const char* qf_status_name(int status) {
  switch (status) {
    case QF_OK:
      return "QF_OK";
    case QF_ERR_ARGUMENT:
      return "QF_ERR_ARGUMENT";
    case QF_ERR_MODEL:
      return "QF_ERR_MODEL";
    case QF_ERR_RUN:
      return "QF_ERR_RUN";
    case QF_ERR_NO_MEMORY:
      return "QF_ERR_NO_MEMORY";
    case QF_ERR_BUSY:
      return "QF_ERR_BUSY";
    case QF_ERR_INTERNAL:
      return "QF_ERR_INTERNAL";
    default:
      return "unknown";
  }
}

qf_status qf_set_num_threads(int n, char* err, size_t err_size) {
  return guarded(err, err_size, QF_ERR_ARGUMENT, [&] { qforge::set_num_threads(n); });
}

qf_status qf_model_load(const char* path, qf_model** model, char* err, size_t err_size) {
  return guarded(err, err_size, QF_ERR_MODEL, [&] {
    require(path != nullptr, "qforge: model path is NULL");
    require(model != nullptr, "qforge: model out-parameter is NULL");
    auto m = std::make_shared<Model>();
    Int8Graph g = qforge::quant::load_int8_model(path);
    QF_CHECK(g.input_shape.size() == 3, std::string(path) + ": the input shape needs 3 values (C, H, W)");
    m->c = g.input_shape[0], m->h = g.input_shape[1], m->w = g.input_shape[2];
    m->names = g.classes;
    m->mean = channel_values(g.config, "mean", 0.f, m->c, path);
    m->std = channel_values(g.config, "std", 1.f, m->c, path);
    for (float s : m->std)
      QF_CHECK(s != 0.f && std::isfinite(s), std::string(path) + ": config data.std has a zero or non-finite value");
    m->rt = std::make_unique<Int8Runtime>(std::move(g));
    try {
      const int64_t k = m->rt->output_size(m->h, m->w);
      QF_CHECK(k > 0 && k <= INT_MAX, "the output has " + std::to_string(k) + " values per image");
      m->classes = static_cast<int>(k);
    } catch (const qforge::Error& e) {
      throw qforge::Error(std::string(path) + ": does not run on its own input shape: " + e.what());
    }
    *model = new qf_model{std::move(m)};
  });
}

void qf_model_free(qf_model* model) { delete model; }

void qf_model_input_shape(const qf_model* model, int* channels, int* height, int* width) {
  const Model* m = model ? model->m.get() : nullptr;
  if (channels) *channels = m ? m->c : 0;
  if (height) *height = m ? m->h : 0;
  if (width) *width = m ? m->w : 0;
}

int qf_model_num_classes(const qf_model* model) { return model ? model->m->classes : 0; }

const char* qf_model_class_name(const qf_model* model, int i) {
  if (!model || i < 0 || i >= static_cast<int>(model->m->names.size())) return nullptr;
  return model->m->names[i].c_str();
}

qf_status qf_model_normalization(const qf_model* model, int c, float* mean, float* std, char* err, size_t err_size) {
  return guarded(err, err_size, QF_ERR_ARGUMENT, [&] {
    require(model != nullptr, "qforge: model is NULL");
    const Model& m = *model->m;
    require(c >= 0 && c < m.c,
            "qforge: channel " + std::to_string(c) + " out of range (the model takes " + std::to_string(m.c) + ")");
    if (mean) *mean = m.mean[c];
    if (std) *std = m.std[c];
  });
}

qf_status qf_context_create(const qf_model* model, qf_context** ctx, char* err, size_t err_size) {
  return guarded(err, err_size, QF_ERR_INTERNAL, [&] {
    require(model != nullptr, "qforge: model is NULL");
    require(ctx != nullptr, "qforge: context out-parameter is NULL");
    auto* c = new qf_context;
    c->m = model->m;
    *ctx = c;
  });
}

void qf_context_free(qf_context* ctx) { delete ctx; }

qf_status qf_run_float(qf_context* ctx, const float* input, int n, float* logits, char* err, size_t err_size) {
  return guarded(err, err_size, QF_ERR_RUN, [&] {
    Call call(ctx, input, n, logits);
    const Model& m = *ctx->m;
    m.rt->run(input, n, m.h, m.w, logits, ctx->ctx);
  });
}

qf_status qf_run_u8(qf_context* ctx, const uint8_t* pixels, int n, float* logits, char* err, size_t err_size) {
  return guarded(err, err_size, QF_ERR_RUN, [&] {
    Call call(ctx, pixels, n, logits);
    const Model& m = *ctx->m;
    const int64_t plane = int64_t{m.h} * m.w;
    ctx->staging.resize(static_cast<size_t>(n) * m.c * plane);
    float* x = ctx->staging.data();
    for (int64_t i = 0; i < n; ++i)
      for (int c = 0; c < m.c; ++c) {
        // As data/transforms.cpp: scale to [0, 1], then normalise, in float.
        const float mean = m.mean[c], sd = m.std[c];
        const int64_t o = (i * m.c + c) * plane;
        for (int64_t p = 0; p < plane; ++p) x[o + p] = (static_cast<float>(pixels[o + p]) / 255.0f - mean) / sd;
      }
    m.rt->run(x, n, m.h, m.w, logits, ctx->ctx);
  });
}

}  // extern "C"

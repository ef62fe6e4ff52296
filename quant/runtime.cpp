#include "quant/runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

#include "core/blas.h"
#include "core/error.h"

namespace qforge::quant {
namespace {

template <class T>
std::vector<T> as_vector(const nn::StEntry& e) {
  std::vector<T> v(e.bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), e.bytes.data(), e.bytes.size());
  return v;
}

std::atomic<uint64_t> g_next_runtime_id{1};

}  // namespace

Int8Runtime::~Int8Runtime() = default;

Int8Runtime::Int8Runtime(Int8Graph g, Isa isa)
    : g_(std::move(g)), isa_(isa), id_(g_next_runtime_id.fetch_add(1)), own_(std::make_unique<Context>()) {
  validate_graph(g_, "int8 runtime");
  prep_.resize(g_.nodes.size());
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    const GraphNode& n = g_.nodes[i];
    Prepared& p = prep_[i];
    const QParams* in_qp = n.inputs.empty() ? nullptr : &g_.values[n.inputs[0]].qp;
    const QParams& out_qp = g_.values[n.output].qp;
    if (n.op == OpKind::kQConv2d || n.op == OpKind::kQLinear) {
      auto w = as_vector<int8_t>(g_.tensor(n, "weight"));
      auto b = as_vector<int32_t>(g_.tensor(n, "bias"));
      auto ws = as_vector<float>(g_.tensor(n, "weight_scale"));
      const Shape& ws_shape = g_.tensor(n, "weight").shape;
      const int oc = static_cast<int>(ws_shape[0]);
      auto rq = requant_multipliers(in_qp->scale, ws.data(), oc, out_qp.scale);
      if (n.op == OpKind::kQConv2d) {
        QConvParams& c = p.conv_params;
        c.geometry() = n.conv.geometry;
        c.OC = oc;
        c.C = n.conv.in_channels;  // the weight has in_channels / groups (validated)
        c.KH = static_cast<int>(ws_shape[2]);
        c.KW = static_cast<int>(ws_shape[3]);
        c.in_zero_point = in_qp->zero_point;
        c.out_zero_point = out_qp.zero_point;
        act_clamp(n.act, out_qp, c.out_qmin, c.out_qmax);
        c.H = c.W = std::max(c.KH, c.KW);  // packing does not depend on the input size
        p.conv = pack_conv_weights(c, w.data(), b.data(), rq.data(), isa_);
      } else {
        QLinearParams& l = p.linear_params;
        l.N = oc;
        l.K = static_cast<int>(ws_shape[1]);
        l.in_zero_point = in_qp->zero_point;
        l.out_zero_point = out_qp.zero_point;
        act_clamp(n.act, out_qp, l.out_qmin, l.out_qmax);
        p.conv = pack_linear_weights(l, w.data(), b.data(), rq.data(), isa_);
      }
      weight_bytes_ += p.conv.packed.size() + p.conv.weight.size() + 16 * static_cast<size_t>(oc);
    } else if (n.op == OpKind::kQAdd) {
      p.add = make_qadd_params(g_.values[n.inputs[0]].qp, g_.values[n.inputs[1]].qp, out_qp, n.act == Act::kReLU);
    } else if (n.op == OpKind::kLinear) {
      p.fweight = as_vector<float>(g_.tensor(n, "weight"));
      p.fbias = as_vector<float>(g_.tensor(n, "bias"));
      weight_bytes_ += 4 * (p.fweight.size() + p.fbias.size());
    } else if (n.op == OpKind::kDynamicLinear) {
      const Shape& s = g_.tensor(n, "weight").shape;
      auto w = as_vector<int8_t>(g_.tensor(n, "weight"));
      auto ws = as_vector<float>(g_.tensor(n, "weight_scale"));
      auto b = as_vector<float>(g_.tensor(n, "bias"));
      p.dynamic =
          pack_linear_dynamic(static_cast<int>(s[1]), static_cast<int>(s[0]), w.data(), ws.data(), b.data(), isa_);
      weight_bytes_ += w.size() + 8 * ws.size();
    }
  }
  find_fusions();
}

void Int8Runtime::find_fusions() {
  std::vector<int> readers(g_.values.size(), 0), writer(g_.values.size(), -1);
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    for (int v : g_.nodes[i].inputs) ++readers[v];
    writer[g_.nodes[i].output] = static_cast<int>(i);
  }
  for (size_t j = 0; j < g_.nodes.size(); ++j) {
    const GraphNode& add = g_.nodes[j];
    if (add.op != OpKind::kQAdd || add.inputs.size() != 2 || add.inputs[0] == add.inputs[1]) continue;
    for (int side = 0; side < 2; ++side) {
      const int v = add.inputs[side], i = writer[v];
      if (i < 0 || g_.nodes[i].op != OpKind::kQConv2d || readers[v] != 1 || v == g_.output || prep_[i].fuse_add >= 0)
        continue;
      Prepared& c = prep_[i];
      c.fuse_add = static_cast<int>(j);
      c.residual = add.inputs[1 - side];
      c.conv_add = prep_[j].add;
      if (side == 1) {  // the conv is input a of the fused kernel: swap the (symmetric) terms
        std::swap(c.conv_add.a_zp, c.conv_add.b_zp);
        std::swap(c.conv_add.a_mul, c.conv_add.b_mul);
      }
      prep_[j].fused_into = static_cast<int>(i);
      break;
    }
  }
}

int Int8Runtime::fused_adds() const {
  return static_cast<int>(std::count_if(prep_.begin(), prep_.end(), [](const Prepared& p) { return p.fuse_add >= 0; }));
}

void Int8Runtime::make_plan(Plan& pl, int n, int h, int w, bool fused) const {
  pl.runtime = 0;  // not valid until complete (a shape error below leaves it unusable)
  pl.n = n, pl.h = h, pl.w = w, pl.fused = fused;
  const size_t V = g_.values.size();
  pl.dims.assign(V, {});
  pl.dims[0] = {n, g_.input_shape[0], h, w};
  std::vector<int> last_use(V, -1);
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    const GraphNode& nd = g_.nodes[i];
    for (int v : nd.inputs) last_use[v] = std::max(last_use[v], static_cast<int>(i));
    if (fused && prep_[i].fuse_add >= 0) last_use[nd.inputs[0]] = prep_[i].fuse_add;
    const Dims& in = pl.dims[nd.inputs[0]];
    Dims out = in;
    auto at = [&] { return "int8 runtime: node '" + nd.name + "' (" + op_name(nd.op) + ")"; };
    switch (nd.op) {
      case OpKind::kQConv2d: {
        const QConvParams& c = prep_[i].conv_params;
        QF_CHECK(in.c == c.C,
                 at() + ": input has " + std::to_string(in.c) + " channels, the weight " + std::to_string(c.C));
        const ConvOutputSize o =
            conv_output_size(at(), {in.n, in.c, in.h, in.w}, {c.OC, c.C / c.groups, c.KH, c.KW}, c);
        out = {in.n, c.OC, o.oh, o.ow};
        break;
      }
      case OpKind::kQLinear:
      case OpKind::kLinear:
      case OpKind::kDynamicLinear: {
        const int K = in.c * in.h * in.w, expect = nd.linear.in_features;
        QF_CHECK(K == expect,
                 at() + ": input has " + std::to_string(K) + " features, the layer " + std::to_string(expect));
        out = {in.n, nd.linear.out_features, 1, 1};
        break;
      }
      case OpKind::kQAdd: {
        const Dims& b = pl.dims[nd.inputs[1]];
        QF_CHECK(b.n == in.n && b.c == in.c && b.h == in.h && b.w == in.w, at() + ": inputs differ in shape");
        break;
      }
      case OpKind::kQMaxPool2d: {
        const ConvGeometry pg = nd.pool.geometry();
        out.h = pg.out_h(in.h, nd.pool.kernel);
        out.w = pg.out_w(in.w, nd.pool.kernel);
        QF_CHECK(out.h > 0 && out.w > 0, at() + ": input too small");
        break;
      }
      case OpKind::kQGlobalAvgPool:
        out.h = out.w = 1;
        break;
      default:
        break;
    }
    pl.dims[nd.output] = out;
  }
  // First-fit placement of each value's bytes, freed after its last reader.
  pl.offset.assign(V, 0);
  std::vector<std::pair<size_t, size_t>> live;  // offset, size
  std::vector<std::vector<int>> frees(g_.nodes.size());
  for (size_t v = 1; v < V; ++v)
    if (last_use[v] >= 0) frees[last_use[v]].push_back(static_cast<int>(v));
  pl.arena = 0;
  std::vector<bool> placed(V, false);
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    const int v = g_.nodes[i].output;
    // Fused: the conv runs at its add's place (the residual may be computed after the conv), writing
    // the add's output; its own output is never stored.
    if (!(fused && prep_[i].fuse_add >= 0)) {
      size_t sz = (pl.dims[v].bytes(g_.values[v].quantized) + 63) / 64 * 64;
      std::sort(live.begin(), live.end());
      size_t off = 0;
      for (auto& [o, s] : live) {
        if (off + sz <= o) break;
        off = std::max(off, o + s);
      }
      live.emplace_back(off, sz);
      pl.offset[v] = off;
      placed[v] = true;
      pl.arena = std::max(pl.arena, off + sz);
    }
    for (int f : frees[i]) {
      if (f == g_.output || !placed[f]) continue;
      size_t fo = pl.offset[f];
      auto it = std::find_if(live.begin(), live.end(), [&](auto& p) { return p.first == fo; });
      if (it != live.end()) live.erase(it);
    }
  }
  pl.runtime = id_;
}

int64_t Int8Runtime::output_size(int h, int w) const {
  Plan pl;
  make_plan(pl, 1, h, w, false);
  const Dims& od = pl.dims[g_.output];
  return static_cast<int64_t>(od.c) * od.h * od.w;
}

const float* Int8Runtime::output(const float* x, const Context& ctx) const {
  return g_.output == 0 ? x : reinterpret_cast<const float*>(ctx.arena_.data() + ctx.plan_.offset[g_.output]);
}

size_t Int8Runtime::arena_bytes() const { return own_->plan_.arena; }

Tensor Int8Runtime::run(const Tensor& x, std::map<std::string, Tensor>* taps) { return run(x, *own_, taps); }

Tensor Int8Runtime::run(const Tensor& x, Context& ctx, std::map<std::string, Tensor>* taps) const {
  QF_CHECK(x.dim() == 4 && x.size(1) == g_.input_shape[0],
           "int8 model: expected input (N," + std::to_string(g_.input_shape[0]) + ",H,W), got " + shape_str(x.shape()));
  const int n = static_cast<int>(x.size(0)), h = static_cast<int>(x.size(2)), w = static_cast<int>(x.size(3));
  run_nodes(x.data(), n, h, w, ctx, taps);
  const Dims& od = ctx.plan_.dims[g_.output];
  Tensor y = Tensor::empty({od.n, od.c * od.h * od.w});
  std::memcpy(y.data(), output(x.data(), ctx), y.numel() * sizeof(float));
  return y;
}

void Int8Runtime::run(const float* x, int n, int h, int w, float* out, Context& ctx) const {
  QF_CHECK(n > 0 && h > 0 && w > 0, "int8 model: empty input (" + std::to_string(n) + "," +
                                        std::to_string(g_.input_shape[0]) + "," + std::to_string(h) + "," +
                                        std::to_string(w) + ")");
  run_nodes(x, n, h, w, ctx, nullptr);
  const Dims& od = ctx.plan_.dims[g_.output];
  std::memcpy(out, output(x, ctx), static_cast<size_t>(od.n) * od.c * od.h * od.w * sizeof(float));
}

void Int8Runtime::run_nodes(const float* x, int n, int h, int w, Context& ctx,
                            std::map<std::string, Tensor>* taps) const {
  const bool fused = taps == nullptr;
  Plan& pl = ctx.plan_;
  if (pl.runtime != id_ || pl.n != n || pl.h != h || pl.w != w || pl.fused != fused) {
    if (pl.runtime != id_) ctx.times_.clear();  // another runtime's nodes
    make_plan(pl, n, h, w, fused);
    ctx.arena_.resize(pl.arena);
  }
  uint8_t* const arena = ctx.arena_.data();
  auto ptr = [&](int v) -> uint8_t* { return arena + pl.offset[v]; };
  // Value 0 (the caller's input) is only read.
  auto fptr = [&](int v) -> float* { return v == 0 ? const_cast<float*>(x) : reinterpret_cast<float*>(ptr(v)); };
  const bool profiling = ctx.profiling_;
  std::vector<NodeTime>& times = ctx.times_;
  if (profiling && times.size() != g_.nodes.size()) times.assign(g_.nodes.size(), {});
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    const GraphNode& nd = g_.nodes[i];
    const Prepared& p = prep_[i];
    const auto t0 = profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    const Dims& in = pl.dims[nd.inputs[0]];
    const Dims& out = pl.dims[nd.output];
    const QParams& in_qp = g_.values[nd.inputs[0]].qp;
    const QParams& out_qp = g_.values[nd.output].qp;
    if (fused && p.fuse_add >= 0) continue;  // runs at its add's place (and is timed there)
    if (fused && p.fused_into >= 0) {
      const Prepared& c = prep_[p.fused_into];
      const int cin = g_.nodes[p.fused_into].inputs[0];
      QConvParams q = c.conv_params;
      q.N = pl.dims[cin].n, q.H = pl.dims[cin].h, q.W = pl.dims[cin].w;
      qconv2d_add(q, c.conv, ptr(cin), c.conv_add, ptr(c.residual), ptr(nd.output));
    } else {
      switch (nd.op) {
        case OpKind::kQuantize:
          quantize_nchw_to_nhwc(out_qp, in.n, in.c, in.h, in.w, fptr(nd.inputs[0]), ptr(nd.output), isa_);
          break;
        case OpKind::kQConv2d: {
          QConvParams q = p.conv_params;
          q.N = in.n, q.H = in.h, q.W = in.w;
          qconv2d(q, p.conv, ptr(nd.inputs[0]), ptr(nd.output));
          break;
        }
        case OpKind::kQLinear: {
          QLinearParams q = p.linear_params;
          q.M = in.n;
          qlinear(q, p.conv, ptr(nd.inputs[0]), ptr(nd.output));
          break;
        }
        case OpKind::kQAdd:
          qadd(p.add, static_cast<int64_t>(in.n) * in.c * in.h * in.w, ptr(nd.inputs[0]), ptr(nd.inputs[1]),
               ptr(nd.output), isa_);
          break;
        case OpKind::kQMaxPool2d: {
          const PoolAttrs& pa = nd.pool;
          qmaxpool2d(make_pool2d_params(in.n, in.h, in.w, in.c, pa.kernel, pa.kernel, pa.stride, pa.stride, pa.padding,
                                        pa.padding),
                     ptr(nd.inputs[0]), ptr(nd.output), isa_);
          break;
        }
        case OpKind::kQGlobalAvgPool:
          qglobal_avgpool(make_global_avgpool_params(in.n, in.h, in.w, in.c, in_qp, out_qp), ptr(nd.inputs[0]),
                          ptr(nd.output), isa_);
          break;
        case OpKind::kDequantize:
          dequantize_nhwc_to_nchw(in_qp, in.n, in.c, in.h, in.w, ptr(nd.inputs[0]), fptr(nd.output), isa_);
          break;
        case OpKind::kLinear: {
          const int K = in.c * in.h * in.w, N = out.c;
          float* o = fptr(nd.output);
          for (int m = 0; m < in.n; ++m)
            std::memcpy(o + static_cast<int64_t>(m) * N, p.fbias.data(), N * sizeof(float));
          sgemm(false, true, in.n, N, K, 1.f, fptr(nd.inputs[0]), K, p.fweight.data(), K, 1.f, o, N);
          break;
        }
        case OpKind::kDynamicLinear:
          qlinear_dynamic(p.dynamic, in.n, fptr(nd.inputs[0]), fptr(nd.output));
          break;
      }
    }
    if (profiling) {
      NodeTime& nt = times[i];
      nt.calls.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (nt.name.empty()) {
        const bool conv_add = fused && p.fused_into >= 0;
        nt.name = conv_add ? g_.nodes[p.fused_into].name + " + " + nd.name : nd.name;
        nt.op = conv_add ? std::string(op_name(OpKind::kQConv2d)) + "+" + op_name(nd.op) : op_name(nd.op);
        nt.shape = std::to_string(out.n) + "x" + std::to_string(out.c) + "x" + std::to_string(out.h) + "x" +
                   std::to_string(out.w);
      }
    }
    if (taps) {
      Tensor t = Tensor::empty({out.n, out.c, out.h, out.w});
      if (g_.values[nd.output].quantized)
        dequantize_nhwc_to_nchw(out_qp, out.n, out.c, out.h, out.w, ptr(nd.output), t.data(), Isa::scalar);
      else
        std::memcpy(t.data(), fptr(nd.output), t.numel() * sizeof(float));
      (*taps)[nd.name] = t;
    }
  }
}

void Int8Runtime::set_profiling(bool on) { own_->set_profiling(on); }

std::vector<Int8Runtime::NodeTime> Int8Runtime::profile() const { return own_->profile(); }

void Int8Runtime::Context::set_profiling(bool on) {
  profiling_ = on;
  times_.clear();
}

std::vector<Int8Runtime::NodeTime> Int8Runtime::Context::profile() const {
  std::vector<NodeTime> v;
  for (const NodeTime& t : times_) {
    if (t.calls.empty()) continue;
    NodeTime m = t;
    std::nth_element(m.calls.begin(), m.calls.begin() + m.calls.size() / 2, m.calls.end());
    m.seconds = m.calls[m.calls.size() / 2];
    v.push_back(std::move(m));
  }
  return v;
}

}  // namespace qforge::quant

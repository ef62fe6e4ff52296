#include "quant/kernels/drivers.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/threads.h"

namespace qforge::quant {
namespace {

std::string conv_str(const QConvParams& p) {
  return "in (" + std::to_string(p.N) + "," + std::to_string(p.H) + "," + std::to_string(p.W) + "," +
         std::to_string(p.C) + ") kernel " + std::to_string(p.OC) + "x" + std::to_string(p.KH) + "x" +
         std::to_string(p.KW) + " " + p.geometry().str();
}

bool same_geometry(const QConvParams& a, const QConvParams& b) {
  return a.C == b.C && a.OC == b.OC && a.KH == b.KH && a.KW == b.KW && a.geometry() == b.geometry() &&
         a.in_zero_point == b.in_zero_point && a.out_zero_point == b.out_zero_point && a.out_qmin == b.out_qmin &&
         a.out_qmax == b.out_qmax;
}

void check_u8_range(int32_t zp, int32_t qmin, int32_t qmax, const std::string& what) {
  QF_CHECK(0 <= qmin && qmin <= qmax && qmax <= 255,
           what + ": clamp [" + std::to_string(qmin) + ", " + std::to_string(qmax) + "] must lie in [0, 255]");
  QF_CHECK(0 <= zp && zp <= 255, what + ": zero point " + std::to_string(zp) + " must lie in [0, 255]");
}

void check_multiplier(FixedPointMultiplier m, const std::string& what) {
  QF_CHECK(m.multiplier >= 0 && m.shift >= -31 && m.shift <= 30, what + ": fixed-point multiplier out of range (" +
                                                                     std::to_string(m.multiplier) + ", shift " +
                                                                     std::to_string(m.shift) + ")");
}

// Per-thread scratch: drivers allocate, kernels don't.
void* thread_scratch(size_t bytes) {
  thread_local std::vector<uint64_t> buf;
  const size_t words = (bytes + 7) / 8;
  if (buf.size() < words) buf.resize(words);
  return buf.data();
}

// Runs a conv kernel over the whole output. The work is cut into pieces that the pool's threads
// take in turn from a shared counter, so a thread that wakes late (an idle vCPU can take tens of
// microseconds) leaves its share to the others instead of delaying the op. Pieces are runs of
// micro-tiles of pixels (all channels), or output-channel panels (all pixels) when there are too
// few pixels to share.
void run_conv(const KernelTable& k, const QConvArgs& a, const uint8_t* in, uint8_t* out, int32_t* out_i32) {
  const int64_t P = int64_t(a.N) * a.OH * a.OW;
  const int mr = k.conv_mr, panel = k.conv_panel_oc;
  const int64_t tiles = (P + mr - 1) / mr;
  const int panels = (a.OC + panel - 1) / panel;
  const int threads = num_threads();
  const size_t scratch = k.conv_packed_bytes ? conv_scratch_bytes(a, mr, k.conv_chunk_tiles) : 0;
  const double macs = double(P) * a.OC * a.KH * a.KW * a.C;
  if (threads == 1 || macs < 2e6) {  // below ~5 us of work a wake-up costs more than it saves
    k.qconv2d(out, out_i32, in, a, 0, P, 0, a.OC, thread_scratch(scratch));
    return;
  }
  // Channel panels when there are too few micro-tiles to share (a batch-1 Linear), or few tiles,
  // weights past the L2 cache and enough panels to share evenly: each piece of pixels reads all
  // the weights, and a batch-1 7x7 layer of ResNet18 (9 tiles, 8 panels, 2.4 MB of weights) read
  // them 5 times from memory. On an AMD EPYC Zen 4 (2 threads), ResNet18 int8 at 224 b1 took
  // 0.97x the time in 3 of 4 alternating rounds; with small weights (MobileNetV2's 7x7 layers,
  // at most 0.4 MB) panels were slower.
  const int64_t weight_bytes = int64_t(a.OC) * a.KH * a.KW * a.C;
  const bool by_panels =
      panels > 1 &&
      (tiles < 2 * threads || (tiles < 16 * threads && panels >= 4 * threads && weight_bytes > (int64_t{1} << 20)));
  const int64_t piece_tiles = std::clamp<int64_t>((tiles + 4 * threads - 1) / (4 * threads), 1, k.conv_chunk_tiles);
  const int64_t pieces = by_panels ? panels : (tiles + piece_tiles - 1) / piece_tiles;
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(threads, pieces), 1, [&](int64_t, int64_t) {
    void* s = thread_scratch(scratch);
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < pieces;) {
      if (by_panels)
        k.qconv2d(out, out_i32, in, a, 0, P, static_cast<int>(i) * panel,
                  std::min<int>(a.OC, static_cast<int>(i + 1) * panel), s);
      else
        k.qconv2d(out, out_i32, in, a, i * piece_tiles * mr, std::min(P, (i + 1) * piece_tiles * mr), 0, a.OC, s);
    }
  });
}

// The batch-major kernel where it applies: plain C-byte slices, enough images to fill its tiles
// (they hold up to 5 images of one position), padding to skip, and images small enough that the
// tile's images stay in L2 (a tile reads one pixel from each image, which the prefetchers do not
// follow once an image's rows leave L1/L2). On ResNet18 28x28 b64 (2 threads) moving the limit
// from 16 KB (layers 3-4) to 64 KB (every layer) took the int8 run from 28.6 to 27.0 ms; with
// 6-image tiles, whose accumulators spilled, the larger images had been slower.
bool use_pos(const KernelTable& k, const QConvArgs& a) {
  return k.qconv2d_pos && a.tap_wsum && !a.row_merged && a.kt == a.ktp && a.N >= k.conv_mr &&
         (a.pad_h > 0 || a.pad_w > 0) && int64_t(a.H) * a.W * a.C <= 65536;
}

// Runs the batch-major kernel. Pieces are runs of output positions (all images, all channels),
// or single (position, channel panel) pairs when there are too few positions to share.
void run_conv_pos(const KernelTable& k, const QConvArgs& a, const uint8_t* in, uint8_t* out) {
  const int P = a.OH * a.OW;
  const int panel = k.conv_panel_oc, panels = (a.OC + panel - 1) / panel;
  const int threads = num_threads();
  const size_t scratch = conv_pos_scratch_bytes(a);
  const double macs = double(a.N) * P * a.OC * a.KH * a.KW * a.C;
  if (threads == 1 || macs < 2e6) {
    k.qconv2d_pos(out, in, a, 0, P, 0, a.OC, thread_scratch(scratch));
    return;
  }
  const bool by_panels = P < 8 * threads && panels > 1;
  const int piece = by_panels ? 1 : std::max(1, P / (8 * threads));
  const int64_t pieces = by_panels ? int64_t(P) * panels : (P + piece - 1) / piece;
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(threads, pieces), 1, [&](int64_t, int64_t) {
    void* s = thread_scratch(scratch);
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < pieces;) {
      if (by_panels) {
        const int pos = static_cast<int>(i / panels), pn = static_cast<int>(i % panels);
        k.qconv2d_pos(out, in, a, pos, pos + 1, pn * panel, std::min(a.OC, (pn + 1) * panel), s);
      } else {
        const int p0 = static_cast<int>(i) * piece;
        k.qconv2d_pos(out, in, a, p0, std::min(P, p0 + piece), 0, a.OC, s);
      }
    }
  });
}

// Runs the depthwise kernel over the rows of the N*OH output grid. Pieces of rows are taken in
// turn from a shared counter, as run_conv's; a row is OW pixels of all channels.
void run_dwconv(const KernelTable& k, const QDwConvArgs& a, const uint8_t* in, uint8_t* out) {
  const int64_t rows = int64_t(a.N) * a.OH;
  const double macs = double(rows) * a.OW * a.C * 9;
  if (num_threads() == 1 || macs < 1e6) {  // memory-bound: below ~a MB of traffic one thread is as fast
    k.qdwconv2d_3x3(out, in, a, 0, rows);
    return;
  }
  const int64_t piece = std::max<int64_t>(1, rows / (4 * num_threads()));
  parallel_pieces(rows, piece, [&](int64_t b, int64_t e) { k.qdwconv2d_3x3(out, in, a, b, e); });
}

// The scalar grouped reference, pieces of output pixels (all channels).
void run_grouped(const QConvArgs& a, int groups, const uint8_t* in, uint8_t* out) {
  const int64_t P = int64_t(a.N) * a.OH * a.OW;
  const int64_t per_pixel = std::max<int64_t>(1, int64_t(a.OC) * a.KH * a.KW * (a.C / groups));
  parallel_pieces(P, std::max<int64_t>(1, 65536 / per_pixel),
                  [&](int64_t b, int64_t e) { qconv2d_grouped__ref(out, nullptr, in, a, groups, b, e, 0, a.OC); });
}

QConvParams linear_as_conv(const QLinearParams& p) {
  QConvParams c;
  c.N = p.M;
  c.H = c.W = 1;
  c.C = p.K;
  c.OC = p.N;
  c.in_zero_point = p.in_zero_point;
  c.out_zero_point = p.out_zero_point;
  c.out_qmin = p.out_qmin;
  c.out_qmax = p.out_qmax;
  return c;
}

}  // namespace

std::vector<FixedPointMultiplier> requant_multipliers(float in_scale, const float* weight_scales, int OC,
                                                      float out_scale) {
  std::vector<FixedPointMultiplier> m(OC);
  for (int c = 0; c < OC; ++c)
    m[c] = quantize_multiplier(double(in_scale) * double(weight_scales[c]) / double(out_scale));
  return m;
}

// ---------------------------------------------------------------------------
// Conv2d

namespace {
QConvArgs fill_args(const PackedConvWeights& w, const QConvParams& p) {
  QConvArgs a{};
  a.N = p.N, a.H = p.H, a.W = p.W, a.C = p.C;
  a.OC = p.OC, a.KH = p.KH, a.KW = p.KW, a.OH = p.OH(), a.OW = p.OW();
  static_cast<ConvGeometry&>(a) = p.geometry();
  a.in_zp = p.in_zero_point, a.out_zp = p.out_zero_point, a.out_qmin = p.out_qmin, a.out_qmax = p.out_qmax;
  a.weight = w.weight.data();
  a.bias = w.bias.data();
  a.requant = w.requant.data();
  a.packed = w.packed.data();
  a.bias_packed = w.bias_packed.data();
  a.rq_multiplier = w.rq_multiplier.data();
  a.rq_lshift = w.rq_lshift.data();
  a.rq_rshift = w.rq_rshift.data();
  a.zero_row = w.zero_row.data();
  a.OCp = w.OCp, a.taps = w.taps, a.kt = w.kt, a.ktp = w.ktp, a.row_merged = w.row_merged;
  a.tap_wsum = w.tap_wsum.empty() ? nullptr : w.tap_wsum.data();
  a.residual = nullptr;
  return a;
}
}  // namespace

QConvArgs PackedConvWeights::args(const QConvParams& p) const {
  QF_CHECK(same_geometry(p, params), "qconv2d: parameters " + conv_str(p) + " differ from the packed weights' " +
                                         conv_str(params) + " (or their zero points / clamp)");
  QF_CHECK(p.N > 0 && p.H > 0 && p.W > 0 && p.OH() > 0 && p.OW() > 0,
           "qconv2d: empty input or output for " + conv_str(p));
  return fill_args(*this, p);
}

QDwConvArgs PackedConvWeights::dw_args(const QConvParams& p) const {
  QF_CHECK(path == ConvPath::kDepthwise3x3, "qconv2d: " + conv_str(params) + " is not packed as a depthwise 3x3");
  const QConvArgs c = args(p);
  QDwConvArgs a{};
  a.N = c.N, a.H = c.H, a.W = c.W, a.C = c.C, a.OH = c.OH, a.OW = c.OW;
  a.stride = c.stride_h, a.pad = c.pad_h;
  a.in_zp = c.in_zp, a.out_zp = c.out_zp, a.out_qmin = c.out_qmin, a.out_qmax = c.out_qmax;
  a.weight = weight.empty() ? nullptr : weight.data();
  a.bias = bias.data();
  a.requant = requant.data();
  a.packed = packed.data();
  a.bias_packed = bias_packed.data();
  a.rq_multiplier = rq_multiplier.data();
  a.rq_lshift = rq_lshift.data();
  a.rq_rshift = rq_rshift.data();
  a.zero_row = zero_row.data();
  return a;
}

ConvPath conv_path(const QConvParams& p) {
  if (p.groups == 1) return ConvPath::kGemm;
  // The depthwise kernels take one stride and padding for both axes; strides 1 and 2 and paddings 0 and 1
  // are the ones tested byte for byte against the reference (MobileNet's are stride 1 or 2, padding 1).
  const bool dw = p.groups == p.C && p.OC == p.C && p.KH == 3 && p.KW == 3 && p.stride_h == p.stride_w &&
                  (p.stride_h == 1 || p.stride_h == 2) && p.pad_h == p.pad_w && (p.pad_h == 0 || p.pad_h == 1) &&
                  p.dilation_h == 1 && p.dilation_w == 1;
  return dw ? ConvPath::kDepthwise3x3 : ConvPath::kGroupedRef;
}

const char* conv_path_name(ConvPath path) {
  switch (path) {
    case ConvPath::kGemm:
      return "gemm";
    case ConvPath::kDepthwise3x3:
      return "depthwise3x3";
    case ConvPath::kGroupedRef:
      return "grouped_ref";
  }
  return "?";
}

PackedConvWeights pack_conv_weights(const QConvParams& p, const int8_t* weight, const int32_t* bias,
                                    const FixedPointMultiplier* requant, Isa isa) {
  const std::string what = "qconv2d (" + conv_str(p) + ")";
  QF_CHECK(p.C > 0 && p.OC > 0 && p.KH > 0 && p.KW > 0, what + ": empty weights");
  p.geometry().check(what);
  QF_CHECK(p.C % p.groups == 0 && p.OC % p.groups == 0,
           what + ": input and output channels must be multiples of groups " + std::to_string(p.groups));
  const int Cg = p.C / p.groups;
  QF_CHECK(int64_t(p.KH) * p.KW * Cg < (int64_t{1} << 16), what + ": K = KH*KW*C too large for int32 accumulation");
  check_u8_range(p.in_zero_point, 0, 255, what + " input");
  check_u8_range(p.out_zero_point, p.out_qmin, p.out_qmax, what + " output");
  QF_CHECK(weight && requant, what + ": null weights or multipliers");
  const KernelTable& k = kernels_for(isa);

  PackedConvWeights w;
  w.params = p;
  w.isa = isa;
  w.path = conv_path(p);
  const int OC = p.OC, KH = p.KH, KW = p.KW;
  w.weight.resize(size_t(OC) * KH * KW * Cg);
  for (int o = 0; o < OC; ++o)  // (OC, Cg, KH, KW) -> (OC, KH, KW, Cg)
    for (int c = 0; c < Cg; ++c)
      for (int h = 0; h < KH; ++h)
        for (int x = 0; x < KW; ++x)
          w.weight[((size_t(o) * KH + h) * KW + x) * Cg + c] = weight[((size_t(o) * Cg + c) * KH + h) * KW + x];
  w.bias.assign(OC, 0);
  if (bias) std::copy(bias, bias + OC, w.bias.begin());
  w.requant.assign(requant, requant + OC);
  for (int o = 0; o < OC; ++o) check_multiplier(requant[o], what + " channel " + std::to_string(o));
  if (w.path == ConvPath::kGroupedRef) return w;  // the reference reads (OC, KH, KW, C/groups)
  if (w.path == ConvPath::kDepthwise3x3) {
    // (C, 3, 3, 1) -> (3, 3, C): a tap is C contiguous channels.
    std::vector<int8_t> taps(size_t(9) * OC);
    for (int c = 0; c < OC; ++c)
      for (int t = 0; t < 9; ++t) taps[size_t(t) * OC + c] = w.weight[size_t(c) * 9 + t];
    w.weight = std::move(taps);
    w.OCp = dwconv_padded_channels(OC);
    w.bias_packed.assign(w.OCp, 0);
    w.rq_multiplier.assign(w.OCp, 0);
    w.rq_lshift.assign(w.OCp, 0);
    w.rq_rshift.assign(w.OCp, 0);
    w.zero_row.assign(w.OCp, 0);
    QConvParams one = p;
    one.N = 1, one.H = one.W = 3;  // any size: packing reads the weights and channels only
    QDwConvArgs a = w.dw_args(one);
    pack_dwconv_3x3_channels(w.bias_packed.data(), w.rq_multiplier.data(), w.rq_lshift.data(), w.rq_rshift.data(),
                             w.zero_row.data(), a);
    if (k.dwconv_pack) {
      w.packed.resize(k.dwconv_packed_bytes(OC));
      k.dwconv_pack(w.packed.data(), a);
      w.weight = std::vector<int8_t>();  // only the scalar kernel reads it
    }
    return w;
  }

  const int C = p.C;
  w.weight_sum.assign(OC, 0);
  for (int o = 0; o < OC; ++o)
    for (size_t i = 0; i < size_t(KH) * KW * C; ++i) w.weight_sum[o] += w.weight[o * size_t(KH) * KW * C + i];

  // Small C: merge the KW taps of a kernel row into one slice (the stems).
  w.row_merged = p.dilation_w == 1 && KW > 1 && C * KW <= kConvMergedMax && (C % 4 != 0 || C < 16);
  w.taps = w.row_merged ? KH : KH * KW;
  w.kt = w.row_merged ? KW * C : C;
  w.ktp = (w.kt + kConvKGroup - 1) / kConvKGroup * kConvKGroup;
  w.OCp = (OC + kConvOcAlign - 1) / kConvOcAlign * kConvOcAlign;
  w.bias_packed.assign(w.OCp, 0);
  w.rq_multiplier.assign(w.OCp, 0);
  w.rq_lshift.assign(w.OCp, 0);
  w.rq_rshift.assign(w.OCp, 0);
  for (int o = 0; o < OC; ++o) {
    // bias - in_zp * sum(w), wrapped to 32 bits as the kernels' accumulators wrap (the int32 sum
    // of the products is the true one modulo 2^32). The product is taken in int64, so it does not
    // rely on the K < 2^16 check above to stay clear of signed overflow.
    w.bias_packed[o] = static_cast<int32_t>(static_cast<uint32_t>(w.bias[o]) -
                                            static_cast<uint32_t>(int64_t{p.in_zero_point} * w.weight_sum[o]));
    w.rq_multiplier[o] = requant[o].multiplier;
    w.rq_lshift[o] = std::max(requant[o].shift, 0);
    w.rq_rshift[o] = std::max(-requant[o].shift, 0);
  }
  w.zero_row.assign(w.ktp, static_cast<uint8_t>(p.in_zero_point));
  if (k.qconv2d_pos && !w.row_merged) {
    w.tap_wsum.assign(size_t(w.taps) * w.OCp, 0);
    for (int o = 0; o < OC; ++o)
      for (int t = 0; t < w.taps; ++t)
        for (int c = 0; c < C; ++c) w.tap_wsum[size_t(t) * w.OCp + o] += w.weight[(size_t(o) * w.taps + t) * C + c];
  }
  if (k.conv_packed_bytes) {
    QConvArgs a = fill_args(w, p);
    w.packed.resize(k.conv_packed_bytes(a));
    // Every layout holds OCp x taps x ktp elements of 1 or 2 bytes (kernels.h).
    const size_t elems = conv_packed_elems(w.OCp, w.taps, w.ktp);
    QF_CHECK(w.packed.size() == elems || w.packed.size() == 2 * elems,
             what + ": " + k.name + " packs " + std::to_string(w.packed.size()) + " bytes, the layout " +
                 std::to_string(elems) + " elements");
    QF_CHECK(k.conv_panel_oc % kConvOcAlign == 0,
             what + ": " + k.name + " panels of " + std::to_string(k.conv_panel_oc) + " channels do not tile OCp");
    a.packed = w.packed.data();
    k.conv_pack(w.packed.data(), a);
    w.weight = std::vector<int8_t>();  // only the scalar kernel reads it
  }
  return w;
}

void qconv2d(const QConvParams& p, const PackedConvWeights& w, const uint8_t* in, uint8_t* out) {
  const KernelTable& k = kernels_for(w.isa);
  switch (w.path) {
    case ConvPath::kDepthwise3x3:
      run_dwconv(k, w.dw_args(p), in, out);
      return;
    case ConvPath::kGroupedRef:
      run_grouped(w.args(p), w.params.groups, in, out);
      return;
    case ConvPath::kGemm:
      break;
  }
  const QConvArgs a = w.args(p);
  if (use_pos(k, a))
    run_conv_pos(k, a, in, out);
  else
    run_conv(k, a, in, out, nullptr);
}

void qconv2d_add(const QConvParams& p, const PackedConvWeights& w, const uint8_t* in, const QAddParams& add,
                 const uint8_t* residual, uint8_t* out) {
  QF_CHECK(add.shift >= 1 && add.shift <= 30, "qconv2d_add: add shift " + std::to_string(add.shift) + " out of range");
  const KernelTable& k = kernels_for(w.isa);
  if (w.path == ConvPath::kGemm && k.conv_fused_add) {
    QConvArgs a = w.args(p);
    a.residual = residual;
    a.add = add;
    if (use_pos(k, a))
      run_conv_pos(k, a, in, out);
    else
      run_conv(k, a, in, out, nullptr);
    return;
  }
  qconv2d(p, w, in, out);
  parallel_pieces(int64_t(p.N) * p.OH() * p.OW() * p.OC, 16384,
                  [&](int64_t s, int64_t e) { k.qadd(out + s, out + s, residual + s, e - s, add); });
}

// ---------------------------------------------------------------------------
// Linear

PackedLinearWeights pack_linear_weights(const QLinearParams& p, const int8_t* weight, const int32_t* bias,
                                        const FixedPointMultiplier* requant, Isa isa) {
  return pack_conv_weights(linear_as_conv(p), weight, bias, requant, isa);
}

void qlinear(const QLinearParams& p, const PackedLinearWeights& w, const uint8_t* in, uint8_t* out) {
  QF_CHECK(p.M > 0, "qlinear: M = " + std::to_string(p.M));
  run_conv(kernels_for(w.isa), w.args(linear_as_conv(p)), in, out, nullptr);
}

void qlinear_i32(const QLinearParams& p, const PackedLinearWeights& w, const uint8_t* in, int32_t* out) {
  QF_CHECK(p.M > 0, "qlinear_i32: M = " + std::to_string(p.M));
  run_conv(kernels_for(w.isa), w.args(linear_as_conv(p)), in, nullptr, out);
}

DynamicLinearWeights pack_linear_dynamic(int K, int N, const int8_t* weight, const float* weight_scale,
                                         const float* bias, Isa isa) {
  QF_CHECK(weight_scale, "qlinear_dynamic: null weight scales");
  DynamicLinearWeights d;
  d.K = K;
  d.N = N;
  QLinearParams p;
  p.K = K;
  p.N = N;
  std::vector<FixedPointMultiplier> unit(N, FixedPointMultiplier{1 << 30, 1});  // unused: int32 output
  d.packed = pack_linear_weights(p, weight, nullptr, unit.data(), isa);
  d.weight_scale.assign(weight_scale, weight_scale + N);
  d.bias.assign(N, 0.0f);
  if (bias) std::copy(bias, bias + N, d.bias.begin());
  return d;
}

void qlinear_dynamic(const DynamicLinearWeights& w, int M, const float* in, float* out) {
  QF_CHECK(M > 0, "qlinear_dynamic: M = " + std::to_string(M));
  const int K = w.K, N = w.N;
  const int64_t n_in = int64_t(M) * K;
  float lo = in[0], hi = in[0];
  for (int64_t i = 1; i < n_in; ++i) {
    lo = std::min(lo, in[i]);
    hi = std::max(hi, in[i]);
  }
  QF_CHECK(std::isfinite(lo) && std::isfinite(hi),
           "qlinear_dynamic: input (" + std::to_string(M) + "," + std::to_string(K) + ") holds inf or NaN");
  const QParams qx = choose_qparams_affine(lo, hi);
  const KernelTable& k = kernels_for(w.packed.isa);
  std::vector<uint8_t> xq(n_in);
  quantize_nchw_to_nhwc(qx, M, K, 1, 1, in, xq.data(), w.packed.isa);

  // Zero-point correction for this call's zx, and the reference's view of it.
  QLinearParams p;
  p.M = M;
  p.K = K;
  p.N = N;
  QConvArgs a = w.packed.args(linear_as_conv(p));
  std::vector<int32_t> bias_dyn(w.packed.OCp, 0);
  for (int n = 0; n < N; ++n)
    bias_dyn[n] = static_cast<int32_t>(0u - static_cast<uint32_t>(int64_t{qx.zero_point} * w.packed.weight_sum[n]));
  a.in_zp = qx.zero_point;
  a.bias = nullptr;
  a.bias_packed = bias_dyn.data();
  std::vector<int32_t> acc(size_t(M) * N);
  run_conv(k, a, xq.data(), nullptr, acc.data());

  std::vector<float> scale(N);
  for (int n = 0; n < N; ++n) scale[n] = qx.scale * w.weight_scale[n];
  parallel_for(M, std::max(1, 16384 / std::max(1, N)), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m)
      for (int n = 0; n < N; ++n) out[m * N + n] = static_cast<float>(acc[m * N + n]) * scale[n] + w.bias[n];
  });
}

// ---------------------------------------------------------------------------
// Add, pooling, quantize

QAddParams make_qadd_params(const QParams& a, const QParams& b, const QParams& out, bool relu) {
  QF_CHECK(a.scale > 0 && b.scale > 0 && out.scale > 0, "qadd: scales must be > 0");
  check_u8_range(a.zero_point, 0, 255, "qadd input a");
  check_u8_range(b.zero_point, 0, 255, "qadd input b");
  check_u8_range(out.zero_point, out.qmin, out.qmax, "qadd output");
  QAddParams p{};
  p.a_zp = a.zero_point;
  p.b_zp = b.zero_point;
  const double ma = double(a.scale) / out.scale, mb = double(b.scale) / out.scale;
  // At the smallest shift (1) the larger multiplier, rounded, must still fit int16: 2 * m < 32767.5.
  // (A bound of m < 16384 let m * 2 round to 32768, which wrapped to -32768.)
  QF_CHECK(std::max(ma, mb) * 2.0 < 32767.5, "qadd: input scales are more than 16383.75 times the output's (a " +
                                                 std::to_string(a.scale) + ", b " + std::to_string(b.scale) + ", out " +
                                                 std::to_string(out.scale) + ")");
  // The largest shift that keeps both multipliers below 2^15 (the loop only raises the shift while
  // the next one stays below 32767, so every rounded multiplier is at most 32767).
  p.shift = 1;
  while (p.shift < 30 && std::max(ma, mb) * double(int64_t{1} << (p.shift + 1)) < 32767.0) ++p.shift;
  p.a_mul = static_cast<int16_t>(std::lround(ma * double(int64_t{1} << p.shift)));
  p.b_mul = static_cast<int16_t>(std::lround(mb * double(int64_t{1} << p.shift)));
  p.out_zp = out.zero_point;
  p.out_qmin = relu ? std::max(out.qmin, out.zero_point) : out.qmin;
  p.out_qmax = out.qmax;
  return p;
}

void qadd(const QAddParams& p, int64_t n, const uint8_t* a, const uint8_t* b, uint8_t* out, Isa isa) {
  const KernelTable& k = kernels_for(isa);
  parallel_pieces(n, 16384, [&](int64_t s, int64_t e) { k.qadd(out + s, a + s, b + s, e - s, p); });
}

QPool2dParams make_pool2d_params(int N, int H, int W, int C, int KH, int KW, int stride_h, int stride_w, int pad_h,
                                 int pad_w) {
  QF_CHECK(N > 0 && H > 0 && W > 0 && C > 0 && KH > 0 && KW > 0 && stride_h > 0 && stride_w > 0,
           "qmaxpool2d: empty shape or zero stride");
  QF_CHECK(pad_h >= 0 && pad_w >= 0 && 2 * pad_h <= KH && 2 * pad_w <= KW,
           "qmaxpool2d: padding must be at most half the kernel (kernel " + std::to_string(KH) + "x" +
               std::to_string(KW) + ", pad " + std::to_string(pad_h) + "," + std::to_string(pad_w) + ")");
  QPool2dParams p{N, H, W, C, KH, KW, stride_h, stride_w, pad_h, pad_w, 0, 0};
  const ConvGeometry g{stride_h, stride_w, pad_h, pad_w, 1, 1, 1};  // a window with dilation 1
  p.OH = g.out_h(H, KH);
  p.OW = g.out_w(W, KW);
  QF_CHECK(p.OH > 0 && p.OW > 0, "qmaxpool2d: kernel larger than the padded input");
  return p;
}

void qmaxpool2d(const QPool2dParams& p, const uint8_t* in, uint8_t* out, Isa isa) {
  const KernelTable& k = kernels_for(isa);
  const int64_t P = int64_t(p.N) * p.OH * p.OW;
  const int64_t piece = std::max<int64_t>(1, 65536 / (int64_t(p.C) * p.KH * p.KW));
  parallel_pieces(P, piece, [&](int64_t b, int64_t e) { k.qmaxpool2d(out, in, p, b, e); });
}

QGlobalAvgPoolParams make_global_avgpool_params(int N, int H, int W, int C, const QParams& in, const QParams& out) {
  QF_CHECK(N > 0 && H > 0 && W > 0 && C > 0, "qglobal_avgpool: empty shape");
  QF_CHECK(int64_t(H) * W < (int64_t{1} << 23), "qglobal_avgpool: H*W too large for int32 sums");
  check_u8_range(in.zero_point, 0, 255, "qglobal_avgpool input");
  check_u8_range(out.zero_point, out.qmin, out.qmax, "qglobal_avgpool output");
  QGlobalAvgPoolParams p{};
  p.N = N, p.H = H, p.W = W, p.C = C;
  p.in_zp = in.zero_point;
  // As many bits as the int32 sum leaves free, at most 16.
  p.pre_shift = 0;
  while (p.pre_shift < 16 && (int64_t(H) * W * 255) << (p.pre_shift + 1) < (int64_t{1} << 31)) ++p.pre_shift;
  p.multiplier =
      quantize_multiplier(double(in.scale) / (double(out.scale) * H * W) / double(int64_t{1} << p.pre_shift));
  p.out_zp = out.zero_point, p.out_qmin = out.qmin, p.out_qmax = out.qmax;
  return p;
}

void qglobal_avgpool(const QGlobalAvgPoolParams& p, const uint8_t* in, uint8_t* out, Isa isa) {
  const KernelTable& k = kernels_for(isa);
  const int64_t piece = std::max<int64_t>(1, 65536 / (int64_t(p.H) * p.W * p.C));
  parallel_pieces(p.N, piece, [&](int64_t b, int64_t e) { k.qglobal_avgpool(out, in, p, b, e); });
}

namespace {
QuantizeParams quantize_params(const QParams& qp, int N, int C, int H, int W, const char* op) {
  QF_CHECK(N > 0 && C > 0 && H > 0 && W > 0, std::string(op) + ": empty shape");
  QF_CHECK(qp.scale > 0 && std::isfinite(qp.scale), std::string(op) + ": scale must be finite and > 0");
  check_u8_range(qp.zero_point, qp.qmin, qp.qmax, op);
  return QuantizeParams{N, C, H * W, qp.scale, 1.0f / qp.scale, qp.zero_point, qp.qmin, qp.qmax};
}
}  // namespace

void quantize_nchw_to_nhwc(const QParams& qp, int N, int C, int H, int W, const float* in, uint8_t* out, Isa isa) {
  const QuantizeParams p = quantize_params(qp, N, C, H, W, "quantize");
  const KernelTable& k = kernels_for(isa);
  parallel_pieces(int64_t(N) * p.HW, std::max(1, 16384 / C),
                  [&](int64_t b, int64_t e) { k.quantize(out, in, p, b, e); });
}

void dequantize_nhwc_to_nchw(const QParams& qp, int N, int C, int H, int W, const uint8_t* in, float* out, Isa isa) {
  const QuantizeParams p = quantize_params(qp, N, C, H, W, "dequantize");
  const KernelTable& k = kernels_for(isa);
  parallel_pieces(int64_t(N) * p.HW, std::max(1, 16384 / C),
                  [&](int64_t b, int64_t e) { k.dequantize(out, in, p, b, e); });
}

}  // namespace qforge::quant

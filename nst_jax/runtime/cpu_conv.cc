// Direct NHWC float32 convolution for XLA:CPU through JAX's FFI (loaded by
// nst_jax/runtime/native.py), for the one-pass networks' few-channel layers.
//
// Why a kernel of our own: XLA:CPU's convolution runs 40-110 GFLOP/s on convs with 3-32 input
// channels (the feed-forward networks' first 9x9 conv, their stride-2 convs), a third of what
// onnxruntime's MLAS reaches on the same CPU, and no reformulation into XLA's own convolutions
// or matrix products closed the gap (docs/results/2026-12-03-one-pass.md,
// 2026-12-07-one-pass.md). XLA exposes no faster convolution for these shapes, and no maintained
// library ships one as an XLA:CPU custom call, so this is a register-blocked direct convolution
// (a row of output pixels x all output channels held in vector registers, one broadcast input
// value times one weight vector per step), compiled for the running CPU's vector width through
// GCC's function multiversioning (one library runs on any x86-64).
//
// It also takes the work of the layers around it, which on two cores are bound by memory passes
// over the largest tensors: the padding (reflect or edge) is done while reading (no padded
// copy), an optional per-image, per-channel affine map + ReLU is applied to the input while
// reading (the previous layer's instance norm, whose normalised output then never goes through
// memory), and the per-image, per-channel mean and variance of the output come back with it (the
// next instance norm's statistics, without another pass). Other compilers than GCC (clang) build
// the portable baseline only: the same results, slower.
//
// Target nst_conv_f32: (x (N, H, W, Ci), w (KH, KW, Ci, Co), scale (N, Ci), shift (N, Ci))
// -> (y (N, OH, OW, Co), stats (N, 2, Co)); attributes stride, pad (reflect, < H and W),
// pre (0: the input as is; 1: x * scale + shift; 2: relu(x * scale + shift)), edge (0: reflect
// padding, 1: edge padding). OH = (H + 2 pad - KH) / stride + 1 (VALID on the padded input),
// likewise OW. Co must be a multiple of 16. stats[n, 0] = the mean of y[n] over (OH, OW) per
// channel, stats[n, 1] = its (population) variance, both from sums kept in double.
//
// Target nst_conv_residual_f32: the same with a fifth operand skip (N, H, W, Ci) and a third
// result z = pre(x) + skip (attribute has_skip; 0: z = pre(x)), the convolution taking z: a
// residual block's sum, which its skip connection needs in memory, written by the kernel that
// reads it (see MaterializeRows).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// 16 floats: one AVX-512 register, two AVX ones, four SSE ones (GCC's vector extension lowers
// it to whatever the clone below targets). aligned(4): loads and stores at any float address.
typedef float V16 __attribute__((vector_size(64), aligned(4)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NST_CLONES __attribute__((target_clones("avx512f", "fma", "default")))
#else
#define NST_CLONES
#endif

struct Shape {
  int64_t n, h, w, ci, kh, kw, co, oh, ow, stride, pad;
  int pre, edge;
};

// The source index of padded position i of n (reflect: ... 2 1 | 0 1 2 ...; edge: 0 0 | 0 1).
inline int64_t Source(int64_t i, int64_t n, bool edge) {
  if (i < 0) return edge ? 0 : -i;
  if (i >= n) return edge ? n - 1 : 2 * (n - 1) - i;
  return i;
}

// The pre-map of n values of channels 0..Ci-1, repeated (pre 1 or 2).
inline void PreMap(const Shape& s, const float* p, const float* a, const float* b, float* q,
                   int64_t pixels) {
  for (int64_t j = 0; j < pixels; ++j, p += s.ci, q += s.ci)
    for (int64_t c = 0; c < s.ci; ++c) {
      const float v = p[c] * a[c] + b[c];
      q[c] = (s.pre == 2 && v < 0.f) ? 0.f : v;
    }
}

// One padded, pre-mapped input row (Wp = W + 2 pad positions x Ci) into buf: the interior in
// one piece, the padding pixel by pixel.
inline void LoadRow(const Shape& s, const float* x, const float* scale, const float* shift,
                    int64_t img, int64_t row, float* buf) {
  const float* src = x + ((img * s.h + Source(row, s.h, s.edge)) * s.w) * s.ci;
  const float* a = scale + img * s.ci;
  const float* b = shift + img * s.ci;
  auto put = [&](const float* p, float* q, int64_t pixels) {
    if (s.pre == 0) {
      std::memcpy(q, p, pixels * s.ci * sizeof(float));
    } else {
      PreMap(s, p, a, b, q, pixels);
    }
  };
  put(src, buf + s.pad * s.ci, s.w);
  for (int64_t j = 0; j < s.pad; ++j) {
    put(src + Source(j - s.pad, s.w, s.edge) * s.ci, buf + j * s.ci, 1);
    put(src + Source(s.w + j, s.w, s.edge) * s.ci, buf + (s.pad + s.w + j) * s.ci, 1);
  }
}

// WB output pixels x CV vectors of 16 output channels, accumulated over every tap and input
// channel; rows[k] points at padded input row (stride * oh + k).
template <int CV, int WB>
__attribute__((always_inline)) inline void Block(const Shape& s, float* const* rows,
                                                 const float* w, int64_t ow0, int64_t g0,
                                                 float* y, double* st) {
  V16 acc[WB][CV];
  for (int p = 0; p < WB; ++p)
    for (int j = 0; j < CV; ++j) acc[p][j] = V16{};
  // For one kernel row the taps (v, c) of a pixel are KW * Ci consecutive floats of the padded
  // input row, and their weights consecutive rows of Co: one flat loop.
  const int64_t step = s.stride * s.ci, taps = s.kw * s.ci;
  for (int64_t u = 0; u < s.kh; ++u) {
    const float* xu = rows[u] + ow0 * step;
    const float* wu = w + u * taps * s.co + g0;
    for (int64_t t = 0; t < taps; ++t) {
      V16 wk[CV];
      for (int j = 0; j < CV; ++j) wk[j] = *reinterpret_cast<const V16*>(wu + t * s.co + 16 * j);
      for (int p = 0; p < WB; ++p) {
        const float a = xu[p * step + t];
        for (int j = 0; j < CV; ++j) acc[p][j] += wk[j] * a;
      }
    }
  }
  // The statistics: WB pixels summed in float, then added in double (no long float sums).
  for (int j = 0; j < CV; ++j) {
    V16 sum{}, sq{};
    for (int p = 0; p < WB; ++p) {
      *reinterpret_cast<V16*>(y + (ow0 + p) * s.co + g0 + 16 * j) = acc[p][j];
      sum += acc[p][j];
      sq += acc[p][j] * acc[p][j];
    }
    for (int l = 0; l < 16; ++l) {
      st[g0 + 16 * j + l] += sum[l];
      st[s.co + g0 + 16 * j + l] += sq[l];
    }
  }
}

// One output row, output channels [g0, g0 + 16 CV).
template <int CV>
__attribute__((always_inline)) inline void Row(const Shape& s, float* const* rows,
                                               const float* w, int64_t g0, float* y,
                                               double* st) {
  constexpr int WB = 12;  // 12 or 24 accumulators of the 32 AVX-512 registers
  int64_t ow0 = 0;
  for (; ow0 + WB <= s.ow; ow0 += WB) Block<CV, WB>(s, rows, w, ow0, g0, y, st);
  for (; ow0 < s.ow; ++ow0) Block<CV, 1>(s, rows, w, ow0, g0, y, st);
}

// Output rows [r0, r1) of the flattened (N x OH) rows; stats accumulated into st (N, 2, Co).
NST_CLONES void ConvRows(const Shape& s, const float* x, const float* w, const float* scale,
                         const float* shift, float* y, double* st, int64_t r0, int64_t r1) {
  // A ring of KH padded input rows: padded row i lives in slot i % KH, so the KH consecutive
  // rows an output row needs are in distinct slots, and the next output row loads only the
  // rows it does not share with this one (one for stride 1).
  const int64_t wp = s.w + 2 * s.pad;
  std::vector<float> buf(s.kh * wp * s.ci);
  std::vector<int64_t> held(s.kh, -1);  // the (image, padded row) each slot holds
  std::vector<float*> rows(s.kh);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / s.oh, oh = r % s.oh;
    for (int64_t k = 0; k < s.kh; ++k) {
      const int64_t i = oh * s.stride + k, slot = i % s.kh, key = img * (s.h + 2 * s.pad) + i;
      rows[k] = buf.data() + slot * wp * s.ci;
      if (held[slot] != key) {
        LoadRow(s, x, scale, shift, img, i - s.pad, rows[k]);
        held[slot] = key;
      }
    }
    float* yr = y + r * s.ow * s.co;
    double* sr = st + img * 2 * s.co;
    int64_t g0 = 0;
    for (; g0 + 32 <= s.co; g0 += 32) Row<2>(s, rows.data(), w, g0, yr, sr);
    for (; g0 < s.co; g0 += 16) Row<1>(s, rows.data(), w, g0, yr, sr);
  }
}

// fn(t, r0, r1) for contiguous blocks of rows, one per thread, on the calling thread and up to
// cores - 1 others; work (multiply-adds or elements in all) decides whether threads pay.
template <typename F>
int64_t ParallelRows(int64_t rows, int64_t work, F fn) {
  constexpr int64_t kPerThread = 1 << 21;  // work below which a thread is not started
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t threads = std::max<int64_t>(1, std::min({cores, rows, work / kPerThread}));
  const int64_t per = (rows + threads - 1) / threads;
  auto run = [&](int64_t t) {
    const int64_t r0 = t * per, r1 = std::min(rows, r0 + per);
    if (r0 < r1) fn(t, r0, r1);
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(run, t);
  run(0);
  for (auto& th : pool) th.join();
  return threads;
}

void Conv(const Shape& s, const float* x, const float* w, const float* scale,
          const float* shift, float* y, float* stats) {
  const int64_t work = s.n * s.oh * s.ow * s.kh * s.kw * s.ci * s.co;
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::vector<double>> st(cores, std::vector<double>(s.n * 2 * s.co, 0.));
  const int64_t threads = ParallelRows(s.n * s.oh, work, [&](int64_t t, int64_t r0, int64_t r1) {
    ConvRows(s, x, w, scale, shift, y, st[t].data(), r0, r1);
  });
  const double count = static_cast<double>(s.oh * s.ow);
  for (int64_t img = 0; img < s.n; ++img)
    for (int64_t c = 0; c < s.co; ++c) {
      double s1 = 0., s2 = 0.;
      for (int64_t t = 0; t < threads; ++t) {
        s1 += st[t][(img * 2) * s.co + c];
        s2 += st[t][(img * 2 + 1) * s.co + c];
      }
      const double mean = s1 / count;
      stats[(img * 2) * s.co + c] = static_cast<float>(mean);
      stats[(img * 2 + 1) * s.co + c] = static_cast<float>(std::max(0., s2 / count - mean * mean));
    }
}

// z = pre(x) (+ skip): the input of a residual network's convolution, which its skip connection
// needs in memory anyway. Done here rather than by XLA, which fuses each residual sum into the
// next one's instead of reading it back (every block recomputing all earlier ones).
NST_CLONES void MaterializeRows(const Shape& s, const float* x, const float* scale,
                                const float* shift, const float* skip, float* z, int64_t r0,
                                int64_t r1) {
  const int64_t row = s.w * s.ci;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / s.h;
    const float* p = x + r * row;
    float* q = z + r * row;
    if (s.pre == 0) {
      std::memcpy(q, p, row * sizeof(float));
    } else {
      PreMap(s, p, scale + img * s.ci, shift + img * s.ci, q, s.w);
    }
    if (skip) {
      const float* k = skip + r * row;
      for (int64_t i = 0; i < row; ++i) q[i] += k[i];
    }
  }
}

// The convolution's shape from its operands; an error for inconsistent ones.
ffi::Error Check(const ffi::Buffer<ffi::F32>& x, const ffi::Buffer<ffi::F32>& w,
                 const ffi::Buffer<ffi::F32>& scale, const ffi::Buffer<ffi::F32>& shift,
                 ffi::ResultBuffer<ffi::F32>& y, int64_t stride, int64_t pad, int64_t pre,
                 int64_t edge, Shape* out) {
  const auto xd = x.dimensions(), wd = w.dimensions(), yd = y->dimensions();
  if (xd.size() != 4 || wd.size() != 4 || yd.size() != 4)
    return ffi::Error::InvalidArgument("nst_conv: x, w and y must be 4-d");
  Shape s{xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2], stride, pad,
          static_cast<int>(pre), static_cast<int>(edge != 0)};
  if (wd[2] != s.ci || yd[0] != s.n || yd[3] != s.co || s.co % 16 != 0 || stride < 1 ||
      pad < 0 || pad >= s.h || pad >= s.w || pre < 0 || pre > 2 ||
      s.oh != (s.h + 2 * pad - s.kh) / stride + 1 || s.ow != (s.w + 2 * pad - s.kw) / stride + 1 ||
      s.oh < 1 || s.ow < 1)
    return ffi::Error::InvalidArgument("nst_conv: inconsistent shapes or attributes");
  if (scale.element_count() != s.n * s.ci || shift.element_count() != s.n * s.ci)
    return ffi::Error::InvalidArgument("nst_conv: scale and shift must be (N, Ci)");
  *out = s;
  return ffi::Error::Success();
}

ffi::Error ConvImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                    ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::F32> shift,
                    ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::F32> stats,
                    int64_t stride, int64_t pad, int64_t pre, int64_t edge) {
  Shape s;
  if (auto e = Check(x, w, scale, shift, y, stride, pad, pre, edge, &s); e.failure()) return e;
  Conv(s, x.typed_data(), w.typed_data(), scale.typed_data(), shift.typed_data(),
       y->typed_data(), stats->typed_data());
  return ffi::Error::Success();
}

// The same convolution of z = pre(x) (+ skip where has_skip), z returned too (see
// MaterializeRows); skip (N, H, W, Ci) like x (pass x itself where has_skip is 0).
ffi::Error ConvResidualImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                            ffi::Buffer<ffi::F32> scale, ffi::Buffer<ffi::F32> shift,
                            ffi::Buffer<ffi::F32> skip, ffi::ResultBuffer<ffi::F32> y,
                            ffi::ResultBuffer<ffi::F32> stats, ffi::ResultBuffer<ffi::F32> z,
                            int64_t stride, int64_t pad, int64_t pre, int64_t edge,
                            int64_t has_skip) {
  Shape s;
  if (auto e = Check(x, w, scale, shift, y, stride, pad, pre, edge, &s); e.failure()) return e;
  if (skip.element_count() != x.element_count() || z->element_count() != x.element_count())
    return ffi::Error::InvalidArgument("nst_conv_residual: skip and z must be shaped as x");
  float* zp = z->typed_data();
  const float* kp = has_skip ? skip.typed_data() : nullptr;
  ParallelRows(s.n * s.h, x.element_count(), [&](int64_t, int64_t r0, int64_t r1) {
    MaterializeRows(s, x.typed_data(), scale.typed_data(), shift.typed_data(), kp, zp, r0, r1);
  });
  s.pre = 0;  // z is the input, as it is
  Conv(s, zp, w.typed_data(), scale.typed_data(), shift.typed_data(), y->typed_data(),
       stats->typed_data());
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstConvF32, ConvImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stride")
                                  .Attr<int64_t>("pad")
                                  .Attr<int64_t>("pre")
                                  .Attr<int64_t>("edge"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstConvResidualF32, ConvResidualImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stride")
                                  .Attr<int64_t>("pad")
                                  .Attr<int64_t>("pre")
                                  .Attr<int64_t>("edge")
                                  .Attr<int64_t>("has_skip"));

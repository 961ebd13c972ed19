// Row-wise float32 sort for XLA:CPU through JAX's FFI (loaded by nst_jax/runtime/native.py).
//
// Why a kernel of our own: XLA:CPU sorts with a comparison sort that calls a compiled comparator
// per comparison on one thread (about 50 ns per element at 49152-element rows, 160 ms for the
// (64, 49152) projections of a relu1_1 layer on a 2-core EPYC), and the sorted-value style losses
// sort once or twice per layer per step. A stable LSD radix sort on order-preserving integer keys,
// its rows split over the machine's cores, does the same work 25-30x faster. No maintained
// library offers a sort as an XLA:CPU custom call.
//
// Semantics, shared with nst_jax.losses.sorting's XLA path (its tests compare the two bit for
// bit): keys order floats as IEEE comparison does, -0.0 and +0.0 tie (both come back +0.0),
// every NaN sorts last (as a NaN); the permutation is a stable sort's (ties in index order).
//
// Targets: nst_sort_f32 (x) -> sorted; nst_sort_perm_f32 (x) -> (sorted, int32 permutation);
// both sort along the last axis, every leading index a row.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Float bits -> unsigned key whose unsigned order is the float order (see the header).
inline uint32_t KeyOf(uint32_t b) {
  const uint32_t mag = b & 0x7FFFFFFFu;
  if (mag > 0x7F800000u) return 0xFFFFFFFFu;  // NaN: after +inf
  const int32_t k = (b & 0x80000000u) ? -static_cast<int32_t>(mag) : static_cast<int32_t>(mag);
  return static_cast<uint32_t>(k) ^ 0x80000000u;
}

// The inverse of KeyOf (the NaN key comes back as the quiet NaN 0x7FFFFFFF).
inline uint32_t BitsOf(uint32_t u) {
  const int32_t k = static_cast<int32_t>(u ^ 0x80000000u);
  return k < 0 ? (0x80000000u | static_cast<uint32_t>(-k)) : static_cast<uint32_t>(k);
}

// Three passes of 11, 11 and 10 bits: the 2048-entry counts stay in L1.
constexpr int kPasses = 3;
constexpr int kBits[kPasses] = {11, 11, 10};
constexpr int kShift[kPasses] = {0, 11, 22};
// Below this row length the counts cost more than a comparison sort of packed (key, index).
constexpr int64_t kRadixMin = 1024;

struct Scratch {
  std::vector<uint32_t> ka, kb;
  std::vector<int32_t> ia, ib;
  std::vector<uint64_t> packed;
};

void SortSmallRow(const uint32_t* in, int64_t n, uint32_t* out, int32_t* perm, Scratch& s) {
  s.packed.resize(n);
  for (int64_t i = 0; i < n; ++i)
    s.packed[i] = (static_cast<uint64_t>(KeyOf(in[i])) << 32) | static_cast<uint64_t>(i);
  std::sort(s.packed.begin(), s.packed.end());  // the index makes every key unique: stable
  for (int64_t i = 0; i < n; ++i) {
    out[i] = BitsOf(static_cast<uint32_t>(s.packed[i] >> 32));
    if (perm) perm[i] = static_cast<int32_t>(s.packed[i] & 0xFFFFFFFFu);
  }
}

void SortRow(const uint32_t* in, int64_t n, uint32_t* out, int32_t* perm, Scratch& s) {
  if (n < kRadixMin) {
    SortSmallRow(in, n, out, perm, s);
    return;
  }
  s.ka.resize(n);
  s.kb.resize(n);
  if (perm) {
    s.ia.resize(n);
    s.ib.resize(n);
  }
  uint32_t hist[kPasses][2048];
  std::memset(hist, 0, sizeof(hist));
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t k = KeyOf(in[i]);
    s.ka[i] = k;
    ++hist[0][k & 2047u];
    ++hist[1][(k >> 11) & 2047u];
    ++hist[2][k >> 22];
  }
  if (perm)
    for (int64_t i = 0; i < n; ++i) s.ia[i] = static_cast<int32_t>(i);
  uint32_t* src = s.ka.data();
  uint32_t* dst = s.kb.data();
  int32_t* isrc = perm ? s.ia.data() : nullptr;
  int32_t* idst = perm ? s.ib.data() : nullptr;
  for (int p = 0; p < kPasses; ++p) {
    uint32_t* h = hist[p];
    const int buckets = 1 << kBits[p];
    bool one_bucket = false;  // every key has the same digit: the pass would copy
    for (int b = 0; b < buckets && !one_bucket; ++b) one_bucket = h[b] == static_cast<uint64_t>(n);
    if (one_bucket) continue;
    uint32_t sum = 0;
    for (int b = 0; b < buckets; ++b) {
      const uint32_t c = h[b];
      h[b] = sum;
      sum += c;
    }
    const int shift = kShift[p];
    const uint32_t mask = static_cast<uint32_t>(buckets - 1);
    if (perm) {
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t k = src[i];
        const uint32_t pos = h[(k >> shift) & mask]++;
        dst[pos] = k;
        idst[pos] = isrc[i];
      }
      std::swap(isrc, idst);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t k = src[i];
        dst[h[(k >> shift) & mask]++] = k;
      }
    }
    std::swap(src, dst);
  }
  for (int64_t i = 0; i < n; ++i) out[i] = BitsOf(src[i]);
  if (perm) std::memcpy(perm, isrc, n * sizeof(int32_t));
}

// Rows split into contiguous blocks, one per thread; small arrays stay on the calling thread.
void SortRows(const float* x, float* y, int32_t* perm, int64_t rows, int64_t n) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(x);
  uint32_t* out = reinterpret_cast<uint32_t*>(y);
  auto work = [=](int64_t r0, int64_t r1) {
    Scratch s;
    for (int64_t r = r0; r < r1; ++r)
      SortRow(in + r * n, n, out + r * n, perm ? perm + r * n : nullptr, s);
  };
  constexpr int64_t kPerThread = 1 << 16;  // elements below which a thread is not worth starting
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t threads = std::max<int64_t>(1, std::min({cores, rows, rows * n / kPerThread}));
  if (threads == 1) {
    work(0, rows);
    return;
  }
  const int64_t per = (rows + threads - 1) / threads;
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) {
    const int64_t r0 = t * per, r1 = std::min(rows, r0 + per);
    if (r0 < r1) pool.emplace_back(work, r0, r1);
  }
  work(0, std::min(rows, per));
  for (auto& th : pool) th.join();
}

ffi::Error Shape(const ffi::Buffer<ffi::F32>& x, int64_t* rows, int64_t* n) {
  const auto dims = x.dimensions();
  if (dims.size() == 0) return ffi::Error::InvalidArgument("nst_sort: a 0-d array");
  *n = dims.back();
  if (*n >= (int64_t{1} << 31)) return ffi::Error::InvalidArgument("nst_sort: rows of 2^31");
  *rows = *n ? static_cast<int64_t>(x.element_count()) / *n : 0;
  return ffi::Error::Success();
}

ffi::Error Sort(ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> y) {
  int64_t rows = 0, n = 0;
  if (auto e = Shape(x, &rows, &n); e.failure()) return e;
  SortRows(x.typed_data(), y->typed_data(), nullptr, rows, n);
  return ffi::Error::Success();
}

ffi::Error SortPerm(ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> y,
                    ffi::ResultBuffer<ffi::S32> perm) {
  int64_t rows = 0, n = 0;
  if (auto e = Shape(x, &rows, &n); e.failure()) return e;
  SortRows(x.typed_data(), y->typed_data(), perm->typed_data(), rows, n);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstSortF32, Sort,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(NstSortPermF32, SortPerm,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());

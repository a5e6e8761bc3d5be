// Event-driven matrix products for 0/1 operands, used by the cpu backend's loops.
//
// A spiking layer's hidden state (and the input of every layer past the first) holds only 0 and 1,
// mostly 0. Multiplying such a row by a weight matrix is a sum of the weight rows picked by its 1s:
// no multiplications, and at a firing rate p only p of the work of a dense GEMM. Every function
// here first checks that its 0/1 operand really is 0/1 and sparse enough (density <= max_density)
// and returns false otherwise, so that the caller falls back to the dense GEMM; the result is the
// same product up to the order of the float additions.
//
// NaN and Inf: skipping the zeros of the 0/1 operand also skips the 0 x NaN and 0 x Inf terms that
// a dense GEMM turns into NaN, so a non-finite value in the other operand is handled apart, to give
// exactly the GEMM's NaN/Inf pattern: pack_column_tiles reports non-finite weights (the caller then
// keeps the GEMM), and binary_weight_grad marks NaN where the GEMM would (mark_dense_nans).
//
// Layouts are row-major and contiguous. Indices are int32 (a chunk holds far fewer rows).
#pragma once

#include <ATen/Parallel.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace spikingrnn {

// 64-byte vectors of GCC/Clang's vector extension: the compiler lowers them to the widest SIMD
// registers of the target (two AVX2 or four SSE registers when AVX-512 is missing).
template <typename T>
struct Vector;
template <>
struct Vector<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct Vector<double> {
  typedef double type __attribute__((vector_size(64)));
};

template <typename V, typename T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// Bit e of the result: block[e] != 0, for e < width <= 64; other becomes true when some value is
// neither 0 nor 1 (NaN included). SIMD compares where the target has them, else a plain loop.
inline uint64_t nonzero_bits(const float* block, int64_t width, bool& other) {
  uint64_t mask = 0, odd = 0;
  int64_t e = 0;
#if defined(__AVX512F__)
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  for (; e < width; e += 16) {
    const __mmask16 valid = width - e >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (width - e)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(valid, block + e);
    const __mmask16 nz = _mm512_mask_cmp_ps_mask(valid, v, zero, _CMP_NEQ_UQ);
    mask |= static_cast<uint64_t>(nz) << e;
    odd |= _mm512_mask_cmp_ps_mask(nz, v, one, _CMP_NEQ_UQ);
  }
#elif defined(__AVX2__)
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  for (; e + 8 <= width; e += 8) {
    const __m256 v = _mm256_loadu_ps(block + e);
    const __m256 nz = _mm256_cmp_ps(v, zero, _CMP_NEQ_UQ);
    mask |= static_cast<uint64_t>(_mm256_movemask_ps(nz)) << e;
    odd |= _mm256_movemask_ps(_mm256_and_ps(nz, _mm256_cmp_ps(v, one, _CMP_NEQ_UQ)));
  }
#endif
  for (; e < width; ++e) {
    const float v = block[e];
    mask |= static_cast<uint64_t>(v != 0.0f) << e;
    odd |= (v != 0.0f) & (v != 1.0f);
  }
  other |= odd != 0;
  return mask;
}

inline uint64_t nonzero_bits(const double* block, int64_t width, bool& other) {
  uint64_t mask = 0, odd = 0;
  int64_t e = 0;
#if defined(__AVX512F__)
  const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
  for (; e < width; e += 8) {
    const __mmask8 valid = width - e >= 8 ? __mmask8(0xFF) : __mmask8((1u << (width - e)) - 1);
    const __m512d v = _mm512_maskz_loadu_pd(valid, block + e);
    const __mmask8 nz = _mm512_mask_cmp_pd_mask(valid, v, zero, _CMP_NEQ_UQ);
    mask |= static_cast<uint64_t>(nz) << e;
    odd |= _mm512_mask_cmp_pd_mask(nz, v, one, _CMP_NEQ_UQ);
  }
#elif defined(__AVX2__)
  const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
  for (; e + 4 <= width; e += 4) {
    const __m256d v = _mm256_loadu_pd(block + e);
    const __m256d nz = _mm256_cmp_pd(v, zero, _CMP_NEQ_UQ);
    mask |= static_cast<uint64_t>(_mm256_movemask_pd(nz)) << e;
    odd |= _mm256_movemask_pd(_mm256_and_pd(nz, _mm256_cmp_pd(v, one, _CMP_NEQ_UQ)));
  }
#endif
  for (; e < width; ++e) {
    const double v = block[e];
    mask |= static_cast<uint64_t>(v != 0.0) << e;
    odd |= (v != 0.0) & (v != 1.0);
  }
  other |= odd != 0;
  return mask;
}

// Positions of the ones of row [0, K) into picked; returns their count, or -1 when the row holds a
// value other than 0 and 1. Blocks of 64 values: a SIMD pass builds a bit mask, then only the set
// bits are visited, so a sparse row costs little more than one read.
template <typename T>
int64_t gather_ones(const T* row, int64_t K, int32_t* picked) {
  int64_t count = 0;
  bool other = false;
  for (int64_t j0 = 0; j0 < K; j0 += 64) {
    uint64_t mask = nonzero_bits(row + j0, K - j0 < 64 ? K - j0 : 64, other);
    if (other) return -1;
    while (mask) {
      picked[count++] = static_cast<int32_t>(j0 + __builtin_ctzll(mask));
      mask &= mask - 1;
    }
  }
  return count;
}

// Whether x[0, n) are all finite: integer tests of the exponent bits, which the compiler vectorises
// (a floating-point reduction it may not reorder).
template <typename T>
inline bool all_finite(const T* x, int64_t n) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits exponent = sizeof(T) == 4 ? Bits(0x7F800000u) : Bits(0x7FF0000000000000ull);
  Bits bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    Bits u;
    std::memcpy(&u, x + i, sizeof(T));
    bad |= static_cast<Bits>((u & exponent) == exponent);
  }
  return bad == 0;
}

// Lanes of a Vector<T>; a column tile of the event-driven product is two vectors wide.
template <typename T>
constexpr int64_t lanes() {
  return static_cast<int64_t>(sizeof(typename Vector<T>::type) / sizeof(T));
}
template <typename T>
constexpr int64_t tile_width() {
  return 2 * lanes<T>();
}

template <typename T>
using V_of = typename Vector<T>::type;

template <typename T>
inline int64_t column_tiles(int64_t N) {
  return (N + tile_width<T>() - 1) / tile_width<T>();
}

// The weights of an event-driven product, w [N, K] (as nn.Linear keeps them: N outputs of K
// inputs), as column tiles packed [tiles, K, W] with W = tile_width: tile t holds the K rows of
// columns [tW, tW + W) of w^T back to back, zero padded past N. A sum over the rows picked by a
// 0/1 row then reads one contiguous block of K * W values, which stays in L1 while every batch row
// is summed; the rows of w^T itself lie 4N bytes apart and alias to a few cache sets.
// Returns whether every weight is finite: the event-driven sums must not be used otherwise (a NaN
// or Inf weight meets the zeros of the 0/1 operand in the GEMM, and makes NaN there).
template <typename T>
bool pack_column_tiles(const T* w, int64_t N, int64_t K, T* packed) {
  constexpr int64_t W = tile_width<T>();
  const int64_t tiles = column_tiles<T>(N);
  std::atomic<bool> finite{true};
  at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
    bool tiles_finite = true;
    for (int64_t t = begin; t < end; ++t) {
      T* tile = packed + t * K * W;
      std::memset(tile, 0, sizeof(T) * K * W);
      for (int64_t c = 0; c < W && t * W + c < N; ++c) {
        const T* src = w + (t * W + c) * K;
        tiles_finite &= all_finite(src, K);  // the row is then in L1 for the copy
        for (int64_t k = 0; k < K; ++k) tile[k * W + c] = src[k];
      }
    }
    if (!tiles_finite) finite = false;
  });
  return finite;
}

// acc (2 vectors, in two interleaved sets: 4 independent chains) += the tile rows index[q0, q1).
template <typename T, typename V>
inline void add_tile_rows(const T* tile, const int32_t* index, int64_t q0, int64_t q1, V (&acc)[4]) {
  constexpr int64_t L = lanes<T>(), W = tile_width<T>();
  int64_t q = q0;
  for (; q + 1 < q1; q += 2) {
    const T* a = tile + index[q] * W;
    const T* b = tile + index[q + 1] * W;
    acc[0] += load<V>(a);
    acc[1] += load<V>(a + L);
    acc[2] += load<V>(b);
    acc[3] += load<V>(b + L);
  }
  if (q < q1) {
    const T* a = tile + index[q] * W;
    acc[0] += load<V>(a);
    acc[1] += load<V>(a + L);
  }
}

// Columns [c0, c0 + width) of out row (width <= W): the tile sums acc[0] + acc[2] | acc[1] + acc[3].
template <typename T, typename V>
inline void store_tile_row(const V (&acc)[4], T* out, int64_t width) {
  constexpr int64_t L = lanes<T>();
  if (width == tile_width<T>()) {
    store(out, V(acc[0] + acc[2]));
    store(out + L, V(acc[1] + acc[3]));
    return;
  }
  T tmp[tile_width<T>()];
  store(tmp, V(acc[0] + acc[2]));
  store(tmp + L, V(acc[1] + acc[3]));
  std::memcpy(out, tmp, sizeof(T) * width);
}

// The first width (<= W) values of row, zero padded, as two vectors.
template <typename T>
inline void load_tile_row(const T* row, int64_t width, V_of<T>& first, V_of<T>& second) {
  constexpr int64_t L = lanes<T>();
  T values[tile_width<T>()] = {};
  std::memcpy(values, row, sizeof(T) * width);
  first = load<V_of<T>>(values);
  second = load<V_of<T>>(values + L);
}

// Tiles [t0, t1) of out [n, N] (row stride out_stride) = (bias or 0) + x @ w for the 0/1 rows of x
// given by their ones (row r: index[r * K, r * K + counts[r])) and w as column tiles. Rows are
// summed two at a time (8 independent addition chains) while the tile stays in L1.
template <typename T>
void sum_tiles(const T* packed, int64_t K, int64_t N, const T* bias, const int32_t* index, const int64_t* counts,
               int64_t n, T* out, int64_t out_stride, int64_t t0, int64_t t1) {
  using V = V_of<T>;
  constexpr int64_t L = lanes<T>(), W = tile_width<T>();
  for (int64_t t = t0; t < t1; ++t) {
    const T* tile = packed + t * K * W;
    const int64_t c0 = t * W, width = N - c0 < W ? N - c0 : W;
    V init0{}, init1{};
    if (bias) load_tile_row<T>(bias + c0, width, init0, init1);
    int64_t r = 0;
    for (; r + 1 < n; r += 2) {
      const int32_t* ia = index + r * K;
      const int32_t* ib = index + (r + 1) * K;
      const int64_t na = counts[r], nb = counts[r + 1], both = na < nb ? na : nb;
      V a[4] = {init0, init1, V{}, V{}}, b[4] = {init0, init1, V{}, V{}};
      int64_t q = 0;
      for (; q + 1 < both; q += 2) {
        const T* a0 = tile + ia[q] * W;
        const T* a1 = tile + ia[q + 1] * W;
        const T* b0 = tile + ib[q] * W;
        const T* b1 = tile + ib[q + 1] * W;
        a[0] += load<V>(a0);
        a[1] += load<V>(a0 + L);
        b[0] += load<V>(b0);
        b[1] += load<V>(b0 + L);
        a[2] += load<V>(a1);
        a[3] += load<V>(a1 + L);
        b[2] += load<V>(b1);
        b[3] += load<V>(b1 + L);
      }
      add_tile_rows<T, V>(tile, ia, q, na, a);
      add_tile_rows<T, V>(tile, ib, q, nb, b);
      store_tile_row<T, V>(a, out + r * out_stride + c0, width);
      store_tile_row<T, V>(b, out + (r + 1) * out_stride + c0, width);
    }
    if (r < n) {
      V a[4] = {init0, init1, V{}, V{}};
      add_tile_rows<T, V>(tile, index + r * K, 0, counts[r], a);
      store_tile_row<T, V>(a, out + r * out_stride + c0, width);
    }
  }
}

// Tasks of at least ~64K additions each, so that small products stay on one thread.
inline int64_t grain_for(int64_t tasks, int64_t total_adds) {
  constexpr int64_t kMinAddsPerTask = 1 << 16;
  if (tasks <= 0 || total_adds <= 0) return 1 << 30;
  const int64_t per_task = total_adds / tasks + 1;
  return kMinAddsPerTask / per_task + 1;
}

// The ones of each row of x [n, K] (CSR: row r's positions are index[r * K, r * K + counts[r])), when
// x is 0/1 with at most max_density * n * K ones; returns their total, or -1 otherwise.
template <typename T>
int64_t gather_rows(const T* x, int64_t n, int64_t K, double max_density, std::vector<int32_t>& index,
                    std::vector<int64_t>& counts) {
  if (index.size() < static_cast<size_t>(n * K)) index.resize(static_cast<size_t>(n * K));
  counts.resize(static_cast<size_t>(n));
  const double budget = max_density * static_cast<double>(n * K);
  int64_t total = 0;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t count = gather_ones(x + r * K, K, index.data() + r * K);
    if (count < 0) return -1;
    counts[r] = count;
    total += count;
    if (static_cast<double>(total) > budget) return -1;
  }
  return total;
}

// out [n, N] = (bias [N] or 0) + x [n, K] @ w^T for 0/1 x and w [N, K] given as column tiles
// (pack_column_tiles), when x is 0/1 with at most max_density * n * K ones; returns false (out
// untouched) otherwise. Threads split the column tiles. index, counts: scratch.
template <typename T>
bool binary_matmul(const T* x, int64_t n, int64_t K, const T* packed, int64_t N, const T* bias, T* out,
                   double max_density, std::vector<int32_t>& index, std::vector<int64_t>& counts) {
  const int64_t total = gather_rows(x, n, K, max_density, index, counts);
  if (total < 0) return false;
  const int64_t tiles = column_tiles<T>(N);
  at::parallel_for(0, tiles, grain_for(tiles, total * N), [&](int64_t begin, int64_t end) {
    sum_tiles<T>(packed, K, N, bias, index.data(), counts.data(), n, out, N, begin, end);
  });
  return true;
}

// The ones of x [M, F] by column, chunk by chunk of chunk_rows rows: for chunk c and column j, the
// rows (relative to the chunk, ascending) x[c * chunk_rows + r, j] == 1 are
// rows[starts[c * (F + 1) + j], starts[c * (F + 1) + j + 1]). Built from the row lists of gather_rows
// (total ones in all) by a counting sort per chunk.
inline void ones_by_column(const std::vector<int32_t>& index, const std::vector<int64_t>& counts, int64_t M, int64_t F,
                           int64_t total, int64_t chunk_rows, std::vector<int64_t>& starts,
                           std::vector<int32_t>& rows) {
  const int64_t chunks = (M + chunk_rows - 1) / chunk_rows;
  starts.assign(static_cast<size_t>(chunks * (F + 1)), 0);
  rows.resize(static_cast<size_t>(total));
  std::vector<int64_t> next(static_cast<size_t>(F));
  int64_t offset = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t* start = starts.data() + c * (F + 1);
    const int64_t m0 = c * chunk_rows, m1 = M - m0 < chunk_rows ? M : m0 + chunk_rows;
    std::fill(next.begin(), next.end(), 0);
    for (int64_t m = m0; m < m1; ++m) {
      const int32_t* picked = index.data() + m * F;
      for (int64_t q = 0; q < counts[m]; ++q) ++next[picked[q]];
    }
    for (int64_t j = 0; j < F; ++j) {
      start[j] = offset;
      const int64_t count = next[j];
      next[j] = offset;
      offset += count;
    }
    start[F] = offset;
    for (int64_t m = m0; m < m1; ++m) {
      const int32_t* picked = index.data() + m * F;
      for (int64_t q = 0; q < counts[m]; ++q) rows[next[picked[q]]++] = static_cast<int32_t>(m - m0);
    }
  }
}

// dest[0, kBlock) += the sum of the block rows listed in rows[q0, q1) of block (rows kBlock values
// apart, kBlock = 4 vectors): two sets of 4 accumulators in registers (8 independent addition
// chains), one load per vector added and no store until the end.
template <typename T>
inline void add_listed_rows(const T* block, const int32_t* rows, int64_t q0, int64_t q1, T* dest) {
  using V = V_of<T>;
  constexpr int64_t L = lanes<T>(), kBlock = 4 * L;
  V a[4] = {}, b[4] = {};
  int64_t q = q0;
  for (; q + 1 < q1; q += 2) {
    const T* p = block + rows[q] * kBlock;
    const T* r = block + rows[q + 1] * kBlock;
    for (int v = 0; v < 4; ++v) a[v] += load<V>(p + v * L);
    for (int v = 0; v < 4; ++v) b[v] += load<V>(r + v * L);
  }
  if (q < q1) {
    const T* p = block + rows[q] * kBlock;
    for (int v = 0; v < 4; ++v) a[v] += load<V>(p + v * L);
  }
  for (int v = 0; v < 4; ++v) store(dest + v * L, V(load<V>(dest + v * L) + a[v] + b[v]));
}

// dst[0, width) = src[0, width), width <= 4 vectors; probe[v] accumulates x - x of the values x
// copied to vector v, which leaves its lanes 0 when all are finite and makes one NaN otherwise (NaN
// and +-Inf give NaN). One vector subtraction and addition per vector copied, in 4 independent
// chains: the copy stays bound by memory.
template <typename T>
inline void copy_probing(T* dst, const T* src, int64_t width, V_of<T> (&probe)[4]) {
  using V = V_of<T>;
  constexpr int64_t L = lanes<T>();
  const T* from = src;
  T values[4 * L];
  if (width < 4 * L) {  // the last block: zero padded
    std::memset(values, 0, sizeof(values));
    std::memcpy(values, src, sizeof(T) * width);
    from = values;
  }
  for (int v = 0; v < 4; ++v) {
    const V a = load<V>(from + v * L);
    store(dst + v * L, a);
    probe[v] += a - a;
  }
}

// Whether the probes of copy_probing saw a non-finite value.
template <typename T>
inline bool probed_non_finite(const V_of<T> (&probe)[4]) {
  const V_of<T> all = probe[0] + probe[1] + probe[2] + probe[3];
  bool seen = false;
  for (int64_t l = 0; l < lanes<T>(); ++l) seen |= all[l] != T(0);
  return seen;
}

// The dense GEMM's NaNs that the event-driven sum misses, for columns [c0, c0 + width) of d [M, G]:
// sums [F, kBlock] (the block's x^T d) gets NaN at (j, c) when some row m with a non-finite d[m, c0 + c]
// has x[m, j] == 0 (the GEMM's 0 x NaN or 0 x Inf term). Where x[m, j] == 1 for every such row, the
// sum already holds what the GEMM gives (the non-finite values were added). Rows' ones are given as
// by gather_rows. Runs only for blocks holding a non-finite value.
template <typename T>
void mark_dense_nans(const T* d, int64_t M, int64_t F, int64_t G, int64_t c0, int64_t width,
                     const std::vector<int32_t>& index, const std::vector<int64_t>& counts, T* sums) {
  constexpr int64_t kBlock = 4 * lanes<T>();
  std::vector<int64_t> ones(static_cast<size_t>(F));  // per column j of x: bad rows with x[m, j] == 1
  for (int64_t c = 0; c < width; ++c) {
    int64_t bad = 0;
    std::fill(ones.begin(), ones.end(), 0);
    for (int64_t m = 0; m < M; ++m) {
      if (std::isfinite(d[m * G + c0 + c])) continue;
      ++bad;
      const int32_t* picked = index.data() + m * F;
      for (int64_t q = 0; q < counts[m]; ++q) ++ones[picked[q]];
    }
    if (bad == 0) continue;
    for (int64_t j = 0; j < F; ++j) {
      if (ones[j] < bad) sums[j * kBlock + c] = std::numeric_limits<T>::quiet_NaN();
    }
  }
}

// grad_t [F, G] += x [M, F]^T @ d [M, G] for 0/1 x (each one x[m, j] adds row m of d to row j of
// grad_t), when x is 0/1 with at most max_density * M * F ones; false (grad_t untouched) otherwise.
// The ones are listed by column (ones_by_column); threads split the columns of d into blocks of 4
// vectors; for each chunk of rows, the chunk's block of d is copied into a contiguous scratch that
// stays in L1 (d's own rows lie 4G bytes apart and alias to a few cache sets), then each column j
// of x adds the sum of the scratch rows its ones list (accumulated in registers) to row j of a
// contiguous [F, block] sum, added to grad_t once the block is done: a one costs 4 vector loads
// and 4 additions, where the GEMM spends 64 multiply-adds on it and on every zero alike.
template <typename T>
bool binary_weight_grad(const T* d, const T* x, int64_t M, int64_t F, int64_t G, T* grad_t, double max_density) {
  std::vector<int32_t> index;
  std::vector<int64_t> counts;
  const int64_t total = gather_rows(x, M, F, max_density, index, counts);
  if (total < 0) return false;
  constexpr int64_t kBlock = 4 * lanes<T>();
  constexpr int64_t kChunkRows = (32 << 10) / (kBlock * static_cast<int64_t>(sizeof(T)));  // 32 KiB of scratch
  std::vector<int64_t> starts;
  std::vector<int32_t> rows;
  ones_by_column(index, counts, M, F, total, kChunkRows, starts, rows);
  const int64_t blocks = (G + kBlock - 1) / kBlock, chunks = (M + kChunkRows - 1) / kChunkRows;
  at::parallel_for(0, blocks, grain_for(blocks, total * G), [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(static_cast<size_t>(kChunkRows * kBlock), T(0)), sums(static_cast<size_t>(F * kBlock));
    for (int64_t b = begin; b < end; ++b) {
      const int64_t c0 = b * kBlock, width = G - c0 < kBlock ? G - c0 : kBlock;
      std::fill(sums.begin(), sums.end(), T(0));
      V_of<T> probe[4] = {};  // stay 0 while every value of d copied is finite (see copy_probing)
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t m0 = c * kChunkRows, n = M - m0 < kChunkRows ? M - m0 : kChunkRows;
        for (int64_t r = 0; r < n; ++r) {  // columns past width (last block) are summed but never stored
          copy_probing<T>(scratch.data() + r * kBlock, d + (m0 + r) * G + c0, width, probe);
        }
        const int64_t* start = starts.data() + c * (F + 1);
        for (int64_t j = 0; j < F; ++j) {
          if (start[j + 1] > start[j]) {
            add_listed_rows<T>(scratch.data(), rows.data(), start[j], start[j + 1], sums.data() + j * kBlock);
          }
        }
      }
      if (probed_non_finite<T>(probe)) mark_dense_nans<T>(d, M, F, G, c0, width, index, counts, sums.data());
      for (int64_t j = 0; j < F; ++j) {
        T* __restrict__ dest = grad_t + j * G + c0;
        const T* __restrict__ src = sums.data() + j * kBlock;
        for (int64_t c = 0; c < width; ++c) dest[c] += src[c];
      }
    }
  });
  return true;
}

}  // namespace spikingrnn

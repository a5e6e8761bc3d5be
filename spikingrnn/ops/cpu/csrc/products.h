// Event-driven matrix products for 0/1 operands, used by the cpu backend's loops.
//
// A spiking layer's hidden state (and the input of every layer past the first) holds only 0 and 1,
// mostly 0. Multiplying such a row by a weight matrix is a sum of the weight rows picked by its 1s:
// no multiplications, and at a firing rate p only p of the work of a dense GEMM. Every function
// here first checks that its 0/1 operand really is 0/1 and sparse enough (density <= max_density)
// and returns false otherwise, so that the caller falls back to the dense GEMM; the result is the
// same product up to the order of the float additions.
//
// Layouts are row-major and contiguous. Indices are int32 (a chunk holds far fewer rows).
#pragma once

#include <ATen/Parallel.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cstdint>
#include <cstring>
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

// out[0:N] = (init ? init[0:N] : 0) + sum_{q < count} base[index[q] * stride + (0:N)].
// out may alias init. A tile of kTile vectors is accumulated in registers over all picked rows,
// in two interleaved sets so that consecutive additions do not wait on each other.
template <typename T>
void sum_rows(const T* base, int64_t stride, const int32_t* index, int64_t count, const T* init, T* out, int64_t N) {
  using V = typename Vector<T>::type;
  constexpr int64_t kLanes = sizeof(V) / sizeof(T);
  constexpr int64_t kTile = 4;
  int64_t c = 0;
  for (; c + kTile * kLanes <= N; c += kTile * kLanes) {
    V even[kTile], odd[kTile];
    for (int64_t u = 0; u < kTile; ++u) {
      even[u] = init ? load<V>(init + c + u * kLanes) : V{};
      odd[u] = V{};
    }
    int64_t q = 0;
    for (; q + 1 < count; q += 2) {
      const T* a = base + index[q] * stride + c;
      const T* b = base + index[q + 1] * stride + c;
      for (int64_t u = 0; u < kTile; ++u) {
        even[u] += load<V>(a + u * kLanes);
        odd[u] += load<V>(b + u * kLanes);
      }
    }
    if (q < count) {
      const T* a = base + index[q] * stride + c;
      for (int64_t u = 0; u < kTile; ++u) even[u] += load<V>(a + u * kLanes);
    }
    for (int64_t u = 0; u < kTile; ++u) store(out + c + u * kLanes, V(even[u] + odd[u]));
  }
  for (; c + kLanes <= N; c += kLanes) {
    V acc = init ? load<V>(init + c) : V{};
    for (int64_t q = 0; q < count; ++q) acc += load<V>(base + index[q] * stride + c);
    store(out + c, acc);
  }
  for (; c < N; ++c) {
    T acc = init ? init[c] : T(0);
    for (int64_t q = 0; q < count; ++q) acc += base[index[q] * stride + c];
    out[c] = acc;
  }
}

// dest[0:N] += src[0:N].
template <typename T>
inline void add_row(T* __restrict__ dest, const T* __restrict__ src, int64_t N) {
  for (int64_t c = 0; c < N; ++c) dest[c] += src[c];
}

// Rows of work per parallel task so that each task adds at least ~64K values.
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

// out [n, N] = (bias [N] or 0) + x [n, K] @ w [K, N] for 0/1 x, when x is 0/1 with at most
// max_density * n * K ones; returns false (out untouched) otherwise. index, counts: scratch.
template <typename T>
bool binary_matmul(const T* x, int64_t n, int64_t K, const T* w, int64_t N, const T* bias, T* out, double max_density,
                   std::vector<int32_t>& index, std::vector<int64_t>& counts) {
  const int64_t total = gather_rows(x, n, K, max_density, index, counts);
  if (total < 0) return false;
  at::parallel_for(0, n, grain_for(n, total * N), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) sum_rows(w, N, index.data() + r * K, counts[r], bias, out + r * N, N);
  });
  return true;
}

// grad_t [F, G] += x [M, F]^T @ d [M, G] for 0/1 x (each one x[m, j] adds row m of d to row j of
// grad_t), when x is 0/1 with at most max_density * M * F ones; false (grad_t untouched) otherwise.
// Threads split the G columns; each streams d once and adds into grad_t rows kept in cache.
template <typename T>
bool binary_weight_grad(const T* d, const T* x, int64_t M, int64_t F, int64_t G, T* grad_t, double max_density) {
  std::vector<int32_t> index;
  std::vector<int64_t> counts;
  const int64_t total = gather_rows(x, M, F, max_density, index, counts);
  if (total < 0) return false;
  constexpr int64_t kColumnBlock = 64;
  const int64_t blocks = (G + kColumnBlock - 1) / kColumnBlock;
  at::parallel_for(0, blocks, grain_for(blocks, total * G), [&](int64_t begin, int64_t end) {
    const int64_t c0 = begin * kColumnBlock, c1 = end * kColumnBlock < G ? end * kColumnBlock : G;
    for (int64_t m = 0; m < M; ++m) {
      const int32_t* picked = index.data() + m * F;
      for (int64_t q = 0; q < counts[m]; ++q) add_row(grad_t + picked[q] * G + c0, d + m * G + c0, c1 - c0);
    }
  });
  return true;
}

}  // namespace spikingrnn

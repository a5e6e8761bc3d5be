// The per-step GEMMs of the time loops: one call into the Fortran BLAS that torch's own library
// exports (MKL or OpenBLAS builds) with raw pointers, at::mm where there is none.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

// Weak, so that a torch without them still loads this module and gemm_rows falls back to at::mm.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc) __attribute__((weak));
}

namespace spikingrnn {

inline void blas_gemm(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
                      const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
                      const int* ldc) {
  sgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void blas_gemm(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
                      const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
                      const int* ldc) {
  dgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Whether gemm_rows may call the BLAS directly (tests switch it off to run the at::mm fallback);
// one flag for the whole module (an inline variable: every translation unit sees the same).
inline bool blas_allowed = true;

template <typename T>
bool have_blas() {
  if (!blas_allowed) return false;
  if constexpr (std::is_same_v<T, float>) return sgemm_ != nullptr;
  return dgemm_ != nullptr;
}

// Allow or forbid the direct BLAS calls of the per-step products; returns whether torch's BLAS
// symbols were found (exported as use_blas).
inline bool use_blas(bool allowed) {
  blas_allowed = allowed;
  return sgemm_ != nullptr && dgemm_ != nullptr;
}

// c [m, n] = (accumulate ? c : 0) + a [m, k] @ b for row-major a and c (row strides lda, ldc) and
// b [k, n] with unit stride along either dimension (row-major, or the transposed view of a
// row-major [n, k]). One BLAS call with raw pointers: the per-step products of the time loops skip
// ATen's dispatch and the tensor views it needs (several microseconds a step); at::mm without BLAS
// or for any other strides of b.
template <typename T>
void gemm_rows(int64_t m, const T* a, int64_t lda, const at::Tensor& b, bool accumulate, T* c, int64_t ldc) {
  const int64_t k = b.size(0), n = b.size(1);
  if (m == 0 || n == 0) return;
  const bool b_rows = b.stride(1) == 1 && (k == 1 || b.stride(0) >= n);
  const bool b_columns = !b_rows && b.stride(0) == 1 && (n == 1 || b.stride(1) >= k);
  if (have_blas<T>() && (b_rows || b_columns) &&
      std::max({m, n, k, lda, ldc, b.stride(0), b.stride(1)}) < (int64_t(1) << 31)) {
    // column-major view: C^T [n, m] = B^T [n, k] A^T [k, m]
    const char tb = b_rows ? 'N' : 'T', ta = 'N';
    const int M = static_cast<int>(n), N = static_cast<int>(m), K = static_cast<int>(k);
    const int64_t ldb_rows = k == 1 ? std::max<int64_t>(n, b.stride(0)) : b.stride(0);
    const int64_t ldb_columns = n == 1 ? std::max<int64_t>(k, b.stride(1)) : b.stride(1);
    const int ldb = static_cast<int>(std::max<int64_t>(1, b_rows ? ldb_rows : ldb_columns));
    const int ld_a = static_cast<int>(std::max<int64_t>({1, k, lda}));
    const int ld_c = static_cast<int>(std::max<int64_t>({1, n, ldc}));
    const T one = T(1), beta = accumulate ? T(1) : T(0);
    blas_gemm(&tb, &ta, &M, &N, &K, &one, b.data_ptr<T>(), &ldb, a, &ld_a, &beta, c, &ld_c);
    return;
  }
  const auto options = b.options();
  at::Tensor a_view = at::from_blob(const_cast<T*>(a), {m, k}, {lda, 1}, options);
  at::Tensor c_view = at::from_blob(c, {m, n}, {ldc, 1}, options);
  if (accumulate) {
    at::addmm_out(c_view, c_view, a_view, b);
  } else {
    at::mm_out(c_view, a_view, b);
  }
}

}  // namespace spikingrnn

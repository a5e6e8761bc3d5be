// What the three cells' step loops (lstm.cpp, gru.cpp, rnn.cpp) share: step pointers, the rows
// valid at a step, the firing threshold and the per-step product with the recurrent weights.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "blas.h"
#include "products.h"

namespace spikingrnn {

// Element pointer of step k of a [K, ...] (or [T, ...]) contiguous tensor, without creating views.
template <typename T>
inline T* step_ptr(const at::Tensor& t, int64_t k) {
  return t.data_ptr<T>() + k * t.stride(0);
}

// Rows valid at step t: batch_sizes[t], or the whole batch when batch_sizes is empty.
inline int64_t rows_at(const std::vector<int64_t>& batch_sizes, int64_t t, int64_t batch) {
  return batch_sizes.empty() ? batch : batch_sizes[t];
}

// The spike: Θ(u) = [u >= 0].
template <typename T>
inline T fire(T u) { return u >= T(0) ? T(1) : T(0); }

// Scratch of the event-driven products, reused across the steps of one call.
struct EventScratch {
  std::vector<int32_t> index;
  std::vector<int64_t> counts;
};

// out [n, N] (contiguous rows) = (bias or 0) + h [n, K] @ w_t [K, N]: the event-driven sum over the
// column tiles packed (pack_column_tiles) when they are given and h is 0/1 with at most
// max_density of it 1, else one GEMM (w_t may be a transposed view).
template <typename T>
void hidden_product(const at::Tensor& h, int64_t n, const at::Tensor& w_t, const std::optional<at::Tensor>& packed,
                    const std::optional<at::Tensor>& bias, T* o, double max_density, EventScratch& scratch) {
  const int64_t K = w_t.size(0), N = w_t.size(1);
  const T* bias_ptr = bias ? bias->data_ptr<T>() : nullptr;
  if (packed && max_density > 0 &&
      spikingrnn::binary_matmul<T>(h.data_ptr<T>(), n, K, packed->data_ptr<T>(), N, bias_ptr, o, max_density,
                                   scratch.index, scratch.counts)) {
    return;
  }
  if (bias_ptr) {
    for (int64_t r = 0; r < n; ++r) std::memcpy(o + r * N, bias_ptr, sizeof(T) * N);
  }
  gemm_rows<T>(n, h.data_ptr<T>(), K, w_t, bias_ptr != nullptr, o, N);
}

}  // namespace spikingrnn

// Running a chunk's time loop on several threads: the batch split into row blocks, one per thread.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

namespace spikingrnn {

// Row blocks [bounds[b], bounds[b + 1]) for running a chunk's time loop on several threads at once:
// batch rows are independent through time, so each thread runs every step of its own rows (its
// products single-threaded inside) without meeting the others once per step, where splitting each
// small per-step product between threads costs more in synchronisation than it saves. Blocks hold
// multiples of 8 rows, so that per-step bit rows split on byte boundaries; one block (the whole
// batch) with one thread or fewer than 16 rows.
inline std::vector<int64_t> row_blocks(int64_t batch) {
  constexpr int64_t kMinRows = 8;
  const int64_t blocks = std::min<int64_t>(at::get_num_threads(), batch / kMinRows);
  if (blocks <= 1 || at::in_parallel_region()) return {0, batch};
  const int64_t per_block = ((batch + blocks - 1) / blocks + kMinRows - 1) / kMinRows * kMinRows;
  std::vector<int64_t> bounds;
  for (int64_t r = 0; r < batch; r += per_block) bounds.push_back(r);
  bounds.push_back(batch);
  return bounds;
}

// Runs body(b, bounds[b], bounds[b + 1]) for every row block b of bounds (row_blocks), one block per thread.
template <typename F>
void over_blocks(const std::vector<int64_t>& bounds, const F& body) {
  if (bounds.size() <= 2) {
    body(size_t(0), bounds.front(), bounds.back());
    return;
  }
  at::parallel_for(0, static_cast<int64_t>(bounds.size()) - 1, 1, [&](int64_t begin, int64_t end) {
    at::NoGradGuard no_grad;  // a worker thread's own grad mode: the weights require grad
    for (int64_t b = begin; b < end; ++b) body(static_cast<size_t>(b), bounds[b], bounds[b + 1]);
  });
}

// Runs body(r0, r1) for every row block of the batch, one block per thread.
template <typename F>
void over_row_blocks(int64_t batch, const F& body) {
  over_blocks(row_blocks(batch), [&](size_t, int64_t r0, int64_t r1) { body(r0, r1); });
}

// batch_sizes seen from rows [r0, r1): each step's valid rows within the block.
inline std::vector<int64_t> block_sizes(const std::vector<int64_t>& batch_sizes, int64_t r0, int64_t r1) {
  std::vector<int64_t> sizes(batch_sizes.size());
  for (size_t t = 0; t < batch_sizes.size(); ++t) sizes[t] = std::clamp<int64_t>(batch_sizes[t] - r0, 0, r1 - r0);
  return sizes;
}

// Rows [r0, r1) of t along its batch dimension dim (a view).
inline at::Tensor rows_of(const at::Tensor& t, int64_t dim, int64_t r0, int64_t r1) {
  return t.narrow(dim, r0, r1 - r0);
}

inline std::optional<at::Tensor> rows_of(const std::optional<at::Tensor>& t, int64_t dim, int64_t r0, int64_t r1) {
  return t ? std::optional<at::Tensor>(rows_of(*t, dim, r0, r1)) : std::nullopt;
}

// Rows [r0, r1) of per-step bit rows [T, words(B * per_row)] (r0 * per_row a multiple of 8), or of a
// float [T, B, per_row] store when not bits.
inline std::optional<at::Tensor> bit_rows_of(const std::optional<at::Tensor>& t, bool bits, int64_t per_row, int64_t r0,
                                             int64_t r1) {
  if (!t || !bits) return rows_of(t, 1, r0, r1);
  return t->narrow(1, r0 * per_row / 8, ((r1 - r0) * per_row + 7) / 8);
}

}  // namespace spikingrnn

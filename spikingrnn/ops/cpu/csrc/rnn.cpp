// The spiking vanilla RNN's time loops (entries.h): h' = Θ(xp + h W_hh^T) forward, the carried
// gradient backward.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "blas.h"
#include "checks.h"
#include "entries.h"
#include "step.h"
#include "threading.h"

namespace spikingrnn {
namespace {

// Steps [t0, t0 + K) of a vanilla RNN layer. xp [K, B, H] = x W_ih^T + b_ih + b_hh; h [B, H] running state;
// y [T, B, H] out (0/1); pre_store [T, B, H] (pre-activations) when given.
void rnn_forward_block(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles, Tensor& y,
                       const std::optional<Tensor>& pre_store, double event_density) {
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = h.size(1);
  EventScratch events;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnn_forward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = t0 + k, n = rows_at(batch_sizes, t, batch);
      T* __restrict__ o = step_ptr<T>(y, t);
      hidden_product<T>(h, n, w_hh_t, w_hh_tiles, std::nullopt, o, event_density, events);
      const T* __restrict__ x = step_ptr<T>(xp, k);
      T* __restrict__ hs = h.data_ptr<T>();
      if (pre_store) {
        T* __restrict__ pre = step_ptr<T>(*pre_store, t);
        for (int64_t i = 0; i < n * hidden; ++i) pre[i] = o[i] + x[i];
      }
      for (int64_t i = 0; i < n * hidden; ++i) {
        o[i] = fire(o[i] + x[i]);
        hs[i] = o[i];
      }
    }
  });
}

// Steps [t0, t0 + K) of the vanilla RNN backward, last first. scale [K, B, H]; dy [K, B, H];
// dh_carry [B, H] in/out; d_pre [K, B, H] out.
void rnn_backward_block(const Tensor& scale, const Tensor& dy, int64_t t0,
                        const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, Tensor& dh_carry,
                        Tensor& d_pre) {
  const int64_t steps = scale.size(0), batch = scale.size(1), hidden = scale.size(2);
  AT_DISPATCH_FLOATING_TYPES(scale.scalar_type(), "rnn_backward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t n = rows_at(batch_sizes, t0 + k, batch);
      const T* __restrict__ s = step_ptr<T>(scale, k);
      const T* __restrict__ dyk = step_ptr<T>(dy, k);
      const T* __restrict__ dh = dh_carry.data_ptr<T>();
      T* __restrict__ dp = step_ptr<T>(d_pre, k);
      for (int64_t i = 0; i < n * hidden; ++i) dp[i] = (dh[i] + dyk[i]) * s[i];
      gemm_rows<T>(n, dp, hidden, w_hh, false, dh_carry.data_ptr<T>(), hidden);
    }
  });
}

}  // namespace

namespace loops {

// The exported loops: each checks its arguments, then runs its *_block on row blocks in parallel
// (see row_blocks); the arguments are those of the block functions above, for the whole batch.
void rnn_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles, Tensor& y,
                       const std::optional<Tensor>& pre_store, double event_density) {
  Arguments args("rnn_forward_steps");
  const at::ScalarType dtype = args.floating("xp", xp);
  args.tensor("xp", xp, dtype, {kAny, kAny, kAny});
  const int64_t K = xp.size(0), B = xp.size(1), H = xp.size(2);
  args.tensor("h", h, dtype, {B, H});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh_t", w_hh_t, dtype, {H, H}, Strides::kAny);
  args.optional("w_hh_tiles", w_hh_tiles, dtype, {column_tiles_of(dtype, H), H, tile_width_of(dtype)});
  args.tensor("y", y, dtype, {kAny, B, H});
  args.steps("y", y, t0 + K);
  args.optional("pre_store", pre_store, dtype, {kAny, B, H});
  args.steps("pre_store", pre_store, t0 + K);

  over_row_blocks(xp.size(1), [&](int64_t r0, int64_t r1) {
    Tensor h_b = rows_of(h, 0, r0, r1), y_b = rows_of(y, 1, r0, r1);
    rnn_forward_block(rows_of(xp, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1), h_b, w_hh_t, w_hh_tiles, y_b,
                      rows_of(pre_store, 1, r0, r1), event_density);
  });
}

void rnn_backward_steps(const Tensor& scale, const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes,
                        const Tensor& w_hh, Tensor& dh_carry, Tensor& d_pre) {
  Arguments args("rnn_backward_steps");
  const at::ScalarType dtype = args.floating("scale", scale);
  args.tensor("scale", scale, dtype, {kAny, kAny, kAny});
  const int64_t K = scale.size(0), B = scale.size(1), H = scale.size(2);
  args.tensor("dy", dy, dtype, {K, B, H});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh", w_hh, dtype, {H, H}, Strides::kAny);
  args.tensor("dh_carry", dh_carry, dtype, {B, H});
  args.tensor("d_pre", d_pre, dtype, {K, B, H});

  over_row_blocks(scale.size(1), [&](int64_t r0, int64_t r1) {
    Tensor dh_b = rows_of(dh_carry, 0, r0, r1), d_pre_b = rows_of(d_pre, 1, r0, r1);
    rnn_backward_block(rows_of(scale, 1, r0, r1), rows_of(dy, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1),
                       w_hh, dh_b, d_pre_b);
  });
}

}  // namespace loops
}  // namespace spikingrnn

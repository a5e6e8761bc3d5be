// The leaky vanilla RNN's time loops (entries.h; leak=β in spikingrnn/functional/cells.py): with the
// spikes h = Θ(v - θ) of the membrane v fed back, u = x W_ih^T + b + h W_hh^T, v' = β v + (1 - β) u,
// and the step emits Θ(v' - θ). The product with the spikes is event-driven. Backward takes the
// membrane after each step and evaluates the built-in surrogates' derivative at v' - θ per row itself
// (surrogates.h); a user-defined surrogate's derivatives come as a tensor from PyTorch.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "blas.h"
#include "checks.h"
#include "entries.h"
#include "step.h"
#include "surrogates.h"
#include "threading.h"

namespace spikingrnn {
namespace {

// One row of a forward step: xp [H] = x W_ih^T + b_ih + b_hh, hp [H] = h W_hh^T; v [H] in place; the
// spikes into h and y.
template <typename T>
inline void leaky_rnn_row(const T* __restrict__ xp, const T* __restrict__ hp, T* __restrict__ v, T* __restrict__ h,
                          T* __restrict__ y, int64_t H, T leak, T threshold) {
  const T gain = T(1) - leak;
  for (int64_t j = 0; j < H; ++j) {
    const T next = leak * v[j] + gain * (xp[j] + hp[j]);
    v[j] = next;
    const T spike = next - threshold >= T(0) ? T(1) : T(0);
    h[j] = spike;
    y[j] = spike;
  }
}

void leaky_rnn_forward_block(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                             Tensor& v, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles, double leak,
                             double threshold, Tensor& y, const std::optional<Tensor>& state_store, Tensor& scratch,
                             double event_density) {
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = v.size(1);
  EventScratch events;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "leaky_rnn_forward_steps", [&] {
    using T = scalar_t;
    const T beta = static_cast<T>(leak), thr = static_cast<T>(threshold);
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = t0 + k, n = rows_at(batch_sizes, t, batch);
      T* hp = scratch.data_ptr<T>();
      hidden_product<T>(h, n, w_hh_t, w_hh_tiles, std::nullopt, hp, event_density, events);
      const T* x_k = step_ptr<T>(xp, k);
      T* y_t = step_ptr<T>(y, t);
      T* vp = v.data_ptr<T>();
      T* hs = h.data_ptr<T>();
      for (int64_t r = 0; r < n; ++r) {
        leaky_rnn_row<T>(x_k + r * hidden, hp + r * hidden, vp + r * hidden, hs + r * hidden, y_t + r * hidden,
                         hidden, beta, thr);
      }
      if (state_store) std::copy(vp, vp + n * hidden, step_ptr<T>(*state_store, t));
    }
  });
}

void leaky_rnn_backward_block(const Tensor& v_after, const std::optional<Tensor>& spike_deriv, const Tensor& dy,
                              int64_t t0, const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, double leak,
                              Tensor& dh_carry, Tensor& dv_carry, Tensor& d_pre, double threshold, int64_t kind,
                              double alpha) {
  const int64_t steps = v_after.size(0), batch = v_after.size(1), hidden = v_after.size(2);
  AT_DISPATCH_FLOATING_TYPES(v_after.scalar_type(), "leaky_rnn_backward_steps", [&] {
    using T = scalar_t;
    const T beta = static_cast<T>(leak), gain = T(1) - static_cast<T>(leak);
    SpikeDerivativeRow<T> spike_derivative(kind, alpha, threshold, hidden);
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t n = rows_at(batch_sizes, t0 + k, batch);
      const T* va = step_ptr<T>(v_after, k);
      const T* sd_given = spike_deriv ? step_ptr<T>(*spike_deriv, k) : nullptr;
      const T* dyk = step_ptr<T>(dy, k);
      T* dp = step_ptr<T>(d_pre, k);
      T* dh = dh_carry.data_ptr<T>();
      T* dv = dv_carry.data_ptr<T>();
      for (int64_t r = 0; r < n; ++r) {
        const T* sd = spike_derivative(sd_given ? sd_given + r * hidden : nullptr, va + r * hidden);
        for (int64_t j = 0; j < hidden; ++j) {
          const int64_t i = r * hidden + j;
          const T total = dv[i] + (dh[i] + dyk[i]) * sd[j];
          dp[i] = gain * total;
          dv[i] = beta * total;
        }
      }
      gemm_rows<T>(n, dp, hidden, w_hh, false, dh, hidden);
    }
  });
}

}  // namespace

namespace loops {

void leaky_rnn_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                             Tensor& v, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles, double leak,
                             double threshold, Tensor& y, const std::optional<Tensor>& state_store, Tensor& scratch,
                             double event_density) {
  Arguments args("leaky_rnn_forward_steps");
  const at::ScalarType dtype = args.floating("xp", xp);
  args.tensor("xp", xp, dtype, {kAny, kAny, kAny});
  const int64_t K = xp.size(0), B = xp.size(1), H = xp.size(2);
  args.tensor("h", h, dtype, {B, H});
  args.tensor("v", v, dtype, {B, H});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh_t", w_hh_t, dtype, {H, H}, Strides::kAny);
  args.optional("w_hh_tiles", w_hh_tiles, dtype, {column_tiles_of(dtype, H), H, tile_width_of(dtype)});
  args.tensor("y", y, dtype, {kAny, B, H});
  args.steps("y", y, t0 + K);
  args.optional("state_store", state_store, dtype, {kAny, B, H});
  args.steps("state_store", state_store, t0 + K);
  args.tensor("scratch", scratch, dtype, {B, H});
  over_row_blocks(B, [&](int64_t r0, int64_t r1) {
    Tensor h_b = rows_of(h, 0, r0, r1), v_b = rows_of(v, 0, r0, r1), y_b = rows_of(y, 1, r0, r1);
    Tensor scratch_b = rows_of(scratch, 0, r0, r1);
    leaky_rnn_forward_block(rows_of(xp, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1), h_b, v_b, w_hh_t,
                            w_hh_tiles, leak, threshold, y_b, rows_of(state_store, 1, r0, r1), scratch_b,
                            event_density);
  });
}

void leaky_rnn_backward_steps(const Tensor& v_after, const std::optional<Tensor>& spike_deriv, const Tensor& dy,
                              int64_t t0, const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, double leak,
                              Tensor& dh_carry, Tensor& dv_carry, Tensor& d_pre, double threshold, int64_t kind,
                              double alpha) {
  Arguments args("leaky_rnn_backward_steps");
  const at::ScalarType dtype = args.floating("v_after", v_after);
  args.tensor("v_after", v_after, dtype, {kAny, kAny, kAny});
  const int64_t K = v_after.size(0), B = v_after.size(1), H = v_after.size(2);
  args.optional("spike_deriv", spike_deriv, dtype, {K, B, H});
  args.tensor("dy", dy, dtype, {K, B, H});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh", w_hh, dtype, {H, H}, Strides::kAny);
  args.tensor("dh_carry", dh_carry, dtype, {B, H});
  args.tensor("dv_carry", dv_carry, dtype, {B, H});
  args.tensor("d_pre", d_pre, dtype, {K, B, H});
  args.surrogate_kind("kind", kind, !spike_deriv, "spike_deriv");
  over_row_blocks(B, [&](int64_t r0, int64_t r1) {
    Tensor dh_b = rows_of(dh_carry, 0, r0, r1), dv_b = rows_of(dv_carry, 0, r0, r1);
    Tensor d_pre_b = rows_of(d_pre, 1, r0, r1);
    leaky_rnn_backward_block(rows_of(v_after, 1, r0, r1), rows_of(spike_deriv, 1, r0, r1), rows_of(dy, 1, r0, r1),
                             t0, block_sizes(batch_sizes, r0, r1), w_hh, leak, dh_b, dv_b, d_pre_b, threshold, kind,
                             alpha);
  });
}

}  // namespace loops
}  // namespace spikingrnn

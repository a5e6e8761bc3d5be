// The sigmoid-form GRU's time loops (entries.h; gates="sigmoid" in spikingrnn/functional/cells.py):
// with the spikes h = Θ(s - θ) of the analog state s fed back, r = sigmoid(u_r), z = sigmoid(u_z),
// n = tanh(x_n + r h_n), s' = (1 - z) n + z s, and the step emits Θ(s' - θ). The product with the
// spikes h is event-driven. Backward takes r|z|n|h_n as forward computed them (or as Python
// recomputed them in low-memory mode) and the state after each step; it evaluates the built-in
// surrogates' derivative at s' - θ per row itself (surrogates.h), so that no [K, B, H] tensor is
// built for it (a user-defined surrogate's derivatives come as a tensor from PyTorch).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "blas.h"
#include "checks.h"
#include "entries.h"
#include "sigmoid_gates.h"
#include "step.h"
#include "threading.h"

namespace spikingrnn {
namespace {

// One row of a forward step: x [3H] = W_ih x + b_ih (x_r|x_z|x_n), hp [3H] = W_hh h + b_hh; s [H] in
// place; h [H] the emitted spikes (also written to y); a [4H] (when given) r|z|n|h_n for backward.
template <typename T>
inline void sigmoid_gru_row(const T* __restrict__ x, const T* __restrict__ hp, T* __restrict__ s, T* __restrict__ h,
                            T* __restrict__ y, T* __restrict__ a, int64_t H, T threshold) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = sigmoid_gate<T>(x[j] + hp[j]);
    const T z = sigmoid_gate<T>(x[H + j] + hp[H + j]);
    const T n = tanh_gate<T>(x[2 * H + j] + r * hp[2 * H + j]);
    const T next = (T(1) - z) * n + z * s[j];
    s[j] = next;
    const T spike = next - threshold >= T(0) ? T(1) : T(0);
    h[j] = spike;
    y[j] = spike;
    if (a) {
      a[j] = r;
      a[H + j] = z;
      a[2 * H + j] = n;
      a[3 * H + j] = hp[2 * H + j];
    }
  }
}

// One row of a backward step from r|z|n|h_n (a), the state before the step (sp), the surrogate
// derivative sd at s' - θ, dh = dL/d(emitted spikes) carried from later steps plus dy, ds carried:
// the hidden-side pre-activation gradients d u_r | d u_z | d u_n * r, the input-side ones
// d u_r | d u_z | d u_n, and ds carried to the step before.
template <typename T>
inline void sigmoid_gru_backward_row(const T* __restrict__ a, const T* __restrict__ sp, const T* __restrict__ sd,
                                     const T* __restrict__ dh, const T* __restrict__ dy, T* __restrict__ ds_carry,
                                     T* __restrict__ hidden_pre, T* __restrict__ input_pre, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = a[j], z = a[H + j], n = a[2 * H + j], h_n = a[3 * H + j];
    const T ds = ds_carry[j] + (dh[j] + dy[j]) * sd[j];
    const T du_n = ds * (T(1) - z) * (T(1) - n * n);
    const T du_z = ds * (sp[j] - n) * z * (T(1) - z);
    const T du_r = du_n * h_n * r * (T(1) - r);
    hidden_pre[j] = du_r;
    hidden_pre[H + j] = du_z;
    hidden_pre[2 * H + j] = du_n * r;
    input_pre[j] = du_r;
    input_pre[H + j] = du_z;
    input_pre[2 * H + j] = du_n;
    ds_carry[j] = ds * z;
  }
}

void sigmoid_gru_forward_block(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                               Tensor& s, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                               const std::optional<Tensor>& b_hh, double threshold, Tensor& y,
                               const std::optional<Tensor>& gate_store, const std::optional<Tensor>& state_store,
                               Tensor& scratch, double event_density) {
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = s.size(1);
  EventScratch events;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "sigmoid_gru_forward_steps", [&] {
    using T = scalar_t;
    const T thr = static_cast<T>(threshold);
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = t0 + k, n = rows_at(batch_sizes, t, batch);
      T* hp = scratch.data_ptr<T>();
      hidden_product<T>(h, n, w_hh_t, w_hh_tiles, b_hh, hp, event_density, events);
      const T* x_k = step_ptr<T>(xp, k);
      T* y_t = step_ptr<T>(y, t);
      T* a_t = gate_store ? step_ptr<T>(*gate_store, t) : nullptr;
      T* sp = s.data_ptr<T>();
      T* hs = h.data_ptr<T>();
      for (int64_t r = 0; r < n; ++r) {
        sigmoid_gru_row<T>(x_k + r * 3 * hidden, hp + r * 3 * hidden, sp + r * hidden, hs + r * hidden,
                           y_t + r * hidden, a_t ? a_t + r * 4 * hidden : nullptr, hidden, thr);
      }
      if (state_store) std::copy(sp, sp + n * hidden, step_ptr<T>(*state_store, t));
    }
  });
}

void sigmoid_gru_backward_block(const Tensor& gates, const Tensor& s_prev, const Tensor& s_after,
                                const std::optional<Tensor>& spike_deriv, const Tensor& dy, int64_t t0,
                                const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, Tensor& dh_carry,
                                Tensor& ds_carry, Tensor& d_hidden_pre, Tensor& d_input_pre, double threshold,
                                int64_t kind, double alpha) {
  const int64_t steps = gates.size(0), batch = gates.size(1), hidden = s_prev.size(2);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "sigmoid_gru_backward_steps", [&] {
    using T = scalar_t;
    SpikeDerivativeRow<T> spike_derivative(kind, alpha, threshold, hidden);
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t n = rows_at(batch_sizes, t0 + k, batch);
      const T* a = step_ptr<T>(gates, k);
      const T* sp = step_ptr<T>(s_prev, k);
      const T* sa = step_ptr<T>(s_after, k);
      const T* sd_given = spike_deriv ? step_ptr<T>(*spike_deriv, k) : nullptr;
      const T* dyk = step_ptr<T>(dy, k);
      T* hidden_pre = step_ptr<T>(d_hidden_pre, k);
      T* input_pre = step_ptr<T>(d_input_pre, k);
      T* dh = dh_carry.data_ptr<T>();
      T* ds = ds_carry.data_ptr<T>();
      for (int64_t r = 0; r < n; ++r) {
        const T* sd = spike_derivative(sd_given ? sd_given + r * hidden : nullptr, sa + r * hidden);
        sigmoid_gru_backward_row<T>(a + r * 4 * hidden, sp + r * hidden, sd, dh + r * hidden,
                                    dyk + r * hidden, ds + r * hidden, hidden_pre + r * 3 * hidden,
                                    input_pre + r * 3 * hidden, hidden);
      }
      gemm_rows<T>(n, hidden_pre, 3 * hidden, w_hh, false, dh, hidden);
    }
  });
}

}  // namespace

namespace loops {

void sigmoid_gru_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                               Tensor& s, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                               const std::optional<Tensor>& b_hh, double threshold, Tensor& y,
                               const std::optional<Tensor>& gate_store, const std::optional<Tensor>& state_store,
                               Tensor& scratch, double event_density) {
  Arguments args("sigmoid_gru_forward_steps");
  const at::ScalarType dtype = args.floating("xp", xp);
  args.tensor("xp", xp, dtype, {kAny, kAny, kAny});
  const int64_t K = xp.size(0), B = xp.size(1);
  args.tensor("s", s, dtype, {B, kAny});
  const int64_t H = s.size(1);
  args.tensor("xp", xp, dtype, {K, B, 3 * H});
  args.tensor("h", h, dtype, {B, H});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh_t", w_hh_t, dtype, {H, 3 * H}, Strides::kAny);
  args.optional("w_hh_tiles", w_hh_tiles, dtype, {column_tiles_of(dtype, 3 * H), H, tile_width_of(dtype)});
  args.optional("b_hh", b_hh, dtype, {3 * H});
  args.tensor("y", y, dtype, {kAny, B, H});
  args.steps("y", y, t0 + K);
  args.optional("gate_store", gate_store, dtype, {kAny, B, 4 * H});
  args.steps("gate_store", gate_store, t0 + K);
  args.optional("state_store", state_store, dtype, {kAny, B, H});
  args.steps("state_store", state_store, t0 + K);
  args.tensor("scratch", scratch, dtype, {B, 3 * H});
  over_row_blocks(B, [&](int64_t r0, int64_t r1) {
    Tensor h_b = rows_of(h, 0, r0, r1), s_b = rows_of(s, 0, r0, r1), y_b = rows_of(y, 1, r0, r1);
    Tensor scratch_b = rows_of(scratch, 0, r0, r1);
    sigmoid_gru_forward_block(rows_of(xp, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1), h_b, s_b, w_hh_t,
                              w_hh_tiles, b_hh, threshold, y_b, rows_of(gate_store, 1, r0, r1),
                              rows_of(state_store, 1, r0, r1), scratch_b, event_density);
  });
}

void sigmoid_gru_backward_steps(const Tensor& gates, const Tensor& s_prev, const Tensor& s_after,
                                const std::optional<Tensor>& spike_deriv, const Tensor& dy, int64_t t0,
                                const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, Tensor& dh_carry,
                                Tensor& ds_carry, Tensor& d_hidden_pre, Tensor& d_input_pre, double threshold,
                                int64_t kind, double alpha) {
  Arguments args("sigmoid_gru_backward_steps");
  const at::ScalarType dtype = args.floating("gates", gates);
  args.tensor("gates", gates, dtype, {kAny, kAny, kAny});
  const int64_t K = gates.size(0), B = gates.size(1);
  args.tensor("ds_carry", ds_carry, dtype, {B, kAny});
  const int64_t H = ds_carry.size(1);
  args.tensor("gates", gates, dtype, {K, B, 4 * H});
  args.tensor("s_prev", s_prev, dtype, {K, B, H});
  args.tensor("s_after", s_after, dtype, {K, B, H});
  args.optional("spike_deriv", spike_deriv, dtype, {K, B, H});
  args.tensor("dy", dy, dtype, {K, B, H});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh", w_hh, dtype, {3 * H, H}, Strides::kAny);
  args.tensor("dh_carry", dh_carry, dtype, {B, H});
  args.tensor("d_hidden_pre", d_hidden_pre, dtype, {K, B, 3 * H});
  args.tensor("d_input_pre", d_input_pre, dtype, {K, B, 3 * H});
  args.surrogate_kind("kind", kind, !spike_deriv, "spike_deriv");
  over_row_blocks(B, [&](int64_t r0, int64_t r1) {
    Tensor dh_b = rows_of(dh_carry, 0, r0, r1), ds_b = rows_of(ds_carry, 0, r0, r1);
    Tensor hidden_b = rows_of(d_hidden_pre, 1, r0, r1), input_b = rows_of(d_input_pre, 1, r0, r1);
    sigmoid_gru_backward_block(rows_of(gates, 1, r0, r1), rows_of(s_prev, 1, r0, r1), rows_of(s_after, 1, r0, r1),
                               rows_of(spike_deriv, 1, r0, r1), rows_of(dy, 1, r0, r1), t0,
                               block_sizes(batch_sizes, r0, r1), w_hh, dh_b, ds_b, hidden_b, input_b, threshold,
                               kind, alpha);
  });
}

}  // namespace loops
}  // namespace spikingrnn

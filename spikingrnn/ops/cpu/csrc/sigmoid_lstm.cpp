// The sigmoid-form LSTM's time loops (entries.h; gates="sigmoid" in spikingrnn/functional/cells.py):
// sigmoid i, f, o and tanh g, the analog cell c' = f c + i g, and the emitted spikes
// h = Θ(o tanh(c') - θ). The product with h is event-driven (h is 0/1 without a projection).
// Backward takes the gates as forward computed them (or as Python recomputed them in low-memory
// mode) and the cell after each step; it evaluates tanh(c) per row itself and, for the built-in
// surrogates (surrogates.h), the surrogate derivative at o tanh(c) - θ, so that no [K, B, H]
// tensors are built for them (a user-defined surrogate's derivatives come as a tensor from PyTorch).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstring>
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

// One row of a forward step: g [4H] holds h W_hh^T on entry and the gates i|f|g|o on exit;
// xp [4H] = x W_ih^T + b_ih + b_hh; c [H] the cell (in place); m [H] the spikes.
template <typename T>
inline void sigmoid_lstm_row(T* __restrict__ g, const T* __restrict__ xp, T* __restrict__ c, T* __restrict__ m,
                             int64_t H, T threshold) {
  for (int64_t j = 0; j < H; ++j) g[j] = sigmoid_gate<T>(g[j] + xp[j]);
  for (int64_t j = H; j < 2 * H; ++j) g[j] = sigmoid_gate<T>(g[j] + xp[j]);
  for (int64_t j = 2 * H; j < 3 * H; ++j) g[j] = tanh_gate<T>(g[j] + xp[j]);
  for (int64_t j = 3 * H; j < 4 * H; ++j) g[j] = sigmoid_gate<T>(g[j] + xp[j]);
  const T* __restrict__ i = g;
  const T* __restrict__ f = g + H;
  const T* __restrict__ gg = g + 2 * H;
  const T* __restrict__ o = g + 3 * H;
  for (int64_t j = 0; j < H; ++j) {
    const T cn = f[j] * c[j] + i[j] * gg[j];
    c[j] = cn;
    m[j] = o[j] * tanh_gate<T>(cn) - threshold >= T(0) ? T(1) : T(0);
  }
}

// One row of a backward step: from the gates a [4H] (i|f|g|o), the cell before (cp) and tanh of the
// cell after (tc), the surrogate derivative sd at o tanh(c) - θ, dm = dL/dh (the spikes), the carried
// dc: the pre-activation gradients p [4H] and dc carried to the step before.
template <typename T>
inline void sigmoid_lstm_backward_row(const T* __restrict__ a, const T* __restrict__ cp, const T* __restrict__ tc,
                                      const T* __restrict__ sd, const T* __restrict__ dm, T* __restrict__ p,
                                      T* __restrict__ dc_carry, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
    const T dv = dm[j] * sd[j];
    const T dc = dc_carry[j] + dv * o * (T(1) - tc[j] * tc[j]);
    p[j] = dc * g * i * (T(1) - i);
    p[H + j] = dc * cp[j] * f * (T(1) - f);
    p[2 * H + j] = dc * i * (T(1) - g * g);
    p[3 * H + j] = dv * tc[j] * o * (T(1) - o);
    dc_carry[j] = dc * f;
  }
}

void sigmoid_lstm_forward_block(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                                Tensor& c, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                                const std::optional<Tensor>& w_hr_t, double threshold, Tensor& y,
                                const std::optional<Tensor>& gate_store, const std::optional<Tensor>& cell_store,
                                Tensor& scratch, Tensor& m, double event_density) {
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = c.size(1);
  EventScratch events;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "sigmoid_lstm_forward_steps", [&] {
    using T = scalar_t;
    const T thr = static_cast<T>(threshold);
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = t0 + k, n = rows_at(batch_sizes, t, batch);
      // the gates are computed where backward will read them (gate_store's step t) when it is kept
      T* gp = gate_store ? step_ptr<T>(*gate_store, t) : scratch.data_ptr<T>();
      hidden_product<T>(h, n, w_hh_t, w_hh_tiles, std::nullopt, gp, event_density, events);
      T* y_t = step_ptr<T>(y, t);
      T* m_out = w_hr_t ? m.data_ptr<T>() : y_t;  // without projection the spikes are h: straight into y
      const T* x_k = step_ptr<T>(xp, k);
      T* cp = c.data_ptr<T>();
      for (int64_t r = 0; r < n; ++r) {
        sigmoid_lstm_row<T>(gp + r * 4 * hidden, x_k + r * 4 * hidden, cp + r * hidden, m_out + r * hidden, hidden,
                            thr);
      }
      if (w_hr_t) {
        const int64_t P = y.size(2);
        gemm_rows<T>(n, m_out, hidden, *w_hr_t, false, y_t, P);
        std::copy(y_t, y_t + n * P, h.data_ptr<T>());
      } else {
        std::copy(y_t, y_t + n * hidden, h.data_ptr<T>());
      }
      if (cell_store) std::copy(cp, cp + n * hidden, step_ptr<T>(*cell_store, t));
    }
  });
}

// tanh(c') [H] of one row and the surrogate derivative sd [H] at o tanh(c') - θ: given (a row of
// spike_deriv), or evaluated here with the built-in surrogate kind/alpha (v [H] scratch).
template <typename T>
inline const T* sigmoid_lstm_spike_row(const T* __restrict__ o, const T* __restrict__ ca, const T* sd_given,
                                       T* __restrict__ tc, T* __restrict__ v, T* __restrict__ sd, int64_t H,
                                       T threshold, int64_t kind, T alpha) {
  for (int64_t j = 0; j < H; ++j) tc[j] = tanh_gate<T>(ca[j]);
  if (sd_given) return sd_given;
  for (int64_t j = 0; j < H; ++j) v[j] = o[j] * tc[j] - threshold;
  derivative_row<T>(kind, alpha, v, sd, H);
  return sd;
}

void sigmoid_lstm_backward_block(const Tensor& gates, const Tensor& c_prev, const Tensor& c_after,
                                 const std::optional<Tensor>& spike_deriv, const Tensor& dy, int64_t t0,
                                 const std::vector<int64_t>& batch_sizes, const Tensor& w_hh,
                                 const std::optional<Tensor>& w_hr, Tensor& dh_carry, Tensor& dc_carry,
                                 Tensor& d_pre, const std::optional<Tensor>& dh_all,
                                 const std::optional<Tensor>& dm_buffer, double threshold, int64_t kind,
                                 double alpha) {
  const int64_t steps = gates.size(0), batch = gates.size(1), hidden = gates.size(2) / 4;
  const int64_t out_size = dh_carry.size(1);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "sigmoid_lstm_backward_steps", [&] {
    using T = scalar_t;
    const T thr = static_cast<T>(threshold), a_kind = static_cast<T>(alpha);
    std::vector<T> row_scratch(3 * hidden);  // tanh(c'), o tanh(c') - θ, the derivative
    T* tc = row_scratch.data();
    T* v = tc + hidden;
    T* sd_row = v + hidden;
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t n = rows_at(batch_sizes, t0 + k, batch);
      T* __restrict__ dh = dh_carry.data_ptr<T>();
      const T* __restrict__ dyk = step_ptr<T>(dy, k);
      for (int64_t i = 0; i < n * out_size; ++i) dh[i] += dyk[i];
      const T* dm = dh;
      if (w_hr) {
        std::copy(dh, dh + n * out_size, step_ptr<T>(*dh_all, k));
        T* dm_rows = dm_buffer->data_ptr<T>();
        gemm_rows<T>(n, dh, out_size, *w_hr, false, dm_rows, hidden);
        dm = dm_rows;
      }
      const T* a = step_ptr<T>(gates, k);
      const T* cp = step_ptr<T>(c_prev, k);
      const T* ca = step_ptr<T>(c_after, k);
      const T* sd_given = spike_deriv ? step_ptr<T>(*spike_deriv, k) : nullptr;
      T* dp = step_ptr<T>(d_pre, k);
      T* dc = dc_carry.data_ptr<T>();
      for (int64_t r = 0; r < n; ++r) {
        const T* ar = a + r * 4 * hidden;
        const T* sd = sigmoid_lstm_spike_row<T>(ar + 3 * hidden, ca + r * hidden,
                                                sd_given ? sd_given + r * hidden : nullptr, tc, v, sd_row, hidden,
                                                thr, kind, a_kind);
        sigmoid_lstm_backward_row<T>(ar, cp + r * hidden, tc, sd, dm + r * hidden, dp + r * 4 * hidden,
                                     dc + r * hidden, hidden);
      }
      gemm_rows<T>(n, dp, 4 * hidden, w_hh, false, dh_carry.data_ptr<T>(), out_size);
    }
  });
}

}  // namespace

namespace loops {

void sigmoid_lstm_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                                Tensor& c, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                                const std::optional<Tensor>& w_hr_t, double threshold, Tensor& y,
                                const std::optional<Tensor>& gate_store, const std::optional<Tensor>& cell_store,
                                Tensor& scratch, Tensor& m, double event_density) {
  Arguments args("sigmoid_lstm_forward_steps");
  const at::ScalarType dtype = args.floating("xp", xp);
  args.tensor("xp", xp, dtype, {kAny, kAny, kAny});
  const int64_t K = xp.size(0), B = xp.size(1);
  args.tensor("c", c, dtype, {B, kAny});
  const int64_t H = c.size(1);
  args.tensor("xp", xp, dtype, {K, B, 4 * H});
  args.optional("w_hr_t", w_hr_t, dtype, {H, kAny}, Strides::kAny);
  const int64_t P = w_hr_t ? w_hr_t->size(1) : H;
  args.tensor("h", h, dtype, {B, P});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh_t", w_hh_t, dtype, {P, 4 * H}, Strides::kAny);
  args.optional("w_hh_tiles", w_hh_tiles, dtype, {column_tiles_of(dtype, 4 * H), P, tile_width_of(dtype)});
  args.tensor("y", y, dtype, {kAny, B, P});
  args.steps("y", y, t0 + K);
  args.optional("gate_store", gate_store, dtype, {kAny, B, 4 * H});
  args.steps("gate_store", gate_store, t0 + K);
  args.optional("cell_store", cell_store, dtype, {kAny, B, H});
  args.steps("cell_store", cell_store, t0 + K);
  args.tensor("scratch", scratch, dtype, {B, 4 * H});
  args.tensor("m", m, dtype, {B, H});
  over_row_blocks(B, [&](int64_t r0, int64_t r1) {
    Tensor h_b = rows_of(h, 0, r0, r1), c_b = rows_of(c, 0, r0, r1), y_b = rows_of(y, 1, r0, r1);
    Tensor scratch_b = rows_of(scratch, 0, r0, r1), m_b = rows_of(m, 0, r0, r1);
    sigmoid_lstm_forward_block(rows_of(xp, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1), h_b, c_b, w_hh_t,
                               w_hh_tiles, w_hr_t, threshold, y_b, rows_of(gate_store, 1, r0, r1),
                               rows_of(cell_store, 1, r0, r1), scratch_b, m_b, event_density);
  });
}

void sigmoid_lstm_backward_steps(const Tensor& gates, const Tensor& c_prev, const Tensor& c_after,
                                 const std::optional<Tensor>& spike_deriv, const Tensor& dy, int64_t t0,
                                 const std::vector<int64_t>& batch_sizes, const Tensor& w_hh,
                                 const std::optional<Tensor>& w_hr, Tensor& dh_carry, Tensor& dc_carry,
                                 Tensor& d_pre, const std::optional<Tensor>& dh_all,
                                 const std::optional<Tensor>& dm_buffer, double threshold, int64_t kind,
                                 double alpha) {
  Arguments args("sigmoid_lstm_backward_steps");
  const at::ScalarType dtype = args.floating("gates", gates);
  args.tensor("gates", gates, dtype, {kAny, kAny, kAny});
  const int64_t K = gates.size(0), B = gates.size(1);
  args.tensor("dc_carry", dc_carry, dtype, {B, kAny});
  const int64_t H = dc_carry.size(1);
  args.tensor("gates", gates, dtype, {K, B, 4 * H});
  args.optional("w_hr", w_hr, dtype, {kAny, H}, Strides::kAny);
  const int64_t P = w_hr ? w_hr->size(0) : H;
  args.tensor("dh_carry", dh_carry, dtype, {B, P});
  args.tensor("c_prev", c_prev, dtype, {K, B, H});
  args.tensor("c_after", c_after, dtype, {K, B, H});
  args.optional("spike_deriv", spike_deriv, dtype, {K, B, H});
  args.tensor("dy", dy, dtype, {K, B, P});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh", w_hh, dtype, {4 * H, P}, Strides::kAny);
  args.tensor("d_pre", d_pre, dtype, {K, B, 4 * H});
  if (w_hr) {
    args.required("dh_all", dh_all, "with w_hr given");
    args.required("dm_buffer", dm_buffer, "with w_hr given");
  }
  args.optional("dh_all", dh_all, dtype, {K, B, P});
  args.optional("dm_buffer", dm_buffer, dtype, {B, H});
  args.surrogate_kind("kind", kind, !spike_deriv, "spike_deriv");
  over_row_blocks(B, [&](int64_t r0, int64_t r1) {
    Tensor dh_b = rows_of(dh_carry, 0, r0, r1), dc_b = rows_of(dc_carry, 0, r0, r1);
    Tensor d_pre_b = rows_of(d_pre, 1, r0, r1);
    sigmoid_lstm_backward_block(rows_of(gates, 1, r0, r1), rows_of(c_prev, 1, r0, r1), rows_of(c_after, 1, r0, r1),
                                rows_of(spike_deriv, 1, r0, r1), rows_of(dy, 1, r0, r1), t0,
                                block_sizes(batch_sizes, r0, r1), w_hh, w_hr, dh_b, dc_b, d_pre_b,
                                rows_of(dh_all, 1, r0, r1), rows_of(dm_buffer, 0, r0, r1), threshold, kind, alpha);
  });
}

}  // namespace loops
}  // namespace spikingrnn

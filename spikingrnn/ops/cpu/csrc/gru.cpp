// The spiking GRU's time loops (entries.h): forward steps (gates, state, pre-activations kept for
// backward) and backward steps with the built-in surrogates' derivatives evaluated in place.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "bits.h"
#include "blas.h"
#include "checks.h"
#include "entries.h"
#include "step.h"
#include "surrogates.h"
#include "threading.h"

namespace spikingrnn {
namespace {

// One row of a GRU forward step: from x_* (xr, xz, xn) and h_* = W_h* h + b_h* (hr_, hz_, hn_), the
// gates r, z, n (written over hr_, hz_, hn_ as 0/1) and h' = (1 - z) n + z h (into h and y): the
// reference's arithmetic rather than z ? h : n, which differs for a NaN or Inf in h (from h0), where
// the reference's 0 x NaN makes NaN.
template <typename T>
inline void gru_forward_row(const T* __restrict__ xr, const T* __restrict__ xz, const T* __restrict__ xn,
                            T* __restrict__ hr_, T* __restrict__ hz_, T* __restrict__ hn_, T* __restrict__ h,
                            T* __restrict__ y, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = fire(xr[j] + hr_[j]);
    const T z = fire(xz[j] + hz_[j]);
    const T n = fire(xn[j] + r * hn_[j]);
    hr_[j] = r;
    hz_[j] = z;
    hn_[j] = n;
    const T next = (T(1) - z) * n + z * h[j];
    h[j] = next;
    y[j] = next;
  }
}

// The pre-activations u_r | u_z | u_n | h_n of one GRU row (for backward).
template <typename T>
inline void gru_pre_row(const T* __restrict__ xr, const T* __restrict__ xz, const T* __restrict__ xn,
                        const T* __restrict__ hr_, const T* __restrict__ hz_, const T* __restrict__ hn_,
                        T* __restrict__ ur, T* __restrict__ uz, T* __restrict__ un, T* __restrict__ hn_out, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    ur[j] = xr[j] + hr_[j];
    uz[j] = xz[j] + hz_[j];
    un[j] = xn[j] + fire(xr[j] + hr_[j]) * hn_[j];
    hn_out[j] = hn_[j];
  }
}

// One row of a GRU backward step from its pre-activations u_r | u_z | u_n | h_n (u), the gates r, z,
// n (0/1, as fired in forward), their surrogate derivatives d_r, d_z, d_n and h before the step:
// with d = dh + dy, d u_n = d (1 - z) d_n, d u_z = d (h - n) d_z, d u_r = d u_n h_n d_r; the
// hidden-side pre-activation gradients p_r | p_z | d u_n r, the input-side ones p_r | p_z | d u_n,
// and dh = d z (to which backward adds d_hidden W_hh).
template <typename T>
inline void gru_backward_row(const T* __restrict__ h_n, const T* __restrict__ r, const T* __restrict__ z,
                             const T* __restrict__ n, const T* __restrict__ d_r, const T* __restrict__ d_z,
                             const T* __restrict__ d_n, const T* __restrict__ h_prev, const T* __restrict__ dy,
                             T* __restrict__ dh, T* __restrict__ hidden_pre, T* __restrict__ input_pre, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T d = dh[j] + dy[j];
    const T du_n = d * (T(1) - z[j]) * d_n[j];
    const T du_z = d * (h_prev[j] - n[j]) * d_z[j];
    const T du_r = du_n * h_n[j] * d_r[j];
    hidden_pre[j] = du_r;
    hidden_pre[H + j] = du_z;
    hidden_pre[2 * H + j] = du_n * r[j];
    input_pre[j] = du_r;
    input_pre[H + j] = du_z;
    input_pre[2 * H + j] = du_n;
    dh[j] = d * z[j];
  }
}

// Steps [t0, t0 + K) of a GRU layer. xp [K, B, 3H] = x W_ih^T + b_ih; h [B, H] running state;
// b_hh [3H] or none; y [T, B, H] out; gate_bits [T, words(B*3H)] (r|z|n) and pre_store [T, B, 4H]
// (u_r|u_z|u_n|h_n, with h_n = W_hn h + b_hn) when given; scratch [B, 3H].
void gru_forward_block(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                       const std::optional<Tensor>& b_hh, Tensor& y, const std::optional<Tensor>& gate_bits,
                       const std::optional<Tensor>& pre_store, Tensor& scratch, double event_density) {
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = h.size(1);
  EventScratch events;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = t0 + k, n = rows_at(batch_sizes, t, batch);
      T* g = scratch.data_ptr<T>();
      hidden_product<T>(h, n, w_hh_t, w_hh_tiles, b_hh, g, event_density, events);
      const T* xk = step_ptr<T>(xp, k);
      T* hs = h.data_ptr<T>();
      T* yt = step_ptr<T>(y, t);
      if (pre_store) {
        T* pre = step_ptr<T>(*pre_store, t);
        for (int64_t r = 0; r < n; ++r) {
          const T* xr = xk + r * 3 * hidden;
          const T* gr = g + r * 3 * hidden;
          T* pr = pre + r * 4 * hidden;
          gru_pre_row<T>(xr, xr + hidden, xr + 2 * hidden, gr, gr + hidden, gr + 2 * hidden, pr, pr + hidden,
                         pr + 2 * hidden, pr + 3 * hidden, hidden);
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        const T* xr = xk + r * 3 * hidden;
        T* gr = g + r * 3 * hidden;
        gru_forward_row<T>(xr, xr + hidden, xr + 2 * hidden, gr, gr + hidden, gr + 2 * hidden, hs + r * hidden,
                           yt + r * hidden, hidden);
      }
      if (gate_bits) pack_bits<T>(g, n * 3 * hidden, step_ptr<uint8_t>(*gate_bits, t));
    }
  });
}

// Steps [t0, t0 + K) of the GRU backward, last first. u [K, B, 4H] pre-activations (u_r|u_z|u_n|h_n);
// deriv [K, B, 3H] their surrogate derivatives (r|z|n), or none to evaluate them here with the
// built-in surrogates kind1/alpha1 (r, z) and kind2/alpha2 (n); gates [K, B, 3H] 0/1 as fired in
// forward, or none to take them from the signs of u; h_prev [K, B, H]; dy [K, B, H]; w_hh [3H, H];
// dh_carry [B, H] in/out; d_hidden_pre and d_input_pre [K, B, 3H] out.
void gru_backward_block(const Tensor& u, const std::optional<Tensor>& deriv, const std::optional<Tensor>& gates,
                        const Tensor& h_prev, const Tensor& dy, int64_t t0,
                        const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, Tensor& dh_carry,
                        Tensor& d_hidden_pre, Tensor& d_input_pre, int64_t kind1, double alpha1, int64_t kind2,
                        double alpha2) {
  const int64_t steps = u.size(0), batch = u.size(1), hidden = u.size(2) / 4;
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "gru_backward_steps", [&] {
    using T = scalar_t;
    std::vector<T> row(static_cast<size_t>((deriv ? 0 : 3 * hidden) + (gates ? 0 : 3 * hidden)));
    T* row_deriv = row.data();
    T* row_gates = row.data() + (deriv ? 0 : 3 * hidden);
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t n = rows_at(batch_sizes, t0 + k, batch);
      const T* uk = step_ptr<T>(u, k);
      const T* dk = deriv ? step_ptr<T>(*deriv, k) : nullptr;
      const T* gk = gates ? step_ptr<T>(*gates, k) : nullptr;
      const T* hk = step_ptr<T>(h_prev, k);
      const T* dyk = step_ptr<T>(dy, k);
      T* dh = dh_carry.data_ptr<T>();
      T* hp = step_ptr<T>(d_hidden_pre, k);
      T* ip = step_ptr<T>(d_input_pre, k);
      for (int64_t r = 0; r < n; ++r) {
        const T* ur = uk + r * 4 * hidden;
        const T* d = dk ? dk + r * 3 * hidden : row_deriv;
        const T* g = gk ? gk + r * 3 * hidden : row_gates;
        if (!dk) {
          spikingrnn::derivative_row<T>(kind1, static_cast<T>(alpha1), ur, row_deriv, 2 * hidden);
          spikingrnn::derivative_row<T>(kind2, static_cast<T>(alpha2), ur + 2 * hidden, row_deriv + 2 * hidden,
                                        hidden);
        }
        if (!gk) {
          for (int64_t j = 0; j < 3 * hidden; ++j) row_gates[j] = fire(ur[j]);
        }
        gru_backward_row<T>(ur + 3 * hidden, g, g + hidden, g + 2 * hidden, d, d + hidden, d + 2 * hidden,
                            hk + r * hidden, dyk + r * hidden, dh + r * hidden, hp + r * 3 * hidden,
                            ip + r * 3 * hidden, hidden);
      }
      gemm_rows<T>(n, hp, 3 * hidden, w_hh, true, dh, hidden);
    }
  });
}

}  // namespace

namespace loops {

// The exported loops: each checks its arguments, then runs its *_block on row blocks in parallel
// (see row_blocks); the arguments are those of the block functions above, for the whole batch.
void gru_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                       const std::optional<Tensor>& b_hh, Tensor& y, const std::optional<Tensor>& gate_bits,
                       const std::optional<Tensor>& pre_store, Tensor& scratch, double event_density) {
  Arguments args("gru_forward_steps");
  const at::ScalarType dtype = args.floating("xp", xp);
  args.tensor("xp", xp, dtype, {kAny, kAny, kAny});
  const int64_t K = xp.size(0), B = xp.size(1);
  args.tensor("h", h, dtype, {B, kAny});
  const int64_t H = h.size(1);
  args.tensor("xp", xp, dtype, {K, B, 3 * H});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh_t", w_hh_t, dtype, {H, 3 * H}, Strides::kAny);
  args.optional("w_hh_tiles", w_hh_tiles, dtype, {column_tiles_of(dtype, 3 * H), H, tile_width_of(dtype)});
  args.optional("b_hh", b_hh, dtype, {3 * H});
  args.tensor("y", y, dtype, {kAny, B, H});
  args.steps("y", y, t0 + K);
  args.optional("gate_bits", gate_bits, at::kByte, {kAny, bit_words(B * 3 * H)});
  args.steps("gate_bits", gate_bits, t0 + K);
  args.optional("pre_store", pre_store, dtype, {kAny, B, 4 * H});
  args.steps("pre_store", pre_store, t0 + K);
  args.tensor("scratch", scratch, dtype, {B, 3 * H});

  const int64_t hidden = h.size(1);
  over_row_blocks(xp.size(1), [&](int64_t r0, int64_t r1) {
    Tensor h_b = rows_of(h, 0, r0, r1), y_b = rows_of(y, 1, r0, r1), scratch_b = rows_of(scratch, 0, r0, r1);
    gru_forward_block(rows_of(xp, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1), h_b, w_hh_t, w_hh_tiles, b_hh,
                      y_b, bit_rows_of(gate_bits, true, 3 * hidden, r0, r1), rows_of(pre_store, 1, r0, r1), scratch_b,
                      event_density);
  });
}

void gru_backward_steps(const Tensor& u, const std::optional<Tensor>& deriv, const std::optional<Tensor>& gates,
                        const Tensor& h_prev, const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes,
                        const Tensor& w_hh, Tensor& dh_carry, Tensor& d_hidden_pre, Tensor& d_input_pre,
                        int64_t kind1, double alpha1, int64_t kind2, double alpha2) {
  Arguments args("gru_backward_steps");
  const at::ScalarType dtype = args.floating("u", u);
  args.tensor("u", u, dtype, {kAny, kAny, kAny});
  const int64_t K = u.size(0), B = u.size(1);
  args.tensor("dh_carry", dh_carry, dtype, {B, kAny});
  const int64_t H = dh_carry.size(1);
  args.tensor("u", u, dtype, {K, B, 4 * H});
  args.optional("deriv", deriv, dtype, {K, B, 3 * H});
  args.optional("gates", gates, dtype, {K, B, 3 * H});
  args.tensor("h_prev", h_prev, dtype, {K, B, H});
  args.tensor("dy", dy, dtype, {K, B, H});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh", w_hh, dtype, {3 * H, H}, Strides::kAny);
  args.tensor("d_hidden_pre", d_hidden_pre, dtype, {K, B, 3 * H});
  args.tensor("d_input_pre", d_input_pre, dtype, {K, B, 3 * H});
  args.surrogate_kind("kind1", kind1, !deriv);
  args.surrogate_kind("kind2", kind2, !deriv);

  over_row_blocks(u.size(1), [&](int64_t r0, int64_t r1) {
    Tensor dh_b = rows_of(dh_carry, 0, r0, r1), hidden_b = rows_of(d_hidden_pre, 1, r0, r1);
    Tensor input_b = rows_of(d_input_pre, 1, r0, r1);
    gru_backward_block(rows_of(u, 1, r0, r1), rows_of(deriv, 1, r0, r1), rows_of(gates, 1, r0, r1),
                       rows_of(h_prev, 1, r0, r1), rows_of(dy, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1),
                       w_hh, dh_b, hidden_b, input_b, kind1, alpha1, kind2, alpha2);
  });
}

}  // namespace loops
}  // namespace spikingrnn

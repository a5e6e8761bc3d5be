// Time loops of the cpu backend, one chunk of steps per call: per step one GEMM (ATen/MKL) and
// one fused pointwise pass. Python (ops/cpu/*.py) computes everything that does not depend on
// the recurrence with large vectorised ops, chunk by chunk, and calls these loops in between.
//
// Conventions: tensors are contiguous. Per-chunk tensors are [K, B, F] and indexed by k = t - t0;
// whole-sequence tensors ([T, B, F] outputs, [T, words] bit rows) by t. batch_sizes[t] (empty: all
// B rows) is the number of leading rows valid at step t, non-increasing; rows past it are neither
// read nor written, so their state stays put. Running states h [B, P], c [B, H] and gradient
// carries are updated in place. Bit rows pack a step's n*F values 8 per byte, little-endian.
#include <torch/extension.h>

#include <optional>
#include <vector>

namespace {

using at::Tensor;

int64_t rows_at(const std::vector<int64_t>& batch_sizes, int64_t t, int64_t batch) {
  return batch_sizes.empty() ? batch : batch_sizes[t];
}

template <typename T>
inline T fire(T u) { return u >= T(0) ? T(1) : T(0); }

template <typename T>
void pack_bits(const T* __restrict__ values, int64_t count, uint8_t* __restrict__ out) {
  const int64_t full = count / 8;
  for (int64_t b = 0; b < full; ++b) {
    const T* v = values + 8 * b;
    out[b] = static_cast<uint8_t>((v[0] != T(0)) | (v[1] != T(0)) << 1 | (v[2] != T(0)) << 2 | (v[3] != T(0)) << 3 |
                                  (v[4] != T(0)) << 4 | (v[5] != T(0)) << 5 | (v[6] != T(0)) << 6 | (v[7] != T(0)) << 7);
  }
  if (count % 8) {
    uint8_t byte = 0;
    for (int64_t i = 8 * full; i < count; ++i) byte |= static_cast<uint8_t>(values[i] != T(0)) << (i - 8 * full);
    out[full] = byte;
  }
}

// One LSTM step's pointwise work on n rows. g holds h W_hh^T on entry and the 0/1 gates on exit.
// kMode: 0 clamp (c <= 1), 1 accumulate, 2 spike (c = Θ(c - threshold)). Simple loops over
// contiguous runs, so that the compiler vectorises them without branches.
template <typename T, int kMode>
void lstm_pointwise(T* g, const T* xp, T* c, T* m, T* h_copy, T* pre, int64_t n, int64_t H, T threshold) {
  for (int64_t r = 0; r < n; ++r) {
    T* __restrict__ gr = g + r * 4 * H;
    const T* __restrict__ xr = xp + r * 4 * H;
    if (pre) {
      T* __restrict__ pr = pre + r * 4 * H;
      for (int64_t j = 0; j < 4 * H; ++j) pr[j] = gr[j] + xr[j];
    }
    for (int64_t j = 0; j < 4 * H; ++j) gr[j] = gr[j] + xr[j] >= T(0) ? T(1) : T(0);
    const T* __restrict__ i = gr;
    const T* __restrict__ f = gr + H;
    const T* __restrict__ gg = gr + 2 * H;
    const T* __restrict__ o = gr + 3 * H;
    T* __restrict__ cr = c + r * H;
    T* __restrict__ mr = m + r * H;
    for (int64_t j = 0; j < H; ++j) {
      T cn = cr[j] * f[j] + i[j] * gg[j];
      if (kMode == 0) cn = cn > T(1) ? T(1) : cn;
      if (kMode == 2) cn = cn >= threshold ? T(1) : T(0);
      cr[j] = cn;
      mr[j] = cn * o[j];
    }
    if (h_copy) std::copy(mr, mr + H, h_copy + r * H);
  }
}

}  // namespace

// Steps [t0, t0 + K) of an LSTM layer. xp [K, B, 4H] = x W_ih^T + b_ih + b_hh; h [B, P], c [B, H]
// running states; y [T, B, P] output; gate_bits [T, words(B*4H)], cell_store ([T, words(B*H)]
// bits when cell_bits, else [T, B, H] floats) and pre_store [T, B, 4H] (pre-activations) are
// filled when given; scratch [B, 4H], m [B, H].
void lstm_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h, Tensor& c,
                        const Tensor& w_hh_t, const std::optional<Tensor>& w_hr_t, int64_t cell_mode, double threshold,
                        Tensor& y, const std::optional<Tensor>& gate_bits, const std::optional<Tensor>& cell_store,
                        bool cell_bits, const std::optional<Tensor>& pre_store, Tensor& scratch, Tensor& m) {
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = c.size(1);
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = t0 + k, n = rows_at(batch_sizes, t, batch);
      Tensor g = scratch.narrow(0, 0, n);
      at::mm_out(g, h.narrow(0, 0, n), w_hh_t);
      T* y_t = y.select(0, t).data_ptr<T>();
      // without projection the output m = o * c is h itself: write it to y and h in one pass
      T* m_out = w_hr_t ? m.data_ptr<T>() : y_t;
      T* h_copy = w_hr_t ? nullptr : h.data_ptr<T>();
      const T* x_k = xp.select(0, k).data_ptr<T>();
      const T thr = static_cast<T>(threshold);
      T* pre = pre_store ? pre_store->select(0, t).data_ptr<T>() : nullptr;
      T* gp = g.data_ptr<T>();
      T* cp = c.data_ptr<T>();
      if (cell_mode == 0) lstm_pointwise<T, 0>(gp, x_k, cp, m_out, h_copy, pre, n, hidden, thr);
      if (cell_mode == 1) lstm_pointwise<T, 1>(gp, x_k, cp, m_out, h_copy, pre, n, hidden, thr);
      if (cell_mode == 2) lstm_pointwise<T, 2>(gp, x_k, cp, m_out, h_copy, pre, n, hidden, thr);
      if (w_hr_t) {
        Tensor y_rows = y.select(0, t).narrow(0, 0, n);
        at::mm_out(y_rows, m.narrow(0, 0, n), *w_hr_t);
        h.narrow(0, 0, n).copy_(y_rows);
      }
      if (gate_bits) pack_bits<T>(g.data_ptr<T>(), n * 4 * hidden, gate_bits->select(0, t).data_ptr<uint8_t>());
      if (cell_store) {
        if (cell_bits) {
          pack_bits<T>(c.data_ptr<T>(), n * hidden, cell_store->select(0, t).data_ptr<uint8_t>());
        } else {
          std::copy(c.data_ptr<T>(), c.data_ptr<T>() + n * hidden, cell_store->select(0, t).data_ptr<T>());
        }
      }
    }
  });
}

// Steps [t0, t0 + K) of the LSTM backward, last step first. u [K, B, 4H] pre-activations; deriv [K, B, 4H]
// their surrogate derivatives; gates [K, B, 4H] 0/1 as fired in forward, or none to take them from the sign
// of u (exact when u was kept from forward); cell_scale [K, B, H] (spiking cell) or none; c_prev, c_after
// [K, B, H] cell states before/after each step; dy [K, B, P]; w_hh [4H, P]; w_hr [P, H] or none;
// dh_carry [B, P], dc_carry [B, H] in/out; d_pre [K, B, 4H] out; dh_all [K, B, P] out and dm [B, H]
// scratch when projecting.
void lstm_backward_steps(const Tensor& u, const Tensor& deriv, const std::optional<Tensor>& gates,
                         const std::optional<Tensor>& cell_scale, const Tensor& c_prev, const Tensor& c_after,
                         const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes, const Tensor& w_hh,
                         const std::optional<Tensor>& w_hr, Tensor& dh_carry, Tensor& dc_carry, Tensor& d_pre,
                         const std::optional<Tensor>& dh_all, const std::optional<Tensor>& dm_buffer) {
  const int64_t steps = u.size(0), batch = u.size(1), hidden = u.size(2) / 4, out_size = dh_carry.size(1);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "lstm_backward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t n = rows_at(batch_sizes, t0 + k, batch);
      T* __restrict__ dh = dh_carry.data_ptr<T>();
      const T* __restrict__ dyk = dy.select(0, k).data_ptr<T>();
      for (int64_t i = 0; i < n * out_size; ++i) dh[i] += dyk[i];
      const T* dm = dh;
      if (w_hr) {
        Tensor dh_rows = dh_carry.narrow(0, 0, n);
        dh_all->select(0, k).narrow(0, 0, n).copy_(dh_rows);
        Tensor dm_rows = dm_buffer->narrow(0, 0, n);
        at::mm_out(dm_rows, dh_rows, *w_hr);
        dm = dm_rows.data_ptr<T>();
      }
      const T* uk = u.select(0, k).data_ptr<T>();
      const T* dk = deriv.select(0, k).data_ptr<T>();
      const T* gk = gates ? gates->select(0, k).data_ptr<T>() : nullptr;
      const T* cs = cell_scale ? cell_scale->select(0, k).data_ptr<T>() : nullptr;
      const T* cpk = c_prev.select(0, k).data_ptr<T>();
      const T* cak = c_after.select(0, k).data_ptr<T>();
      T* dp = d_pre.select(0, k).data_ptr<T>();
      T* dc_all = dc_carry.data_ptr<T>();
      for (int64_t r = 0; r < n; ++r) {
        const int64_t g0 = r * 4 * hidden, h0 = r * hidden;
        const T* __restrict__ ur = uk + g0;
        const T* __restrict__ gr = gk ? gk + g0 : nullptr;
        const T* __restrict__ dr = dk + g0;
        const T* __restrict__ dmr = dm + h0;
        const T* __restrict__ cpr = cpk + h0;
        const T* __restrict__ car = cak + h0;
        const T* __restrict__ csr = cs ? cs + h0 : nullptr;
        T* __restrict__ dpr = dp + g0;
        T* __restrict__ dcr = dc_all + h0;
        for (int64_t j = 0; j < hidden; ++j) {
          const T i = gr ? gr[j] : fire(ur[j]);
          const T f = gr ? gr[hidden + j] : fire(ur[hidden + j]);
          const T gg = gr ? gr[2 * hidden + j] : fire(ur[2 * hidden + j]);
          const T o = gr ? gr[3 * hidden + j] : fire(ur[3 * hidden + j]);
          T dc = dcr[j] + dmr[j] * o;
          dc *= csr ? csr[j] : T(1);
          dpr[j] = dr[j] * gg * dc;
          dpr[hidden + j] = dr[hidden + j] * cpr[j] * dc;
          dpr[2 * hidden + j] = dr[2 * hidden + j] * i * dc;
          dpr[3 * hidden + j] = dr[3 * hidden + j] * car[j] * dmr[j];
          dcr[j] = dc * f;
        }
      }
      Tensor dh_rows = dh_carry.narrow(0, 0, n);
      at::mm_out(dh_rows, d_pre.select(0, k).narrow(0, 0, n), w_hh);
    }
  });
}

// Steps [t0, t0 + K) of a GRU layer. xp [K, B, 3H] = x W_ih^T + b_ih; h [B, H] running state;
// b_hh [3H] or none; y [T, B, H] out; gate_bits [T, words(B*3H)] (r|z|n) and pre_store [T, B, 4H]
// (u_r|u_z|u_n|h_n, with h_n = W_hn h + b_hn) when given; scratch [B, 3H].
void gru_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, const std::optional<Tensor>& b_hh, Tensor& y,
                       const std::optional<Tensor>& gate_bits, const std::optional<Tensor>& pre_store,
                       Tensor& scratch) {
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = h.size(1);
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = t0 + k, n = rows_at(batch_sizes, t, batch);
      Tensor hp = scratch.narrow(0, 0, n);
      if (b_hh) {
        at::addmm_out(hp, *b_hh, h.narrow(0, 0, n), w_hh_t);
      } else {
        at::mm_out(hp, h.narrow(0, 0, n), w_hh_t);
      }
      T* g = hp.data_ptr<T>();
      const T* xk = xp.select(0, k).data_ptr<T>();
      T* hs = h.data_ptr<T>();
      T* yt = y.select(0, t).data_ptr<T>();
      if (pre_store) {
        T* pre = pre_store->select(0, t).data_ptr<T>();
        for (int64_t r = 0; r < n; ++r) {
          const T* __restrict__ xr = xk + r * 3 * hidden;
          const T* __restrict__ gr = g + r * 3 * hidden;
          T* __restrict__ pr = pre + r * 4 * hidden;
          for (int64_t j = 0; j < 2 * hidden; ++j) pr[j] = xr[j] + gr[j];
          for (int64_t j = 0; j < hidden; ++j) {
            const T rr = fire(xr[j] + gr[j]);
            pr[2 * hidden + j] = xr[2 * hidden + j] + rr * gr[2 * hidden + j];
            pr[3 * hidden + j] = gr[2 * hidden + j];
          }
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        const T* __restrict__ xr = xk + r * 3 * hidden;
        T* __restrict__ gr = g + r * 3 * hidden;
        T* __restrict__ hr = hs + r * hidden;
        T* __restrict__ yr = yt + r * hidden;
        for (int64_t j = 0; j < hidden; ++j) {
          const T rr = fire(xr[j] + gr[j]);
          const T z = fire(xr[hidden + j] + gr[hidden + j]);
          const T nn = fire(xr[2 * hidden + j] + rr * gr[2 * hidden + j]);
          gr[j] = rr;
          gr[hidden + j] = z;
          gr[2 * hidden + j] = nn;
          const T hn = z != T(0) ? hr[j] : nn;
          hr[j] = hn;
          yr[j] = hn;
        }
      }
      if (gate_bits) pack_bits<T>(g, n * 3 * hidden, gate_bits->select(0, t).data_ptr<uint8_t>());
    }
  });
}

// Steps [t0, t0 + K) of the GRU backward, last first. scales [K, B, 3H] as (n, z, r): d u_n = dh * scale_n,
// d u_z = dh * scale_z, d u_r = d u_n * scale_r; gates [K, B, 3H] 0/1 (r|z|n); dy [K, B, H]; w_hh [3H, H];
// dh_carry [B, H] in/out; d_hidden_pre [K, B, 3H] and d_new [K, B, H] out.
void gru_backward_steps(const Tensor& scales, const Tensor& gates, const Tensor& dy, int64_t t0,
                        const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, Tensor& dh_carry,
                        Tensor& d_hidden_pre, Tensor& d_new) {
  const int64_t steps = scales.size(0), batch = scales.size(1), hidden = scales.size(2) / 3;
  AT_DISPATCH_FLOATING_TYPES(scales.scalar_type(), "gru_backward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t n = rows_at(batch_sizes, t0 + k, batch);
      const T* s = scales.select(0, k).data_ptr<T>();
      const T* g = gates.select(0, k).data_ptr<T>();
      const T* dyk = dy.select(0, k).data_ptr<T>();
      T* dh = dh_carry.data_ptr<T>();
      T* dhp = d_hidden_pre.select(0, k).data_ptr<T>();
      T* dn = d_new.select(0, k).data_ptr<T>();
      for (int64_t r = 0; r < n; ++r) {
        const T* __restrict__ sr = s + r * 3 * hidden;
        const T* __restrict__ gr = g + r * 3 * hidden;
        T* __restrict__ dhpr = dhp + r * 3 * hidden;
        for (int64_t j = 0; j < hidden; ++j) {
          const int64_t i = r * hidden + j;
          const T d = dh[i] + dyk[i];
          const T du_n = d * sr[j];
          dn[i] = du_n;
          dhpr[j] = du_n * sr[2 * hidden + j];
          dhpr[hidden + j] = d * sr[hidden + j];
          dhpr[2 * hidden + j] = du_n * gr[j];
          dh[i] = d * gr[hidden + j];
        }
      }
      Tensor dh_rows = dh_carry.narrow(0, 0, n);
      at::addmm_out(dh_rows, dh_rows, d_hidden_pre.select(0, k).narrow(0, 0, n), w_hh);
    }
  });
}

// Steps [t0, t0 + K) of a vanilla RNN layer. xp [K, B, H] = x W_ih^T + b_ih + b_hh; h [B, H] running state;
// y [T, B, H] out (0/1); pre_store [T, B, H] (pre-activations) when given.
void rnn_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, Tensor& y, const std::optional<Tensor>& pre_store) {
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = h.size(1);
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnn_forward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = t0 + k, n = rows_at(batch_sizes, t, batch);
      Tensor out = y.select(0, t).narrow(0, 0, n);
      at::mm_out(out, h.narrow(0, 0, n), w_hh_t);
      T* __restrict__ o = out.data_ptr<T>();
      const T* __restrict__ x = xp.select(0, k).data_ptr<T>();
      T* __restrict__ hs = h.data_ptr<T>();
      if (pre_store) {
        T* __restrict__ pre = pre_store->select(0, t).data_ptr<T>();
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
void rnn_backward_steps(const Tensor& scale, const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes,
                        const Tensor& w_hh, Tensor& dh_carry, Tensor& d_pre) {
  const int64_t steps = scale.size(0), batch = scale.size(1), hidden = scale.size(2);
  AT_DISPATCH_FLOATING_TYPES(scale.scalar_type(), "rnn_backward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = steps - 1; k >= 0; --k) {
      const int64_t n = rows_at(batch_sizes, t0 + k, batch);
      const T* __restrict__ s = scale.select(0, k).data_ptr<T>();
      const T* __restrict__ dyk = dy.select(0, k).data_ptr<T>();
      const T* __restrict__ dh = dh_carry.data_ptr<T>();
      T* __restrict__ dp = d_pre.select(0, k).data_ptr<T>();
      for (int64_t i = 0; i < n * hidden; ++i) dp[i] = (dh[i] + dyk[i]) * s[i];
      Tensor dh_rows = dh_carry.narrow(0, 0, n);
      at::mm_out(dh_rows, d_pre.select(0, k).narrow(0, 0, n), w_hh);
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward_steps", &lstm_forward_steps);
  m.def("lstm_backward_steps", &lstm_backward_steps);
  m.def("gru_forward_steps", &gru_forward_steps);
  m.def("gru_backward_steps", &gru_backward_steps);
  m.def("rnn_forward_steps", &rnn_forward_steps);
  m.def("rnn_backward_steps", &rnn_backward_steps);
}

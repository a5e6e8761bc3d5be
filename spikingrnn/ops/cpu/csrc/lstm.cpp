// The spiking LSTM's time loops (entries.h): forward steps with their pointwise pass and the
// low-memory mode's list of near-zero gates, the backward steps with the built-in surrogates'
// derivatives evaluated in place, the replay of the cell state, and the gate signs set in backward.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>
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

// The LSTM cell update c' = c f + i g for 0/1 gates (exact products, one rounding), then by kMode:
// 0 clamp (c' <= 1), 1 accumulate, 2 spike (c' = Θ(c' - threshold)). Shared by the forward step and
// the low-memory backward's replay of the cell (lstm_cell_scan): both give the same values.
template <typename T, int kMode>
inline T lstm_cell_update(T c, T i, T f, T g, T threshold) {
  T cn = c * f + i * g;
  if (kMode == 0) cn = cn > T(1) ? T(1) : cn;
  if (kMode == 2) cn = cn >= threshold ? T(1) : T(0);
  return cn;
}

// One row of lstm_cell_scan: c_next = the cell update of c_prev with the gates g [4H] (i|f|g|o; 0/1,
// or pre-activations whose signs they are when kSigns).
template <typename T, int kMode, bool kSigns>
inline void replay_cell_row(const T* __restrict__ g, const T* __restrict__ c_prev, T* __restrict__ c_next, int64_t H,
                            T threshold) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = kSigns ? fire(g[j]) : g[j], f = kSigns ? fire(g[H + j]) : g[H + j];
    const T gg = kSigns ? fire(g[2 * H + j]) : g[2 * H + j];
    c_next[j] = lstm_cell_update<T, kMode>(c_prev[j], i, f, gg, threshold);
  }
}

// One LSTM step's pointwise work on n rows. g holds h W_hh^T on entry and the 0/1 gates on exit.
// kMode: see lstm_cell_update. Simple loops over contiguous runs, so that the compiler vectorises
// them without branches.
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
      const T cn = lstm_cell_update<T, kMode>(cr[j], i[j], f[j], gg[j], threshold);
      cr[j] = cn;
      mr[j] = cn * o[j];
    }
    if (h_copy) std::copy(mr, mr + H, h_copy + r * H);
  }
}

// What a low-memory LSTM forward lists for backward (ops/cpu/gate_signs.py): the gates whose
// pre-activation u lies so near zero that backward's recomputation of u may round to the other
// sign. Per row r of a step, the bound is |u| <= kappa * ||z_r|| * w_norm[j] + floor, where
// ||z_r||^2 = x_norm_sq[r] + ||h_r||^2 + 2 (input, previous state, two bias terms).
struct NearZeroGates {
  Tensor x_norm_sq;         // [K, rows of the block] float64, this chunk's squared input norms
  const double* w_norm;     // [4H] norms of the weight rows (with the biases)
  double kappa, floor;
  int64_t row0;                  // the block's first row within the batch
  std::vector<int32_t> entries;  // ((row * 4H + j) << 1) | gate, step after step
  std::vector<int64_t> counts;   // entries per step
  std::vector<float> filter_f;   // w_norm a little enlarged, for a vectorised first filter in the
  std::vector<double> filter_d;  // gates' own precision that lets no listed gate through

  NearZeroGates(Tensor norms, const double* w, int64_t four_hidden, double kappa_, double floor_, int64_t row0_)
      : x_norm_sq(std::move(norms)), w_norm(w), kappa(kappa_), floor(floor_), row0(row0_) {
    for (int64_t j = 0; j < four_hidden; ++j) {
      filter_f.push_back(static_cast<float>(w[j] * kFilterMargin));
      filter_d.push_back(w[j] * kFilterMargin);
    }
  }
  static constexpr double kFilterMargin = 1.0 + 1.0 / 1024;
};

// Adds the step's near-zero gates of n rows to found: g = h W_hh^T and xp as lstm_pointwise gets
// them (u = g + xp, the same sum), h [n, P] the previous state. A vectorised pass in T over runs of
// 64 gates with the enlarged bounds finds the runs worth the exact test in double (rare).
template <typename T>
void list_near_zero_gates(const T* g, const T* xp, const T* h, int64_t n, int64_t P, int64_t four_hidden, int64_t k,
                          NearZeroGates& found) {
  constexpr int64_t kRun = 64;
  const double* xn = step_ptr<double>(found.x_norm_sq, k);
  const T* filter = nullptr;
  if constexpr (std::is_same_v<T, float>) filter = found.filter_f.data();
  else filter = found.filter_d.data();
  const T floor_t = static_cast<T>(found.floor * NearZeroGates::kFilterMargin);
  const size_t before = found.entries.size();
  for (int64_t r = 0; r < n; ++r) {
    const T* __restrict__ hr = h + r * P;
    double sq[4] = {0, 0, 0, 0};  // four independent sums: a strict-FP reduction does not vectorise
    int64_t p = 0;
    for (; p + 4 <= P; p += 4) {
      for (int lane = 0; lane < 4; ++lane) sq[lane] += static_cast<double>(hr[p + lane]) * hr[p + lane];
    }
    for (; p < P; ++p) sq[0] += static_cast<double>(hr[p]) * hr[p];
    const double h_sq = (sq[0] + sq[1]) + (sq[2] + sq[3]);
    const double row_tol = found.kappa * std::sqrt(xn[r] + h_sq + 2.0);
    const T row_tol_t = static_cast<T>(row_tol * NearZeroGates::kFilterMargin);
    const T* __restrict__ gr = g + r * four_hidden;
    const T* __restrict__ xr = xp + r * four_hidden;
    const int64_t base = (found.row0 + r) * four_hidden;
    for (int64_t j0 = 0; j0 < four_hidden; j0 += kRun) {
      const int64_t j1 = std::min(j0 + kRun, four_hidden);
      int hits = 0;
      for (int64_t j = j0; j < j1; ++j) hits += std::abs(gr[j] + xr[j]) <= row_tol_t * filter[j] + floor_t;
      if (hits == 0) continue;
      for (int64_t j = j0; j < j1; ++j) {
        const T u = gr[j] + xr[j];
        if (std::abs(static_cast<double>(u)) <= row_tol * found.w_norm[j] + found.floor) {
          found.entries.push_back(static_cast<int32_t>(((base + j) << 1) | (u >= T(0) ? 1 : 0)));
        }
      }
    }
  }
  found.counts.push_back(static_cast<int64_t>(found.entries.size() - before));
}

// One row of an LSTM backward step: d_pre (i|f|g|o pre-activation gradients) from the carried dc
// and dm = dL/d(o*c), and dc carried to the previous step. Gates s* are 0/1 when kGates, else the
// pre-activations whose signs they are; the spiking cell's surrogate factor cs multiplies dc when
// kCellScale. One restrict pointer per stream and compile-time switches: the loop vectorises.
template <typename T, bool kGates, bool kCellScale>
inline void lstm_backward_row(const T* __restrict__ si, const T* __restrict__ sf, const T* __restrict__ sg,
                              const T* __restrict__ so, const T* __restrict__ di, const T* __restrict__ df,
                              const T* __restrict__ dg, const T* __restrict__ d_o, const T* __restrict__ dm,
                              const T* __restrict__ c_prev, const T* __restrict__ c_after, const T* __restrict__ cs,
                              T* __restrict__ pi, T* __restrict__ pf, T* __restrict__ pg, T* __restrict__ po,
                              T* __restrict__ dc_carry, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = kGates ? si[j] : fire(si[j]);
    const T f = kGates ? sf[j] : fire(sf[j]);
    const T g = kGates ? sg[j] : fire(sg[j]);
    const T o = kGates ? so[j] : fire(so[j]);
    T dc = dc_carry[j] + dm[j] * o;
    if (kCellScale) dc *= cs[j];
    pi[j] = di[j] * g * dc;
    pf[j] = df[j] * c_prev[j] * dc;
    pg[j] = dg[j] * i * dc;
    po[j] = d_o[j] * c_after[j] * dm[j];
    dc_carry[j] = dc * f;
  }
}

// The built-in surrogates of a layer (kind ids of surrogates.h; kind1 < 0: derivatives given as a
// tensor instead), for the gates i, f, o (1) and g (2).
struct SurrogatePair {
  int64_t kind1;
  double alpha1;
  int64_t kind2;
  double alpha2;
};

// One LSTM backward step's pointwise work on n rows (see lstm_backward_row); gates or u [n, 4H].
// deriv [n, 4H] holds the surrogate derivatives, or is null and they are evaluated here from u
// (row by row into row_deriv [4H]) with the built-in surrogates of pair.
template <typename T, bool kGates, bool kCellScale>
void lstm_backward_pointwise(const T* u, const T* gates, const T* deriv, const T* dm, const T* c_prev,
                             const T* c_after, const T* cell_scale, T* d_pre, T* dc_carry, int64_t n, int64_t H,
                             const SurrogatePair& pair, T* row_deriv) {
  for (int64_t r = 0; r < n; ++r) {
    const T* s = (kGates ? gates : u) + r * 4 * H;
    const T* d = deriv ? deriv + r * 4 * H : row_deriv;
    if (!deriv) {
      const T* ur = u + r * 4 * H;
      spikingrnn::derivative_row<T>(pair.kind1, static_cast<T>(pair.alpha1), ur, row_deriv, 4 * H);
      if (pair.kind2 != pair.kind1 || pair.alpha2 != pair.alpha1) {
        spikingrnn::derivative_row<T>(pair.kind2, static_cast<T>(pair.alpha2), ur + 2 * H, row_deriv + 2 * H, H);
      }
    }
    T* p = d_pre + r * 4 * H;
    lstm_backward_row<T, kGates, kCellScale>(s, s + H, s + 2 * H, s + 3 * H, d, d + H, d + 2 * H, d + 3 * H,
                                             dm + r * H, c_prev + r * H, c_after + r * H,
                                             kCellScale ? cell_scale + r * H : nullptr, p, p + H, p + 2 * H,
                                             p + 3 * H, dc_carry + r * H, H);
  }
}

// Steps [t0, t0 + K) of an LSTM layer. xp [K, B, 4H] = x W_ih^T + b_ih + b_hh; h [B, P], c [B, H]
// running states; y [T, B, P] output; gate_bits [T, words(B*4H)], cell_store ([T, words(B*H)]
// bits when cell_bits, else [T, B, H] floats) and pre_store [T, B, 4H] (pre-activations) are
// filled when given; scratch [B, 4H], m [B, H]; near_zero (when given) collects the near-zero gates.
void lstm_forward_block(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                        Tensor& c, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                        const std::optional<Tensor>& w_hr_t, int64_t cell_mode, double threshold, Tensor& y,
                        const std::optional<Tensor>& gate_bits, const std::optional<Tensor>& cell_store,
                        bool cell_bits, const std::optional<Tensor>& pre_store, Tensor& scratch, Tensor& m,
                        double event_density, NearZeroGates* near_zero) {
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = c.size(1);
  EventScratch events;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward_steps", [&] {
    using T = scalar_t;
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t t = t0 + k, n = rows_at(batch_sizes, t, batch);
      T* gp = scratch.data_ptr<T>();
      hidden_product<T>(h, n, w_hh_t, w_hh_tiles, std::nullopt, gp, event_density, events);
      if (near_zero) list_near_zero_gates<T>(gp, step_ptr<T>(xp, k), h.data_ptr<T>(), n, h.size(1), 4 * hidden, k,
                                             *near_zero);
      T* y_t = step_ptr<T>(y, t);
      // without projection the output m = o * c is h itself: write it to y and h in one pass
      T* m_out = w_hr_t ? m.data_ptr<T>() : y_t;
      T* h_copy = w_hr_t ? nullptr : h.data_ptr<T>();
      const T* x_k = step_ptr<T>(xp, k);
      const T thr = static_cast<T>(threshold);
      T* pre = pre_store ? step_ptr<T>(*pre_store, t) : nullptr;
      T* cp = c.data_ptr<T>();
      if (cell_mode == 0) lstm_pointwise<T, 0>(gp, x_k, cp, m_out, h_copy, pre, n, hidden, thr);
      if (cell_mode == 1) lstm_pointwise<T, 1>(gp, x_k, cp, m_out, h_copy, pre, n, hidden, thr);
      if (cell_mode == 2) lstm_pointwise<T, 2>(gp, x_k, cp, m_out, h_copy, pre, n, hidden, thr);
      if (w_hr_t) {
        const int64_t P = y.size(2);
        gemm_rows<T>(n, m_out, hidden, *w_hr_t, false, y_t, P);
        std::copy(y_t, y_t + n * P, h.data_ptr<T>());
      }
      if (gate_bits) pack_bits<T>(gp, n * 4 * hidden, step_ptr<uint8_t>(*gate_bits, t));
      if (cell_store) {
        if (cell_bits) {
          pack_bits<T>(c.data_ptr<T>(), n * hidden, step_ptr<uint8_t>(*cell_store, t));
        } else {
          std::copy(c.data_ptr<T>(), c.data_ptr<T>() + n * hidden, step_ptr<T>(*cell_store, t));
        }
      }
    }
  });
}

// Steps [t0, t0 + K) of the LSTM backward, last step first. u [K, B, 4H] pre-activations; deriv [K, B, 4H]
// their surrogate derivatives, or none to evaluate them here with the built-in surrogates kind1/alpha1
// (gates i, f, o) and kind2/alpha2 (g) (surrogates.h); gates [K, B, 4H] 0/1 as fired in forward, or none to take them from the sign
// of u (exact when u was kept from forward); cell_scale [K, B, H] (spiking cell) or none; c_prev, c_after
// [K, B, H] cell states before/after each step; dy [K, B, P]; w_hh [4H, P]; w_hr [P, H] or none;
// dh_carry [B, P], dc_carry [B, H] in/out; d_pre [K, B, 4H] out; dh_all [K, B, P] out and dm [B, H]
// scratch when projecting.
void lstm_backward_block(const Tensor& u, const std::optional<Tensor>& deriv, const std::optional<Tensor>& gates,
                         const std::optional<Tensor>& cell_scale, const Tensor& c_prev, const Tensor& c_after,
                         const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes,
                         const Tensor& w_hh, const std::optional<Tensor>& w_hr, Tensor& dh_carry,
                         Tensor& dc_carry, Tensor& d_pre, const std::optional<Tensor>& dh_all,
                         const std::optional<Tensor>& dm_buffer, int64_t kind1, double alpha1, int64_t kind2,
                         double alpha2) {
  const int64_t steps = u.size(0), batch = u.size(1), hidden = u.size(2) / 4, out_size = dh_carry.size(1);
  const SurrogatePair pair{kind1, alpha1, kind2, alpha2};
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "lstm_backward_steps", [&] {
    using T = scalar_t;
    std::vector<T> row_deriv(deriv ? 0 : static_cast<size_t>(4 * hidden));
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
      const T* uk = step_ptr<T>(u, k);
      const T* dk = deriv ? step_ptr<T>(*deriv, k) : nullptr;
      const T* gk = gates ? step_ptr<T>(*gates, k) : nullptr;
      const T* cs = cell_scale ? step_ptr<T>(*cell_scale, k) : nullptr;
      const T* cpk = step_ptr<T>(c_prev, k);
      const T* cak = step_ptr<T>(c_after, k);
      T* dp = step_ptr<T>(d_pre, k);
      T* dc_all = dc_carry.data_ptr<T>();
      if (gk && cs) lstm_backward_pointwise<T, true, true>(uk, gk, dk, dm, cpk, cak, cs, dp, dc_all, n, hidden, pair,
                                                                        row_deriv.data());
      if (gk && !cs) lstm_backward_pointwise<T, true, false>(uk, gk, dk, dm, cpk, cak, cs, dp, dc_all, n, hidden, pair,
                                                                        row_deriv.data());
      if (!gk && cs) lstm_backward_pointwise<T, false, true>(uk, gk, dk, dm, cpk, cak, cs, dp, dc_all, n, hidden, pair,
                                                                        row_deriv.data());
      if (!gk && !cs) lstm_backward_pointwise<T, false, false>(uk, gk, dk, dm, cpk, cak, cs, dp, dc_all, n, hidden, pair,
                                                                        row_deriv.data());
      gemm_rows<T>(n, dp, 4 * hidden, w_hh, false, dh_carry.data_ptr<T>(), out_size);
    }
  });
}

}  // namespace

namespace loops {

// The exported loops: each checks its arguments, then runs its *_block on row blocks in parallel
// (see row_blocks); the arguments are those of the block functions above, for the whole batch.
std::tuple<Tensor, Tensor> lstm_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes,
                                              Tensor& h, Tensor& c, const Tensor& w_hh_t,
                                              const std::optional<Tensor>& w_hh_tiles,
                                              const std::optional<Tensor>& w_hr_t, int64_t cell_mode, double threshold,
                                              Tensor& y, const std::optional<Tensor>& gate_bits,
                                              const std::optional<Tensor>& cell_store, bool cell_bits,
                                              const std::optional<Tensor>& pre_store, Tensor& scratch, Tensor& m,
                                              double event_density, const std::optional<Tensor>& x_norm_sq,
                                              const std::optional<Tensor>& w_norm, double kappa, double floor) {
  Arguments args("lstm_forward_steps");
  const at::ScalarType dtype = args.floating("xp", xp);
  args.tensor("xp", xp, dtype, {kAny, kAny, kAny});
  const int64_t K = xp.size(0), B = xp.size(1);
  args.tensor("c", c, dtype, {B, kAny});
  const int64_t H = c.size(1);
  args.tensor("xp", xp, dtype, {K, B, 4 * H});
  args.optional("w_hr_t", w_hr_t, dtype, {H, kAny}, Strides::kAny);
  const int64_t P = w_hr_t ? w_hr_t->size(1) : H;  // the output size: proj_size, or H
  args.tensor("h", h, dtype, {B, P});
  args.batch_sizes(batch_sizes, t0, K, B);
  args.tensor("w_hh_t", w_hh_t, dtype, {P, 4 * H}, Strides::kAny);
  args.optional("w_hh_tiles", w_hh_tiles, dtype, {column_tiles_of(dtype, 4 * H), P, tile_width_of(dtype)});
  args.range("cell_mode", cell_mode, 0, 2);
  args.tensor("y", y, dtype, {kAny, B, P});
  args.steps("y", y, t0 + K);
  args.optional("gate_bits", gate_bits, at::kByte, {kAny, bit_words(B * 4 * H)});
  args.steps("gate_bits", gate_bits, t0 + K);
  if (cell_bits) {
    args.optional("cell_store", cell_store, at::kByte, {kAny, bit_words(B * H)});
  } else {
    args.optional("cell_store", cell_store, dtype, {kAny, B, H});
  }
  args.steps("cell_store", cell_store, t0 + K);
  args.optional("pre_store", pre_store, dtype, {kAny, B, 4 * H});
  args.steps("pre_store", pre_store, t0 + K);
  args.tensor("scratch", scratch, dtype, {B, 4 * H});
  args.tensor("m", m, dtype, {B, H});
  args.optional("x_norm_sq", x_norm_sq, at::kDouble, {K, B});
  args.optional("w_norm", w_norm, at::kDouble, {4 * H});
  if (x_norm_sq) {
    args.required("w_norm", w_norm, "with x_norm_sq given");
    TORCH_CHECK(B * 4 * H < (int64_t(1) << 30), "lstm_forward_steps: B * 4H = ", B * 4 * H,
                " too large to list gates (int32 entries), given x_norm_sq");
  }

  const int64_t hidden = H, steps = K;
  const std::vector<int64_t> bounds = row_blocks(xp.size(1));
  std::vector<NearZeroGates> found;
  if (x_norm_sq) {
    for (size_t b = 0; b + 1 < bounds.size(); ++b) {
      found.emplace_back(rows_of(*x_norm_sq, 1, bounds[b], bounds[b + 1]), w_norm->data_ptr<double>(), 4 * hidden,
                         kappa, floor, bounds[b]);
    }
  }
  over_blocks(bounds, [&](size_t block, int64_t r0, int64_t r1) {
    Tensor h_b = rows_of(h, 0, r0, r1), c_b = rows_of(c, 0, r0, r1), y_b = rows_of(y, 1, r0, r1);
    Tensor scratch_b = rows_of(scratch, 0, r0, r1), m_b = rows_of(m, 0, r0, r1);
    NearZeroGates* near_zero = found.empty() ? nullptr : &found[block];
    lstm_forward_block(rows_of(xp, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1), h_b, c_b, w_hh_t, w_hh_tiles,
                       w_hr_t, cell_mode, threshold, y_b, bit_rows_of(gate_bits, true, 4 * hidden, r0, r1),
                       bit_rows_of(cell_store, cell_bits, hidden, r0, r1), cell_bits, rows_of(pre_store, 1, r0, r1),
                       scratch_b, m_b, event_density, near_zero);
  });
  // the blocks' lists merged step by step, rows ascending
  int64_t total = 0;
  for (const NearZeroGates& f : found) total += static_cast<int64_t>(f.entries.size());
  Tensor entries = at::empty({total}, at::kInt);
  Tensor counts = at::zeros({found.empty() ? 0 : steps}, at::kLong);
  int32_t* out = entries.data_ptr<int32_t>();
  std::vector<size_t> read(found.size(), 0);
  for (int64_t k = 0; k < counts.numel(); ++k) {
    for (size_t b = 0; b < found.size(); ++b) {
      const int64_t count = found[b].counts[k];
      std::copy(found[b].entries.begin() + read[b], found[b].entries.begin() + read[b] + count, out);
      out += count;
      read[b] += count;
      counts.data_ptr<int64_t>()[k] += count;
    }
  }
  return {entries, counts};
}

// cells [K + 1, B, H]: the cell state before steps t0, ..., t0 + K - 1 and after the last, replayed
// from c_start [B, H] (the state before step t0) and the steps' gates [K, B, 4H] (0/1, or with signs
// pre-activations whose signs they are) with the forward's own update (lstm_cell_update): the
// low-memory backward keeps no per-step cell states. Rows past their length keep their state.
void lstm_cell_scan(const Tensor& gates, bool signs, const Tensor& c_start, int64_t t0,
                    const std::vector<int64_t>& batch_sizes, int64_t cell_mode, double threshold, Tensor& cells) {
  Arguments args("lstm_cell_scan");
  const at::ScalarType dtype = args.floating("gates", gates);
  args.tensor("c_start", c_start, dtype, {kAny, kAny});
  const int64_t B = c_start.size(0), H = c_start.size(1);
  args.tensor("gates", gates, dtype, {kAny, B, 4 * H});
  const int64_t K = gates.size(0);
  args.batch_sizes(batch_sizes, t0, K, B);
  args.range("cell_mode", cell_mode, 0, 2);
  args.tensor("cells", cells, dtype, {K + 1, B, H});

  const int64_t steps = K, batch = B, hidden = H;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_cell_scan", [&] {
    using T = scalar_t;
    const T thr = static_cast<T>(threshold);
    T* out = cells.data_ptr<T>();
    std::copy(c_start.data_ptr<T>(), c_start.data_ptr<T>() + batch * hidden, out);
    for (int64_t k = 0; k < steps; ++k) {
      const int64_t n = rows_at(batch_sizes, t0 + k, batch);
      const T* prev = out + k * batch * hidden;
      T* next = out + (k + 1) * batch * hidden;
      for (int64_t r = 0; r < n; ++r) {
        const T* g = gates.data_ptr<T>() + (k * batch + r) * 4 * hidden;
        const T* cp = prev + r * hidden;
        T* cn = next + r * hidden;
        if (signs) {
          if (cell_mode == 0) replay_cell_row<T, 0, true>(g, cp, cn, hidden, thr);
          if (cell_mode == 1) replay_cell_row<T, 1, true>(g, cp, cn, hidden, thr);
          if (cell_mode == 2) replay_cell_row<T, 2, true>(g, cp, cn, hidden, thr);
        } else {
          if (cell_mode == 0) replay_cell_row<T, 0, false>(g, cp, cn, hidden, thr);
          if (cell_mode == 1) replay_cell_row<T, 1, false>(g, cp, cn, hidden, thr);
          if (cell_mode == 2) replay_cell_row<T, 2, false>(g, cp, cn, hidden, thr);
        }
      }
      std::copy(prev + n * hidden, prev + batch * hidden, next + n * hidden);
    }
  });
}

// Gives the listed pre-activations of u [K, B, F] (steps t0.. of the sequence) the signs of their gates:
// entries int32 (list_near_zero_gates), those of step t0 + k at [offsets[t0 + k] .. offsets[t0 + k + 1]).
// Magnitudes are kept (a 0 that must not fire becomes the smallest normal negative value).
void set_gate_signs(Tensor& u, const Tensor& entries, const Tensor& offsets, int64_t t0) {
  Arguments args("set_gate_signs");
  const at::ScalarType dtype = args.floating("u", u);
  args.tensor("u", u, dtype, {kAny, kAny, kAny});
  args.range("t0", t0, 0, kMaxIndex);
  args.tensor("entries", entries, at::kInt, {kAny});
  args.tensor("offsets", offsets, at::kLong, {kAny});
  const int64_t steps = u.size(0), per_step = u.numel() / std::max<int64_t>(steps, 1);
  TORCH_CHECK(offsets.size(0) >= t0 + steps + 1, "set_gate_signs: offsets must hold at least t0 + K + 1 = ",
              t0 + steps + 1, " values, got ", offsets.size(0));
  const int32_t* e = entries.data_ptr<int32_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  for (int64_t t = t0; t < t0 + steps; ++t) {
    TORCH_CHECK(0 <= off[t] && off[t] <= off[t + 1] && off[t + 1] <= entries.size(0), "set_gate_signs: offsets[",
                t, "] .. offsets[", t + 1, "] must be a range of the ", entries.size(0), " entries, got ", off[t],
                " .. ", off[t + 1]);
  }
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "set_gate_signs", [&] {
    using T = scalar_t;
    for (int64_t k = 0; k < steps; ++k) {
      T* uk = u.data_ptr<T>() + k * per_step;
      for (int64_t i = off[t0 + k]; i < off[t0 + k + 1]; ++i) {
        const int64_t where = e[i] >> 1;
        TORCH_CHECK(where >= 0 && where < per_step, "set_gate_signs: entries[", i, "] = ", e[i], " lists gate ", where,
                    ", outside the ", per_step, " of a step of u");
        const T magnitude = std::abs(uk[where]);
        uk[where] = (e[i] & 1) ? magnitude : -std::max(magnitude, std::numeric_limits<T>::min());
      }
    }
  });
}

void lstm_backward_steps(const Tensor& u, const std::optional<Tensor>& deriv, const std::optional<Tensor>& gates,
                         const std::optional<Tensor>& cell_scale, const Tensor& c_prev, const Tensor& c_after,
                         const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes, const Tensor& w_hh,
                         const std::optional<Tensor>& w_hr, Tensor& dh_carry, Tensor& dc_carry, Tensor& d_pre,
                         const std::optional<Tensor>& dh_all, const std::optional<Tensor>& dm_buffer, int64_t kind1,
                         double alpha1, int64_t kind2, double alpha2) {
  Arguments args("lstm_backward_steps");
  const at::ScalarType dtype = args.floating("u", u);
  args.tensor("u", u, dtype, {kAny, kAny, kAny});
  const int64_t K = u.size(0), B = u.size(1);
  args.tensor("dc_carry", dc_carry, dtype, {B, kAny});
  const int64_t H = dc_carry.size(1);
  args.tensor("u", u, dtype, {K, B, 4 * H});
  args.optional("w_hr", w_hr, dtype, {kAny, H}, Strides::kAny);
  const int64_t P = w_hr ? w_hr->size(0) : H;  // the output size: proj_size, or H
  args.tensor("dh_carry", dh_carry, dtype, {B, P});
  args.optional("deriv", deriv, dtype, {K, B, 4 * H});
  args.optional("gates", gates, dtype, {K, B, 4 * H});
  args.optional("cell_scale", cell_scale, dtype, {K, B, H});
  args.tensor("c_prev", c_prev, dtype, {K, B, H});
  args.tensor("c_after", c_after, dtype, {K, B, H});
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
  args.surrogate_kind("kind1", kind1, !deriv);
  args.surrogate_kind("kind2", kind2, !deriv);

  over_row_blocks(u.size(1), [&](int64_t r0, int64_t r1) {
    Tensor dh_b = rows_of(dh_carry, 0, r0, r1), dc_b = rows_of(dc_carry, 0, r0, r1);
    Tensor d_pre_b = rows_of(d_pre, 1, r0, r1);
    lstm_backward_block(rows_of(u, 1, r0, r1), rows_of(deriv, 1, r0, r1), rows_of(gates, 1, r0, r1),
                        rows_of(cell_scale, 1, r0, r1), rows_of(c_prev, 1, r0, r1), rows_of(c_after, 1, r0, r1),
                        rows_of(dy, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1), w_hh, w_hr, dh_b, dc_b,
                        d_pre_b, rows_of(dh_all, 1, r0, r1), rows_of(dm_buffer, 0, r0, r1), kind1, alpha1, kind2,
                        alpha2);
  });
}

}  // namespace loops
}  // namespace spikingrnn

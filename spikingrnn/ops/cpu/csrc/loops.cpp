// Time loops of the cpu backend, one chunk of steps per call: per step one product with the
// recurrent weights (the event-driven sum of products.h when the state is 0/1 and sparse, else a
// GEMM through ATen/MKL; the forward's last argument event_density is that threshold) and one
// fused pointwise pass. Python (ops/cpu/*.py) computes everything that does not depend on
// the recurrence with large vectorised ops, chunk by chunk, and calls these loops in between.
//
// Conventions: the rows of a step are contiguous and steps lie t.stride(0) apart (the exported loops
// hand their *_block functions row blocks: views of some of the B rows). Per-chunk tensors are
// [K, B, F] and indexed by k = t - t0; whole-sequence tensors ([T, B, F] outputs, [T, words] bit
// rows) by t. batch_sizes[t] (empty: all B rows) is the number of leading rows valid at step t,
// non-increasing; rows past it are neither read nor written, so their state stays put. Running
// states h [B, P], c [B, H] and gradient carries are updated in place. Bit rows pack a step's n*F
// values 8 per byte, little-endian.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <optional>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "products.h"
#include "surrogates.h"

namespace {

using at::Tensor;

// Element pointer of step k of a [K, ...] (or [T, ...]) contiguous tensor, without creating views.
template <typename T>
inline T* step_ptr(const Tensor& t, int64_t k) {
  return t.data_ptr<T>() + k * t.stride(0);
}

// Scratch of the event-driven products, reused across the steps of one call.
struct EventScratch {
  std::vector<int32_t> index;
  std::vector<int64_t> counts;
};

}  // namespace

// The Fortran BLAS GEMMs that torch's own library exports (MKL or OpenBLAS builds); weak, so that
// a torch without them still loads this module and gemm_rows falls back to at::mm.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc) __attribute__((weak));
}

namespace {

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

// Whether gemm_rows may call the BLAS directly (tests switch it off to run the at::mm fallback).
bool blas_allowed = true;

template <typename T>
bool have_blas() {
  if (!blas_allowed) return false;
  if constexpr (std::is_same_v<T, float>) return sgemm_ != nullptr;
  return dgemm_ != nullptr;
}

// c [m, n] = (accumulate ? c : 0) + a [m, k] @ b for row-major a and c (row strides lda, ldc) and
// b [k, n] with unit stride along either dimension (row-major, or the transposed view of a
// row-major [n, k]). One BLAS call with raw pointers: the per-step products of the time loops skip
// ATen's dispatch and the tensor views it needs (several microseconds a step); at::mm without BLAS.
template <typename T>
void gemm_rows(int64_t m, const T* a, int64_t lda, const Tensor& b, bool accumulate, T* c, int64_t ldc) {
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
  Tensor a_view = at::from_blob(const_cast<T*>(a), {m, k}, {lda, 1}, options);
  Tensor c_view = at::from_blob(c, {m, n}, {ldc, 1}, options);
  if (accumulate) {
    at::addmm_out(c_view, c_view, a_view, b);
  } else {
    at::mm_out(c_view, a_view, b);
  }
}

// out [n, N] (contiguous rows) = (bias or 0) + h [n, K] @ w_t [K, N]: the event-driven sum over the
// column tiles packed (pack_column_tiles) when they are given and h is 0/1 with at most
// max_density of it 1, else one GEMM (w_t may be a transposed view).
template <typename T>
void hidden_product(const Tensor& h, int64_t n, const Tensor& w_t, const std::optional<Tensor>& packed,
                    const std::optional<Tensor>& bias, T* o, double max_density, EventScratch& scratch) {
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

}  // namespace

namespace {

// Row blocks [bounds[b], bounds[b + 1]) for running a chunk's time loop on several threads at once:
// batch rows are independent through time, so each thread runs every step of its own rows (its
// products single-threaded inside) without meeting the others once per step, where splitting each
// small per-step product between threads costs more in synchronisation than it saves. Blocks hold
// multiples of 8 rows, so that per-step bit rows split on byte boundaries; one block (the whole
// batch) with one thread or fewer than 16 rows.
std::vector<int64_t> row_blocks(int64_t batch) {
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
std::vector<int64_t> block_sizes(const std::vector<int64_t>& batch_sizes, int64_t r0, int64_t r1) {
  std::vector<int64_t> sizes(batch_sizes.size());
  for (size_t t = 0; t < batch_sizes.size(); ++t) sizes[t] = std::clamp<int64_t>(batch_sizes[t] - r0, 0, r1 - r0);
  return sizes;
}

// Rows [r0, r1) of t along its batch dimension dim (a view).
Tensor rows_of(const Tensor& t, int64_t dim, int64_t r0, int64_t r1) { return t.narrow(dim, r0, r1 - r0); }

std::optional<Tensor> rows_of(const std::optional<Tensor>& t, int64_t dim, int64_t r0, int64_t r1) {
  return t ? std::optional<Tensor>(rows_of(*t, dim, r0, r1)) : std::nullopt;
}

// Rows [r0, r1) of per-step bit rows [T, words(B * per_row)] (r0 * per_row a multiple of 8), or of a
// float [T, B, per_row] store when not bits.
std::optional<Tensor> bit_rows_of(const std::optional<Tensor>& t, bool bits, int64_t per_row, int64_t r0, int64_t r1) {
  if (!t || !bits) return rows_of(t, 1, r0, r1);
  return t->narrow(1, r0 * per_row / 8, ((r1 - r0) * per_row + 7) / 8);
}

}  // namespace

// Steps [t0, t0 + K) of an LSTM layer. xp [K, B, 4H] = x W_ih^T + b_ih + b_hh; h [B, P], c [B, H]
// running states; y [T, B, P] output; gate_bits [T, words(B*4H)], cell_store ([T, words(B*H)]
// bits when cell_bits, else [T, B, H] floats) and pre_store [T, B, 4H] (pre-activations) are
// filled when given; scratch [B, 4H], m [B, H]; near_zero (when given) collects the near-zero gates.
static void lstm_forward_block(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
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
static void lstm_backward_block(const Tensor& u, const std::optional<Tensor>& deriv, const std::optional<Tensor>& gates,
                                const std::optional<Tensor>& cell_scale, const Tensor& c_prev, const Tensor& c_after,
                                const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes,
                                const Tensor& w_hh, const std::optional<Tensor>& w_hr, Tensor& dh_carry,
                                Tensor& dc_carry, Tensor& d_pre, const std::optional<Tensor>& dh_all,
                                const std::optional<Tensor>& dm_buffer, int64_t kind1, double alpha1, int64_t kind2,
                                double alpha2) {
  const int64_t steps = u.size(0), batch = u.size(1), hidden = u.size(2) / 4, out_size = dh_carry.size(1);
  TORCH_CHECK(deriv.has_value() || (kind1 >= 0 && kind2 >= 0),
              "lstm_backward_steps: no derivatives and no surrogate kinds");
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

// Steps [t0, t0 + K) of a GRU layer. xp [K, B, 3H] = x W_ih^T + b_ih; h [B, H] running state;
// b_hh [3H] or none; y [T, B, H] out; gate_bits [T, words(B*3H)] (r|z|n) and pre_store [T, B, 4H]
// (u_r|u_z|u_n|h_n, with h_n = W_hn h + b_hn) when given; scratch [B, 3H].
static void gru_forward_block(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
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
static void gru_backward_block(const Tensor& u, const std::optional<Tensor>& deriv, const std::optional<Tensor>& gates,
                               const Tensor& h_prev, const Tensor& dy, int64_t t0,
                               const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, Tensor& dh_carry,
                               Tensor& d_hidden_pre, Tensor& d_input_pre, int64_t kind1, double alpha1, int64_t kind2,
                               double alpha2) {
  const int64_t steps = u.size(0), batch = u.size(1), hidden = u.size(2) / 4;
  TORCH_CHECK(deriv.has_value() || (kind1 >= 0 && kind2 >= 0),
              "gru_backward_steps: no derivatives and no surrogate kinds");
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

// Steps [t0, t0 + K) of a vanilla RNN layer. xp [K, B, H] = x W_ih^T + b_ih + b_hh; h [B, H] running state;
// y [T, B, H] out (0/1); pre_store [T, B, H] (pre-activations) when given.
static void rnn_forward_block(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
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
static void rnn_backward_block(const Tensor& scale, const Tensor& dy, int64_t t0,
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

// The exported loops: each runs its *_block on row blocks in parallel (see row_blocks); the
// arguments are those of the block functions above, for the whole batch.
std::tuple<Tensor, Tensor> lstm_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes,
                                              Tensor& h, Tensor& c, const Tensor& w_hh_t,
                                              const std::optional<Tensor>& w_hh_tiles,
                                              const std::optional<Tensor>& w_hr_t, int64_t cell_mode, double threshold,
                                              Tensor& y, const std::optional<Tensor>& gate_bits,
                                              const std::optional<Tensor>& cell_store, bool cell_bits,
                                              const std::optional<Tensor>& pre_store, Tensor& scratch, Tensor& m,
                                              double event_density, const std::optional<Tensor>& x_norm_sq,
                                              const std::optional<Tensor>& w_norm, double kappa, double floor) {
  const int64_t hidden = c.size(1), steps = xp.size(0);
  const std::vector<int64_t> bounds = row_blocks(xp.size(1));
  std::vector<NearZeroGates> found;
  if (x_norm_sq) {
    TORCH_CHECK(w_norm && x_norm_sq->scalar_type() == at::kDouble && w_norm->scalar_type() == at::kDouble &&
                    w_norm->is_contiguous() && x_norm_sq->size(0) == steps && w_norm->numel() == 4 * hidden,
                "lstm_forward_steps: x_norm_sq must be float64 [K, B] and w_norm contiguous float64 [4H]");
    TORCH_CHECK(xp.size(1) * 4 * hidden < (int64_t(1) << 30), "lstm_forward_steps: B * 4H too large to list gates");
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
  const int64_t steps = gates.size(0), batch = gates.size(1), hidden = c_start.size(1);
  TORCH_CHECK(gates.is_contiguous() && c_start.is_contiguous() && cells.is_contiguous() &&
                  cells.size(0) == steps + 1 && gates.size(2) == 4 * hidden,
              "lstm_cell_scan: gates [K, B, 4H], c_start [B, H] and cells [K + 1, B, H] must be contiguous");
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
  TORCH_CHECK(u.is_contiguous() && entries.scalar_type() == at::kInt && offsets.scalar_type() == at::kLong &&
                  entries.is_contiguous() && offsets.is_contiguous() && offsets.numel() >= t0 + u.size(0) + 1,
              "set_gate_signs: u must be contiguous, entries int32 and offsets int64 covering the steps");
  const int64_t steps = u.size(0), per_step = u.numel() / std::max<int64_t>(steps, 1);
  const int32_t* e = entries.data_ptr<int32_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "set_gate_signs", [&] {
    using T = scalar_t;
    for (int64_t k = 0; k < steps; ++k) {
      T* uk = u.data_ptr<T>() + k * per_step;
      for (int64_t i = off[t0 + k]; i < off[t0 + k + 1]; ++i) {
        const int64_t where = e[i] >> 1;
        TORCH_CHECK(where < per_step, "set_gate_signs: entry beyond the step");
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
                         const std::optional<Tensor>& dh_all, const std::optional<Tensor>& dm_buffer,
                         int64_t kind1, double alpha1, int64_t kind2, double alpha2) {
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

void gru_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                       const std::optional<Tensor>& b_hh, Tensor& y,
                       const std::optional<Tensor>& gate_bits, const std::optional<Tensor>& pre_store,
                       Tensor& scratch, double event_density) {
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
  over_row_blocks(u.size(1), [&](int64_t r0, int64_t r1) {
    Tensor dh_b = rows_of(dh_carry, 0, r0, r1), hidden_b = rows_of(d_hidden_pre, 1, r0, r1);
    Tensor input_b = rows_of(d_input_pre, 1, r0, r1);
    gru_backward_block(rows_of(u, 1, r0, r1), rows_of(deriv, 1, r0, r1), rows_of(gates, 1, r0, r1),
                       rows_of(h_prev, 1, r0, r1), rows_of(dy, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1),
                       w_hh, dh_b, hidden_b, input_b, kind1, alpha1, kind2, alpha2);
  });
}

void rnn_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles, Tensor& y,
                       const std::optional<Tensor>& pre_store, double event_density) {
  over_row_blocks(xp.size(1), [&](int64_t r0, int64_t r1) {
    Tensor h_b = rows_of(h, 0, r0, r1), y_b = rows_of(y, 1, r0, r1);
    rnn_forward_block(rows_of(xp, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1), h_b, w_hh_t, w_hh_tiles, y_b,
                      rows_of(pre_store, 1, r0, r1), event_density);
  });
}

void rnn_backward_steps(const Tensor& scale, const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes,
                        const Tensor& w_hh, Tensor& dh_carry, Tensor& d_pre) {
  over_row_blocks(scale.size(1), [&](int64_t r0, int64_t r1) {
    Tensor dh_b = rows_of(dh_carry, 0, r0, r1), d_pre_b = rows_of(d_pre, 1, r0, r1);
    rnn_backward_block(rows_of(scale, 1, r0, r1), rows_of(dy, 1, r0, r1), t0, block_sizes(batch_sizes, r0, r1),
                       w_hh, dh_b, d_pre_b);
  });
}

// out [K, count] (0/1 in out's dtype) from bit rows [K, words(count)] (bit i of byte b is value 8b + i):
// each byte is looked up in a 256 x 8 table of values; rows in parallel.
void unpack_bit_rows(const Tensor& bits, Tensor& out) {
  TORCH_CHECK(bits.dim() == 2 && bits.is_contiguous() && bits.scalar_type() == at::kByte && out.is_contiguous() &&
                  out.size(0) == bits.size(0),
              "unpack_bit_rows: bits must be contiguous uint8 [K, words] and out contiguous [K, ...]");
  const int64_t rows = bits.size(0), words = bits.size(1), count = rows ? out.numel() / rows : 0;
  if (rows == 0) return;
  TORCH_CHECK(words == (count + 7) / 8, "unpack_bit_rows: ", words, " bytes per row cannot hold ", count, " values");
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "unpack_bit_rows", [&] {
    using T = scalar_t;
    static const std::vector<T> table = [] {
      std::vector<T> values(256 * 8);
      for (int byte = 0; byte < 256; ++byte) {
        for (int i = 0; i < 8; ++i) values[byte * 8 + i] = static_cast<T>((byte >> i) & 1);
      }
      return values;
    }();
    const uint8_t* src = bits.data_ptr<uint8_t>();
    T* dst = out.data_ptr<T>();
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(count, 1));
    at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* b = src + r * words;
        T* o = dst + r * count;
        const int64_t full = count / 8;
        for (int64_t w = 0; w < full; ++w) std::memcpy(o + 8 * w, table.data() + 8 * b[w], 8 * sizeof(T));
        for (int64_t i = 8 * full; i < count; ++i) o[i] = static_cast<T>((b[full] >> (i - 8 * full)) & 1);
      }
    });
  });
}

// w [N, K] as column tiles [tiles, K, W] for the event-driven products (products.h), or None when w
// holds a NaN or Inf: the products with w then stay GEMMs, which propagate it as the reference does.
std::optional<Tensor> pack_column_tiles(const Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous(), "pack_column_tiles: w must be a contiguous matrix");
  Tensor packed;
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "pack_column_tiles", [&] {
    using T = scalar_t;
    const int64_t N = w.size(0), K = w.size(1);
    packed = at::empty({spikingrnn::column_tiles<T>(N), K, spikingrnn::tile_width<T>()}, w.options());
    finite = spikingrnn::pack_column_tiles<T>(w.data_ptr<T>(), N, K, packed.data_ptr<T>());
  });
  if (!finite) return std::nullopt;
  return packed;
}

// out [M, N] = (bias [N] or 0) + x [M, K] @ w^T as an event-driven sum, with w [N, K] given as its
// column tiles, when x is 0/1 with at most max_density ones; returns false (out untouched)
// otherwise, and the caller runs the GEMM.
bool binary_matmul(const Tensor& x, const Tensor& w_tiles, int64_t N, const std::optional<Tensor>& bias, Tensor& out,
                   double max_density) {
  bool done = false;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "binary_matmul", [&] {
    using T = scalar_t;
    TORCH_CHECK(w_tiles.size(0) == spikingrnn::column_tiles<T>(N) && w_tiles.size(1) == x.size(1),
                "binary_matmul: w_tiles do not match x and N");
    std::vector<int32_t> index;
    std::vector<int64_t> counts;
    done = spikingrnn::binary_matmul<T>(x.data_ptr<T>(), x.size(0), x.size(1), w_tiles.data_ptr<T>(), N,
                                        bias ? bias->data_ptr<T>() : nullptr, out.data_ptr<T>(), max_density, index,
                                        counts);
  });
  return done;
}

// grad_t [F, G] += x [M, F]^T @ d [M, G] as an event-driven sum when x is 0/1 with at most max_density
// ones; returns false (grad_t untouched) otherwise.
bool binary_weight_grad(const Tensor& d, const Tensor& x, Tensor& grad_t, double max_density) {
  bool done = false;
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "binary_weight_grad", [&] {
    using T = scalar_t;
    done = spikingrnn::binary_weight_grad<T>(d.data_ptr<T>(), x.data_ptr<T>(), x.size(0), x.size(1), d.size(1),
                                             grad_t.data_ptr<T>(), max_density);
  });
  return done;
}

// Ask the kernel to back the 2 MiB-aligned interior of a large, not yet touched buffer with huge
// pages (Linux transparent huge pages in "madvise" mode): a whole-sequence buffer is then faulted in
// by a few hundred 2 MiB faults instead of hundreds of thousands of 4 KiB ones, which otherwise cost
// a third of a forward step. A hint only: returns whether it was given.
bool advise_huge_pages(const Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  const uintptr_t start = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t end = start + static_cast<uintptr_t>(t.numel() * t.element_size());
  const uintptr_t first = (start + kHuge - 1) & ~(kHuge - 1), last = end & ~(kHuge - 1);
  if (last <= first) return false;
  return madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE) == 0;
#else
  (void)t;
  return false;
#endif
}

// Allow or forbid the direct BLAS calls of the per-step products; returns whether torch's BLAS
// symbols were found (tests use it to run the at::mm fallback).
bool use_blas(bool allowed) {
  blas_allowed = allowed;
  return sgemm_ != nullptr && dgemm_ != nullptr;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("use_blas", &use_blas);
  m.def("advise_huge_pages", &advise_huge_pages);
  m.def("binary_matmul", &binary_matmul);
  m.def("pack_column_tiles", &pack_column_tiles);
  m.def("unpack_bit_rows", &unpack_bit_rows);
  m.def("binary_weight_grad", &binary_weight_grad);
  m.def("lstm_forward_steps", &lstm_forward_steps);
  m.def("lstm_backward_steps", &lstm_backward_steps);
  m.def("lstm_cell_scan", &lstm_cell_scan);
  m.def("set_gate_signs", &set_gate_signs);
  m.def("gru_forward_steps", &gru_forward_steps);
  m.def("gru_backward_steps", &gru_backward_steps);
  m.def("rnn_forward_steps", &rnn_forward_steps);
  m.def("rnn_backward_steps", &rnn_backward_steps);
}

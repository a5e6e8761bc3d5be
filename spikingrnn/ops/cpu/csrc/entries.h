// The entries of the cpu backend's C++ module (bound in bindings.cpp, keyword names as here; called
// from ops/cpu/*.py), defined in lstm.cpp, gru.cpp, rnn.cpp, sigmoid_lstm.cpp, sigmoid_gru.cpp,
// leaky_rnn.cpp, bits.cpp and products.cpp. Each
// checks all its arguments first (checks.h): a wrong call raises a RuntimeError naming the argument.
//
// Time loops of the cells, one chunk of steps per call: per step one product with the recurrent
// weights (the event-driven sum of products.h when the state is 0/1 and sparse, else a GEMM through
// ATen/MKL; the forward's event_density is that threshold) and one fused pointwise pass. Python
// (ops/cpu/*.py) computes everything that does not depend on the recurrence with large vectorised
// ops, chunk by chunk, and calls these loops in between.
//
// Conventions: float tensors share one dtype (float32 or float64), all live on the CPU and are
// contiguous except the weights of the per-step GEMMs (w_hh_t, w_hr_t, w_hh, w_hr: any strides).
// Each loop runs its rows in blocks on several threads (threading.h), handing its *_block function
// views of some of the B rows: the rows of a step are contiguous and steps lie t.stride(0) apart.
// Per-chunk tensors are [K, B, F] and indexed by k = t - t0; whole-sequence tensors ([T, B, F]
// outputs, [T, words] bit rows) by t. batch_sizes[t] (empty: all B rows) is the number of leading
// rows valid at step t, non-increasing; rows past it are neither read nor written, so their state
// stays put. Running states h [B, P], c [B, H] and gradient carries are updated in place. Bit rows
// pack a step's n*F values 8 per byte, little-endian (bits.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

namespace spikingrnn {

using at::Tensor;

namespace loops {

// lstm.cpp
std::tuple<Tensor, Tensor> lstm_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes,
                                              Tensor& h, Tensor& c, const Tensor& w_hh_t,
                                              const std::optional<Tensor>& w_hh_tiles,
                                              const std::optional<Tensor>& w_hr_t, int64_t cell_mode, double threshold,
                                              Tensor& y, const std::optional<Tensor>& gate_bits,
                                              const std::optional<Tensor>& cell_store, bool cell_bits,
                                              const std::optional<Tensor>& pre_store, Tensor& scratch, Tensor& m,
                                              double event_density, const std::optional<Tensor>& x_norm_sq,
                                              const std::optional<Tensor>& w_norm, double kappa, double floor);
void lstm_backward_steps(const Tensor& u, const std::optional<Tensor>& deriv, const std::optional<Tensor>& gates,
                         const std::optional<Tensor>& cell_scale, const Tensor& c_prev, const Tensor& c_after,
                         const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes, const Tensor& w_hh,
                         const std::optional<Tensor>& w_hr, Tensor& dh_carry, Tensor& dc_carry, Tensor& d_pre,
                         const std::optional<Tensor>& dh_all, const std::optional<Tensor>& dm_buffer, int64_t kind1,
                         double alpha1, int64_t kind2, double alpha2);
void lstm_cell_scan(const Tensor& gates, bool signs, const Tensor& c_start, int64_t t0,
                    const std::vector<int64_t>& batch_sizes, int64_t cell_mode, double threshold, Tensor& cells);
void set_gate_signs(Tensor& u, const Tensor& entries, const Tensor& offsets, int64_t t0);

// gru.cpp
void gru_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                       const std::optional<Tensor>& b_hh, Tensor& y, const std::optional<Tensor>& gate_bits,
                       const std::optional<Tensor>& pre_store, Tensor& scratch, double event_density);
void gru_backward_steps(const Tensor& u, const std::optional<Tensor>& deriv, const std::optional<Tensor>& gates,
                        const Tensor& h_prev, const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes,
                        const Tensor& w_hh, Tensor& dh_carry, Tensor& d_hidden_pre, Tensor& d_input_pre,
                        int64_t kind1, double alpha1, int64_t kind2, double alpha2);

// sigmoid_lstm.cpp (gates="sigmoid")
void sigmoid_lstm_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                                Tensor& c, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                                const std::optional<Tensor>& w_hr_t, double threshold, Tensor& y,
                                const std::optional<Tensor>& gate_store, const std::optional<Tensor>& cell_store,
                                Tensor& scratch, Tensor& m, double event_density);
void sigmoid_lstm_backward_steps(const Tensor& gates, const Tensor& c_prev, const Tensor& c_after,
                                 const std::optional<Tensor>& spike_deriv, const Tensor& dy, int64_t t0,
                                 const std::vector<int64_t>& batch_sizes, const Tensor& w_hh,
                                 const std::optional<Tensor>& w_hr, Tensor& dh_carry, Tensor& dc_carry,
                                 Tensor& d_pre, const std::optional<Tensor>& dh_all,
                                 const std::optional<Tensor>& dm_buffer, double threshold, int64_t kind,
                                 double alpha);

// sigmoid_gru.cpp (gates="sigmoid")
void sigmoid_gru_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                               Tensor& s, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles,
                               const std::optional<Tensor>& b_hh, double threshold, Tensor& y,
                               const std::optional<Tensor>& gate_store, const std::optional<Tensor>& state_store,
                               Tensor& scratch, double event_density);
void sigmoid_gru_backward_steps(const Tensor& gates, const Tensor& s_prev, const Tensor& s_after,
                                const std::optional<Tensor>& spike_deriv, const Tensor& dy, int64_t t0,
                                const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, Tensor& dh_carry,
                                Tensor& ds_carry, Tensor& d_hidden_pre, Tensor& d_input_pre, double threshold,
                                int64_t kind, double alpha);

// leaky_rnn.cpp (leak=β)
void leaky_rnn_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                             Tensor& v, const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles, double leak,
                             double threshold, Tensor& y, const std::optional<Tensor>& state_store, Tensor& scratch,
                             double event_density);
void leaky_rnn_backward_steps(const Tensor& v_after, const std::optional<Tensor>& spike_deriv, const Tensor& dy,
                              int64_t t0, const std::vector<int64_t>& batch_sizes, const Tensor& w_hh, double leak,
                              Tensor& dh_carry, Tensor& dv_carry, Tensor& d_pre, double threshold, int64_t kind,
                              double alpha);

// rnn.cpp
void rnn_forward_steps(const Tensor& xp, int64_t t0, const std::vector<int64_t>& batch_sizes, Tensor& h,
                       const Tensor& w_hh_t, const std::optional<Tensor>& w_hh_tiles, Tensor& y,
                       const std::optional<Tensor>& pre_store, double event_density);
void rnn_backward_steps(const Tensor& scale, const Tensor& dy, int64_t t0, const std::vector<int64_t>& batch_sizes,
                        const Tensor& w_hh, Tensor& dh_carry, Tensor& d_pre);

// bits.cpp
void unpack_bit_rows(const Tensor& bits, Tensor& out);
bool advise_huge_pages(const Tensor& t);

// products.cpp (the event-driven products of products.h on whole tensors)
std::optional<Tensor> pack_column_tiles(const Tensor& w);
bool binary_matmul(const Tensor& x, const Tensor& w_tiles, int64_t N, const std::optional<Tensor>& bias, Tensor& out,
                   double max_density);
bool binary_weight_grad(const Tensor& d, const Tensor& x, Tensor& grad_t, double max_density);

}  // namespace loops

// and use_blas(allowed) of blas.h

}  // namespace spikingrnn

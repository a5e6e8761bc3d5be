// The event-driven products of products.h on whole tensors: the weights packed as column tiles, the
// input projections of 0/1 inputs (binary_matmul) and the weight gradients with 0/1 inputs.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "checks.h"
#include "entries.h"
#include "products.h"

namespace spikingrnn {
namespace loops {

// w [N, K] as column tiles [tiles, K, W] for the event-driven products (products.h), or None when w
// holds a NaN or Inf: the products with w then stay GEMMs, which propagate it as the reference does.
std::optional<Tensor> pack_column_tiles(const Tensor& w) {
  Arguments args("pack_column_tiles");
  args.tensor("w", w, args.floating("w", w), {kAny, kAny});
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
  Arguments args("binary_matmul");
  const at::ScalarType dtype = args.floating("x", x);
  args.tensor("x", x, dtype, {kAny, kAny});
  const int64_t M = x.size(0), K = x.size(1);
  args.range("N", N, 0, kMaxIndex);
  args.tensor("w_tiles", w_tiles, dtype, {column_tiles_of(dtype, N), K, tile_width_of(dtype)});
  args.optional("bias", bias, dtype, {N});
  args.tensor("out", out, dtype, {M, N});

  bool done = false;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "binary_matmul", [&] {
    using T = scalar_t;
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
  Arguments args("binary_weight_grad");
  const at::ScalarType dtype = args.floating("d", d);
  args.tensor("d", d, dtype, {kAny, kAny});
  const int64_t M = d.size(0), G = d.size(1);
  args.tensor("x", x, dtype, {M, kAny});
  args.tensor("grad_t", grad_t, dtype, {x.size(1), G});

  bool done = false;
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "binary_weight_grad", [&] {
    using T = scalar_t;
    done = spikingrnn::binary_weight_grad<T>(d.data_ptr<T>(), x.data_ptr<T>(), x.size(0), x.size(1), d.size(1),
                                             grad_t.data_ptr<T>(), max_density);
  });
  return done;
}

}  // namespace loops
}  // namespace spikingrnn

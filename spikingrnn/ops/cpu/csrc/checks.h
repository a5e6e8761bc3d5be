// Argument checks of the exported entries (entries.h), one line per argument: a wrong call raises a
// RuntimeError (TORCH_CHECK) naming the entry, the argument, what was expected and what was given,
// before any loop reads or writes through a raw pointer. Only metadata is read (dtype, device,
// sizes, strides): O(arguments) a call, plus O(K) for a chunk's K values of batch_sizes and offsets.
//
//   Arguments args("rnn_forward_steps");
//   const at::ScalarType dtype = args.floating("xp", xp);    // float32 or float64: every float tensor's
//   args.tensor("h", h, dtype, {B, H});                      // CPU, dtype, shape, contiguous
//   args.optional("pre_store", pre_store, dtype, {kAny, B, H});  // None, or as tensor()
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "products.h"
#include "surrogates.h"

namespace spikingrnn {

constexpr int64_t kAny = -1;  // a size that is not checked (the steps of a whole-sequence tensor, ...)
constexpr int64_t kMaxIndex = int64_t(1) << 62;  // t0, N: far from overflowing t0 + K and the like

// Whether the loops may take a tensor with any strides (the per-step GEMMs: gemm_rows) or need it contiguous.
enum class Strides { kContiguous, kAny };

inline const char* dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kByte: return "uint8";
    case at::kChar: return "int8";
    case at::kShort: return "int16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kBool: return "bool";
    default: return c10::toString(dtype);
  }
}

// "[3, *, 16]" (kAny as *).
inline std::string shape_text(std::initializer_list<int64_t> sizes) {
  std::string text = "[";
  for (const int64_t* s = sizes.begin(); s != sizes.end(); ++s) {
    text += (s == sizes.begin() ? "" : ", ") + (*s == kAny ? std::string("*") : std::to_string(*s));
  }
  return text + "]";
}

// Column tiles [tiles, K, W] of an event-driven product's weights w [N, K] in dtype (pack_column_tiles).
inline int64_t column_tiles_of(at::ScalarType dtype, int64_t N) {
  return dtype == at::kFloat ? column_tiles<float>(N) : column_tiles<double>(N);
}
inline int64_t tile_width_of(at::ScalarType dtype) {
  return dtype == at::kFloat ? tile_width<float>() : tile_width<double>();
}

class Arguments {
 public:
  explicit Arguments(const char* entry) : entry_(entry) {}

  // The dtype of t, float32 or float64: the one every float tensor of the entry must share.
  at::ScalarType floating(const char* name, const at::Tensor& t) {
    TORCH_CHECK(t.defined(), entry_, ": ", name, " must be a tensor, got an undefined one");
    const at::ScalarType dtype = t.scalar_type();
    TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, entry_, ": ", name,
                " must be float32 or float64, got ", dtype_name(dtype));
    float_name_ = name;
    float_dtype_ = dtype;
    return dtype;
  }

  // t: a CPU tensor of dtype with sizes (kAny: any size), contiguous unless strides is kAny.
  void tensor(const char* name, const at::Tensor& t, at::ScalarType dtype, std::initializer_list<int64_t> sizes,
              Strides strides = Strides::kContiguous) const {
    check(name, t, dtype, sizes, strides, "", true);
  }

  // t: None, or a tensor as tensor() wants it.
  void optional(const char* name, const std::optional<at::Tensor>& t, at::ScalarType dtype,
                std::initializer_list<int64_t> sizes, Strides strides = Strides::kContiguous) const {
    if (t) check(name, *t, dtype, sizes, strides, " (None or a tensor)", true);
  }

  // t given (not None) because of why, e.g. "with w_hr given".
  void required(const char* name, const std::optional<at::Tensor>& t, const char* why) const {
    TORCH_CHECK(t.has_value(), entry_, ": ", name, " must be a tensor ", why, ", got None");
  }

  // A tensor (or an optional one) holding a whole sequence's steps [T, ...]: T >= needed (t0 + K).
  void steps(const char* name, const at::Tensor& t, int64_t needed) const {
    TORCH_CHECK(t.size(0) >= needed, entry_, ": ", name, " must hold at least t0 + K = ", needed,
                " steps along dimension 0, got ", t.size(0));
  }
  void steps(const char* name, const std::optional<at::Tensor>& t, int64_t needed) const {
    if (t) steps(name, *t, needed);
  }

  // low <= value <= high.
  void range(const char* name, int64_t value, int64_t low, int64_t high) const {
    TORCH_CHECK(low <= value && value <= high, entry_, ": ", name, " must be in [", low, ", ", high, "], got ", value);
  }

  // t: a CPU tensor of dtype, contiguous, with rows along dimension 0 and any further dimensions.
  void rows(const char* name, const at::Tensor& t, at::ScalarType dtype, int64_t rows) const {
    check(name, t, dtype, {}, Strides::kContiguous, "", false);
    TORCH_CHECK(t.dim() >= 1 && t.size(0) == rows, entry_, ": ", name, " must have shape [", rows, ", ...], got ",
                t.sizes());
  }

  // t: contiguous CPU memory, of any dtype and shape.
  void memory(const char* name, const at::Tensor& t) const {
    TORCH_CHECK(t.defined(), entry_, ": ", name, " must be a tensor, got an undefined one");
    TORCH_CHECK(t.device().is_cpu(), entry_, ": ", name, " must be on the CPU, got a tensor on ", t.device());
    TORCH_CHECK(t.is_contiguous(), entry_, ": ", name, " must be contiguous, got strides ", t.strides(), " for shape ",
                t.sizes());
  }

  // A surrogate id of surrogates.h (derivative_row): in [0, kSurrogateKinds) when needed (the
  // argument named `derivatives` is None), else also -1 (none).
  void surrogate_kind(const char* name, int64_t kind, bool needed, const char* derivatives = "deriv") const {
    TORCH_CHECK((needed ? 0 : -1) <= kind && kind < kSurrogateKinds, entry_, ": ", name,
                " must be a surrogate id of surrogates.h in [0, ", kSurrogateKinds - 1, "]",
                needed ? " (" : " or -1", needed ? derivatives : "",
                needed ? " is None: the loop evaluates the derivatives)" : "", ", got ", kind);
  }

  // t0 >= 0 and batch_sizes empty (every row valid) or holding steps t0 .. t0 + K - 1, each at most B.
  void batch_sizes(const std::vector<int64_t>& batch_sizes, int64_t t0, int64_t K, int64_t B) const {
    range("t0", t0, 0, kMaxIndex);
    if (batch_sizes.empty()) return;
    TORCH_CHECK(static_cast<int64_t>(batch_sizes.size()) >= t0 + K, entry_,
                ": batch_sizes must be empty or hold steps up to t0 + K = ", t0 + K, ", got ", batch_sizes.size(),
                " values");
    for (int64_t t = t0; t < t0 + K; ++t) {
      TORCH_CHECK(batch_sizes[t] >= 0 && batch_sizes[t] <= B, entry_, ": batch_sizes[", t,
                  "] must be in [0, B = ", B, "], got ", batch_sizes[t]);
    }
  }

 private:
  void check(const char* name, const at::Tensor& t, at::ScalarType dtype, std::initializer_list<int64_t> sizes,
             Strides strides, const char* kind, bool shape) const {
    TORCH_CHECK(t.defined(), entry_, ": ", name, kind, " must be a tensor, got an undefined one");
    TORCH_CHECK(t.device().is_cpu(), entry_, ": ", name, kind, " must be on the CPU, got a tensor on ", t.device());
    const bool shared = float_name_ != nullptr && dtype == float_dtype_;
    TORCH_CHECK(t.scalar_type() == dtype, entry_, ": ", name, kind, " must be ", dtype_name(dtype),
                shared ? " (" : "", shared ? float_name_ : "", shared ? " is " : "", shared ? dtype_name(dtype) : "",
                shared ? ")" : "", ", got ", dtype_name(t.scalar_type()));
    bool fits = !shape || t.dim() == static_cast<int64_t>(sizes.size());
    for (size_t d = 0; shape && fits && d < sizes.size(); ++d) {
      const int64_t expected = sizes.begin()[d];
      fits = expected == kAny || t.size(static_cast<int64_t>(d)) == expected;
    }
    TORCH_CHECK(fits, entry_, ": ", name, kind, " must have shape ", shape_text(sizes), ", got ", t.sizes());
    TORCH_CHECK(strides == Strides::kAny || t.is_contiguous(), entry_, ": ", name, kind,
                " must be contiguous (the loops index it by raw pointer), got strides ", t.strides(), " for shape ",
                t.sizes());
  }

  const char* entry_;
  const char* float_name_ = nullptr;  // the argument that set the entry's float dtype
  at::ScalarType float_dtype_ = at::kFloat;
};

}  // namespace spikingrnn

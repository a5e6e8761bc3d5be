// Surrogate derivatives of the built-in surrogates (spikingrnn/surrogate.py), evaluated inside the
// backward loops so that no [K, B, 4H] derivative tensor is built. Same formulas, same order of
// operations; exp is a branch-free polynomial (Cody-Waite range reduction, Taylor series to below
// half an ulp) that the compiler vectorises, within a few ulp of the library exp.
//
// Kind ids are the registry spikingrnn.surrogate.KERNEL_IDS (tests/test_surrogate_registry.py checks them):
// Erf 0, Sigmoid 1, ATan 2, PiecewiseQuadratic 3, PiecewiseExp 4, SoftSign 5, SuperSpike 6, Rect 7.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace spikingrnn {

// The number of kind ids (0 .. kSurrogateKinds - 1): the exported loops refuse any other (checks.h).
constexpr int64_t kSurrogateKinds = 8;

// 1 / d! (d >= 0) in double, rounded once to the target type by the caller; constant-folded.
constexpr double inverse_factorial(int d) {
  double factorial = 1.0;
  for (int k = 2; k <= d; ++k) factorial *= k;
  return 1.0 / factorial;
}

// exp(x); results below the smallest normal number are flushed to 0, NaN stays NaN.
template <typename T>
inline T exp_poly(T x) {
  const T input = x;
  const bool nan = x != x;
  x = nan ? T(0) : x;  // no float-to-int conversion of NaN below
  constexpr bool kFloat = std::is_same<T, float>::value;
  constexpr T kLow = kFloat ? T(-87.3) : T(-708.3);
  constexpr T kHigh = kFloat ? T(88.7) : T(709.7);
  constexpr T kLog2e = T(1.4426950408889634074);
  constexpr T kLn2Hi = kFloat ? T(0.693359375) : T(0.6931471803691238164901733398437500);
  constexpr T kLn2Lo = kFloat ? T(-2.12194440e-4) : T(1.9082149292705877000220273e-10);
  const bool underflow = x < kLow;
  x = x < kLow ? kLow : (x > kHigh ? kHigh : x);
  const T k = std::nearbyint(x * kLog2e);
  const T r = (x - k * kLn2Hi) - k * kLn2Lo;  // |r| <= ln2 / 2
  // Taylor series to degree 7 (float) / 13 (double) in Horner form, one multiply-add per degree with
  // the coefficients 1/d!; the remainder is below half an ulp for |r| <= ln2 / 2 (measured against the
  // library exp on [-80, 80]: within 1 ulp)
  constexpr int kDegree = kFloat ? 7 : 13;
  T p = T(inverse_factorial(kDegree));
#pragma GCC unroll 16
  for (int d = kDegree - 1; d >= 0; --d) p = p * r + T(inverse_factorial(d));
  // 2^k from its exponent bits (k is a normal exponent after the clamp)
  T scale;
  if (kFloat) {
    const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
    std::memcpy(&scale, &bits, sizeof(T));
  } else {
    const int64_t bits = (static_cast<int64_t>(k) + 1023) << 52;
    std::memcpy(&scale, &bits, sizeof(T));
  }
  return nan ? input : (underflow ? T(0) : p * scale);
}

// out[0:n] = derivative_kind(u[0:n], alpha). One switch per row, a branch-free loop per kind.
template <typename T>
void derivative_row(int64_t kind, T alpha, const T* __restrict__ u, T* __restrict__ out, int64_t n) {
  switch (kind) {
    case 0: {  // Erf: alpha/sqrt(pi) * exp(-(alpha x)^2)
      const T c = alpha / T(1.7724538509055160273);
      for (int64_t j = 0; j < n; ++j) {
        const T ax = alpha * u[j];
        out[j] = exp_poly<T>(-(ax * ax)) * c;
      }
      break;
    }
    case 1:  // Sigmoid: s (1 - s) alpha, s = sigmoid(alpha x)
      for (int64_t j = 0; j < n; ++j) {
        const T s = T(1) / (T(1) + exp_poly<T>(-(alpha * u[j])));
        out[j] = s * (T(1) - s) * alpha;
      }
      break;
    case 2: {  // ATan: (alpha/2) / (1 + (pi/2 alpha x)^2)
      const T c = T(1.5707963267948966192) * alpha;
      for (int64_t j = 0; j < n; ++j) {
        const T v = c * u[j];
        out[j] = (alpha / T(2)) / (v * v + T(1));
      }
      break;
    }
    case 3:  // PiecewiseQuadratic: max(alpha - alpha^2 |x|, 0)
      for (int64_t j = 0; j < n; ++j) {
        const T d = alpha - alpha * alpha * std::abs(u[j]);
        out[j] = d > T(0) ? d : T(0);
      }
      break;
    case 4:  // PiecewiseExp: (alpha/2) exp(-alpha |x|)
      for (int64_t j = 0; j < n; ++j) out[j] = (alpha / T(2)) * exp_poly<T>(-alpha * std::abs(u[j]));
      break;
    case 5:  // SoftSign: 1 / (2 alpha (1/alpha + |x|)^2)
      for (int64_t j = 0; j < n; ++j) {
        const T v = T(1) / alpha + std::abs(u[j]);
        out[j] = T(1) / (T(2) * alpha * (v * v));
      }
      break;
    case 6:  // SuperSpike: alpha / (1 + |x|)^2
      for (int64_t j = 0; j < n; ++j) {
        const T v = T(1) + std::abs(u[j]);
        out[j] = alpha / (v * v);
      }
      break;
    default:  // Rect: alpha * [|x| < 1/(2 alpha)]
      for (int64_t j = 0; j < n; ++j) out[j] = std::abs(u[j]) < T(0.5) / alpha ? alpha : T(0);
      break;
  }
}

// The surrogate derivative of the spikes Θ(state - θ) of one row of a cell with an analog state (the
// sigmoid-form GRU's s, the leaky RNN's v), for its backward loop: the row of derivatives given (a
// user-defined surrogate's, computed in PyTorch), or the built-in surrogate kind evaluated here at
// state - θ into a scratch row reused from row to row.
template <typename T>
class SpikeDerivativeRow {
 public:
  SpikeDerivativeRow(int64_t kind, double alpha, double threshold, int64_t hidden)
      : kind_(kind), alpha_(static_cast<T>(alpha)), threshold_(static_cast<T>(threshold)), hidden_(hidden),
        scratch_(2 * hidden) {}

  // given [H] (or null) and state [H] of one row -> the derivative row [H]
  const T* operator()(const T* given, const T* __restrict__ state) {
    if (given) return given;
    T* __restrict__ shifted = scratch_.data();
    T* derivative = shifted + hidden_;
    for (int64_t j = 0; j < hidden_; ++j) shifted[j] = state[j] - threshold_;
    derivative_row<T>(kind_, alpha_, shifted, derivative, hidden_);
    return derivative;
  }

 private:
  int64_t kind_;
  T alpha_, threshold_;
  int64_t hidden_;
  std::vector<T> scratch_;
};

}  // namespace spikingrnn

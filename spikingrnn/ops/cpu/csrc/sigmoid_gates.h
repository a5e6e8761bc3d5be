// The sigmoid form's gate functions (gates="sigmoid", spikingrnn/functional/cells.py), shared by the
// sigmoid-form LSTM and GRU loops: sigmoid and tanh through exp_poly (surrogates.h), so that a row's
// pointwise pass vectorises instead of calling the library's scalar exp/tanh per value. Within a few
// ulp of 1 of torch.sigmoid/torch.tanh in absolute terms.
#pragma once

#include "surrogates.h"

namespace spikingrnn {

template <typename T>
inline T sigmoid_gate(T u) {
  return T(1) / (T(1) + exp_poly<T>(-u));
}

// tanh(u) = 2 sigmoid(2u) - 1
template <typename T>
inline T tanh_gate(T u) {
  return T(2) / (T(1) + exp_poly<T>(T(-2) * u)) - T(1);
}

}  // namespace spikingrnn

// Bit rows: a step's n values (0 or not) packed 8 per byte, little-endian (bit i of byte b is value
// 8b + i), ceil(n / 8) bytes a row (ops/cpu/storage.py keeps the same layout).
#pragma once

#include <cstdint>

namespace spikingrnn {

// Bytes of a bit row of count values.
inline int64_t bit_words(int64_t count) { return (count + 7) / 8; }

// out [bit_words(count)] = values [count] != 0 as bits.
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

}  // namespace spikingrnn

// Bit rows (bits.h) unpacked to 0/1 floats, and the huge-page advice for large step buffers.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "bits.h"
#include "checks.h"
#include "entries.h"

namespace spikingrnn {
namespace loops {

// out [K, count] (0/1 in out's dtype) from bit rows [K, words(count)] (bit i of byte b is value 8b + i):
// each byte is looked up in a 256 x 8 table of values; rows in parallel.
void unpack_bit_rows(const Tensor& bits, Tensor& out) {
  Arguments args("unpack_bit_rows");
  args.tensor("bits", bits, at::kByte, {kAny, kAny});
  args.rows("out", out, args.floating("out", out), bits.size(0));
  const int64_t rows = bits.size(0), words = bits.size(1), count = rows ? out.numel() / rows : 0;
  if (rows == 0) return;
  TORCH_CHECK(words == bit_words(count), "unpack_bit_rows: bits' ", words, " bytes per row cannot hold out's ", count,
              " values per row (", bit_words(count), " bytes)");
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

// Ask the kernel to back the 2 MiB-aligned interior of a large, not yet touched buffer with huge
// pages (Linux transparent huge pages in "madvise" mode): a whole-sequence buffer is then faulted in
// by a few hundred 2 MiB faults instead of hundreds of thousands of 4 KiB ones, which otherwise cost
// a third of a forward step. A hint only: returns whether it was given.
bool advise_huge_pages(const Tensor& t) {
  Arguments("advise_huge_pages").memory("t", t);
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

}  // namespace loops
}  // namespace spikingrnn

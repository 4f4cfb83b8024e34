// Row-range parallelism for the RWKV forward over sutra::parallel_for, with a
// per-model thread cap (the pool itself is process-wide).
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/thread_pool.h"

namespace sutra::rwkv {

// Calls fn(begin, end) over [0, n) in pieces that are multiples of `align`.
// Inline when threads == 1 or the total work (n * cost) is under ~64k operations.
template <typename Fn>
void parallel_rows(int64_t n, int64_t align, double cost, int threads, Fn&& fn) {
  const int pool = num_threads();
  const int nt = threads <= 0 ? pool : std::min(threads, pool);
  if (nt <= 1 || static_cast<double>(n) * cost < 65536.0 || n <= align) {
    fn(int64_t{0}, n);
    return;
  }
  const int64_t blocks = (n + align - 1) / align;
  // Capped below the pool size: exactly nt chunks; otherwise ~4 per thread.
  const std::size_t grain = nt < pool ? static_cast<std::size_t>((blocks + nt - 1) / nt) : 1;
  parallel_for(static_cast<std::size_t>(blocks), grain, [&](std::size_t b0, std::size_t b1) {
    fn(static_cast<int64_t>(b0) * align, std::min<int64_t>(n, static_cast<int64_t>(b1) * align));
  });
}

}  // namespace sutra::rwkv

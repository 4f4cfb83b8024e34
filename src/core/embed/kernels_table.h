// The per-ISA function table behind embed/kernels.h.
#pragma once
#include <cstdint>

#include "common/isa_dispatch.h"

namespace sutra::embed {

// (hidden, mask, first row, end row, T, H, out, scratch of T indices)
template <typename M>
using PoolFn = void (*)(const float*, const M*, int64_t, int64_t, int64_t, int64_t, float*,
                        int64_t*) noexcept;

struct KernelTable {
  PoolFn<int64_t> mean_pool_i64;
  PoolFn<int32_t> mean_pool_i32;
  PoolFn<int64_t> cls_pool_i64;
  PoolFn<int32_t> cls_pool_i32;
  PoolFn<int64_t> max_pool_i64;
  PoolFn<int32_t> max_pool_i32;
  void (*l2_normalize)(const float*, int64_t, int64_t, int64_t, float, float*) noexcept;
  void (*matryoshka)(const float*, int64_t, int64_t, int64_t, int64_t, bool, float*) noexcept;
};

}  // namespace sutra::embed

SUTRA_ISA_DECLARE(sutra::embed, sutra::embed::KernelTable)

// Entry points: validate, then split rows over the pool and dispatch by ISA.
#include "embed/kernels.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "embed/kernels_table.h"

namespace sutra::embed {
namespace {

const KernelTable& table() { return SUTRA_ISA_SELECT(sutra::embed); }

// Rows per chunk so that each chunk has at least ~32k floats of work.
std::size_t grain_rows(int64_t floats_per_row) {
  constexpr int64_t kMinWork = 1 << 15;
  return static_cast<std::size_t>(floats_per_row >= kMinWork ? 1 : kMinWork / std::max<int64_t>(floats_per_row, 1));
}

void check_dims(int64_t B, int64_t T, int64_t H) {
  if (B < 0 || T < 0 || H < 0) throw std::invalid_argument("array dimensions must be >= 0");
}

template <typename M>
void check_mask_impl(const M* mask, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (mask[i] != 0 && mask[i] != 1) {
      throw std::invalid_argument("attention mask must hold only 0 and 1; found " +
                                  std::to_string(mask[i]) + " at flat index " + std::to_string(i));
    }
  }
}

template <typename M>
void run_pool(PoolFn<M> fn, const float* hidden, const M* mask, int64_t B, int64_t T, int64_t H,
              float* out) {
  check_dims(B, T, H);
  parallel_for(static_cast<std::size_t>(B), grain_rows(T * H), [&](std::size_t b0, std::size_t b1) {
    std::vector<int64_t> scratch(static_cast<std::size_t>(T));  // kept token indices of a row
    fn(hidden, mask, static_cast<int64_t>(b0), static_cast<int64_t>(b1), T, H, out, scratch.data());
  });
}

}  // namespace

void check_mask(const int64_t* mask, int64_t n) { check_mask_impl(mask, n); }
void check_mask(const int32_t* mask, int64_t n) { check_mask_impl(mask, n); }

void mean_pool(const float* h, const int64_t* m, int64_t B, int64_t T, int64_t H, float* out) {
  run_pool(table().mean_pool_i64, h, m, B, T, H, out);
}
void mean_pool(const float* h, const int32_t* m, int64_t B, int64_t T, int64_t H, float* out) {
  run_pool(table().mean_pool_i32, h, m, B, T, H, out);
}
void cls_pool(const float* h, const int64_t* m, int64_t B, int64_t T, int64_t H, float* out) {
  run_pool(table().cls_pool_i64, h, m, B, T, H, out);
}
void cls_pool(const float* h, const int32_t* m, int64_t B, int64_t T, int64_t H, float* out) {
  run_pool(table().cls_pool_i32, h, m, B, T, H, out);
}
void max_pool(const float* h, const int64_t* m, int64_t B, int64_t T, int64_t H, float* out) {
  run_pool(table().max_pool_i64, h, m, B, T, H, out);
}
void max_pool(const float* h, const int32_t* m, int64_t B, int64_t T, int64_t H, float* out) {
  run_pool(table().max_pool_i32, h, m, B, T, H, out);
}

void l2_normalize(const float* x, int64_t N, int64_t D, float eps, float* out) {
  check_dims(N, D, 0);
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    throw std::invalid_argument("eps must be a finite number >= 0, got " + std::to_string(eps));
  const auto fn = table().l2_normalize;
  parallel_for(static_cast<std::size_t>(N), grain_rows(D), [&](std::size_t n0, std::size_t n1) {
    fn(x, static_cast<int64_t>(n0), static_cast<int64_t>(n1), D, eps, out);
  });
}

void matryoshka(const float* x, int64_t N, int64_t D, int64_t dim, bool layer_norm, float* out) {
  check_dims(N, D, 0);
  if (dim < 1 || dim > D)
    throw std::invalid_argument("dimensions must be between 1 and " + std::to_string(D) +
                                " (the input width), got " + std::to_string(dim));
  const auto fn = table().matryoshka;
  parallel_for(static_cast<std::size_t>(N), grain_rows(D), [&](std::size_t n0, std::size_t n1) {
    fn(x, static_cast<int64_t>(n0), static_cast<int64_t>(n1), D, dim, layer_norm, out);
  });
}

}  // namespace sutra::embed

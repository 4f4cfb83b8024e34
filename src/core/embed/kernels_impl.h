// Kernel bodies, compiled once per ISA level (see src/core/CMakeLists.txt).
// Plain loops written for the auto-vectoriser: the inner loops run over the
// contiguous hidden dimension and hold no branches; `omp simd` (with
// -fopenmp-simd, no OpenMP runtime) allows the vectorised reductions.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#ifndef SUTRA_ISA_NS
#error "compile kernels_impl.h through an *_isa.cpp file"
#endif

namespace sutra::embed::SUTRA_ISA_NS {

template <typename M>
void mean_pool_rows(const float* hidden, const M* mask, int64_t b0, int64_t b1, int64_t T,
                    int64_t H, float* out) noexcept {
  for (int64_t b = b0; b < b1; ++b) {
    float* o = out + b * H;
    std::fill(o, o + H, 0.0f);
    int64_t count = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (mask[b * T + t] == 0) continue;  // skip padding: its values never leak in
      const float* h = hidden + (b * T + t) * H;
#pragma omp simd
      for (int64_t i = 0; i < H; ++i) o[i] += h[i];
      ++count;
    }
    const float denom = static_cast<float>(count > 0 ? count : 1);
#pragma omp simd
    for (int64_t i = 0; i < H; ++i) o[i] /= denom;
  }
}

template <typename M>
void cls_pool_rows(const float* hidden, const M* mask, int64_t b0, int64_t b1, int64_t T,
                   int64_t H, float* out) noexcept {
  for (int64_t b = b0; b < b1; ++b) {
    float* o = out + b * H;
    int64_t t = 0;
    while (t < T && mask[b * T + t] == 0) ++t;
    if (t == T) {
      std::fill(o, o + H, 0.0f);
    } else {
      std::memcpy(o, hidden + (b * T + t) * H, sizeof(float) * static_cast<size_t>(H));
    }
  }
}

template <typename M>
void max_pool_rows(const float* hidden, const M* mask, int64_t b0, int64_t b1, int64_t T,
                   int64_t H, float* out) noexcept {
  for (int64_t b = b0; b < b1; ++b) {
    float* o = out + b * H;
    std::fill(o, o + H, -std::numeric_limits<float>::infinity());
    int64_t count = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (mask[b * T + t] == 0) continue;
      const float* h = hidden + (b * T + t) * H;
#pragma omp simd
      for (int64_t i = 0; i < H; ++i) o[i] = h[i] > o[i] ? h[i] : o[i];
      ++count;
    }
    if (count == 0) std::fill(o, o + H, 0.0f);
  }
}

inline double sum_squares(const float* x, int64_t D) noexcept {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < D; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

inline void l2_normalize_rows(const float* x, int64_t n0, int64_t n1, int64_t D, float eps,
                              float* out) noexcept {
  for (int64_t n = n0; n < n1; ++n) {
    const float* xr = x + n * D;
    float* o = out + n * D;
    const double norm = std::sqrt(sum_squares(xr, D));
    const float denom = static_cast<float>(std::max(norm, static_cast<double>(eps)));
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) o[i] = xr[i] / denom;
  }
}

inline void matryoshka_rows(const float* x, int64_t n0, int64_t n1, int64_t D, int64_t dim,
                            bool layer_norm, float* out) noexcept {
  constexpr double kLayerNormEps = 1e-5;  // torch.nn.functional.layer_norm default
  constexpr double kL2Eps = 1e-12;        // torch.nn.functional.normalize default
  for (int64_t n = n0; n < n1; ++n) {
    const float* xr = x + n * D;
    float* o = out + n * dim;
    double mean = 0.0, inv_std = 1.0;
    if (layer_norm) {
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < D; ++i) s += xr[i];
      mean = s / static_cast<double>(D);
      double v = 0.0;
#pragma omp simd reduction(+ : v)
      for (int64_t i = 0; i < D; ++i) v += (xr[i] - mean) * (xr[i] - mean);
      inv_std = 1.0 / std::sqrt(v / static_cast<double>(D) + kLayerNormEps);
    }
    const float fm = static_cast<float>(mean), fs = static_cast<float>(inv_std);
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) o[i] = (xr[i] - fm) * fs;
    l2_normalize_rows(o, 0, 1, dim, static_cast<float>(kL2Eps), o);
  }
}

}  // namespace sutra::embed::SUTRA_ISA_NS

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

// Sums the rows `rows[0..n)` of `base` (row stride H) into out[0..H), eight
// rows per pass so that `out` is loaded and stored once per eight input rows
// (the loop is bound by loads; this halves them against one row per pass).
inline void sum_rows(const float* base, const int64_t* rows, int64_t n, int64_t H,
                     float* out) noexcept {
  std::fill(out, out + H, 0.0f);
  int64_t r = 0;
  for (; r + 8 <= n; r += 8) {
    const float* h0 = base + rows[r] * H;
    const float* h1 = base + rows[r + 1] * H;
    const float* h2 = base + rows[r + 2] * H;
    const float* h3 = base + rows[r + 3] * H;
    const float* h4 = base + rows[r + 4] * H;
    const float* h5 = base + rows[r + 5] * H;
    const float* h6 = base + rows[r + 6] * H;
    const float* h7 = base + rows[r + 7] * H;
#pragma omp simd
    for (int64_t i = 0; i < H; ++i)
      out[i] += ((h0[i] + h1[i]) + (h2[i] + h3[i])) + ((h4[i] + h5[i]) + (h6[i] + h7[i]));
  }
  for (; r < n; ++r) {
    const float* h = base + rows[r] * H;
#pragma omp simd
    for (int64_t i = 0; i < H; ++i) out[i] += h[i];
  }
}

// Indices of the unmasked tokens of row b, written to `rows`; returns their count.
template <typename M>
int64_t kept_tokens(const M* mask, int64_t b, int64_t T, int64_t* rows) noexcept {
  int64_t n = 0;
  for (int64_t t = 0; t < T; ++t) {
    rows[n] = b * T + t;
    n += mask[b * T + t] != 0;  // branch-free compaction; padding is never read
  }
  return n;
}

template <typename M>
void mean_pool_rows(const float* hidden, const M* mask, int64_t b0, int64_t b1, int64_t T,
                    int64_t H, float* out, int64_t* scratch) noexcept {
  for (int64_t b = b0; b < b1; ++b) {
    float* o = out + b * H;
    const int64_t count = kept_tokens(mask, b, T, scratch);
    sum_rows(hidden, scratch, count, H, o);
    const float denom = static_cast<float>(count > 0 ? count : 1);
#pragma omp simd
    for (int64_t i = 0; i < H; ++i) o[i] /= denom;
  }
}

template <typename M>
void cls_pool_rows(const float* hidden, const M* mask, int64_t b0, int64_t b1, int64_t T,
                   int64_t H, float* out, int64_t* /*scratch*/) noexcept {
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
                   int64_t H, float* out, int64_t* scratch) noexcept {
  for (int64_t b = b0; b < b1; ++b) {
    float* o = out + b * H;
    const int64_t count = kept_tokens(mask, b, T, scratch);
    if (count == 0) {
      std::fill(o, o + H, 0.0f);
      continue;
    }
    std::memcpy(o, hidden + scratch[0] * H, sizeof(float) * static_cast<size_t>(H));
    for (int64_t r = 1; r < count; ++r) {
      const float* h = hidden + scratch[r] * H;
#pragma omp simd
      for (int64_t i = 0; i < H; ++i) o[i] = h[i] > o[i] ? h[i] : o[i];
    }
  }
}

// sum over i of f(x[i]) in double, with eight independent partial sums: the
// vectoriser turns the fixed-width inner loop into one vector of doubles
// whatever the call site (a plain `omp simd` reduction was left scalar when
// inlined into some callers), and the summation order is the same at every ISA
// level, so results do not depend on the instruction set.
template <typename F>
inline double sum8(const float* x, int64_t D, F f) noexcept {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= D; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += f(static_cast<double>(x[i + j]));
  double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < D; ++i) s += f(static_cast<double>(x[i]));
  return s;
}

inline double sum_squares(const float* x, int64_t D) noexcept {
  return sum8(x, D, [](double v) { return v * v; });
}

inline void l2_normalize_rows(const float* x, int64_t n0, int64_t n1, int64_t D, float eps,
                              float* out) noexcept {
  for (int64_t n = n0; n < n1; ++n) {
    const float* xr = x + n * D;
    float* o = out + n * D;
    const double denom = std::max(std::sqrt(sum_squares(xr, D)), static_cast<double>(eps));
    const double inv = 1.0 / denom;
    if (inv >= std::numeric_limits<float>::min() && inv <= std::numeric_limits<float>::max()) {
      const float f = static_cast<float>(inv);  // the common case: within 1 ulp of x / denom
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) o[i] = xr[i] * f;
    } else {
      // 1/norm outside the normal float range (norms above ~8.5e37, or eps
      // below ~3e-39): divide in double so nothing rounds to inf or a denormal.
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) o[i] = static_cast<float>(static_cast<double>(xr[i]) / denom);
    }
  }
}

inline void matryoshka_rows(const float* x, int64_t n0, int64_t n1, int64_t D, int64_t dim,
                            bool layer_norm, float* out) noexcept {
  constexpr double kLayerNormEps = 1e-5;  // torch.nn.functional.layer_norm default
  constexpr float kL2Eps = 1e-12f;        // torch.nn.functional.normalize default
  for (int64_t n = n0; n < n1; ++n) {
    const float* xr = x + n * D;
    float* o = out + n * dim;
    if (!layer_norm) {
      l2_normalize_rows(xr, 0, 1, dim, kL2Eps, o);
      continue;
    }
    const double mean = sum8(xr, D, [](double v) { return v; }) / static_cast<double>(D);
    const double v = sum8(xr, D, [mean](double t) { return (t - mean) * (t - mean); });
    const double inv_std = 1.0 / std::sqrt(v / static_cast<double>(D) + kLayerNormEps);
    // Centre in double: with the mean rounded to float32 first, a row whose mean is
    // large against its spread (e.g. all values near -4232) lost most of its digits.
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i)
      o[i] = static_cast<float>((static_cast<double>(xr[i]) - mean) * inv_std);
    l2_normalize_rows(o, 0, 1, dim, kL2Eps, o);
  }
}

}  // namespace sutra::embed::SUTRA_ISA_NS

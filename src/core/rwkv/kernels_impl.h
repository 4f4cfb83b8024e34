// Bodies of the RWKV kernels, compiled once per ISA level (see kernels_isa.cpp).
// Portable loops (vectorised by the compiler via `omp simd`) serve every level;
// AVX-512 adds register-tiled fp32 GEMM, AVX512-BF16 dot products and VNNI
// int8 dot products where the CPU has them.
#pragma once
#include <cstdint>
#include <cstring>

#include "rwkv/kernels_table.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace sutra::rwkv::SUTRA_ISA_NS {

inline float bf16_to_f32(uint16_t h) noexcept {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---------------------------------------------------------------- portable loops

inline void gemm_f32_portable(const float* W, int64_t K, int64_t r0, int64_t r1, const float* X,
                              int64_t ldx, int64_t T, float* Y, int64_t ldy) noexcept {
  for (int64_t o = r0; o < r1; ++o) {
    const float* w = W + o * K;
    for (int64_t t = 0; t < T; ++t) {
      const float* x = X + t * ldx;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < K; ++k) s += w[k] * x[k];
      Y[t * ldy + o] = s;
    }
  }
}

inline void gemm_bf16_widen(const uint16_t* W, int64_t K, int64_t r0, int64_t r1,
                            const float* X, const uint16_t*, const uint16_t*, int64_t ldx,
                            int64_t T, float* Y, int64_t ldy) noexcept {
  for (int64_t o = r0; o < r1; ++o) {
    const uint16_t* w = W + o * K;
    for (int64_t t = 0; t < T; ++t) {
      const float* x = X + t * ldx;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < K; ++k) s += bf16_to_f32(w[k]) * x[k];
      Y[t * ldy + o] = s;
    }
  }
}

inline void gemm_i8_portable(const int8_t* W, const float* ws, const int32_t* rs, int64_t K,
                             int64_t r0, int64_t r1, const uint8_t* U, int64_t ldu,
                             const float* xs, const int32_t* xz, int64_t T, float* Y,
                             int64_t ldy) noexcept {
  const int64_t nb = (K + kQBlock - 1) / kQBlock;
  for (int64_t o = r0; o < r1; ++o) {
    for (int64_t t = 0; t < T; ++t) {
      float y = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t k0 = b * kQBlock, k1 = k0 + kQBlock < K ? k0 + kQBlock : K;
        const int8_t* w = W + o * K;
        const uint8_t* u = U + t * ldu;
        int32_t s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t k = k0; k < k1; ++k) s += static_cast<int32_t>(u[k]) * static_cast<int32_t>(w[k]);
        y += ws[o * nb + b] * xs[t * nb + b] * static_cast<float>(s - xz[t] * rs[o * nb + b]);
      }
      Y[t * ldy + o] = y;
    }
  }
}

inline void wkv_step_portable(float* S, const float* r, const float* w, const float* k,
                              const float* v, const float* kk, const float* kka, int64_t N,
                              float* out) noexcept {
  for (int64_t i = 0; i < N; ++i) {
    float* s = S + i * N;
    float sk = 0.0f;
#pragma omp simd reduction(+ : sk)
    for (int64_t j = 0; j < N; ++j) sk += s[j] * kk[j];
    const float vi = v[i];
    float o = 0.0f;
#pragma omp simd reduction(+ : o)
    for (int64_t j = 0; j < N; ++j) {
      const float nv = s[j] * w[j] - sk * kka[j] + vi * k[j];
      s[j] = nv;
      o += nv * r[j];
    }
    out[i] = o;
  }
}

#if defined(__AVX512F__)
// ---------------------------------------------------------------- AVX-512

inline __mmask16 tail16(int64_t n) noexcept { return static_cast<__mmask16>((1u << n) - 1u); }

// Horizontal sums (GCC 12's _mm512_reduce_add_* trip -Wuninitialized).
inline float hsum(__m512 v) noexcept {
  const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
inline int32_t hsum(__m512i v) noexcept {
  const __m256i h = _mm256_add_epi32(_mm512_extracti32x8_epi32(v, 0), _mm512_extracti32x8_epi32(v, 1));
  __m128i q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
  q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
  return _mm_cvtsi128_si32(q);
}

// OB weight rows x TB tokens of dot products, all accumulators in registers.
template <int OB, int TB>
inline void tile_f32(const float* W, int64_t K, const float* X, int64_t ldx, float* Y,
                     int64_t ldy) noexcept {
  __m512 acc[OB][TB];
  for (int o = 0; o < OB; ++o)
    for (int t = 0; t < TB; ++t) acc[o][t] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 x[TB];
    for (int t = 0; t < TB; ++t) x[t] = _mm512_loadu_ps(X + t * ldx + k);
    for (int o = 0; o < OB; ++o) {
      const __m512 w = _mm512_loadu_ps(W + o * K + k);
      for (int t = 0; t < TB; ++t) acc[o][t] = _mm512_fmadd_ps(w, x[t], acc[o][t]);
    }
  }
  if (k < K) {
    const __mmask16 m = tail16(K - k);
    __m512 x[TB];
    for (int t = 0; t < TB; ++t) x[t] = _mm512_maskz_loadu_ps(m, X + t * ldx + k);
    for (int o = 0; o < OB; ++o) {
      const __m512 w = _mm512_maskz_loadu_ps(m, W + o * K + k);
      for (int t = 0; t < TB; ++t) acc[o][t] = _mm512_fmadd_ps(w, x[t], acc[o][t]);
    }
  }
  for (int o = 0; o < OB; ++o)
    for (int t = 0; t < TB; ++t) Y[t * ldy + o] = hsum(acc[o][t]);
}

template <int TB>
inline void rows_f32(const float* W, int64_t K, int64_t r0, int64_t r1, const float* X,
                     int64_t ldx, float* Y, int64_t ldy) noexcept {
  int64_t o = r0;
  for (; o + 4 <= r1; o += 4) tile_f32<4, TB>(W + o * K, K, X, ldx, Y + o, ldy);
  for (; o < r1; ++o) tile_f32<1, TB>(W + o * K, K, X, ldx, Y + o, ldy);
}

// Rows in blocks that stay in L1 while every token passes over them.
inline void gemm_f32(const float* W, int64_t K, int64_t r0, int64_t r1, const float* X,
                     int64_t ldx, int64_t T, float* Y, int64_t ldy) noexcept {
  const int64_t rb = T <= 4 ? (r1 - r0) : 4;
  for (int64_t b0 = r0; b0 < r1; b0 += rb) {
    const int64_t b1 = b0 + rb < r1 ? b0 + rb : r1;
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) rows_f32<4>(W, K, b0, b1, X + t * ldx, ldx, Y + t * ldy, ldy);
    switch (T - t) {
      case 3: rows_f32<3>(W, K, b0, b1, X + t * ldx, ldx, Y + t * ldy, ldy); break;
      case 2: rows_f32<2>(W, K, b0, b1, X + t * ldx, ldx, Y + t * ldy, ldy); break;
      case 1: rows_f32<1>(W, K, b0, b1, X + t * ldx, ldx, Y + t * ldy, ldy); break;
      default: break;
    }
  }
}

inline void wkv_step(float* S, const float* r, const float* w, const float* k, const float* v,
                     const float* kk, const float* kka, int64_t N, float* out) noexcept {
  if (N != 64) {
    wkv_step_portable(S, r, w, k, v, kk, kka, N, out);
    return;
  }
  __m512 W4[4], KK[4], KA[4], Kx[4], R[4];
  for (int q = 0; q < 4; ++q) {
    W4[q] = _mm512_loadu_ps(w + 16 * q);
    KK[q] = _mm512_loadu_ps(kk + 16 * q);
    KA[q] = _mm512_loadu_ps(kka + 16 * q);
    Kx[q] = _mm512_loadu_ps(k + 16 * q);
    R[q] = _mm512_loadu_ps(r + 16 * q);
  }
  for (int64_t i = 0; i < 64; ++i) {
    float* s = S + i * 64;
    __m512 row[4];
    __m512 d = _mm512_setzero_ps();
    for (int q = 0; q < 4; ++q) {
      row[q] = _mm512_loadu_ps(s + 16 * q);
      d = _mm512_fmadd_ps(row[q], KK[q], d);
    }
    const __m512 nsk = _mm512_set1_ps(-hsum(d));
    const __m512 vi = _mm512_set1_ps(v[i]);
    __m512 o = _mm512_setzero_ps();
    for (int q = 0; q < 4; ++q) {
      __m512 nv = _mm512_mul_ps(row[q], W4[q]);
      nv = _mm512_fmadd_ps(nsk, KA[q], nv);
      nv = _mm512_fmadd_ps(vi, Kx[q], nv);
      _mm512_storeu_ps(s + 16 * q, nv);
      o = _mm512_fmadd_ps(nv, R[q], o);
    }
    out[i] = hsum(o);
  }
}

#if defined(__AVX512BF16__)
template <int OB, int TB>
inline void tile_bf16(const uint16_t* W, int64_t K, const uint16_t* Xh, const uint16_t* Xl,
                      int64_t ldx, float* Y, int64_t ldy) noexcept {
  // Few tokens: separate accumulators for the hi and lo halves, so the two dot
  // products per step do not wait on each other (decode is latency-bound otherwise).
  constexpr bool kSplit = TB <= 2;
  constexpr int kAcc2 = kSplit ? TB : 1;
  __m512 acc[OB][TB], acc2[OB][kAcc2];
  for (int o = 0; o < OB; ++o) {
    for (int t = 0; t < TB; ++t) acc[o][t] = _mm512_setzero_ps();
    for (int t = 0; t < kAcc2; ++t) acc2[o][t] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < K; k += 32) {
    const __mmask32 m = K - k >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((1ull << (K - k)) - 1);
    __m512bh xh[TB], xl[TB];
    for (int t = 0; t < TB; ++t) {
      xh[t] = (__m512bh)_mm512_maskz_loadu_epi16(m, Xh + t * ldx + k);
      xl[t] = (__m512bh)_mm512_maskz_loadu_epi16(m, Xl + t * ldx + k);
    }
    for (int o = 0; o < OB; ++o) {
      const __m512bh w = (__m512bh)_mm512_maskz_loadu_epi16(m, W + o * K + k);
      for (int t = 0; t < TB; ++t) {
        acc[o][t] = _mm512_dpbf16_ps(acc[o][t], w, xh[t]);
        if constexpr (kSplit) {
          acc2[o][t] = _mm512_dpbf16_ps(acc2[o][t], w, xl[t]);
        } else {
          acc[o][t] = _mm512_dpbf16_ps(acc[o][t], w, xl[t]);
        }
      }
    }
  }
  for (int o = 0; o < OB; ++o)
    for (int t = 0; t < TB; ++t) {
      if constexpr (kSplit) acc[o][t] = _mm512_add_ps(acc[o][t], acc2[o][t]);
      Y[t * ldy + o] = hsum(acc[o][t]);
    }
}

template <int TB>
inline void rows_bf16(const uint16_t* W, int64_t K, int64_t r0, int64_t r1, const uint16_t* Xh,
                      const uint16_t* Xl, int64_t ldx, float* Y, int64_t ldy) noexcept {
  int64_t o = r0;
  for (; o + 4 <= r1; o += 4) tile_bf16<4, TB>(W + o * K, K, Xh, Xl, ldx, Y + o, ldy);
  for (; o < r1; ++o) tile_bf16<1, TB>(W + o * K, K, Xh, Xl, ldx, Y + o, ldy);
}

inline void gemm_bf16_dp(const uint16_t* W, int64_t K, int64_t r0, int64_t r1, const float*,
                         const uint16_t* Xh, const uint16_t* Xl, int64_t ldx, int64_t T,
                         float* Y, int64_t ldy) noexcept {
  const int64_t rb = T <= 4 ? (r1 - r0) : 8;
  for (int64_t b0 = r0; b0 < r1; b0 += rb) {
    const int64_t b1 = b0 + rb < r1 ? b0 + rb : r1;
    int64_t t = 0;
    for (; t + 4 <= T; t += 4)
      rows_bf16<4>(W, K, b0, b1, Xh + t * ldx, Xl + t * ldx, ldx, Y + t * ldy, ldy);
    switch (T - t) {
      case 3: rows_bf16<3>(W, K, b0, b1, Xh + t * ldx, Xl + t * ldx, ldx, Y + t * ldy, ldy); break;
      case 2: rows_bf16<2>(W, K, b0, b1, Xh + t * ldx, Xl + t * ldx, ldx, Y + t * ldy, ldy); break;
      case 1: rows_bf16<1>(W, K, b0, b1, Xh + t * ldx, Xl + t * ldx, ldx, Y + t * ldy, ldy); break;
      default: break;
    }
  }
}
#define SUTRA_RWKV_BF16_DP &gemm_bf16_dp
#endif  // __AVX512BF16__

#if defined(__AVX512VNNI__)
// One 64-byte block per dpbusd; the zero-point correction enters the integer
// sum through lane 0, so the block sum is exact before its float scaling.
template <int OB, int TB>
inline void tile_i8(const int8_t* W, const float* ws, const int32_t* rs, int64_t K, int64_t nb,
                    const uint8_t* U, int64_t ldu, const float* xs, const int32_t* xz, float* Y,
                    int64_t ldy) noexcept {
  __m512 acc[OB][TB];
  for (int o = 0; o < OB; ++o)
    for (int t = 0; t < TB; ++t) acc[o][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t k = b * 64;
    const __mmask64 m = K - k >= 64 ? ~__mmask64(0) : static_cast<__mmask64>((1ull << (K - k)) - 1);
    __m512i u[TB];
    float sx[TB];
    for (int t = 0; t < TB; ++t) {
      u[t] = _mm512_maskz_loadu_epi8(m, U + t * ldu + k);
      sx[t] = xs[t * nb + b];
    }
    for (int o = 0; o < OB; ++o) {
      const __m512i w = _mm512_maskz_loadu_epi8(m, W + o * K + k);
      const float sw = ws[o * nb + b];
      const int32_t r = rs[o * nb + b];
      for (int t = 0; t < TB; ++t) {
        const __m512i d = _mm512_dpbusd_epi32(_mm512_maskz_set1_epi32(1, -xz[t] * r), u[t], w);
        acc[o][t] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, d), _mm512_set1_ps(sw * sx[t]), acc[o][t]);
      }
    }
  }
  for (int o = 0; o < OB; ++o)
    for (int t = 0; t < TB; ++t) Y[t * ldy + o] = hsum(acc[o][t]);
}

template <int TB>
inline void rows_i8(const int8_t* W, const float* ws, const int32_t* rs, int64_t K, int64_t r0,
                    int64_t r1, const uint8_t* U, int64_t ldu, const float* xs, const int32_t* xz,
                    float* Y, int64_t ldy) noexcept {
  const int64_t nb = (K + 63) / 64;
  int64_t o = r0;
  for (; o + 4 <= r1; o += 4)
    tile_i8<4, TB>(W + o * K, ws + o * nb, rs + o * nb, K, nb, U, ldu, xs, xz, Y + o, ldy);
  for (; o < r1; ++o)
    tile_i8<1, TB>(W + o * K, ws + o * nb, rs + o * nb, K, nb, U, ldu, xs, xz, Y + o, ldy);
}

inline void gemm_i8_vnni(const int8_t* W, const float* ws, const int32_t* rs, int64_t K,
                         int64_t r0, int64_t r1, const uint8_t* U, int64_t ldu, const float* xs,
                         const int32_t* xz, int64_t T, float* Y, int64_t ldy) noexcept {
  static_assert(kQBlock == 64, "the VNNI kernel handles one 64-byte block per step");
  const int64_t nb = (K + 63) / 64;
  const int64_t rb = T <= 4 ? (r1 - r0) : 16;
  for (int64_t b0 = r0; b0 < r1; b0 += rb) {
    const int64_t b1 = b0 + rb < r1 ? b0 + rb : r1;
    int64_t t = 0;
    for (; t + 4 <= T; t += 4)
      rows_i8<4>(W, ws, rs, K, b0, b1, U + t * ldu, ldu, xs + t * nb, xz + t, Y + t * ldy, ldy);
    switch (T - t) {
      case 3: rows_i8<3>(W, ws, rs, K, b0, b1, U + t * ldu, ldu, xs + t * nb, xz + t, Y + t * ldy, ldy); break;
      case 2: rows_i8<2>(W, ws, rs, K, b0, b1, U + t * ldu, ldu, xs + t * nb, xz + t, Y + t * ldy, ldy); break;
      case 1: rows_i8<1>(W, ws, rs, K, b0, b1, U + t * ldu, ldu, xs + t * nb, xz + t, Y + t * ldy, ldy); break;
      default: break;
    }
  }
}
#define SUTRA_RWKV_I8_VNNI &gemm_i8_vnni
#endif  // __AVX512VNNI__

#else  // no AVX-512 in this translation unit
inline void gemm_f32(const float* W, int64_t K, int64_t r0, int64_t r1, const float* X,
                     int64_t ldx, int64_t T, float* Y, int64_t ldy) noexcept {
  gemm_f32_portable(W, K, r0, r1, X, ldx, T, Y, ldy);
}
inline void wkv_step(float* S, const float* r, const float* w, const float* k, const float* v,
                     const float* kk, const float* kka, int64_t N, float* out) noexcept {
  wkv_step_portable(S, r, w, k, v, kk, kka, N, out);
}
#endif

#ifndef SUTRA_RWKV_BF16_DP
#define SUTRA_RWKV_BF16_DP nullptr
#endif
#ifndef SUTRA_RWKV_I8_VNNI
#define SUTRA_RWKV_I8_VNNI nullptr
#endif

}  // namespace sutra::rwkv::SUTRA_ISA_NS

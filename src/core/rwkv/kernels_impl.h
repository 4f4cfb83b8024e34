// Bodies of the RWKV kernels, compiled once per ISA level (see kernels_isa.cpp).
// Weight layout: panels of 16 output rows, see kernels_table.h. Portable loops
// (vectorised by the compiler over the 16 lanes) serve every level; AVX-512 adds
// register-tiled kernels, AVX512-BF16 dot products and VNNI int8 dot products.
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

inline void store_rows(const float* acc, int64_t o0, int64_t R, float* y) noexcept {
  for (int64_t l = 0; l < kPanel && o0 + l < R; ++l) y[o0 + l] = acc[l];
}

// ---------------------------------------------------------------- portable loops

inline void gemm_f32_portable(const float* P, int64_t Kp, int64_t p0, int64_t p1, int64_t R,
                              const float* X, int64_t ldx, int64_t T, float* Y,
                              int64_t ldy) noexcept {
  for (int64_t p = p0; p < p1; ++p) {
    const float* W = P + panel_offset(p, Kp, 1);
    for (int64_t t = 0; t < T; ++t) {
      const float* x = X + t * ldx;
      float acc[kPanel] = {};
      for (int64_t k = 0; k < Kp; ++k) {
        const float xk = x[k];
        const float* w = W + k * stride(1);
#pragma omp simd
        for (int64_t l = 0; l < kPanel; ++l) acc[l] += w[l] * xk;
      }
      store_rows(acc, p * kPanel, R, Y + t * ldy);
    }
  }
}

inline void gemm_bf16_widen_portable(const uint16_t* P, int64_t Kp, int64_t K, int64_t p0,
                                     int64_t p1, int64_t R, const float* X, const uint16_t*,
                                     const uint16_t*, int64_t T, float* Y, int64_t ldy) noexcept {
  for (int64_t p = p0; p < p1; ++p) {
    const uint16_t* W = P + panel_offset(p, Kp, 2);
    for (int64_t t = 0; t < T; ++t) {
      const float* x = X + t * K;
      float acc[kPanel] = {};
      for (int64_t k = 0; k < Kp; k += 2) {
        const float x0 = x[k];
        const float x1 = k + 1 < K ? x[k + 1] : 0.0f;
        const uint16_t* w = W + k * stride(2);
#pragma omp simd
        for (int64_t l = 0; l < kPanel; ++l)
          acc[l] += bf16_to_f32(w[2 * l]) * x0 + bf16_to_f32(w[2 * l + 1]) * x1;
      }
      store_rows(acc, p * kPanel, R, Y + t * ldy);
    }
  }
}

inline void gemm_i8_portable(const int8_t* P, int64_t Kp, int64_t p0, int64_t p1, int64_t R,
                             const uint8_t* Uh, const uint8_t* Ul, const float* xs, int64_t T,
                             float* Y, int64_t ldy) noexcept {
  const int64_t nb = Kp / kQBlock;
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t t = 0; t < T; ++t) {
      const uint8_t* uh = Uh + t * Kp;
      const uint8_t* ul = Ul + t * Kp;
      float acc[kPanel] = {};
      for (int64_t b = 0; b < nb; ++b) {
        int32_t ih[kPanel] = {}, il[kPanel] = {};
        for (int64_t k = b * kQBlock; k < (b + 1) * kQBlock; k += 4) {
          const int8_t* w = P + i8_weights(p, k, nb);
#pragma omp simd
          for (int64_t l = 0; l < kPanel; ++l)
            for (int64_t j = 0; j < 4; ++j) {
              ih[l] += static_cast<int32_t>(uh[k + j]) * static_cast<int32_t>(w[4 * l + j]);
              il[l] += static_cast<int32_t>(ul[k + j]) * static_cast<int32_t>(w[4 * l + j]);
            }
        }
        uint16_t s[kPanel];
        int16_t rs[kPanel];
        std::memcpy(s, P + i8_scales(p, b, nb), sizeof(s));
        std::memcpy(rs, P + i8_scales(p, b, nb) + kI8RowSums, sizeof(rs));
        const float sx = xs[t * nb + b];
        for (int64_t l = 0; l < kPanel; ++l) {
          const int32_t d = 254 * ih[l] + il[l] - 128 * 255 * static_cast<int32_t>(rs[l]);
          acc[l] += bf16_to_f32(s[l]) * sx * static_cast<float>(d);
        }
      }
      store_rows(acc, p * kPanel, R, Y + t * ldy);
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

// Horizontal sum (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized).
inline float hsum(__m512 v) noexcept {
  const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

inline void store16(float* y, int64_t o0, int64_t R, __m512 v) noexcept {
  if (R - o0 >= 16) {
    _mm512_storeu_ps(y + o0, v);
  } else {
    _mm512_mask_storeu_ps(y + o0, static_cast<__mmask16>((1u << (R - o0)) - 1u), v);
  }
}

inline uint32_t load_u32(const void* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// f.run<NP, n>(p, t) for the largest block n <= TB that fits the n tokens left.
template <int NP, int TB, typename F>
inline void run_tokens(const F& f, int64_t p, int64_t t, int64_t n) noexcept {
  if constexpr (TB > 1) {
    if (n < TB) return run_tokens<NP, TB - 1>(f, p, t, n);
  }
  f.template run<NP, TB>(p, t);
}

// Calls F::template run<NP, TB>(p, t) over panel groups x token blocks: decode
// (T = 1) takes 4 panels at a time, prefill NPMax panels x up to TBMax tokens (as
// many as keep the accumulators in registers). Interleaved layouts take NPMax = 4:
// a tile on 2 of a group's 4 panels touches every other cache line, uses half of
// L1's sets and re-reads its weights from L2 for every token block (int8 prefill
// ran ~10 % slower so).
template <int TBMax = 6, int NPMax = 2, typename F>
inline void tiles(int64_t p0, int64_t p1, int64_t T, const F& f) noexcept {
  if (T == 1) {
    int64_t p = p0;
    for (; p + kGroup <= p1; p += kGroup) f.template run<kGroup, 1>(p, 0);
    for (; p < p1; ++p) f.template run<1, 1>(p, 0);
    return;
  }
  for (int64_t p = p0; p < p1;) {
    const int64_t np = p + NPMax <= p1 ? NPMax : 1;
    for (int64_t t = 0; t < T; t += TBMax) {
      if (np == NPMax) {
        run_tokens<NPMax, TBMax>(f, p, t, T - t);
      } else {
        run_tokens<1, TBMax>(f, p, t, T - t);
      }
    }
    p += np;
  }
}

struct TileF32 {
  const float* P; int64_t Kp, R; const float* X; int64_t ldx; float* Y; int64_t ldy;
  template <int NP, int TB>
  void run(int64_t p, int64_t t0) const noexcept {
    __m512 acc[NP][TB];
    for (int n = 0; n < NP; ++n)
      for (int t = 0; t < TB; ++t) acc[n][t] = _mm512_setzero_ps();
    const float* W[NP];
    for (int n = 0; n < NP; ++n) W[n] = P + panel_offset(p + n, Kp, 1);
    const float* x = X + t0 * ldx;
    for (int64_t k = 0; k < Kp; ++k) {
      __m512 w[NP];
      for (int n = 0; n < NP; ++n) w[n] = _mm512_loadu_ps(W[n] + k * stride(1));
      for (int t = 0; t < TB; ++t) {
        const __m512 xb = _mm512_set1_ps(x[t * ldx + k]);
        for (int n = 0; n < NP; ++n) acc[n][t] = _mm512_fmadd_ps(w[n], xb, acc[n][t]);
      }
    }
    for (int n = 0; n < NP; ++n)
      for (int t = 0; t < TB; ++t) store16(Y + (t0 + t) * ldy, (p + n) * kPanel, R, acc[n][t]);
  }
};

inline void gemm_f32(const float* P, int64_t Kp, int64_t p0, int64_t p1, int64_t R,
                     const float* X, int64_t ldx, int64_t T, float* Y, int64_t ldy) noexcept {
  tiles(p0, p1, T, TileF32{P, Kp, R, X, ldx, Y, ldy});
}

inline void wkv_step(float* S, const float* r, const float* w, const float* k, const float* v,
                     const float* kk, const float* kka, int64_t N, float* out) noexcept {
  if (N != 64) {
    wkv_step_portable(S, r, w, k, v, kk, kka, N, out);
    return;
  }
  __m512 W4[4], KK[4], KA[4], Kx[4], Rr[4];
  for (int q = 0; q < 4; ++q) {
    W4[q] = _mm512_loadu_ps(w + 16 * q);
    KK[q] = _mm512_loadu_ps(kk + 16 * q);
    KA[q] = _mm512_loadu_ps(kka + 16 * q);
    Kx[q] = _mm512_loadu_ps(k + 16 * q);
    Rr[q] = _mm512_loadu_ps(r + 16 * q);
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
      o = _mm512_fmadd_ps(nv, Rr[q], o);
    }
    out[i] = hsum(o);
  }
}

// bf16 panels widened to fp32 in registers (exact), shared by up to 6 tokens.
struct TileBf16Widen {
  const uint16_t* P; int64_t Kp, K, R; const float* X; float* Y; int64_t ldy;
  template <int NP, int TB>
  void run(int64_t p, int64_t t0) const noexcept {
    __m512 acc[NP][TB];
    for (int n = 0; n < NP; ++n)
      for (int t = 0; t < TB; ++t) acc[n][t] = _mm512_setzero_ps();
    const uint16_t* W[NP];
    for (int n = 0; n < NP; ++n) W[n] = P + panel_offset(p + n, Kp, 2);
    const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    for (int64_t k = 0; k < Kp; k += 2) {
      __m512 we[NP], wo[NP];
      for (int n = 0; n < NP; ++n) {
        const __m512i v = _mm512_loadu_si512(W[n] + k * stride(2));
        we[n] = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, v, 16));  // input k
        wo[n] = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));           // input k + 1
      }
      const bool odd_tail = k + 1 >= K;
      for (int t = 0; t < TB; ++t) {
        const float* x = X + (t0 + t) * K;
        const __m512 x0 = _mm512_set1_ps(x[k]);
        const __m512 x1 = _mm512_set1_ps(odd_tail ? 0.0f : x[k + 1]);
        for (int n = 0; n < NP; ++n) {
          acc[n][t] = _mm512_fmadd_ps(we[n], x0, acc[n][t]);
          acc[n][t] = _mm512_fmadd_ps(wo[n], x1, acc[n][t]);
        }
      }
    }
    for (int n = 0; n < NP; ++n)
      for (int t = 0; t < TB; ++t) store16(Y + (t0 + t) * ldy, (p + n) * kPanel, R, acc[n][t]);
  }
};

inline void gemm_bf16_widen(const uint16_t* P, int64_t Kp, int64_t K, int64_t p0, int64_t p1,
                            int64_t R, const float* X, const uint16_t*, const uint16_t*, int64_t T,
                            float* Y, int64_t ldy) noexcept {
  // Prefill: 4 panels (a whole interleaved group) x 3 tokens (4 x 6 spills).
  tiles<3, kGroup>(p0, p1, T, TileBf16Widen{P, Kp, K, R, X, Y, ldy});
}

#if defined(__AVX512BF16__)
// Decode: bf16 dot products on the hi/lo split, separate accumulators for the two
// halves so that they do not queue on one register.
struct TileBf16Dp {
  const uint16_t* P; int64_t Kp, R; const uint16_t *Xh, *Xl; float* Y;
  template <int NP, int TB>
  void run(int64_t p, int64_t) const noexcept {
    static_assert(TB == 1, "decode kernel");
    __m512 acc[NP], acc2[NP];
    for (int n = 0; n < NP; ++n) acc[n] = acc2[n] = _mm512_setzero_ps();
    const uint16_t* W[NP];
    for (int n = 0; n < NP; ++n) W[n] = P + panel_offset(p + n, Kp, 2);
    for (int64_t k = 0; k < Kp; k += 2) {
      const __m512bh xh = (__m512bh)_mm512_set1_epi32(static_cast<int>(load_u32(Xh + k)));
      const __m512bh xl = (__m512bh)_mm512_set1_epi32(static_cast<int>(load_u32(Xl + k)));
      for (int n = 0; n < NP; ++n) {
        const __m512bh w = (__m512bh)_mm512_loadu_si512(W[n] + k * stride(2));
        acc[n] = _mm512_dpbf16_ps(acc[n], w, xh);
        acc2[n] = _mm512_dpbf16_ps(acc2[n], w, xl);
      }
    }
    for (int n = 0; n < NP; ++n) store16(Y, (p + n) * kPanel, R, _mm512_add_ps(acc[n], acc2[n]));
  }
};

inline void gemm_bf16_dp(const uint16_t* P, int64_t Kp, int64_t K, int64_t p0, int64_t p1,
                         int64_t R, const float* X, const uint16_t* Xh, const uint16_t* Xl,
                         int64_t T, float* Y, int64_t ldy) noexcept {
  if (T == 1 && Xh != nullptr && Xl != nullptr) {
    int64_t p = p0;
    const TileBf16Dp f{P, Kp, R, Xh, Xl, Y};
    for (; p + kGroup <= p1; p += kGroup) f.run<kGroup, 1>(p, 0);
    for (; p < p1; ++p) f.run<1, 1>(p, 0);
    return;
  }
  gemm_bf16_widen(P, Kp, K, p0, p1, R, X, Xh, Xl, T, Y, ldy);  // prefill: exact widening
}
#define SUTRA_RWKV_BF16_DP &gemm_bf16_dp
#endif  // __AVX512BF16__

#if defined(__AVX512VNNI__)
// Two u8 digits of the activation against the same weight vector: two dot
// products per weight load (decode stays memory-bound).
// (maskz_ forms: GCC 12 warns about the plain ones' merge operand.)
struct TileI8 {
  const int8_t* P; int64_t Kp, R; const uint8_t *Uh, *Ul;
  const float* xs; float* Y; int64_t ldy;
  template <int NP, int TB>
  void run(int64_t p, int64_t t0) const noexcept {
    const int64_t nb = Kp / kQBlock;
    __m512 acc[NP][TB];
    for (int n = 0; n < NP; ++n)
      for (int t = 0; t < TB; ++t) acc[n][t] = _mm512_setzero_ps();
    const __m512i k254 = _mm512_set1_epi32(254), kCorr = _mm512_set1_epi32(-128 * 255);
    for (int64_t b = 0; b < nb; ++b) {
      // The zero-point correction -128*255*RS starts the lo accumulators.
      __m512i ih[NP][TB], il[NP][TB];
      for (int n = 0; n < NP; ++n) {
        const __m256i rb = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(P + i8_scales(p + n, b, nb) + kI8RowSums));
        const __m512i corr = _mm512_mullo_epi32(_mm512_maskz_cvtepi16_epi32(0xFFFF, rb), kCorr);
        for (int t = 0; t < TB; ++t) {
          ih[n][t] = _mm512_setzero_si512();
          il[n][t] = corr;
        }
      }
      const int8_t* W[NP];
      for (int n = 0; n < NP; ++n) W[n] = P + i8_weights(p + n, b * kQBlock, nb);
      for (int64_t k = b * kQBlock; k < (b + 1) * kQBlock; k += 4) {
        __m512i w[NP];
        for (int n = 0; n < NP; ++n) w[n] = _mm512_loadu_si512(W[n] + (k - b * kQBlock) * kI8Stride);
        for (int t = 0; t < TB; ++t) {
          const int64_t o = (t0 + t) * Kp + k;
          const __m512i uh = _mm512_set1_epi32(static_cast<int>(load_u32(Uh + o)));
          const __m512i ul = _mm512_set1_epi32(static_cast<int>(load_u32(Ul + o)));
          for (int n = 0; n < NP; ++n) {
            ih[n][t] = _mm512_dpbusd_epi32(ih[n][t], uh, w[n]);
            il[n][t] = _mm512_dpbusd_epi32(il[n][t], ul, w[n]);
          }
        }
      }
      for (int n = 0; n < NP; ++n) {
        const __m256i sb =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(P + i8_scales(p + n, b, nb)));
        const __m512 s = _mm512_castsi512_ps(
            _mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, sb), 16));
        for (int t = 0; t < TB; ++t) {
          const __m512i d = _mm512_add_epi32(_mm512_mullo_epi32(ih[n][t], k254), il[n][t]);
          const __m512 sc = _mm512_mul_ps(s, _mm512_set1_ps(xs[(t0 + t) * nb + b]));
          acc[n][t] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, d), sc, acc[n][t]);
        }
      }
    }
    for (int n = 0; n < NP; ++n)
      for (int t = 0; t < TB; ++t) store16(Y + (t0 + t) * ldy, (p + n) * kPanel, R, acc[n][t]);
  }
};

inline void gemm_i8_vnni(const int8_t* P, int64_t Kp, int64_t p0, int64_t p1, int64_t R,
                         const uint8_t* Uh, const uint8_t* Ul, const float* xs, int64_t T,
                         float* Y, int64_t ldy) noexcept {
  static_assert(kQBlock % 4 == 0, "VNNI groups 4 inputs");
  // Prefill: 4 panels (a whole interleaved group) x 2 tokens, so that the
  // 4 x 2 x 2 integer and 4 x 2 float accumulators stay in registers (2 panels x 6
  // tokens spilled: ~30 % slower; 2 panels x 3 tokens: ~10 % slower than this).
  tiles<2, kGroup>(p0, p1, T, TileI8{P, Kp, R, Uh, Ul, xs, Y, ldy});
}
#define SUTRA_RWKV_I8_VNNI &gemm_i8_vnni
#endif  // __AVX512VNNI__

#else  // no AVX-512 in this translation unit
inline void gemm_bf16_widen(const uint16_t* P, int64_t Kp, int64_t K, int64_t p0, int64_t p1,
                            int64_t R, const float* X, const uint16_t* Xh, const uint16_t* Xl,
                            int64_t T, float* Y, int64_t ldy) noexcept {
  gemm_bf16_widen_portable(P, Kp, K, p0, p1, R, X, Xh, Xl, T, Y, ldy);
}
inline void gemm_f32(const float* P, int64_t Kp, int64_t p0, int64_t p1, int64_t R,
                     const float* X, int64_t ldx, int64_t T, float* Y, int64_t ldy) noexcept {
  gemm_f32_portable(P, Kp, p0, p1, R, X, ldx, T, Y, ldy);
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

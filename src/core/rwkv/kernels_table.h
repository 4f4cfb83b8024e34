// The per-ISA kernel table behind the RWKV forward: matrix products at three
// weight precisions and one step of the wkv recurrence.
//
// Weights are packed in panels of kPanel = 16 output rows. Inside a panel the
// weights are interleaved along the input dimension so that one 64-byte vector
// holds all 16 outputs for 1 (fp32), 2 (bf16) or 4 (int8) consecutive inputs:
//   fp32  P[p][k][16]        bf16  P[p][k/2][16][2]        int8  P[p][k/4][16][4]
// A product is then "vector of 16 outputs += weights x broadcast activation":
// decode streams the panels linearly (memory-bound GEMV, no horizontal sums) and
// prefill reuses each weight vector for several tokens held in registers.
//
// Decode runs kGroup panels at a time, so storage keeps a group's panels in one
// sequential stream (measured on the 65536 x 768 head here, old and new layout
// alternating: int8 GEMV ~18 -> ~22 GB/s; fp32 lost ~20% that way, so fp32
// keeps one panel per group).
//   fp32 / bf16: element (panel p, input k, output lane l), G inputs per vector
//   (1 fp32, 2 bf16), is at panel_offset(p, Kp, G) + (k / G) * G * stride(G) + l * G + k % G.
//   int8: see i8_weights / i8_scales below.
#pragma once
#include <cstdint>

#include "common/isa_dispatch.h"

namespace sutra::rwkv {

constexpr int64_t kPanel = 16;   // output rows per panel
constexpr int kGroup = 4;        // panels per decode tile and per interleaved group

// fp32 (G = 1): one panel per group; bf16 (G = 2): kGroup panels interleaved.
constexpr int64_t group(int64_t G) noexcept { return G == 1 ? 1 : kGroup; }
// Elements from input k to input k + 1 of a panel.
constexpr int64_t stride(int64_t G) noexcept { return kPanel * group(G); }
// Element offset of panel p's first vector.
constexpr int64_t panel_offset(int64_t p, int64_t Kp, int64_t G) noexcept {
  return (p / group(G)) * Kp * stride(G) + (p % group(G)) * kPanel * G;
}
// Storage for `panels` panels: whole groups.
constexpr int64_t packed_size(int64_t panels, int64_t Kp, int64_t G) noexcept {
  return (panels + group(G) - 1) / group(G) * Kp * stride(G);
}
constexpr int64_t kQBlock = 32;  // int8: inputs sharing one weight scale / activation scale

// int8 storage is one sequential stream per group of kGroup panels: for each
// block of kQBlock inputs, the group's weights (per 4 inputs one 64-byte vector
// per panel, [16 lanes][4 inputs]), then its kGroup x 16 bf16 scales, then its
// kGroup x 16 int16 row sums (scales and row sums in separate arrays cost the
// decode kernel 2 more streams).
constexpr int64_t kI8Stride = kPanel * kGroup;                    // bytes from input k to k + 1
constexpr int64_t kI8Weights = kQBlock * kI8Stride;               // bytes of weights per block
constexpr int64_t kI8RowSums = kGroup * kPanel * 2;               // row sums after the scales
constexpr int64_t kI8Block = kI8Weights + 2 * kI8RowSums;         // + scales + row sums
// Byte offset of panel p's weights for inputs k .. k + 3 (k % 4 == 0).
constexpr int64_t i8_weights(int64_t p, int64_t k, int64_t nb) noexcept {
  return ((p / kGroup) * nb + k / kQBlock) * kI8Block + (k % kQBlock) * kI8Stride +
         (p % kGroup) * kPanel * 4;
}
// Byte offset of panel p's 16 bf16 scales of block b; its row sums follow at +kI8RowSums.
constexpr int64_t i8_scales(int64_t p, int64_t b, int64_t nb) noexcept {
  return ((p / kGroup) * nb + b) * kI8Block + kI8Weights + (p % kGroup) * kPanel * 2;
}
constexpr int64_t i8_size(int64_t panels, int64_t nb) noexcept {
  return (panels + kGroup - 1) / kGroup * nb * kI8Block;
}
// int8 activations are ~16-bit integers X in [-kXMax, kXMax], fed to the u8 x s8
// dot products as two u8 digits: X = 254 (hi - 128) + (lo - 128), hi in [1, 255],
// lo in [1, 254] (see Matrix::prepare).
constexpr int32_t kXMax = 127 * 254;

// Y[t*ldy + o] = sum_k W[o,k] X[t*ldx + k] for the rows of panels [p0, p1) that
// are < R (the true row count), t < T. Kp = padded input length (panel stride).
using GemmF32 = void (*)(const float* P, int64_t Kp, int64_t p0, int64_t p1, int64_t R,
                         const float* X, int64_t ldx, int64_t T, float* Y, int64_t ldy) noexcept;
// bf16 weights (Kp even). X is fp32 (T x K, stride K); for T == 1 it also comes as
// a bf16 hi/lo split (X ~= hi + lo to ~2^-16, stride Kp, zero-padded), which the
// AVX512-BF16 decode kernel feeds to two bf16 dot products. Otherwise the weights
// are widened to fp32 (exact) and multiplied with X.
using GemmBf16 = void (*)(const uint16_t* P, int64_t Kp, int64_t K, int64_t p0, int64_t p1,
                          int64_t R, const float* X, const uint16_t* Xh, const uint16_t* Xl,
                          int64_t T, float* Y, int64_t ldy) noexcept;
// int8 (Kp a multiple of kQBlock, layout above): W[o,k] ~= S q with S the row's
// bf16 scale of block b; RS = sum of q over the block (int16). Activations
// x[t,k] ~= xs[t*nb+b] X with X = 254 (Uh[t*Kp+k] - 128) + (Ul[t*Kp+k] - 128).
// Integer block sums are exact on every ISA:
//   Y[t,o] = sum_b S xs (254 sum q Uh + sum q Ul - 128*255 RS).
using GemmI8 = void (*)(const int8_t* P, int64_t Kp, int64_t p0, int64_t p1, int64_t R,
                        const uint8_t* Uh,
                        const uint8_t* Ul, const float* xs, int64_t T, float* Y,
                        int64_t ldy) noexcept;
// One token of the wkv recurrence for one head (N x N state, row = value dim):
// S <- S diag(w) - (S kk)(kka)^T + v k^T (old S in every term); out = S r.
using WkvStep = void (*)(float* S, const float* r, const float* w, const float* k,
                         const float* v, const float* kk, const float* kka, int64_t N,
                         float* out) noexcept;

struct KernelTable {
  GemmF32 gemm_f32;
  GemmBf16 gemm_bf16;     // widening, correct at this level on any CPU
  GemmBf16 gemm_bf16_dp;  // AVX512-BF16 dot products, or nullptr (needs the CPU flag)
  GemmI8 gemm_i8;         // portable integer dot products
  GemmI8 gemm_i8_vnni;    // AVX512-VNNI, or nullptr (needs the CPU flag); same result
  WkvStep wkv_step;
};

}  // namespace sutra::rwkv

SUTRA_ISA_DECLARE(sutra::rwkv, sutra::rwkv::KernelTable)

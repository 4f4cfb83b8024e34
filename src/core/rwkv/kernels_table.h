// The per-ISA kernel table behind the RWKV forward: matrix products at three
// weight precisions and one step of the wkv recurrence.
//
// Matrices are stored row-major in nn.Linear layout (out x in): every output is
// the dot product of one contiguous weight row with one activation row, which
// is the streaming layout a memory-bound GEMV wants.
#pragma once
#include <cstdint>

#include "common/isa_dispatch.h"

namespace sutra::rwkv {

// Y[t*ldy + o] = sum_k W[o*K + k] * X[t*ldx + k],  o in [r0, r1), t in [0, T).
using GemmF32 = void (*)(const float* W, int64_t K, int64_t r0, int64_t r1, const float* X,
                         int64_t ldx, int64_t T, float* Y, int64_t ldy) noexcept;
// W holds bf16 bit patterns. X is given as fp32 and as a bf16 hi/lo split
// (X ~= hi + lo, both rows of length K, stride ldx): AVX512-BF16 uses two bf16
// dot products (near-fp32 accuracy), other levels widen W and use X directly.
using GemmBf16 = void (*)(const uint16_t* W, int64_t K, int64_t r0, int64_t r1, const float* X,
                          const uint16_t* Xhi, const uint16_t* Xlo, int64_t ldx, int64_t T,
                          float* Y, int64_t ldy) noexcept;
// int8 in blocks of kQBlock along K: weights W[o,k] ~= ws[o,b] * q, activations
// x[t,k] ~= xs[t,b] * (U[t,k] - xz[t]) with U u8 and xz in {0, 128}; rs[o,b] =
// sum of q over block b. Integer block sums are exact on every ISA:
// Y[t,o] = sum_b ws[o,b] xs[t,b] (sum_{k in b} q U - xz[t] rs[o,b]).
constexpr int64_t kQBlock = 64;
using GemmI8 = void (*)(const int8_t* W, const float* ws, const int32_t* rs, int64_t K,
                        int64_t r0, int64_t r1, const uint8_t* U, int64_t ldu, const float* xs,
                        const int32_t* xz, int64_t T, float* Y, int64_t ldy) noexcept;
// One token of the wkv recurrence for one head (N x N state, row = value dim):
// S <- S diag(w) - (S kk)(kka)^T + v k^T (old S in every term); out = S r.
using WkvStep = void (*)(float* S, const float* r, const float* w, const float* k,
                         const float* v, const float* kk, const float* kka, int64_t N,
                         float* out) noexcept;

struct KernelTable {
  GemmF32 gemm_f32;
  GemmBf16 gemm_bf16;       // widening, correct at this level on any CPU
  GemmBf16 gemm_bf16_dp;    // AVX512-BF16 dot products, or nullptr (needs the CPU flag)
  GemmI8 gemm_i8;           // portable integer dot products
  GemmI8 gemm_i8_vnni;      // AVX512-VNNI, or nullptr (needs the CPU flag); same result
  WkvStep wkv_step;
};

}  // namespace sutra::rwkv

SUTRA_ISA_DECLARE(sutra::rwkv, sutra::rwkv::KernelTable)

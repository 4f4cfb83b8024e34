// Embedding post-processing kernels: pooling over tokens, L2 normalisation and
// Matryoshka truncation. Row-major, C-contiguous float32 buffers; masks hold 0
// or 1 (check_mask rejects anything else). Each call dispatches to the active
// ISA level and splits rows over the thread pool when the work is large.
//
// Entry points validate sizes and throw std::invalid_argument; the kernels
// behind them never throw.
#pragma once
#include <cstdint>

namespace sutra::embed {

// Throws std::invalid_argument naming the first entry that is not 0 or 1.
void check_mask(const int64_t* mask, int64_t n);
void check_mask(const int32_t* mask, int64_t n);

// hidden [B,T,H], mask [B,T] -> out [B,H]. Rows with no unmasked token give zeros.
void mean_pool(const float* hidden, const int64_t* mask, int64_t B, int64_t T, int64_t H, float* out);
void mean_pool(const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H, float* out);
// The first unmasked token of each row (the [CLS] position under either padding side).
void cls_pool(const float* hidden, const int64_t* mask, int64_t B, int64_t T, int64_t H, float* out);
void cls_pool(const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H, float* out);
// Element-wise maximum over unmasked tokens.
void max_pool(const float* hidden, const int64_t* mask, int64_t B, int64_t T, int64_t H, float* out);
void max_pool(const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H, float* out);

// out[n] = x[n] / max(||x[n]||, eps); the norm is accumulated in double so huge
// values do not overflow. out may alias x (in place). eps must be >= 0 and finite.
void l2_normalize(const float* x, int64_t N, int64_t D, float eps, float* out);

// x [N,D] -> out [N,dim]: optional layer norm over all D (no affine, eps 1e-5,
// the nomic-embed recipe), truncation to the first `dim` values, then L2
// normalisation (eps 1e-12). 1 <= dim <= D.
void matryoshka(const float* x, int64_t N, int64_t D, int64_t dim, bool layer_norm, float* out);

}  // namespace sutra::embed

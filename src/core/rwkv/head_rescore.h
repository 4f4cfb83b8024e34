// int8 output head with exact re-scoring of its best candidates.
//
// The head is half of the bytes an int8 decode step reads, so it is stored at
// int8 too; but its rounding error lands on the logits directly and, on flat
// logits, flips the top token now and then. So after the int8 product the
// kRescore highest logits are recomputed from the checkpoint's own rows (bf16 or
// fp32, row-major, ~100 KB read per token): greedy decoding and the nucleus see
// the exact values, the long tail keeps the int8 ones.
#pragma once
#include <cstdint>

#include "rwkv/matrix.h"

namespace sutra::rwkv {

constexpr int64_t kRescore = 64;

// Indices of the k largest x (ties: lower index first), k <= n, in no given order.
void top_k_indices(const float* x, int64_t n, int64_t k, int64_t* out);

// logits[i] = rows[i] . x for the min(kRescore, vocab) largest logits.
void rescore_top(const RowTable& rows, const float* x, float* logits, int64_t vocab);

}  // namespace sutra::rwkv

// The top-p select's coarse buckets (see top_p.h): a monotone map of
// d = bits(1.0f) - bits(e), e in [0, 1], to [0, kCoarse): 0 for d = 0 (e == 1),
// else 1 + 32 * floor(log2 d) + the five bits after d's leading one (d shifted
// up when it has fewer). Fine near the max, coarse far below it. The AVX-512
// sampler computes the same value from the bits of float(d) rounded toward zero.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sutra::sample {

constexpr uint32_t kOneBits = 0x3F800000u;  // bits of 1.0f; e <= 1 always
constexpr size_t kCoarse = 30 * 32 + 1;     // d < 2^30
constexpr size_t kCoarseStride = 1024;      // one histogram copy
constexpr size_t kSampleBlock = 128, kSampleRun = 16;  // sample 16 tokens of every 128

inline uint32_t coarse_bucket(uint32_t d) noexcept {
  if (d == 0) return 0;
  const int k = 31 - __builtin_clz(d);
  const uint32_t m5 = k >= 5 ? (d >> (k - 5)) & 31u : (d << (5 - k)) & 31u;
  return static_cast<uint32_t>(k) * 32u + m5 + 1u;
}

// First sampled token of sample block `block` (starting at block * kSampleBlock):
// the offset moves from block to block so that periodic logits cannot hide.
inline size_t sample_start(size_t block) noexcept {
  return block * kSampleBlock + (block * 5 % (kSampleBlock / kSampleRun)) * kSampleRun;
}

}  // namespace sutra::sample

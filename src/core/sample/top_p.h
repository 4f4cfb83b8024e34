// Top-p (nucleus) cut-off without sorting. Given e[i] = exp(z[i] - m) in [0, 1]
// and target = ceil(top_p * Q), finds the largest value v among e with
// sum(to_fixed(e[e >= v])) >= target: exactly the value the twin finds by sorting.
//
// Float bits of non-negative floats are monotone, so this is a weighted radix
// select on the bits:
//  0. heavy tokens (e >= h, h ~ Q / 1024: at most ~1024 of them, read only in
//     the exp chunks whose max reaches h) are collected; if they hold the
//     target the cut-off is among them (peaked logits end here);
//  1. a sample of the other tokens (16 consecutive of every 128, at an offset
//     that moves from block to block) builds a coarse mass histogram over
//     log-spaced buckets of d = bits(1.0) - bits(e) (coarse_bucket.h: fine near
//     the max, so near-uniform logits still spread) and brackets the cut-off
//     with a margin for the sampling error; if the sample misjudges the total
//     mass badly, every token is counted instead (exact, no margin);
//  2. one exact vector pass sums the mass above the bracket and collects the
//     bracket's values; if the exact sums show the cut-off outside it, another
//     pass takes the side that holds it: the result never depends on the
//     guess, only the time does;
//  3. exact histograms over the collected values' range (10 bits a level)
//     narrow them to the cut-off, finishing with a sort once a few values
//     remain, or at once when they are all equal (ties, uniform logits).
// The same refinement with unit weights selects the k-th largest order key for top-k.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sutra::sample {

struct TopPScratch {
  std::vector<uint32_t> band;  // n + 16 (the Sampler sizes both)
  std::vector<uint64_t> hist;  // refinement histograms
  std::vector<uint64_t> coarse;
  std::vector<uint32_t> maxima;  // top-k: group maxima
};

struct TopPCutoff {
  float value;
  uint64_t mass;  // sum of to_fixed(e) over e >= value
};

// The heavy-token bound of step 0: h ~ Q / 1024 as a value of e (at most ~1024 tokens reach it).
inline float heavy_threshold(uint64_t Q) noexcept {
  const float h = static_cast<float>(static_cast<double>(Q >> 10) * 0x1.0p-40);
  return h < 2.0f ? h : 2.0f;
}

// Q = sum of to_fixed(e), target in [1, Q]; chunk_max[j] = max of e over tokens
// [kExpChunk j, kExpChunk (j + 1)) (from exp_sum). Uses the per-ISA kernels.
TopPCutoff top_p_cutoff(const float* e, const float* chunk_max, size_t n, uint64_t target, uint64_t Q,
                        TopPScratch& s);

// Top-k with the same select: the k-th largest of keys[0, count) (z_key values,
// range [lo, hi]), 1 <= k <= count, counting repeats. Returns that key, how
// many keys are larger and how many reach it (>=). keys is reordered.
struct KthKey {
  uint32_t key;
  uint64_t larger;
  uint64_t reach;
};
KthKey kth_largest_key(uint32_t* keys, size_t count, uint32_t lo, uint32_t hi, uint64_t k, TopPScratch& s);

}  // namespace sutra::sample

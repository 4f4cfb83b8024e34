// Per-ISA table of the sampler's full-vocabulary passes. Every level computes
// bit-identical results: elementwise float32 ops without contraction (these
// files build with -ffp-contract=off) and exact integer sums of fixed-point
// weights (fast_exp.h: to_fixed), so the draw never depends on the ISA.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/isa_dispatch.h"
#include "sample/fast_exp.h"

namespace sutra::sample {

// Which tokens survive the filters: e >= thr, and (top-k) z > zk or (z == zk and i <= ik).
struct KeepRule {
  float thr;
  float zk;
  int64_t ik;  // >= n: no top-k
};

constexpr size_t kDrawBlock = 256;  // tempered_blocks' block
constexpr size_t kExpChunk = 256;   // exp_sum's chunk_max and sums
static_assert(kExpChunk == kDrawBlock, "exp_sum's sums serve tempered_find");

struct KernelTable {
  // max of x; *bad != 0 if any is NaN or +inf; copy (may be null) receives x.
  float (*max_check)(const float* x, size_t n, size_t* bad, float* copy) noexcept;
  size_t (*first_equal)(const float* z, size_t n, float m) noexcept;  // n if none
  // Top-k candidates: the order keys (fast_exp.h: z_key) >= key_lo, in order, into keys (room
  // for n + 16), their min / max into range; returns their count.
  size_t (*collect_keys)(const float* z, size_t n, uint32_t key_lo, uint32_t* keys, uint32_t* range) noexcept;
  // With w = n / 16: out[j] = z_key of the max of z[j + r w] over r < 16, for j < w (groups of
  // 16 tokens, one per row of a 16 x w table, so that the maxima are elementwise); returns w.
  size_t (*group_max)(const float* z, size_t n, uint32_t* out) noexcept;
  // Index of the r-th (1-based) i with z[i] == v (r <= their count).
  size_t (*nth_equal)(const float* z, size_t n, float v, size_t r) noexcept;
  // e = exp((z - m) * scale); returns sum to_fixed(e). (x * 1.0f == x: scale 1 is plain exp(z - m).)
  // chunk_max, sums (each may be null): max of e, sum of to_fixed(e) over each kExpChunk tokens;
  // e may be null when chunk_max is (the sums and total only).
  uint64_t (*exp_sum)(const float* z, size_t n, float m, float scale, float* e, float* chunk_max,
                      uint64_t* sums) noexcept;
  // exp_sum(z, n, m, 1, e, chunk_max, nullptr) and, in the same pass, w_sums[j] = the sum of
  // to_fixed(exp((z - m) * inv_t)) over each kExpChunk tokens (the tempered weights, not stored).
  uint64_t (*exp_sum2)(const float* z, size_t n, float m, float inv_t, float* e, float* chunk_max,
                       uint64_t* w_sums) noexcept;
  // sum of to_fixed(e[i]) over e[i] > v, reading only the chunks whose chunk_max exceeds v; may stop
  // (returning a partial sum >= limit) once the sum reaches limit.
  uint64_t (*mass_above)(const float* e, const float* chunk_max, size_t n, float v, uint64_t limit) noexcept;
  // w = exp((z - m) * inv_t).
  void (*tempered)(const float* z, size_t n, float m, float inv_t, float* w) noexcept;
  // Top-p guess: over the sampled tokens (coarse_bucket.h; every token if all) with e < h,
  // hist[c * kCoarseStride + bucket] += to_fixed(e) for four copies c (the caller adds them),
  // *sq = sum (q >> 16)^2.
  void (*coarse_sample)(const float* e, size_t n, float h, uint64_t* hist, uint64_t* sq, bool all) noexcept;
  // Top-p bracket, one exact pass: masses[0] = sum to_fixed(e) over e >= t_hi,
  // masses[1] = the same over t_lo <= e < t_hi, whose float bits go to band (in
  // order; room for n + 16) and their min / max to range[0] / range[1]. Returns the band count.
  // fill = false: when every band value is equal (range[0] == range[1]) band may be left unwritten.
  size_t (*split_band)(const float* e, size_t n, float t_hi, float t_lo, uint32_t* band,
                       uint64_t* masses, uint32_t* range, bool fill) noexcept;
  // Refinement inside the band (vals: float bits of e, count of them):
  // hist[c * nb + ((v - lo) >> shift)] += to_fixed(v) (1 if unit) over four copies c (zeroed by the caller);
  void (*band_hist)(const uint32_t* vals, size_t count, uint32_t lo, int shift, uint64_t* hist, size_t nb,
                    bool unit) noexcept;
  // keeps the vals in [lo, hi] (in place, in order), returns their count.
  size_t (*band_filter)(uint32_t* vals, size_t count, uint32_t lo, uint32_t hi) noexcept;
  // Weights of the kept tokens, to_fixed(tempered_weight(e, z, w)) (fast_exp.h): sums[j] = their
  // sum over tokens [256 j, 256 j + 256) (groups of 16 without a kept token are skipped); returns the total.
  uint64_t (*tempered_blocks)(const float* e, const float* z, size_t n, KeepRule k, Tempering w,
                              uint64_t* sums) noexcept;
  // First kept i whose running sum of those weights exceeds r (r < total), using sums.
  size_t (*tempered_find)(const float* e, const float* z, size_t n, KeepRule k, Tempering w, const uint64_t* sums,
                          uint64_t r) noexcept;
  // First kept i whose running sum of to_fixed(w) exceeds r (r < their total).
  size_t (*find_draw)(const float* e, const float* w, const float* z, size_t n, KeepRule k,
                      uint64_t r) noexcept;
};

}  // namespace sutra::sample

SUTRA_ISA_DECLARE(sutra::sample, sutra::sample::KernelTable)

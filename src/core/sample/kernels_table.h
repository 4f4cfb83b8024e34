// Per-ISA table of the sampler's full-vocabulary passes. Every level computes
// bit-identical results: elementwise float32 ops without contraction (these
// files build with -ffp-contract=off) and exact integer sums of fixed-point
// weights (fast_exp.h: to_fixed), so the draw never depends on the ISA.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/isa_dispatch.h"

namespace sutra::sample {

// Which tokens survive the filters: e >= thr, and (top-k) z > zk or (z == zk and i <= ik).
struct KeepRule {
  float thr;
  float zk;
  int64_t ik;  // >= n: no top-k
};

struct KernelTable {
  // max of x; *bad = how many are NaN or +inf.
  float (*max_check)(const float* x, size_t n, size_t* bad) noexcept;
  size_t (*first_equal)(const float* z, size_t n, float m) noexcept;  // n if none
  // e = exp((z - m) * scale); returns sum to_fixed(e). (x * 1.0f == x: scale 1 is plain exp(z - m).)
  uint64_t (*exp_sum)(const float* z, size_t n, float m, float scale, float* e) noexcept;
  // w = exp((z - m) * inv_t).
  void (*tempered)(const float* z, size_t n, float m, float inv_t, float* w) noexcept;
  // approx[j] ~ sum of e[i] over e[i] >= tau[j], four thresholds in one pass, summed in
  // float32 in any order (relative error <= n * 2^-24): an estimate used only with a margin.
  void (*approx_masses)(const float* e, size_t n, const float* tau, float* approx) noexcept;
  // Indices i with e[i] >= tau, in order, into idx (room for n); returns the count.
  size_t (*select_at_least)(const float* e, size_t n, float tau, int32_t* idx) noexcept;
  // sum of to_fixed(w[i]) over the kept tokens.
  uint64_t (*kept_total)(const float* e, const float* w, const float* z, size_t n, KeepRule k) noexcept;
  // First kept i whose running sum of to_fixed(w) exceeds r (r < kept_total).
  size_t (*find_draw)(const float* e, const float* w, const float* z, size_t n, KeepRule k,
                      uint64_t r) noexcept;
};

}  // namespace sutra::sample

SUTRA_ISA_DECLARE(sutra::sample, sutra::sample::KernelTable)

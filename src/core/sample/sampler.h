// Logits -> token id. Steps, in this order (the Python twin follows them op for op):
//  1. check logits: `vocab_size` float32 values, no NaN, no +inf (-inf allowed);
//  2. repetition penalty r (HF/CTRL rule) on every token present in the penalty
//     state: z > 0 -> z / r, else z * r   (float32, r rounded to float32);
//  3. presence/frequency: z -= presence + count * frequency for present tokens
//     (computed in double, rounded to float32);
//  4. logit bias: z += bias (float32); 5. banned tokens: z = -inf;
//  6. m = max z (all -inf -> std::invalid_argument); temperature 0 -> the first
//     index with z == m (greedy, lowest index on ties);
//  7. e = exp(z - m) in float32 (fast_exp.h), q = rint(e * 2^40) as uint64:
//     fixed-point probabilities whose sums are exact in any order;
//  8. filters on the T = 1 distribution, as the rwkv reference decides top-p
//     before temperature, each on the full vocabulary, intersected:
//     top-p: target = min(ceil(top_p * double(Q)), Q) with Q = sum q; keep
//       e >= the largest value v with sum(q[e >= v]) >= target (ties at the
//       cutoff kept, as in the reference; top_p = 0 keeps the tokens tied at
//       the max; top_p = 1 keeps everything) -- found without sorting, top_p.h;
//     top-k: keep the k largest z (ties: lower index first); 0 = off (a radix
//       select on order keys of z, top_p.h);
//     min-p: keep e >= min_p (e = p / p_max);
//  9. weights (temperature after top-p, as the reference): T = 1: q;
//     else w = rint(exp((z - m) * float32(1/T)) * 2^40) (fast_exp.h: tempered_weight);
// 10. no filter: draw r uniform in [0, sum w) with Rng::below, return the first
//     index whose running sum of w exceeds r. With filters, up to 8 proposals:
//     the same draw over P = the tokens top-k and min-p keep (every token
//     without top-k), accepted if top-p and min-p keep it; after 8 rejections
//     the same draw over the kept tokens. Both follow w over the kept tokens;
//     a proposal needs no top-p cut-off (kept iff the tokens with larger e hold
//     less than the target, one pass at most). top_p = 0, and T != 1 with top-p
//     alone whose target the tokens with e > h hold (h: top_p.h's heavy_threshold),
//     draw over the kept tokens at once. The RNG calls are part of the definition
//     (the twin makes them too).
// A Sampler keeps scratch buffers: use one per generation stream (not thread-safe).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "sample/kernels_table.h"
#include "sample/penalty_state.h"
#include "sample/rng.h"
#include "sample/top_p.h"

namespace sutra::sample {

struct SamplerParams {
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  double min_p = 0.0;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  double repetition_penalty = 1.0;
  std::vector<std::pair<int64_t, float>> logit_bias;
  std::vector<int64_t> banned;
};

// Throws std::invalid_argument naming the first bad parameter.
void validate(const SamplerParams& p, int64_t vocab_size);

class Sampler {
 public:
  Sampler(int64_t vocab_size, SamplerParams params);  // validates

  // logits: vocab_size floats (not modified). penalties may be null.
  int64_t sample(const float* logits, int64_t n, const PenaltyState* penalties, Rng& rng);
  // Steps 1-5 only: the processed logits (for tests and inspection).
  void process(const float* logits, int64_t n, const PenaltyState* penalties, float* out) const;

  const SamplerParams& params() const noexcept { return params_; }
  int64_t vocab_size() const noexcept { return vocab_size_; }

 private:
  int64_t vocab_size_;
  SamplerParams params_;
  // Steps 1 (and the max): copy (may be null) receives the logits in the same pass.
  void check(const float* logits, int64_t n, const PenaltyState* pen, float* max_out, float* copy) const;
  bool modifies(const PenaltyState* pen) const noexcept;
  void apply(const PenaltyState* pen, float* z) const noexcept;
  // Step 8's top-k: sets rule.zk / rule.ik when top-k drops tokens and returns how
  // many tokens have z >= zk (0 when it drops none).
  uint64_t top_k_rule(const float* z, size_t N, float m, KeepRule& rule);
  // True if the tokens top-k keeps (z >= zk; reach of them) surely hold less than top-p's target mass.
  bool top_k_under(const float* e, size_t N, float m, float zk, uint64_t reach, uint64_t target);
  // The max of z = apply(logits) given m = the max of logits.
  float max_after_apply(const float* logits, const PenaltyState* pen, float m, const float* z) const noexcept;

  std::vector<float> z_, e_, w_, chunk_max_;
  bool proposed_last_ = false;  // the last filtered draw proposed (a speed guess only, see sample())
  std::vector<uint64_t> sums_;
  TopPScratch top_p_;
  // vocab_size <= 2^22 keeps every sum of fixed-point weights (<= 2^40 each) below 2^63.
};

}  // namespace sutra::sample

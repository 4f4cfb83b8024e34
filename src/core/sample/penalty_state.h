// Presence / frequency / repetition penalty state, the reference's rule
// (rwkv PIPELINE.generate): after each generated token every count decays by
// `decay`, then the new token's count grows by its weight (1, or 0 for the
// ids given as zero-weight: the reference uses 0 for tokens that decode to
// whitespace or digits). A token, once seen, stays "present" even at count 0.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sutra::sample {

class PenaltyState {
 public:
  // vocab_size >= 1, decay in [0, 1]; zero_weight ids in range. Throws std::invalid_argument.
  PenaltyState(int64_t vocab_size, double decay, const std::vector<int64_t>& zero_weight_ids);

  void update(int64_t token);  // throws std::invalid_argument for an out-of-range id
  void reset() noexcept;

  int64_t vocab_size() const noexcept { return static_cast<int64_t>(counts_.size()); }
  double decay() const noexcept { return decay_; }
  const std::vector<int32_t>& present() const noexcept { return present_ids_; }  // first-seen order
  const std::vector<double>& counts() const noexcept { return counts_; }
  double weight(int64_t token) const noexcept { return weights_[static_cast<size_t>(token)]; }

 private:
  double decay_;
  std::vector<double> counts_;
  std::vector<double> weights_;
  std::vector<uint8_t> seen_;
  std::vector<int32_t> present_ids_;
};

}  // namespace sutra::sample

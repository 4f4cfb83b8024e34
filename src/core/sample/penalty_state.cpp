#include "sample/penalty_state.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace sutra::sample {

PenaltyState::PenaltyState(int64_t vocab_size, double decay,
                           const std::vector<int64_t>& zero_weight_ids) {
  if (vocab_size < 1 || vocab_size > (int64_t{1} << 22))
    throw std::invalid_argument("vocab_size must be in [1, 4194304], got " + std::to_string(vocab_size));
  if (!(decay >= 0.0 && decay <= 1.0))
    throw std::invalid_argument("penalty_decay must be in [0, 1], got " + std::to_string(decay));
  decay_ = decay;
  const size_t n = static_cast<size_t>(vocab_size);
  counts_.assign(n, 0.0);
  weights_.assign(n, 1.0);
  seen_.assign(n, 0);
  for (int64_t id : zero_weight_ids) {
    if (id < 0 || id >= vocab_size)
      throw std::invalid_argument("zero_weight_ids: token id " + std::to_string(id) +
                                  " is out of range [0, " + std::to_string(vocab_size) + ")");
    weights_[static_cast<size_t>(id)] = 0.0;
  }
}

void PenaltyState::update(int64_t token) {
  if (token < 0 || token >= vocab_size())
    throw std::invalid_argument("token id " + std::to_string(token) + " is out of range [0, " +
                                std::to_string(vocab_size()) + ")");
  for (int32_t t : present_ids_) counts_[static_cast<size_t>(t)] *= decay_;
  const size_t i = static_cast<size_t>(token);
  if (!seen_[i]) {
    seen_[i] = 1;
    present_ids_.push_back(static_cast<int32_t>(token));
  }
  counts_[i] += weights_[i];
}

void PenaltyState::reset() noexcept {
  for (int32_t t : present_ids_) {
    counts_[static_cast<size_t>(t)] = 0.0;
    seen_[static_cast<size_t>(t)] = 0;
  }
  present_ids_.clear();
}

}  // namespace sutra::sample

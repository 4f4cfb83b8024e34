#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "sample/fast_exp.h"
#include "sample/kernels_table.h"
#include "sample/top_p.h"

namespace sutra::sample {
namespace {

const KernelTable& kernels() { return SUTRA_ISA_SELECT(sutra::sample); }

constexpr int kTrials = 8;  // proposals before the direct draw from the kept tokens

[[noreturn]] void bad(const std::string& name, const std::string& msg) {
  throw std::invalid_argument(name + " " + msg);
}

}  // namespace

void validate(const SamplerParams& p, int64_t vocab_size) {
  if (vocab_size < 1 || vocab_size > (int64_t{1} << 22))
    bad("vocab_size", "must be in [1, 4194304], got " + std::to_string(vocab_size));
  if (!(p.temperature >= 0.0 && std::isfinite(p.temperature)))
    bad("temperature", "must be a finite number >= 0 (0 = greedy), got " + std::to_string(p.temperature));
  if (!(p.top_p >= 0.0 && p.top_p <= 1.0)) bad("top_p", "must be in [0, 1], got " + std::to_string(p.top_p));
  if (p.top_k < 0) bad("top_k", "must be >= 0 (0 = off), got " + std::to_string(p.top_k));
  if (!(p.min_p >= 0.0 && p.min_p <= 1.0)) bad("min_p", "must be in [0, 1], got " + std::to_string(p.min_p));
  if (!std::isfinite(p.presence_penalty)) bad("presence_penalty", "must be finite");
  if (!std::isfinite(p.frequency_penalty)) bad("frequency_penalty", "must be finite");
  if (!(p.repetition_penalty > 0.0 && std::isfinite(p.repetition_penalty)))
    bad("repetition_penalty", "must be a finite number > 0 (1 = off), got " +
                                  std::to_string(p.repetition_penalty));
  for (const auto& [id, b] : p.logit_bias) {
    if (id < 0 || id >= vocab_size)
      bad("logit_bias", "token id " + std::to_string(id) + " is out of range [0, " +
                            std::to_string(vocab_size) + ")");
    if (std::isnan(b) || b == std::numeric_limits<float>::infinity())
      bad("logit_bias", "value for token " + std::to_string(id) + " must be finite or -inf");
  }
  for (int64_t id : p.banned)
    if (id < 0 || id >= vocab_size)
      bad("banned_tokens", "token id " + std::to_string(id) + " is out of range [0, " +
                               std::to_string(vocab_size) + ")");
}

Sampler::Sampler(int64_t vocab_size, SamplerParams params)
    : vocab_size_(vocab_size), params_(std::move(params)) {
  validate(params_, vocab_size_);
  const size_t n = static_cast<size_t>(vocab_size_);
  z_.resize(n);
  e_.resize(n);
  w_.resize(n);
  sums_.resize(n / kDrawBlock + 1);
  top_p_.band.resize(n + 16);  // + 16: vector compress stores whole vectors
  top_p_.maxima.resize(n / 16 + 1);
  chunk_max_.resize(n / kExpChunk + 1);
}

void Sampler::check(const float* logits, int64_t n, const PenaltyState* pen, float* max_out, float* copy) const {
  if (n != vocab_size_)
    bad("logits", "must have " + std::to_string(vocab_size_) + " values (the sampler's vocab_size), got " +
                      std::to_string(n));
  if (pen && pen->vocab_size() != vocab_size_)
    bad("penalties", "vocab_size " + std::to_string(pen->vocab_size()) + " != sampler vocab_size " +
                         std::to_string(vocab_size_));
  size_t nbad = 0;
  *max_out = kernels().max_check(logits, static_cast<size_t>(n), &nbad, copy);
  if (nbad) {
    for (int64_t i = 0; i < n; ++i)
      if (!(logits[i] < std::numeric_limits<float>::infinity()) &&
          logits[i] != -std::numeric_limits<float>::infinity())
        bad("logits", "contain " + std::string(std::isnan(logits[i]) ? "NaN" : "+inf") + " at index " +
                          std::to_string(i));
  }
}

bool Sampler::modifies(const PenaltyState* pen) const noexcept {
  const SamplerParams& p = params_;
  const bool penal = pen && !pen->present().empty() &&
                     (p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0);
  return penal || !p.logit_bias.empty() || !p.banned.empty();
}

void Sampler::apply(const PenaltyState* pen, float* z) const noexcept {
  const SamplerParams& p = params_;
  if (pen) {
    if (p.repetition_penalty != 1.0) {
      const float r = static_cast<float>(p.repetition_penalty);
      for (int32_t t : pen->present()) z[t] = z[t] > 0.0f ? z[t] / r : z[t] * r;
    }
    if (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0) {
      const std::vector<double>& c = pen->counts();
      for (int32_t t : pen->present())
        z[t] = static_cast<float>(static_cast<double>(z[t]) -
                                  (p.presence_penalty + c[static_cast<size_t>(t)] * p.frequency_penalty));
    }
  }
  for (const auto& [id, b] : p.logit_bias) z[id] = z[id] + b;
  for (int64_t id : p.banned) z[id] = -std::numeric_limits<float>::infinity();
}

void Sampler::process(const float* logits, int64_t n, const PenaltyState* pen, float* z) const {
  float m;
  check(logits, n, pen, &m, z);
  apply(pen, z);
}

float Sampler::max_after_apply(const float* logits, const PenaltyState* pen, float m, const float* z) const noexcept {
  // apply() changes only these tokens: unless one of them held the old max m
  // (which may have dropped), the max is m or one of their new values.
  float best = m;
  bool rescan = false;
  auto visit = [&](int64_t id) {
    rescan |= logits[id] == m;
    best = z[id] > best ? z[id] : best;
  };
  if (pen)
    for (int32_t t : pen->present()) visit(t);
  for (const auto& [id, b] : params_.logit_bias) visit(id);
  for (int64_t id : params_.banned) visit(id);
  if (!rescan) return best;
  size_t unused;
  return kernels().max_check(z, static_cast<size_t>(vocab_size_), &unused, nullptr);
}

namespace {

// A z below which exp_nonpos(z - m) < thr surely: m + ln(thr) less a margin for
// the float rounding of z - m and exp_nonpos's error (< 2e-7 relative, which is
// not monotone to the last bit). -inf for thr = 0.
float z_floor(float thr, float m) noexcept {
  if (!(thr > 0.0f)) return -std::numeric_limits<float>::infinity();
  const double l = std::log(static_cast<double>(thr));
  const double zl = static_cast<double>(m) + l - 1e-3 - (std::fabs(static_cast<double>(m)) + std::fabs(l)) * 0x1.0p-18;
  if (zl < -static_cast<double>(std::numeric_limits<float>::max())) return -std::numeric_limits<float>::infinity();
  float f = static_cast<float>(zl);
  if (static_cast<double>(f) > zl) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

// Smallest float f with double(f) >= x, for x in [0, 1].
float float_at_least(double x) noexcept {
  float f = static_cast<float>(x);
  if (static_cast<double>(f) < x) f = std::nextafter(f, 2.0f);
  return f;
}

}  // namespace

uint64_t Sampler::top_k_rule(const float* z, size_t N, float m, KeepRule& rule) {
  // The k-th best (z desc, index asc). Candidates: the tokens with z >= z_lo,
  // the best c tokens, where z_lo is at most the z of any token the other
  // filters keep (rule.thr so far); if c < k top-k drops none of them. Else a
  // radix select on their order keys. For a small k the candidates are first
  // cut to those reaching the k-th largest maximum of disjoint groups of 16
  // tokens (k groups hold a token at least that large, so the k best all reach it).
  const KernelTable& K = kernels();
  const uint64_t k = static_cast<uint64_t>(params_.top_k);
  uint32_t key_lo = z_key(z_floor(rule.thr, m));
  bool bounded = false;
  if (k * 64 <= static_cast<uint64_t>(N)) {
    const size_t groups = K.group_max(z, N, top_p_.maxima.data());
    uint32_t lo = ~0u, hi = 0;
    for (size_t g = 0; g < groups; ++g) {
      lo = std::min(lo, top_p_.maxima[g]);
      hi = std::max(hi, top_p_.maxima[g]);
    }
    const uint32_t bound = kth_largest_key(top_p_.maxima.data(), groups, lo, hi, k, top_p_).key;
    bounded = bound > key_lo;
    key_lo = std::max(key_lo, bound);
  }
  uint32_t range[2];
  uint32_t* keys = top_p_.band.data();
  const size_t c = K.collect_keys(z, N, key_lo, keys, range);
  if (c > k || (bounded && c == k)) {  // (bounded: at least k tokens reach the bound)
    const KthKey kth = kth_largest_key(keys, c, range[0], range[1], k, top_p_);
    rule.zk = key_to_z(kth.key);
    rule.ik = static_cast<int64_t>(K.nth_equal(z, N, rule.zk, static_cast<size_t>(k - kth.larger)));
    return kth.reach;  // every token with z >= zk is a candidate
  }
  return 0;
}

bool Sampler::top_k_under(const float* e, size_t N, float m, float zk, uint64_t reach, uint64_t target) {
  // Every token top-k keeps has z >= zk, so e >= exp(zk - m) less exp_nonpos's
  // non-monotonicity (< 1e-6 relative): u below. If the tokens with e >= u hold
  // less than the target, the top-p cut-off lies below all of them.
  if (zk == -std::numeric_limits<float>::infinity()) return false;  // top-k drops nothing
  const float u = exp_nonpos(zk - m) * (1.0f - 0x1.0p-16f);
  if (!(u > 0.0f) || reach * to_fixed(u) >= target) return false;  // (reach tokens have z >= zk)
  const KernelTable& K = kernels();
  uint64_t mass = 0;
  for (size_t c = 0; c * kExpChunk < N; ++c) {  // only the exp chunks that reach u
    if (!(chunk_max_[c] >= u)) continue;
    uint64_t masses[2];
    uint32_t range[2];
    K.split_band(e + c * kExpChunk, std::min(kExpChunk, N - c * kExpChunk), u, u, top_p_.band.data(), masses,
                 range, false);
    mass += masses[0];
    if (mass >= target) return false;
  }
  return true;
}

int64_t Sampler::sample(const float* logits, int64_t n, const PenaltyState* pen, Rng& rng) {
  const KernelTable& K = kernels();
  const SamplerParams& p = params_;
  const size_t N = static_cast<size_t>(n);
  float m;
  const float* z = logits;
  if (modifies(pen)) {  // work on a copy (made by the check); the caller's logits stay untouched
    check(logits, n, pen, &m, z_.data());
    apply(pen, z_.data());
    m = max_after_apply(logits, pen, m, z_.data());
    z = z_.data();
  } else {
    check(logits, n, pen, &m, nullptr);
  }
  if (m == -std::numeric_limits<float>::infinity())
    bad("logits", "are -inf for every token (all banned?): nothing to sample");
  // Greedy: T = 0; a T so small that 1/T overflows float (the weights would be
  // inf * 0 = NaN); or a logit that a penalty or bias pushed to +inf, which
  // outranks every finite one.
  if (p.temperature == 0.0 || !(1.0 / p.temperature <= std::numeric_limits<float>::max()) ||
      m == std::numeric_limits<float>::infinity())
    return static_cast<int64_t>(K.first_equal(z, N, m));

  const bool nucleus = p.top_p < 1.0;
  const bool tempered = p.temperature != 1.0;
  const float inv_t = static_cast<float>(1.0 / p.temperature);
  const bool filtered = nucleus || p.min_p > 0.0 || (p.top_k > 0 && p.top_k < n);
  if (!filtered) {
    // Every token kept: only the weights w = exp((z - m) / T) are needed; they
    // also stand in for e in the keep test (w >= 0 always holds).
    const uint64_t total = K.exp_sum(z, N, m, tempered ? inv_t : 1.0f, w_.data(), nullptr, nullptr);
    const KeepRule all{0.0f, -std::numeric_limits<float>::infinity(), n};
    return static_cast<int64_t>(K.find_draw(w_.data(), w_.data(), z, N, all, rng.below(total)));
  }

  // 7. e = exp(z - m) and Q = sum of its fixed-point weights (top-p's total);
  // at T = 1 without top-k the same pass sums every token's draw weight per block.
  const bool top_k = p.top_k > 0 && p.top_k < n;
  const Tempering weigh{tempered ? Temper::kExp : Temper::kNone, m, inv_t};
  float* e = e_.data();
  float* chunk_max = chunk_max_.data();
  // At T != 1 top-p alone needs the tempered weights' sums only when it proposes
  // (not when its cut-off is among the heavy tokens): made in the same pass when
  // the previous call proposed (a stream's distributions change slowly; the
  // tokens never depend on this guess, only the time).
  const bool sums_now = !top_k && (!tempered || !nucleus || proposed_last_);
  uint64_t Q = 0;
  if (sums_now && tempered)
    Q = K.exp_sum2(z, N, m, inv_t, e, chunk_max, sums_.data());
  else if (nucleus || sums_now)
    Q = K.exp_sum(z, N, m, 1.0f, e, chunk_max, sums_now ? sums_.data() : nullptr);
  else
    K.tempered(z, N, m, 1.0f, e);
  const uint64_t target =
      nucleus ? std::min<uint64_t>(static_cast<uint64_t>(std::ceil(p.top_p * static_cast<double>(Q))), Q) : 0;
  const float min_thr = p.min_p > 0.0 ? float_at_least(p.min_p) : 0.0f;

  // 8-10. P = the tokens top-k and min-p keep (every token without top-k).
  KeepRule prop{0.0f, -std::numeric_limits<float>::infinity(), n};
  uint64_t reach = 0;
  if (top_k) {
    prop.thr = min_thr;
    reach = top_k_rule(z, N, m, prop);
  }
  // top-p keeps every token of P when P's tokens surely hold less than its target.
  const bool top_p_keeps_all = !nucleus || (top_k && target != 0 && top_k_under(e, N, m, prop.zk, reach, target));
  // top_p = 0, or T != 1 and top-p without top-k whose cut-off is a heavy token
  // (e > h; a confident model): the kept set is found at once and drawn from
  // directly, without the tempered weights of every token.
  const bool direct = nucleus && !top_k &&
                      (target == 0 || (tempered && K.mass_above(e, chunk_max, N, heavy_threshold(Q), target) >= target));
  proposed_last_ = !direct;
  if (!direct) {  // proposals from P by the weights, accepted if top-p and min-p keep them
    uint64_t prop_total = 0;
    if (top_k) {
      prop_total = K.tempered_blocks(e, z, N, prop, weigh, sums_.data());
    } else {
      if (!sums_now)  // the tempered weights of every token, summed per block
        prop_total = K.exp_sum(z, N, m, inv_t, nullptr, nullptr, sums_.data());
      else
        for (size_t b = 0; b * kDrawBlock < N; ++b) prop_total += sums_[b];
    }
    for (int trial = 0; trial < kTrials; ++trial) {
      const size_t i = K.tempered_find(e, z, N, prop, weigh, sums_.data(), rng.below(prop_total));
      if (!(e[i] >= min_thr)) continue;
      // top-p keeps i iff the tokens with e > e[i] hold less than the target (top_p.h's
      // cut-off v is the largest value whose tokens with e >= v reach it); top_p = 0: iff e[i] == 1.
      if (top_p_keeps_all || (target == 0 ? e[i] >= 1.0f : K.mass_above(e, chunk_max, N, e[i], target) < target))
        return static_cast<int64_t>(i);
    }
  }

  // The kept set exactly, and one draw from it.
  KeepRule rule = prop;
  rule.thr = min_thr;
  uint64_t cut_mass = 0;  // the mass of e >= the top-p cut-off
  if (!top_p_keeps_all) {
    if (target == 0) {
      rule.thr = 1.0f;  // the tokens tied at the max (e == 1 exactly)
    } else {
      const TopPCutoff c = top_p_cutoff(e, chunk_max, N, target, Q, top_p_);
      rule.thr = std::max(c.value, min_thr);
      if (rule.thr == c.value) cut_mass = c.mass;
    }
  }
  if (cut_mass != 0 && !tempered && !top_k)  // T = 1, top-p alone: the weights are q, their total known
    return static_cast<int64_t>(K.find_draw(e, e, z, N, rule, rng.below(cut_mass)));
  const uint64_t kept_total = K.tempered_blocks(e, z, N, rule, weigh, sums_.data());
  if (kept_total == 0) bad("logits", "leave no token with non-zero probability");  // the max is always kept
  return static_cast<int64_t>(K.tempered_find(e, z, N, rule, weigh, sums_.data(), rng.below(kept_total)));
}

}  // namespace sutra::sample

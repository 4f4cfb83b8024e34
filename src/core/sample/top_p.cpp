#include "sample/top_p.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "sample/coarse_bucket.h"
#include "sample/fast_exp.h"
#include "sample/kernels_table.h"

namespace sutra::sample {
namespace {

constexpr int kLevelBits = 10;  // refinement: 1024 buckets a level
constexpr size_t kSortBelow = 64;

// e >= e_at_least(v)  <=>  coarse_bucket(bits(1) - bits(e)) <= v.
float e_at_least(uint32_t v) noexcept {
  uint32_t lo = 0, hi = kOneBits;  // largest d with bucket(d) <= v, by bisection
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    if (coarse_bucket(mid) <= v) lo = mid;
    else hi = mid - 1;
  }
  return bits_to_float(kOneBits - lo);
}

uint64_t fixed_of_bits(uint32_t b) noexcept { return to_fixed(bits_to_float(b)); }

struct Selected {
  uint32_t value;
  uint64_t mass;   // of the vals >= value
  uint64_t above;  // of the vals > value
};

// Largest v among vals with sum(w(vals >= v)) >= need (1 <= need <= sum of all),
// w(v) = to_fixed(float v) or 1 (unit). [lo, hi] = the range of vals, which are
// reordered and overwritten.
Selected refine(const KernelTable& K, uint32_t* vals, size_t count, uint32_t lo, uint32_t hi, uint64_t need,
                std::vector<uint64_t>& hist, bool unit = false) {
  auto w = [unit](uint32_t v) { return unit ? uint64_t{1} : fixed_of_bits(v); };
  uint64_t above = 0;  // mass of the values already known to lie above the cut-off
  for (bool first = true;; first = false) {
    if (!first) {
      lo = hi = vals[0];
      for (size_t k = 1; k < count; ++k) {
        lo = std::min(lo, vals[k]);
        hi = std::max(hi, vals[k]);
      }
    }
    if (lo == hi) return {lo, above + count * w(lo), above};
    if (count <= kSortBelow) {
      std::sort(vals, vals + count, std::greater<uint32_t>());
      uint64_t acc = 0;
      for (size_t k = 0; k < count;) {
        const uint32_t v = vals[k];
        const uint64_t before = acc;
        for (; k < count && vals[k] == v; ++k) acc += w(v);
        if (acc >= need) return {v, above + acc, above + before};
      }
      return {vals[count - 1], above + acc, above + acc};  // not reached
    }
    const uint32_t span = hi - lo;
    const int width = 32 - __builtin_clz(span);
    const int shift = width > kLevelBits ? width - kLevelBits : 0;
    const size_t nb = static_cast<size_t>(span >> shift) + 1;
    // Four interleaved histograms: runs of one bucket do not wait on each other.
    hist.assign(4 * nb, 0);
    const uint64_t* h = hist.data();
    K.band_hist(vals, count, lo, shift, hist.data(), nb, unit);
    size_t b = nb - 1;
    uint64_t acc = 0;
    for (;; --b) {
      const uint64_t m = h[b] + h[nb + b] + h[2 * nb + b] + h[3 * nb + b];
      if (acc + m >= need || b == 0) break;
      acc += m;
    }
    need -= acc;
    above += acc;
    const uint32_t from = lo + (static_cast<uint32_t>(b) << shift);
    const size_t kept = K.band_filter(vals, count, from, from + ((1u << shift) - 1));
    count = kept;
  }
}

}  // namespace

TopPCutoff top_p_cutoff(const float* e, const float* chunk_max, size_t n, uint64_t target, uint64_t Q,
                        TopPScratch& s) {
  const KernelTable& K = SUTRA_ISA_SELECT(sutra::sample);
  uint64_t mass[2];
  uint32_t range[2];
  // 1. Heavy tokens, e >= h with h ~ Q / 1024 (so at most ~1024 of them): the
  // mass a strided sample could miss. If they hold the target, the cut-off is one of them.
  const float h = heavy_threshold(Q);
  // Only the chunks whose max reaches h are read.
  size_t count = 0;
  uint64_t heavy = 0;
  range[0] = ~0u;
  range[1] = 0;
  for (size_t c = 0; c * kExpChunk < n; ++c) {
    if (!(chunk_max[c] >= h)) continue;
    uint32_t r[2];
    const size_t len = std::min(kExpChunk, n - c * kExpChunk);
    count += K.split_band(e + c * kExpChunk, len, 2.0f, h, s.band.data() + count, mass, r, true);
    heavy += mass[1];
    range[0] = std::min(range[0], r[0]);
    range[1] = std::max(range[1], r[1]);
  }
  if (heavy >= target) {
    const Selected c = refine(K, s.band.data(), count, range[0], range[1], target, s.hist);
    return {bits_to_float(c.value), c.mass};
  }

  // 2. Coarse mass histogram of a sample of the light tokens: 16 consecutive
  // tokens out of every 128, at an offset that moves from block to block (so
  // periodic logits cannot hide from it). The band [b1, b2] of buckets should
  // hold the cut-off (bucket 0 is the largest e).
  const bool sampled = n >= 16 * kSampleBlock;  // else every token, exactly
  size_t stride = sampled ? kSampleBlock / kSampleRun : 1;
  uint64_t sq = 0;  // sum of (q / 2^16)^2
  s.coarse.assign(4 * kCoarseStride, 0);
  K.coarse_sample(e, n, h, s.coarse.data(), &sq, !sampled);
  auto bucket_mass = [&](size_t b) {
    return s.coarse[b] + s.coarse[kCoarseStride + b] + s.coarse[2 * kCoarseStride + b] + s.coarse[3 * kCoarseStride + b];
  };
  // Sampling error: about stride * sqrt(sum q^2 of the sample); 2 of those, plus slack.
  double margin = !sampled ? 0.0
                           : 2.0 * stride * std::sqrt(static_cast<double>(sq)) * 0x1.0p16 +
                                 static_cast<double>(stride) * static_cast<double>(Q >> 12);
  if (sampled) {
    // A sample that misjudges the total mass badly misses where the mass is
    // (logits built against this sample pattern): count every token instead.
    double total = static_cast<double>(heavy);
    for (size_t b = 0; b < kCoarse; ++b) total += static_cast<double>(stride) * static_cast<double>(bucket_mass(b));
    if (std::fabs(total - static_cast<double>(Q)) > 4.0 * margin) {
      s.coarse.assign(4 * kCoarseStride, 0);
      K.coarse_sample(e, n, h, s.coarse.data(), &sq, true);
      stride = 1;
      margin = 0.0;
    }
  }
  const double want_lo = static_cast<double>(target) - margin, want_hi = static_cast<double>(target) + margin;
  size_t b1 = kCoarse - 1, b2 = kCoarse - 1;
  uint64_t light = 0;  // exact integers when every token was counted (stride 1, no margin)
  bool have_b1 = false;
  for (size_t b = 0; b < kCoarse; ++b) {
    light += bucket_mass(b);
    const double est = static_cast<double>(heavy) + static_cast<double>(stride) * static_cast<double>(light);
    const bool exact = stride == 1, reached = heavy + light >= target;
    if (!have_b1 && (exact ? reached : est >= want_lo)) {
      b1 = b;
      have_b1 = true;
    }
    if (exact ? reached : est >= want_hi) {
      b2 = b;
      break;
    }
  }
  float t_hi = b1 == 0 ? 2.0f : e_at_least(static_cast<uint32_t>(b1 - 1));  // 2: nothing above
  float t_lo = e_at_least(static_cast<uint32_t>(b2));
  // 3. Exact masses; the band's values. A wrong guess costs a second pass.
  count = K.split_band(e, n, t_hi, t_lo, s.band.data(), mass, range, false);
  if (mass[0] >= target) {  // the cut-off lies above the band
    t_lo = t_hi;
    t_hi = 2.0f;
    count = K.split_band(e, n, t_hi, t_lo, s.band.data(), mass, range, false);
  } else if (mass[0] + mass[1] < target) {  // below it
    t_hi = t_lo;
    t_lo = 0.0f;
    count = K.split_band(e, n, t_hi, t_lo, s.band.data(), mass, range, false);
  }
  // 4. Exact select inside the band (all equal: that value, and the band may be unwritten).
  if (range[0] == range[1]) return {bits_to_float(range[0]), mass[0] + mass[1]};
  const Selected c = refine(K, s.band.data(), count, range[0], range[1], target - mass[0], s.hist);
  return {bits_to_float(c.value), mass[0] + c.mass};
}

KthKey kth_largest_key(uint32_t* keys, size_t count, uint32_t lo, uint32_t hi, uint64_t k, TopPScratch& s) {
  const Selected c = refine(SUTRA_ISA_SELECT(sutra::sample), keys, count, lo, hi, k, s.hist, true);
  return {c.value, c.above, c.mass};
}

}  // namespace sutra::sample

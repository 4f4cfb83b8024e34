// Compiled once per ISA level: the sampler's full-vocabulary passes, written
// as plain loops with masks instead of branches so that they vectorize.
#include <limits>

#include "sample/fast_exp.h"
#include "sample/kernels_table.h"

namespace sutra::sample::SUTRA_ISA_NS {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Max is exact in any order; NaN is counted, not compared.
float max_check(const float* x, size_t n, size_t* bad) noexcept {
  float m = -kInf;
  size_t b = 0;
#pragma omp simd reduction(max : m) reduction(+ : b)
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    b += static_cast<size_t>(!(v < kInf) & (v != -kInf));
    m = v > m ? v : m;
  }
  *bad = b;
  return m;
}

size_t first_equal(const float* z, size_t n, float m) noexcept {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (size_t j = 0; j < 16; ++j) hit |= z[i + j] == m;
    if (hit) break;
  }
  for (; i < n; ++i)
    if (z[i] == m) return i;
  return n;
}

uint64_t exp_sum(const float* z, size_t n, float m, float scale, float* e) noexcept {
  uint64_t total = 0;
#pragma omp simd reduction(+ : total)
  for (size_t i = 0; i < n; ++i) {
    const float v = exp_nonpos((z[i] - m) * scale);
    e[i] = v;
    total += to_fixed(v);
  }
  return total;
}

void tempered(const float* z, size_t n, float m, float inv_t, float* w) noexcept {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) w[i] = exp_nonpos((z[i] - m) * inv_t);
}

void approx_masses(const float* e, size_t n, const float* tau, float* approx) noexcept {
  const float t0 = tau[0], t1 = tau[1], t2 = tau[2], t3 = tau[3];
  float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
#pragma omp simd reduction(+ : m0, m1, m2, m3)
  for (size_t i = 0; i < n; ++i) {
    const float v = e[i];
    m0 += v >= t0 ? v : 0.0f;
    m1 += v >= t1 ? v : 0.0f;
    m2 += v >= t2 ? v : 0.0f;
    m3 += v >= t3 ? v : 0.0f;
  }
  approx[0] = m0;
  approx[1] = m1;
  approx[2] = m2;
  approx[3] = m3;
}

// Blocks of 16 are tested with one vector compare; only blocks with a hit are
// scanned (the candidates are usually few).
size_t select_at_least(const float* e, size_t n, float tau, int32_t* idx) noexcept {
  size_t k = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (size_t j = 0; j < 16; ++j) hit |= e[i + j] >= tau;
    if (!hit) continue;
    for (size_t j = i; j < i + 16; ++j) {
      idx[k] = static_cast<int32_t>(j);
      k += e[j] >= tau;
    }
  }
  for (; i < n; ++i) {
    idx[k] = static_cast<int32_t>(i);
    k += e[i] >= tau;
  }
  return k;
}

inline uint64_t kept_weight(const float* e, const float* w, const float* z, size_t i, const KeepRule& k) noexcept {
  const bool keep = (e[i] >= k.thr) & ((z[i] > k.zk) | ((z[i] == k.zk) & (static_cast<int64_t>(i) <= k.ik)));
  return to_fixed(w[i]) & (0 - static_cast<uint64_t>(keep));
}

uint64_t block_total(const float* e, const float* w, const float* z, size_t b, size_t end,
                     const KeepRule& k) noexcept {
  uint64_t s = 0;
  if (k.zk == -kInf) {  // no top-k (a token it would drop has z = -inf: weight 0 anyway)
#pragma omp simd reduction(+ : s)
    for (size_t i = b; i < end; ++i) s += to_fixed(w[i]) & (0 - static_cast<uint64_t>(e[i] >= k.thr));
  } else {
#pragma omp simd reduction(+ : s)
    for (size_t i = b; i < end; ++i) s += kept_weight(e, w, z, i, k);
  }
  return s;
}

uint64_t kept_total(const float* e, const float* w, const float* z, size_t n, KeepRule k) noexcept {
  return block_total(e, w, z, 0, n, k);
}

size_t find_draw(const float* e, const float* w, const float* z, size_t n, KeepRule k, uint64_t r) noexcept {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 256 <= n; i += 256) {
    const uint64_t s = block_total(e, w, z, i, i + 256, k);
    if (acc + s > r) break;
    acc += s;
  }
  for (; i < n; ++i) {
    acc += kept_weight(e, w, z, i, k);
    if (acc > r) return i;
  }
  return n - 1;
}

}  // namespace

extern const KernelTable kTable = {&max_check,     &first_equal,     &exp_sum,    &tempered,
                                   &approx_masses, &select_at_least, &kept_total, &find_draw};

}  // namespace sutra::sample::SUTRA_ISA_NS

// Compiled once per ISA level: the sampler's full-vocabulary passes, written
// as plain loops with masks instead of branches so that they vectorize.
#include <cstdint>
#include <limits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define SUTRA_SAMPLE_AVX512 1
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*().
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "sample/coarse_bucket.h"
#include "sample/fast_exp.h"
#include "sample/kernels_table.h"

namespace sutra::sample::SUTRA_ISA_NS {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Max is exact in any order; NaN is flagged, not compared. copy (may be null)
// receives x in the same pass.
float max_check(const float* x, size_t n, size_t* bad, float* copy) noexcept {
  float m = -kInf;
  int b = 0;
  if (copy) {
#pragma omp simd reduction(max : m) reduction(| : b)
    for (size_t i = 0; i < n; ++i) {
      const float v = x[i];
      copy[i] = v;
      b |= !(v < kInf) & (v != -kInf);
      m = v > m ? v : m;
    }
  } else {
#pragma omp simd reduction(max : m) reduction(| : b)
    for (size_t i = 0; i < n; ++i) {
      const float v = x[i];
      b |= !(v < kInf) & (v != -kInf);
      m = v > m ? v : m;
    }
  }
  *bad = static_cast<size_t>(b);
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

size_t group_max(const float* z, size_t n, uint32_t* out) noexcept {
  const size_t w = n / 16;
  float mx[256];
  for (size_t j0 = 0; j0 < w; j0 += 256) {  // row by row over 256 columns: plain vector maxima
    const size_t cols = w - j0 < 256 ? w - j0 : 256;
    for (size_t j = 0; j < cols; ++j) mx[j] = z[j0 + j];
    for (size_t r = 1; r < 16; ++r) {
      const float* row = z + r * w + j0;
#pragma omp simd
      for (size_t j = 0; j < cols; ++j) mx[j] = row[j] > mx[j] ? row[j] : mx[j];
    }
#pragma omp simd
    for (size_t j = 0; j < cols; ++j) out[j0 + j] = z_key(mx[j]);
  }
  return w;
}

size_t nth_equal(const float* z, size_t n, float v, size_t r) noexcept {
  size_t i = 0, seen = 0;
  for (; i + 16 <= n; i += 16) {  // count whole blocks of 16 until the one holding the r-th
    size_t c = 0;
#pragma omp simd reduction(+ : c)
    for (size_t j = i; j < i + 16; ++j) c += z[j] == v;
    if (seen + c >= r) break;
    seen += c;
  }
  for (; i < n; ++i)
    if (z[i] == v && ++seen == r) return i;
  return n - 1;  // not reached
}

#if SUTRA_SAMPLE_AVX512
// to_fixed of 16 lanes with one conversion per 8 (vcvtps2uqq rounds to nearest
// even, as rint): the same integers as fast_exp.h's to_fixed.
inline __m512i fixed_lo(__m512 v) noexcept {
  return _mm512_cvtps_epu64(_mm512_extractf32x8_ps(_mm512_mul_ps(v, _mm512_set1_ps(0x1.0p40f)), 0));
}
inline __m512i fixed_hi(__m512 v) noexcept {
  return _mm512_cvtps_epu64(_mm512_extractf32x8_ps(_mm512_mul_ps(v, _mm512_set1_ps(0x1.0p40f)), 1));
}
// (GCC 12's _mm512_reduce_add_epi64 trips -Wuninitialized in its own header.)
inline uint64_t lane_sum(__m512i v) noexcept {
  alignas(64) uint64_t l[8];
  _mm512_store_si512(l, v);
  return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}
inline __mmask16 tail_mask(size_t left) noexcept {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}
// fast_exp.h's exp_nonpos on 16 lanes, the same bits in ~18 instead of ~28
// instructions: vrndscaleps rounds to nearest even as the 1.5 * 2^23 trick does,
// vscalefps multiplies by 2^n exactly (every result is normal), and the lanes
// out of range are zeroed by the mask at the end instead of on the way in.
inline __m512 exp16(__m512 x) noexcept {
  const __mmask16 ok = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-80.0f), _CMP_GE_OQ);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(kLn2Hi)));
  r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(kLn2Lo)));
  __m512 p = _mm512_set1_ps(kExpC5);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kExpC4));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kExpC3));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kExpC2));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(ok, p, n);
}
// exp((z[i..i+16) - m) * s) on the lanes of t, 0 on the others; Scaled = false
// skips the multiply, for s = 1 (x * 1.0f == x: the same bits).
template <bool Scaled = true>
inline __m512 exp_at(const float* z, __mmask16 t, __m512 m, __m512 s) noexcept {
  const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(t, z), m);
  return _mm512_maskz_mov_ps(t, exp16(Scaled ? _mm512_mul_ps(x, s) : x));
}
#endif

// exp_sum's pass; Scaled = false skips the multiply by scale = 1 (x * 1.0f == x: the same bits).
template <bool Scaled>
uint64_t exp_sum_pass(const float* z, size_t n, float m, float scale, float* e, float* chunk_max,
                      uint64_t* sums) noexcept {
  uint64_t total = 0;
  for (size_t c = 0; c < n; c += kExpChunk) {
    const size_t end = c + kExpChunk < n ? c + kExpChunk : n;
#if SUTRA_SAMPLE_AVX512
    // One pass: exp, store, fixed-point sum (vcvtps2uqq) and chunk max.
    const __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_setzero_ps();
    __m512i acc = _mm512_setzero_si512();
    for (size_t i = c; i < end; i += 16) {
      const __mmask16 t = tail_mask(end - i);
      const __m512 v = exp_at<Scaled>(z + i, t, vm, vs);
      if (e) _mm512_mask_storeu_ps(e + i, t, v);  // (null: the sums only)
      acc = _mm512_add_epi64(acc, _mm512_add_epi64(fixed_lo(v), fixed_hi(v)));
      vmax = _mm512_max_ps(vmax, v);
    }
    const float mx = chunk_max ? _mm512_reduce_max_ps(vmax) : 0.0f;
    const uint64_t s = lane_sum(acc);
#else
    float mx = 0.0f;
    uint64_t s = 0;
    if (!e) {  // the sums only (a conditional store in the loop below would not vectorize)
#pragma omp simd reduction(+ : s)
      for (size_t i = c; i < end; ++i) s += to_fixed(exp_nonpos(Scaled ? (z[i] - m) * scale : z[i] - m));
    } else {
#pragma omp simd reduction(+ : s) reduction(max : mx)
      for (size_t i = c; i < end; ++i) {
        const float v = exp_nonpos(Scaled ? (z[i] - m) * scale : z[i] - m);
        e[i] = v;
        s += to_fixed(v);
        mx = v > mx ? v : mx;
      }
    }
#endif
    if (chunk_max) chunk_max[c / kExpChunk] = mx;
    if (sums) sums[c / kExpChunk] = s;
    total += s;
  }
  return total;
}

uint64_t exp_sum(const float* z, size_t n, float m, float scale, float* e, float* chunk_max,
                 uint64_t* sums) noexcept {
  return scale == 1.0f ? exp_sum_pass<false>(z, n, m, scale, e, chunk_max, sums)
                       : exp_sum_pass<true>(z, n, m, scale, e, chunk_max, sums);
}

uint64_t exp_sum2(const float* z, size_t n, float m, float inv_t, float* e, float* chunk_max,
                  uint64_t* w_sums) noexcept {
  uint64_t total = 0;
  for (size_t c = 0; c < n; c += kExpChunk) {
    const size_t end = c + kExpChunk < n ? c + kExpChunk : n;
#if SUTRA_SAMPLE_AVX512
    const __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(inv_t);
    __m512 mx = _mm512_setzero_ps();
    __m512i qs = _mm512_setzero_si512(), ws = _mm512_setzero_si512();
    for (size_t i = c; i < end; i += 16) {
      const __mmask16 t = tail_mask(end - i);
      const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(t, z + i), vm);
      const __m512 v = _mm512_maskz_mov_ps(t, exp16(x));
      const __m512 w = _mm512_maskz_mov_ps(t, exp16(_mm512_mul_ps(x, vs)));
      _mm512_mask_storeu_ps(e + i, t, v);
      qs = _mm512_add_epi64(qs, _mm512_add_epi64(fixed_lo(v), fixed_hi(v)));
      ws = _mm512_add_epi64(ws, _mm512_add_epi64(fixed_lo(w), fixed_hi(w)));
      mx = _mm512_max_ps(mx, v);
    }
    const float cmax = _mm512_reduce_max_ps(mx);
    const uint64_t q = lane_sum(qs), s = lane_sum(ws);
#else
    float cmax = 0.0f;
    uint64_t q = 0, s = 0;
#pragma omp simd reduction(+ : q, s) reduction(max : cmax)
    for (size_t i = c; i < end; ++i) {
      const float x = z[i] - m;
      const float v = exp_nonpos(x);
      e[i] = v;
      q += to_fixed(v);
      s += to_fixed(exp_nonpos(x * inv_t));
      cmax = v > cmax ? v : cmax;
    }
#endif
    chunk_max[c / kExpChunk] = cmax;
    w_sums[c / kExpChunk] = s;
    total += q;
  }
  return total;
}

uint64_t mass_above(const float* e, const float* chunk_max, size_t n, float v, uint64_t limit) noexcept {
  uint64_t mass = 0;
  for (size_t c = 0; c < n; c += kExpChunk) {
    if (!(chunk_max[c / kExpChunk] > v)) continue;  // nothing above v here
    const size_t end = c + kExpChunk < n ? c + kExpChunk : n;
#if SUTRA_SAMPLE_AVX512
    const __m512 vv = _mm512_set1_ps(v);
    __m512i s = _mm512_setzero_si512();
    for (size_t i = c; i < end; i += 16) {
      const __m512 ev = _mm512_maskz_loadu_ps(tail_mask(end - i), e + i);
      const __m512 a = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(ev, vv, _CMP_GT_OQ), ev);
      s = _mm512_add_epi64(s, _mm512_add_epi64(fixed_lo(a), fixed_hi(a)));
    }
    mass += lane_sum(s);
#else
    uint64_t s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = c; i < end; ++i) s += to_fixed(e[i]) & (0 - static_cast<uint64_t>(e[i] > v));
    mass += s;
#endif
    if (mass >= limit) return mass;
  }
  return mass;
}

void tempered(const float* z, size_t n, float m, float inv_t, float* w) noexcept {
#if SUTRA_SAMPLE_AVX512
  const __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(inv_t);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 t = tail_mask(n - i);
    _mm512_mask_storeu_ps(w + i, t, exp_at(z + i, t, vm, vs));
  }
#else
#pragma omp simd
  for (size_t i = 0; i < n; ++i) w[i] = exp_nonpos((z[i] - m) * inv_t);
#endif
}

void coarse_sample(const float* e, size_t n, float h, uint64_t* hist, uint64_t* sq, bool all) noexcept {
  // Buckets and weights of 64 runs first, then their scatter: reading lanes back
  // right after the vector store that wrote them would stall store forwarding.
  constexpr size_t kRuns = 64;
  uint64_t s = 0;
  alignas(64) uint32_t bk[kRuns * kSampleRun];
  alignas(64) uint64_t q[kRuns * kSampleRun];
  const size_t blocks = all ? n / kSampleRun : n / kSampleBlock;
  for (size_t blk0 = 0; blk0 < blocks; blk0 += kRuns) {
    const size_t runs = blocks - blk0 < kRuns ? blocks - blk0 : kRuns;
    for (size_t r = 0; r < runs; ++r) {
      const float* x = e + (all ? (blk0 + r) * kSampleRun : sample_start(blk0 + r));
      uint32_t* b = bk + r * kSampleRun;
      uint64_t* w = q + r * kSampleRun;
#if SUTRA_SAMPLE_AVX512
      const __m512 v = _mm512_loadu_ps(x);
      const __mmask16 light = _mm512_cmp_ps_mask(v, _mm512_set1_ps(h), _CMP_LT_OQ);
      const __m512i d = _mm512_sub_epi32(_mm512_set1_epi32(static_cast<int>(kOneBits)), _mm512_castps_si512(v));
      // float(d) rounded toward zero: its exponent and top five mantissa bits are coarse_bucket's.
      const __m512 f = _mm512_cvt_roundepu32_ps(d, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m512i c =
          _mm512_sub_epi32(_mm512_srli_epi32(_mm512_castps_si512(f), 18), _mm512_set1_epi32(127 * 32 - 1));
      _mm512_store_si512(b, _mm512_maskz_mov_epi32(_mm512_test_epi32_mask(d, d), c));
      const __m512i ql = _mm512_maskz_mov_epi64(static_cast<__mmask8>(light), fixed_lo(v));
      const __m512i qh = _mm512_maskz_mov_epi64(static_cast<__mmask8>(light >> 8), fixed_hi(v));
      _mm512_store_si512(w, ql);
      _mm512_store_si512(w + 8, qh);
      const __m512i sl = _mm512_srli_epi64(ql, 16), sh = _mm512_srli_epi64(qh, 16);
      s += lane_sum(_mm512_add_epi64(_mm512_mullo_epi64(sl, sl), _mm512_mullo_epi64(sh, sh)));
#elif defined(__AVX2__)
      // float(d) rounded to nearest can land one bucket up at a bucket edge: the
      // histogram is only an estimate (the exact pass decides), and it stays monotone.
      for (size_t h8 = 0; h8 < kSampleRun; h8 += 8) {
        const __m256i d = _mm256_sub_epi32(_mm256_set1_epi32(static_cast<int>(kOneBits)),
                                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + h8)));
        const __m256i c = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(d)), 18),
                                           _mm256_set1_epi32(127 * 32 - 1));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(b + h8),
                            _mm256_andnot_si256(_mm256_cmpeq_epi32(d, _mm256_setzero_si256()), c));
      }
      for (size_t j = 0; j < kSampleRun; ++j) {
        w[j] = to_fixed(x[j]) & (0 - static_cast<uint64_t>(x[j] < h));
        s += (w[j] >> 16) * (w[j] >> 16);
      }
#else
      for (size_t j = 0; j < kSampleRun; ++j) {
        b[j] = coarse_bucket(kOneBits - float_to_bits(x[j]));
        w[j] = to_fixed(x[j]) & (0 - static_cast<uint64_t>(x[j] < h));
        s += (w[j] >> 16) * (w[j] >> 16);
      }
#endif
    }
    for (size_t j = 0; j < runs * kSampleRun; j += 4)  // four copies: runs of one bucket do not wait
      for (size_t c = 0; c < 4; ++c) hist[c * kCoarseStride + bk[j + c]] += q[j + c];
  }
  for (size_t i = all ? blocks * kSampleRun : n; i < n; ++i) {  // the tail of an exact count
    const uint64_t w = to_fixed(e[i]) & (0 - static_cast<uint64_t>(e[i] < h));
    hist[coarse_bucket(kOneBits - float_to_bits(e[i]))] += w;
    s += (w >> 16) * (w >> 16);
  }
  *sq = s;
}

#if defined(__AVX2__) && !SUTRA_SAMPLE_AVX512
// For each 8-bit mask, the indices of its set lanes packed low, one byte each
// (an 8-lane compress for AVX2, which has no vcompressps).
struct LaneLists {
  uint64_t list[256];
  constexpr LaneLists() : list() {
    for (int m = 0; m < 256; ++m) {
      int k = 0;
      for (int l = 0; l < 8; ++l)
        if ((m >> l) & 1) list[m] |= static_cast<uint64_t>(l) << (8 * k++);
    }
  }
};
constexpr LaneLists kLanesOf{};
#endif

size_t split_band(const float* e, size_t n, float t_hi, float t_lo, uint32_t* band,
                  uint64_t* masses, uint32_t* range, bool fill) noexcept {
#if SUTRA_SAMPLE_AVX512
  const __m512 hi = _mm512_set1_ps(t_hi), lo = _mm512_set1_ps(t_lo);
  __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
  __m512i vmin = _mm512_set1_epi32(-1), vmax = _mm512_setzero_si512();
  size_t k = 0;
  // Without fill, the band is written only once a second distinct value shows up
  // (ties and uniform logits put tens of thousands of equal values in it).
  bool equal_so_far = !fill;
  __m512i first = _mm512_setzero_si512();
  auto step = [&](__m512 v, __mmask16 t) {
    const __mmask16 ma = _mm512_mask_cmp_ps_mask(t, v, hi, _CMP_GE_OQ);
    const __mmask16 mb = _mm512_mask_cmp_ps_mask(t & ~ma, v, lo, _CMP_GE_OQ);
    if (!(ma | mb)) return;
    const __m512i ql = fixed_lo(v), qh = fixed_hi(v);
    a = _mm512_mask_add_epi64(a, static_cast<__mmask8>(ma), a, ql);
    a = _mm512_mask_add_epi64(a, static_cast<__mmask8>(ma >> 8), a, qh);
    if (!mb) return;
    b = _mm512_mask_add_epi64(b, static_cast<__mmask8>(mb), b, ql);
    b = _mm512_mask_add_epi64(b, static_cast<__mmask8>(mb >> 8), b, qh);
    const __m512i bits = _mm512_castps_si512(v);
    vmin = _mm512_mask_min_epu32(vmin, mb, vmin, bits);
    vmax = _mm512_mask_max_epu32(vmax, mb, vmax, bits);
    if (equal_so_far) {
      if (k == 0) first = _mm512_set1_epi32(_mm_cvtsi128_si32(_mm512_castsi512_si128(_mm512_maskz_compress_epi32(mb, bits))));
      if (!(mb & _mm512_cmpneq_epi32_mask(bits, first))) {
        k += static_cast<size_t>(__builtin_popcount(mb));
        return;
      }
      for (size_t j = 0; j < k; j += 16) _mm512_storeu_si512(band + j, first);  // the copies skipped so far
      equal_so_far = false;
    }
    _mm512_storeu_si512(band + k, _mm512_maskz_compress_epi32(mb, bits));
    k += static_cast<size_t>(__builtin_popcount(mb));
  };
  size_t i = 0;
  for (; i + 16 <= n; i += 16) step(_mm512_loadu_ps(e + i), 0xFFFF);
  if (i < n) step(_mm512_maskz_loadu_ps(tail_mask(n - i), e + i), tail_mask(n - i));
  masses[0] = lane_sum(a);
  masses[1] = lane_sum(b);
  range[0] = static_cast<uint32_t>(_mm512_reduce_min_epu32(vmin));
  range[1] = static_cast<uint32_t>(_mm512_reduce_max_epu32(vmax));
  return k;
#else
  (void)fill;  // always written here
  uint64_t a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
  for (size_t i = 0; i < n; ++i) {
    const float v = e[i];
    const uint64_t q = to_fixed(v);
    a += q & (0 - static_cast<uint64_t>(v >= t_hi));
    b += q & (0 - static_cast<uint64_t>((v >= t_lo) & (v < t_hi)));
  }
  masses[0] = a;
  masses[1] = b;
  size_t k = 0, i = 0;
#if defined(__AVX2__) && !SUTRA_SAMPLE_AVX512
  // 8 lanes at a time, packed by vpermd with the lane list of the mask.
  const __m256 vlo = _mm256_set1_ps(t_lo), vhi = _mm256_set1_ps(t_hi);
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(e + i);
    const int mb = _mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(v, vlo, _CMP_GE_OQ), _mm256_cmp_ps(v, vhi, _CMP_LT_OQ)));
    if (!mb) continue;
    const __m256i lanes = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(kLanesOf.list[mb])));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(band + k),
                        _mm256_permutevar8x32_epi32(_mm256_castps_si256(v), lanes));
    k += static_cast<size_t>(__builtin_popcount(static_cast<unsigned>(mb)));
  }
#endif
  for (; i + 16 <= n; i += 16) {  // blocks without a band value are skipped
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (size_t j = i; j < i + 16; ++j) hit |= (e[j] >= t_lo) & (e[j] < t_hi);
    if (!hit) continue;
    for (size_t j = i; j < i + 16; ++j) {
      band[k] = float_to_bits(e[j]);
      k += (e[j] >= t_lo) & (e[j] < t_hi);
    }
  }
  for (; i < n; ++i) {
    band[k] = float_to_bits(e[i]);
    k += (e[i] >= t_lo) & (e[i] < t_hi);
  }
  uint32_t lo = ~0u, hi = 0;
  for (size_t j = 0; j < k; ++j) {
    lo = band[j] < lo ? band[j] : lo;
    hi = band[j] > hi ? band[j] : hi;
  }
  range[0] = lo;
  range[1] = hi;
  return k;
#endif
}

void band_hist(const uint32_t* vals, size_t count, uint32_t lo, int shift, uint64_t* hist, size_t nb,
               bool unit) noexcept {
  constexpr size_t kChunk = 1024;  // indices and weights first, then the scatter (see coarse_sample)
  alignas(64) uint32_t bk[kChunk];
  alignas(64) uint64_t q[kChunk];
  for (size_t c0 = 0; c0 < count; c0 += kChunk) {
    const size_t m = count - c0 < kChunk ? count - c0 : kChunk;
    const uint32_t* v = vals + c0;
#if SUTRA_SAMPLE_AVX512
    const __m512i vlo = _mm512_set1_epi32(static_cast<int>(lo));
    const __m128i sh = _mm_cvtsi32_si128(shift);
    for (size_t j = 0; j < m; j += 16) {
      const __mmask16 t = tail_mask(m - j);
      const __m512i x = _mm512_maskz_loadu_epi32(t, v + j);
      _mm512_store_si512(bk + j, _mm512_srl_epi32(_mm512_sub_epi32(x, vlo), sh));
      _mm512_store_si512(q + j, unit ? _mm512_set1_epi64(1) : fixed_lo(_mm512_castsi512_ps(x)));
      _mm512_store_si512(q + j + 8, unit ? _mm512_set1_epi64(1) : fixed_hi(_mm512_castsi512_ps(x)));
    }
#else
    for (size_t j = 0; j < m; ++j) {
      bk[j] = (v[j] - lo) >> shift;
      q[j] = unit ? 1 : to_fixed(bits_to_float(v[j]));
    }
#endif
    size_t j = 0;
    for (; j + 4 <= m; j += 4)
      for (size_t c = 0; c < 4; ++c) hist[c * nb + bk[j + c]] += q[j + c];
    for (; j < m; ++j) hist[bk[j]] += q[j];
  }
}

size_t band_filter(uint32_t* vals, size_t count, uint32_t lo, uint32_t hi) noexcept {
  size_t k = 0;
#if SUTRA_SAMPLE_AVX512
  const __m512i vlo = _mm512_set1_epi32(static_cast<int>(lo)), vhi = _mm512_set1_epi32(static_cast<int>(hi));
  for (size_t j = 0; j < count; j += 16) {  // k <= j: the store never passes the reads
    const __mmask16 t = tail_mask(count - j);
    const __m512i x = _mm512_maskz_loadu_epi32(t, vals + j);
    const __mmask16 m = _mm512_mask_cmp_epu32_mask(t, x, vlo, _MM_CMPINT_NLT) &
                        _mm512_cmp_epu32_mask(x, vhi, _MM_CMPINT_LE);
    if (!m) continue;
    _mm512_mask_storeu_epi32(vals + k, static_cast<__mmask16>((1u << __builtin_popcount(m)) - 1),
                             _mm512_maskz_compress_epi32(m, x));
    k += static_cast<size_t>(__builtin_popcount(m));
  }
#else
  for (size_t j = 0; j < count; ++j) {
    const uint32_t v = vals[j];
    if (v >= lo && v <= hi) vals[k++] = v;
  }
#endif
  return k;
}

size_t collect_keys(const float* z, size_t n, uint32_t key_lo, uint32_t* keys, uint32_t* range) noexcept {
  size_t k = 0;
#if SUTRA_SAMPLE_AVX512
  const __m512i klo = _mm512_set1_epi32(static_cast<int>(key_lo));
  __m512i vmin = _mm512_set1_epi32(-1), vmax = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 tm = tail_mask(n - i);
    // z + 0 turns -0 into +0 (they compare equal); negative keys flip all bits, others the sign.
    const __m512i b = _mm512_castps_si512(_mm512_add_ps(_mm512_maskz_loadu_ps(tm, z + i), _mm512_setzero_ps()));
    const __m512i key =
        _mm512_xor_si512(b, _mm512_or_si512(_mm512_srai_epi32(b, 31), _mm512_set1_epi32(INT32_MIN)));
    const __mmask16 m = _mm512_mask_cmp_epu32_mask(tm, key, klo, _MM_CMPINT_NLT);
    if (!m) continue;
    _mm512_storeu_si512(keys + k, _mm512_maskz_compress_epi32(m, key));
    k += static_cast<size_t>(__builtin_popcount(m));
    vmin = _mm512_mask_min_epu32(vmin, m, vmin, key);
    vmax = _mm512_mask_max_epu32(vmax, m, vmax, key);
  }
  range[0] = static_cast<uint32_t>(_mm512_reduce_min_epu32(vmin));
  range[1] = static_cast<uint32_t>(_mm512_reduce_max_epu32(vmax));
#else
  uint32_t lo = ~0u, hi = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t key = z_key(z[i]);
    keys[k] = key;
    if (key >= key_lo) {
      ++k;
      lo = key < lo ? key : lo;
      hi = key > hi ? key : hi;
    }
  }
  range[0] = lo;
  range[1] = hi;
#endif
  return k;
}

inline bool kept(const float* e, const float* z, size_t i, const KeepRule& k) noexcept {
  return (e[i] >= k.thr) & ((z[i] > k.zk) | ((z[i] == k.zk) & (static_cast<int64_t>(i) <= k.ik)));
}

uint64_t tempered_blocks(const float* e, const float* z, size_t n, KeepRule k, Tempering w,
                         uint64_t* sums) noexcept {
  uint64_t total = 0;
  const bool hot = w.mode == Temper::kExp;
#if SUTRA_SAMPLE_AVX512
  const __m512 thr = _mm512_set1_ps(k.thr), zk = _mm512_set1_ps(k.zk);
  const __m512i ik = _mm512_set1_epi32(static_cast<int32_t>(k.ik < INT32_MAX ? k.ik : INT32_MAX));
  const bool top_k = k.zk != -kInf;  // without top-k every z passes its test
  const __m512 vm = _mm512_set1_ps(w.m), vs = _mm512_set1_ps(w.s);
  // Tempered weights depend on z alone. Groups of 16 with at least 8 kept tokens
  // get them in a whole vector; the others' kept z are packed (+ 16: whole-vector
  // stores) and weighed in whole vectors after the block, without a branch.
  alignas(64) float kept_z[kDrawBlock + 16];
  for (size_t b = 0; b < n; b += kDrawBlock) {
    const size_t end = b + kDrawBlock < n ? b + kDrawBlock : n;
    size_t count = 0;
    __m512i s = _mm512_setzero_si512();
    for (size_t g = b; g < end; g += 16) {
      const __mmask16 t = tail_mask(end - g);
      const __m512 ev = _mm512_maskz_loadu_ps(t, e + g);
      __mmask16 keep = _mm512_mask_cmp_ps_mask(t, ev, thr, _CMP_GE_OQ);
      if (!keep) continue;  // (sparse filters: most groups)
      const __m512 zv = top_k || hot ? _mm512_maskz_loadu_ps(t, z + g) : ev;
      if (top_k) {
        const __m512i iv = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(g)),
                                            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        keep &= _mm512_cmp_ps_mask(zv, zk, _CMP_GT_OQ) |
                (_mm512_cmp_ps_mask(zv, zk, _CMP_EQ_OQ) & _mm512_cmp_epi32_mask(iv, ik, _MM_CMPINT_LE));
        if (!keep) continue;
      }
      if (!hot || __builtin_popcount(keep) >= 8) {
        const __m512 v = _mm512_maskz_mov_ps(keep, hot ? exp16(_mm512_mul_ps(_mm512_sub_ps(zv, vm), vs)) : ev);
        s = _mm512_add_epi64(s, _mm512_add_epi64(fixed_lo(v), fixed_hi(v)));
        continue;
      }
      _mm512_storeu_ps(kept_z + count, _mm512_maskz_compress_ps(keep, zv));
      count += static_cast<size_t>(__builtin_popcount(keep));
    }
    for (size_t j = 0; j < count; j += 16) {
      const __mmask16 t = tail_mask(count - j);
      const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(t, kept_z + j), vm);
      const __m512 v = _mm512_maskz_mov_ps(t, exp16(_mm512_mul_ps(x, vs)));
      s = _mm512_add_epi64(s, _mm512_add_epi64(fixed_lo(v), fixed_hi(v)));
    }
    sums[b / kDrawBlock] = lane_sum(s);
    total += sums[b / kDrawBlock];
  }
  return total;
#endif
  float wb[kDrawBlock];
  for (size_t b = 0; b < n; b += kDrawBlock) {
    const size_t end = b + kDrawBlock < n ? b + kDrawBlock : n;
    int any = 0;
#pragma omp simd reduction(| : any)
    for (size_t i = b; i < end; ++i) any |= kept(e, z, i, k);
    uint64_t s = 0;
    if (any) {  // the whole block's weights in one vectorized loop, then the kept ones' sum
      const float* src = e + b;
      if (hot) {
#pragma omp simd
        for (size_t i = b; i < end; ++i) wb[i - b] = exp_nonpos((z[i] - w.m) * w.s);
        src = wb;
      }
#pragma omp simd reduction(+ : s)
      for (size_t i = b; i < end; ++i) s += to_fixed(src[i - b]) & (0 - static_cast<uint64_t>(kept(e, z, i, k)));
    }
    sums[b / kDrawBlock] = s;
    total += s;
  }
  return total;
}

size_t tempered_find(const float* e, const float* z, size_t n, KeepRule k, Tempering w, const uint64_t* sums,
                     uint64_t r) noexcept {
  uint64_t acc = 0;
  size_t b = 0;
  const size_t blocks = (n + kDrawBlock - 1) / kDrawBlock;
  for (; b + 1 < blocks && acc + sums[b] <= r; ++b) acc += sums[b];
  size_t last = n - 1;
  const size_t end = (b + 1) * kDrawBlock < n ? (b + 1) * kDrawBlock : n;
  for (size_t i = b * kDrawBlock; i < end; ++i) {
    if (!kept(e, z, i, k)) continue;
    acc += to_fixed(tempered_weight(e[i], z[i], w));
    last = i;
    if (acc > r) return i;
  }
  return last;  // not reached: r < total
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

extern const KernelTable kTable = {&max_check,     &first_equal, &collect_keys, &group_max,       &nth_equal,
                                   &exp_sum,       &exp_sum2,    &mass_above,   &tempered,     &coarse_sample,   &split_band,
                                   &band_hist,     &band_filter, &tempered_blocks, &tempered_find, &find_draw};

}  // namespace sutra::sample::SUTRA_ISA_NS

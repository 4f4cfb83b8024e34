// exp(x) for x <= 0 in float32 with a fixed sequence of IEEE operations
// (no FMA, no library call) so that numpy float32 arithmetic in the Python
// twin reproduces every bit. x = n ln2 + r, |r| <= ln2 / 2 (Cody-Waite, n
// rounded to nearest even), exp(r) by a degree-5 polynomial 1 + r + c2 r^2 + ...
// whose c2..c5 minimise the relative error on that interval; relative error
// < 2e-7 overall, exp(0) == 1 and exp(x) <= 1. Returns 0 for x < -80 (and for
// -inf / NaN), which keeps every result a normal number. The AVX-512 kernels
// compute the same bits with vrndscaleps / vscalefps (kernels_isa.cpp: exp16).
// Constants are hex literals so both sides read the same float32 values.
#pragma once
#include <cstdint>
#include <cstring>

namespace sutra::sample {

inline float bits_to_float(uint32_t b) noexcept {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
inline uint32_t float_to_bits(float f) noexcept {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

constexpr float kLog2e = 0x1.715476p+0f;
constexpr float kLn2Hi = 0x1.62e4p-1f;      // n * it is exact for |n| < 2^9
constexpr float kLn2Lo = 0x1.7f7d1cp-20f;
constexpr float kExpC2 = 0x1.fffdf8p-2f;     // minimax on [-0.3473, 0.3473]
constexpr float kExpC3 = 0x1.5557b4p-3f;
constexpr float kExpC4 = 0x1.572bccp-5f;
constexpr float kExpC5 = 0x1.106186p-7f;

// Branch-free (bit masks instead of selects) so loops over it vectorize.
inline float exp_nonpos(float x) noexcept {
  const uint32_t mask = 0u - static_cast<uint32_t>(x >= -80.0f);  // all ones if in range
  x = bits_to_float(float_to_bits(x) & mask);                     // out of range -> 0
  const float t = x * kLog2e;                      // x / ln 2
  const float n = (t + 0x1.8p+23f) - 0x1.8p+23f;   // round to nearest even (1.5 * 2^23 trick)
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = kExpC5;                                // exp(r) ~ 1 + r + c2 r^2 + ... + c5 r^5
  p = p * r + kExpC4;
  p = p * r + kExpC3;
  p = p * r + kExpC2;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = bits_to_float(static_cast<uint32_t>((static_cast<int32_t>(n) + 127) << 23));  // 2^n
  return bits_to_float(float_to_bits(p * scale) & mask);
}

// A token's weight at temperature T (sampler.h, step 9), from z and e = exp_nonpos(z - m):
//  kExp: exp_nonpos((z - m) s) with s = float(1/T), proportional to p^(1/T);
//  kNone: e (T = 1).
enum class Temper { kNone, kExp };
struct Tempering {
  Temper mode;
  float m;
  float s;
};
inline float tempered_weight(float e, float z, Tempering t) noexcept {
  return t.mode == Temper::kNone ? e : exp_nonpos((z - t.m) * t.s);
}

// Order key of a logit: unsigned order of keys = float order of z (-0 and +0 equal).
inline uint32_t z_key(float z) noexcept {
  const uint32_t b = float_to_bits(z + 0.0f);
  return b ^ ((0u - (b >> 31)) | 0x80000000u);
}
inline float key_to_z(uint32_t key) noexcept {
  return bits_to_float(key ^ ((key >> 31) ? 0x80000000u : 0xFFFFFFFFu));
}

// Fixed-point probability: round-to-nearest-even(e * 2^40) for e in [0, 1],
// via the 2^52 magic number (exact in double, vectorizes, same as np.rint).
inline uint64_t to_fixed(float e) noexcept {
  const double d = static_cast<double>(e * 0x1.0p40f) + 0x1.0p52;
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits - 0x4330000000000000ull;
}

}  // namespace sutra::sample

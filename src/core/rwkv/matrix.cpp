// Weight storage conversion (fp32 / bf16 / int8) and the matmul dispatcher.
#include "rwkv/matrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/cpu.h"
#include "rwkv/kernels_table.h"
#include "rwkv/parallel.h"

namespace sutra::rwkv {
namespace {

const KernelTable& table() { return SUTRA_ISA_SELECT(sutra::rwkv); }

// The fast variants need CPU flags beyond the AVX-512 level itself.
GemmBf16 pick_bf16() noexcept {
  const KernelTable& t = table();
  if (t.gemm_bf16_dp != nullptr && cpu_features().avx512bf16) return t.gemm_bf16_dp;
  return t.gemm_bf16;
}
GemmI8 pick_i8() noexcept {
  const KernelTable& t = table();
  if (t.gemm_i8_vnni != nullptr && cpu_features().avx512vnni) return t.gemm_i8_vnni;
  return t.gemm_i8;
}

// Round half to even for |x| <= 2^22: the same as nearbyint in the default
// rounding mode, but plain arithmetic, so the loops vectorise (no libm call).
inline float round_even(float x) noexcept {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (x + kMagic) - kMagic;
}

// float -> bf16 bits rounded towards +inf (for positive finite x).
inline uint16_t bf16_round_up(float x) noexcept {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return static_cast<uint16_t>((u + 0xffffu) >> 16);
}

}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::f32;
  if (name == "bf16") return Precision::bf16;
  if (name == "int8") return Precision::i8;
  throw std::invalid_argument("unknown dtype '" + name + "': use 'fp32', 'bf16' or 'int8'");
}

const char* precision_name(Precision p) noexcept {
  switch (p) {
    case Precision::bf16: return "bf16";
    case Precision::i8: return "int8";
    default: return "fp32";
  }
}

int64_t TensorView::numel() const noexcept {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

namespace {

// Row r of the (rows x cols) matrix, as float, from src (or from src^T).
void load_row(const TensorView& src, bool transposed, int64_t R, int64_t C, int64_t r,
              float* out) noexcept {
  if (transposed) {
    for (int64_t c = 0; c < C; ++c) out[c] = src.at(c * R + r);
  } else if (src.bf16) {
    const uint16_t* raw = static_cast<const uint16_t*>(src.data) + r * C;
    for (int64_t c = 0; c < C; ++c) out[c] = bf16_to_f32(raw[c]);
  } else {
    std::memcpy(out, static_cast<const float*>(src.data) + r * C, static_cast<std::size_t>(C) * 4);
  }
}

}  // namespace

Matrix::Matrix(const TensorView& src, Precision p, bool transposed, bool exact_inputs)
    : prec_(p), exact_inputs_(exact_inputs) {
  if (src.shape.size() != 2) throw std::invalid_argument("weight matrix must be 2-D");
  rows_ = transposed ? src.shape[1] : src.shape[0];
  cols_ = transposed ? src.shape[0] : src.shape[1];
  const int64_t R = rows_, K = cols_;
  panels_ = (R + kPanel - 1) / kPanel;
  const int64_t group = p == Precision::f32 ? 1 : p == Precision::bf16 ? 2 : kQBlock;
  kp_ = (K + group - 1) / group * group;
  const int64_t Kp = kp_, nb = Kp / kQBlock;
  if (p == Precision::f32) {
    f32_.resize(static_cast<std::size_t>(packed_size(panels_, Kp, 1)));
  } else if (p == Precision::bf16) {
    bf16_.resize(static_cast<std::size_t>(packed_size(panels_, Kp, 2)));
  } else {
    i8_.resize(static_cast<std::size_t>(i8_size(panels_, nb)));
  }
  // Conversion runs over the pool: it is most of the load time.
  parallel_rows(panels_, 1, static_cast<double>(kPanel * K) * 4, 0, [&](int64_t p0, int64_t p1) {
    std::vector<float> row(static_cast<std::size_t>(Kp));
    for (int64_t pn = p0; pn < p1; ++pn) {
      for (int64_t l = 0; l < kPanel; ++l) {
        const int64_t r = pn * kPanel + l;
        std::fill(row.begin(), row.end(), 0.0f);  // padding rows/columns are zero
        if (p == Precision::bf16 && src.bf16 && !transposed) {
          // bf16 checkpoint into bf16 panels: move the bits (exact, no conversion).
          uint16_t* P = bf16_.data() + panel_offset(pn, Kp, 2);
          const uint16_t* raw = r < R ? static_cast<const uint16_t*>(src.data) + r * K : nullptr;
          for (int64_t k = 0; k < Kp; ++k)
            P[(k / 2) * 2 * stride(2) + 2 * l + (k & 1)] = (raw && k < K) ? raw[k] : uint16_t{0};
          continue;
        }
        if (r < R) load_row(src, transposed, R, K, r, row.data());
        if (p == Precision::f32) {
          float* P = f32_.data() + panel_offset(pn, Kp, 1);
          for (int64_t k = 0; k < Kp; ++k) P[k * stride(1) + l] = row[k];
        } else if (p == Precision::bf16) {
          // bf16 -> float -> bf16 is exact, so a bf16 checkpoint keeps its bits.
          uint16_t* P = bf16_.data() + panel_offset(pn, Kp, 2);
          for (int64_t k = 0; k < Kp; ++k) P[(k / 2) * 2 * stride(2) + 2 * l + (k & 1)] = f32_to_bf16(row[k]);
        } else {
          for (int64_t b = 0; b < nb; ++b) {
            const int64_t c0 = b * kQBlock, c1 = c0 + kQBlock;
            float amax = 0.0f;
            for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(row[c]));
            // The scale is stored as bf16, rounded up so |q| <= 127; q is rounded
            // against the stored scale, so the scale's rounding costs no accuracy.
            const uint16_t sb = amax > 0.0f ? bf16_round_up(amax / 127.0f) : uint16_t{0x3f80};
            const float s = bf16_to_f32(sb);
            int32_t sum = 0;
            for (int64_t c = c0; c < c1; ++c) {
              const float q = std::min(127.0f, std::max(-127.0f, round_even(row[c] / s)));
              i8_[i8_weights(pn, c - (c & 3), nb) + 4 * l + (c & 3)] = static_cast<int8_t>(q);
              sum += static_cast<int32_t>(q);
            }
            const auto rowsum = static_cast<int16_t>(sum);  // |sum| <= 32 * 127
            std::memcpy(&i8_[i8_scales(pn, b, nb) + 2 * l], &sb, 2);
            std::memcpy(&i8_[i8_scales(pn, b, nb) + kI8RowSums + 2 * l], &rowsum, 2);
          }
        }
      }
    }
  });
}

std::size_t Matrix::bytes() const noexcept {
  return f32_.size() * 4 + bf16_.size() * 2 + i8_.size();
}

void Matrix::prepare(const float* X, int64_t T, Prepared& q) const {
  const int64_t K = cols_, Kp = kp_;
  if (prec_ == Precision::bf16 && T == 1 && !exact_inputs_) {
    // Decode: X ~= hi + lo in bf16, for two bf16 dot products (~16 bits of x).
    q.hi.assign(static_cast<std::size_t>(T * Kp), 0);
    q.lo.assign(q.hi.size(), 0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t k = 0; k < K; ++k) {
        const float x = X[t * K + k];
        const uint16_t h = f32_to_bf16(x);
        q.hi[t * Kp + k] = h;
        q.lo[t * Kp + k] = f32_to_bf16(x - bf16_to_f32(h));
      }
  } else if (prec_ == Precision::i8) {
    // Activations: per token and block, X = round(x / xs) with |X| <= kXMax (~15
    // bits, so activation rounding adds next to nothing to the weights' error),
    // written as two u8 digits X = 254 (hi - 128) + (lo - 128) for the u8 x s8
    // dot products.
    const int64_t nb = Kp / kQBlock;
    q.uh.assign(static_cast<std::size_t>(T * Kp), 128);
    q.ul.assign(q.uh.size(), 128);
    q.xs.assign(static_cast<std::size_t>(T * nb), 0.0f);
    const float xmax = static_cast<float>(kXMax);
    for (int64_t t = 0; t < T; ++t) {
      const float* x = X + t * K;
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t k0 = b * kQBlock, k1 = std::min(K, k0 + kQBlock);
        float amax = 0.0f;
        for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(x[k]));
        const float s = amax > 0.0f ? amax / xmax : 1.0f;
        const float inv = 1.0f / s;
        for (int64_t k = k0; k < k1; ++k) {
          const auto v = static_cast<int32_t>(std::min(xmax, std::max(-xmax, round_even(x[k] * inv))));
          const int32_t hi = (v + 127 + 254 * 128) / 254 - 128;  // floor((v + 127) / 254)
          q.uh[t * Kp + k] = static_cast<uint8_t>(hi + 128);
          q.ul[t * Kp + k] = static_cast<uint8_t>(v - 254 * hi + 128);
        }
        q.xs[t * nb + b] = s;
      }
    }
  }
}

void Matrix::run(const float* X, const Prepared& q, int64_t T, int64_t p0, int64_t p1,
                 float* Y) const noexcept {
  const int64_t R = rows_;
  if (prec_ == Precision::f32) {
    table().gemm_f32(f32_.data(), kp_, p0, p1, R, X, cols_, T, Y, R);
  } else if (prec_ == Precision::bf16) {
    const bool split = !q.hi.empty();
    pick_bf16()(bf16_.data(), kp_, cols_, p0, p1, R, X, split ? q.hi.data() : nullptr,
                split ? q.lo.data() : nullptr, T, Y, R);
  } else {
    pick_i8()(i8_.data(), kp_, p0, p1, R, q.uh.data(), q.ul.data(),
              q.xs.data(), T, Y, R);
  }
}

void Matrix::matmul(const float* X, int64_t T, float* Y, int threads) const {
  const MatJob job{this, X, Y};
  matmul_batch(&job, 1, T, threads);
}

void matmul_batch(const MatJob* jobs, int n, int64_t T, int threads) {
  // Inputs are quantised / split once per job, then all panels of all jobs share
  // one parallel region (one wake-up of the pool instead of one per matrix).
  std::vector<Prepared> prep(static_cast<std::size_t>(n));
  std::vector<int64_t> start(static_cast<std::size_t>(n) + 1, 0);
  double work = 0.0;
  for (int j = 0; j < n; ++j) {
    jobs[j].W->prepare(jobs[j].X, T, prep[j]);
    // Each job starts at a multiple of kGroup panels and pieces are multiples of
    // kGroup, so that the decode kernels stay on whole interleaved groups.
    start[j + 1] = start[j] + (jobs[j].W->panels() + kGroup - 1) / kGroup * kGroup;
    work += static_cast<double>(jobs[j].W->panels() * kPanel * jobs[j].W->cols() * T);
  }
  const int64_t total = start[n];
  if (total == 0) return;
  parallel_rows(total, kGroup, work / static_cast<double>(total), threads, [&](int64_t g0, int64_t g1) {
    for (int j = 0; j < n; ++j) {
      const int64_t a = std::max(g0, start[j]), b = std::min(g1, start[j] + jobs[j].W->panels());
      if (a < b) jobs[j].W->run(jobs[j].X, prep[j], T, a - start[j], b - start[j], jobs[j].Y);
    }
  });
}

RowTable::RowTable(const TensorView& src, bool as_bf16) {
  if (src.shape.size() != 2) throw std::invalid_argument("embedding must be 2-D");
  rows_ = src.shape[0];
  cols_ = src.shape[1];
  const auto n = static_cast<std::size_t>(rows_ * cols_);
  if (as_bf16) {
    bf16_.resize(n);
    if (src.bf16) {
      std::memcpy(bf16_.data(), src.data, n * 2);
    } else {
      for (std::size_t i = 0; i < n; ++i) bf16_[i] = f32_to_bf16(src.at(static_cast<int64_t>(i)));
    }
  } else {
    f32_.resize(n);
    if (src.bf16) {
      const auto* raw = static_cast<const uint16_t*>(src.data);
      for (std::size_t i = 0; i < n; ++i) f32_[i] = bf16_to_f32(raw[i]);
    } else {
      std::memcpy(f32_.data(), src.data, n * 4);
    }
  }
}

void RowTable::row(int64_t i, float* out) const noexcept {
  if (f32_.size() != 0) {
    std::memcpy(out, f32_.data() + i * cols_, static_cast<std::size_t>(cols_) * 4);
  } else {
    for (int64_t c = 0; c < cols_; ++c) out[c] = bf16_to_f32(bf16_[i * cols_ + c]);
  }
}

float RowTable::dot(int64_t i, const float* x) const noexcept {
  float acc = 0.0f;
  if (f32_.size() != 0) {
    const float* w = f32_.data() + i * cols_;
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < cols_; ++c) acc += w[c] * x[c];
  } else {
    const uint16_t* w = bf16_.data() + i * cols_;
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < cols_; ++c) acc += bf16_to_f32(w[c]) * x[c];
  }
  return acc;
}

}  // namespace sutra::rwkv

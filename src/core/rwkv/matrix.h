// Weight matrices at fp32 / bf16 / int8, stored row-major (out x in) for
// streaming GEMV, and the one matmul entry that dispatches by precision and ISA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace sutra::rwkv {

enum class Precision { f32, bf16, i8 };
Precision parse_precision(const std::string& name);  // "fp32" | "bf16" | "int8"
const char* precision_name(Precision p) noexcept;

// Inline (not exported): the shared library is built with -fPIC and default
// visibility, where out-of-line helpers would be called per element.
inline uint16_t f32_to_bf16(float x) noexcept {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_to_f32(uint16_t h) noexcept {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A borrowed, C-contiguous source tensor: float32 or bf16 bit patterns.
struct TensorView {
  const void* data = nullptr;
  bool bf16 = false;
  std::vector<int64_t> shape;
  int64_t numel() const noexcept;
  float at(int64_t i) const noexcept {  // element i as float
    return bf16 ? bf16_to_f32(static_cast<const uint16_t*>(data)[i]) : static_cast<const float*>(data)[i];
  }
};

// 64-byte aligned, uninitialised storage (weights are written once at load;
// zero-filling hundreds of MB first would double the load time).
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  void resize(std::size_t n) {
    p_.reset(n ? static_cast<T*>(::operator new[](n * sizeof(T), std::align_val_t{64})) : nullptr);
    n_ = n;
  }
  T* data() noexcept { return p_.get(); }
  const T* data() const noexcept { return p_.get(); }
  std::size_t size() const noexcept { return n_; }
  T& operator[](std::size_t i) noexcept { return p_[i]; }
  const T& operator[](std::size_t i) const noexcept { return p_[i]; }

 private:
  struct Free {
    void operator()(T* p) const noexcept { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<T[], Free> p_;
  std::size_t n_ = 0;
};

// Activations converted for one matrix's kernel (bf16 hi/lo split, or int8:
// two u8 digits per input with one scale per token and block); empty for fp32.
struct Prepared {
  std::vector<uint16_t> hi, lo;
  std::vector<uint8_t> uh, ul;
  std::vector<float> xs;
};

// A weight matrix packed into panels of kPanel output rows (see kernels_table.h).
class Matrix {
 public:
  Matrix() = default;
  // From a 2-D source (rows x cols), or its transpose when `transposed` (then the
  // source is cols x rows). int8: symmetric, one bf16 scale per kQBlock inputs of a row.
  // bf16 decode multiplies a hi/lo bf16 split of the inputs (~16 bits) unless
  // exact_inputs: then, as in prefill, the fp32 inputs themselves, so that decode
  // and prefill give the same bits (for the small LoRAs of the int8 mode, whose
  // outputs reach the next int8 activation rounding).
  Matrix(const TensorView& src, Precision p, bool transposed, bool exact_inputs = false);
  int64_t rows() const noexcept { return rows_; }
  int64_t cols() const noexcept { return cols_; }
  Precision precision() const noexcept { return prec_; }
  std::size_t bytes() const noexcept;  // bytes read by one full pass

  // Y[t, :] = W X[t, :] for t < T; X is T x cols (contiguous), Y is T x rows.
  // threads: 0 = the pool's size, 1 = on the caller only, n = at most n threads.
  void matmul(const float* X, int64_t T, float* Y, int threads) const;

  // The two halves of matmul, for batching several matrices in one parallel region.
  int64_t panels() const noexcept { return panels_; }
  void prepare(const float* X, int64_t T, Prepared& q) const;
  void run(const float* X, const Prepared& q, int64_t T, int64_t p0, int64_t p1,
           float* Y) const noexcept;

 private:
  int64_t rows_ = 0, cols_ = 0, kp_ = 0, panels_ = 0;
  Precision prec_ = Precision::f32;
  bool exact_inputs_ = false;
  Buffer<float> f32_;
  Buffer<uint16_t> bf16_;
  Buffer<int8_t> i8_;  // weights, bf16 scales and int16 row sums (kernels_table.h)
};

// Several independent products Y_j = W_j X_j (same T) in one parallel region.
struct MatJob {
  const Matrix* W;
  const float* X;
  float* Y;
};
void matmul_batch(const MatJob* jobs, int n, int64_t T, int threads);

// Row-major rows for lookups (the embedding): fp32, or bf16 bit patterns.
class RowTable {
 public:
  RowTable() = default;
  RowTable(const TensorView& src, bool as_bf16);
  int64_t rows() const noexcept { return rows_; }
  std::size_t bytes() const noexcept { return f32_.size() * 4 + bf16_.size() * 2; }
  void row(int64_t i, float* out) const noexcept;
  float dot(int64_t i, const float* x) const noexcept;  // row i . x, fp32 sums

 private:
  int64_t rows_ = 0, cols_ = 0;
  Buffer<float> f32_;
  Buffer<uint16_t> bf16_;
};

}  // namespace sutra::rwkv

// The two limits the RWKV figures are judged against, measured on this core:
// peak fp32 FMA throughput (512-bit FMAs on 12 independent registers) and
// streaming read bandwidth (1 and 4 streams over 512 MB, like a decode GEMV).
//
//   g++ -O2 -mavx512f tools/machine_limits.cpp -o /tmp/machine_limits && /tmp/machine_limits
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

#define FMA12(b, c)                                                          \
  a0 = _mm512_fmadd_ps(a0, b, c); a1 = _mm512_fmadd_ps(a1, b, c);           \
  a2 = _mm512_fmadd_ps(a2, b, c); a3 = _mm512_fmadd_ps(a3, b, c);           \
  a4 = _mm512_fmadd_ps(a4, b, c); a5 = _mm512_fmadd_ps(a5, b, c);           \
  a6 = _mm512_fmadd_ps(a6, b, c); a7 = _mm512_fmadd_ps(a7, b, c);           \
  a8 = _mm512_fmadd_ps(a8, b, c); a9 = _mm512_fmadd_ps(a9, b, c);           \
  a10 = _mm512_fmadd_ps(a10, b, c); a11 = _mm512_fmadd_ps(a11, b, c)

double fma_gflops() {
  __m512 a0 = _mm512_set1_ps(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
         a8 = a0, a9 = a0, a10 = a0, a11 = a0;
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  const long n = 50000000;
  const auto t = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    FMA12(b, c);
    // Keep the 12 chains in registers (no spills, no dead-code elimination).
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6),
                     "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
  }
  return n * 12.0 * 32.0 / seconds_since(t) / 1e9;
}

template <int S>
__attribute__((noinline)) float read_streams(const float* p, size_t n) {
  const size_t len = n / S;
  __m512 acc[S];
  for (int s = 0; s < S; ++s) acc[s] = _mm512_setzero_ps();
  for (size_t i = 0; i < len; i += 16)
    for (int s = 0; s < S; ++s) acc[s] = _mm512_add_ps(acc[s], _mm512_loadu_ps(p + s * len + i));
  for (int s = 1; s < S; ++s) acc[0] = _mm512_add_ps(acc[0], acc[s]);
  float out[16];
  _mm512_storeu_ps(out, acc[0]);
  return out[0];
}

}  // namespace

int main() {
  const size_t n = (size_t{512} << 20) / sizeof(float);
  auto* p = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  for (size_t i = 0; i < n; ++i) p[i] = 1.0f;
  volatile float sink = 0;
  double fma = 0, one = 0, four = 0;
  for (int rep = 0; rep < 5; ++rep) {  // best of 5: the machine is shared
    fma = std::max(fma, fma_gflops());
    auto t = std::chrono::steady_clock::now();
    sink = read_streams<1>(p, n);
    one = std::max(one, n * 4.0 / seconds_since(t) / 1e9);
    t = std::chrono::steady_clock::now();
    sink = read_streams<4>(p, n);
    four = std::max(four, n * 4.0 / seconds_since(t) / 1e9);
  }
  std::printf("peak fp32 FMA: %.0f GFLOP/s; read 1 stream: %.1f GB/s, 4 streams: %.1f GB/s%s\n",
              fma, one, four, sink == 0 ? " " : "");
  std::free(p);
}

#include "common/cpu.h"

#include <atomic>
#include <stdexcept>

namespace sutra {
namespace {

std::atomic<int> g_active{-1};

bool compiled(Isa level) {
#if defined(SUTRA_X86)
  (void)level;
  return true;
#else
  return level == Isa::scalar;
#endif
}

bool usable(Isa level) {
  if (!compiled(level)) return false;
  const CpuFeatures f = cpu_features();
  switch (level) {
    case Isa::scalar: return true;
    case Isa::avx2: return f.avx2 && f.fma && f.f16c;
    case Isa::avx512:
      return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  }
  return false;
}

}  // namespace

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(_M_X64)
  // __builtin_cpu_supports also checks that the OS saves the wider registers.
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
#endif
  return f;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa level : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (usable(level)) out.push_back(level);
  return out;
}

Isa best_isa() { return supported_isas().back(); }

Isa active_isa() noexcept {
  int v = g_active.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(best_isa());
    g_active.store(v, std::memory_order_relaxed);
  }
  return static_cast<Isa>(v);
}

void set_active_isa(Isa level) {
  if (!usable(level)) {
    throw std::invalid_argument(std::string("instruction set '") + isa_name(level) +
                                "' is not available on this CPU/build; the best here is '" +
                                isa_name(best_isa()) + "'");
  }
  g_active.store(static_cast<int>(level), std::memory_order_relaxed);
}

Isa parse_isa(const std::string& name) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw std::invalid_argument("unknown instruction set '" + name +
                              "': use one of 'scalar', 'avx2', 'avx512'");
}

const char* isa_name(Isa level) noexcept {
  switch (level) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "unknown";
}

}  // namespace sutra

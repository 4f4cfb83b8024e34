// Run-time instruction-set selection. The wheel is built for baseline x86-64 (or
// aarch64); kernels with AVX2+FMA and AVX-512 variants are picked here at run time.
#pragma once
#include <string>
#include <vector>

namespace sutra {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512bf16 = false, avx512vnni = false;
};

CpuFeatures cpu_features();
// Best level this CPU supports *and* this build compiled.
Isa best_isa();
// Levels usable here, lowest first.
std::vector<Isa> supported_isas();
// Level the kernels dispatch to now (default: best_isa()).
Isa active_isa() noexcept;
// Throws std::invalid_argument when the level is not usable on this CPU/build.
void set_active_isa(Isa level);
Isa parse_isa(const std::string& name);  // throws std::invalid_argument
const char* isa_name(Isa level) noexcept;

}  // namespace sutra

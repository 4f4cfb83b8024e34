// Helper for per-ISA kernel tables. A component defines `struct Table {...}` of
// function pointers, fills one `kTable` per ISA namespace in its *_isa.cpp, and
// picks the active one with SUTRA_ISA_SELECT(ns_prefix).
#pragma once
#include "common/cpu.h"

#if defined(SUTRA_X86)
#define SUTRA_ISA_SELECT(ns)                           \
  ([]() -> const auto& {                               \
    switch (::sutra::active_isa()) {                   \
      case ::sutra::Isa::avx512: return ns::isa_avx512::kTable; \
      case ::sutra::Isa::avx2: return ns::isa_avx2::kTable;     \
      default: return ns::isa_scalar::kTable;          \
    }                                                  \
  }())
#define SUTRA_ISA_DECLARE(ns, Table)                  \
  namespace ns::isa_scalar { extern const Table kTable; } \
  namespace ns::isa_avx2 { extern const Table kTable; }   \
  namespace ns::isa_avx512 { extern const Table kTable; }
#else
#define SUTRA_ISA_SELECT(ns) (ns::isa_scalar::kTable)
#define SUTRA_ISA_DECLARE(ns, Table) \
  namespace ns::isa_scalar { extern const Table kTable; }
#endif

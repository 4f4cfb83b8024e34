// sutra_fast._core: the pybind11 module. Glue only; each component registers
// itself from its own file. C++ exceptions map to Python ones in one place:
// std::invalid_argument -> ValueError, std::runtime_error -> RuntimeError
// (pybind11's built-in translation), plus the project-specific ones below.
#include <pybind11/pybind11.h>

#include "registry.h"

namespace py = pybind11;

#define SUTRA_STR2(x) #x
#define SUTRA_STR(x) SUTRA_STR2(x)

PYBIND11_MODULE(_core, m) {
  m.doc() = "sutra_fast compiled core (pybind11): runtime control and stateful objects.";
  m.attr("__version__") = SUTRA_STR(SUTRA_VERSION_INFO);
  sutra::bindings::register_runtime(m);
  sutra::bindings::register_wordpiece(m);
}

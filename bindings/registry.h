// One register_<component>() per bindings file (CTranslate2 style).
#pragma once
#include <pybind11/pybind11.h>

namespace sutra::bindings {
void register_runtime(pybind11::module_& m);
void register_wordpiece(pybind11::module_& m);
}  // namespace sutra::bindings

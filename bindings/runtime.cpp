// Runtime control: CPU features / ISA level and the thread pool.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/cpu.h"
#include "common/thread_pool.h"
#include "registry.h"

namespace py = pybind11;

namespace sutra::bindings {

void register_runtime(py::module_& m) {
  m.def(
      "cpu_info",
      [] {
        const CpuFeatures f = cpu_features();
        py::list levels;
        for (Isa level : supported_isas()) levels.append(isa_name(level));
        py::dict features;
        features["avx2"] = f.avx2;
        features["fma"] = f.fma;
        features["f16c"] = f.f16c;
        features["avx512f"] = f.avx512f;
        features["avx512bw"] = f.avx512bw;
        features["avx512vl"] = f.avx512vl;
        features["avx512dq"] = f.avx512dq;
        features["avx512bf16"] = f.avx512bf16;
        features["avx512vnni"] = f.avx512vnni;
        py::dict out;
        out["isa"] = isa_name(active_isa());
        out["best_isa"] = isa_name(best_isa());
        out["supported_isas"] = levels;
        out["features"] = features;
        out["num_threads"] = num_threads();
        out["default_num_threads"] = default_num_threads();
        return out;
      },
      R"pbdoc(
        What the compiled core sees and uses.

        Returns:
            dict: ``isa`` (the level kernels dispatch to now), ``best_isa``,
            ``supported_isas`` (usable here, lowest first), ``features``
            (CPU flags), ``num_threads`` and ``default_num_threads``.
      )pbdoc");
  m.def(
      "set_cpu_isa", [](const std::string& name) { set_active_isa(parse_isa(name)); },
      py::arg("level"),
      R"pbdoc(
        Force the kernel instruction-set level: ``"scalar"``, ``"avx2"`` or ``"avx512"``.

        Raises:
            ValueError: unknown name, or a level this CPU/build cannot run.
      )pbdoc");
  m.attr("MAX_NUM_THREADS") = kMaxNumThreads;
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Threads used by compiled calls (the caller included); 1 <= n <= MAX_NUM_THREADS.");
  m.def("get_num_threads", &num_threads,
        "Threads used by compiled calls (lowered if the pool could not start that many).");
}

}  // namespace sutra::bindings

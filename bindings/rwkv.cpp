// RWKV models: glue only (argument conversion and buffer checks); the logic is
// in src/core/rwkv/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "registry.h"
#include "rwkv/rwkv7.h"

namespace py = pybind11;

namespace sutra::bindings {
namespace {

using rwkv::Rwkv7Model;

// float32 or bf16 (as uint16) C-contiguous arrays -> borrowed views.
std::map<std::string, rwkv::TensorView> views(const py::dict& tensors) {
  std::map<std::string, rwkv::TensorView> out;
  for (auto item : tensors) {
    const auto name = py::cast<std::string>(item.first);
    if (!py::isinstance<py::array>(item.second))
      throw std::invalid_argument("tensor " + name + " must be a numpy array");
    auto arr = py::reinterpret_borrow<py::array>(item.second);
    rwkv::TensorView v;
    if (arr.dtype().is(py::dtype::of<float>())) {
      v.bf16 = false;
    } else if (arr.dtype().is(py::dtype::of<uint16_t>())) {
      v.bf16 = true;
    } else {
      throw std::invalid_argument("tensor " + name + ": dtype must be float32 or uint16 (bf16 bits)");
    }
    if (!(arr.flags() & py::array::c_style))
      throw std::invalid_argument("tensor " + name + " is not C-contiguous: pass np.ascontiguousarray(x)");
    // Views read elements as typed loads: an odd address (a view into raw file
    // bytes at an odd offset) would be undefined behaviour.
    if (reinterpret_cast<std::uintptr_t>(arr.data()) % static_cast<std::uintptr_t>(arr.itemsize()) != 0)
      throw std::invalid_argument("tensor " + name + " is not aligned to its element size: pass x.copy()");
    v.data = arr.data();
    for (py::ssize_t d = 0; d < arr.ndim(); ++d) v.shape.push_back(arr.shape(d));
    out.emplace(name, std::move(v));
  }
  return out;
}

float* state_buffer(py::array& a, const char* name, std::initializer_list<int64_t> shape) {
  if (!a.dtype().is(py::dtype::of<float>()))
    throw std::invalid_argument(std::string("state.") + name + " must be float32");
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string("state.") + name +
                                " is not C-contiguous: pass np.ascontiguousarray(x)");
  if (!a.writeable()) throw std::invalid_argument(std::string("state.") + name + " is read-only");
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  py::ssize_t d = 0;
  for (int64_t s : shape) ok = ok && a.shape(d++) == s;
  if (!ok) throw std::invalid_argument(std::string("state.") + name + " has the wrong shape for this model");
  return static_cast<float*>(a.mutable_data());
}

}  // namespace

void register_rwkv(py::module_& m) {
  py::class_<Rwkv7Model, std::shared_ptr<Rwkv7Model>>(m, "Rwkv7Model", R"pbdoc(
      RWKV-7 (x070) weights in the compiled core's layout. Use sutra_fast.Generator.
  )pbdoc")
      .def(py::init([](const py::dict& tensors, const std::string& dtype, int threads) {
             auto v = views(tensors);
             const rwkv::Precision p = rwkv::parse_precision(dtype);
             py::gil_scoped_release release;
             return std::make_shared<Rwkv7Model>(v, p, threads);
           }),
           py::arg("tensors"), py::arg("dtype") = "fp32", py::arg("threads") = 0, R"pbdoc(
        Arguments:
            tensors: {checkpoint name: float32 or uint16 (bf16 bits) C-contiguous array}
            dtype: weight precision, "fp32" | "bf16" | "int8"
            threads: at most this many threads per call (0 = the pool's size)
      )pbdoc")
      .def_property_readonly("n_layer", [](const Rwkv7Model& s) { return s.config().n_layer; })
      .def_property_readonly("n_embd", [](const Rwkv7Model& s) { return s.config().n_embd; })
      .def_property_readonly("n_head", [](const Rwkv7Model& s) { return s.config().n_head; })
      .def_property_readonly("head_size", [](const Rwkv7Model& s) { return s.config().head_size; })
      .def_property_readonly("vocab_size", [](const Rwkv7Model& s) { return s.config().vocab; })
      .def_property_readonly("dtype", [](const Rwkv7Model& s) { return rwkv::precision_name(s.precision()); })
      .def_property_readonly("threads", &Rwkv7Model::threads)
      .def_property_readonly("weight_bytes", &Rwkv7Model::weight_bytes)
      .def_property_readonly("decode_bytes", &Rwkv7Model::decode_bytes,
                             "Bytes of weights one decode step reads.")
      .def(
          "forward",
          [](const Rwkv7Model& self, py::array_t<int64_t, py::array::c_style> tokens,
             py::array att_x_prev, py::array att_kv, py::array ffn_x_prev) {
            const auto& c = self.config();
            if (tokens.ndim() != 1) throw std::invalid_argument("token_ids must be 1-D");
            float* sx = state_buffer(att_x_prev, "att_x_prev", {c.n_layer, c.n_embd});
            float* kv = state_buffer(att_kv, "att_kv", {c.n_layer, c.n_head, c.head_size, c.head_size});
            float* sf = state_buffer(ffn_x_prev, "ffn_x_prev", {c.n_layer, c.n_embd});
            py::array_t<float> logits(c.vocab);
            float* out = logits.mutable_data();
            const int64_t* ids = tokens.data();
            const int64_t n = tokens.shape(0);
            {
              py::gil_scoped_release release;
              self.forward(ids, n, sx, kv, sf, out);
            }
            return logits;
          },
          py::arg("token_ids"), py::arg("att_x_prev"), py::arg("att_kv"), py::arg("ffn_x_prev"),
          R"pbdoc(
        Feed token_ids (int64, >= 1) and update the three state arrays in place.

        Returns:
            numpy.ndarray: float32 [vocab] logits after the last token.
      )pbdoc");
}

}  // namespace sutra::bindings

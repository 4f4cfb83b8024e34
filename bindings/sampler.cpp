// Sampler glue: numpy float32 logits in, token id out; PenaltyState and Rng
// objects for the generation loop and the tests.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <memory>
#include <string>

#include "registry.h"
#include "sample/penalty_state.h"
#include "sample/rng.h"
#include "sample/sampler.h"

namespace py = pybind11;
using sutra::sample::PenaltyState;
using sutra::sample::Rng;
using sutra::sample::Sampler;
using sutra::sample::SamplerParams;

namespace sutra::bindings {
namespace {

const float* logits_view(const py::handle& obj, int64_t* n) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error("logits must be a numpy float32 array, got " + std::string(Py_TYPE(obj.ptr())->tp_name));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<float>()))  // also refuses big-endian float32
    throw py::value_error("logits must be native float32, got " + std::string(py::str(a.dtype())) +
                          " (pass logits.astype(np.float32))");
  if (a.ndim() != 1)
    throw py::value_error("logits must be 1-D, got shape with " + std::to_string(a.ndim()) + " dimensions");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error("logits must be C-contiguous (pass np.ascontiguousarray(logits))");
  *n = static_cast<int64_t>(a.shape(0));
  return static_cast<const float*>(a.data());
}

}  // namespace

void register_sampler(py::module_& m) {
  py::class_<Rng, std::shared_ptr<Rng>>(m, "Rng", "xoshiro256** seeded by splitmix64.")
      .def(py::init<uint64_t>(), py::arg("seed"))
      .def("next_u64", &Rng::next_u64)
      .def("random", &Rng::random)
      .def(
          "below",
          [](Rng& r, uint64_t n) {
            if (n == 0) throw py::value_error("n must be >= 1");
            return r.below(n);
          },
          py::arg("n"))
      .def("reseed", &Rng::reseed, py::arg("seed"))
      .def_property(
          "state",
          [](const Rng& r) {
            const uint64_t* s = r.state();
            return py::make_tuple(s[0], s[1], s[2], s[3]);
          },
          [](Rng& r, const std::array<uint64_t, 4>& s) {
            if (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0)
              throw py::value_error("state must not be all zeros");
            r.set_state(s.data());
          });

  py::class_<PenaltyState, std::shared_ptr<PenaltyState>>(m, "PenaltyState")
      .def(py::init<int64_t, double, const std::vector<int64_t>&>(), py::arg("vocab_size"),
           py::arg("decay"), py::arg("zero_weight_ids"))
      .def("update", &PenaltyState::update, py::arg("token"))
      .def("reset", &PenaltyState::reset)
      .def_property_readonly("vocab_size", &PenaltyState::vocab_size)
      .def_property_readonly("decay", &PenaltyState::decay)
      .def_property_readonly("present", [](const PenaltyState& s) {
        return py::array_t<int32_t>(static_cast<py::ssize_t>(s.present().size()), s.present().data());
      })
      .def_property_readonly("counts", [](const PenaltyState& s) {
        return py::array_t<double>(static_cast<py::ssize_t>(s.counts().size()), s.counts().data());
      });

  py::class_<Sampler, std::shared_ptr<Sampler>>(m, "Sampler")
      .def(py::init([](int64_t vocab_size, double temperature, double top_p, int64_t top_k, double min_p,
                       double presence, double frequency, double repetition,
                       const std::vector<std::pair<int64_t, float>>& bias, const std::vector<int64_t>& banned) {
             SamplerParams p;
             p.temperature = temperature;
             p.top_p = top_p;
             p.top_k = top_k;
             p.min_p = min_p;
             p.presence_penalty = presence;
             p.frequency_penalty = frequency;
             p.repetition_penalty = repetition;
             p.logit_bias = bias;
             p.banned = banned;
             return std::make_shared<Sampler>(vocab_size, std::move(p));
           }),
           py::arg("vocab_size"), py::arg("temperature"), py::arg("top_p"), py::arg("top_k"),
           py::arg("min_p"), py::arg("presence_penalty"), py::arg("frequency_penalty"),
           py::arg("repetition_penalty"), py::arg("logit_bias"), py::arg("banned_tokens"))
      .def_property_readonly("vocab_size", &Sampler::vocab_size)
      .def(
          "sample",
          [](Sampler& s, const py::handle& logits, PenaltyState* pen, Rng& rng) {
            int64_t n = 0;
            const float* p = logits_view(logits, &n);
            py::gil_scoped_release release;
            return s.sample(p, n, pen, rng);
          },
          py::arg("logits"), py::arg("penalties").none(true), py::arg("rng"))
      .def(
          "process",
          [](const Sampler& s, const py::handle& logits, PenaltyState* pen) {
            int64_t n = 0;
            const float* p = logits_view(logits, &n);
            py::array_t<float> out(static_cast<py::ssize_t>(n));
            s.process(p, n, pen, out.mutable_data());
            return out;
          },
          py::arg("logits"), py::arg("penalties").none(true));
}

}  // namespace sutra::bindings

// RWKV World tokenizer glue: str/bytes in, list[int] or numpy int32 out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry.h"
#include "text/world_tokenizer.h"

namespace py = pybind11;
using sutra::text::WorldTokenizer;

namespace sutra::bindings {
namespace {

std::string_view utf8_view(const py::handle& s, size_t index_for_msg, bool batch) {
  if (!PyUnicode_Check(s.ptr())) {
    throw py::type_error(std::string(batch ? "texts[" + std::to_string(index_for_msg) + "]" : "text") +
                         " must be a str, got " + std::string(Py_TYPE(s.ptr())->tp_name) +
                         " (use encode_bytes for bytes)");
  }
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s.ptr(), &n);
  if (p == nullptr) {
    PyErr_Clear();
    throw py::value_error(
        std::string(batch ? "texts[" + std::to_string(index_for_msg) + "]" : "text") +
        " contains a lone surrogate code point, which has no UTF-8 encoding; "
        "fix the text or pass bytes to encode_bytes");
  }
  return {p, static_cast<size_t>(n)};
}

// Python ints for ids below 65536, created once and shared: building a list
// then costs a pointer copy and an incref per token instead of an allocation.
PyObject* const* small_ints() {
  static PyObject** cache = [] {
    auto** c = new PyObject*[65536];  // leaked on purpose: lives as long as the process
    for (long i = 0; i < 65536; ++i) c[i] = PyLong_FromLong(i);
    return c;
  }();
  return cache;
}

py::object to_python(const std::vector<int32_t>& ids, bool as_numpy) {
  if (as_numpy) {
    py::array_t<int32_t> a(static_cast<py::ssize_t>(ids.size()));
    std::copy(ids.begin(), ids.end(), a.mutable_data());
    return std::move(a);
  }
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(ids.size()));
  if (!list) throw py::error_already_set();
  PyObject* const* cache = small_ints();
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    PyObject* v;
    if (id >= 0 && id < 65536) {
      v = cache[id];
      Py_INCREF(v);
    } else {
      v = PyLong_FromLong(id);
    }
    if (!v) {
      Py_DECREF(list);
      throw py::error_already_set();
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), v);
  }
  return py::reinterpret_steal<py::object>(list);
}

py::object encode_view(const WorldTokenizer& t, std::string_view bytes, bool as_numpy) {
  std::vector<int32_t> ids;
  if (bytes.size() > 4096) {
    py::gil_scoped_release release;
    t.encode(bytes, &ids);
  } else {
    t.encode(bytes, &ids);
  }
  return to_python(ids, as_numpy);
}

std::vector<int64_t> ids_from(const py::handle& ids) {
  // Fast path for int arrays; anything else goes through the sequence protocol.
  if (py::isinstance<py::array>(ids)) {
    py::array a = py::reinterpret_borrow<py::array>(ids);
    if (a.ndim() != 1) throw py::value_error("ids must be 1-D, got " + std::to_string(a.ndim()) + "-D");
    if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
      throw py::type_error("ids must be integers, got an array of dtype " +
                           std::string(py::str(a.dtype())));
    py::array_t<int64_t, py::array::c_style | py::array::forcecast> b(a);
    return std::vector<int64_t>(b.data(), b.data() + b.size());
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(ids);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(py::len(seq)));
  for (size_t i = 0; i < static_cast<size_t>(py::len(seq)); ++i) {
    py::object o = seq[i];
    if (PyBool_Check(o.ptr()) || !PyLong_Check(o.ptr()) ) {
      if (!PyIndex_Check(o.ptr()) || PyBool_Check(o.ptr()))
        throw py::type_error("ids[" + std::to_string(i) + "] must be an int, got " +
                             std::string(Py_TYPE(o.ptr())->tp_name));
    }
    int overflow = 0;
    py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(o.ptr()));
    if (!idx) throw py::error_already_set();
    const long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
    if (overflow) throw py::value_error("token id " + std::string(py::str(o)) + " is out of range");
    out.push_back(v);
  }
  return out;
}

}  // namespace

void register_world_tokenizer(py::module_& m) {
  py::class_<WorldTokenizer, std::shared_ptr<WorldTokenizer>>(
      m, "WorldTokenizer", "RWKV World tokenizer (compiled). Use sutra_fast.WorldTokenizer.")
      .def_static("from_file", &WorldTokenizer::from_file, py::arg("path"),
                  py::call_guard<py::gil_scoped_release>())
      .def_static(
          "from_string",
          [](const std::string& content) { return WorldTokenizer::from_string(content); },
          py::arg("content"))
      .def_property_readonly("vocab_size", &WorldTokenizer::vocab_size)
      .def(
          "encode",
          [](const WorldTokenizer& t, const py::handle& text, bool as_numpy) {
            return encode_view(t, utf8_view(text, 0, false), as_numpy);
          },
          py::arg("text"), py::arg("as_numpy") = false)
      .def(
          "encode_bytes",
          [](const WorldTokenizer& t, const py::handle& data, bool as_numpy) {
            if (!PyBytes_Check(data.ptr()) && !PyByteArray_Check(data.ptr()) &&
                !PyObject_CheckBuffer(data.ptr()))
              throw py::type_error("data must be bytes-like, got " +
                                   std::string(Py_TYPE(data.ptr())->tp_name) + " (use encode for str)");
            if (PyBytes_Check(data.ptr()))
              return encode_view(t, {PyBytes_AS_STRING(data.ptr()),
                                     static_cast<size_t>(PyBytes_GET_SIZE(data.ptr()))}, as_numpy);
            py::buffer_info info = py::reinterpret_borrow<py::buffer>(data).request();
            std::string copy(static_cast<const char*>(info.ptr),
                             static_cast<size_t>(info.size * info.itemsize));
            return encode_view(t, copy, as_numpy);
          },
          py::arg("data"), py::arg("as_numpy") = false)
      .def(
          "encode_batch",
          [](const WorldTokenizer& t, const py::list& texts, int num_threads, bool as_numpy) {
            std::vector<std::string_view> views;
            views.reserve(texts.size());
            for (size_t i = 0; i < texts.size(); ++i) views.push_back(utf8_view(texts[i], i, true));
            std::vector<std::vector<int32_t>> out;
            {
              py::gil_scoped_release release;
              t.encode_batch(views, &out, num_threads);
            }
            py::list result(out.size());
            for (size_t i = 0; i < out.size(); ++i) result[i] = to_python(out[i], as_numpy);
            return result;
          },
          py::arg("texts"), py::arg("num_threads") = 0, py::arg("as_numpy") = false)
      .def(
          "decode_bytes",
          [](const WorldTokenizer& t, const py::handle& ids) {
            std::vector<int64_t> v = ids_from(ids);
            std::string s = t.decode(v.data(), v.size());
            return py::bytes(s);
          },
          py::arg("ids"))
      .def(
          "token_to_bytes",
          [](const WorldTokenizer& t, int64_t id) { return py::bytes(std::string(t.token_bytes(id))); },
          py::arg("id"))
      .def("has_token", &WorldTokenizer::has_token, py::arg("id"));
}

}  // namespace sutra::bindings

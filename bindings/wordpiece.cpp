// sutra_fast._core.WordPieceTokenizer: glue over sutra::text::WordPieceTokenizer.
// Python strings cross as UTF-8 (CPython's cached UTF-8, no copy for ASCII);
// a str holding a lone surrogate cannot be UTF-8 and is a ValueError here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry.h"
#include "text/wordpiece.h"

namespace py = pybind11;
using sutra::text::BatchEncoding;
using sutra::text::WordPieceOptions;
using sutra::text::WordPieceTokenizer;

namespace sutra::bindings {
namespace {

std::string_view utf8_of(PyObject* obj, const char* what, Py_ssize_t index) {
  auto where = [&] { return index < 0 ? std::string(what) : std::string(what) + "[" + std::to_string(index) + "]"; };
  if (!PyUnicode_Check(obj))
    throw py::type_error(where() + " must be a str, got " + Py_TYPE(obj)->tp_name);
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(obj, &size);
  if (data == nullptr) {
    PyErr_Clear();
    throw py::value_error(where() + " contains a lone surrogate code point, which has no UTF-8 form; "
                          "clean it first, e.g. s.encode('utf-8', 'replace').decode('utf-8')");
  }
  return std::string_view(data, static_cast<std::size_t>(size));
}

// Keeps the str objects alive (the list may change once the GIL is released).
struct Texts {
  std::vector<py::object> owners;
  std::vector<std::string_view> views;
};

Texts collect(const py::handle& texts) {
  if (PyUnicode_Check(texts.ptr()))
    throw py::type_error("texts must be a list of str, not a single str (wrap it: [text])");
  py::object seq = py::reinterpret_steal<py::object>(PySequence_Fast(texts.ptr(), "texts must be a list of str"));
  if (!seq) throw py::error_already_set();
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
  Texts out;
  out.owners.reserve(n);
  out.views.reserve(n);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq.ptr(), i);
    out.views.push_back(utf8_of(item, "texts", i));
    out.owners.push_back(py::reinterpret_borrow<py::object>(item));
  }
  return out;
}

template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, heap->data(), owner);
}

}  // namespace

void register_wordpiece(py::module_& m) {
  py::class_<WordPieceTokenizer, std::shared_ptr<WordPieceTokenizer>>(m, "WordPieceTokenizer",
      "Compiled BERT WordPiece tokenizer (use sutra_fast.WordPieceTokenizer).")
      .def_static(
          "from_json_bytes",
          [](const py::bytes& data, const std::string& path) {
            std::string_view text = data;
            py::gil_scoped_release release;
            return std::make_shared<WordPieceTokenizer>(WordPieceTokenizer::from_tokenizer_json(text, path));
          },
          py::arg("data"), py::arg("path"))
      .def_static(
          "from_vocab_bytes",
          [](const py::bytes& data, const std::string& path, bool lowercase, std::optional<bool> strip_accents,
             bool clean_text, bool handle_chinese_chars, std::size_t max_input_chars_per_word,
             std::string continuing_subword_prefix, std::string unk_token, std::string cls_token,
             std::string sep_token, std::string pad_token, std::string mask_token) {
            WordPieceOptions o;
            o.lowercase = lowercase;
            o.strip_accents = strip_accents;
            o.clean_text = clean_text;
            o.handle_chinese_chars = handle_chinese_chars;
            o.max_input_chars_per_word = max_input_chars_per_word;
            o.continuing_subword_prefix = std::move(continuing_subword_prefix);
            o.unk_token = std::move(unk_token);
            o.cls_token = std::move(cls_token);
            o.sep_token = std::move(sep_token);
            o.pad_token = std::move(pad_token);
            o.mask_token = std::move(mask_token);
            std::string_view text = data;
            py::gil_scoped_release release;
            return std::make_shared<WordPieceTokenizer>(WordPieceTokenizer::from_vocab_txt(text, o, path));
          },
          py::arg("data"), py::arg("path"), py::arg("lowercase"), py::arg("strip_accents"), py::arg("clean_text"),
          py::arg("handle_chinese_chars"), py::arg("max_input_chars_per_word"),
          py::arg("continuing_subword_prefix"), py::arg("unk_token"), py::arg("cls_token"), py::arg("sep_token"),
          py::arg("pad_token"), py::arg("mask_token"))
      .def(
          "encode",
          [](const WordPieceTokenizer& t, const py::handle& text) {
            const std::string_view s = utf8_of(text.ptr(), "text", -1);
            std::vector<int32_t> ids;
            if (s.size() > 256) {
              py::gil_scoped_release release;  // `text` (the caller's) keeps s alive
              ids = t.encode(s);
            } else {
              ids = t.encode(s);  // short: releasing the GIL costs more than the work
            }
            py::list out(ids.size());
            for (std::size_t i = 0; i < ids.size(); ++i) PyList_SET_ITEM(out.ptr(), i, PyLong_FromLong(ids[i]));
            return out;
          },
          py::arg("text"))
      .def(
          "encode_batch",
          [](const WordPieceTokenizer& t, const py::handle& texts, std::size_t max_length, bool truncate_left) {
            Texts in = collect(texts);
            BatchEncoding b;
            {
              py::gil_scoped_release release;
              b = t.encode_batch(in.views, max_length, truncate_left);
            }
            const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(b.rows), static_cast<py::ssize_t>(b.cols)};
            py::dict out;
            out["input_ids"] = to_numpy(std::move(b.input_ids), shape);
            out["attention_mask"] = to_numpy(std::move(b.attention_mask), shape);
            out["token_type_ids"] = to_numpy(std::move(b.token_type_ids), shape);
            return out;
          },
          py::arg("texts"), py::arg("max_length"), py::arg("truncate_left"))
      .def(
          "encode_many",
          [](const WordPieceTokenizer& t, const py::handle& texts, std::size_t max_length, bool truncate_left) {
            Texts in = collect(texts);
            std::vector<std::vector<int32_t>> rows;
            {
              py::gil_scoped_release release;
              rows = t.encode_many(in.views, max_length, truncate_left);
            }
            py::list out(rows.size());
            for (std::size_t i = 0; i < rows.size(); ++i) {
              std::vector<int64_t> row(rows[i].begin(), rows[i].end());
              const py::ssize_t n = static_cast<py::ssize_t>(row.size());
              PyList_SET_ITEM(out.ptr(), i, to_numpy(std::move(row), {n}).release().ptr());
            }
            return out;
          },
          py::arg("texts"), py::arg("max_length"), py::arg("truncate_left"))
      .def_property_readonly("vocab_size", &WordPieceTokenizer::vocab_size)
      .def("token_to_id",
           [](const WordPieceTokenizer& t, const std::string& token) -> std::optional<int32_t> {
             const int32_t id = t.token_to_id(token);
             if (id < 0) return std::nullopt;
             return id;
           })
      .def("id_to_token",
           [](const WordPieceTokenizer& t, int64_t id) -> std::optional<std::string> {
             if (id < 0 || id > INT32_MAX) return std::nullopt;
             const std::string* s = t.id_to_token(static_cast<int32_t>(id));
             if (s == nullptr) return std::nullopt;
             return *s;
           })
      .def_property_readonly("unk_token_id", &WordPieceTokenizer::unk_id)
      .def_property_readonly("pad_token_id", &WordPieceTokenizer::pad_id)
      .def_property_readonly("cls_token_id", &WordPieceTokenizer::cls_id)
      .def_property_readonly("sep_token_id", &WordPieceTokenizer::sep_id)
      .def_property_readonly("num_special_tokens", &WordPieceTokenizer::num_special_tokens)
      .def_property_readonly("unk_token", &WordPieceTokenizer::unk_token)
      .def_property_readonly("continuing_subword_prefix", &WordPieceTokenizer::continuing_subword_prefix)
      .def_property_readonly("clean_text", &WordPieceTokenizer::clean_text)
      .def_property_readonly("handle_chinese_chars", &WordPieceTokenizer::handle_chinese_chars)
      .def_property_readonly("strip_accents", &WordPieceTokenizer::strip_accents)
      .def_property_readonly("lowercase", &WordPieceTokenizer::lowercase)
      .def_property_readonly("max_input_chars_per_word", &WordPieceTokenizer::max_input_chars_per_word);
}

}  // namespace sutra::bindings

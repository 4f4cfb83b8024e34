// A small JSON reader (RFC 8259), enough for HF tokenizer.json files. Builds a
// plain DOM; parse errors throw std::invalid_argument with the byte offset.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sutra::text {

struct Json {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;  // in file order
  bool streamed = false;  // an object whose members went to a MemberSink

  using MemberSink = std::function<void(std::string&& key, Json&& value)>;

  static Json parse(std::string_view text);
  // Like parse, but the members of an object stored under a key named
  // `stream_key` go to `sink` in file order instead of into the tree (that
  // object is left empty, with `streamed` set). A tokenizer.json's 30k-entry
  // vocabulary as a tree is ~4 MB that a load first-touches and frees.
  static Json parse(std::string_view text, std::string_view stream_key, const MemberSink& sink);

  bool is_null() const noexcept { return type == Type::Null; }
  // Member lookup in an object; nullptr when absent or not an object.
  const Json* find(std::string_view key) const noexcept;
  // Short name of the type for error messages ("string", "object", ...).
  const char* type_name() const noexcept;
};

}  // namespace sutra::text

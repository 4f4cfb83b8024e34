// A small JSON reader (RFC 8259), enough for HF tokenizer.json files. Builds a
// plain DOM; parse errors throw std::invalid_argument with the byte offset.
#pragma once
#include <cstdint>
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

  static Json parse(std::string_view text);

  bool is_null() const noexcept { return type == Type::Null; }
  // Member lookup in an object; nullptr when absent or not an object.
  const Json* find(std::string_view key) const noexcept;
  // Short name of the type for error messages ("string", "object", ...).
  const char* type_name() const noexcept;
};

}  // namespace sutra::text

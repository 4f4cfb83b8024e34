#include "text/json.h"

#include <cstdlib>
#include <stdexcept>

#include "text/unicode.h"

namespace sutra::text {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view s, std::string_view stream_key = {},
                  const Json::MemberSink* sink = nullptr)
      : s_(s), stream_key_(stream_key), sink_(sink) {}

  Json document() {
    Json v = value(0);
    skip_ws();
    if (i_ != s_.size()) fail("trailing characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("invalid JSON at byte " + std::to_string(i_) + ": " + what);
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  char peek() {
    skip_ws();
    if (i_ >= s_.size()) fail("unexpected end of input");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  Json value(int depth) {
    if (depth > 512) fail("nesting too deep");
    Json v;
    const char c = peek();
    if (c == '{') {
      v.type = Json::Type::Object;
      members(depth, [&](std::string&& key) {
        if (sink_ != nullptr && key == stream_key_ && peek() == '{') {
          Json streamed;
          streamed.type = Json::Type::Object;
          streamed.streamed = true;
          const Json::MemberSink* sink = sink_;
          sink_ = nullptr;  // values inside a streamed object are plain trees
          members(depth + 1, [&](std::string&& k) { (*sink)(std::move(k), value(depth + 2)); });
          sink_ = sink;
          v.object.emplace_back(std::move(key), std::move(streamed));
        } else {
          v.object.emplace_back(std::move(key), value(depth + 1));
        }
      });
    } else if (c == '[') {
      v.type = Json::Type::Array;
      ++i_;
      if (peek() == ']') { ++i_; return v; }
      for (;;) {
        v.array.push_back(value(depth + 1));
        const char d = peek();
        ++i_;
        if (d == ']') break;
        if (d != ',') fail("expected ',' or ']'");
      }
    } else if (c == '"') {
      v.type = Json::Type::String;
      v.string = string();
    } else if (literal("true")) {
      v.type = Json::Type::Bool;
      v.boolean = true;
    } else if (literal("false")) {
      v.type = Json::Type::Bool;
    } else if (literal("null")) {
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = Json::Type::Number;
      const std::size_t start = i_;
      // Fast path for the common case (every vocabulary id): a plain non-negative
      // integer of up to 15 digits, exact in a double, no string copy.
      double small = 0.0;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9' && i_ - start < 15)
        small = small * 10.0 + (s_[i_++] - '0');
      const bool leading_zero = s_[start] == '0' && i_ - start > 1;
      if (i_ > start && !leading_zero &&
          (i_ >= s_.size() || std::string_view("+-.eE0123456789").find(s_[i_]) == std::string_view::npos)) {
        v.number = small;
        return v;
      }
      i_ = start;
      while (i_ < s_.size() && (std::string_view("+-.eE0123456789").find(s_[i_]) != std::string_view::npos)) ++i_;
      const std::string num(s_.substr(start, i_ - start));
      char* end = nullptr;
      v.number = std::strtod(num.c_str(), &end);
      if (end != num.c_str() + num.size()) fail("bad number '" + num + "'");
    } else {
      fail(std::string("unexpected character '") + c + "'");
    }
    return v;
  }

  // The members of the object at i_ ('{'): on_member(key) parses each value.
  template <class OnMember>
  void members(int depth, OnMember&& on_member) {
    if (depth > 512) fail("nesting too deep");
    ++i_;
    if (peek() == '}') { ++i_; return; }
    for (;;) {
      if (peek() != '"') fail("expected a string key");
      std::string key = string();
      expect(':');
      on_member(std::move(key));
      const char d = peek();
      ++i_;
      if (d == '}') break;
      if (d != ',') fail("expected ',' or '}'");
    }
  }

  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else fail("bad \\u escape");
    }
    return v;
  }

  std::string string() {
    ++i_;  // opening quote
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      // Copy the run up to the next quote, backslash or control character at once.
      std::size_t j = i_;
      while (j < s_.size() && s_[j] != '"' && s_[j] != '\\' && static_cast<unsigned char>(s_[j]) >= 0x20) ++j;
      out.append(s_.data() + i_, j - i_);
      i_ = j;
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (i_ >= s_.size()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          char32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            const std::size_t save = i_;
            i_ += 2;
            const unsigned lo = hex4();
            if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else i_ = save;
          }
          if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;  // lone surrogate
          utf8_append(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  std::string_view s_;
  std::string_view stream_key_;
  const Json::MemberSink* sink_;
  std::size_t i_ = 0;
};

}  // namespace

Json Json::parse(std::string_view text) { return Parser(text).document(); }

Json Json::parse(std::string_view text, std::string_view stream_key, const MemberSink& sink) {
  return Parser(text, stream_key, &sink).document();
}

const Json* Json::find(std::string_view key) const noexcept {
  if (type != Type::Object) return nullptr;
  for (const auto& kv : object)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

const char* Json::type_name() const noexcept {
  switch (type) {
    case Type::Null: return "null";
    case Type::Bool: return "bool";
    case Type::Number: return "number";
    case Type::String: return "string";
    case Type::Array: return "array";
    case Type::Object: return "object";
  }
  return "?";
}

}  // namespace sutra::text

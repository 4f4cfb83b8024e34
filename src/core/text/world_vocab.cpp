#include "text/world_vocab.h"

#include <cstdint>
#include <stdexcept>
#include <unordered_set>

namespace sutra::text {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Appends code point cp as UTF-8; false for surrogates / out of range (Python's
// str.encode("utf-8") refuses those too).
bool append_utf8(uint32_t cp, std::string* out) {
  if (cp >= 0xD800 && cp <= 0xDFFF) return false;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp <= 0x10FFFF) {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    return false;
  }
  return true;
}

bool parse_int(std::string_view s, long long* v) {
  if (s.empty() || s.size() > 18) return false;
  long long x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + (c - '0');
  }
  *v = x;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool parse_python_literal(std::string_view lit, std::string* out, std::string* why) {
  out->clear();
  bool is_bytes = false;
  if (!lit.empty() && (lit[0] == 'b' || lit[0] == 'B')) {
    is_bytes = true;
    lit.remove_prefix(1);
  }
  if (lit.size() < 2 || (lit[0] != '\'' && lit[0] != '"') || lit.back() != lit[0]) {
    *why = "expected a quoted Python str or bytes literal";
    return false;
  }
  const char quote = lit[0];
  lit = lit.substr(1, lit.size() - 2);
  for (size_t i = 0; i < lit.size();) {
    const unsigned char c = static_cast<unsigned char>(lit[i]);
    if (c == static_cast<unsigned char>(quote)) {
      *why = "unescaped quote inside the literal";
      return false;
    }
    if (c != '\\') {
      if (is_bytes && c >= 0x80) {
        *why = "bytes literal contains a non-ASCII character";
        return false;
      }
      out->push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (i + 1 >= lit.size()) {
      *why = "literal ends with a lone backslash";
      return false;
    }
    const char e = lit[i + 1];
    i += 2;
    switch (e) {
      case '\\': out->push_back('\\'); continue;
      case '\'': out->push_back('\''); continue;
      case '"': out->push_back('"'); continue;
      case 'a': out->push_back('\a'); continue;
      case 'b': out->push_back('\b'); continue;
      case 'f': out->push_back('\f'); continue;
      case 'n': out->push_back('\n'); continue;
      case 'r': out->push_back('\r'); continue;
      case 't': out->push_back('\t'); continue;
      case 'v': out->push_back('\v'); continue;
      default: break;
    }
    if (e >= '0' && e <= '7') {  // octal: up to 3 digits
      uint32_t v = static_cast<uint32_t>(e - '0');
      for (int k = 0; k < 2 && i < lit.size() && lit[i] >= '0' && lit[i] <= '7'; ++k, ++i)
        v = v * 8 + static_cast<uint32_t>(lit[i] - '0');
      if (is_bytes) {
        out->push_back(static_cast<char>(v & 0xFF));
      } else if (!append_utf8(v, out)) {
        *why = "bad octal escape";
        return false;
      }
      continue;
    }
    int ndig = 0;
    if (e == 'x') ndig = 2;
    if (!is_bytes && e == 'u') ndig = 4;
    if (!is_bytes && e == 'U') ndig = 8;
    if (ndig == 0) {  // unknown escape: Python keeps the backslash
      out->push_back('\\');
      i -= 1;
      continue;
    }
    if (i + ndig > lit.size()) {
      *why = std::string("truncated \\") + e + " escape";
      return false;
    }
    uint32_t v = 0;
    for (int k = 0; k < ndig; ++k) {
      const int h = hex_value(lit[i + k]);
      if (h < 0) {
        *why = std::string("bad hex digit in \\") + e + " escape";
        return false;
      }
      v = v * 16 + static_cast<uint32_t>(h);
    }
    i += ndig;
    if (is_bytes) {
      out->push_back(static_cast<char>(v));
    } else if (!append_utf8(v, out)) {
      *why = "escape is a surrogate or beyond U+10FFFF (not encodable as UTF-8)";
      return false;
    }
  }
  return true;
}

std::vector<WorldVocabEntry> parse_world_vocab(std::string_view content) {
  std::vector<WorldVocabEntry> entries;
  std::unordered_set<int> seen;
  size_t pos = 0;
  long long line_no = 0;
  std::string why;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) continue;
    auto fail = [&](const std::string& msg) {
      throw std::invalid_argument("vocabulary line " + std::to_string(line_no) + ": " + msg);
    };
    const size_t first = line.find(' ');
    const size_t last = line.rfind(' ');
    if (first == std::string_view::npos || first == last)
      fail("expected `id literal byte_length`");
    long long id = 0, length = 0;
    if (!parse_int(line.substr(0, first), &id)) fail("the id is not a whole number");
    if (!parse_int(trim(line.substr(last + 1)), &length)) fail("the byte length is not a whole number");
    if (id < 1 || id > (1LL << 24))
      fail("id " + std::to_string(id) + " out of range (1..16777216; 0 is end of text)");
    WorldVocabEntry entry{static_cast<int>(id), {}};
    if (!parse_python_literal(trim(line.substr(first + 1, last - first - 1)), &entry.bytes, &why))
      fail(why);
    if (entry.bytes.empty()) fail("empty token");
    if (static_cast<long long>(entry.bytes.size()) != length)
      fail("token has " + std::to_string(entry.bytes.size()) + " bytes but the line says " +
           std::to_string(length));
    if (!seen.insert(entry.id).second) fail("duplicate id " + std::to_string(id));
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) throw std::invalid_argument("vocabulary is empty");
  return entries;
}

}  // namespace sutra::text

// Parser for RWKV World vocabulary files (rwkv_vocab_v20230424.txt format):
// one token per line, `id repr(token) byte_length`, where repr(token) is a
// Python str or bytes literal. str tokens are stored as their UTF-8 bytes.
// Any malformed line throws std::invalid_argument naming its line number.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace sutra::text {

struct WorldVocabEntry {
  int id;
  std::string bytes;  // the token's bytes (UTF-8 for str literals)
};

// Parses a Python string/bytes literal such as 'a\n', "it's", b'\xff'
// (prefix b/B, quotes ' or ", escapes \\ \' \" \a \b \f \n \r \t \v \ooo \xhh,
// and for str also \uXXXX \UXXXXXXXX). Returns false and sets *why on error.
bool parse_python_literal(std::string_view lit, std::string* out, std::string* why);

// Parses the whole file content. Ids must be >= 1 (0 is end-of-text) and unique.
std::vector<WorldVocabEntry> parse_world_vocab(std::string_view content);

}  // namespace sutra::text

// RWKV World tokenizer: greedy longest match over UTF-8 bytes with a
// double-array trie, identical in output to the `rwkv` package's
// TRIE_TOKENIZER. Id 0 is end-of-text and decodes to no bytes. Immutable after
// construction, so one instance may be used from many threads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "text/world_trie.h"

namespace sutra::text {

class WorldTokenizer {
 public:
  // Throws std::invalid_argument (malformed line, naming it) or
  // std::runtime_error (unreadable file).
  static std::shared_ptr<WorldTokenizer> from_file(const std::string& path);
  static std::shared_ptr<WorldTokenizer> from_string(std::string_view content);

  // max id + 1 (ids without a token, and 0, decode to nothing / are rejected).
  int32_t vocab_size() const noexcept { return static_cast<int32_t>(offsets_.size()) - 1; }

  // Throws std::invalid_argument if some byte starts no token (only possible
  // with a vocabulary that lacks single-byte tokens).
  void encode(std::string_view bytes, std::vector<int32_t>* out) const;
  std::vector<int32_t> encode(std::string_view bytes) const;
  // Encodes texts[i] into out[i] over the shared thread pool, at most
  // max_threads chunks in flight (0: pool default).
  void encode_batch(const std::vector<std::string_view>& texts,
                    std::vector<std::vector<int32_t>>* out, int max_threads) const;

  // Throws std::invalid_argument naming the first id that is out of range or
  // has no token. Id 0 gives no bytes.
  std::string decode(const int64_t* ids, size_t n) const;
  std::string_view token_bytes(int64_t id) const;  // throws like decode
  bool has_token(int64_t id) const noexcept;

 private:
  WorldTokenizer(std::vector<uint32_t> offsets, std::string blob,
                 std::vector<uint8_t> present, WorldTrie trie);
  std::vector<uint32_t> offsets_;  // token id -> [offsets_[id], offsets_[id+1]) in blob_
  std::string blob_;
  std::vector<uint8_t> present_;   // 1 if the id has a token
  WorldTrie trie_;
};

}  // namespace sutra::text

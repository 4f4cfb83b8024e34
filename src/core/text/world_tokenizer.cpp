#include "text/world_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/thread_pool.h"
#include "text/world_vocab.h"

namespace sutra::text {

WorldTokenizer::WorldTokenizer(std::vector<uint32_t> offsets, std::string blob,
                               std::vector<uint8_t> present, WorldTrie trie)
    : offsets_(std::move(offsets)), blob_(std::move(blob)), present_(std::move(present)),
      trie_(std::move(trie)) {}

std::shared_ptr<WorldTokenizer> WorldTokenizer::from_string(std::string_view content) {
  std::vector<WorldVocabEntry> entries = parse_world_vocab(content);
  int max_id = 0;
  size_t total = 0;
  for (const auto& e : entries) {
    max_id = std::max(max_id, e.id);
    total += e.bytes.size();
  }
  std::vector<std::string_view> by_id(static_cast<size_t>(max_id) + 1);
  std::vector<uint8_t> present(static_cast<size_t>(max_id) + 1, 0);
  for (const auto& e : entries) {
    by_id[static_cast<size_t>(e.id)] = e.bytes;
    present[static_cast<size_t>(e.id)] = 1;
  }
  std::string blob;
  blob.reserve(total);
  std::vector<uint32_t> offsets(static_cast<size_t>(max_id) + 2, 0);
  for (size_t id = 0; id < by_id.size(); ++id) {
    offsets[id] = static_cast<uint32_t>(blob.size());
    blob.append(by_id[id]);
  }
  offsets.back() = static_cast<uint32_t>(blob.size());
  // Keys in file order: for duplicate bytes the later line wins, as in the reference.
  std::vector<std::pair<std::string_view, int32_t>> keys;
  keys.reserve(entries.size());
  for (const auto& e : entries) keys.emplace_back(e.bytes, e.id);
  WorldTrie trie(std::move(keys));
  return std::shared_ptr<WorldTokenizer>(
      new WorldTokenizer(std::move(offsets), std::move(blob), std::move(present), std::move(trie)));
}

std::shared_ptr<WorldTokenizer> WorldTokenizer::from_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open vocabulary file: " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw std::runtime_error("cannot read vocabulary file: " + path);
  return from_string(ss.str());
}

void WorldTokenizer::encode(std::string_view bytes, std::vector<int32_t>* out) const {
  out->reserve(out->size() + bytes.size() / 3 + 4);
  const size_t stop = trie_.encode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), out);
  if (stop != bytes.size()) {
    throw std::invalid_argument("byte 0x" + [](unsigned v) {
      const char* h = "0123456789abcdef";
      return std::string{h[v >> 4], h[v & 15]};
    }(static_cast<uint8_t>(bytes[stop])) + " at offset " + std::to_string(stop) +
                                " starts no token of this vocabulary");
  }
}

std::vector<int32_t> WorldTokenizer::encode(std::string_view bytes) const {
  std::vector<int32_t> out;
  encode(bytes, &out);
  return out;
}

void WorldTokenizer::encode_batch(const std::vector<std::string_view>& texts,
                                  std::vector<std::vector<int32_t>>* out, int max_threads) const {
  out->assign(texts.size(), {});
  const size_t n = texts.size();
  if (n == 0) return;
  const size_t threads = max_threads > 0 ? static_cast<size_t>(max_threads) : static_cast<size_t>(num_threads());
  const size_t grain = std::max<size_t>(1, (n + threads - 1) / threads);
  // With max_threads given, grain = ceil(n / threads) caps the chunks in flight.
  const size_t g = max_threads > 0 ? grain : std::max<size_t>(1, std::min<size_t>(grain, 16));
  parallel_for(n, g, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) encode(texts[i], &(*out)[i]);
  });
}

bool WorldTokenizer::has_token(int64_t id) const noexcept {
  return id >= 0 && id < vocab_size() && (id == 0 || present_[static_cast<size_t>(id)]);
}

std::string_view WorldTokenizer::token_bytes(int64_t id) const {
  if (!has_token(id)) {
    if (id < 0 || id >= vocab_size())
      throw std::invalid_argument("token id " + std::to_string(id) + " is out of range [0, " +
                                  std::to_string(vocab_size()) + ")");
    throw std::invalid_argument("token id " + std::to_string(id) + " has no token in this vocabulary");
  }
  const size_t i = static_cast<size_t>(id);
  return std::string_view(blob_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
}

std::string WorldTokenizer::decode(const int64_t* ids, size_t n) const {
  size_t total = 0;
  for (size_t k = 0; k < n; ++k) total += token_bytes(ids[k]).size();
  std::string out;
  out.reserve(total);
  for (size_t k = 0; k < n; ++k) out.append(token_bytes(ids[k]));
  return out;
}

}  // namespace sutra::text

// Double-array trie over bytes with greedy longest-match encoding (the RWKV
// World tokenizer rule). Node s has children at base[s] + byte + 1 when
// check[child] == s; the array is padded so a transition never needs a bounds
// check. Each slot packs base, check and the token id (-1: no token ends here)
// so one step touches one 16-byte slot.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sutra::text {

class WorldTrie {
 public:
  // keys[i] = (bytes, id); non-empty keys; when the same bytes appear more than
  // once the LAST one wins (as the reference's bytes->id dict does).
  explicit WorldTrie(std::vector<std::pair<std::string, int32_t>> keys);

  // Greedy longest match over src[0, n). Appends ids to out. Returns the offset
  // of the first byte that starts no token (n on success).
  size_t encode(const uint8_t* src, size_t n, std::vector<int32_t>* out) const noexcept;

  size_t num_slots() const noexcept { return slots_.size(); }

 private:
  struct Slot {
    int32_t base;
    int32_t check;
    int32_t id;
    int32_t pad;
  };
  std::vector<Slot> slots_;
  // Root fast path: id of each single byte and the node reached after 2 bytes.
  int32_t byte_id_[256];
  std::vector<int32_t> two_;  // 65536 entries: node after bytes (b0,b1) or -1
};

}  // namespace sutra::text

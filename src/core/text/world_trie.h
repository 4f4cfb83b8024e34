// Double-array trie over bytes with greedy longest-match encoding (the RWKV
// World tokenizer rule). Node s has children at base[s] + byte + 1 when
// check[child] == s; the array is padded so a transition never needs a bounds
// check. A slot is 8 bytes (base with a "token ends here" flag in bit 31, and
// check) so one step touches one small slot; token ids sit in a side array.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sutra::text {

class WorldTrie {
 public:
  // keys[i] = (bytes, id); non-empty keys; when the same bytes appear more than
  // once the LAST one wins (as the reference's bytes->id dict does).
  explicit WorldTrie(std::vector<std::pair<std::string_view, int32_t>> keys);

  // Greedy longest match over src[0, n). Appends ids to out. Returns the offset
  // of the first byte that starts no token (n on success).
  size_t encode(const uint8_t* src, size_t n, std::vector<int32_t>* out) const noexcept;

  size_t num_slots() const noexcept { return slots_.size(); }

 private:
  struct Slot {
    uint32_t base;  // bit 31: a token ends at this node
    int32_t check;
  };
  static constexpr uint32_t kEnd = 0x80000000u;
  std::vector<Slot> slots_;
  std::vector<int32_t> ids_;  // per slot: token id, or -1
  // Root fast path: id of each single byte and the node reached after 2 bytes.
  int32_t byte_id_[256];
  std::vector<int32_t> two_;  // 65536 entries: node after bytes (b0,b1) or -1
};

}  // namespace sutra::text

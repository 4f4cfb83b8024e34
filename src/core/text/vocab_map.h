// Open-addressing hash map from token bytes to id, keyed by string_view: the
// lookups in the WordPiece hot loop allocate nothing. Keys live in one arena.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace sutra::text {

inline uint64_t hash_bytes(const char* p, std::size_t n) noexcept {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  if (n != 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
  }
  h ^= h >> 29;
  h *= 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 32);
}

class VocabMap {
 public:
  // Inserts or overwrites (the last insert of a key wins, as in a HashMap).
  void insert(std::string_view key, int32_t id) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    if (Slot* s = lookup(key, hash_bytes(key.data(), key.size()))) {
      if (s->id >= 0) { s->id = id; return; }
      place(*s, key, id, hash_bytes(key.data(), key.size()));
      ++count_;
    }
  }

  // The id of key, or -1. Probes the compact 16-bit tag array first (it
  // stays in cache; most failed lookups of the greedy match end there).
  int32_t find(std::string_view key) const noexcept {
    if (slots_.empty()) return -1;
    const uint64_t h = hash_bytes(key.data(), key.size());
    const uint16_t small = short_tag(h);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint16_t t = tags_[i];
      if (t == 0) return -1;
      if (t != small) continue;
      const Slot& s = slots_[i];
      if (s.len == key.size() && std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
        return s.id;
    }
  }

  // Room for n keys without growing (a loader that knows the count skips
  // the rehashes of growing one key at a time).
  void reserve(std::size_t n) {
    std::size_t slots = 64;
    while (slots < 2 * n) slots *= 2;
    if (slots > slots_.size()) rehash(slots);
  }

  std::size_t size() const noexcept { return count_; }
  std::size_t max_key_bytes() const noexcept { return max_len_; }

 private:
  struct Slot {
    uint32_t tag = 0;
    uint32_t offset = 0;
    uint32_t len = 0;
    int32_t id = -1;  // -1: empty
  };

  static uint16_t short_tag(uint64_t h) noexcept { return static_cast<uint16_t>((h >> 48) | 1); }

  Slot* lookup(std::string_view key, uint64_t h) noexcept {
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) return &s;
      if (s.tag == tag && s.len == key.size() &&
          std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
        return &s;
    }
  }

  void place(Slot& s, std::string_view key, int32_t id, uint64_t h) {
    s.tag = static_cast<uint32_t>(h >> 32);
    s.offset = static_cast<uint32_t>(arena_.size());
    s.len = static_cast<uint32_t>(key.size());
    s.id = id;
    tags_[&s - slots_.data()] = short_tag(h);
    arena_.append(key.data(), key.size());
    if (key.size() > max_len_) max_len_ = key.size();
  }

  void grow() { rehash(slots_.empty() ? 64 : slots_.size() * 2); }

  void rehash(std::size_t slots) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(slots, Slot{});
    tags_.assign(slots_.size(), 0);
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.id < 0) continue;
      const std::string_view key(arena_.data() + s.offset, s.len);
      const uint64_t h = hash_bytes(key.data(), key.size());
      for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
        if (slots_[i].id < 0) { slots_[i] = s; tags_[i] = short_tag(h); break; }
      }
    }
  }

  std::vector<Slot> slots_;
  std::vector<uint16_t> tags_;  // 0: empty slot
  std::string arena_;
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
  std::size_t max_len_ = 0;
};

}  // namespace sutra::text

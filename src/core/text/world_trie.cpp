#include "text/world_trie.h"

#include <algorithm>
#include <stdexcept>

namespace sutra::text {
namespace {
constexpr int32_t kFree = -1;
}

WorldTrie::WorldTrie(std::vector<std::pair<std::string, int32_t>> keys) {
  // Sort by bytes; for equal bytes keep the last given (stable sort, then take
  // the last of each run).
  std::stable_sort(keys.begin(), keys.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::string, int32_t>> uniq;
  uniq.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].first.empty()) throw std::invalid_argument("empty token");
    if (i + 1 < keys.size() && keys[i + 1].first == keys[i].first) continue;
    uniq.push_back(std::move(keys[i]));
  }

  slots_.assign(1024, Slot{0, kFree, -1, 0});
  slots_[0].check = 0;  // root occupies slot 0 (its own parent; never a child slot)
  size_t first_free = 1;
  auto ensure = [&](size_t n) {
    if (n > slots_.size()) slots_.resize(std::max(n, slots_.size() * 2), Slot{0, kFree, -1, 0});
  };

  // Work items: node slot + the key range [lo, hi) sharing its prefix of `depth` bytes.
  struct Item {
    int32_t node;
    size_t lo, hi, depth;
  };
  std::vector<Item> stack{{0, 0, uniq.size(), 0}};
  std::vector<uint8_t> labels;
  std::vector<size_t> starts;
  while (!stack.empty()) {
    const Item it = stack.back();
    stack.pop_back();
    size_t lo = it.lo;
    // A key equal to the prefix sorts first in the range: it ends at this node.
    if (lo < it.hi && uniq[lo].first.size() == it.depth) {
      slots_[it.node].id = uniq[lo].second;
      ++lo;
    }
    labels.clear();
    starts.clear();
    for (size_t i = lo; i < it.hi; ++i) {
      const uint8_t c = static_cast<uint8_t>(uniq[i].first[it.depth]);
      if (labels.empty() || labels.back() != c) {
        labels.push_back(c);
        starts.push_back(i);
      }
    }
    if (labels.empty()) continue;
    starts.push_back(it.hi);
    // Find base so that every base + c + 1 is free.
    size_t p = std::max(first_free, static_cast<size_t>(labels[0]) + 1);
    int32_t base = 0;
    for (;; ++p) {
      ensure(p + 258);
      if (slots_[p].check != kFree) continue;
      base = static_cast<int32_t>(p - labels[0] - 1);
      bool ok = true;
      for (size_t k = 1; k < labels.size() && ok; ++k)
        ok = slots_[static_cast<size_t>(base) + labels[k] + 1].check == kFree;
      if (ok) break;
    }
    slots_[it.node].base = base;
    for (size_t k = 0; k < labels.size(); ++k) {
      const size_t child = static_cast<size_t>(base) + labels[k] + 1;
      slots_[child].check = it.node;
      stack.push_back({static_cast<int32_t>(child), starts[k], starts[k + 1], it.depth + 1});
    }
    while (first_free < slots_.size() && slots_[first_free].check != kFree) ++first_free;
  }
  // Pad: any base + 256 + 1 stays inside the array; padding slots are free.
  int32_t max_base = 0;
  for (const Slot& s : slots_) max_base = std::max(max_base, s.base);
  ensure(static_cast<size_t>(max_base) + 258);
  slots_.resize(std::max(slots_.size(), static_cast<size_t>(max_base) + 258), Slot{0, kFree, -1, 0});
  // Free slots must never match a check: kFree = -1 is no node.

  // Root fast paths.
  two_.assign(65536, -1);
  for (int b0 = 0; b0 < 256; ++b0) {
    const size_t n1 = static_cast<size_t>(slots_[0].base) + b0 + 1;
    const bool has1 = slots_[n1].check == 0;
    byte_id_[b0] = has1 ? slots_[n1].id : -1;
    if (!has1) continue;
    for (int b1 = 0; b1 < 256; ++b1) {
      const size_t n2 = static_cast<size_t>(slots_[n1].base) + b1 + 1;
      if (slots_[n2].check == static_cast<int32_t>(n1)) two_[(b0 << 8) | b1] = static_cast<int32_t>(n2);
    }
  }
}

size_t WorldTrie::encode(const uint8_t* src, size_t n, std::vector<int32_t>* out) const noexcept {
  const Slot* slots = slots_.data();
  size_t i = 0;
  while (i < n) {
    int32_t best_id = byte_id_[src[i]];
    size_t best_end = i + 1;
    if (i + 1 < n) {
      int32_t s = two_[(static_cast<size_t>(src[i]) << 8) | src[i + 1]];
      if (s >= 0) {
        size_t j = i + 2;
        if (slots[s].id >= 0) {
          best_id = slots[s].id;
          best_end = j;
        }
        while (j < n) {
          const int32_t t = slots[s].base + src[j] + 1;
          if (slots[t].check != s) break;
          s = t;
          ++j;
          if (slots[s].id >= 0) {
            best_id = slots[s].id;
            best_end = j;
          }
        }
      }
    }
    if (best_id < 0) return i;
    out->push_back(best_id);
    i = best_end;
  }
  return n;
}

}  // namespace sutra::text

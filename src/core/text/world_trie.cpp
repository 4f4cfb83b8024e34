#include "text/world_trie.h"

#include <algorithm>
#include <stdexcept>

namespace sutra::text {

WorldTrie::WorldTrie(std::vector<std::pair<std::string_view, int32_t>> keys) {
  // Sort by bytes; for equal bytes keep the last given (stable sort, then take
  // the last of each run).
  std::stable_sort(keys.begin(), keys.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::string_view, int32_t>> uniq;
  uniq.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].first.empty()) throw std::invalid_argument("empty token");
    if (i + 1 < keys.size() && keys[i + 1].first == keys[i].first) continue;
    uniq.push_back(keys[i]);
  }

  // Build with plain vectors: base/check/id per slot and a doubly linked list
  // of free slots so the search for a base visits free slots only.
  std::vector<int32_t> base, check, ids, next, prev;
  std::vector<uint8_t> fails;  // rejections per free slot; often-rejected slots leave the list
  auto grow = [&](size_t n) {
    size_t old = check.size();
    if (n <= old) return;
    n = std::max(n, old * 2);
    base.resize(n, 0);
    check.resize(n, -1);
    ids.resize(n, -1);
    next.resize(n);
    prev.resize(n);
    fails.resize(n, 0);
    // Link the new slots at the tail of the free list. Slot 0 is the list head sentinel.
    const int32_t tail = old ? prev[0] : 0;
    int32_t last = tail;
    for (size_t i = std::max<size_t>(old, 1); i < n; ++i) {
      next[static_cast<size_t>(last)] = static_cast<int32_t>(i);
      prev[i] = last;
      last = static_cast<int32_t>(i);
    }
    next[static_cast<size_t>(last)] = 0;
    prev[0] = last;
  };
  auto take = [&](size_t p) {
    next[static_cast<size_t>(prev[p])] = next[p];
    prev[static_cast<size_t>(next[p])] = prev[p];
  };
  grow(1024);
  check[0] = 0;  // root at slot 0 (slot 0 doubles as the free-list sentinel)

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
    // A key equal to the prefix sorts first in its range: it ends at this node.
    if (lo < it.hi && uniq[lo].first.size() == it.depth) {
      ids[static_cast<size_t>(it.node)] = uniq[lo].second;
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
    // First free slot p with p - labels[0] - 1 >= 0 where all other children fit.
    int32_t b = -1;
    for (int32_t p = next[0];; p = next[static_cast<size_t>(p)]) {
      if (p == 0) {  // ran off the end: append room
        const size_t n = check.size();
        grow(n + 512);
        p = static_cast<int32_t>(n);
      }
      const int32_t cand = p - labels[0] - 1;
      if (cand >= 0) {
        grow(static_cast<size_t>(cand) + 258);
        bool ok = true;
        for (size_t k = 1; k < labels.size() && ok; ++k)
          ok = check[static_cast<size_t>(cand) + labels[k] + 1] < 0;
        if (ok) {
          b = cand;
          break;
        }
      }
      // Bounded search (darts-style): a slot rejected many times is dropped
      // from the free list and stays an unused hole.
      if (++fails[static_cast<size_t>(p)] >= 16) {
        const int32_t keep = prev[static_cast<size_t>(p)];
        take(static_cast<size_t>(p));
        p = keep;
      }
    }
    base[static_cast<size_t>(it.node)] = b;
    for (size_t k = 0; k < labels.size(); ++k) {
      const size_t child = static_cast<size_t>(b) + labels[k] + 1;
      check[child] = it.node;
      take(child);
      stack.push_back({static_cast<int32_t>(child), starts[k], starts[k + 1], it.depth + 1});
    }
  }
  int32_t max_base = 0;
  for (int32_t v : base) max_base = std::max(max_base, v);
  const size_t size = std::max(check.size(), static_cast<size_t>(max_base) + 258);
  slots_.assign(size, Slot{0, -1});
  ids_.assign(size, -1);
  for (size_t i = 0; i < check.size(); ++i) {
    slots_[i].check = check[i];
    slots_[i].base = static_cast<uint32_t>(base[i]) | (ids[i] >= 0 ? kEnd : 0u);
    ids_[i] = ids[i];
  }

  // Root fast paths.
  two_.assign(65536, -1);
  for (int b0 = 0; b0 < 256; ++b0) {
    const size_t n1 = (slots_[0].base & ~kEnd) + b0 + 1;
    const bool has1 = slots_[n1].check == 0;
    byte_id_[b0] = has1 ? ids_[n1] : -1;
    if (!has1) continue;
    for (int b1 = 0; b1 < 256; ++b1) {
      const size_t n2 = (slots_[n1].base & ~kEnd) + b1 + 1;
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
        int32_t best_node = -1;
        size_t j = i + 2;
        uint32_t b = slots[s].base;
        if (b & kEnd) {
          best_node = s;
          best_end = j;
        }
        while (j < n) {
          const int32_t t = static_cast<int32_t>((b & ~kEnd) + src[j] + 1);
          if (slots[t].check != s) break;
          s = t;
          b = slots[s].base;
          ++j;
          if (b & kEnd) {
            best_node = s;
            best_end = j;
          }
        }
        if (best_node >= 0) best_id = ids_[static_cast<size_t>(best_node)];
      }
    }
    if (best_id < 0) return i;
    out->push_back(best_id);
    i = best_end;
  }
  return n;
}

}  // namespace sutra::text

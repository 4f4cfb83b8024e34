#include "rwkv/head_rescore.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace sutra::rwkv {
namespace {

// Heap order: the root is the entry to evict first (smallest value, and among
// equal values the highest index), so the kept set is deterministic.
struct EvictFirst {
  bool operator()(const std::pair<float, int64_t>& a,
                  const std::pair<float, int64_t>& b) const noexcept {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  }
};

}  // namespace

void top_k_indices(const float* x, int64_t n, int64_t k, int64_t* out) {
  std::vector<std::pair<float, int64_t>> heap;
  heap.reserve(static_cast<std::size_t>(k));
  int64_t i = 0;
  for (; i < n && static_cast<int64_t>(heap.size()) < k; ++i) {
    heap.emplace_back(x[i], i);
    std::push_heap(heap.begin(), heap.end(), EvictFirst{});
  }
  const auto offer = [&](int64_t j) {
    if (!(x[j] > heap.front().first)) return;  // equal values keep the earlier index
    std::pop_heap(heap.begin(), heap.end(), EvictFirst{});
    heap.back() = {x[j], j};
    std::push_heap(heap.begin(), heap.end(), EvictFirst{});
  };
  // Blocks of 16 are tested against the current threshold without branches; only
  // the rare block holding a new candidate is walked element by element.
  constexpr int64_t kBlock = 16;
  for (; i < n && i % kBlock != 0; ++i) offer(i);
  for (; i + kBlock <= n; i += kBlock) {
    const float thr = heap.front().first;
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (int64_t l = 0; l < kBlock; ++l) hit |= x[i + l] > thr;
    if (hit)
      for (int64_t l = 0; l < kBlock; ++l) offer(i + l);
  }
  for (; i < n; ++i) offer(i);
  for (std::size_t j = 0; j < heap.size(); ++j) out[j] = heap[j].second;
}

void rescore_top(const RowTable& rows, const float* x, float* logits, int64_t vocab) {
  const int64_t k = std::min(kRescore, vocab);
  int64_t idx[kRescore];
  top_k_indices(logits, vocab, k, idx);
  for (int64_t j = 0; j < k; ++j) logits[idx[j]] = rows.dot(idx[j], x);
}

}  // namespace sutra::rwkv

// RWKV-7 ("x070", Goose) forward: weights, state layout, decode and prefill.
// Math: shared/RWKV_MATH.md §2 (the `rwkv` package 0.8.32, CPU path).
//
// State (caller-owned, float32, C-contiguous; same layout as the rwkv package):
//   att_x_prev [L, C], att_kv [L, H, N, N] (row = value dim), ffn_x_prev [L, C].
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "rwkv/matrix.h"

namespace sutra::rwkv {

struct Rwkv7Config {
  int64_t n_layer = 0, n_embd = 0, n_head = 0, head_size = 0, vocab = 0;
  int64_t d_w = 0, d_a = 0, d_v = 0, d_g = 0, ffn = 0;
};

struct Rwkv7Layer {
  // (C) vectors, fp32.
  std::vector<float> ln1_w, ln1_b, ln2_w, ln2_b, x_r, x_w, x_k, x_v, x_a, x_g, w0, a0, v0, k_k,
      k_a, r_k, lnx_w, lnx_b, ffn_x_k;
  Matrix R, K, V, O;                       // C x C at the chosen precision
  Matrix W1, W2, A1, A2, V1, V2, G1, G2;   // LoRAs, transposed to (out x in); fp32 or bf16
  Matrix FK, FV;                           // 4C x C, C x 4C
  bool has_v = false;
};

class Rwkv7Model {
 public:
  // tensors: checkpoint names -> views (float32 or bf16). Shapes are checked;
  // a missing or misshapen tensor is std::invalid_argument.
  Rwkv7Model(const std::map<std::string, TensorView>& tensors, Precision precision, int threads);

  const Rwkv7Config& config() const noexcept { return cfg_; }
  Precision precision() const noexcept { return prec_; }
  int threads() const noexcept { return threads_; }
  // Bytes of weights one decode step reads (all matrices + one embedding row).
  std::size_t decode_bytes() const noexcept;
  std::size_t weight_bytes() const noexcept;

  // Feeds n >= 1 tokens, updates the state in place, writes the logits after the
  // last token into logits[vocab]. Token ids are checked before anything changes.
  void forward(const int64_t* tokens, int64_t n, float* att_x_prev, float* att_kv,
               float* ffn_x_prev, float* logits) const;

 private:
  void forward_chunk(const int64_t* tokens, int64_t T, float* att_x_prev, float* att_kv,
                     float* ffn_x_prev, float* arena, float* x_last) const;

  Rwkv7Config cfg_;
  Precision prec_;
  int threads_;
  RowTable emb_;  // raw rows; ln0 is applied at lookup
  std::vector<float> ln0_w_, ln0_b_;
  std::vector<Rwkv7Layer> layers_;
  std::vector<float> ln_out_w_, ln_out_b_;
  Matrix head_;
  RowTable head_rows_;  // int8 only: the head's rows as stored, for re-scoring
};

}  // namespace sutra::rwkv

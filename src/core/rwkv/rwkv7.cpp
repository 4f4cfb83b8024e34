// RWKV-7 forward: load-time layout, then per chunk of tokens the batched
// projections and the sequential wkv recurrence (see rwkv7.h, RWKV_MATH.md §2).
#include "rwkv/rwkv7.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <regex>
#include <stdexcept>

#include "rwkv/head_rescore.h"
#include "rwkv/kernels_table.h"
#include "rwkv/parallel.h"

namespace sutra::rwkv {
namespace {

const KernelTable& table() { return SUTRA_ISA_SELECT(sutra::rwkv); }

constexpr int64_t kChunk = 64;  // prefill tokens per pass over the weights

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

class Source {
 public:
  explicit Source(const std::map<std::string, TensorView>& t) : t_(t) {}
  bool has(const std::string& name) const { return t_.count(name) != 0; }
  const TensorView& get(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = t_.find(name);
    if (it == t_.end()) throw std::invalid_argument("RWKV-7 checkpoint is missing tensor " + name);
    const TensorView& v = it->second;
    if (v.data == nullptr) throw std::invalid_argument("tensor " + name + " has no data");
    // (1, 1, C) mixing vectors may come squeezed.
    const bool ok = v.shape == shape ||
                    (shape.size() == 1 && v.shape.size() == 3 && v.shape[0] == 1 &&
                     v.shape[1] == 1 && v.shape[2] == shape[0]);
    if (!ok)
      throw std::invalid_argument("tensor " + name + " has shape " + shape_str(v.shape) +
                                  ", expected " + shape_str(shape));
    return v;
  }
  std::vector<float> vec(const std::string& name, int64_t n) const {
    const TensorView& v = get(name, {n});
    std::vector<float> out(n);
    for (int64_t i = 0; i < n; ++i) out[i] = v.at(i);
    return out;
  }
  std::vector<int64_t> shape(const std::string& name) const {
    auto it = t_.find(name);
    if (it == t_.end()) throw std::invalid_argument("RWKV-7 checkpoint is missing tensor " + name);
    return it->second.shape;
  }

 private:
  const std::map<std::string, TensorView>& t_;
};

void layer_norm(const float* x, const float* w, const float* b, int64_t n, float eps,
                float* out) noexcept {
  float mean = 0.0f;
#pragma omp simd reduction(+ : mean)
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<float>(n);
  float var = 0.0f;
#pragma omp simd reduction(+ : var)
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<float>(n);
  const float inv = 1.0f / std::sqrt(var + eps);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - mean) * inv * w[i] + b[i];
}

inline float sigmoid(float x) noexcept { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

Rwkv7Model::Rwkv7Model(const std::map<std::string, TensorView>& tensors, Precision precision,
                       int threads)
    : prec_(precision), threads_(threads) {
  if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0 = all)");
  const Source src(tensors);
  const auto emb_shape = src.shape("emb.weight");
  const auto rk_shape = src.shape("blocks.0.att.r_k");
  if (emb_shape.size() != 2 || rk_shape.size() != 2)
    throw std::invalid_argument("emb.weight and blocks.0.att.r_k must be 2-D");
  Rwkv7Config& c = cfg_;
  c.vocab = emb_shape[0];
  c.n_embd = emb_shape[1];
  c.n_head = rk_shape[0];
  c.head_size = rk_shape[1];
  if (c.vocab < 1 || c.n_embd < 1 || c.n_head < 1 || c.head_size < 1 ||
      c.n_head * c.head_size != c.n_embd)
    throw std::invalid_argument("inconsistent sizes: emb.weight " + shape_str(emb_shape) +
                                ", blocks.0.att.r_k " + shape_str(rk_shape));
  const std::regex block_re(R"(^blocks\.(\d+)\..*)");
  for (const auto& kv : tensors) {
    std::smatch m;
    if (std::regex_match(kv.first, m, block_re)) {
      if (m[1].str().size() > 6) throw std::invalid_argument("absurd block index in " + kv.first);
      c.n_layer = std::max<int64_t>(c.n_layer, std::stoll(m[1].str()) + 1);
    }
  }
  if (c.n_layer < 1) throw std::invalid_argument("no blocks.* tensors found");
  const int64_t C = c.n_embd;
  auto last_dim = [&](const std::string& n) {
    const auto s = src.shape(n);
    if (s.size() != 2) throw std::invalid_argument("tensor " + n + " must be 2-D");
    return s[1];
  };
  c.d_w = last_dim("blocks.0.att.w1");
  c.d_a = last_dim("blocks.0.att.a1");
  c.d_g = last_dim("blocks.0.att.g1");
  {
    const auto s = src.shape("blocks.0.ffn.key.weight");
    if (s.size() != 2) throw std::invalid_argument("blocks.0.ffn.key.weight must be 2-D");
    c.ffn = s[0];
  }
  for (int64_t i = 0; i < c.n_layer && c.d_v == 0; ++i) {
    const std::string n = "blocks." + std::to_string(i) + ".att.v1";
    if (src.has(n)) c.d_v = last_dim(n);
  }

  // Embedding: kept as stored (bf16 rows stay exact in the bf16/int8 modes); the
  // reference pre-normalises every row with ln0 at load, we do the same per lookup.
  emb_ = RowTable(src.get("emb.weight", {c.vocab, C}), precision != Precision::f32);
  ln0_w_ = src.vec("blocks.0.ln0.weight", C);
  ln0_b_ = src.vec("blocks.0.ln0.bias", C);
  layers_.resize(c.n_layer);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    Rwkv7Layer& L = layers_[i];
    const std::string p = "blocks." + std::to_string(i) + ".", a = p + "att.";
    L.ln1_w = src.vec(p + "ln1.weight", C);
    L.ln1_b = src.vec(p + "ln1.bias", C);
    L.ln2_w = src.vec(p + "ln2.weight", C);
    L.ln2_b = src.vec(p + "ln2.bias", C);
    L.x_r = src.vec(a + "x_r", C);
    L.x_w = src.vec(a + "x_w", C);
    L.x_k = src.vec(a + "x_k", C);
    L.x_v = src.vec(a + "x_v", C);
    L.x_a = src.vec(a + "x_a", C);
    L.x_g = src.vec(a + "x_g", C);
    L.w0 = src.vec(a + "w0", C);
    L.a0 = src.vec(a + "a0", C);
    L.k_k = src.vec(a + "k_k", C);
    L.k_a = src.vec(a + "k_a", C);
    {
      const TensorView& rk = src.get(a + "r_k", {c.n_head, c.head_size});
      L.r_k.resize(C);
      for (int64_t j = 0; j < C; ++j) L.r_k[j] = rk.at(j);
    }
    L.lnx_w = src.vec(a + "ln_x.weight", C);
    L.lnx_b = src.vec(a + "ln_x.bias", C);
    L.R = Matrix(src.get(a + "receptance.weight", {C, C}), precision, false);
    L.K = Matrix(src.get(a + "key.weight", {C, C}), precision, false);
    L.V = Matrix(src.get(a + "value.weight", {C, C}), precision, false);
    L.O = Matrix(src.get(a + "output.weight", {C, C}), precision, false);
    // LoRAs are stored (in x out) for x @ W; transpose to (out x in). ~10% of the
    // bytes: bf16 in the bf16 and int8 modes (a bf16 checkpoint's exact values), fp32 else.
    const Precision lora = precision == Precision::f32 ? Precision::f32 : Precision::bf16;
    const bool exact = precision == Precision::i8;
    L.W1 = Matrix(src.get(a + "w1", {C, c.d_w}), lora, true, exact);
    L.W2 = Matrix(src.get(a + "w2", {c.d_w, C}), lora, true, exact);
    L.A1 = Matrix(src.get(a + "a1", {C, c.d_a}), lora, true, exact);
    L.A2 = Matrix(src.get(a + "a2", {c.d_a, C}), lora, true, exact);
    L.G1 = Matrix(src.get(a + "g1", {C, c.d_g}), lora, true, exact);
    L.G2 = Matrix(src.get(a + "g2", {c.d_g, C}), lora, true, exact);
    // Layer 0's value-residual LoRA is unused (it produces v_first), even if present.
    L.has_v = i > 0;
    if (L.has_v) {
      if (c.d_v == 0) throw std::invalid_argument("RWKV-7 checkpoint is missing tensor " + a + "v1");
      L.v0 = src.vec(a + "v0", C);
      L.V1 = Matrix(src.get(a + "v1", {C, c.d_v}), lora, true, exact);
      L.V2 = Matrix(src.get(a + "v2", {c.d_v, C}), lora, true, exact);
    }
    L.ffn_x_k = src.vec(p + "ffn.x_k", C);
    L.FK = Matrix(src.get(p + "ffn.key.weight", {c.ffn, C}), precision, false);
    L.FV = Matrix(src.get(p + "ffn.value.weight", {C, c.ffn}), precision, false);
  }
  ln_out_w_ = src.vec("ln_out.weight", C);
  ln_out_b_ = src.vec("ln_out.bias", C);
  const TensorView& head = src.get("head.weight", {c.vocab, C});
  head_ = Matrix(head, precision, false);
  // int8: the best candidates are re-scored from the checkpoint's rows (head_rescore.h).
  if (precision == Precision::i8) head_rows_ = RowTable(head, head.bf16);
}

std::size_t Rwkv7Model::weight_bytes() const noexcept {
  std::size_t n = emb_.bytes() + head_.bytes() + head_rows_.bytes();
  for (const auto& L : layers_)
    for (const Matrix* m : {&L.R, &L.K, &L.V, &L.O, &L.W1, &L.W2, &L.A1, &L.A2, &L.V1, &L.V2,
                            &L.G1, &L.G2, &L.FK, &L.FV})
      n += m->bytes();
  return n;
}

std::size_t Rwkv7Model::decode_bytes() const noexcept {
  // One embedding row, and (int8) the re-scored rows of the head.
  const auto row = [&](const RowTable& t) { return t.bytes() / static_cast<std::size_t>(cfg_.vocab); };
  const auto rescored = static_cast<std::size_t>(std::min(kRescore, cfg_.vocab));
  return weight_bytes() - emb_.bytes() - head_rows_.bytes() + row(emb_) + rescored * row(head_rows_);
}

void Rwkv7Model::forward(const int64_t* tokens, int64_t n, float* att_x_prev, float* att_kv,
                         float* ffn_x_prev, float* logits) const {
  if (n < 1) throw std::invalid_argument("token_ids must hold at least one token");
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= cfg_.vocab)
      throw std::invalid_argument("token id " + std::to_string(tokens[i]) + " at position " +
                                  std::to_string(i) + " is outside the vocabulary [0, " +
                                  std::to_string(cfg_.vocab) + ")");
  const int64_t C = cfg_.n_embd;
  std::vector<float> x_last(C), xn(C);
  // One arena per call (sized for the first chunk, the largest) keeps the model
  // const and safe to share between threads.
  const int64_t T = std::min(kChunk, n);
  const int64_t D = std::max({cfg_.d_w, cfg_.d_a, cfg_.d_v, cfg_.d_g, int64_t{1}});
  std::vector<float> arena(static_cast<std::size_t>(20 * T * C + 4 * T * D + T * cfg_.ffn));
  for (int64_t t0 = 0; t0 < n; t0 += kChunk)
    forward_chunk(tokens + t0, std::min(kChunk, n - t0), att_x_prev, att_kv, ffn_x_prev,
                  arena.data(), x_last.data());
  layer_norm(x_last.data(), ln_out_w_.data(), ln_out_b_.data(), C, 1e-5f, xn.data());
  head_.matmul(xn.data(), 1, logits, threads_);
  if (prec_ == Precision::i8) rescore_top(head_rows_, xn.data(), logits, cfg_.vocab);
}

void Rwkv7Model::forward_chunk(const int64_t* tokens, int64_t T, float* att_x_prev,
                               float* att_kv, float* ffn_x_prev, float* arena,
                               float* x_last) const {
  const int64_t C = cfg_.n_embd, H = cfg_.n_head, N = cfg_.head_size;
  const int64_t TC = T * C;
  const int64_t D = std::max({cfg_.d_w, cfg_.d_a, cfg_.d_v, cfg_.d_g, int64_t{1}});  // arena layout
  float* p = arena;
  auto take = [&](int64_t n) { float* q = p; p += n; return q; };
  float *x = take(TC), *xa = take(TC), *xr = take(TC), *xw = take(TC), *xk = take(TC),
        *xv = take(TC), *xaa = take(TC), *xg = take(TC), *r = take(TC), *k = take(TC),
        *v = take(TC), *dd = take(TC), *a = take(TC), *g = take(TC), *kk = take(TC),
        *kka = take(TC), *w = take(TC), *vfirst = take(TC), *y = take(TC), *tmp = take(TC),
        *hw = take(T * D), *ha = take(T * D), *hg = take(T * D), *hv = take(T * D),
        *hid = take(T * cfg_.ffn);

  for (int64_t t = 0; t < T; ++t) {
    emb_.row(tokens[t], tmp);
    layer_norm(tmp, ln0_w_.data(), ln0_b_.data(), C, 1e-5f, x + t * C);
  }
  const WkvStep wkv = table().wkv_step;

  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const Rwkv7Layer& L = layers_[i];
    float* sx = att_x_prev + i * C;
    float* S = att_kv + i * H * N * N;
    float* sf = ffn_x_prev + i * C;

    // ---- time mix: token shift and the six mixes
    for (int64_t t = 0; t < T; ++t)
      layer_norm(x + t * C, L.ln1_w.data(), L.ln1_b.data(), C, 1e-5f, xa + t * C);
    for (int64_t t = 0; t < T; ++t) {
      const float* cur = xa + t * C;
      const float* prev = t ? xa + (t - 1) * C : sx;
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) {
        const float d = prev[j] - cur[j];
        xr[t * C + j] = cur[j] + d * L.x_r[j];
        xw[t * C + j] = cur[j] + d * L.x_w[j];
        xk[t * C + j] = cur[j] + d * L.x_k[j];
        xv[t * C + j] = cur[j] + d * L.x_v[j];
        xaa[t * C + j] = cur[j] + d * L.x_a[j];
        xg[t * C + j] = cur[j] + d * L.x_g[j];
      }
    }
    std::memcpy(sx, xa + (T - 1) * C, static_cast<std::size_t>(C) * 4);

    // ---- projections, batched over the T tokens
    // Everything that reads the mixes, in one parallel region; then the LoRA
    // second halves in another.
    {
      const MatJob first[] = {{&L.R, xr, r},   {&L.K, xk, k},   {&L.V, xv, v}, {&L.W1, xw, hw},
                              {&L.A1, xaa, ha}, {&L.G1, xg, hg}, {&L.V1, xv, hv}};
      matmul_batch(first, L.has_v ? 7 : 6, T, threads_);
    }
    for (int64_t q = 0; q < T * cfg_.d_w; ++q) hw[q] = std::tanh(hw[q]);
    for (int64_t q = 0; q < T * cfg_.d_g; ++q) hg[q] = sigmoid(hg[q]);
    {
      const MatJob second[] = {{&L.W2, hw, dd}, {&L.A2, ha, a}, {&L.G2, hg, g}, {&L.V2, hv, tmp}};
      matmul_batch(second, L.has_v ? 4 : 3, T, threads_);
    }

    for (int64_t t = 0; t < T; ++t) {
      const int64_t o = t * C;
      for (int64_t j = 0; j < C; ++j) a[o + j] = sigmoid(L.a0[j] + a[o + j]);
      // kappa: per-head L2-normalised k * k_k (from the unmodified k)
      for (int64_t h = 0; h < H; ++h) {
        float ss = 0.0f;
        for (int64_t j = h * N; j < (h + 1) * N; ++j) {
          kk[o + j] = k[o + j] * L.k_k[j];
          ss += kk[o + j] * kk[o + j];
        }
        const float inv = 1.0f / std::max(std::sqrt(ss), 1e-12f);
        for (int64_t j = h * N; j < (h + 1) * N; ++j) kk[o + j] *= inv;
      }
      for (int64_t j = 0; j < C; ++j) {
        k[o + j] *= 1.0f + (a[o + j] - 1.0f) * L.k_a[j];
        kka[o + j] = kk[o + j] * a[o + j];
        w[o + j] = std::exp(-0.606531f * sigmoid(L.w0[j] + dd[o + j]));
      }
      if (i == 0) {
        std::memcpy(vfirst + o, v + o, static_cast<std::size_t>(C) * 4);
      } else {
        for (int64_t j = 0; j < C; ++j)
          v[o + j] += (vfirst[o + j] - v[o + j]) * sigmoid(L.v0[j] + tmp[o + j]);
      }
    }

    // ---- wkv recurrence: sequential in t, independent across heads
    parallel_rows(H, 1, static_cast<double>(T * N * N * 6), threads_, [&](int64_t h0, int64_t h1) {
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t t = 0; t < T; ++t) {
          const int64_t o = t * C + h * N;
          wkv(S + h * N * N, r + o, w + o, k + o, v + o, kk + o, kka + o, N, y + o);
        }
    });

    // ---- GroupNorm (eps 6.4e-4), bonus term, output gate
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t o = t * C + h * N;
        float mean = 0.0f, var = 0.0f, bonus = 0.0f;
#pragma omp simd reduction(+ : mean)
        for (int64_t j = 0; j < N; ++j) mean += y[o + j];
        mean /= static_cast<float>(N);
#pragma omp simd reduction(+ : var)
        for (int64_t j = 0; j < N; ++j) var += (y[o + j] - mean) * (y[o + j] - mean);
        var /= static_cast<float>(N);
        const float inv = 1.0f / std::sqrt(var + 64e-5f);
#pragma omp simd reduction(+ : bonus)
        for (int64_t j = 0; j < N; ++j) bonus += r[o + j] * k[o + j] * L.r_k[h * N + j];
        for (int64_t j = 0; j < N; ++j) {
          const float yn = (y[o + j] - mean) * inv * L.lnx_w[h * N + j] + L.lnx_b[h * N + j];
          y[o + j] = (yn + bonus * v[o + j]) * g[o + j];
        }
      }
    L.O.matmul(y, T, tmp, threads_);
#pragma omp simd
    for (int64_t q = 0; q < TC; ++q) x[q] += tmp[q];

    // ---- channel mix
    for (int64_t t = 0; t < T; ++t)
      layer_norm(x + t * C, L.ln2_w.data(), L.ln2_b.data(), C, 1e-5f, xa + t * C);
    for (int64_t t = 0; t < T; ++t) {
      const float* cur = xa + t * C;
      const float* prev = t ? xa + (t - 1) * C : sf;
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) xk[t * C + j] = cur[j] + (prev[j] - cur[j]) * L.ffn_x_k[j];
    }
    std::memcpy(sf, xa + (T - 1) * C, static_cast<std::size_t>(C) * 4);
    L.FK.matmul(xk, T, hid, threads_);
#pragma omp simd
    for (int64_t q = 0; q < T * cfg_.ffn; ++q) {
      const float h = 0.5f * (hid[q] + std::fabs(hid[q]));  // max(x, 0), exact and branch-free
      hid[q] = h * h;
    }
    L.FV.matmul(hid, T, tmp, threads_);
#pragma omp simd
    for (int64_t q = 0; q < TC; ++q) x[q] += tmp[q];
  }
  std::memcpy(x_last, x + (T - 1) * C, static_cast<std::size_t>(C) * 4);
}

}  // namespace sutra::rwkv

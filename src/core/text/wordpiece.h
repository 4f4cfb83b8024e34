// BERT WordPiece tokenizer: BertNormalizer + BertPreTokenizer + WordPiece +
// [CLS] ... [SEP] template, id-identical to HF tokenizers. Immutable after
// construction, so one instance is safe to use from many threads.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/vocab_map.h"

namespace sutra::text {

struct Json;

// Options for a tokenizer built from a plain vocab.txt (the defaults are
// HF BertWordPieceTokenizer's).
struct WordPieceOptions {
  bool lowercase = true;
  std::optional<bool> strip_accents;  // unset: follow lowercase
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::size_t max_input_chars_per_word = 100;
  std::string continuing_subword_prefix = "##";
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string mask_token = "[MASK]";
};

// encode_batch output: row-major [rows, cols] int64 arrays.
struct BatchEncoding {
  std::size_t rows = 0, cols = 0;
  std::vector<int64_t> input_ids, attention_mask, token_type_ids;
};

class WordPieceTokenizer {
 public:
  // Both throw std::invalid_argument for unsupported or malformed contents
  // `path` is only used in messages.
  static WordPieceTokenizer from_tokenizer_json(std::string_view json_text, const std::string& path);
  static WordPieceTokenizer from_vocab_txt(std::string_view text, const WordPieceOptions& options,
                                           const std::string& path);

  // Ids with the template's special tokens, no truncation, no padding.
  std::vector<int32_t> encode(std::string_view utf8) const;

  // max_length 0: no truncation. Truncation keeps the special tokens and cuts
  // the text tokens at the end (or the start with truncate_left). Rows are
  // padded with the pad id to the longest row (attention_mask 0 there).
  BatchEncoding encode_batch(const std::vector<std::string_view>& texts, std::size_t max_length,
                             bool truncate_left) const;
  // The same without padding: one id row per text.
  std::vector<std::vector<int32_t>> encode_many(const std::vector<std::string_view>& texts,
                                                std::size_t max_length, bool truncate_left) const;

  std::size_t vocab_size() const noexcept { return vocab_size_; }
  int32_t token_to_id(std::string_view token) const noexcept;       // -1 if unknown
  const std::string* id_to_token(int32_t id) const noexcept;         // nullptr if unknown
  std::size_t num_special_tokens() const noexcept { return prefix_.size() + suffix_.size(); }

  int32_t unk_id() const noexcept { return unk_id_; }
  int32_t pad_id() const noexcept { return pad_id_; }
  int32_t cls_id() const noexcept { return prefix_.empty() ? -1 : prefix_.front(); }
  int32_t sep_id() const noexcept { return suffix_.empty() ? -1 : suffix_.back(); }
  const std::string& unk_token() const noexcept { return unk_token_; }
  const std::string& continuing_subword_prefix() const noexcept { return prefix_str_; }
  bool clean_text() const noexcept { return clean_text_; }
  bool handle_chinese_chars() const noexcept { return chinese_; }
  bool strip_accents() const noexcept { return strip_; }
  bool lowercase() const noexcept { return lower_; }
  std::size_t max_input_chars_per_word() const noexcept { return max_chars_; }

 public:
  struct Scratch;  // per-thread buffers (defined in wordpiece.cpp)

 private:
  struct AddedToken {
    std::string content;
    int32_t id;
    std::vector<char32_t> code_points;  // normalized tokens: the normalised content
  };

  void finish();  // builds derived tables after the fields are set
  void add_vocab(const std::string& token, int32_t id);
  void reserve_vocab(std::size_t n) {
    start_.reserve(n);
    id_to_token_.reserve(n);
  }
  void add_added_token(const std::string& content, int32_t id, bool normalized = false);
  friend struct TokenizerLoader;
  void encode_into(std::string_view text, std::vector<int32_t>& out, Scratch& s) const;
  void encode_segment(std::string_view seg, std::vector<int32_t>& out, Scratch& s) const;
  void encode_segment_ascii(std::string_view seg, std::vector<int32_t>& out, Scratch& s) const;
  void encode_segment_unicode(std::string_view seg, std::vector<int32_t>& out, Scratch& s) const;
  void encode_segment_matching_normalized(std::string_view seg, std::vector<int32_t>& out, Scratch& s) const;
  void normalize(std::string_view seg, std::vector<char32_t>& norm) const;
  void pretokenize(const char32_t* text, std::size_t n, bool lower, std::vector<int32_t>& out, Scratch& s) const;
  void wordpiece(const char* word, const uint32_t* offsets, std::size_t nchars,
                 std::vector<int32_t>& out) const;
  std::vector<int32_t> encode_truncated(std::string_view text, std::size_t max_length,
                                        bool truncate_left, Scratch& s) const;

  // vocabulary
  VocabMap start_;       // every token
  VocabMap continuing_;  // tokens that start with the prefix, keyed without it
  std::vector<std::string> id_to_token_;
  std::size_t vocab_size_ = 0;
  std::vector<AddedToken> added_;             // matched in the raw text, longest first
  std::vector<AddedToken> added_normalized_;  // matched in the normalised text, longest first
  bool added_first_byte_[256] = {};

  // normaliser / model settings
  bool clean_text_ = true, chinese_ = true, strip_ = true, lower_ = true;
  std::size_t max_chars_ = 100;
  std::string prefix_str_ = "##";
  std::string unk_token_ = "[UNK]";
  int32_t unk_id_ = -1, pad_id_ = 0;
  std::vector<int32_t> prefix_, suffix_;  // template special ids around the text
  std::vector<int32_t> prefix_types_, suffix_types_;  // their token type ids
  int32_t text_type_ = 0;

  // per ASCII byte: class (0 word, 1 removed, 2 space, 3 punct) and mapped byte
  uint8_t ascii_class_[128] = {};
  char ascii_map_[128] = {};
};

}  // namespace sutra::text

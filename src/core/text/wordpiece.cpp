// The encoding hot path: added-token split, BERT normalisation, BERT
// pre-tokenization and greedy longest-match WordPiece, fused per segment.
// Pure-ASCII segments take a byte-table fast path; others are normalised into
// a code point buffer first (strip_accents needs canonical reordering).
#include "text/wordpiece.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "common/thread_pool.h"
#include "text/unicode.h"

namespace sutra::text {

enum AsciiClass : uint8_t { kWordByte = 0, kRemoveByte = 1, kSpaceByte = 2, kPunctByte = 3 };

struct WordPieceTokenizer::Scratch {
  std::string word;                // the current word, UTF-8
  std::vector<uint32_t> offsets;   // byte offset of each char of `word`, plus the end
  std::vector<char32_t> norm;      // normalised code points of a non-ASCII segment
  std::vector<char32_t> lowered;   // the same, lowercased (normalized added tokens)
  std::vector<int32_t> ids;
};

namespace {

WordPieceTokenizer::Scratch& thread_scratch() {
  thread_local WordPieceTokenizer::Scratch s;
  return s;
}

bool is_ascii(const char* p, std::size_t n) noexcept {
  std::size_t i = 0;
  uint64_t acc = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc |= w;
  }
  for (; i < n; ++i) acc |= static_cast<unsigned char>(p[i]);
  return (acc & 0x8080808080808080ull) == 0;
}

}  // namespace

void WordPieceTokenizer::add_vocab(const std::string& token, int32_t id) {
  if (id < 0) throw std::invalid_argument("negative token id for '" + token + "'");
  start_.insert(token, id);
  if (!prefix_str_.empty() && token.size() > prefix_str_.size() &&
      token.compare(0, prefix_str_.size(), prefix_str_) == 0)
    continuing_.insert(std::string_view(token).substr(prefix_str_.size()), id);
  if (static_cast<std::size_t>(id) >= id_to_token_.size()) id_to_token_.resize(id + 1);
  id_to_token_[id] = token;
}

void WordPieceTokenizer::add_added_token(const std::string& content, int32_t id, bool normalized) {
  if (content.empty()) return;  // HF ignores empty added tokens
  for (auto* list : {&added_, &added_normalized_})
    for (auto it = list->begin(); it != list->end(); ++it)
      if (it->content == content) { list->erase(it); break; }
  (normalized ? added_normalized_ : added_).push_back({content, id, {}});
}

void WordPieceTokenizer::finish() {
  // Added tokens that are not in the model vocabulary still count.
  vocab_size_ = start_.size();
  std::vector<const AddedToken*> all;
  for (const auto& a : added_) all.push_back(&a);
  for (const auto& a : added_normalized_) all.push_back(&a);
  for (const AddedToken* pa : all) {
    const AddedToken& a = *pa;
    if (start_.find(a.content) < 0) {
      ++vocab_size_;
      if (static_cast<std::size_t>(a.id) >= id_to_token_.size()) id_to_token_.resize(a.id + 1);
      if (id_to_token_[a.id].empty()) id_to_token_[a.id] = a.content;
    }
  }
  std::stable_sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.content.size() > b.content.size();
  });
  // Normalized added tokens: match their normalised, lowercased form.
  {
    std::vector<char32_t> norm;
    char32_t buf[4];
    for (auto& a : added_normalized_) {
      normalize(a.content, norm);
      a.code_points.clear();
      for (const char32_t cp : norm) {
        if (lower_ && (unicode_flags(cp) & kLower)) a.code_points.insert(a.code_points.end(), buf, buf + lowercase_of(cp, buf));
        else a.code_points.push_back(cp);
      }
    }
    added_normalized_.erase(std::remove_if(added_normalized_.begin(), added_normalized_.end(),
                                           [](const AddedToken& a) { return a.code_points.empty(); }),
                            added_normalized_.end());
    std::stable_sort(added_normalized_.begin(), added_normalized_.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.code_points.size() > b.code_points.size(); });
  }
  std::fill(std::begin(added_first_byte_), std::end(added_first_byte_), false);
  for (const auto& a : added_) added_first_byte_[static_cast<unsigned char>(a.content[0])] = true;
  for (unsigned c = 0; c < 128; ++c) {
    const uint8_t f = unicode_flags(c);
    uint8_t cls = kWordByte;
    if (clean_text_ && (f & kRemove)) cls = kRemoveByte;
    else if (f & kSpace) cls = kSpaceByte;
    else if (f & kPunct) cls = kPunctByte;
    ascii_class_[c] = cls;
    ascii_map_[c] = static_cast<char>((lower_ && c >= 'A' && c <= 'Z') ? c + 32 : c);
  }
}

int32_t WordPieceTokenizer::token_to_id(std::string_view token) const noexcept {
  for (const auto* list : {&added_, &added_normalized_})
    for (const auto& a : *list)
      if (a.content == token) return a.id;
  return start_.find(token);
}

const std::string* WordPieceTokenizer::id_to_token(int32_t id) const noexcept {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() || id_to_token_[id].empty())
    return nullptr;
  return &id_to_token_[id];
}

// Greedy longest-match-first over one word (HF WordPiece::tokenize).
void WordPieceTokenizer::wordpiece(const char* word, const uint32_t* offsets, std::size_t nchars,
                                   std::vector<int32_t>& out) const {
  if (nchars == 0) return;
  if (nchars > max_chars_) { out.push_back(unk_id_); return; }
  const std::size_t mark = out.size();
  std::size_t start = 0;
  while (start < nchars) {
    const VocabMap& map = (start == 0 || prefix_str_.empty()) ? start_ : continuing_;
    const std::size_t max_bytes = map.max_key_bytes();
    const uint32_t begin = offsets ? offsets[start] : static_cast<uint32_t>(start);
    int32_t id = -1;
    std::size_t end = nchars;
    for (; end > start; --end) {
      const uint32_t stop = offsets ? offsets[end] : static_cast<uint32_t>(end);
      if (stop - begin > max_bytes) continue;
      id = map.find(std::string_view(word + begin, stop - begin));
      if (id >= 0) break;
    }
    if (id < 0) {
      out.resize(mark);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(id);
    start = end;
  }
}

void WordPieceTokenizer::encode_segment_ascii(std::string_view seg, std::vector<int32_t>& out,
                                              Scratch& s) const {
  std::string& w = s.word;
  w.clear();
  for (const char ch : seg) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (ascii_class_[c]) {
      case kWordByte:
        w.push_back(ascii_map_[c]);
        break;
      case kRemoveByte:
        break;
      case kSpaceByte:
        wordpiece(w.data(), nullptr, w.size(), out);
        w.clear();
        break;
      default:  // punctuation: a word of its own
        wordpiece(w.data(), nullptr, w.size(), out);
        w.clear();
        wordpiece(&ch, nullptr, 1, out);
        break;
    }
  }
  wordpiece(w.data(), nullptr, w.size(), out);
}

// BertNormalizer up to (not including) lowercase: clean_text,
// handle_chinese_chars, then strip_accents = NFD (decompose, canonically
// reorder) and drop Mn -- in HF's order. Replaces the contents of norm.
void WordPieceTokenizer::normalize(std::string_view seg, std::vector<char32_t>& norm) const {
  norm.clear();
  const auto* bytes = reinterpret_cast<const unsigned char*>(seg.data());
  uint8_t seen = 0;  // union of the flags of what went into norm
  char32_t buf[8];
  for (std::size_t i = 0; i < seg.size();) {
    const char32_t cp = utf8_next(bytes, seg.size(), i);
    const uint8_t f = unicode_flags(cp);
    if (clean_text_) {
      if (f & kRemove) continue;
      if (f & kSpace) { norm.push_back(U' '); continue; }
    }
    const bool cjk = chinese_ && is_chinese_char(cp);
    if (cjk) norm.push_back(U' ');
    if (strip_ && (f & kNfd)) {
      const std::size_t n = nfd_of(cp, buf);
      for (std::size_t k = 0; k < n; ++k) seen |= unicode_flags(buf[k]);
      norm.insert(norm.end(), buf, buf + n);
    } else {
      seen |= f;
      norm.push_back(cp);
    }
    if (cjk) norm.push_back(U' ');
  }
  if (!strip_) return;
  // NFD's canonical ordering: stable sort of each run of non-starters by class.
  if (seen & kNonStarter) {
    for (std::size_t i = 0; i < norm.size();) {
      std::size_t j = i;
      while (j < norm.size() && (unicode_flags(norm[j]) & kNonStarter)) ++j;
      if (j - i > 1)
        std::stable_sort(norm.begin() + i, norm.begin() + j, [](char32_t a, char32_t b) {
          return combining_class(a) < combining_class(b);
        });
      i = j + 1;
    }
  }
  // then drop the non-spacing marks
  if (seen & kMn)
    norm.erase(std::remove_if(norm.begin(), norm.end(), [](char32_t c) { return (unicode_flags(c) & kMn) != 0; }),
               norm.end());
}

// Lowercases (when `lower`), splits on whitespace and punctuation
// (BertPreTokenizer) and runs WordPiece on each word.
void WordPieceTokenizer::pretokenize(const char32_t* text, std::size_t n, bool lower, std::vector<int32_t>& out,
                                     Scratch& s) const {
  std::string& w = s.word;
  std::vector<uint32_t>& off = s.offsets;
  w.clear();
  off.clear();
  auto flush = [&] {
    off.push_back(static_cast<uint32_t>(w.size()));
    wordpiece(w.data(), off.data(), off.size() - 1, out);
    w.clear();
    off.clear();
  };
  auto take = [&](char32_t c) {
    const uint8_t f = unicode_flags(c);
    if (f & kSpace) {
      flush();
    } else if (f & kPunct) {
      flush();
      off.push_back(0);
      utf8_append(w, c);
      flush();
    } else {
      off.push_back(static_cast<uint32_t>(w.size()));
      utf8_append(w, c);
    }
  };
  char32_t buf[4];
  for (std::size_t i = 0; i < n; ++i) {
    const char32_t cp = text[i];
    if (lower && (unicode_flags(cp) & kLower)) {
      const std::size_t k = lowercase_of(cp, buf);
      for (std::size_t j = 0; j < k; ++j) take(buf[j]);
    } else {
      take(cp);
    }
  }
  flush();
}

void WordPieceTokenizer::encode_segment_unicode(std::string_view seg, std::vector<int32_t>& out,
                                                Scratch& s) const {
  normalize(seg, s.norm);
  pretokenize(s.norm.data(), s.norm.size(), lower_, out, s);
}

// Added tokens with normalized=true are matched in the normalised text (and
// their contents were normalised the same way at load).
void WordPieceTokenizer::encode_segment_matching_normalized(std::string_view seg, std::vector<int32_t>& out,
                                                            Scratch& s) const {
  normalize(seg, s.norm);
  std::vector<char32_t>& text = s.lowered;
  text.clear();
  char32_t buf[4];
  for (const char32_t cp : s.norm) {
    if (lower_ && (unicode_flags(cp) & kLower)) text.insert(text.end(), buf, buf + lowercase_of(cp, buf));
    else text.push_back(cp);
  }
  std::size_t piece = 0;
  for (std::size_t i = 0; i < text.size();) {
    const AddedToken* hit = nullptr;
    for (const auto& a : added_normalized_) {  // longest first
      if (a.code_points.size() <= text.size() - i &&
          std::equal(a.code_points.begin(), a.code_points.end(), text.begin() + i)) {
        hit = &a;
        break;
      }
    }
    if (hit == nullptr) { ++i; continue; }
    pretokenize(text.data() + piece, i - piece, false, out, s);
    out.push_back(hit->id);
    i += hit->code_points.size();
    piece = i;
  }
  pretokenize(text.data() + piece, text.size() - piece, false, out, s);
}

void WordPieceTokenizer::encode_segment(std::string_view seg, std::vector<int32_t>& out,
                                        Scratch& s) const {
  if (!added_normalized_.empty()) encode_segment_matching_normalized(seg, out, s);
  else if (is_ascii(seg.data(), seg.size())) encode_segment_ascii(seg, out, s);
  else encode_segment_unicode(seg, out, s);
}

// Splits the raw text on the added (special) tokens, leftmost-longest, and
// encodes the pieces between them.
void WordPieceTokenizer::encode_into(std::string_view text, std::vector<int32_t>& out,
                                     Scratch& s) const {
  std::size_t seg_start = 0;
  if (!added_.empty()) {
    for (std::size_t i = 0; i < text.size();) {
      if (!added_first_byte_[static_cast<unsigned char>(text[i])]) { ++i; continue; }
      const AddedToken* hit = nullptr;
      for (const auto& a : added_) {  // longest first
        if (text.compare(i, a.content.size(), a.content) == 0) { hit = &a; break; }
      }
      if (hit == nullptr) { ++i; continue; }
      encode_segment(text.substr(seg_start, i - seg_start), out, s);
      out.push_back(hit->id);
      i += hit->content.size();
      seg_start = i;
    }
  }
  encode_segment(text.substr(seg_start), out, s);
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view utf8) const {
  Scratch& s = thread_scratch();
  std::vector<int32_t> out(prefix_.begin(), prefix_.end());
  encode_into(utf8, out, s);
  out.insert(out.end(), suffix_.begin(), suffix_.end());
  return out;
}

std::vector<int32_t> WordPieceTokenizer::encode_truncated(std::string_view text, std::size_t max_length,
                                                          bool truncate_left, Scratch& s) const {
  std::vector<int32_t>& body = s.ids;
  body.clear();
  encode_into(text, body, s);
  std::size_t from = 0, count = body.size();
  if (max_length != 0) {
    const std::size_t room = max_length - num_special_tokens();
    if (count > room) {
      if (truncate_left) from = count - room;
      count = room;
    }
  }
  std::vector<int32_t> row;
  row.reserve(count + num_special_tokens());
  row.insert(row.end(), prefix_.begin(), prefix_.end());
  row.insert(row.end(), body.begin() + from, body.begin() + from + count);
  row.insert(row.end(), suffix_.begin(), suffix_.end());
  return row;
}

std::vector<std::vector<int32_t>> WordPieceTokenizer::encode_many(
    const std::vector<std::string_view>& texts, std::size_t max_length, bool truncate_left) const {
  if (max_length != 0 && max_length < std::max<std::size_t>(2, num_special_tokens()))
    throw std::invalid_argument("max_length must be >= " +
                                std::to_string(std::max<std::size_t>(2, num_special_tokens())) +
                                " (room for the special tokens), got " + std::to_string(max_length));
  std::vector<std::vector<int32_t>> rows(texts.size());
  parallel_for(texts.size(), 16, [&](std::size_t begin, std::size_t end) {
    Scratch& s = thread_scratch();
    for (std::size_t i = begin; i < end; ++i) rows[i] = encode_truncated(texts[i], max_length, truncate_left, s);
  });
  return rows;
}

BatchEncoding WordPieceTokenizer::encode_batch(const std::vector<std::string_view>& texts,
                                               std::size_t max_length, bool truncate_left) const {
  const std::vector<std::vector<int32_t>> rows = encode_many(texts, max_length, truncate_left);
  BatchEncoding b;
  b.rows = rows.size();
  for (const auto& r : rows) b.cols = std::max(b.cols, r.size());
  const std::size_t total = b.rows * b.cols;
  b.input_ids.assign(total, pad_id_);
  b.attention_mask.assign(total, 0);
  b.token_type_ids.assign(total, 0);
  const std::size_t np = prefix_.size(), ns = suffix_.size();
  for (std::size_t i = 0; i < b.rows; ++i) {
    const auto& r = rows[i];
    int64_t* ids = b.input_ids.data() + i * b.cols;
    int64_t* mask = b.attention_mask.data() + i * b.cols;
    int64_t* types = b.token_type_ids.data() + i * b.cols;
    for (std::size_t j = 0; j < r.size(); ++j) {
      ids[j] = r[j];
      mask[j] = 1;
      types[j] = j < np ? prefix_types_[j] : j >= r.size() - ns ? suffix_types_[j - (r.size() - ns)] : text_type_;
    }
  }
  return b;
}

}  // namespace sutra::text

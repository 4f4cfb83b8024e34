// Building a WordPieceTokenizer from a HF tokenizer.json or a plain vocab.txt.
// Anything this implementation would not reproduce exactly is rejected with a
// std::invalid_argument that names what was found.
#include <cmath>
#include <stdexcept>

#include "text/json.h"
#include "text/unicode.h"
#include "text/wordpiece.h"

namespace sutra::text {

struct TokenizerLoader {
  using Tok = WordPieceTokenizer;

  [[noreturn]] static void bad(const std::string& path, const std::string& what) {
    throw std::invalid_argument(path + ": " + what);
  }

  static const Json& member(const Json& obj, const char* key, Json::Type type, const std::string& path,
                            const std::string& where) {
    const Json* v = obj.find(key);
    if (v == nullptr) bad(path, where + " has no \"" + key + "\"");
    if (v->type != type) bad(path, where + "." + key + " is a " + v->type_name());
    return *v;
  }

  static bool flag(const Json& obj, const char* key, bool fallback, const std::string& path,
                   const std::string& where) {
    const Json* v = obj.find(key);
    if (v == nullptr || v->is_null()) return fallback;
    if (v->type != Json::Type::Bool) bad(path, where + "." + key + " is a " + v->type_name() + ", not a bool");
    return v->boolean;
  }

  static int32_t as_id(const Json& v, const std::string& path, const std::string& where) {
    // ids index dense tables: anything above 2^24 is a corrupt file, not a vocabulary
    if (v.type != Json::Type::Number || v.number < 0 || v.number > 16777216.0 ||
        std::floor(v.number) != v.number)
      bad(path, where + " is not a valid token id");
    return static_cast<int32_t>(v.number);
  }

  static int32_t need_id(const Tok& t, const std::string& token, const std::string& path, const char* role) {
    const int32_t id = t.token_to_id(token);
    if (id < 0) bad(path, std::string(role) + " '" + token + "' is not in the vocabulary");
    return id;
  }

  static void normalizer(Tok& t, const Json* n, const std::string& path) {
    if (n == nullptr || n->is_null()) {
      t.clean_text_ = t.chinese_ = t.strip_ = t.lower_ = false;
      return;
    }
    const Json* type = n->find("type");
    const std::string name = (type && type->type == Json::Type::String) ? type->string : "?";
    if (name != "BertNormalizer")
      bad(path, "unsupported normalizer '" + name + "' (only BertNormalizer is supported)");
    t.clean_text_ = flag(*n, "clean_text", true, path, "normalizer");
    t.chinese_ = flag(*n, "handle_chinese_chars", true, path, "normalizer");
    t.lower_ = flag(*n, "lowercase", true, path, "normalizer");
    t.strip_ = flag(*n, "strip_accents", t.lower_, path, "normalizer");  // null: follow lowercase
  }

  static void post_processor(Tok& t, const Json* p, const std::string& path) {
    if (p == nullptr || p->is_null()) return;  // no special tokens
    const Json* type = p->find("type");
    const std::string name = (type && type->type == Json::Type::String) ? type->string : "?";
    // Roberta's trim_offsets / add_prefix_space only touch offsets: for the
    // ids of one sequence both are cls + text + sep.
    if (name == "BertProcessing" || name == "RobertaProcessing") {
      for (const char* key : {"cls", "sep"}) {
        const Json& pair = member(*p, key, Json::Type::Array, path, "post_processor");
        if (pair.array.size() != 2) bad(path, std::string("post_processor.") + key + " is not [token, id]");
        const int32_t id = as_id(pair.array[1], path, std::string("post_processor.") + key);
        (key[0] == 'c' ? t.prefix_ : t.suffix_).push_back(id);
        (key[0] == 'c' ? t.prefix_types_ : t.suffix_types_).push_back(0);
      }
      return;
    }
    if (name != "TemplateProcessing")
      bad(path, "unsupported post_processor '" + name + "' (only TemplateProcessing, BertProcessing and RobertaProcessing are supported)");
    const Json& single = member(*p, "single", Json::Type::Array, path, "post_processor");
    const Json& specials = member(*p, "special_tokens", Json::Type::Object, path, "post_processor");
    bool seen_text = false;
    for (const Json& piece : single.array) {
      if (const Json* seq = piece.find("Sequence")) {
        if (seen_text) bad(path, "post_processor.single has more than one Sequence");
        seen_text = true;
        const Json* type_id = seq->find("type_id");
        t.text_type_ = type_id ? as_id(*type_id, path, "post_processor Sequence type_id") : 0;
      } else if (const Json* sp = piece.find("SpecialToken")) {
        const std::string& key = member(*sp, "id", Json::Type::String, path, "SpecialToken").string;
        const Json* type_id = sp->find("type_id");
        const int32_t tid = type_id ? as_id(*type_id, path, "SpecialToken type_id") : 0;
        const Json* entry = specials.find(key);
        if (entry == nullptr) bad(path, "special token '" + key + "' missing from post_processor.special_tokens");
        for (const Json& id : member(*entry, "ids", Json::Type::Array, path, "special token '" + key + "'").array) {
          (seen_text ? t.suffix_ : t.prefix_).push_back(as_id(id, path, "special token id"));
          (seen_text ? t.suffix_types_ : t.prefix_types_).push_back(tid);
        }
      } else {
        bad(path, "unsupported item in post_processor.single");
      }
    }
    if (!seen_text) bad(path, "post_processor.single has no Sequence");
  }

  static void added_tokens(Tok& t, const Json* a, const std::string& path) {
    if (a == nullptr || a->is_null()) return;
    if (a->type != Json::Type::Array) bad(path, "added_tokens is not an array");
    for (const Json& tok : a->array) {
      const std::string& content = member(tok, "content", Json::Type::String, path, "added token").string;
      const int32_t id = as_id(member(tok, "id", Json::Type::Number, path, "added token"), path, "added token id");
      // lstrip/rstrip only move whitespace into the match, and whitespace
      // yields no tokens after BertPreTokenizer: they do not change ids.
      if (flag(tok, "single_word", false, path, "added token"))
        bad(path, "added token '" + content + "' has single_word=true, which is not supported");
      flag(tok, "lstrip", false, path, "added token");
      flag(tok, "rstrip", false, path, "added token");
      // HF's default for a missing "normalized" is true (AddedToken::default)
      t.add_added_token(content, id, flag(tok, "normalized", true, path, "added token"));
    }
  }
};

namespace {

// model.vocab's members in file order: (token, id; NaN for a value that is not a number).
using VocabEntries = std::vector<std::pair<std::string, double>>;

void add_entry(VocabEntries& entries, std::string&& token, const Json& id) {
  entries.emplace_back(std::move(token), id.type == Json::Type::Number ? id.number : std::nan(""));
}

std::size_t count_streamed(const Json& v) {
  std::size_t n = v.streamed ? 1 : 0;
  for (const Json& item : v.array) n += count_streamed(item);
  for (const auto& kv : v.object) n += count_streamed(kv.second);
  return n;
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_tokenizer_json(std::string_view json_text, const std::string& path) {
  using L = TokenizerLoader;
  // The vocabulary is streamed out of the parse instead of built as a tree
  // (see Json::parse); a file with another object named "vocab" is parsed
  // again as a plain tree.
  VocabEntries entries;
  Json root = Json::parse(json_text, "vocab", [&entries](std::string&& key, Json&& value) {
    add_entry(entries, std::move(key), value);
  });
  if (root.type != Json::Type::Object) L::bad(path, "the top level is not a JSON object");
  const Json* model = root.find("model");
  if (model == nullptr || model->type != Json::Type::Object) L::bad(path, "no \"model\" object (is this a tokenizer.json?)");
  const Json* type = model->find("type");
  const std::string model_type = (type && type->type == Json::Type::String) ? type->string : "(none)";
  if (model_type != "WordPiece")
    L::bad(path, "unsupported model type '" + model_type + "' (only WordPiece is supported)");

  WordPieceTokenizer t;
  if (const Json* p = model->find("continuing_subword_prefix"); p && p->type == Json::Type::String)
    t.prefix_str_ = p->string;
  if (const Json* u = model->find("unk_token"); u && u->type == Json::Type::String) t.unk_token_ = u->string;
  if (const Json* m = model->find("max_input_chars_per_word"); m && !m->is_null())
    t.max_chars_ = static_cast<std::size_t>(L::as_id(*m, path, "model.max_input_chars_per_word"));
  if (!L::member(*model, "vocab", Json::Type::Object, path, "model").streamed || count_streamed(root) != 1) {
    entries.clear();
    root = Json::parse(json_text);
    model = root.find("model");
    for (const auto& kv : L::member(*model, "vocab", Json::Type::Object, path, "model").object)
      add_entry(entries, std::string(kv.first), kv.second);
  }
  t.reserve_vocab(entries.size());
  for (const auto& [token, id] : entries) {
    if (!(id >= 0 && id <= 16777216.0 && std::floor(id) == id))  // NaN: not a number
      L::bad(path, "vocab id of '" + token + "' is not a valid token id");
    t.add_vocab(token, static_cast<int32_t>(id));
  }

  L::normalizer(t, root.find("normalizer"), path);
  const Json* pre = root.find("pre_tokenizer");
  const Json* pre_type = pre ? pre->find("type") : nullptr;
  const std::string pre_name = (pre_type && pre_type->type == Json::Type::String) ? pre_type->string
                               : (pre == nullptr || pre->is_null()) ? "null" : "?";
  if (pre_name != "BertPreTokenizer")
    L::bad(path, "unsupported pre_tokenizer '" + pre_name + "' (only BertPreTokenizer is supported)");
  L::added_tokens(t, root.find("added_tokens"), path);
  L::post_processor(t, root.find("post_processor"), path);

  t.unk_id_ = L::need_id(t, t.unk_token_, path, "unk_token");
  t.pad_id_ = 0;
  if (const Json* pad = root.find("padding"); pad && pad->type == Json::Type::Object) {
    if (const Json* pid = pad->find("pad_id")) t.pad_id_ = L::as_id(*pid, path, "padding.pad_id");
  } else if (t.token_to_id("[PAD]") >= 0) {
    t.pad_id_ = t.token_to_id("[PAD]");
  }
  t.finish();
  return t;
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_txt(std::string_view text, const WordPieceOptions& o,
                                                      const std::string& path) {
  using L = TokenizerLoader;
  WordPieceTokenizer t;
  t.prefix_str_ = o.continuing_subword_prefix;
  t.unk_token_ = o.unk_token;
  t.max_chars_ = o.max_input_chars_per_word;
  t.clean_text_ = o.clean_text;
  t.chinese_ = o.handle_chinese_chars;
  t.lower_ = o.lowercase;
  t.strip_ = o.strip_accents.value_or(o.lowercase);
  // One token per line, trailing whitespace trimmed, id = line number (HF WordPiece::read_file).
  int32_t id = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string line(text.substr(pos, nl - pos));
    // trim_end: drop trailing White_Space code points
    for (;;) {
      if (line.empty()) break;
      std::size_t k = line.size() - 1;
      while (k > 0 && (static_cast<unsigned char>(line[k]) & 0xC0) == 0x80) --k;
      std::size_t i = k;
      const char32_t cp = utf8_next(reinterpret_cast<const unsigned char*>(line.data()), line.size(), i);
      if (!(unicode_flags(cp) & kSpace)) break;
      line.resize(k);
    }
    t.add_vocab(line, id++);
    pos = nl + 1;
  }
  if (id == 0) L::bad(path, "the vocabulary file is empty");
  // Special tokens present in the vocabulary are matched in the raw text.
  for (const std::string* tok : {&o.unk_token, &o.sep_token, &o.cls_token, &o.pad_token, &o.mask_token}) {
    const int32_t tid = t.start_.find(*tok);
    if (tid >= 0) t.add_added_token(*tok, tid);
  }
  t.unk_id_ = L::need_id(t, o.unk_token, path, "unk_token");
  t.prefix_ = {L::need_id(t, o.cls_token, path, "cls_token")};
  t.suffix_ = {L::need_id(t, o.sep_token, path, "sep_token")};
  t.prefix_types_ = {0};
  t.suffix_types_ = {0};
  t.pad_id_ = std::max<int32_t>(0, t.token_to_id(o.pad_token));
  t.finish();
  return t;
}

}  // namespace sutra::text

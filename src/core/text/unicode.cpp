#include "text/unicode.h"

#include <algorithm>

namespace sutra::text {
namespace {

struct MapEntry {
  uint32_t cp;
  uint16_t offset;
  uint8_t len;
};
struct CccEntry {
  uint32_t cp;
  uint8_t ccc;
};

#include "text/unicode_tables.inc"

template <std::size_t N>
const MapEntry* find_entry(const MapEntry (&map)[N], char32_t cp) noexcept {
  const MapEntry* it = std::lower_bound(
      map, map + N, cp, [](const MapEntry& e, char32_t c) { return e.cp < c; });
  return (it != map + N && it->cp == cp) ? it : nullptr;
}

}  // namespace

uint8_t unicode_flags(char32_t cp) noexcept {
  if (cp >= 0x110000) return 0;
  return kStage2[kStage1[cp >> 8]][cp & 0xFF];
}

std::size_t nfd_of(char32_t cp, char32_t* out) noexcept {
  const char32_t s = cp - 0xAC00;  // Hangul syllables: NFD by formula
  if (cp >= 0xAC00 && s < 11172) {
    out[0] = 0x1100 + s / 588;
    out[1] = 0x1161 + (s % 588) / 28;
    if (s % 28 == 0) return 2;
    out[2] = 0x11A7 + s % 28;
    return 3;
  }
  const MapEntry* e = find_entry(kNfdMap, cp);
  if (e == nullptr) { out[0] = cp; return 1; }
  for (std::size_t k = 0; k < e->len; ++k) out[k] = kNfdPool[e->offset + k];
  return e->len;
}

std::size_t lowercase_of(char32_t cp, char32_t* out) noexcept {
  const MapEntry* e = find_entry(kLowerMap, cp);
  if (e == nullptr) { out[0] = cp; return 1; }
  for (std::size_t k = 0; k < e->len; ++k) out[k] = kLowerPool[e->offset + k];
  return e->len;
}

uint8_t combining_class(char32_t cp) noexcept {
  if (!(unicode_flags(cp) & kNonStarter)) return 0;
  const CccEntry* end = kCombiningClass + sizeof(kCombiningClass) / sizeof(kCombiningClass[0]);
  const CccEntry* it = std::lower_bound(
      kCombiningClass, end, cp, [](const CccEntry& e, char32_t c) { return e.cp < c; });
  return (it != end && it->cp == cp) ? it->ccc : 0;
}

}  // namespace sutra::text

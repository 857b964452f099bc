// sluice/json_scan.hpp — where the strings, structure and numbers are in JSON text, 64 bytes
// at a time (header-only, C++17; nothing here crosses the C boundary).
//
// For the scans that must look at every byte of a batch without parsing it: the kernel's check
// for numbers RapidJSON cannot parse safely (entity.hpp, find_unsafe_json_number), the postgres
// storage's split of a batch into its raw entities (which also finds single string ends with
// find_json_string_end). Byte-at-a-time loops cost ~2 cycles per
// byte on entity-shaped JSON (many short strings); block masks cost a fraction of that, and
// the caller visits only the positions that matter.
//
// The masks describe valid JSON exactly. On malformed text they may place string boundaries
// differently from a parser after the first error (e.g. a backslash outside a string escapes
// the next byte here); callers only rely on them up to where a parser would stop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sluice::detail {

// The quote closing a JSON string whose characters start at `p` (a backslash escapes the
// character after it), or nullptr when `end` comes first. Sixteen bytes per step where SSE2 is
// there (every x86-64): JSON text is mostly short strings, where a memchr call per string costs
// more than the scan.
inline const char* find_json_string_end(const char* p, const char* end) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(chunk, quote), _mm_cmpeq_epi8(chunk, backslash)));
        if (mask == 0) {
            p += 16;
            continue;
        }
        p += __builtin_ctz(static_cast<unsigned>(mask));
        if (*p == '"') return p;
        p += 2;  // a backslash and the character it escapes
    }
#endif
    while (p < end) {
        if (*p == '"') return p;
        p += *p == '\\' ? 2 : 1;
    }
    return nullptr;
}

// Bit i describes byte i of the block.
struct JsonBlockMasks {
    uint64_t quotes = 0;      // '"' that open or close a string (not escaped)
    uint64_t structural = 0;  // '{' '}' '[' ']' ',' outside strings
    uint64_t number = 0;      // '-' and digits outside strings (where a number may start)
    uint64_t backslashes = 0; // '\\' anywhere
};

// Feeds consecutive 64-byte blocks of one text; carries the string and escape state across.
class JsonBlockScanner {
public:
    // The masks of the `n` (<= 64) bytes at `p`; a short last block is padded with spaces.
    JsonBlockMasks next(const char* p, size_t n) {
        char padded[64];
        if (n < 64) {
            std::memset(padded, ' ', sizeof padded);
            std::memcpy(padded, p, n);
            p = padded;
        }
        uint64_t quote = 0, backslash = 0, brackets = 0, comma = 0, number = 0;
#if defined(__SSE2__)
        const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'), open = _mm_set1_epi8('{'),
                      close = _mm_set1_epi8('}'), lower = _mm_set1_epi8(0x20), cm = _mm_set1_epi8(','),
                      minus = _mm_set1_epi8('-'), zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
        for (int k = 0; k < 4; ++k) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
            const int shift = 16 * k;
            auto bits = [&](__m128i m) { return static_cast<uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(m))) << shift; };
            quote |= bits(_mm_cmpeq_epi8(v, q));
            backslash |= bits(_mm_cmpeq_epi8(v, bs));
            // '[' | 0x20 == '{' and ']' | 0x20 == '}', and no other byte maps onto those.
            const __m128i folded = _mm_or_si128(v, lower);
            brackets |= bits(_mm_or_si128(_mm_cmpeq_epi8(folded, open), _mm_cmpeq_epi8(folded, close)));
            comma |= bits(_mm_cmpeq_epi8(v, cm));
            const __m128i digit = _mm_sub_epi8(v, zero);  // 0..9 for '0'..'9'
            number |= bits(_mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(digit, nine), digit), _mm_cmpeq_epi8(v, minus)));
        }
#else
        for (int i = 0; i < 64; ++i) {
            const char c = p[i];
            const uint64_t bit = uint64_t(1) << i;
            if (c == '"') quote |= bit;
            if (c == '\\') backslash |= bit;
            if (c == '{' || c == '}' || c == '[' || c == ']') brackets |= bit;
            if (c == ',') comma |= bit;
            if (c == '-' || (c >= '0' && c <= '9')) number |= bit;
        }
#endif
        // Escaped bytes: those after an unpaired backslash. Rare in entity data, so done bit by
        // bit, and only in blocks that have a backslash (or follow one ending in a backslash).
        uint64_t escaped = 0;
        if (backslash != 0 || escape_pending_) {
            for (int i = 0; i < 64; ++i) {
                if (escape_pending_) {
                    escaped |= uint64_t(1) << i;
                    escape_pending_ = false;
                } else if (backslash >> i & 1) {
                    escape_pending_ = true;
                }
            }
        }
        JsonBlockMasks m;
        m.quotes = quote & ~escaped;
        // Inside a string: from its opening quote up to (not including) its closing quote —
        // the prefix XOR of the quotes, flipped when the previous block ended inside one.
        uint64_t inside = m.quotes;
        inside ^= inside << 1;
        inside ^= inside << 2;
        inside ^= inside << 4;
        inside ^= inside << 8;
        inside ^= inside << 16;
        inside ^= inside << 32;
        inside ^= in_string_;
        in_string_ = (inside >> 63) ? ~uint64_t(0) : 0;
        const uint64_t outside = ~(inside | m.quotes);
        m.structural = (brackets | comma) & outside;
        m.number = number & outside;
        m.backslashes = backslash;
        return m;
    }

private:
    uint64_t in_string_ = 0;       // all ones when the previous block ended inside a string
    bool escape_pending_ = false;  // the previous block ended with an unpaired backslash
};

}  // namespace sluice::detail

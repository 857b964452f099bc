// The entities of a write batch as raw text, without parsing them: each entity's exact bytes
// and its `_id`, plus a keyed 64-bit fingerprint of those bytes. The postgres backend's hash
// cache uses them to answer "is this batch unchanged?" for an entity whose bytes are exactly
// those it hashed before (a full source re-reading unchanged data sends the same text every
// run) without building a DOM and a canonical hash for it — most of the client's work on an
// unchanged run.
//
// Soundness does not rest on this scanner validating JSON (it does not): an entity is answered
// from its bytes only when the fingerprint equals one learnt from bytes that were parsed,
// validated and hashed, under an `_id` this scanner found in those same bytes and that the
// parser agreed with. Between entities the scanner checks the array's grammar exactly
// (`[` ws entity (ws `,` ws entity)* ws `]` ws), so a batch made only of such entities is valid.
// Anything it does not handle simply (no `_id`, an `_id` with escapes, two `_id` keys) makes it
// give up, and the batch goes the parsed way.
#pragma once

#include <sluice/entity.hpp>

#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>
#include <vector>

namespace sluice::store {

// SipHash-c-d (Aumasson & Bernstein) with a 64-bit result. Keyed with a random key per process,
// so that nobody who controls a source's data can construct a changed entity whose fingerprint
// equals the old one's (which would hide the change); unkeyed fast hashes have seed-independent
// collisions. Two rounds per 8 bytes (1-3) is what Rust's HashMap uses for the same reason.
template <int CompressionRounds, int FinalizationRounds>
class SipHash {
public:
    SipHash(uint64_t k0, uint64_t k1) : k0_(k0), k1_(k1) {}

    uint64_t operator()(const void* data, size_t size) const {
        const auto* p = static_cast<const unsigned char*>(data);
        uint64_t v0 = 0x736f6d6570736575ULL ^ k0_, v1 = 0x646f72616e646f6dULL ^ k1_;
        uint64_t v2 = 0x6c7967656e657261ULL ^ k0_, v3 = 0x7465646279746573ULL ^ k1_;
        auto round = [&] {
            v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
            v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
            v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
            v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
        };
        const size_t whole = size & ~size_t(7);
        for (size_t i = 0; i < whole; i += 8) {
            uint64_t m;
            std::memcpy(&m, p + i, 8);
            m = little_endian(m);
            v3 ^= m;
            for (int r = 0; r < CompressionRounds; ++r) round();
            v0 ^= m;
        }
        uint64_t last = static_cast<uint64_t>(size) << 56;
        for (size_t i = whole; i < size; ++i) last |= static_cast<uint64_t>(p[i]) << (8 * (i - whole));
        v3 ^= last;
        for (int r = 0; r < CompressionRounds; ++r) round();
        v0 ^= last;
        v2 ^= 0xff;
        for (int r = 0; r < FinalizationRounds; ++r) round();
        return v0 ^ v1 ^ v2 ^ v3;
    }

private:
    static uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
    static uint64_t little_endian(uint64_t m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        return __builtin_bswap64(m);
#else
        return m;
#endif
    }
    uint64_t k0_, k1_;
};

// The fingerprint of an entity's bytes: SipHash-1-3 under a key drawn once per process. Never 0
// (0 means "no fingerprint known" in the cache).
inline uint64_t raw_fingerprint(std::string_view bytes) {
    static const SipHash<1, 3> hash = [] {
        std::random_device random;
        auto word = [&] { return (static_cast<uint64_t>(random()) << 32) ^ random(); };
        return SipHash<1, 3>(word(), word());
    }();
    const uint64_t f = hash(bytes.data(), bytes.size());
    return f ? f : 1;
}

struct RawEntity {
    std::string_view text;  // from its `{` to its `}`, exactly as in the batch
    std::string_view id;    // the `_id` value's characters (without quotes; never has escapes)
};

namespace raw_scan {

inline bool is_json_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

inline size_t skip_space(std::string_view s, size_t i) {
    while (i < s.size() && is_json_space(s[i])) ++i;
    return i;
}

// Only whitespace in s[from, to).
inline bool only_space(std::string_view s, size_t from, size_t to) { return skip_space(s, from) >= to; }

}  // namespace raw_scan

// Splits a JSON array of objects into its entities (see the top of this file). Returns false —
// and the caller parses — when the text is not `[` objects `]` or an entity has no `_id` with a
// string value at its top level, or has two. `out` is cleared first; its views point into
// `batch`. The text is classified 64 bytes at a time (sluice/json_scan.hpp) and only the
// structural characters outside strings are visited.
inline bool split_raw_entities(std::string_view batch, std::vector<RawEntity>& out) {
    using raw_scan::only_space;
    using raw_scan::skip_space;
    out.clear();
    const size_t size = batch.size();
    thread_local std::vector<uint64_t> structural;
    structural.resize((size + 63) / 64);
    sluice::detail::JsonBlockScanner scanner;
    for (size_t b = 0; b * 64 < size; ++b)
        structural[b] = scanner.next(batch.data() + b * 64, std::min<size_t>(64, size - b * 64)).structural;

    // The structural characters in order: depth 1 is the array, 2 an entity's top level.
    size_t depth = 0;
    size_t previous = 0;  // position of the previous structural character
    size_t entity_start = 0;
    RawEntity entity;
    bool has_id = false;
    // At `at` ('{' opening the entity, or ',' at its top level) a member starts: is it `_id`?
    auto member = [&](size_t at) {
        const size_t name = skip_space(batch, at + 1);
        if (batch.compare(name, 5, "\"_id\"") != 0) return true;
        if (has_id) return false;
        size_t v = skip_space(batch, name + 5);
        if (v >= size || batch[v] != ':') return false;
        v = skip_space(batch, v + 1);
        if (v >= size || batch[v] != '"') return false;
        const char* close = sluice::detail::find_json_string_end(batch.data() + v + 1, batch.data() + size);
        if (!close) return false;
        entity.id = batch.substr(v + 1, static_cast<size_t>(close - batch.data()) - v - 1);
        has_id = true;
        return true;
    };
    for (size_t b = 0; b < structural.size(); ++b) {
        for (uint64_t bits = structural[b]; bits != 0; bits &= bits - 1) {
            const size_t at = b * 64 + static_cast<size_t>(__builtin_ctzll(bits));
            const char c = batch[at];
            if (depth == 0) {  // the array's `[`, after whitespace only
                if (c != '[' || !only_space(batch, 0, at)) return false;
                depth = 1;
            } else if (depth == 1) {
                if (c == '{') {  // an entity, after `[` or `,` and whitespace
                    if (batch[previous] == '}' || !only_space(batch, previous + 1, at)) return false;
                    entity_start = at;
                    has_id = false;
                    depth = 2;
                    if (!member(at)) return false;
                } else if (c == ',') {  // between two entities
                    if (batch[previous] != '}' || !only_space(batch, previous + 1, at)) return false;
                } else if (c == ']') {  // the end: after an entity, or `[]`; then whitespace only
                    if (batch[previous] == ',' || !only_space(batch, previous + 1, at)) return false;
                    return only_space(batch, at + 1, size);
                } else {
                    return false;
                }
            } else if (c == '{' || c == '[') {
                ++depth;
            } else if (c == '}' || c == ']') {
                if (--depth == 1) {  // the entity ends
                    if (c != '}' || !has_id) return false;
                    entity.text = batch.substr(entity_start, at + 1 - entity_start);
                    out.push_back(entity);
                }
            } else if (depth == 2 && !member(at)) {  // a ',' at the entity's top level
                return false;
            }
            previous = at;
        }
    }
    return false;  // the array never closed
}

}  // namespace sluice::store

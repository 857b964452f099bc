// sluice/entity.hpp — entities, typed strings and the change-detection hash (header-only, C++17).
//
// Compiled into each plugin (and the kernel); nothing here crosses the C boundary.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/internal/dtoa.h>
#include <rapidjson/internal/itoa.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/json_scan.hpp>

namespace sluice {

using Json = rapidjson::Value;
using JsonDocument = rapidjson::Document;
using JsonAllocator = rapidjson::Document::AllocatorType;

// ---- JSON helpers -------------------------------------------------------------------------

inline std::string to_json(const Json& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize());
}

namespace detail {

// The end of the number starting at `p` (a '-' or a digit), read as the parser reads it; sets
// `unsafe` when it is one find_unsafe_json_number refuses.
inline const char* json_number_end(const char* p, const char* const end, bool& unsafe) {
    // The significand's digits UINT64_MAX spells (see the end).
    static constexpr char kUint64Max[] = "18446744073709551615";
    long long position = 0, exponent = 0, fraction_zeros = 0, digits = 0, significant = 0;
    bool nonzero = false, fraction = false, has_exponent = false, max_prefix = true;
    if (*p == '-') ++p;
    for (; p < end; ++p) {
        const char d = *p;
        if (d >= '0' && d <= '9') {
            ++digits;
            if (!nonzero && d != '0') {
                nonzero = true;
                position = fraction ? -fraction_zeros : 0;
            }
            if (nonzero) {
                if (significant < 20) max_prefix = max_prefix && d == kUint64Max[significant];
                ++significant;
            }
            if (nonzero && !fraction) ++position;
            if (fraction && !nonzero) ++fraction_zeros;
        } else if (d == '.') {
            fraction = true;
        } else {
            break;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        has_exponent = true;
        ++p;
        bool negative = false;
        if (p < end && (*p == '+' || *p == '-')) negative = *p++ == '-';
        for (; p < end && *p >= '0' && *p <= '9'; ++p) exponent = std::min(exponent * 10 + (*p - '0'), 1000000LL);
        if (negative) exponent = -exponent;
    }
    // The value lies in [10^(position-1), 10^position) times 10^exponent. A zero written
    // with more than 20 digits ("0.0000000000000000000000") parses to garbage, then crashes.
    // And a significand whose first 20 digits are UINT64_MAX's, with more after them
    // ("18446744073709551615123", "0.000184467440737095516159"): the digit accumulator stops
    // exactly at its limit and about half such numbers come out as garbage, with UB (a shift by
    // 1406505599 in strtod.h; found by fuzz_batch).
    unsafe = (!nonzero && (has_exponent || digits > 20)) ||
             (nonzero && (position + exponent > 309 || position + exponent <= -307)) ||
             (max_prefix && significant > 20);
    return p;
}

}  // namespace detail

// The first number in JSON `text` that RapidJSON 1.1.0 (Debian 12) cannot parse safely at full
// precision, or an empty view. Its full-precision path reads far outside a table — a crash —
// for magnitudes below ~1e-323 (e.g. 0.<400 zeros>1 or 1e-330), gives garbage just above that,
// reads past a table for magnitudes of 10^309 and more, and misparses a zero with an exponent
// ("0e188", Tencent/rapidjson#1249) and a zero written with more than ~21 digits (garbage from
// 22, a crash from ~330), and a significand that starts with UINT64_MAX's 20 digits and goes
// on (garbage, with UB). Refused here: a zero with an exponent or more than 20 digits, a
// nonzero magnitude outside [1e-307, 1e309) — a double's normal range, give or take a decade —
// and more than 20 significant digits of which the first 20 are 18446744073709551615. The text
// is scanned 64 bytes at a time (json_scan.hpp) and only numbers are looked at, so the cost is a
// small fraction of the parse itself.
inline std::string_view find_unsafe_json_number(std::string_view text) {
    const char* const base = text.data();
    const size_t size = text.size();
    detail::JsonBlockScanner scanner;
    size_t consumed = 0;  // the end of the last number read
    uint64_t carry = 0;   // the previous block's last byte was a '-' or digit outside strings
    for (size_t block = 0; block < size; block += 64) {
        const detail::JsonBlockMasks m = scanner.next(base + block, std::min<size_t>(64, size - block));
        // Numbers start at a '-' or digit that does not follow one; the others are inside a
        // number read whole, or right after one ("1-2", malformed), which is read next as a
        // parser would.
        uint64_t starts = m.number & ~((m.number << 1) | carry);
        carry = m.number >> 63;
        while (starts != 0) {
            size_t at = block + static_cast<size_t>(__builtin_ctzll(starts));
            starts &= starts - 1;
            if (at < consumed) continue;
            do {
                bool unsafe = false;
                const char* stop = detail::json_number_end(base + at, base + size, unsafe);
                if (unsafe) return std::string_view(base + at, static_cast<size_t>(stop - (base + at)));
                consumed = at = static_cast<size_t>(stop - base);
            } while (at < size && (base[at] == '-' || (base[at] >= '0' && base[at] <= '9')));
        }
    }
    return {};
}

// Why find_unsafe_json_number refused the number `bad`, for error messages (the SDK's, the
// kernel's and the API's say the same): "'<its first 40 characters>': <the rule>".
inline std::string unsafe_json_number_reason(std::string_view bad) {
    return "'" + std::string(bad.substr(0, 40)) + (bad.size() > 40 ? "…" : "") +
           "': a zero with an exponent or more than 20 digits, a magnitude outside 1e-307..1e309, or more than"
           " 20 significant digits starting 18446744073709551615";
}

// Throws std::invalid_argument naming `what` when `text` holds a number find_unsafe_json_number
// refuses: call before parsing text from outside (requests, batches, external systems).
inline void check_json_numbers(std::string_view text, const char* what = "JSON") {
    const std::string_view bad = find_unsafe_json_number(text);
    if (bad.empty()) return;
    const size_t at = static_cast<size_t>(bad.data() - text.data());
    throw std::invalid_argument(std::string(what) + ": unsupported number at byte " + std::to_string(at) + " (" +
                                unsafe_json_number_reason(bad) + ")");
}

// Parses JSON text, throwing std::invalid_argument naming `what` and the byte offset on error.
inline JsonDocument parse_json(std::string_view text, const char* what = "JSON") {
    check_json_numbers(text, what);
    JsonDocument doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
    if (doc.HasParseError()) {
        throw std::invalid_argument(std::string(what) + ": malformed JSON at byte " +
                                    std::to_string(doc.GetErrorOffset()));
    }
    return doc;
}

inline std::string_view as_view(const Json& string_value) {
    return {string_value.GetString(), string_value.GetStringLength()};
}

// Member lookup that tolerates non-objects; nullptr when absent.
inline const Json* find_member(const Json& object, std::string_view name) {
    if (!object.IsObject()) return nullptr;
    auto it = object.FindMember(Json(rapidjson::StringRef(name.data(), name.size())));
    return it == object.MemberEnd() ? nullptr : &it->value;
}

inline std::string string_or(const Json& object, std::string_view name, std::string fallback) {
    const Json* v = find_member(object, name);
    return v && v->IsString() ? std::string(as_view(*v)) : fallback;
}

inline bool bool_or(const Json& object, std::string_view name, bool fallback) {
    const Json* v = find_member(object, name);
    return v && v->IsBool() ? v->GetBool() : fallback;
}

inline int64_t int_or(const Json& object, std::string_view name, int64_t fallback) {
    const Json* v = find_member(object, name);
    return v && v->IsInt64() ? v->GetInt64() : fallback;
}

// ---- typed ("transit") strings: "~t2015-01-01", "~:ns:id", ... ------------------------------

enum class TypedKind { None, NamespacedId, Uri, Datetime, Bytes, Uuid, Decimal };

// The kind of a `~x`-prefixed string; unknown tags are plain strings (None).
inline TypedKind typed_kind(std::string_view s) {
    if (s.size() < 2 || s[0] != '~') return TypedKind::None;
    switch (s[1]) {
        case ':': return TypedKind::NamespacedId;
        case 'r': return TypedKind::Uri;
        case 't': return TypedKind::Datetime;
        case 'b': return TypedKind::Bytes;
        case 'u': return TypedKind::Uuid;
        case 'f': return TypedKind::Decimal;
        default: return TypedKind::None;
    }
}

// "~:crm:42" from ("crm", "42"); the global namespace when `ns` is empty ("~:42").
inline std::string make_ni(std::string_view ns, std::string_view id) {
    std::string out = "~:";
    if (!ns.empty()) out.append(ns).push_back(':');
    out.append(id);
    return out;
}

// ---- entities -----------------------------------------------------------------------------

// A reserved key is one that starts with '_' at the root of an entity.
inline bool is_reserved_key(std::string_view key) { return !key.empty() && key[0] == '_'; }

// A non-owning view of one entity (a JSON object inside some document).
class Entity {
public:
    Entity(Json& object, JsonAllocator& allocator) : object_(&object), allocator_(&allocator) {}

    Json& json() { return *object_; }
    const Json& json() const { return *object_; }
    JsonAllocator& allocator() { return *allocator_; }

    // `_id` as a string; std::nullopt when missing or not a string (an invalid entity).
    std::optional<std::string_view> id() const {
        const Json* v = find_member(*object_, "_id");
        if (!v || !v->IsString()) return std::nullopt;
        return as_view(*v);
    }
    // Only `true` counts as deleted (reference §1.2).
    bool deleted() const {
        const Json* v = find_member(*object_, "_deleted");
        return v && v->IsBool() && v->GetBool();
    }
    // `_updated` offset/token as text ("" when absent).
    std::string updated() const {
        const Json* v = find_member(*object_, "_updated");
        if (!v) return {};
        if (v->IsString()) return std::string(as_view(*v));
        if (v->IsNumber()) return to_json(*v);
        return {};
    }
    const Json* get(std::string_view key) const { return find_member(*object_, key); }

    void set(std::string_view key, Json value) {
        auto it = object_->FindMember(Json(rapidjson::StringRef(key.data(), key.size())));
        if (it != object_->MemberEnd()) {
            it->value = std::move(value);
        } else {
            object_->AddMember(Json(key.data(), static_cast<rapidjson::SizeType>(key.size()), *allocator_),
                               std::move(value), *allocator_);
        }
    }
    void set_string(std::string_view key, std::string_view text) {
        set(key, Json(text.data(), static_cast<rapidjson::SizeType>(text.size()), *allocator_));
    }
    bool remove(std::string_view key) {
        return object_->RemoveMember(Json(rapidjson::StringRef(key.data(), key.size())));
    }

private:
    Json* object_;
    JsonAllocator* allocator_;
};

// ---- change-detection hash ----------------------------------------------------------------

namespace detail {

// MurmurHash3 x64 128 (public domain, Austin Appleby): fast, well distributed, 128 bits as in
// Sesam's 32-hex `_hash`. Also what DTL's `hash128 "murmur3"` names.
inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33; k *= 0xc4ceb9fe1a85ec53ULL; k ^= k >> 33;
    return k;
}

}  // namespace detail

struct Hash128 {
    uint64_t low = 0, high = 0;
    std::string hex() const {
        static const char digits[] = "0123456789abcdef";
        std::string out(32, '0');
        for (int i = 0; i < 16; ++i) {
            uint64_t part = i < 8 ? high : low;
            int shift = (7 - (i % 8)) * 8;
            unsigned byte = static_cast<unsigned>((part >> shift) & 0xff);
            out[i * 2] = digits[byte >> 4];
            out[i * 2 + 1] = digits[byte & 0xf];
        }
        return out;
    }
    bool operator==(const Hash128& o) const { return low == o.low && high == o.high; }
};

inline Hash128 murmur3_128(const void* key, size_t len, uint32_t seed = 0) {
    using detail::fmix64;
    using detail::rotl64;
    const uint8_t* data = static_cast<const uint8_t*>(key);
    const size_t nblocks = len / 16;
    uint64_t h1 = seed, h2 = seed;
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    for (size_t i = 0; i < nblocks; i++) {
        uint64_t k1, k2;
        std::memcpy(&k1, data + i * 16, 8);
        std::memcpy(&k2, data + i * 16 + 8, 8);
        k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1;
        h1 = rotl64(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729;
        k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2;
        h2 = rotl64(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5;
    }
    const uint8_t* tail = data + nblocks * 16;
    uint64_t k1 = 0, k2 = 0;
    switch (len & 15) {
        case 15: k2 ^= uint64_t(tail[14]) << 48; [[fallthrough]];
        case 14: k2 ^= uint64_t(tail[13]) << 40; [[fallthrough]];
        case 13: k2 ^= uint64_t(tail[12]) << 32; [[fallthrough]];
        case 12: k2 ^= uint64_t(tail[11]) << 24; [[fallthrough]];
        case 11: k2 ^= uint64_t(tail[10]) << 16; [[fallthrough]];
        case 10: k2 ^= uint64_t(tail[9]) << 8; [[fallthrough]];
        case 9: k2 ^= uint64_t(tail[8]); k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2; [[fallthrough]];
        case 8: k1 ^= uint64_t(tail[7]) << 56; [[fallthrough]];
        case 7: k1 ^= uint64_t(tail[6]) << 48; [[fallthrough]];
        case 6: k1 ^= uint64_t(tail[5]) << 40; [[fallthrough]];
        case 5: k1 ^= uint64_t(tail[4]) << 32; [[fallthrough]];
        case 4: k1 ^= uint64_t(tail[3]) << 24; [[fallthrough]];
        case 3: k1 ^= uint64_t(tail[2]) << 16; [[fallthrough]];
        case 2: k1 ^= uint64_t(tail[1]) << 8; [[fallthrough]];
        case 1: k1 ^= uint64_t(tail[0]); k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1;
    }
    h1 ^= len; h2 ^= len;
    h1 += h2; h2 += h1;
    h1 = fmix64(h1); h2 = fmix64(h2);
    h1 += h2; h2 += h1;
    return Hash128{h2, h1};
}

namespace detail {

// Key order (bytewise, as std::string_view compares); most keys differ in their first byte,
// which is compared inline before any memcmp.
inline bool member_name_less(const Json::Member* a, const Json::Member* b) {
    const std::string_view x = as_view(a->name), y = as_view(b->name);
    if (!x.empty() && !y.empty() && x[0] != y[0])
        return static_cast<unsigned char>(x[0]) < static_cast<unsigned char>(y[0]);
    return x < y;
}

// Writes `value` with object keys sorted (recursively), so key order never changes the hash.
// `scratch` is a stack of member pointers shared by all levels (no allocation per object once
// it has grown): each object sorts its own slice, indices stay valid across the recursion.
template <class Writer>
void write_canonical(const Json& value, Writer& writer, std::vector<const Json::Member*>& scratch) {
    if (value.IsObject()) {
        const size_t base = scratch.size();
        for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) scratch.push_back(&*it);
        std::sort(scratch.begin() + static_cast<std::ptrdiff_t>(base), scratch.end(), member_name_less);
        const size_t end = scratch.size();
        writer.StartObject();
        for (size_t i = base; i < end; ++i) {
            const Json::Member* m = scratch[i];
            writer.Key(m->name.GetString(), m->name.GetStringLength());
            write_canonical(m->value, writer, scratch);
        }
        writer.EndObject();
        scratch.resize(base);
    } else if (value.IsArray()) {
        writer.StartArray();
        for (const Json& item : value.GetArray()) write_canonical(item, writer, scratch);
        writer.EndArray();
    } else {
        value.Accept(writer);
    }
}

template <class Writer>
void write_canonical(const Json& value, Writer& writer) {
    std::vector<const Json::Member*> scratch;
    write_canonical(value, writer, scratch);
}

// ---- compact JSON text, byte for byte what rapidjson::Writer<StringBuffer> writes -----------
// (default flags: no whitespace, UTF-8 through unchanged, control characters, '"' and '\\'
// escaped, \u00XX in upper-case hex, numbers by RapidJSON's own itoa/dtoa). The Writer puts one
// character at a time through its stack (~40 instructions per byte of entity); these copy
// unescaped runs whole into a TextBuffer. tests/unit/entity_test.cpp checks them against the
// Writer.

// An append-only text buffer with inline appends (std::string's appends are out-of-line calls,
// several per JSON string). Keeps its storage across clear().
class TextBuffer {
public:
    void clear() { size_ = 0; }
    const char* data() const { return data_.data(); }
    size_t size() const { return size_; }
    std::string_view view() const { return {data_.data(), size_}; }
    void put(char c) {
        if (RAPIDJSON_UNLIKELY(size_ == data_.size())) grow(1);
        data_[size_++] = c;
    }
    void write(const char* p, size_t n) {
        if (RAPIDJSON_UNLIKELY(data_.size() - size_ < n)) grow(n);
        std::memcpy(data_.data() + size_, p, n);
        size_ += n;
    }

private:
    void grow(size_t n) { data_.resize(std::max(data_.size() * 2, size_ + n + 256)); }
    std::vector<char> data_;
    size_t size_ = 0;
};

inline void append_json_text(TextBuffer& out, const char* s, size_t n) {
    static const char escape[256] = {
        'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
        'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
        0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
        // 0x60-0xFF: nothing escaped (the rest of the array is zero-initialised)
    };
    static const char hex[] = "0123456789ABCDEF";
    out.put('"');
    size_t run = 0;
    for (size_t i = 0; i < n; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const char e = escape[c];
        if (RAPIDJSON_LIKELY(!e)) continue;
        out.write(s + run, i - run);
        const char esc[6] = {'\\', e, '0', '0', hex[c >> 4], hex[c & 0xF]};
        out.write(esc, e == 'u' ? 6 : 2);
        run = i + 1;
    }
    out.write(s + run, n - run);
    out.put('"');
}

// A scalar as Value::Accept hands it to the Writer. NaN and infinities (never produced by
// parsing) write nothing, as the Writer's Double() does without kWriteNanAndInfFlag.
inline void append_json_scalar(TextBuffer& out, const Json& v) {
    char buffer[32];
    switch (v.GetType()) {
        case rapidjson::kNullType: out.write("null", 4); break;
        case rapidjson::kFalseType: out.write("false", 5); break;
        case rapidjson::kTrueType: out.write("true", 4); break;
        case rapidjson::kStringType: append_json_text(out, v.GetString(), v.GetStringLength()); break;
        case rapidjson::kNumberType: {
            const char* end;
            if (v.IsDouble()) {
                const double d = v.GetDouble();
                if (rapidjson::internal::Double(d).IsNanOrInf()) break;
                end = rapidjson::internal::dtoa(d, buffer, 324);  // the Writer's default maxDecimalPlaces
            } else if (v.IsInt64()) {
                end = rapidjson::internal::i64toa(v.GetInt64(), buffer);
            } else {
                end = rapidjson::internal::u64toa(v.GetUint64(), buffer);
            }
            out.write(buffer, static_cast<size_t>(end - buffer));
            break;
        }
        default: break;
    }
}

// Any value, object members in their order (what to_json() writes).
inline void append_json(TextBuffer& out, const Json& v) {
    if (v.IsObject()) {
        out.put('{');
        bool first = true;
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
            if (!first) out.put(',');
            first = false;
            append_json_text(out, it->name.GetString(), it->name.GetStringLength());
            out.put(':');
            append_json(out, it->value);
        }
        out.put('}');
    } else if (v.IsArray()) {
        out.put('[');
        bool first = true;
        for (const Json& item : v.GetArray()) {
            if (!first) out.put(',');
            first = false;
            append_json(out, item);
        }
        out.put(']');
    } else {
        append_json_scalar(out, v);
    }
}

// Any value with object keys sorted at every level (write_canonical's text).
inline void append_canonical(TextBuffer& out, const Json& v, std::vector<const Json::Member*>& scratch) {
    if (v.IsObject()) {
        const size_t base = scratch.size();
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) scratch.push_back(&*it);
        std::sort(scratch.begin() + static_cast<std::ptrdiff_t>(base), scratch.end(), member_name_less);
        const size_t end = scratch.size();
        out.put('{');
        for (size_t i = base; i < end; ++i) {
            const Json::Member* m = scratch[i];
            if (i > base) out.put(',');
            append_json_text(out, m->name.GetString(), m->name.GetStringLength());
            out.put(':');
            append_canonical(out, m->value, scratch);
        }
        out.put('}');
        scratch.resize(base);
    } else if (v.IsArray()) {
        out.put('[');
        bool first = true;
        for (const Json& item : v.GetArray()) {
            if (!first) out.put(',');
            first = false;
            append_canonical(out, item, scratch);
        }
        out.put(']');
    } else {
        append_json_scalar(out, v);
    }
}

struct CanonicalScratch {
    TextBuffer text;
    std::vector<const Json::Member*> members;
};

// The canonical content of `entity` (see canonical_content) written into `s.text`.
inline void write_canonical_content(const Json& entity, CanonicalScratch& s) {
    TextBuffer& out = s.text;
    out.clear();
    s.members.clear();
    for (auto it = entity.MemberBegin(); it != entity.MemberEnd(); ++it) {
        std::string_view key = as_view(it->name);
        if (!is_reserved_key(key) || key == "_id") s.members.push_back(&*it);
    }
    std::sort(s.members.begin(), s.members.end(), member_name_less);
    const Json* deleted = find_member(entity, "_deleted");
    const bool is_deleted = deleted && deleted->IsBool() && deleted->GetBool();
    const size_t root = s.members.size();
    static const char deleted_member[] = "\"_deleted\":true";
    out.put('{');
    bool deleted_written = !is_deleted;
    for (size_t i = 0; i < root; ++i) {
        const Json::Member* m = s.members[i];
        if (i) out.put(',');
        // "_deleted" sorts before "_id": emit it in its sorted place.
        if (!deleted_written && as_view(m->name) > std::string_view("_deleted")) {
            out.write(deleted_member, sizeof deleted_member - 1);
            out.put(',');
            deleted_written = true;
        }
        append_json_text(out, m->name.GetString(), m->name.GetStringLength());
        out.put(':');
        append_canonical(out, m->value, s.members);  // nested objects use the slots above `root`
    }
    if (!deleted_written) {
        if (root) out.put(',');
        out.write(deleted_member, sizeof deleted_member - 1);
    }
    out.put('}');
}

// The per-thread scratch space, reused from call to call: hashing a batch allocates nothing once
// it has grown. Not inlined: in a plugin (a shared object) every use of a thread_local costs a
// __tls_get_addr call, so its address is taken once here and passed on as a plain reference.
#if defined(__GNUC__)
__attribute__((noinline))
#endif
inline CanonicalScratch& canonical_scratch() {
    thread_local CanonicalScratch s;
    return s;
}

}  // namespace detail

// The canonical text hashed for change detection: the non-reserved root properties plus `_id`
// and (only when true) `_deleted`, keys sorted at every level. Numbers keep their JSON form, so
// 1 and 1.0 differ — they are different types (Integer vs Float) in the entity model.
inline std::string canonical_content(const Json& entity) {
    detail::CanonicalScratch& s = detail::canonical_scratch();
    detail::write_canonical_content(entity, s);
    return std::string(s.text.view());
}

// MurmurHash3-128 of canonical_content(entity), without materialising the text as a string.
inline Hash128 content_hash(const Json& entity) {
    detail::CanonicalScratch& s = detail::canonical_scratch();
    detail::write_canonical_content(entity, s);
    return murmur3_128(s.text.data(), s.text.size());
}

// The `_hash` of an entity: 32 hex characters of MurmurHash3-128 over canonical_content().
inline std::string entity_hash(const Json& entity) { return content_hash(entity).hex(); }

}  // namespace sluice

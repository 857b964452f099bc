// sluice/entity.hpp — entities, typed strings and the change-detection hash (header-only, C++17).
//
// Compiled into each plugin (and the kernel); nothing here crosses the C boundary.
#pragma once

#include <rapidjson/document.h>
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

// Parses JSON text, throwing std::invalid_argument naming `what` and the byte offset on error.
inline JsonDocument parse_json(std::string_view text, const char* what = "JSON") {
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

// Writes `value` with object keys sorted (recursively), so key order never changes the hash.
template <class Writer>
void write_canonical(const Json& value, Writer& writer) {
    if (value.IsObject()) {
        std::vector<const Json::Member*> members;
        members.reserve(value.MemberCount());
        for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) members.push_back(&*it);
        std::sort(members.begin(), members.end(), [](const Json::Member* a, const Json::Member* b) {
            return as_view(a->name) < as_view(b->name);
        });
        writer.StartObject();
        for (const Json::Member* m : members) {
            writer.Key(m->name.GetString(), m->name.GetStringLength());
            write_canonical(m->value, writer);
        }
        writer.EndObject();
    } else if (value.IsArray()) {
        writer.StartArray();
        for (const Json& item : value.GetArray()) write_canonical(item, writer);
        writer.EndArray();
    } else {
        value.Accept(writer);
    }
}

}  // namespace detail

// The canonical text hashed for change detection: the non-reserved root properties plus `_id`
// and (only when true) `_deleted`, keys sorted at every level. Numbers keep their JSON form, so
// 1 and 1.0 differ — they are different types (Integer vs Float) in the entity model.
inline std::string canonical_content(const Json& entity) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    std::vector<const Json::Member*> members;
    members.reserve(entity.MemberCount());
    for (auto it = entity.MemberBegin(); it != entity.MemberEnd(); ++it) {
        std::string_view key = as_view(it->name);
        if (!is_reserved_key(key) || key == "_id") members.push_back(&*it);
    }
    std::sort(members.begin(), members.end(), [](const Json::Member* a, const Json::Member* b) {
        return as_view(a->name) < as_view(b->name);
    });
    const Json* deleted = find_member(entity, "_deleted");
    const bool is_deleted = deleted && deleted->IsBool() && deleted->GetBool();
    writer.StartObject();
    bool deleted_written = !is_deleted;
    for (const Json::Member* m : members) {
        // "_deleted" sorts before "_id": emit it in its sorted place.
        if (!deleted_written && as_view(m->name) > std::string_view("_deleted")) {
            writer.Key("_deleted");
            writer.Bool(true);
            deleted_written = true;
        }
        writer.Key(m->name.GetString(), m->name.GetStringLength());
        detail::write_canonical(m->value, writer);
    }
    if (!deleted_written) {
        writer.Key("_deleted");
        writer.Bool(true);
    }
    writer.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

// The `_hash` of an entity: 32 hex characters of MurmurHash3-128 over canonical_content().
inline std::string entity_hash(const Json& entity) {
    std::string canonical = canonical_content(entity);
    return murmur3_128(canonical.data(), canonical.size()).hex();
}

}  // namespace sluice

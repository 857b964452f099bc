// Helpers shared by the storage backends (memory, postgres): entity preparation under the write
// rule, option/query parsing, lookup value matching. Header-only, compiled into each plugin.
// The protocol itself is documented in docs/storage.md.
#pragma once

#include <sluice/sdk.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::store {

// Largest number of entities delivered in one read chunk.
constexpr size_t kChunkEntities = 1000;

inline int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A random (version 4) UUID in its canonical textual form.
inline std::string new_uuid() {
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
    uint64_t hi = rng(), lo = rng();
    hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                  static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                  static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffULL));
    return buf;
}

// Appends `s` as a JSON string literal.
inline void append_json_string(std::string& out, std::string_view s) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    out.append(buffer.GetString(), buffer.GetSize());
}

inline std::string json_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

// One entity of a write batch, prepared: validated, hashed, reserved fields dropped.
struct PreparedEntity {
    std::string id;
    std::string hash;     // 32 hex, sluice::entity_hash
    bool deleted = false; // `_deleted: true`
    std::string content;  // {"_id": ..., <non-reserved props in input order>} (no `_deleted`)
};

// The stored text of one version: content + the generated fields.
inline std::string version_text(std::string_view content, bool deleted, int64_t offset,
                                std::optional<int64_t> previous, int64_t ts, std::string_view hash) {
    std::string out;
    out.reserve(content.size() + 120);
    // content is a JSON object that always holds `_id`, so it is never "{}".
    out.append(content.data(), content.size() - 1);
    out.append(",\"_deleted\":");
    out.append(deleted ? "true" : "false");
    out.append(",\"_updated\":");
    out.append(std::to_string(offset));
    out.append(",\"_previous\":");
    out.append(previous ? std::to_string(*previous) : std::string("null"));
    out.append(",\"_ts\":");
    out.append(std::to_string(ts));
    out.append(",\"_hash\":\"");
    out.append(hash.data(), hash.size());
    out.append("\"}");
    return out;
}

// The content object of an entity: `_id` first, then every non-reserved root property.
inline std::string content_text(const Json& entity) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartObject();
    const Json* id = find_member(entity, "_id");
    writer.Key("_id");
    id->Accept(writer);
    for (auto it = entity.MemberBegin(); it != entity.MemberEnd(); ++it) {
        if (is_reserved_key(as_view(it->name))) continue;
        writer.Key(it->name.GetString(), it->name.GetStringLength());
        it->value.Accept(writer);
    }
    writer.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

// Parses and validates a whole write batch before anything is stored: every element must be
// an object with a string `_id`, or the write fails naming the first bad index.
inline std::vector<PreparedEntity> prepare_batch(const sluice_batch& raw) {
    if (raw.format != SLUICE_FORMAT_JSON_ARRAY) throw Error("unsupported batch format " + std::to_string(raw.format));
    JsonDocument doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(raw.data, raw.size);
    if (doc.HasParseError()) throw Error("batch: malformed JSON at byte " + std::to_string(doc.GetErrorOffset()));
    if (!doc.IsArray()) throw Error("batch: expected a JSON array of entities");
    std::vector<PreparedEntity> out;
    out.reserve(doc.Size());
    for (rapidjson::SizeType i = 0; i < doc.Size(); ++i) {
        const Json& e = doc[i];
        const Json* id = e.IsObject() ? find_member(e, "_id") : nullptr;
        if (!id || !id->IsString())
            throw Error("batch index " + std::to_string(i) + ": entity has no string _id; nothing was written");
        PreparedEntity p;
        p.id.assign(id->GetString(), id->GetStringLength());
        p.hash = entity_hash(e);
        const Json* del = find_member(e, "_deleted");
        p.deleted = del && del->IsBool() && del->GetBool();
        p.content = content_text(e);
        out.push_back(std::move(p));
    }
    return out;
}

// ---- options and queries ----------------------------------------------------------------------

// An offset given as a JSON integer or a string of digits ("" and null: none).
inline std::optional<int64_t> offset_param(const Json& object, std::string_view name) {
    const Json* v = find_member(object, name);
    if (!v || v->IsNull()) return std::nullopt;
    if (v->IsInt64()) return v->GetInt64();
    if (v->IsString()) {
        std::string s(as_view(*v));
        if (s.empty()) return std::nullopt;
        size_t used = 0;
        long long n = 0;
        try {
            n = std::stoll(s, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != s.size()) throw Error("'" + std::string(name) + "' must be an integer offset, got \"" + s + "\"");
        return n;
    }
    if (v->IsDouble() && std::floor(v->GetDouble()) == v->GetDouble()) return static_cast<int64_t>(v->GetDouble());
    throw Error("'" + std::string(name) + "' must be an integer");
}

struct ReadQuery {
    std::string dataset;
    std::optional<int64_t> since;
    std::optional<int64_t> limit;
    bool history = true;
    bool deleted = true;
    bool reverse = false;
    // Circuit breakers: the staged versions follow the committed log, numbered with the offsets
    // they would get if committed now.
    bool uncommitted = false;
};

inline ReadQuery parse_read_query(const Json& q) {
    if (!q.IsObject()) throw Error("read query must be a JSON object");
    ReadQuery r;
    const Json* ds = find_member(q, "dataset");
    if (!ds || !ds->IsString()) throw Error("read query: 'dataset' (string) is required");
    r.dataset.assign(ds->GetString(), ds->GetStringLength());
    r.since = offset_param(q, "since");
    r.limit = offset_param(q, "limit");
    if (r.limit && *r.limit < 0) throw Error("read query: 'limit' must be >= 0");
    r.history = bool_or(q, "history", true);
    r.deleted = bool_or(q, "deleted", true);
    r.reverse = bool_or(q, "reverse", false);
    r.uncommitted = bool_or(q, "uncommitted", false);
    if (r.uncommitted && r.reverse) throw Error("read query: 'uncommitted' cannot be combined with 'reverse'");
    return r;
}

struct WriteOptions {
    bool force = false;
    std::optional<std::string> state_key;
    std::string state_value;  // JSON text
    std::optional<std::string> run;
    // Circuit breakers: the versions go to the dataset's stage (invisible until stage_commit)
    // and `state` is held with them, so a pipe's offset moves only when its writes become visible.
    bool stage = false;
};

inline WriteOptions parse_write_options(const Json& o) {
    WriteOptions w;
    if (!o.IsObject()) return w;
    w.force = bool_or(o, "force", false);
    if (const Json* st = find_member(o, "state"); st && !st->IsNull()) {
        const Json* k = find_member(*st, "key");
        if (!k || !k->IsString()) throw Error("write options: 'state' needs a string 'key'");
        w.state_key = std::string(as_view(*k));
        const Json* v = find_member(*st, "value");
        w.state_value = v ? to_json(*v) : "null";
    }
    if (const Json* run = find_member(o, "run"); run && run->IsString()) w.run = std::string(as_view(*run));
    w.stage = bool_or(o, "stage", false);
    return w;
}

// `staged`: for a staged write, how many versions the dataset's stage now holds.
inline std::string write_result(size_t written, size_t unchanged, std::optional<int64_t> last_offset,
                                std::optional<int64_t> staged = std::nullopt) {
    return "{\"written\":" + std::to_string(written) + ",\"unchanged\":" + std::to_string(unchanged) +
           ",\"last_offset\":" + (last_offset ? std::to_string(*last_offset) : std::string("null")) +
           (staged ? ",\"staged\":" + std::to_string(*staged) : std::string()) + "}";
}

// The `info` object of a tripped circuit breaker, as given to stage_trip (an object), as text.
inline std::string breaker_info_text(const Json& cmd) {
    const Json* info = find_member(cmd, "info");
    if (!info || !info->IsObject()) throw Error("storage command 'stage_trip': 'info' (object) is required");
    return to_json(*info);
}

inline std::string required_string(const Json& cmd, std::string_view name) {
    const Json* v = find_member(cmd, name);
    if (!v || !v->IsString())
        throw Error("storage command '" + string_or(cmd, "op", "?") + "': '" + std::string(name) +
                    "' (string) is required");
    return std::string(as_view(*v));
}

// ---- lookups ----------------------------------------------------------------------------------

// A key under which a JSON value is indexed: equal values (1 and 1.0, objects in any key order)
// get equal keys. Null has no key (never indexed, never matched).
inline void append_value_key(std::string& out, const Json& v) {
    if (v.IsString()) {
        out.append("s:");
        out.append(v.GetString(), v.GetStringLength());
    } else if (v.IsBool()) {
        out.append(v.GetBool() ? "b:1" : "b:0");
    } else if (v.IsNumber()) {
        out.append("n:");
        if (v.IsInt64()) {
            out.append(std::to_string(v.GetInt64()));
        } else if (v.IsUint64()) {
            out.append(std::to_string(v.GetUint64()));
        } else {
            double d = v.GetDouble();
            if (std::floor(d) == d && std::fabs(d) < 9.0e15)
                out.append(std::to_string(static_cast<int64_t>(d)));
            else
                out.append(to_json(v));
        }
    } else {
        rapidjson::StringBuffer buffer;
        rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
        detail::write_canonical(v, writer);
        out.append("j:");
        out.append(buffer.GetString(), buffer.GetSize());
    }
}

inline std::string value_key(const Json& v) {
    std::string out;
    append_value_key(out, v);
    return out;
}

inline std::vector<std::string> split_path(const std::string& property) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        size_t dot = property.find('.', start);
        parts.push_back(property.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return parts;
}

// The value at a dotted path through nested objects, or nullptr.
inline const Json* resolve_path(const Json& entity, const std::vector<std::string>& path) {
    const Json* cur = &entity;
    for (const std::string& part : path) {
        cur = find_member(*cur, part);
        if (!cur) return nullptr;
    }
    return cur;
}

// The index keys of the value at `path`: the value itself, or each element of a list; nulls
// (and null elements) give none.
inline std::vector<std::string> index_keys(const Json& entity, const std::vector<std::string>& path) {
    std::vector<std::string> keys;
    const Json* v = resolve_path(entity, path);
    if (!v || v->IsNull()) return keys;
    if (v->IsArray()) {
        for (const Json& item : v->GetArray())
            if (!item.IsNull()) keys.push_back(value_key(item));
    } else {
        keys.push_back(value_key(*v));
    }
    return keys;
}

// The keys asked for by a lookup's `values` array (null values dropped; a list value stands for
// its elements).
inline std::vector<std::string> wanted_keys(const Json& values) {
    std::vector<std::string> keys;
    if (!values.IsArray()) throw Error("lookup: values must be a JSON array");
    for (const Json& v : values.GetArray()) {
        if (v.IsNull()) continue;
        if (v.IsArray()) {
            for (const Json& item : v.GetArray())
                if (!item.IsNull()) keys.push_back(value_key(item));
        } else {
            keys.push_back(value_key(v));
        }
    }
    return keys;
}

}  // namespace sluice::store

// Composite continuation tokens and paged dataset reads shared by the sources that read several
// datasets at once (union_datasets, merge_datasets, merge). Header-only; compiled into each plugin.
//
// Token format (what these sources hand the kernel as `since`):
//   {"<dataset id>": <last _updated read from it>, ...}
// a compact JSON object, keys in config order, holding only datasets something was read from (a
// dataset that is missing starts from its beginning). Keyed by id rather than by position, so
// adding, removing or reordering `datasets` keeps every other dataset's offset.
//
// Also accepted as input (Sesam's UI writes these): a comma-separated list with one offset per
// configured dataset, in config order ("12,,40": the second dataset from its beginning); a single
// integer for a one-dataset config. Offsets may be integers or strings of digits; -1 or "" means
// "from the beginning". A run always hands back the JSON form.
#pragma once

#include <sluice/sdk.hpp>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sluice::multi {

// "crm-person" or "crm-person p" (dataset id and alias, as in hops and the merge source).
struct DatasetRef {
    std::string id;
    std::string alias;
};

inline std::string trim(std::string_view s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return std::string(s.substr(b, e - b));
}

// Parses `datasets` (a list of "id" or "id alias" strings). `what` names the
// source in errors. Ids must be unique; aliases too (an alias defaults to the dataset id).
inline std::vector<DatasetRef> parse_datasets(const Json& config, const std::string& what) {
    const Json* list = find_member(config, "datasets");
    std::vector<DatasetRef> out;
    auto add = [&](const Json& item) {
        if (!item.IsString()) throw Error(what + ": every item of 'datasets' must be a string", SLUICE_FATAL);
        const std::string text = trim(as_view(item));
        const size_t space = text.find_first_of(" \t");
        DatasetRef ref;
        ref.id = text.substr(0, space);
        ref.alias = space == std::string::npos ? ref.id : trim(std::string_view(text).substr(space));
        if (ref.id.empty()) throw Error(what + ": empty dataset id in 'datasets'", SLUICE_FATAL);
        if (ref.alias.find_first_of(" \t") != std::string::npos)
            throw Error(what + ": '" + text + "' must be \"<dataset>\" or \"<dataset> <alias>\"", SLUICE_FATAL);
        for (const DatasetRef& seen : out) {
            if (seen.id == ref.id) throw Error(what + ": dataset '" + ref.id + "' is listed twice", SLUICE_FATAL);
            if (seen.alias == ref.alias) throw Error(what + ": alias '" + ref.alias + "' is used twice", SLUICE_FATAL);
        }
        out.push_back(std::move(ref));
    };
    if (list && list->IsArray()) {
        for (const Json& item : list->GetArray()) add(item);
    }
    if (out.empty()) throw Error(what + ": 'datasets' must list at least one dataset", SLUICE_FATAL);
    return out;
}

// Per-dataset positions: the last `_updated` read from each configured dataset (none: from the
// beginning).
class CompositeOffsets {
public:
    explicit CompositeOffsets(std::vector<std::string> datasets)
        : datasets_(std::move(datasets)), offsets_(datasets_.size()) {}

    // Parses a token (see the top of this file). nullptr/"" leaves every dataset at its beginning.
    void parse(const char* token, const std::string& what) {
        for (auto& o : offsets_) o.reset();
        if (!token) return;
        const std::string text = trim(token);
        if (text.empty()) return;
        if (text[0] == '{') {
            JsonDocument doc;
            doc.Parse(text.c_str(), text.size());
            if (doc.HasParseError() || !doc.IsObject())
                throw Error(what + ": continuation token '" + text + "' is not a JSON object");
            for (size_t i = 0; i < datasets_.size(); ++i) {
                if (const Json* v = find_member(doc, datasets_[i])) offsets_[i] = offset_value(*v, text, what);
            }
            return;
        }
        // Positional: "12", "12,40", "12,,40".
        std::vector<std::string> parts;
        size_t start = 0;
        while (true) {
            const size_t comma = text.find(',', start);
            parts.push_back(trim(std::string_view(text).substr(start, comma == std::string::npos ? std::string::npos
                                                                                               : comma - start)));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
        if (parts.size() != datasets_.size())
            throw Error(what + ": continuation token '" + text + "' has " + std::to_string(parts.size()) +
                        " offsets for " + std::to_string(datasets_.size()) + " datasets");
        for (size_t i = 0; i < parts.size(); ++i) offsets_[i] = offset_text(parts[i], text, what);
    }

    std::optional<int64_t> get(size_t i) const { return offsets_[i]; }
    void set(size_t i, int64_t offset) { offsets_[i] = offset; }
    size_t size() const { return datasets_.size(); }
    const std::string& dataset(size_t i) const { return datasets_[i]; }

    // The JSON form, keys in config order.
    std::string token() const {
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        for (size_t i = 0; i < datasets_.size(); ++i) {
            if (offsets_[i]) doc.AddMember(Json(datasets_[i].c_str(), a), Json(*offsets_[i]), a);
        }
        return to_json(doc);
    }

private:
    static std::optional<int64_t> offset_text(const std::string& part, const std::string& token, const std::string& what) {
        if (part.empty()) return std::nullopt;
        char* end = nullptr;
        const long long value = std::strtoll(part.c_str(), &end, 10);
        if (!end || *end) throw Error(what + ": continuation token '" + token + "': '" + part + "' is not an offset");
        if (value < 0) return std::nullopt;
        return static_cast<int64_t>(value);
    }
    static std::optional<int64_t> offset_value(const Json& v, const std::string& token, const std::string& what) {
        if (v.IsInt64()) return v.GetInt64() < 0 ? std::nullopt : std::optional<int64_t>(v.GetInt64());
        if (v.IsString()) return offset_text(trim(as_view(v)), token, what);
        if (v.IsNull()) return std::nullopt;
        throw Error(what + ": continuation token '" + token + "' holds a non-integer offset");
    }

    std::vector<std::string> datasets_;
    std::vector<std::optional<int64_t>> offsets_;
};

// Reads at most `limit` versions of `dataset` after `since` (exclusive) into `into` (an array),
// in log order. Returns how many arrived. Memory is bounded by `limit`.
inline size_t read_page(const Host& host, const std::string& dataset, std::optional<int64_t> since, size_t limit,
                        bool history, JsonDocument& into) {
    JsonDocument query(rapidjson::kObjectType);
    auto& qa = query.GetAllocator();
    query.AddMember("dataset", Json(dataset.c_str(), qa), qa);
    if (since) query.AddMember("since", *since, qa);
    query.AddMember("limit", static_cast<uint64_t>(limit), qa);
    query.AddMember("history", history, qa);
    query.AddMember("deleted", true, qa);
    into.SetArray();
    auto& a = into.GetAllocator();
    host.read_dataset(to_json(query), [&](std::string_view chunk) {
        JsonDocument part;
        part.Parse<rapidjson::kParseFullPrecisionFlag>(chunk.data(), chunk.size());
        if (part.HasParseError() || !part.IsArray()) throw Error("reading dataset " + dataset + ": malformed chunk");
        for (Json& e : part.GetArray()) into.PushBack(Json(e, a), a);
        return into.Size() < limit;
    });
    return into.Size();
}

// `_updated` of a stored version; throws when the store handed back something without one.
inline int64_t offset_of(const Json& entity, const std::string& dataset) {
    const Json* v = find_member(entity, "_updated");
    if (v && v->IsInt64()) return v->GetInt64();
    if (v && v->IsString()) {
        char* end = nullptr;
        const long long value = std::strtoll(v->GetString(), &end, 10);
        if (end && !*end) return value;
    }
    throw Error("dataset " + dataset + " returned a version without an integer _updated");
}

// `_ts` of a stored version (0 when absent).
inline int64_t ts_of(const Json& entity) {
    const Json* v = find_member(entity, "_ts");
    return v && v->IsInt64() ? v->GetInt64() : 0;
}

// `if_source_empty` from the source config, else the node's global default, else "accept".
inline std::string if_source_empty(const CreateArgs& args) {
    std::string value = string_or(args.config, "if_source_empty", "");
    if (!value.empty()) return value;
    if (const Json* defaults = find_member(args.node, "global_defaults"))
        value = string_or(*defaults, "if_source_empty", "");
    return value.empty() ? "accept" : value;
}

// One dataset being consumed page by page: the head is the next version to process.
class Cursor {
public:
    Cursor(std::string dataset, size_t index, std::optional<int64_t> since, bool history)
        : dataset_(std::move(dataset)), index_(index), since_(since), history_(history) {
        page_.SetArray();
    }

    // Makes a head available if the dataset has more versions after the cursor; false once done.
    bool fill(const Host& host, size_t page_size) {
        if (pos_ < page_.Size()) return true;
        if (done_) return false;
        pos_ = 0;
        const size_t got = read_page(host, dataset_, since_, page_size, history_, page_);
        if (got < page_size) done_ = true;  // read to the end (as of now)
        return got > 0;
    }
    Json& head() { return page_[static_cast<rapidjson::SizeType>(pos_)]; }
    // Consumes the head; returns its offset (the dataset's new position).
    int64_t pop() {
        const int64_t offset = offset_of(head(), dataset_);
        since_ = offset;
        ++pos_;
        return offset;
    }
    const std::string& dataset() const { return dataset_; }
    size_t index() const { return index_; }

private:
    std::string dataset_;
    size_t index_;
    std::optional<int64_t> since_;
    bool history_;
    JsonDocument page_;
    size_t pos_ = 0;
    bool done_ = false;
};

// The cursor whose head comes first in (`_ts`, dataset order): one step of a k-way merge of the
// datasets' logs. nullptr once every cursor is exhausted.
inline Cursor* earliest(std::vector<std::unique_ptr<Cursor>>& cursors, const Host& host, size_t page_size) {
    Cursor* next = nullptr;
    int64_t next_ts = 0;
    for (auto& c : cursors) {
        if (!c->fill(host, page_size)) continue;
        const int64_t ts = ts_of(c->head());
        if (!next || ts < next_ts) {
            next = c.get();
            next_ts = ts;
        }
    }
    return next;
}

}  // namespace sluice::multi

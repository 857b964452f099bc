// sluice-storage-memory: the storage protocol of docs/storage.md, kept in process memory.
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include "storage_common.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

namespace {

using namespace sluice;
using namespace sluice::store;

struct Version {
    std::string id;
    std::string text;  // the full stored entity
    std::string content;
    std::string hash;
    bool deleted = false;
    int64_t ts = 0;
};

// Latest live versions of one dataset by the value of one property.
struct PropertyIndex {
    std::vector<std::string> path;
    std::unordered_map<std::string, std::unordered_set<std::string>> ids_by_key;
    std::unordered_map<std::string, std::vector<std::string>> keys_by_id;

    void remove(const std::string& id) {
        auto it = keys_by_id.find(id);
        if (it == keys_by_id.end()) return;
        for (const std::string& key : it->second) {
            auto found = ids_by_key.find(key);
            if (found == ids_by_key.end()) continue;
            found->second.erase(id);
            if (found->second.empty()) ids_by_key.erase(found);
        }
        keys_by_id.erase(it);
    }
    void add(const std::string& id, const std::string& content) {
        JsonDocument doc = parse_json(content, "stored entity");
        std::vector<std::string> keys = index_keys(doc, path);
        if (keys.empty()) return;
        for (const std::string& key : keys) ids_by_key[key].insert(id);
        keys_by_id[id] = std::move(keys);
    }
};

// A version written while a circuit breaker stages the dataset's writes: no offset yet.
struct StagedVersion {
    std::string id;
    std::string content;
    std::string hash;
    bool deleted = false;
    int64_t ts = 0;
};

struct Dataset {
    std::string generation = new_uuid();
    bool populated = false;
    int64_t next_offset = 0;
    std::map<int64_t, Version> log;
    std::unordered_map<std::string, int64_t> latest;  // id -> offset of its latest version
    size_t latest_deleted = 0;
    std::unordered_map<std::string, std::unordered_set<std::string>> seen;  // run -> ids
    std::unordered_map<std::string, PropertyIndex> indexes;
    // Circuit breaker: staged versions in write order, the index of each id's newest one, the
    // pipe state held until commit, and the tripped breaker's info ("" when not tripped).
    std::vector<StagedVersion> stage;
    std::unordered_map<std::string, size_t> stage_latest;
    std::optional<std::pair<std::string, std::string>> stage_state;
    std::string breaker;

    // The hash an incoming version is compared with: the newest staged one, else the latest.
    const std::string* current_hash(const std::string& id) const {
        if (auto it = stage_latest.find(id); it != stage_latest.end()) return &stage[it->second].hash;
        const Version* v = latest_version(id);
        return v ? &v->hash : nullptr;
    }
    void stage_version(const std::string& id, std::string content, std::string hash, bool deleted, int64_t ts) {
        stage_latest[id] = stage.size();
        stage.push_back({id, std::move(content), std::move(hash), deleted, ts});
    }
    void clear_stage() {
        stage.clear();
        stage_latest.clear();
        stage_state.reset();
        breaker.clear();
    }

    const Version* latest_version(const std::string& id) const {
        auto it = latest.find(id);
        return it == latest.end() ? nullptr : &log.at(it->second);
    }

    // Appends one version; keeps the latest map, counters and indexes current.
    int64_t append(const std::string& id, const std::string& content, const std::string& hash, bool deleted,
                   int64_t ts) {
        int64_t offset = next_offset++;
        std::optional<int64_t> previous;
        auto it = latest.find(id);
        if (it != latest.end()) {
            previous = it->second;
            if (log.at(it->second).deleted) --latest_deleted;
        }
        Version v;
        v.id = id;
        v.content = content;
        v.hash = hash;
        v.deleted = deleted;
        v.ts = ts;
        v.text = version_text(content, deleted, offset, previous, ts, hash);
        log.emplace(offset, std::move(v));
        latest[id] = offset;
        if (deleted) ++latest_deleted;
        for (auto& [property, index] : indexes) {
            index.remove(id);
            if (!deleted) index.add(id, content);
        }
        return offset;
    }
};

struct HistoryEntry {
    int64_t offset;
    int64_t ts;
    std::string value;
};

class MemoryStorage : public Storage {
public:
    MemoryStorage(const CreateArgs& args, Host& host) {}

    std::string write(Host& host, const std::string& dataset, const sluice_batch& batch,
                      const JsonDocument& options) override {
        WriteOptions opts = parse_write_options(options);
        std::vector<PreparedEntity> entities = prepare_batch(batch);  // validates before any change
        std::unique_lock lock(mutex_);
        Dataset& ds = datasets_[dataset];
        size_t written = 0, unchanged = 0;
        const int64_t ts = now_us();
        std::unordered_set<std::string>* seen = opts.run ? &ds.seen[*opts.run] : nullptr;
        if (opts.stage) {
            for (PreparedEntity& e : entities) {
                if (seen) seen->insert(e.id);
                const std::string* current = ds.current_hash(e.id);
                if (!opts.force && current && *current == e.hash) {
                    ++unchanged;
                    continue;
                }
                ds.stage_version(e.id, std::move(e.content), std::move(e.hash), e.deleted, ts);
                ++written;
            }
            if (opts.state_key) ds.stage_state = std::make_pair(*opts.state_key, opts.state_value);
            return write_result(written, unchanged, last_offset(ds), static_cast<int64_t>(ds.stage.size()));
        }
        for (PreparedEntity& e : entities) {
            if (seen) seen->insert(e.id);
            const Version* current = ds.latest_version(e.id);
            if (!opts.force && current && current->hash == e.hash) {
                ++unchanged;
                continue;
            }
            ds.append(e.id, e.content, e.hash, e.deleted, ts);
            ++written;
        }
        if (opts.state_key) state_[*opts.state_key] = opts.state_value;
        return write_result(written, unchanged, last_offset(ds));
    }

    void read(Host& host, const JsonDocument& query, const std::function<bool(std::string_view)>& deliver) override {
        ReadQuery q = parse_read_query(query);
        std::optional<int64_t> cursor = q.since;  // exclusive bound, moving with each chunk
        int64_t remaining = q.limit ? *q.limit : INT64_MAX;
        bool delivered = false;
        while (remaining > 0) {
            BatchBuilder chunk;
            bool more = false;
            {
                std::shared_lock lock(mutex_);
                auto dit = datasets_.find(q.dataset);
                if (dit == datasets_.end()) break;
                const Dataset& ds = dit->second;
                auto accept = [&](const std::pair<const int64_t, Version>& row) {
                    const Version& v = row.second;
                    if (!q.deleted && v.deleted) return;
                    if (!q.history && ds.latest.at(v.id) != row.first) return;
                    chunk.add_raw(v.text);
                    --remaining;
                };
                if (!q.reverse) {
                    auto it = cursor ? ds.log.upper_bound(*cursor) : ds.log.begin();
                    for (; it != ds.log.end() && remaining > 0 && chunk.count() < kChunkEntities; ++it) {
                        accept(*it);
                        cursor = it->first;
                    }
                    more = it != ds.log.end();
                } else {
                    auto it = cursor ? std::make_reverse_iterator(ds.log.lower_bound(*cursor)) : ds.log.rbegin();
                    for (; it != ds.log.rend() && remaining > 0 && chunk.count() < kChunkEntities; ++it) {
                        accept(*it);
                        cursor = it->first;
                    }
                    more = it != ds.log.rend();
                }
            }
            if (chunk.empty() && more && remaining > 0) continue;  // everything in that span was filtered
            if (chunk.empty()) break;
            delivered = true;
            if (!deliver(chunk.text())) return;
            if (!more) break;
        }
        if (q.uncommitted && remaining > 0) {
            // Copied under the lock, delivered after it: a reader may call back into the store.
            // The stage is small (bounded by the breaker's limit).
            std::vector<std::string> chunks;
            {
                std::shared_lock lock(mutex_);
                auto dit = datasets_.find(q.dataset);
                if (dit != datasets_.end()) {
                    const Dataset& ds = dit->second;
                    std::unordered_map<std::string, int64_t> previous;
                    BatchBuilder chunk;
                    for (size_t i = 0; i < ds.stage.size() && remaining > 0; ++i) {
                        const StagedVersion& v = ds.stage[i];
                        const int64_t offset = ds.next_offset + static_cast<int64_t>(i);
                        std::optional<int64_t> prev;
                        if (auto p = previous.find(v.id); p != previous.end()) prev = p->second;
                        else if (auto l = ds.latest.find(v.id); l != ds.latest.end()) prev = l->second;
                        previous[v.id] = offset;
                        if (q.since && offset <= *q.since) continue;
                        if (!q.deleted && v.deleted) continue;
                        if (!q.history && ds.stage_latest.at(v.id) != i) continue;
                        chunk.add_raw(version_text(v.content, v.deleted, offset, prev, v.ts, v.hash));
                        --remaining;
                        if (chunk.count() >= kChunkEntities) {
                            chunks.emplace_back(chunk.text());
                            chunk.clear();
                        }
                    }
                    if (!chunk.empty()) chunks.emplace_back(chunk.text());
                }
            }
            for (const std::string& c : chunks) {
                delivered = true;
                if (!deliver(c)) return;
            }
        }
        if (!delivered) deliver("[]");
    }

    std::string lookup(Host& host, const std::string& dataset, const std::string& property,
                       const JsonDocument& values) override {
        std::vector<std::string> wanted = wanted_keys(values);
        std::unique_lock lock(mutex_);  // the index may be built now
        auto dit = datasets_.find(dataset);
        if (dit == datasets_.end() || wanted.empty()) return "[]";
        Dataset& ds = dit->second;
        std::set<int64_t> offsets;
        if (property == "_id") {
            for (const std::string& key : wanted) {
                if (key.compare(0, 2, "s:") != 0) continue;
                auto it = ds.latest.find(key.substr(2));
                if (it != ds.latest.end() && !ds.log.at(it->second).deleted) offsets.insert(it->second);
            }
        } else {
            PropertyIndex& index = index_for(ds, property);
            for (const std::string& key : wanted) {
                auto it = index.ids_by_key.find(key);
                if (it == index.ids_by_key.end()) continue;
                for (const std::string& id : it->second) offsets.insert(ds.latest.at(id));
            }
        }
        BatchBuilder out;
        for (int64_t offset : offsets) out.add_raw(ds.log.at(offset).text);
        return std::string(out.text());
    }

    std::string command(Host& host, const JsonDocument& cmd) override {
        if (!cmd.IsObject()) throw Error("storage command must be a JSON object");
        const std::string op = string_or(cmd, "op", "");
        if (op == "list") {
            std::shared_lock lock(mutex_);
            std::string out = "[";
            for (const auto& [name, ds] : datasets_) {
                if (out.size() > 1) out += ',';
                out += info_json(name, ds);
            }
            return out + "]";
        }
        if (op == "info") {
            std::string name = required_string(cmd, "dataset");
            std::shared_lock lock(mutex_);
            auto it = datasets_.find(name);
            return it == datasets_.end() ? "null" : info_json(name, it->second);
        }
        if (op == "get") {
            std::string name = required_string(cmd, "dataset"), id = required_string(cmd, "id");
            std::shared_lock lock(mutex_);
            auto it = datasets_.find(name);
            if (it == datasets_.end()) return "null";
            const Version* v = it->second.latest_version(id);
            return v ? v->text : "null";
        }
        if (op == "delete") {
            std::string name = required_string(cmd, "dataset");
            std::unique_lock lock(mutex_);
            bool existed = datasets_.erase(name) > 0;
            return std::string("{\"deleted\":") + (existed ? "true" : "false") + "}";
        }
        if (op == "recreate") {
            std::string name = required_string(cmd, "dataset");
            std::unique_lock lock(mutex_);
            datasets_[name] = Dataset();
            return info_json(name, datasets_[name]);
        }
        if (op == "set_populated") {
            std::string name = required_string(cmd, "dataset");
            bool value = bool_or(cmd, "value", true);
            std::unique_lock lock(mutex_);
            Dataset& ds = datasets_[name];
            ds.populated = value;
            return info_json(name, ds);
        }
        if (op == "delete_unseen")
            return delete_unseen(required_string(cmd, "dataset"), required_string(cmd, "run"), bool_or(cmd, "stage", false));
        if (op == "stage_trip") {
            std::string name = required_string(cmd, "dataset");
            std::string info = breaker_info_text(cmd);
            std::unique_lock lock(mutex_);
            Dataset& ds = datasets_[name];
            ds.breaker = std::move(info);
            return info_json(name, ds);
        }
        if (op == "stage_commit" || op == "stage_rollback") {
            std::string name = required_string(cmd, "dataset");
            std::unique_lock lock(mutex_);
            auto it = datasets_.find(name);
            const bool commit = op == "stage_commit";
            size_t n = 0;
            if (it != datasets_.end()) {
                Dataset& ds = it->second;
                n = ds.stage.size();
                if (commit) {
                    for (StagedVersion& v : ds.stage) ds.append(v.id, v.content, v.hash, v.deleted, v.ts);
                    if (ds.stage_state) state_[ds.stage_state->first] = ds.stage_state->second;
                }
                ds.clear_stage();
            }
            return std::string("{\"") + (commit ? "committed" : "discarded") + "\":" + std::to_string(n) + "}";
        }
        if (op == "compact") return compact(cmd);
        // One process holds this storage: runs of a pipe are already one at a time (the pumps).
        if (op == "run_lock") return "{\"locked\":true}";
        if (op == "run_unlock") return "{\"released\":true}";
        if (op == "state_get") {
            std::string key = required_string(cmd, "key");
            std::shared_lock lock(mutex_);
            auto it = state_.find(key);
            return it == state_.end() ? "null" : it->second;
        }
        if (op == "state_put" || op == "state_put_history") {
            std::string key = required_string(cmd, "key");
            const Json* v = find_member(cmd, "value");
            std::string value = v ? to_json(*v) : "null";
            std::unique_lock lock(mutex_);
            state_[key] = value;
            if (op == "state_put_history") history_[key].push_back({next_history_++, now_us(), value});
            return "{\"ok\":true}";
        }
        if (op == "state_delete") {
            std::string key = required_string(cmd, "key");
            std::unique_lock lock(mutex_);
            bool existed = state_.erase(key) > 0;
            return std::string("{\"deleted\":") + (existed ? "true" : "false") + "}";
        }
        if (op == "state_list") {
            std::string prefix = string_or(cmd, "prefix", "");
            std::shared_lock lock(mutex_);
            std::string out = "{";
            for (auto it = state_.lower_bound(prefix); it != state_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
                 ++it) {
                if (out.size() > 1) out += ',';
                append_json_string(out, it->first);
                out += ':';
                out += it->second;
            }
            return out + "}";
        }
        if (op == "state_history") {
            std::string key = required_string(cmd, "key");
            std::optional<int64_t> since = offset_param(cmd, "since");
            std::optional<int64_t> limit = offset_param(cmd, "limit");
            std::shared_lock lock(mutex_);
            std::string out = "[";
            auto it = history_.find(key);
            int64_t n = 0;
            if (it != history_.end()) {
                for (const HistoryEntry& h : it->second) {
                    if (since && h.offset <= *since) continue;
                    if (limit && n >= *limit) break;
                    if (n++) out += ',';
                    out += "{\"offset\":" + std::to_string(h.offset) + ",\"ts\":" + std::to_string(h.ts) +
                           ",\"value\":" + h.value + "}";
                }
            }
            return out + "]";
        }
        throw Error("unknown storage op '" + op + "'");
    }

private:
    static std::optional<int64_t> last_offset(const Dataset& ds) {
        if (ds.next_offset == 0) return std::nullopt;
        return ds.next_offset - 1;
    }

    static std::string info_json(const std::string& name, const Dataset& ds) {
        std::optional<int64_t> last = last_offset(ds);
        std::string out = "{\"_id\":";
        append_json_string(out, name);
        out += ",\"count\":" + std::to_string(ds.latest.size() - ds.latest_deleted);
        out += ",\"deleted\":" + std::to_string(ds.latest_deleted);
        out += ",\"versions\":" + std::to_string(ds.log.size());
        out += ",\"last_offset\":" + (last ? std::to_string(*last) : std::string("null"));
        out += ",\"generation\":\"" + ds.generation + "\"";
        out += std::string(",\"populated\":") + (ds.populated ? "true" : "false");
        out += ",\"staged\":" + std::to_string(ds.stage.size());
        out += ",\"circuit_breaker\":" + (ds.breaker.empty() ? std::string("null") : ds.breaker) + "}";
        return out;
    }

    PropertyIndex& index_for(Dataset& ds, const std::string& property) {
        auto it = ds.indexes.find(property);
        if (it != ds.indexes.end()) return it->second;
        PropertyIndex& index = ds.indexes[property];
        index.path = split_path(property);
        for (const auto& [id, offset] : ds.latest) {
            const Version& v = ds.log.at(offset);
            if (!v.deleted) index.add(id, v.content);
        }
        return index;
    }

    std::string delete_unseen(const std::string& name, const std::string& run, bool stage) {
        std::unique_lock lock(mutex_);
        auto dit = datasets_.find(name);
        if (dit == datasets_.end()) return "{\"deleted\":0}";
        Dataset& ds = dit->second;
        std::unordered_set<std::string> seen;
        if (auto sit = ds.seen.find(run); sit != ds.seen.end()) seen = std::move(sit->second);
        ds.seen.erase(run);
        // Live ids not seen, in log order so the tombstones' offsets follow the log.
        std::vector<int64_t> victims;
        for (const auto& [id, offset] : ds.latest)
            if (!ds.log.at(offset).deleted && !seen.count(id)) victims.push_back(offset);
        std::sort(victims.begin(), victims.end());
        const int64_t ts = now_us();
        size_t deleted = 0;
        for (int64_t offset : victims) {
            const Version& v = ds.log.at(offset);
            std::string id = v.id, content = v.content;
            // Staged by this run means seen by it; only committed live ids are candidates.
            if (stage && ds.stage_latest.count(id)) continue;
            JsonDocument doc = parse_json(content, "stored entity");
            doc.AddMember("_deleted", true, doc.GetAllocator());
            if (stage) ds.stage_version(id, content, entity_hash(doc), true, ts);
            else ds.append(id, content, entity_hash(doc), true, ts);
            ++deleted;
        }
        return "{\"deleted\":" + std::to_string(deleted) +
               (stage ? ",\"staged\":" + std::to_string(ds.stage.size()) : std::string()) + "}";
    }

    std::string compact(const JsonDocument& cmd) {
        std::string name = required_string(cmd, "dataset");
        std::optional<int64_t> keep = offset_param(cmd, "keep_versions");
        std::optional<int64_t> older_than = offset_param(cmd, "older_than_us");
        if (!keep && !older_than) throw Error("compact: give 'keep_versions' and/or 'older_than_us'");
        const int64_t keep_n = std::max<int64_t>(1, keep.value_or(1));
        std::unique_lock lock(mutex_);
        auto dit = datasets_.find(name);
        if (dit == datasets_.end()) return "{\"removed\":0}";
        Dataset& ds = dit->second;
        // Walk the log from the newest version backwards, counting versions per id.
        std::unordered_map<std::string, int64_t> rank;
        std::vector<int64_t> doomed;
        for (auto it = ds.log.rbegin(); it != ds.log.rend(); ++it) {
            int64_t r = ++rank[it->second.id];  // 1 = the latest
            if (r == 1) continue;
            bool beyond_keep = r > keep_n;
            bool old_enough = !older_than || it->second.ts < *older_than;
            if (keep ? (beyond_keep && old_enough) : old_enough) doomed.push_back(it->first);
        }
        for (int64_t offset : doomed) ds.log.erase(offset);
        return "{\"removed\":" + std::to_string(doomed.size()) + "}";
    }

    std::shared_mutex mutex_;
    std::map<std::string, Dataset> datasets_;
    std::map<std::string, std::string> state_;  // key -> JSON text
    std::map<std::string, std::vector<HistoryEntry>> history_;
    int64_t next_history_ = 0;
};

}  // namespace

SLUICE_PLUGIN("sluice-storage-memory", "1.0.0", "Datasets, pipe state and config in process memory", "Apache-2.0",
              sluice::storage<MemoryStorage>("memory", SLUICE_SCHEMA_JSON, SLUICE_CAP_THREAD_SAFE))

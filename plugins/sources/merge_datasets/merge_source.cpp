// The `merge` source (reference §3.4, §1.3; Sesam's "merge source"): entities of several datasets
// that the equality rules call the same are merged, transitively, into one entity with `$ids`.
//
// How a run works (see README.md for the user-facing rules):
//  * Changed entities are read from every dataset after the pipe's composite offset, in `_ts`
//    order, one batch at a time (composite_offsets.hpp).
//  * For a batch, the clusters containing the changed entities are computed against the current
//    datasets by a breadth-first walk over the equality rules: one indexed `lookup` per
//    (dataset, property) per step, never a scan and never a call per entity.
//  * The source remembers which source entities each output id was made of, in its own dataset
//    `system:merge:<pipe>` ({"_id": <output id>, "members": ["[\"<dataset>\",\"<id>\"]", ...]}).
//    Old output ids that touch the batch's clusters pull their other members into the walk (so a
//    cluster that falls apart is recomputed whole), and every old id that is no longer produced is
//    emitted deleted with `$replaced: true`.
//  * That state is written only after the kernel has committed the batch (the pipe's offset moved
//    to this batch's token), so previews and failed batches never change it.
#include "composite_offsets.hpp"

#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <tuple>

namespace {

using namespace sluice;

constexpr size_t kLookupValues = 1000;      // values per lookup call
constexpr size_t kMemoLimit = 200000;       // entity versions remembered per run (skips re-merging)
constexpr int64_t kDefaultMaxMerged = 50000;

int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// ---- values and equality ---------------------------------------------------------------------

// A text that is equal for two values exactly when the store's lookup calls them equal: numbers
// by value (1 == 1.0), objects whatever their key order, everything else exactly.
void canonical(const Json& v, std::string& out) {
    switch (v.GetType()) {
        case rapidjson::kNullType: out += "z"; return;
        case rapidjson::kFalseType: out += "f"; return;
        case rapidjson::kTrueType: out += "t"; return;
        case rapidjson::kStringType:
            out += "s";
            out += std::to_string(v.GetStringLength());
            out += ':';
            out.append(v.GetString(), v.GetStringLength());
            return;
        case rapidjson::kNumberType: {
            out += "n";
            if (v.IsInt64()) {
                out += std::to_string(v.GetInt64());
            } else if (v.IsUint64()) {
                out += std::to_string(v.GetUint64());
            } else {
                const double d = v.GetDouble();
                if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) {
                    out += std::to_string(static_cast<int64_t>(d));
                } else {
                    char buf[40];
                    std::snprintf(buf, sizeof buf, "%.17g", d);
                    out += buf;
                }
            }
            out += ';';
            return;
        }
        case rapidjson::kArrayType:
            out += "[";
            for (const Json& item : v.GetArray()) canonical(item, out);
            out += "]";
            return;
        case rapidjson::kObjectType: {
            std::vector<const Json::Member*> members;
            for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) members.push_back(&*it);
            std::sort(members.begin(), members.end(), [](const Json::Member* a, const Json::Member* b) {
                return as_view(a->name) < as_view(b->name);
            });
            out += "{";
            for (const Json::Member* m : members) {
                canonical(m->name, out);
                canonical(m->value, out);
            }
            out += "}";
            return;
        }
    }
}

std::string canonical(const Json& v) {
    std::string out;
    canonical(v, out);
    return out;
}

// The values an entity has at a dotted path, as a join sees them: a list stands for its
// elements, null never joins. Paths do not descend into lists (as the store's lookups).
void values_at(const Json& entity, const std::vector<std::string>& path, std::vector<const Json*>& out) {
    const Json* v = &entity;
    for (const std::string& key : path) {
        v = find_member(*v, key);
        if (!v) return;
    }
    if (v->IsArray()) {
        for (const Json& item : v->GetArray())
            if (!item.IsNull()) out.push_back(&item);
    } else if (!v->IsNull()) {
        out.push_back(v);
    }
}

// ---- configuration ---------------------------------------------------------------------------

struct Endpoint {
    size_t dataset = 0;
    std::string property;  // dotted path, as lookups take it
    std::vector<std::string> path;
};

struct Rule {
    Endpoint side[2];
};

// Union-find over member indexes, with component sizes.
class Components {
public:
    size_t add() {
        parent_.push_back(parent_.size());
        size_.push_back(1);
        return parent_.size() - 1;
    }
    size_t find(size_t x) {
        while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
        return x;
    }
    // Returns the size of the joined component.
    size_t join(size_t a, size_t b) {
        a = find(a);
        b = find(b);
        if (a == b) return size_[a];
        if (size_[a] < size_[b]) std::swap(a, b);
        parent_[b] = a;
        size_[a] += size_[b];
        return size_[a];
    }

private:
    std::vector<size_t> parent_, size_;
};

class MergeSource : public Source {
public:
    MergeSource(const CreateArgs& args, Host&)
        : datasets_(multi::parse_datasets(args.config, "merge source")),
          identity_(string_or(args.config, "identity", "composite")),
          strategy_(string_or(args.config, "strategy", "default")),
          if_source_empty_(multi::if_source_empty(args)),
          pipe_id_(args.pipe_id) {
        const char* what = "merge source";
        version_ = int_or(args.config, "version", 1);
        if (version_ != 1 && version_ != 2) throw Error(std::string(what) + ": 'version' must be 1 or 2", SLUICE_FATAL);
        if (identity_ != "composite" && identity_ != "first")
            throw Error(std::string(what) + ": 'identity' must be \"composite\" or \"first\"", SLUICE_FATAL);
        if (strategy_ != "default" && strategy_ != "compact" && strategy_ != "list")
            throw Error(std::string(what) + ": 'strategy' must be \"default\", \"compact\" or \"list\"", SLUICE_FATAL);
        max_merged_ = kDefaultMaxMerged;
        if (const Json* defaults = find_member(args.node, "global_defaults"))
            max_merged_ = int_or(*defaults, "max_merged", max_merged_);
        max_merged_ = int_or(args.config, "max_merged", max_merged_);
        if (max_merged_ < 1) throw Error(std::string(what) + ": 'max_merged' must be at least 1", SLUICE_FATAL);

        if (const Json* equality = find_member(args.config, "equality")) {
            if (!equality->IsArray()) throw Error(std::string(what) + ": 'equality' must be a list", SLUICE_FATAL);
            for (rapidjson::SizeType i = 0; i < equality->Size(); ++i) {
                const Json& rule = (*equality)[i];
                const std::string where = "/equality/" + std::to_string(i);
                if (!rule.IsArray() || rule.Size() != 3 || !rule[0].IsString() || as_view(rule[0]) != "eq")
                    throw Error(where + ": an equality rule is [\"eq\", \"<alias>.<property>\", \"<alias>.<property>\"]",
                                SLUICE_FATAL);
                rules_.push_back(Rule{{endpoint(rule[1], where + "/1"), endpoint(rule[2], where + "/2")}});
            }
        }
        if (const Json* sets = find_member(args.config, "equality_sets")) {
            if (!sets->IsArray()) throw Error(std::string(what) + ": 'equality_sets' must be a list", SLUICE_FATAL);
            // Sugar for pairwise rules between neighbours: [a.x, b.x, c.y] = a.x~b.x, b.x~c.y.
            for (rapidjson::SizeType i = 0; i < sets->Size(); ++i) {
                const Json& set = (*sets)[i];
                const std::string where = "/equality_sets/" + std::to_string(i);
                if (!set.IsArray() || set.Empty())
                    throw Error(where + ": an equality set is a non-empty list of \"<alias>.<property>\"", SLUICE_FATAL);
                std::vector<Endpoint> ends;
                for (rapidjson::SizeType k = 0; k < set.Size(); ++k)
                    ends.push_back(endpoint(set[k], where + "/" + std::to_string(k)));
                for (size_t k = 1; k < ends.size(); ++k) rules_.push_back(Rule{{ends[k - 1], ends[k]}});
            }
        }
        state_dataset_ = "system:merge:" + (pipe_id_.empty() ? std::string("unnamed") : pipe_id_);
    }

    void read(Host& host, const char* since, uint32_t batch_size) override {
        std::vector<std::string> ids;
        for (const multi::DatasetRef& d : datasets_) ids.push_back(d.id);
        multi::CompositeOffsets offsets(ids);
        offsets.parse(since, "merge source");
        const bool full = !since || !*since;
        const size_t chunk_size = batch_size ? batch_size : 1;

        std::vector<std::unique_ptr<multi::Cursor>> cursors;
        for (size_t i = 0; i < datasets_.size(); ++i)
            cursors.push_back(std::make_unique<multi::Cursor>(datasets_[i].id, i, offsets.get(i), false));

        memo_.clear();
        warned_uncommitted_ = false;
        size_t emitted = 0;
        while (!host.cancelled()) {
            Chunk chunk;
            while (chunk.changed.size() < chunk_size) {
                multi::Cursor* next = multi::earliest(cursors, host, chunk_size);
                if (!next) break;
                chunk.changed.push_back({next->index(), Json(next->head(), chunk.pool)});
                offsets.set(next->index(), next->pop());
            }
            if (chunk.changed.empty()) break;

            BatchBuilder batch;
            Json state_updates(rapidjson::kArrayType);
            process(host, chunk, batch, state_updates);
            const std::string token = offsets.token();
            const int64_t before = now_us();
            host.emit(batch, token.c_str());
            emitted += batch.count();
            if (!state_updates.Empty() && committed(host, token, before)) {
                BatchBuilder state;
                for (const Json& s : state_updates.GetArray()) state.add(s);
                const std::string_view text = state.text();
                sluice_batch raw{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, text.data(), text.size(),
                                 state.count(), nullptr};
                host.write_dataset(state_dataset_, raw);
            }
        }
        if (full && emitted == 0 && if_source_empty_ == "fail")
            throw Error("merge source: no entities in any of the datasets and if_source_empty is \"fail\"");
    }

private:
    struct Changed {
        size_t dataset;
        Json entity;
    };
    struct Member {
        size_t dataset;
        std::string id;
        const Json* body;
    };
    // One batch of changed entities and everything computed for it. Entity bodies live in `pool`.
    struct Chunk {
        rapidjson::MemoryPoolAllocator<> pool;
        std::vector<Changed> changed;
        std::deque<Json> bodies;
        std::vector<Member> members;
        std::unordered_map<std::string, size_t> by_key;  // "<dataset index>|<id>" -> member
        Components components;
        // Per (rule, value): the members holding the value on each side of the rule.
        std::map<std::pair<size_t, std::string>, std::array<std::vector<size_t>, 2>> holders;
        std::set<std::tuple<size_t, int, std::string>> asked;  // (rule, side, value) looked up
        std::unordered_set<std::string> state_asked;            // member state keys looked up
        std::unordered_set<std::string> fetched;                // member keys fetched by _id
        std::map<std::string, std::vector<std::string>> old_records;  // old output id -> member keys
    };

    static std::string key_of(size_t dataset, std::string_view id) {
        return std::to_string(dataset) + "|" + std::string(id);
    }
    std::string state_key(size_t dataset, const std::string& id) const {
        JsonDocument pair(rapidjson::kArrayType);
        pair.PushBack(Json(datasets_[dataset].id.c_str(), pair.GetAllocator()), pair.GetAllocator());
        pair.PushBack(Json(id.c_str(), pair.GetAllocator()), pair.GetAllocator());
        return to_json(pair);
    }

    Endpoint endpoint(const Json& text, const std::string& where) const {
        if (!text.IsString())
            throw Error(where + ": only \"<alias>.<property>\" paths are supported in merge equality rules, not " +
                            to_json(text),
                        SLUICE_FATAL);
        const std::string s(as_view(text));
        const size_t dot = s.find('.');
        if (dot == std::string::npos || dot == 0 || dot + 1 == s.size())
            throw Error(where + ": '" + s + "' is not \"<alias>.<property>\"", SLUICE_FATAL);
        const std::string alias = s.substr(0, dot);
        Endpoint e;
        e.property = s.substr(dot + 1);
        bool found = false;
        for (size_t i = 0; i < datasets_.size(); ++i) {
            if (datasets_[i].alias == alias) {
                e.dataset = i;
                found = true;
            }
        }
        if (!found) throw Error(where + ": unknown alias '" + alias + "' in '" + s + "'", SLUICE_FATAL);
        size_t start = 0;
        while (true) {
            const size_t next = e.property.find('.', start);
            e.path.push_back(e.property.substr(start, next == std::string::npos ? std::string::npos : next - start));
            if (e.path.back().empty()) throw Error(where + ": empty path segment in '" + s + "'", SLUICE_FATAL);
            if (next == std::string::npos) break;
            start = next + 1;
        }
        return e;
    }

    // Adds a live entity of `dataset` as a member (once); returns its index and whether it is new.
    std::pair<size_t, bool> add_member(Chunk& c, size_t dataset, const Json& entity) {
        const Json* id = find_member(entity, "_id");
        if (!id || !id->IsString()) throw Error("dataset " + datasets_[dataset].id + " holds an entity without a string _id");
        const std::string key = key_of(dataset, as_view(*id));
        auto it = c.by_key.find(key);
        if (it != c.by_key.end()) return {it->second, false};
        c.bodies.emplace_back(entity, c.pool);
        c.members.push_back({dataset, std::string(as_view(*id)), &c.bodies.back()});
        c.components.add();
        c.by_key.emplace(key, c.members.size() - 1);
        return {c.members.size() - 1, true};
    }

    // Lookups of `values` (deduplicated by the caller) in chunks; every live entity found is added.
    void fetch(const Host& host, Chunk& c, size_t dataset, const std::string& property, const std::vector<const Json*>& values,
               std::vector<size_t>& frontier) {
        for (size_t start = 0; start < values.size(); start += kLookupValues) {
            JsonDocument list(rapidjson::kArrayType);
            for (size_t i = start; i < values.size() && i < start + kLookupValues; ++i)
                list.PushBack(Json(*values[i], list.GetAllocator()), list.GetAllocator());
            JsonDocument found = host.lookup(datasets_[dataset].id, property, list);
            if (!found.IsArray()) throw Error("lookup in " + datasets_[dataset].id + " did not answer an array");
            for (const Json& e : found.GetArray()) {
                auto [index, added] = add_member(c, dataset, e);
                if (added) frontier.push_back(index);
            }
        }
    }

    // Breadth-first walk over the equality rules from `frontier` until nothing new is found.
    void walk(const Host& host, Chunk& c, std::vector<size_t> frontier) {
        while (!frontier.empty()) {
            // (dataset, property) -> values to look up there
            std::map<std::pair<size_t, std::string>, std::vector<const Json*>> queries;
            std::set<std::pair<size_t, std::string>> touched;
            for (size_t m : frontier) {
                const Member member = c.members[m];
                for (size_t r = 0; r < rules_.size(); ++r) {
                    for (int s = 0; s < 2; ++s) {
                        const Endpoint& mine = rules_[r].side[s];
                        if (mine.dataset != member.dataset) continue;
                        std::vector<const Json*> values;
                        values_at(*member.body, mine.path, values);
                        for (const Json* v : values) {
                            std::string value = canonical(*v);
                            auto& side = c.holders[{r, value}][s];
                            if (side.empty() || side.back() != m) side.push_back(m);
                            touched.insert({r, value});
                            const Endpoint& other = rules_[r].side[1 - s];
                            if (c.asked.insert({r, 1 - s, value}).second)
                                queries[{other.dataset, other.property}].push_back(v);
                        }
                    }
                }
            }
            frontier.clear();
            for (auto& [target, values] : queries) {
                // One value once per (dataset, property), whichever rules asked for it.
                std::set<std::string> seen;
                std::vector<const Json*> unique;
                for (const Json* v : values)
                    if (seen.insert(canonical(*v)).second) unique.push_back(v);
                fetch(host, c, target.first, target.second, unique, frontier);
            }
            // Members holding a value on both sides of a rule are the same entity.
            for (const auto& node : touched) {
                const auto& sides = c.holders[node];
                if (sides[0].empty() || sides[1].empty()) continue;
                const size_t first = sides[0][0];
                for (int s = 0; s < 2; ++s) {
                    for (size_t m : sides[s]) {
                        if (c.components.join(first, m) > static_cast<size_t>(max_merged_))
                            throw Error("merge source: more than max_merged (" + std::to_string(max_merged_) +
                                        ") entities would merge into one (while merging " +
                                        datasets_[c.members[m].dataset].id + " entity '" + c.members[m].id + "')");
                    }
                }
            }
        }
    }

    // Old output ids that contain any member not asked about yet; pulls in their other members.
    bool pull_old_records(const Host& host, Chunk& c, const std::vector<std::string>& extra_keys,
                          std::vector<size_t>& frontier) {
        std::vector<std::string> keys;
        for (const Member& m : c.members) {
            std::string k = state_key(m.dataset, m.id);
            if (c.state_asked.insert(k).second) keys.push_back(std::move(k));
        }
        for (const std::string& k : extra_keys)
            if (c.state_asked.insert(k).second) keys.push_back(k);
        if (keys.empty()) return false;
        std::map<size_t, std::vector<std::string>> wanted;  // dataset -> ids to fetch
        for (size_t start = 0; start < keys.size(); start += kLookupValues) {
            JsonDocument list(rapidjson::kArrayType);
            for (size_t i = start; i < keys.size() && i < start + kLookupValues; ++i)
                list.PushBack(Json(keys[i].c_str(), list.GetAllocator()), list.GetAllocator());
            JsonDocument records = host.lookup(state_dataset_, "members", list);
            if (!records.IsArray()) continue;
            for (const Json& record : records.GetArray()) {
                const std::string id = string_or(record, "_id", "");
                if (id.empty() || c.old_records.count(id)) continue;
                std::vector<std::string>& members = c.old_records[id];
                const Json* list_of = find_member(record, "members");
                if (!list_of || !list_of->IsArray()) continue;
                for (const Json& k : list_of->GetArray()) {
                    if (!k.IsString()) continue;
                    members.emplace_back(as_view(k));
                    JsonDocument pair;
                    pair.Parse(k.GetString(), k.GetStringLength());
                    if (pair.HasParseError() || !pair.IsArray() || pair.Size() != 2 || !pair[0].IsString() ||
                        !pair[1].IsString())
                        continue;
                    for (size_t d = 0; d < datasets_.size(); ++d) {
                        if (datasets_[d].id != as_view(pair[0])) continue;
                        const std::string member_key = key_of(d, as_view(pair[1]));
                        if (!c.by_key.count(member_key) && c.fetched.insert(member_key).second)
                            wanted[d].emplace_back(as_view(pair[1]));
                    }
                }
            }
        }
        for (auto& [dataset, ids] : wanted) {
            JsonDocument holder(rapidjson::kArrayType);
            for (const std::string& id : ids) holder.PushBack(Json(id.c_str(), holder.GetAllocator()), holder.GetAllocator());
            std::vector<const Json*> values;
            for (const Json& v : holder.GetArray()) values.push_back(&v);
            fetch(host, c, dataset, "_id", values, frontier);
        }
        return true;
    }

    // The output id of members sorted by (dataset order, id).
    std::string identity(const std::vector<const Member*>& sorted) const {
        if (identity_ == "first") return sorted.front()->id;
        std::string out;
        for (const Member* m : sorted) {
            if (!out.empty()) out += '|';
            out += std::to_string(m->dataset);
            out += '|';
            out += m->id;
        }
        return out;
    }

    // The merged entity of members sorted by (dataset order, id), per `strategy`.
    void merged(const std::vector<const Member*>& sorted, const std::string& id, bool deleted, JsonDocument& out) const {
        out.SetObject();
        auto& a = out.GetAllocator();
        out.AddMember("_id", Json(id.c_str(), a), a);
        // $ids: the ids of the merged entities; an entity that has `$ids` contributes those instead.
        Json ids(rapidjson::kArrayType);
        std::set<std::string> seen_ids;
        auto add_id = [&](const Json& v) {  // copies strings (never keeps a reference)
            std::string c = canonical(v);
            if (!seen_ids.insert(c).second) return;
            if (v.IsString())
                ids.PushBack(Json(v.GetString(), v.GetStringLength(), a), a);
            else
                ids.PushBack(Json(v, a), a);
        };
        for (const Member* m : sorted) {
            const Json* own = find_member(*m->body, "$ids");
            if (own && own->IsArray()) {
                for (const Json& v : own->GetArray()) add_id(v);
            } else if (own && !own->IsNull()) {
                add_id(*own);
            } else {
                add_id(Json(rapidjson::StringRef(m->id.c_str(), m->id.size())));
            }
        }
        if (strategy_ == "list") {
            Json list(rapidjson::kArrayType);
            for (const Member* m : sorted) {
                Json copy(rapidjson::kObjectType);
                copy.AddMember("_id", Json(m->id.c_str(), a), a);
                for (auto it = m->body->MemberBegin(); it != m->body->MemberEnd(); ++it) {
                    if (is_reserved_key(as_view(it->name))) continue;
                    copy.AddMember(Json(it->name, a), Json(it->value, a), a);
                }
                list.PushBack(copy, a);
            }
            out.AddMember("$merged", list, a);
        } else {
            // Union of values in member order (DTL merge-union): a property seen once keeps its
            // value; a collision becomes the concatenation of both as lists.
            for (const Member* m : sorted) {
                for (auto it = m->body->MemberBegin(); it != m->body->MemberEnd(); ++it) {
                    const std::string_view key = as_view(it->name);
                    if (is_reserved_key(key) || key == "$ids") continue;
                    auto existing = out.FindMember(it->name);
                    if (existing == out.MemberEnd()) {
                        out.AddMember(Json(it->name, a), Json(it->value, a), a);
                        continue;
                    }
                    Json list(rapidjson::kArrayType);
                    auto append = [&](const Json& v) {
                        if (v.IsArray()) {
                            for (const Json& item : v.GetArray()) list.PushBack(Json(item, a), a);
                        } else {
                            list.PushBack(Json(v, a), a);
                        }
                    };
                    append(existing->value);
                    append(it->value);
                    existing->value = list;
                }
            }
            if (strategy_ == "compact") {
                // Duplicates removed, empty lists dropped, single-element lists unwrapped.
                std::vector<std::string> drop;
                for (auto it = out.MemberBegin(); it != out.MemberEnd(); ++it) {
                    if (!it->value.IsArray() || as_view(it->name) == "_id") continue;
                    Json compact(rapidjson::kArrayType);
                    std::set<std::string> seen;
                    for (Json& item : it->value.GetArray())
                        if (seen.insert(canonical(item)).second) compact.PushBack(Json(item, a), a);
                    if (compact.Empty()) {
                        drop.emplace_back(as_view(it->name));
                    } else if (compact.Size() == 1) {
                        it->value = Json(compact[0], a);
                    } else {
                        it->value = compact;
                    }
                }
                for (const std::string& k : drop) out.RemoveMember(k.c_str());
            }
        }
        out.AddMember("$ids", ids, a);
        if (deleted) out.AddMember("_deleted", true, a);
    }

    // Computes the output for one batch of changed entities: the batch to emit and the state
    // records to write once it is committed.
    void process(const Host& host, Chunk& c, BatchBuilder& batch, Json& state_updates) {
        std::vector<size_t> frontier;
        std::vector<std::pair<size_t, const Json*>> deleted;  // changed entities that are deleted
        std::vector<std::string> deleted_keys;
        // An entity that changed again while the run was paging can be here twice: only its
        // newest version counts.
        std::unordered_map<std::string, size_t> newest;
        for (size_t k = 0; k < c.changed.size(); ++k) {
            const Json* id = find_member(c.changed[k].entity, "_id");
            if (!id || !id->IsString())
                throw Error("dataset " + datasets_[c.changed[k].dataset].id + " holds an entity without a string _id");
            newest[key_of(c.changed[k].dataset, as_view(*id))] = k;
        }
        for (size_t k = 0; k < c.changed.size(); ++k) {
            Changed& ch = c.changed[k];
            Entity view(ch.entity, c.pool);
            const std::optional<std::string_view> id = view.id();
            const std::string key = key_of(ch.dataset, *id);
            if (newest[key] != k) continue;
            if (view.deleted()) {
                deleted.push_back({ch.dataset, &ch.entity});
                deleted_keys.push_back(state_key(ch.dataset, std::string(*id)));
                continue;
            }
            // Already merged earlier in this run with exactly this version: nothing new.
            auto memo = memo_.find(key);
            if (memo != memo_.end() && memo->second == view.updated()) continue;
            auto [index, added] = add_member(c, ch.dataset, ch.entity);
            if (added) frontier.push_back(index);
        }

        // Walk the rules; then pull in old output ids touching what was found, and walk again
        // from their members, until nothing new turns up.
        walk(host, c, std::move(frontier));
        for (bool first = true;; first = false) {
            std::vector<size_t> more;
            if (!pull_old_records(host, c, first ? deleted_keys : std::vector<std::string>{}, more)) break;
            walk(host, c, std::move(more));
        }

        // Clusters: members grouped by component, ordered by (dataset order, id).
        std::map<size_t, std::vector<const Member*>> clusters;
        for (size_t m = 0; m < c.members.size(); ++m) clusters[c.components.find(m)].push_back(&c.members[m]);
        std::set<std::string> produced;
        std::vector<JsonDocument> outputs;
        for (auto& [root, list] : clusters) {
            std::sort(list.begin(), list.end(), [](const Member* a, const Member* b) {
                return a->dataset != b->dataset ? a->dataset < b->dataset : a->id < b->id;
            });
            const std::string id = identity(list);
            if (!produced.insert(id).second)
                host.warn("merge source: two clusters produce the output id '" + id +
                          "' (identity \"first\" with the same _id in several datasets needs an equality rule on _id)");
            JsonDocument out;
            merged(list, id, false, out);
            outputs.push_back(std::move(out));
            Json record(rapidjson::kObjectType);
            record.AddMember("_id", Json(id.c_str(), c.pool), c.pool);
            std::vector<std::string> keys;
            for (const Member* m : list) keys.push_back(state_key(m->dataset, m->id));
            std::sort(keys.begin(), keys.end());
            Json members(rapidjson::kArrayType);
            for (const std::string& k : keys) members.PushBack(Json(k.c_str(), c.pool), c.pool);
            record.AddMember("members", members, c.pool);
            state_updates.PushBack(record, c.pool);
        }
        // Deleted source entities: never merged; each is output alone, deleted.
        std::set<std::string> deleted_ids;
        for (auto& [dataset, entity] : deleted) {
            const std::string id(as_view((*entity)["_id"]));
            if (c.by_key.count(key_of(dataset, id))) continue;  // live again since
            Member alone{dataset, id, entity};
            std::vector<const Member*> list{&alone};
            const std::string out_id = identity(list);
            if (produced.count(out_id)) continue;
            deleted_ids.insert(out_id);
            JsonDocument out;
            merged(list, out_id, true, out);
            outputs.push_back(std::move(out));
        }
        // Old output ids no longer produced: deleted, and marked replaced.
        for (const auto& [old_id, members] : c.old_records) {
            if (produced.count(old_id)) continue;
            if (!deleted_ids.count(old_id)) {
                JsonDocument gone(rapidjson::kObjectType);
                auto& a = gone.GetAllocator();
                gone.AddMember("_id", Json(old_id.c_str(), a), a);
                gone.AddMember("$replaced", true, a);
                gone.AddMember("_deleted", true, a);
                batch.add(gone);
            }
            Json record(rapidjson::kObjectType);
            record.AddMember("_id", Json(old_id.c_str(), c.pool), c.pool);
            record.AddMember("_deleted", true, c.pool);
            state_updates.PushBack(record, c.pool);
        }
        for (const JsonDocument& out : outputs) batch.add(out);

        for (const Member& m : c.members) {
            if (memo_.size() >= kMemoLimit) memo_.clear();
            memo_[key_of(m.dataset, m.id)] = Entity(const_cast<Json&>(*m.body), c.pool).updated();
        }
    }

    // True when the kernel committed the batch just emitted: the pipe's stored offset is now its
    // token, written after `before`. A preview (GET /api/pipes/<id>/entities) commits nothing, so
    // the source's state is left alone.
    bool committed(const Host& host, const std::string& token, int64_t before) {
        if (pipe_id_.empty()) return false;
        try {
            JsonDocument key(rapidjson::kObjectType);
            key.AddMember("op", "state_get", key.GetAllocator());
            const std::string state_key = "pipe:" + pipe_id_;
            key.AddMember("key", Json(state_key.c_str(), key.GetAllocator()), key.GetAllocator());
            JsonDocument state = host.dataset_command(to_json(key));
            return state.IsObject() && string_or(state, "last_seen", "") == token &&
                   int_or(state, "updated_us", 0) >= before;
        } catch (const std::exception& e) {
            if (!warned_uncommitted_) host.warn(std::string("merge source: cannot read the pipe state: ") + e.what());
            warned_uncommitted_ = true;
            return false;
        }
    }

    std::vector<multi::DatasetRef> datasets_;
    std::string identity_;
    std::string strategy_;
    std::string if_source_empty_;
    std::string pipe_id_;
    std::string state_dataset_;
    int64_t version_ = 1;
    int64_t max_merged_ = kDefaultMaxMerged;
    std::vector<Rule> rules_;
    std::unordered_map<std::string, std::string> memo_;  // member key -> `_updated` merged this run
    bool warned_uncommitted_ = false;
};

}  // namespace

SLUICE_PLUGIN("sluice-source-merge", "1.0.0", "Merges entities of several datasets by equality rules",
              "Apache-2.0",
              sluice::source<MergeSource>("merge", SLUICE_SCHEMA_JSON,
                                          SLUICE_CAP_SUPPORTS_SINCE | SLUICE_CAP_SINCE_COMPARABLE |
                                              SLUICE_CAP_CHRONOLOGICAL))

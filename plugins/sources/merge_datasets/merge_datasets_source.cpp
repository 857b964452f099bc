// The `merge_datasets` source (reference §3.4): several datasets read together in `_ts` order,
// one entity per `_id` across them, ids unchanged.
//   strategy "latest": the version with the newest `_ts` among the datasets;
//   strategy "all":    {"_id": id, "<dataset>": <its latest live version>, ...}.
// Incremental: the continuation token holds one offset per dataset (composite_offsets.hpp).
#include "composite_offsets.hpp"

#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <map>
#include <memory>
#include <unordered_map>

namespace {

using namespace sluice;

// Removes the generated fields of a stored version, keeping `_id` and the content.
void strip_generated(Json& entity) {
    for (const char* key : {"_updated", "_previous", "_ts", "_hash", "_deleted"}) entity.RemoveMember(key);
}

class MergeDatasetsSource : public Source {
public:
    MergeDatasetsSource(const CreateArgs& args, Host&)
        : datasets_(multi::parse_datasets(args.config, "merge_datasets source")),
          strategy_(string_or(args.config, "strategy", "latest")),
          if_source_empty_(multi::if_source_empty(args)) {
        if (strategy_ != "latest" && strategy_ != "all")
            throw Error("merge_datasets source: 'strategy' must be \"latest\" or \"all\"", SLUICE_FATAL);
    }

    void read(Host& host, const char* since, uint32_t batch_size) override {
        std::vector<std::string> ids;
        for (const multi::DatasetRef& d : datasets_) ids.push_back(d.id);
        multi::CompositeOffsets offsets(ids);
        offsets.parse(since, "merge_datasets source");
        const bool full = !since || !*since;
        const size_t chunk_size = batch_size ? batch_size : 1;

        std::vector<std::unique_ptr<multi::Cursor>> cursors;
        for (size_t i = 0; i < datasets_.size(); ++i)
            cursors.push_back(std::make_unique<multi::Cursor>(datasets_[i].id, i, offsets.get(i), false));

        size_t emitted = 0;
        while (!host.cancelled()) {
            // The next chunk in (`_ts`, dataset order) across the datasets: a k-way merge of their
            // logs. Each cursor buffers at most one page, so memory is bounded by
            // datasets × batch size.
            JsonDocument chunk(rapidjson::kArrayType);
            std::vector<size_t> origin;  // dataset index of each chunk entity
            while (chunk.Size() < chunk_size) {
                multi::Cursor* next = multi::earliest(cursors, host, chunk_size);
                if (!next) break;
                chunk.PushBack(Json(next->head(), chunk.GetAllocator()), chunk.GetAllocator());
                origin.push_back(next->index());
                offsets.set(next->index(), next->pop());
            }
            if (chunk.Empty()) break;

            BatchBuilder batch;
            if (strategy_ == "latest")
                latest(host, chunk, origin, batch);
            else
                all(host, chunk, batch);
            const std::string token = offsets.token();
            host.emit(batch, token.c_str());  // also when empty: the offsets moved
            emitted += batch.count();
        }
        if (full && emitted == 0 && if_source_empty_ == "fail")
            throw Error("merge_datasets source: no entities in any of the datasets and if_source_empty is \"fail\"");
    }

private:
    // Latest live version of each id of `chunk` in every dataset: one indexed `_id` lookup per
    // dataset per chunk. [dataset index][id] -> entity (owned by `arena`).
    std::vector<std::unordered_map<std::string, const Json*>> current(const Host& host, const JsonDocument& chunk,
                                                                      JsonDocument& arena) {
        JsonDocument values(rapidjson::kArrayType);
        std::map<std::string, bool> seen;
        for (const Json& e : chunk.GetArray()) {
            const Json* id = find_member(e, "_id");
            if (id && id->IsString() && seen.emplace(id->GetString(), true).second)
                values.PushBack(Json(*id, values.GetAllocator()), values.GetAllocator());
        }
        arena.SetArray();
        std::vector<std::unordered_map<std::string, const Json*>> out(datasets_.size());
        std::vector<JsonDocument> answers(datasets_.size());
        for (size_t d = 0; d < datasets_.size(); ++d) {
            answers[d] = host.lookup(datasets_[d].id, "_id", values);
            if (!answers[d].IsArray()) throw Error("lookup in " + datasets_[d].id + " did not answer an array");
            for (Json& e : answers[d].GetArray()) arena.PushBack(Json(e, arena.GetAllocator()), arena.GetAllocator());
        }
        rapidjson::SizeType k = 0;
        for (size_t d = 0; d < datasets_.size(); ++d) {
            for (rapidjson::SizeType n = 0; n < answers[d].Size(); ++n, ++k) {
                const Json& e = arena[k];
                if (const Json* id = find_member(e, "_id"); id && id->IsString()) out[d][id->GetString()] = &e;
            }
        }
        return out;
    }

    // "latest": a version is emitted unless a newer one (later `_ts`; on a tie the later dataset)
    // of the same id exists now: that one is emitted when its own turn comes, or already was.
    void latest(const Host& host, JsonDocument& chunk, const std::vector<size_t>& origin, BatchBuilder& batch) {
        JsonDocument arena;
        auto now = current(host, chunk, arena);
        for (rapidjson::SizeType k = 0; k < chunk.Size(); ++k) {
            const Json& e = chunk[k];
            const size_t mine = origin[k];
            const Json* id = find_member(e, "_id");
            if (!id || !id->IsString()) continue;
            const int64_t ts = multi::ts_of(e);
            bool superseded = false;
            for (size_t d = 0; d < now.size() && !superseded; ++d) {
                auto it = now[d].find(id->GetString());
                if (it == now[d].end()) continue;
                const int64_t other_ts = multi::ts_of(*it->second);
                if (d == mine)
                    superseded = multi::offset_of(*it->second, datasets_[d].id) > multi::offset_of(e, datasets_[d].id);
                else
                    superseded = other_ts > ts || (other_ts == ts && d > mine);
            }
            if (!superseded) batch.add(e);
        }
    }

    // "all": one entity per id holding every dataset's latest live version under the dataset id;
    // deleted when no dataset has a live version. An id seen twice in a chunk is emitted once, at
    // its last (newest) position.
    void all(const Host& host, JsonDocument& chunk, BatchBuilder& batch) {
        JsonDocument arena;
        auto now = current(host, chunk, arena);
        std::unordered_map<std::string, rapidjson::SizeType> last;
        for (rapidjson::SizeType k = 0; k < chunk.Size(); ++k) {
            if (const Json* id = find_member(chunk[k], "_id"); id && id->IsString()) last[id->GetString()] = k;
        }
        for (rapidjson::SizeType k = 0; k < chunk.Size(); ++k) {
            const Json* idv = find_member(chunk[k], "_id");
            if (!idv || !idv->IsString() || last[idv->GetString()] != k) continue;
            const std::string id = idv->GetString();
            JsonDocument out(rapidjson::kObjectType);
            auto& a = out.GetAllocator();
            out.AddMember("_id", Json(id.c_str(), a), a);
            bool live = false;
            for (size_t d = 0; d < now.size(); ++d) {
                auto it = now[d].find(id);
                if (it == now[d].end()) continue;
                Json version(*it->second, a);
                strip_generated(version);
                out.AddMember(Json(datasets_[d].id.c_str(), a), version, a);
                live = true;
            }
            if (!live) out.AddMember("_deleted", true, a);
            batch.add(out);
        }
    }

    std::vector<multi::DatasetRef> datasets_;
    std::string strategy_;
    std::string if_source_empty_;
};

}  // namespace

SLUICE_PLUGIN("sluice-source-merge-datasets", "1.0.0", "Reads several datasets in _ts order, one entity per _id",
              "Apache-2.0",
              sluice::source<MergeDatasetsSource>("merge_datasets", SLUICE_SCHEMA_JSON,
                                                  SLUICE_CAP_SUPPORTS_SINCE | SLUICE_CAP_SINCE_COMPARABLE |
                                                      SLUICE_CAP_CHRONOLOGICAL))

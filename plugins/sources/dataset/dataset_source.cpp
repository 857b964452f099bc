// The `dataset` source: a dataset's log after `since` (reference §3.4, §2.3).
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

namespace {

class DatasetSource : public sluice::Source {
public:
    DatasetSource(const sluice::CreateArgs& args, sluice::Host&)
        : dataset_(sluice::string_or(args.config, "dataset", "")),
          include_previous_(sluice::bool_or(args.config, "include_previous_versions", false)) {
        if (dataset_.empty()) throw sluice::Error("dataset source: 'dataset' is required", SLUICE_FATAL);
    }

    void read(sluice::Host& host, const char* since, uint32_t batch_size) override {
        sluice::JsonDocument query(rapidjson::kObjectType);
        auto& a = query.GetAllocator();
        query.AddMember("dataset", sluice::Json(dataset_.c_str(), a), a);
        if (since && *since) {
            char* end = nullptr;
            const int64_t offset = std::strtoll(since, &end, 10);
            if (!end || *end) throw sluice::Error("dataset source: offset '" + std::string(since) + "' is not an integer");
            query.AddMember("since", offset, a);
        }
        query.AddMember("history", include_previous_, a);
        query.AddMember("deleted", true, a);
        const std::string query_json = sluice::to_json(query);

        // Re-batch the store's chunks to the pipe's batch size; the token of a batch is the
        // `_updated` of its last entity, so the kernel commits exactly what was processed.
        sluice::BatchBuilder batch;
        std::string last_offset;
        auto flush = [&] {
            if (batch.empty()) return;
            host.emit(batch, last_offset.c_str());
            batch.clear();
        };
        host.read_dataset(query_json, [&](std::string_view chunk) {
            sluice::JsonDocument entities = sluice::parse_json(chunk, "dataset chunk");
            for (sluice::Json& e : entities.GetArray()) {
                const sluice::Json* updated = sluice::find_member(e, "_updated");
                if (updated) last_offset = sluice::to_json(*updated);
                batch.add(e);
                if (batch.count() >= batch_size) flush();
            }
            return !host.cancelled();
        });
        flush();
    }

private:
    std::string dataset_;
    bool include_previous_;
};

}  // namespace

SLUICE_PLUGIN("sluice-source-dataset", "1.0.0", "Reads a dataset incrementally", "Apache-2.0",
              sluice::source<DatasetSource>("dataset", SLUICE_SCHEMA_JSON,
                                            SLUICE_CAP_SUPPORTS_SINCE | SLUICE_CAP_SINCE_COMPARABLE |
                                                SLUICE_CAP_CHRONOLOGICAL))

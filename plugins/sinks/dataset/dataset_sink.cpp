// The `dataset` sink: entities into a change-tracked dataset (reference §3.6, §1.5, §2.5).
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

namespace {

// Whether the batch text holds the key "_filtered" (a cheap test before parsing anything).
// Searched as `_filtered"` and then checked for its opening quote: a search for `"_filtered"`
// stops at every '"' of the batch (dozens per entity), one for '_' only at the few underscores.
bool mentions_filtered(std::string_view text) {
    constexpr std::string_view key = "_filtered\"";
    for (size_t pos = text.find(key); pos != std::string_view::npos; pos = text.find(key, pos + 1))
        if (pos > 0 && text[pos - 1] == '"') return true;
    return false;
}

class DatasetSink : public sluice::Sink {
public:
    DatasetSink(const sluice::CreateArgs& args, sluice::Host&)
        : dataset_(sluice::string_or(args.config, "dataset", "")),
          deletion_tracking_(sluice::bool_or(args.config, "deletion_tracking", true)) {
        if (dataset_.empty()) throw sluice::Error("dataset sink: 'dataset' is required", SLUICE_FATAL);
    }

    void write(sluice::Host& host, const sluice_batch& batch) override {
        // DTL `filter` marks entities `_filtered`: for a dataset sink that means "delete it".
        std::string_view text(batch.data, batch.size);
        if (!mentions_filtered(text)) {
            host.write_dataset(dataset_, batch);
            return;
        }
        sluice::Batch parsed(batch);
        for (size_t i = 0; i < parsed.size(); ++i) {
            sluice::Entity e = parsed.at(i);
            const sluice::Json* filtered = e.get("_filtered");
            if (filtered && filtered->IsBool() && filtered->GetBool()) {
                e.remove("_filtered");
                e.set("_deleted", sluice::Json(true));
            }
        }
        std::string json = parsed.to_json();
        sluice_batch rewritten{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, json.data(), json.size(), parsed.size(),
                               nullptr};
        host.write_dataset(dataset_, rewritten);
    }

    void end_run(sluice::Host& host, bool full, bool completed) override {
        if (!full || !completed || !deletion_tracking_) return;
        sluice::JsonDocument cmd(rapidjson::kObjectType);
        auto& a = cmd.GetAllocator();
        cmd.AddMember("op", "delete_unseen", a);
        cmd.AddMember("dataset", sluice::Json(dataset_.c_str(), a), a);
        host.dataset_command(sluice::to_json(cmd));
    }

private:
    std::string dataset_;
    bool deletion_tracking_;
};

}  // namespace

SLUICE_PLUGIN("sluice-sink-dataset", "1.0.0", "Writes entities to a change-tracked dataset", "Apache-2.0",
              sluice::sink<DatasetSink>("dataset", SLUICE_SCHEMA_JSON, SLUICE_CAP_DATASET_SINK))

// A complete Sluice source plugin: reads its config, emits entities in batches, and reports
// errors by throwing (the SDK turns exceptions into statuses and messages for the node).
#include <sluice/sdk.hpp>
#include <sluice_schema.h>  // SLUICE_SCHEMA_JSON, generated from schema.json by sluice_add_plugin

#include <string>
#include <vector>

namespace {

class HelloSource : public sluice::Source {
public:
    HelloSource(const sluice::CreateArgs& args, sluice::Host&)
        : greeting_(sluice::string_or(args.config, "greeting", "Hello")) {
        const sluice::Json* names = sluice::find_member(args.config, "names");
        if (!names || !names->IsArray()) throw sluice::Error("hello: 'names' must be a list", SLUICE_FATAL);
        for (const sluice::Json& name : names->GetArray()) names_.emplace_back(sluice::as_view(name));
    }

    void read(sluice::Host& host, const char* /*since*/, uint32_t batch_size) override {
        sluice::BatchBuilder batch;
        for (const std::string& name : names_) {
            sluice::JsonDocument entity(rapidjson::kObjectType);
            auto& a = entity.GetAllocator();
            entity.AddMember("_id", sluice::Json(name.c_str(), a), a);
            const std::string message = greeting_ + ", " + name + "!";
            entity.AddMember("message", sluice::Json(message.c_str(), a), a);
            batch.add(entity);
            if (batch.count() >= batch_size) {
                host.emit(batch);
                batch.clear();
            }
        }
        if (!batch.empty()) host.emit(batch);
    }

private:
    std::string greeting_;
    std::vector<std::string> names_;
};

}  // namespace

SLUICE_PLUGIN("hello-connector", "1.0.0", "Example third-party source: greets names", "Apache-2.0",
              sluice::source<HelloSource>("hello", SLUICE_SCHEMA_JSON, 0))

// The `embedded` source: entities inline in the pipe config (reference §3.4).
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

namespace {

class EmbeddedSource : public sluice::Source {
public:
    EmbeddedSource(const sluice::CreateArgs& args, sluice::Host&) {
        const sluice::Json* entities = sluice::find_member(args.config, "entities");
        if (!entities || !entities->IsArray()) throw sluice::Error("embedded: 'entities' must be a list", SLUICE_FATAL);
        for (rapidjson::SizeType i = 0; i < entities->Size(); ++i) {
            const sluice::Json& e = (*entities)[i];
            const sluice::Json* id = sluice::find_member(e, "_id");
            if (!e.IsObject() || !id || !id->IsString())
                throw sluice::Error("embedded: entities[" + std::to_string(i) + "] needs a string _id", SLUICE_FATAL);
            entities_.push_back(sluice::to_json(e));
        }
    }

    void read(sluice::Host& host, const char*, uint32_t batch_size) override {
        sluice::BatchBuilder batch;
        for (const std::string& entity : entities_) {
            batch.add_raw(entity);
            if (batch.count() >= batch_size) {
                host.emit(batch);
                batch.clear();
            }
        }
        if (!batch.empty()) host.emit(batch);
    }

private:
    std::vector<std::string> entities_;
};

}  // namespace

SLUICE_PLUGIN("sluice-source-embedded", "1.0.0", "Entities written inline in the pipe configuration", "Apache-2.0",
              sluice::source<EmbeddedSource>("embedded", SLUICE_SCHEMA_JSON, 0))

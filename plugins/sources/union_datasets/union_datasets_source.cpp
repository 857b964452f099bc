// The `union_datasets` source (reference §3.4): several datasets read one after another, each
// exhausted before the next, every `_id` prefixed "<dataset>:" unless `prefix_ids` is false.
// Incremental: the continuation token holds one offset per dataset (composite_offsets.hpp).
#include "composite_offsets.hpp"

#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <memory>

namespace {

using namespace sluice;

class UnionDatasetsSource : public Source {
public:
    UnionDatasetsSource(const CreateArgs& args, Host&)
        : datasets_(multi::parse_datasets(args.config, "union_datasets source")),
          prefix_ids_(bool_or(args.config, "prefix_ids", true)),
          include_previous_(bool_or(args.config, "include_previous_versions", false)),
          if_source_empty_(multi::if_source_empty(args)) {}

    void read(Host& host, const char* since, uint32_t batch_size) override {
        std::vector<std::string> ids;
        for (const multi::DatasetRef& d : datasets_) ids.push_back(d.id);
        multi::CompositeOffsets offsets(ids);
        offsets.parse(since, "union_datasets source");
        const bool full = !since || !*since;
        const size_t page_size = batch_size ? batch_size : 1;

        BatchBuilder batch;
        size_t emitted = 0;
        std::string token;
        auto flush = [&] {
            if (batch.empty()) return;
            token = offsets.token();
            host.emit(batch, token.c_str());
            emitted += batch.count();
            batch.clear();
        };

        // Each dataset in turn, a page (at most one batch) at a time: memory stays bounded by the
        // batch size whatever the datasets hold.
        for (size_t i = 0; i < datasets_.size() && !host.cancelled(); ++i) {
            const std::string& dataset = datasets_[i].id;
            JsonDocument page;
            while (!host.cancelled()) {
                const size_t got = multi::read_page(host, dataset, offsets.get(i), page_size, include_previous_, page);
                for (Json& e : page.GetArray()) {
                    offsets.set(i, multi::offset_of(e, dataset));
                    if (prefix_ids_) {
                        Entity entity(e, page.GetAllocator());
                        const std::optional<std::string_view> id = entity.id();
                        if (!id) throw Error("dataset " + dataset + " holds an entity without a string _id");
                        entity.set_string("_id", dataset + ":" + std::string(*id));
                    }
                    batch.add(e);
                    if (batch.count() >= page_size) flush();
                }
                if (got < page_size) break;
            }
        }
        flush();
        if (full && emitted == 0 && if_source_empty_ == "fail")
            throw Error("union_datasets source: no entities in any of the datasets and if_source_empty is \"fail\"");
    }

private:
    std::vector<multi::DatasetRef> datasets_;
    bool prefix_ids_;
    bool include_previous_;
    std::string if_source_empty_;
};

}  // namespace

SLUICE_PLUGIN("sluice-source-union-datasets", "1.0.0", "Reads several datasets incrementally as one stream",
              "Apache-2.0",
              sluice::source<UnionDatasetsSource>("union_datasets", SLUICE_SCHEMA_JSON,
                                                  SLUICE_CAP_SUPPORTS_SINCE | SLUICE_CAP_SINCE_COMPARABLE |
                                                      SLUICE_CAP_CHRONOLOGICAL))

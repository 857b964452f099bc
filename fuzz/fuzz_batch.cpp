// The SDK's entity batch decoder (sluice::Batch, what every plugin gets from the kernel) and the
// canonical form + hash the storage computes per entity. Any input: no crash, no UB.
#include <sluice/sdk.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    sluice_batch raw{};
    raw.struct_size = sizeof raw;
    raw.format = SLUICE_FORMAT_JSON_ARRAY;
    raw.data = reinterpret_cast<const char*>(data);
    raw.size = size;
    try {
        sluice::Batch batch(raw);
        for (size_t i = 0; i < batch.size(); ++i) {
            const sluice::Json& entity = batch.document()[static_cast<rapidjson::SizeType>(i)];
            if (!entity.IsObject()) continue;
            (void)sluice::canonical_content(entity);
            (void)sluice::entity_hash(entity);
        }
        (void)batch.to_json();
    } catch (const std::exception&) {
        // Refusing bad input is the point; crashing is not.
    }
    return 0;
}

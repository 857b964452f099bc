// The SDK's entity batch decoder (sluice::Batch, what every plugin gets from the kernel) and the
// canonical form + hash the storage computes per entity. Any input: no crash, no UB. And the
// scans that read every batch without parsing it must agree with the parse: the postgres
// storage's raw split (raw_entities.hpp) finds exactly the parser's entities and `_id`s in any
// batch the parser accepts (else an unchanged-batch answer could rest on the wrong bytes).
#include "raw_entities.hpp"

#include <sluice/sdk.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

void check_raw_split(const char* data, size_t size) {
    const std::string text(data, size);
    std::vector<sluice::store::RawEntity> raw;
    if (!sluice::store::split_raw_entities(text, raw)) return;
    if (!sluice::find_unsafe_json_number(text).empty()) return;  // never parsed by the storage
    // Numbers as their text: this checks where the entities and ids are, not RapidJSON's
    // number conversion (whose known failures find_unsafe_json_number refuses).
    constexpr unsigned kFlags = rapidjson::kParseNumbersAsStringsFlag;
    sluice::JsonDocument doc;
    doc.Parse<kFlags>(text.data(), text.size());
    if (doc.HasParseError()) return;  // refused by the parse that follows a failed lookup
    if (!doc.IsArray() || doc.Size() != raw.size()) std::abort();
    for (size_t i = 0; i < raw.size(); ++i) {
        const sluice::Json& element = doc[static_cast<rapidjson::SizeType>(i)];
        sluice::JsonDocument one;
        one.Parse<kFlags>(raw[i].text.data(), raw[i].text.size());
        if (one.HasParseError() || sluice::to_json(one) != sluice::to_json(element)) std::abort();
        const sluice::Json* id = sluice::find_member(element, "_id");
        if (!id || !id->IsString()) std::abort();
        if (raw[i].id.find('\\') == std::string_view::npos && sluice::as_view(*id) != raw[i].id) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    check_raw_split(reinterpret_cast<const char*>(data), size);
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

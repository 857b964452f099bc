// Configuration upload: the same depth/number checks, parse and whole-config validation PUT /api/config
// runs, against the built-in plugins' schemas ($SLUICE_FUZZ_PLUGIN_DIR, a build's
// lib/sluice/plugins). Invalid configs throw ConfigError; nothing may crash.
#include <sluice/kernel/config.hpp>
#include <sluice/kernel/host_context.hpp>
#include <sluice/kernel/plugin_registry.hpp>

#include "api_internal.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

using namespace sluice::kernel;

namespace {
PluginRegistry& registry() {
    static PluginRegistry* r = [] {
        auto* reg = new PluginRegistry(host_api());
        if (const char* dir = std::getenv("SLUICE_FUZZ_PLUGIN_DIR")) reg->load_directory(dir);
        return reg;
    }();
    return *r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    PluginRegistry& plugins = registry();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        api::check_json_depth(text);
        api::check_json_numbers(text);
        sluice::JsonDocument doc;
        doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
        if (doc.HasParseError()) return 0;
        sluice::JsonDocument variables(rapidjson::kObjectType);
        variables.AddMember("known", "value", variables.GetAllocator());
        (void)NodeConfig::build(doc, plugins, &variables);
    } catch (const std::exception&) {
    }
    return 0;
}

// Loads plugin shared libraries through Boost.DLL, checks them against the C contract and keeps
// a registry of their components by (kind, type name).
#pragma once

#include <sluice/plugin.h>

#include <rapidjson/document.h>
#include <rapidjson/schema.h>

#include <boost/dll/shared_library.hpp>

#include <cstddef>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::kernel {

// Sizes of the ABI 1.0 structs: anything smaller was not built against a complete 1.x header.
inline constexpr size_t kDescriptorMinSize = offsetof(sluice_plugin_descriptor, component_count) + sizeof(size_t);
inline constexpr size_t kComponentMinSize = offsetof(sluice_component, vtable) + sizeof(const void*);
inline constexpr size_t kSourceVtableMinSize = offsetof(sluice_source_vtable, read) + sizeof(void*);
inline constexpr size_t kTransformVtableMinSize = offsetof(sluice_transform_vtable, transform) + sizeof(void*);
inline constexpr size_t kSinkVtableMinSize = offsetof(sluice_sink_vtable, end_run) + sizeof(void*);
inline constexpr size_t kStorageVtableMinSize = offsetof(sluice_storage_vtable, command) + sizeof(void*);

const char* kind_name(uint32_t kind);

struct PluginInfo;

struct ComponentInfo {
    uint32_t kind = 0;
    std::string type_name;
    std::string schema_text;
    uint64_t capabilities = 0;
    const void* vtable = nullptr;  // points into the plugin's static data (never unloaded)
    const PluginInfo* plugin = nullptr;
    std::shared_ptr<rapidjson::SchemaDocument> schema;  // compiled config schema

    bool has(uint64_t capability) const { return (capabilities & capability) != 0; }
    const sluice_source_vtable* source() const { return static_cast<const sluice_source_vtable*>(vtable); }
    const sluice_sink_vtable* sink() const { return static_cast<const sluice_sink_vtable*>(vtable); }
    const sluice_transform_vtable* transform() const { return static_cast<const sluice_transform_vtable*>(vtable); }
    const sluice_storage_vtable* storage() const { return static_cast<const sluice_storage_vtable*>(vtable); }
};

struct PluginInfo {
    std::string path;
    std::string name;
    std::string version;
    std::string description;
    std::string license;
    uint16_t abi_major = 0;
    uint16_t abi_minor = 0;
    std::vector<const ComponentInfo*> components;
};

struct PluginRefusal {
    std::string path;
    std::string reason;
};

class PluginRegistry {
public:
    explicit PluginRegistry(const sluice_host_api* host);
    PluginRegistry(const PluginRegistry&) = delete;
    PluginRegistry& operator=(const PluginRegistry&) = delete;

    // Loads one library. Returns an empty string on success, else the reason it was refused
    // (also logged and kept in refusals()). A refused plugin registers nothing.
    std::string load_file(const std::filesystem::path& path);
    // Loads every *.so in `dir` (sorted by name). Returns the number loaded.
    size_t load_directory(const std::filesystem::path& dir);

    const ComponentInfo* find(uint32_t kind, const std::string& type_name) const;
    std::vector<const ComponentInfo*> components(uint32_t kind) const;
    std::vector<const PluginInfo*> plugins() const;
    std::vector<PluginRefusal> refusals() const;
    const sluice_host_api* host() const { return host_; }

private:
    std::string refuse(const std::filesystem::path& path, const std::string& reason);

    const sluice_host_api* host_;
    mutable std::mutex mutex_;
    // Libraries stay loaded for the life of the process: plugin code and static data may be
    // referenced by anything the plugin created. deque keeps element addresses stable.
    std::vector<boost::dll::shared_library> libraries_;
    std::deque<PluginInfo> plugins_;
    std::deque<ComponentInfo> components_;
    std::map<std::pair<uint32_t, std::string>, const ComponentInfo*> by_type_;
    std::vector<PluginRefusal> refusals_;
};

}  // namespace sluice::kernel

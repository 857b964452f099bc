#include <sluice/kernel/plugin_registry.hpp>

#include <Poco/Logger.h>

#include <algorithm>
#include <set>

namespace sluice::kernel {

namespace fs = std::filesystem;

const char* kind_name(uint32_t kind) {
    switch (kind) {
        case SLUICE_KIND_SOURCE: return "source";
        case SLUICE_KIND_SINK: return "sink";
        case SLUICE_KIND_TRANSFORM: return "transform";
        case SLUICE_KIND_STORAGE: return "storage";
        default: return "unknown";
    }
}

namespace {

// Checks a component's vtable: its size and the callbacks that are not optional.
std::string check_vtable(const sluice_component& c) {
    const auto size = *static_cast<const uint32_t*>(c.vtable);
    auto too_small = [&](size_t min) {
        return "vtable of " + std::string(kind_name(c.kind)) + " '" + c.type_name + "' has struct_size " +
               std::to_string(size) + ", smaller than the ABI 1.0 minimum " + std::to_string(min);
    };
    switch (c.kind) {
        case SLUICE_KIND_SOURCE: {
            if (size < kSourceVtableMinSize) return too_small(kSourceVtableMinSize);
            auto* v = static_cast<const sluice_source_vtable*>(c.vtable);
            if (!v->create || !v->destroy || !v->read) return "source '" + std::string(c.type_name) + "' lacks create/destroy/read";
            break;
        }
        case SLUICE_KIND_TRANSFORM: {
            if (size < kTransformVtableMinSize) return too_small(kTransformVtableMinSize);
            auto* v = static_cast<const sluice_transform_vtable*>(c.vtable);
            if (!v->create || !v->destroy || !v->transform)
                return "transform '" + std::string(c.type_name) + "' lacks create/destroy/transform";
            break;
        }
        case SLUICE_KIND_SINK: {
            if (size < kSinkVtableMinSize) return too_small(kSinkVtableMinSize);
            auto* v = static_cast<const sluice_sink_vtable*>(c.vtable);
            if (!v->create || !v->destroy || !v->write) return "sink '" + std::string(c.type_name) + "' lacks create/destroy/write";
            break;
        }
        case SLUICE_KIND_STORAGE: {
            if (size < kStorageVtableMinSize) return too_small(kStorageVtableMinSize);
            auto* v = static_cast<const sluice_storage_vtable*>(c.vtable);
            if (!v->open || !v->close || !v->write || !v->read || !v->lookup || !v->command)
                return "storage '" + std::string(c.type_name) + "' lacks one of open/close/write/read/lookup/command";
            break;
        }
        default:
            return "component '" + std::string(c.type_name) + "' has unknown kind " + std::to_string(c.kind);
    }
    return {};
}

}  // namespace

PluginRegistry::PluginRegistry(const sluice_host_api* host) : host_(host) {}

std::string PluginRegistry::refuse(const fs::path& path, const std::string& reason) {
    Poco::Logger::get("sluice.plugins").error("refused plugin " + path.string() + ": " + reason);
    refusals_.push_back({path.string(), reason});
    return reason;
}

std::string PluginRegistry::load_file(const fs::path& path) {
    std::lock_guard<std::mutex> lock(mutex_);
    boost::dll::shared_library library;
    try {
        library.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        return refuse(path, std::string("cannot load the library: ") + e.what());
    }
    if (!library.has(SLUICE_ENTRY_SYMBOL)) {
        return refuse(path, "no entry symbol '" SLUICE_ENTRY_SYMBOL "' (not a Sluice plugin, or built without SLUICE_PLUGIN)");
    }
    auto entry = library.get<const sluice_plugin_descriptor*(const sluice_host_api*)>(SLUICE_ENTRY_SYMBOL);
    // From here on the plugin's code has run: keep the library loaded even if refused, in case
    // it registered anything (atexit handlers, threads) that refers to its code.
    libraries_.push_back(library);
    const sluice_plugin_descriptor* d = nullptr;
    try {
        d = entry(host_);
    } catch (...) {
        return refuse(path, "the entry point threw an exception");
    }
    if (!d) return refuse(path, "the entry point returned no descriptor (the plugin declined this host)");
    if (d->struct_size < offsetof(sluice_plugin_descriptor, name))
        return refuse(path, "descriptor struct_size " + std::to_string(d->struct_size) + " is too small to read");
    const std::string abi = std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor);
    const std::string host_abi = std::to_string(SLUICE_ABI_MAJOR) + "." + std::to_string(SLUICE_ABI_MINOR);
    if (d->abi_major != SLUICE_ABI_MAJOR)
        return refuse(path, "built for plugin ABI " + abi + ", but this node speaks ABI " + host_abi +
                                " (a different major version is incompatible; rebuild the plugin against SDK " +
                                std::to_string(SLUICE_ABI_MAJOR) + ")");
    if (d->abi_minor > SLUICE_ABI_MINOR)
        return refuse(path, "built for plugin ABI " + abi + ", newer than this node's ABI " + host_abi +
                                " (upgrade the node, or rebuild the plugin against an older SDK)");
    if (d->struct_size < kDescriptorMinSize)
        return refuse(path, "descriptor struct_size " + std::to_string(d->struct_size) +
                                " is smaller than the ABI 1.0 minimum " + std::to_string(kDescriptorMinSize));
    if (!d->name || !*d->name) return refuse(path, "descriptor has no plugin name");
    for (const PluginInfo& p : plugins_) {
        if (p.name == d->name) return refuse(path, "plugin name '" + p.name + "' is already loaded from " + p.path);
    }
    if (d->component_count > 0 && !d->components) return refuse(path, "descriptor lists components but no array");

    // Validate every component before registering any: a refused plugin registers nothing.
    std::vector<ComponentInfo> pending;
    std::set<std::pair<uint32_t, std::string>> seen;
    for (size_t i = 0; i < d->component_count; ++i) {
        const sluice_component* c = d->components[i];
        const std::string where = "component #" + std::to_string(i);
        if (!c) return refuse(path, where + " is null");
        if (c->struct_size < kComponentMinSize)
            return refuse(path, where + " has struct_size " + std::to_string(c->struct_size) +
                                    ", smaller than the ABI 1.0 minimum " + std::to_string(kComponentMinSize));
        if (!c->type_name || !*c->type_name) return refuse(path, where + " has no type name");
        if (!c->vtable) return refuse(path, where + " ('" + c->type_name + "') has no vtable");
        if (std::string problem = check_vtable(*c); !problem.empty()) return refuse(path, problem);
        auto key = std::make_pair(c->kind, std::string(c->type_name));
        if (!seen.insert(key).second)
            return refuse(path, std::string(kind_name(c->kind)) + " type '" + c->type_name + "' is declared twice");
        if (auto it = by_type_.find(key); it != by_type_.end())
            return refuse(path, std::string(kind_name(c->kind)) + " type '" + c->type_name +
                                    "' is already provided by plugin '" + it->second->plugin->name + "' (" +
                                    it->second->plugin->path + ")");
        ComponentInfo info;
        info.kind = c->kind;
        info.type_name = c->type_name;
        info.schema_text = c->config_schema ? c->config_schema : "{}";
        info.capabilities = c->capabilities;
        info.vtable = c->vtable;
        rapidjson::Document schema_doc;
        schema_doc.Parse(info.schema_text.c_str());
        if (schema_doc.HasParseError() || !schema_doc.IsObject())
            return refuse(path, std::string(kind_name(c->kind)) + " '" + c->type_name +
                                    "' has a config schema that is not a JSON object (parse error at byte " +
                                    std::to_string(schema_doc.GetErrorOffset()) + ")");
        info.schema = std::make_shared<rapidjson::SchemaDocument>(schema_doc);
        pending.push_back(std::move(info));
    }

    PluginInfo& plugin = plugins_.emplace_back();
    plugin.path = fs::absolute(path).lexically_normal().string();
    plugin.name = d->name;
    plugin.version = d->version ? d->version : "";
    plugin.description = d->description ? d->description : "";
    plugin.license = d->license ? d->license : "";
    plugin.abi_major = d->abi_major;
    plugin.abi_minor = d->abi_minor;
    for (ComponentInfo& info : pending) {
        info.plugin = &plugin;
        ComponentInfo& stored = components_.emplace_back(std::move(info));
        by_type_[{stored.kind, stored.type_name}] = &stored;
        plugin.components.push_back(&stored);
    }
    Poco::Logger::get("sluice.plugins")
        .information("loaded plugin " + plugin.name + " " + plugin.version + " (ABI " + abi + ", " +
                     std::to_string(plugin.components.size()) + " components) from " + plugin.path);
    return {};
}

size_t PluginRegistry::load_directory(const fs::path& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        Poco::Logger::get("sluice.plugins").warning("plugin directory " + dir.string() + " does not exist");
        return 0;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.is_regular_file() && entry.path().extension() == ".so") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    size_t loaded = 0;
    for (const fs::path& file : files) {
        if (load_file(file).empty()) ++loaded;
    }
    return loaded;
}

const ComponentInfo* PluginRegistry::find(uint32_t kind, const std::string& type_name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = by_type_.find({kind, type_name});
    return it == by_type_.end() ? nullptr : it->second;
}

std::vector<const ComponentInfo*> PluginRegistry::components(uint32_t kind) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<const ComponentInfo*> out;
    for (const auto& [key, info] : by_type_) {
        if (key.first == kind) out.push_back(info);
    }
    return out;
}

std::vector<const PluginInfo*> PluginRegistry::plugins() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<const PluginInfo*> out;
    for (const PluginInfo& p : plugins_) out.push_back(&p);
    return out;
}

std::vector<PluginRefusal> PluginRegistry::refusals() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return refusals_;
}

}  // namespace sluice::kernel

// sluice/testing.hpp — a fake host for unit-testing plugins with no server running.
//
//   sluice::testing::FakeHost host;
//   sluice::testing::LoadedPlugin plugin(path_to_my_plugin_so, host);
//   auto source = plugin.create(SLUICE_KIND_SOURCE, "hello", R"({"type":"hello"})");
//   CPPUNIT_ASSERT_EQUAL(SLUICE_OK, source.read());
//   CPPUNIT_ASSERT_EQUAL(size_t(1), host.emitted().Size());
//
// It drives the real shared library through the same C contract the kernel uses (dlopen +
// sluice_plugin_entry), so what passes here is what the node will see. Link with ${CMAKE_DL_LIBS}.
#pragma once

#include <sluice/sdk.hpp>

#include <dlfcn.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace sluice::testing {

class FakeHost {
public:
    struct LogLine {
        int32_t level;
        std::string message;
    };

    FakeHost() { emitted_.SetArray(); }
    FakeHost(const FakeHost&) = delete;
    FakeHost& operator=(const FakeHost&) = delete;

    // The table to hand to a plugin's entry point.
    static const sluice_host_api* api() {
        static const sluice_host_api table{sizeof(sluice_host_api), SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR,
                                           &log, &set_error, &emit_batch, &set_continuation, &get_secret,
                                           &lookup, &is_cancelled, &metric, &write_dataset, &read_dataset,
                                           &dataset_command};
        return &table;
    }
    sluice_host_context* context() { return reinterpret_cast<sluice_host_context*>(this); }

    // ---- what the plugin did ----
    const std::vector<LogLine>& logs() const { return logs_; }
    const std::string& last_error() const { return last_error_; }
    JsonDocument& emitted() { return emitted_; }  // every emitted entity, in order
    size_t emitted_batches() const { return emitted_batches_; }
    const std::vector<std::string>& continuations() const { return continuations_; }
    const std::map<std::string, double>& metrics() const { return metrics_; }
    // Entities written per dataset (as written; the fake applies no write rule).
    std::vector<std::string>& dataset(const std::string& name) { return datasets_[name]; }

    // ---- what the plugin will see ----
    void set_secret(const std::string& name, const std::string& value) { secrets_[name] = value; }
    void cancel() { cancelled_ = true; }
    // Makes the next `n` emit_batch calls answer `status` (e.g. to test a stopping downstream).
    void fail_emits(int32_t status, int n = 1) { emit_failure_ = status; emit_failures_left_ = n; }
    void clear() {
        logs_.clear();
        last_error_.clear();
        emitted_.SetArray();
        emitted_batches_ = 0;
        continuations_.clear();
    }

private:
    static FakeHost& self(sluice_host_context* ctx) { return *reinterpret_cast<FakeHost*>(ctx); }

    static void log(sluice_host_context* ctx, int32_t level, const char* message) {
        if (ctx) self(ctx).logs_.push_back({level, message ? message : ""});
    }
    static void set_error(sluice_host_context* ctx, const char* message) {
        if (ctx) self(ctx).last_error_ = message ? message : "";
    }
    static int32_t emit_batch(sluice_host_context* ctx, const sluice_batch* batch) {
        FakeHost& host = self(ctx);
        if (host.emit_failures_left_ > 0) {
            --host.emit_failures_left_;
            return host.emit_failure_;
        }
        JsonDocument doc;
        doc.Parse<rapidjson::kParseFullPrecisionFlag>(batch->data, batch->size);
        if (doc.HasParseError() || !doc.IsArray()) {
            host.last_error_ = "fake host: emitted batch is not a JSON array";
            return SLUICE_ERROR;
        }
        for (auto& entity : doc.GetArray()) host.emitted_.PushBack(Json(entity, host.emitted_.GetAllocator()),
                                                                   host.emitted_.GetAllocator());
        ++host.emitted_batches_;
        if (batch->continuation) host.continuations_.push_back(batch->continuation);
        return SLUICE_OK;
    }
    static void set_continuation(sluice_host_context* ctx, const char* token) {
        self(ctx).continuations_.push_back(token ? token : "");
    }
    static int32_t get_secret(sluice_host_context* ctx, const char* name, sluice_receive_fn receive, void* user) {
        auto& secrets = self(ctx).secrets_;
        auto it = secrets.find(name);
        if (it == secrets.end()) return SLUICE_ERROR;
        receive(user, it->second.data(), it->second.size());
        return SLUICE_OK;
    }
    static int32_t lookup(sluice_host_context* ctx, const char* dataset, const char* property,
                          const char* values_json, sluice_receive_fn receive, void* user) {
        JsonDocument values = parse_json(values_json, "lookup values");
        BatchBuilder out;
        for (const std::string& text : self(ctx).datasets_[dataset]) {
            JsonDocument entity = parse_json(text, "entity");
            const Json* v = find_member(entity, property);
            if (!v) continue;
            for (const Json& wanted : values.GetArray()) {
                if (*v == wanted) {
                    out.add_raw(text);
                    break;
                }
            }
        }
        std::string_view text = out.text();
        receive(user, text.data(), text.size());
        return SLUICE_OK;
    }
    static int32_t is_cancelled(sluice_host_context* ctx) { return self(ctx).cancelled_ ? 1 : 0; }
    static void metric(sluice_host_context* ctx, const char* name, double value) { self(ctx).metrics_[name] += value; }
    static int32_t write_dataset(sluice_host_context* ctx, const char* dataset, const sluice_batch* batch,
                                 const char*, sluice_receive_fn result, void* user) {
        JsonDocument doc;
        doc.Parse<rapidjson::kParseFullPrecisionFlag>(batch->data, batch->size);
        if (doc.HasParseError() || !doc.IsArray()) return SLUICE_ERROR;
        auto& rows = self(ctx).datasets_[dataset];
        for (const Json& entity : doc.GetArray()) rows.push_back(to_json(entity));
        std::string counts = "{\"written\":" + std::to_string(doc.Size()) + ",\"unchanged\":0}";
        if (result) result(user, counts.data(), counts.size());
        return SLUICE_OK;
    }
    static int32_t read_dataset(sluice_host_context* ctx, const char* query_json, sluice_receive_fn receive,
                                void* user) {
        JsonDocument query = parse_json(query_json, "read query");
        BatchBuilder out;
        for (const std::string& text : self(ctx).datasets_[string_or(query, "dataset", "")]) out.add_raw(text);
        std::string_view text = out.text();
        receive(user, text.data(), text.size());
        return SLUICE_OK;
    }
    static int32_t dataset_command(sluice_host_context*, const char*, sluice_receive_fn, void*) {
        return SLUICE_ERROR;  // not modelled by the fake host
    }

    std::vector<LogLine> logs_;
    std::string last_error_;
    JsonDocument emitted_;
    size_t emitted_batches_ = 0;
    std::vector<std::string> continuations_;
    std::map<std::string, std::string> secrets_;
    std::map<std::string, std::vector<std::string>> datasets_;
    std::map<std::string, double> metrics_;
    bool cancelled_ = false;
    int32_t emit_failure_ = SLUICE_OK;
    int emit_failures_left_ = 0;
};

// One component instance created through the C contract; destroyed with the object.
class Instance {
public:
    Instance(const sluice_component* component, void* handle, FakeHost& host)
        : component_(component), handle_(handle), host_(&host) {}
    Instance(Instance&& other) noexcept
        : component_(other.component_), handle_(other.handle_), host_(other.host_) { other.handle_ = nullptr; }
    Instance(const Instance&) = delete;
    ~Instance() {
        if (!handle_) return;
        switch (component_->kind) {
            case SLUICE_KIND_SOURCE: static_cast<const sluice_source_vtable*>(component_->vtable)->destroy(handle_); break;
            case SLUICE_KIND_SINK: static_cast<const sluice_sink_vtable*>(component_->vtable)->destroy(handle_); break;
            case SLUICE_KIND_TRANSFORM: static_cast<const sluice_transform_vtable*>(component_->vtable)->destroy(handle_); break;
            case SLUICE_KIND_STORAGE: static_cast<const sluice_storage_vtable*>(component_->vtable)->close(handle_); break;
        }
    }
    bool valid() const { return handle_ != nullptr; }
    void* handle() const { return handle_; }

    int32_t read(const char* since = nullptr, uint32_t batch_size = 100) {
        return static_cast<const sluice_source_vtable*>(component_->vtable)->read(handle_, host_->context(), since, batch_size);
    }
    int32_t transform(const std::string& entities_json) {
        sluice_batch batch = make_batch(entities_json);
        return static_cast<const sluice_transform_vtable*>(component_->vtable)->transform(handle_, host_->context(), &batch);
    }
    int32_t write(const std::string& entities_json) {
        sluice_batch batch = make_batch(entities_json);
        return static_cast<const sluice_sink_vtable*>(component_->vtable)->write(handle_, host_->context(), &batch);
    }

    static sluice_batch make_batch(const std::string& entities_json) {
        return sluice_batch{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, entities_json.data(),
                            entities_json.size(), 0, nullptr};
    }

private:
    const sluice_component* component_;
    void* handle_;
    FakeHost* host_;
};

// A plugin library opened with dlopen and entered with the fake host's table.
class LoadedPlugin {
public:
    LoadedPlugin(const std::string& path, FakeHost& host) : host_(&host) {
        handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle_) throw std::runtime_error(std::string("dlopen failed: ") + dlerror());
        auto entry = reinterpret_cast<sluice_plugin_entry_fn>(dlsym(handle_, SLUICE_ENTRY_SYMBOL));
        if (!entry) throw std::runtime_error(path + ": no " SLUICE_ENTRY_SYMBOL " symbol");
        descriptor_ = entry(FakeHost::api());
        if (!descriptor_) throw std::runtime_error(path + ": entry point returned no descriptor");
    }
    // The library stays loaded on purpose (as in the kernel): static data may still be referenced.
    const sluice_plugin_descriptor& descriptor() const { return *descriptor_; }

    const sluice_component* component(uint32_t kind, const std::string& type_name) const {
        for (size_t i = 0; i < descriptor_->component_count; ++i) {
            const sluice_component* c = descriptor_->components[i];
            if (c->kind == kind && type_name == c->type_name) return c;
        }
        throw std::runtime_error("no component " + type_name);
    }
    // Creates an instance; check valid() and host.last_error() for a refused config.
    Instance create(uint32_t kind, const std::string& type_name, const std::string& config_json,
                    const char* system_json = nullptr) const {
        const sluice_component* c = component(kind, type_name);
        sluice_create_args args{sizeof(sluice_create_args), 0, config_json.c_str(), system_json, "test-pipe", nullptr};
        void* handle = nullptr;
        switch (kind) {
            case SLUICE_KIND_SOURCE: handle = static_cast<const sluice_source_vtable*>(c->vtable)->create(&args, host_->context()); break;
            case SLUICE_KIND_SINK: handle = static_cast<const sluice_sink_vtable*>(c->vtable)->create(&args, host_->context()); break;
            case SLUICE_KIND_TRANSFORM: handle = static_cast<const sluice_transform_vtable*>(c->vtable)->create(&args, host_->context()); break;
            case SLUICE_KIND_STORAGE: handle = static_cast<const sluice_storage_vtable*>(c->vtable)->open(&args, host_->context()); break;
        }
        return Instance(c, handle, *host_);
    }

private:
    void* handle_ = nullptr;
    const sluice_plugin_descriptor* descriptor_ = nullptr;
    FakeHost* host_;
};

}  // namespace sluice::testing

// sluice/sdk.hpp — the C++17 plugin layer over sluice/plugin.h (header-only).
//
// Write a plugin by deriving from Source, Transform, Sink or Storage and registering the classes
// with SLUICE_PLUGIN(...). The macro generates the C entry point and `noexcept` trampolines:
// exceptions never cross the boundary, they become a status + message (sluice::Error carries an
// explicit status; any other std::exception is SLUICE_ERROR; anything else SLUICE_FATAL).
//
//   class Hello : public sluice::Source {
//   public:
//       Hello(const sluice::CreateArgs& args, sluice::Host& host) {}
//       void read(sluice::Host& host, const char* since, uint32_t batch_size) override {
//           sluice::BatchBuilder batch;
//           batch.add_raw(R"({"_id":"hello"})");
//           host.emit(batch);
//       }
//   };
//   SLUICE_PLUGIN("hello", "1.0.0", "Says hello", "MIT",
//                 sluice::source<Hello>("hello", SLUICE_SCHEMA_JSON, 0))
#pragma once

#include <sluice/entity.hpp>
#include <sluice/plugin.h>

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// True when the host table `api` is new enough to have `field` (appended fields check this).
#define SLUICE_HOST_HAS(api, field) \
    (offsetof(sluice_host_api, field) + sizeof((api)->field) <= (api)->struct_size)

namespace sluice {

// Thrown by plugin code to report a failure with a specific status.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, int32_t status = SLUICE_ERROR)
        : std::runtime_error(message), status_(status) {}
    int32_t status() const { return status_; }

private:
    int32_t status_;
};

// A transient failure: the kernel may retry the call.
struct RetryError : Error {
    explicit RetryError(const std::string& message) : Error(message, SLUICE_RETRY) {}
};

namespace detail {
// The host table, stored once by the entry point. Each plugin library has its own copy (plugins
// are built with hidden visibility and loaded RTLD_LOCAL).
inline const sluice_host_api* g_host_api = nullptr;

inline int32_t append_to_string(void* user, const char* data, size_t size) {
    static_cast<std::string*>(user)->append(data, size);
    return 0;
}
}  // namespace detail

// A batch under construction: a JSON array built incrementally (no DOM needed to emit).
class BatchBuilder {
public:
    BatchBuilder() { text_.push_back('['); }

    // Appends one entity given as serialized JSON object text.
    void add_raw(std::string_view entity_json) {
        if (count_ > 0) text_.push_back(',');
        text_.append(entity_json);
        ++count_;
    }
    void add(const Json& entity) { add_raw(to_json(entity)); }

    size_t count() const { return count_; }
    bool empty() const { return count_ == 0; }
    void clear() {
        text_.assign(1, '[');
        count_ = 0;
    }
    // The finished JSON array text (valid until the next mutation).
    std::string_view text() {
        finished_ = text_;
        finished_.push_back(']');
        return finished_;
    }

private:
    std::string text_;
    std::string finished_;
    size_t count_ = 0;
};

// A parsed batch: owns a JSON array document of entities.
class Batch {
public:
    Batch() { doc_.SetArray(); }
    explicit Batch(const sluice_batch& raw) {
        if (raw.format != SLUICE_FORMAT_JSON_ARRAY)
            throw Error("unsupported batch format " + std::to_string(raw.format));
        try {
            check_json_numbers(std::string_view(raw.data, raw.size), "batch");
        } catch (const std::invalid_argument& e) {
            throw Error(e.what());
        }
        doc_.Parse<rapidjson::kParseFullPrecisionFlag>(raw.data, raw.size);
        if (doc_.HasParseError())
            throw Error("batch: malformed JSON at byte " + std::to_string(doc_.GetErrorOffset()));
        if (!doc_.IsArray()) throw Error("batch: expected a JSON array of entities");
    }
    explicit Batch(std::string_view json) {
        doc_ = parse_json(json, "batch");
        if (!doc_.IsArray()) throw Error("batch: expected a JSON array of entities");
    }

    size_t size() const { return doc_.Size(); }
    Entity at(size_t i) { return Entity(doc_[static_cast<rapidjson::SizeType>(i)], doc_.GetAllocator()); }
    JsonDocument& document() { return doc_; }
    JsonAllocator& allocator() { return doc_.GetAllocator(); }
    std::string to_json() const { return sluice::to_json(doc_); }

private:
    JsonDocument doc_;
};

// The host as seen by one call: the kernel's API table plus the call's context.
class Host {
public:
    Host(const sluice_host_api* api, sluice_host_context* ctx) : api_(api), ctx_(ctx) {}

    const sluice_host_api* api() const { return api_; }
    sluice_host_context* context() const { return ctx_; }

    void log(int32_t level, const std::string& message) const { api_->log(ctx_, level, message.c_str()); }
    void info(const std::string& message) const { log(SLUICE_LOG_INFO, message); }
    void warn(const std::string& message) const { log(SLUICE_LOG_WARNING, message); }
    void set_error(const std::string& message) const { api_->set_error(ctx_, message.c_str()); }

    // Hands a batch downstream; throws sluice::Error if the kernel asks the producer to stop.
    void emit(std::string_view json_array, size_t count, const char* continuation = nullptr) const {
        sluice_batch raw{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, json_array.data(),
                         json_array.size(), count, continuation};
        int32_t status = api_->emit_batch(ctx_, &raw);
        if (status != SLUICE_OK) throw Error("downstream stopped the batch", status);
    }
    void emit(BatchBuilder& batch, const char* continuation = nullptr) const {
        emit(batch.text(), batch.count(), continuation);
    }
    void emit(const Batch& batch, const char* continuation = nullptr) const {
        std::string text = batch.to_json();
        emit(text, batch.size(), continuation);
    }
    void set_continuation(const std::string& token) const { api_->set_continuation(ctx_, token.c_str()); }

    std::string secret(const std::string& name) const {
        std::string value;
        if (api_->get_secret(ctx_, name.c_str(), &detail::append_to_string, &value) != SLUICE_OK)
            throw Error("unknown secret '" + name + "'");
        return value;
    }
    // Latest live entities of `dataset` whose `property` equals one of `values` (a JSON array).
    JsonDocument lookup(const std::string& dataset, const std::string& property, const Json& values) const {
        std::string values_json = to_json(values), out;
        check(api_->lookup(ctx_, dataset.c_str(), property.c_str(), values_json.c_str(),
                           &detail::append_to_string, &out), "lookup in " + dataset);
        return parse_json(out, "lookup result");
    }
    bool cancelled() const { return api_->is_cancelled(ctx_) != 0; }
    void metric(const std::string& name, double value) const { api_->metric(ctx_, name.c_str(), value); }

    // Appends a batch to a dataset; returns the counts object.
    JsonDocument write_dataset(const std::string& dataset, const sluice_batch& batch,
                               const std::string& options_json = "{}") const {
        std::string out;
        check(api_->write_dataset(ctx_, dataset.c_str(), &batch, options_json.c_str(),
                                  &detail::append_to_string, &out), "write to dataset " + dataset);
        return out.empty() ? JsonDocument() : parse_json(out, "write result");
    }
    // Streams a dataset read; `on_batch` gets each JSON array chunk and returns false to stop.
    void read_dataset(const std::string& query_json, const std::function<bool(std::string_view)>& on_batch) const {
        struct Adapter {
            static int32_t receive(void* user, const char* data, size_t size) {
                auto* fn = static_cast<const std::function<bool(std::string_view)>*>(user);
                return (*fn)(std::string_view(data, size)) ? 0 : 1;
            }
        };
        check(api_->read_dataset(ctx_, query_json.c_str(), &Adapter::receive,
                                 const_cast<std::function<bool(std::string_view)>*>(&on_batch)),
              "read dataset");
    }
    JsonDocument dataset_command(const std::string& command_json) const {
        std::string out;
        check(api_->dataset_command(ctx_, command_json.c_str(), &detail::append_to_string, &out),
              "dataset command");
        return out.empty() ? JsonDocument() : parse_json(out, "dataset command result");
    }

private:
    void check(int32_t status, const std::string& what) const {
        if (status != SLUICE_OK) throw Error(what + " failed", status);
    }
    const sluice_host_api* api_;
    sluice_host_context* ctx_;
};

// The arguments a component instance is created with, parsed.
struct CreateArgs {
    JsonDocument config;  // the component's effective config (an object)
    JsonDocument system;  // the referenced system's config, or null
    JsonDocument node;    // the node metadata, or null
    std::string pipe_id;

    explicit CreateArgs(const sluice_create_args& raw) {
        config = parse_json(raw.config_json ? raw.config_json : "{}", "component config");
        if (raw.system_json) system = parse_json(raw.system_json, "system config");
        if (raw.node_json) node = parse_json(raw.node_json, "node metadata");
        if (raw.pipe_id) pipe_id = raw.pipe_id;
    }
};

// ---- base classes ---------------------------------------------------------------------------
// Each derived class needs a constructor `T(const CreateArgs&, Host&)` that throws on bad config.

class Source {
public:
    virtual ~Source() = default;
    // Emit every entity after `since` (nullptr: from the start) via host.emit(), then return.
    virtual void read(Host& host, const char* since, uint32_t batch_size) = 0;
};

class Transform {
public:
    virtual ~Transform() = default;
    // Transform `input` and hand the result on with host.emit().
    virtual void transform(Host& host, Batch& input) = 0;
    // The raw batch, for transforms that parse it themselves (e.g. exact big numbers); the
    // default parses it into a Batch and calls transform() above.
    virtual void transform_raw(Host& host, const sluice_batch& input) {
        Batch batch(input);
        transform(host, batch);
    }
    // A JSON object describing the instance (see sluice_transform_vtable.describe).
    virtual std::string describe(Host& /*host*/) { return "{}"; }
    // Lookups selecting the main-source entities that depend on `changed` entities of the
    // joined `dataset` (see sluice_transform_vtable.dependents).
    virtual std::string dependents(Host& /*host*/, const std::string& /*dataset*/,
                                   const sluice_batch& /*changed*/) {
        return "[]";
    }
};

class Sink {
public:
    virtual ~Sink() = default;
    virtual void write(Host& host, const sluice_batch& batch) = 0;
    virtual void begin_run(Host& /*host*/, bool /*full*/) {}
    virtual void end_run(Host& /*host*/, bool /*full*/, bool /*completed*/) {}
};

class Storage {
public:
    virtual ~Storage() = default;
    // Each returns the JSON text delivered to the caller (counts, rows, answers).
    virtual std::string write(Host& host, const std::string& dataset, const sluice_batch& batch,
                              const JsonDocument& options) = 0;
    // Streams; `deliver` returns false when the reader wants no more.
    virtual void read(Host& host, const JsonDocument& query,
                      const std::function<bool(std::string_view)>& deliver) = 0;
    virtual std::string lookup(Host& host, const std::string& dataset, const std::string& property,
                               const JsonDocument& values) = 0;
    virtual std::string command(Host& host, const JsonDocument& command) = 0;
};

// ---- trampolines: C calls in, exceptions out as statuses ----------------------------------------

namespace detail {

inline Host host_for(sluice_host_context* ctx) { return Host(g_host_api, ctx); }

// Runs `fn`, turning exceptions into a status and host->set_error(message).
template <class Fn>
int32_t guarded(sluice_host_context* ctx, Fn&& fn) noexcept {
    try {
        fn();
        return SLUICE_OK;
    } catch (const Error& e) {
        if (g_host_api) g_host_api->set_error(ctx, e.what());
        return e.status();
    } catch (const std::exception& e) {
        if (g_host_api) g_host_api->set_error(ctx, e.what());
        return SLUICE_ERROR;
    } catch (...) {
        if (g_host_api) g_host_api->set_error(ctx, "unknown exception in plugin");
        return SLUICE_FATAL;
    }
}

template <class T>
void* create_instance(const sluice_create_args* args, sluice_host_context* ctx) noexcept {
    void* instance = nullptr;
    guarded(ctx, [&] {
        CreateArgs parsed(*args);
        Host host = host_for(ctx);
        instance = new T(parsed, host);
    });
    return instance;
}

template <class T>
void destroy_instance(void* instance) noexcept {
    delete static_cast<T*>(instance);
}

inline int32_t deliver(sluice_receive_fn receive, void* user, const std::string& text) {
    return receive ? receive(user, text.data(), text.size()) : 0;
}

template <class T>
struct SourceTrampolines {
    static int32_t read(void* instance, sluice_host_context* ctx, const char* since, uint32_t batch_size) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            static_cast<T*>(instance)->read(host, since, batch_size);
        });
    }
};

template <class T>
struct TransformTrampolines {
    static int32_t transform(void* instance, sluice_host_context* ctx, const sluice_batch* input) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            static_cast<T*>(instance)->transform_raw(host, *input);
        });
    }
    static int32_t describe(void* instance, sluice_host_context* ctx, sluice_receive_fn receive,
                            void* user) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            deliver(receive, user, static_cast<T*>(instance)->describe(host));
        });
    }
    static int32_t dependents(void* instance, sluice_host_context* ctx, const char* dataset,
                              const sluice_batch* changed, sluice_receive_fn receive, void* user) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            deliver(receive, user, static_cast<T*>(instance)->dependents(host, dataset, *changed));
        });
    }
};

inline bool run_flag(const char* run_json, const char* name) {
    if (!run_json) return false;
    JsonDocument doc = parse_json(run_json, "run");
    return bool_or(doc, name, false);
}

template <class T>
struct SinkTrampolines {
    static int32_t write(void* instance, sluice_host_context* ctx, const sluice_batch* batch) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            static_cast<T*>(instance)->write(host, *batch);
        });
    }
    static int32_t begin_run(void* instance, sluice_host_context* ctx, const char* run_json) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            static_cast<T*>(instance)->begin_run(host, run_flag(run_json, "full"));
        });
    }
    static int32_t end_run(void* instance, sluice_host_context* ctx, const char* run_json) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            static_cast<T*>(instance)->end_run(host, run_flag(run_json, "full"), run_flag(run_json, "completed"));
        });
    }
};

template <class T>
struct StorageTrampolines {
    static int32_t write(void* store, sluice_host_context* ctx, const char* dataset, const sluice_batch* batch,
                         const char* options_json, sluice_receive_fn result, void* user) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            JsonDocument options = parse_json(options_json ? options_json : "{}", "write options");
            deliver(result, user, static_cast<T*>(store)->write(host, dataset, *batch, options));
        });
    }
    static int32_t read(void* store, sluice_host_context* ctx, const char* query_json, sluice_receive_fn receive,
                        void* user) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            JsonDocument query = parse_json(query_json, "read query");
            static_cast<T*>(store)->read(host, query, [&](std::string_view chunk) {
                return receive(user, chunk.data(), chunk.size()) == 0;
            });
        });
    }
    static int32_t lookup(void* store, sluice_host_context* ctx, const char* dataset, const char* property,
                          const char* values_json, sluice_receive_fn receive, void* user) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            JsonDocument values = parse_json(values_json, "lookup values");
            deliver(receive, user, static_cast<T*>(store)->lookup(host, dataset, property, values));
        });
    }
    static int32_t command(void* store, sluice_host_context* ctx, const char* command_json,
                           sluice_receive_fn receive, void* user) noexcept {
        return guarded(ctx, [&] {
            Host host = host_for(ctx);
            JsonDocument command = parse_json(command_json, "storage command");
            deliver(receive, user, static_cast<T*>(store)->command(host, command));
        });
    }
};

inline const sluice_plugin_descriptor* register_plugin(const sluice_host_api* host, const char* name,
                                                       const char* version, const char* description,
                                                       const char* license,
                                                       std::initializer_list<const sluice_component*> components) {
    if (!host || host->abi_major != SLUICE_ABI_MAJOR) return nullptr;
    g_host_api = host;
    static std::vector<const sluice_component*> list;
    static sluice_plugin_descriptor descriptor{};
    list.assign(components.begin(), components.end());
    descriptor = sluice_plugin_descriptor{sizeof(sluice_plugin_descriptor), SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR,
                                          name, version, description, license, list.data(), list.size()};
    return &descriptor;
}

}  // namespace detail

// ---- component registration (used inside SLUICE_PLUGIN) ----------------------------------------

template <class T>
const sluice_component* source(const char* type_name, const char* schema, uint64_t capabilities) {
    static const sluice_source_vtable vtable{sizeof(sluice_source_vtable), 0, &detail::create_instance<T>,
                                             &detail::destroy_instance<T>, &detail::SourceTrampolines<T>::read};
    static const sluice_component component{sizeof(sluice_component), SLUICE_KIND_SOURCE, type_name, schema,
                                            capabilities, &vtable};
    return &component;
}

template <class T>
const sluice_component* transform(const char* type_name, const char* schema, uint64_t capabilities) {
    static const sluice_transform_vtable vtable{sizeof(sluice_transform_vtable), 0, &detail::create_instance<T>,
                                                &detail::destroy_instance<T>,
                                                &detail::TransformTrampolines<T>::transform,
                                                &detail::TransformTrampolines<T>::describe,
                                                &detail::TransformTrampolines<T>::dependents};
    static const sluice_component component{sizeof(sluice_component), SLUICE_KIND_TRANSFORM, type_name, schema,
                                            capabilities, &vtable};
    return &component;
}

template <class T>
const sluice_component* sink(const char* type_name, const char* schema, uint64_t capabilities) {
    static const sluice_sink_vtable vtable{sizeof(sluice_sink_vtable), 0, &detail::create_instance<T>,
                                           &detail::destroy_instance<T>, &detail::SinkTrampolines<T>::write,
                                           &detail::SinkTrampolines<T>::begin_run,
                                           &detail::SinkTrampolines<T>::end_run};
    static const sluice_component component{sizeof(sluice_component), SLUICE_KIND_SINK, type_name, schema,
                                            capabilities, &vtable};
    return &component;
}

template <class T>
const sluice_component* storage(const char* type_name, const char* schema, uint64_t capabilities) {
    static const sluice_storage_vtable vtable{sizeof(sluice_storage_vtable), 0, &detail::create_instance<T>,
                                              &detail::destroy_instance<T>, &detail::StorageTrampolines<T>::write,
                                              &detail::StorageTrampolines<T>::read,
                                              &detail::StorageTrampolines<T>::lookup,
                                              &detail::StorageTrampolines<T>::command};
    static const sluice_component component{sizeof(sluice_component), SLUICE_KIND_STORAGE, type_name, schema,
                                            capabilities, &vtable};
    return &component;
}

}  // namespace sluice

// Defines the plugin's exported entry point. Arguments: name, version, description, license
// (string literals), then one sluice::source<T>(...)/transform/sink/storage per component.
#define SLUICE_PLUGIN(NAME, VERSION, DESCRIPTION, LICENSE, ...)                                        \
    extern "C" SLUICE_EXPORT const sluice_plugin_descriptor* sluice_plugin_entry(const sluice_host_api* host) { \
        return ::sluice::detail::register_plugin(host, NAME, VERSION, DESCRIPTION, LICENSE, {__VA_ARGS__}); \
    }

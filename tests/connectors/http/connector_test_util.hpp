// Helpers for the connector suites: plugin paths, sink run calls through the C vtable, and a
// small fake host that accepts SLUICE_FORMAT_BYTES emits (publisher output), which
// sluice::testing::FakeHost refuses.
#pragma once

#include <sluice/testing.hpp>

#include <dlfcn.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace sluice::test {

// Statuses as int32_t, so CPPUNIT_ASSERT_EQUAL compares like types.
constexpr int32_t kOk = SLUICE_OK;
constexpr int32_t kRetry = SLUICE_RETRY;
constexpr int32_t kError = SLUICE_ERROR;

inline std::string plugin_path(const std::string& name) {
    return std::string(SLUICE_TEST_PLUGIN_DIR) + "/" + name + ".so";
}

inline const sluice_sink_vtable* sink_vtable(const testing::LoadedPlugin& plugin, const std::string& type) {
    return static_cast<const sluice_sink_vtable*>(plugin.component(SLUICE_KIND_SINK, type)->vtable);
}

inline int32_t begin_run(const testing::LoadedPlugin& plugin, const std::string& type, testing::Instance& sink,
                         testing::FakeHost& host, bool full) {
    return sink_vtable(plugin, type)->begin_run(sink.handle(), host.context(), full ? "{\"full\":true}" : "{\"full\":false}");
}

inline int32_t end_run(const testing::LoadedPlugin& plugin, const std::string& type, testing::Instance& sink,
                       testing::FakeHost& host, bool full, bool completed) {
    std::string run = std::string("{\"full\":") + (full ? "true" : "false") + ",\"completed\":" + (completed ? "true" : "false") + "}";
    return sink_vtable(plugin, type)->end_run(sink.handle(), host.context(), run.c_str());
}

// A host for publisher sinks: BYTES chunks are appended to bytes(); refuse_bytes() makes emits
// fail, as in a scheduled run.
class BytesHost {
public:
    static const sluice_host_api* api() {
        static const sluice_host_api table{sizeof(sluice_host_api), SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR,
                                           &log, &set_error, &emit_batch, &set_continuation, &get_secret,
                                           &lookup, &is_cancelled, &metric, &write_dataset, &read_dataset,
                                           &dataset_command};
        return &table;
    }
    sluice_host_context* context() { return reinterpret_cast<sluice_host_context*>(this); }

    std::string bytes;
    std::vector<std::string> chunks;
    std::string last_error;
    bool refuse = false;
    size_t json_emits = 0;

private:
    static BytesHost& self(sluice_host_context* ctx) { return *reinterpret_cast<BytesHost*>(ctx); }
    static void log(sluice_host_context*, int32_t, const char*) {}
    static void set_error(sluice_host_context* ctx, const char* m) {
        if (ctx) self(ctx).last_error = m ? m : "";
    }
    static int32_t emit_batch(sluice_host_context* ctx, const sluice_batch* b) {
        BytesHost& h = self(ctx);
        if (h.refuse) {
            h.last_error = "emit_batch is not available in this call";
            return SLUICE_ERROR;
        }
        if (b->format != SLUICE_FORMAT_BYTES) {
            ++h.json_emits;
            return SLUICE_ERROR;
        }
        h.bytes.append(b->data, b->size);
        if (b->size) h.chunks.emplace_back(b->data, b->size);
        return SLUICE_OK;
    }
    static void set_continuation(sluice_host_context*, const char*) {}
    static int32_t get_secret(sluice_host_context*, const char*, sluice_receive_fn, void*) { return SLUICE_ERROR; }
    static int32_t lookup(sluice_host_context*, const char*, const char*, const char*, sluice_receive_fn, void*) {
        return SLUICE_ERROR;
    }
    static int32_t is_cancelled(sluice_host_context*) { return 0; }
    static void metric(sluice_host_context*, const char*, double) {}
    static int32_t write_dataset(sluice_host_context*, const char*, const sluice_batch*, const char*, sluice_receive_fn,
                                 void*) {
        return SLUICE_ERROR;
    }
    static int32_t read_dataset(sluice_host_context*, const char*, sluice_receive_fn, void*) { return SLUICE_ERROR; }
    static int32_t dataset_command(sluice_host_context*, const char*, sluice_receive_fn, void*) { return SLUICE_ERROR; }
};

// A sink of a plugin entered with BytesHost's table (the library must not also be entered with
// another host in the same process: the plugin keeps one host table).
class BytesSink {
public:
    BytesSink(const std::string& path, const std::string& type, const std::string& config_json, BytesHost& create_host) {
        void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!lib) throw std::runtime_error(std::string("dlopen failed: ") + dlerror());
        auto entry = reinterpret_cast<sluice_plugin_entry_fn>(dlsym(lib, SLUICE_ENTRY_SYMBOL));
        if (!entry) throw std::runtime_error("no entry point in " + path);
        const sluice_plugin_descriptor* d = entry(BytesHost::api());
        for (size_t i = 0; d && i < d->component_count; ++i) {
            if (d->components[i]->kind == SLUICE_KIND_SINK && type == d->components[i]->type_name) component_ = d->components[i];
        }
        if (!component_) throw std::runtime_error("no sink " + type + " in " + path);
        vt_ = static_cast<const sluice_sink_vtable*>(component_->vtable);
        sluice_create_args args{sizeof(sluice_create_args), 0, config_json.c_str(), nullptr, "test-pipe", nullptr};
        handle_ = vt_->create(&args, create_host.context());
    }
    ~BytesSink() {
        if (handle_) vt_->destroy(handle_);
    }
    BytesSink(const BytesSink&) = delete;
    BytesSink& operator=(const BytesSink&) = delete;

    bool valid() const { return handle_ != nullptr; }
    uint64_t capabilities() const { return component_->capabilities; }
    int32_t begin_run(BytesHost& h) { return vt_->begin_run(handle_, h.context(), "{\"full\":true}"); }
    int32_t write(BytesHost& h, const std::string& entities) {
        sluice_batch b{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, entities.data(), entities.size(), 0, nullptr};
        return vt_->write(handle_, h.context(), &b);
    }
    int32_t end_run(BytesHost& h, bool completed = true) {
        return vt_->end_run(handle_, h.context(), completed ? "{\"full\":true,\"completed\":true}"
                                                            : "{\"full\":true,\"completed\":false}");
    }

private:
    const sluice_component* component_ = nullptr;
    const sluice_sink_vtable* vt_ = nullptr;
    void* handle_ = nullptr;
};

}  // namespace sluice::test

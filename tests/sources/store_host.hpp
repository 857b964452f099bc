// A test host for sources that read datasets: the data calls (read_dataset, lookup,
// write_dataset, dataset_command) go to the real memory storage plugin, so `since`, `limit`,
// `history`, the write rule and indexed lookups behave exactly as on a node (docs/storage.md).
// Emitted batches are written to a sink dataset and the pipe's offset is committed the way the
// kernel does it (state "pipe:<id>" = {"last_seen", "updated_us", "run_id"}), unless the host is
// in preview mode (GET /api/pipes/<id>/entities commits nothing).
#pragma once

#include <sluice/testing.hpp>

#include <chrono>
#include <dlfcn.h>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace sources_test {

using sluice::Json;
using sluice::JsonDocument;

constexpr int32_t kOk = SLUICE_OK;  // statuses typed for CPPUNIT_ASSERT_EQUAL
constexpr int32_t kError = SLUICE_ERROR;

inline std::string plugin_path(const std::string& name) { return std::string(SLUICE_TEST_PLUGIN_DIR) + "/" + name + ".so"; }

class StoreHost {
public:
    explicit StoreHost(std::string pipe_id = "test-pipe", std::string sink = "out")
        : pipe_id_(std::move(pipe_id)), sink_(std::move(sink)),
          storage_plugin_(plugin_path("sluice-storage-memory"), storage_host_),
          store_(storage_plugin_.create(SLUICE_KIND_STORAGE, "memory", "{\"type\":\"memory\"}")) {
        if (!store_.valid()) throw std::runtime_error("memory storage: " + storage_host_.last_error());
        vt_ = static_cast<const sluice_storage_vtable*>(
            storage_plugin_.component(SLUICE_KIND_STORAGE, "memory")->vtable);
        emitted_.SetArray();
    }
    StoreHost(const StoreHost&) = delete;
    StoreHost& operator=(const StoreHost&) = delete;

    static const sluice_host_api* api() {
        static const sluice_host_api table{sizeof(sluice_host_api), SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR, &c_log,
                                           &c_set_error, &c_emit_batch, &c_set_continuation, &c_get_secret,
                                           &c_lookup, &c_is_cancelled, &c_metric, &c_write_dataset,
                                           &c_read_dataset, &c_dataset_command};
        return &table;
    }
    sluice_host_context* context() { return reinterpret_cast<sluice_host_context*>(this); }

    // ---- test side ----
    // Writes entities (a JSON array) under the write rule, as a pipe's dataset sink would.
    void write(const std::string& dataset, const std::string& entities_json) {
        sluice_batch b = sluice::testing::Instance::make_batch(entities_json);
        std::string out;
        check(vt_->write(store_.handle(), storage_host_.context(), dataset.c_str(), &b, "{}", &append, &out),
              "write " + dataset);
    }
    // Latest versions of a dataset (deleted ones too unless `deleted` is false).
    JsonDocument latest(const std::string& dataset, bool deleted = true) {
        std::string query = "{\"dataset\":" + quote(dataset) + ",\"history\":false,\"deleted\":" +
                            (deleted ? "true" : "false") + "}";
        return sluice::parse_json(read_all(query));
    }
    // The latest version of one id in a dataset, or null.
    JsonDocument get(const std::string& dataset, const std::string& id) {
        return command("{\"op\":\"get\",\"dataset\":" + quote(dataset) + ",\"id\":" + quote(id) + "}");
    }
    JsonDocument command(const std::string& command_json) {
        std::string out;
        check(vt_->command(store_.handle(), storage_host_.context(), command_json.c_str(), &append, &out), "command");
        return sluice::parse_json(out);
    }
    // The pipe's committed offset ("" after a reset / before the first run).
    std::string last_seen() {
        JsonDocument state = command("{\"op\":\"state_get\",\"key\":" + quote("pipe:" + pipe_id_) + "}");
        return state.IsObject() ? sluice::string_or(state, "last_seen", "") : "";
    }
    void reset() { command("{\"op\":\"state_put\",\"key\":" + quote("pipe:" + pipe_id_) + ",\"value\":{\"last_seen\":\"\"}}"); }

    void set_preview(bool preview) { preview_ = preview; }
    // Called after each emitted batch was handled (e.g. to write while a run is under way).
    void on_emit(std::function<void(int batch)> hook) { on_emit_ = std::move(hook); }
    void cancel_after_batches(int n) { cancel_after_ = n; }
    void fail_emits_after(int n) { fail_after_ = n; }
    void clear() {
        emitted_.SetArray();
        batches_ = 0;
        tokens_.clear();
        error_.clear();
        logs_.clear();
        lookups_ = reads_ = 0;
        cancel_after_ = fail_after_ = -1;
        on_emit_ = nullptr;
    }

    JsonDocument& emitted() { return emitted_; }
    int batches() const { return batches_; }
    const std::vector<std::string>& tokens() const { return tokens_; }  // per emitted batch
    const std::string& error() const { return error_; }
    const std::vector<std::string>& logs() const { return logs_; }
    int lookups() const { return lookups_; }
    int reads() const { return reads_; }
    const std::string& pipe_id() const { return pipe_id_; }

private:
    static StoreHost& self(sluice_host_context* ctx) { return *reinterpret_cast<StoreHost*>(ctx); }
    static int32_t append(void* user, const char* data, size_t size) {
        static_cast<std::string*>(user)->append(data, size);
        return 0;
    }
    static std::string quote(const std::string& s) {
        return sluice::to_json(Json(rapidjson::StringRef(s.c_str(), s.size())));
    }
    void check(int32_t status, const std::string& what) {
        if (status != SLUICE_OK) throw std::runtime_error(what + ": " + storage_host_.last_error());
    }
    std::string read_all(const std::string& query) {
        std::string all = "[";
        auto receive = [](void* user, const char* data, size_t size) -> int32_t {
            std::string& out = *static_cast<std::string*>(user);
            std::string_view chunk(data, size);
            const size_t open = chunk.find('['), close = chunk.rfind(']');
            std::string_view inner = chunk.substr(open + 1, close - open - 1);
            if (inner.find_first_not_of(" \t\r\n") == std::string_view::npos) return 0;
            if (out.size() > 1) out.push_back(',');
            out.append(inner);
            return 0;
        };
        check(vt_->read(store_.handle(), storage_host_.context(), query.c_str(), receive, &all), "read");
        return all + "]";
    }

    // ---- the host API ----
    static void c_log(sluice_host_context* ctx, int32_t, const char* message) {
        if (ctx) self(ctx).logs_.push_back(message ? message : "");
    }
    static void c_set_error(sluice_host_context* ctx, const char* message) {
        if (ctx) self(ctx).error_ = message ? message : "";
    }
    static int32_t c_emit_batch(sluice_host_context* ctx, const sluice_batch* batch) {
        StoreHost& h = self(ctx);
        if (h.cancel_after_ == 0) return SLUICE_ERROR;
        if (h.fail_after_ == 0) {
            h.error_ = "sink failed";
            return SLUICE_ERROR;
        }
        JsonDocument doc;
        doc.Parse<rapidjson::kParseFullPrecisionFlag>(batch->data, batch->size);
        if (doc.HasParseError() || !doc.IsArray()) {
            h.error_ = "emitted batch is not a JSON array";
            return SLUICE_ERROR;
        }
        for (Json& e : doc.GetArray()) h.emitted_.PushBack(Json(e, h.emitted_.GetAllocator()), h.emitted_.GetAllocator());
        ++h.batches_;
        h.tokens_.push_back(batch->continuation ? batch->continuation : "");
        if (!h.preview_) {
            // The kernel: the sink writes the batch, then the offset is committed.
            if (!doc.Empty()) h.write(h.sink_, std::string(batch->data, batch->size));
            if (batch->continuation) h.commit(batch->continuation);
        }
        if (h.cancel_after_ > 0) --h.cancel_after_;
        if (h.fail_after_ > 0) --h.fail_after_;
        if (h.on_emit_) h.on_emit_(h.batches_);
        return SLUICE_OK;
    }
    void commit(const std::string& token) {
        const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count();
        command("{\"op\":\"state_put\",\"key\":" + quote("pipe:" + pipe_id_) + ",\"value\":{\"last_seen\":" + quote(token) +
                ",\"updated_us\":" + std::to_string(now) + ",\"run_id\":\"test\"}}");
    }
    static void c_set_continuation(sluice_host_context* ctx, const char* token) {
        StoreHost& h = self(ctx);
        if (!h.preview_ && token) h.commit(token);
    }
    static int32_t c_get_secret(sluice_host_context*, const char*, sluice_receive_fn, void*) { return SLUICE_ERROR; }
    static int32_t c_lookup(sluice_host_context* ctx, const char* dataset, const char* property, const char* values,
                            sluice_receive_fn receive, void* user) {
        StoreHost& h = self(ctx);
        ++h.lookups_;
        return h.vt_->lookup(h.store_.handle(), h.storage_host_.context(), dataset, property, values, receive, user);
    }
    static int32_t c_is_cancelled(sluice_host_context* ctx) { return self(ctx).cancel_after_ == 0 ? 1 : 0; }
    static void c_metric(sluice_host_context*, const char*, double) {}
    static int32_t c_write_dataset(sluice_host_context* ctx, const char* dataset, const sluice_batch* batch,
                                   const char* options, sluice_receive_fn result, void* user) {
        StoreHost& h = self(ctx);
        return h.vt_->write(h.store_.handle(), h.storage_host_.context(), dataset, batch, options, result, user);
    }
    static int32_t c_read_dataset(sluice_host_context* ctx, const char* query, sluice_receive_fn receive, void* user) {
        StoreHost& h = self(ctx);
        ++h.reads_;
        return h.vt_->read(h.store_.handle(), h.storage_host_.context(), query, receive, user);
    }
    static int32_t c_dataset_command(sluice_host_context* ctx, const char* command, sluice_receive_fn receive,
                                     void* user) {
        StoreHost& h = self(ctx);
        return h.vt_->command(h.store_.handle(), h.storage_host_.context(), command, receive, user);
    }

    std::string pipe_id_;
    std::string sink_;
    sluice::testing::FakeHost storage_host_;  // the storage plugin's own host (errors land here)
    sluice::testing::LoadedPlugin storage_plugin_;
    sluice::testing::Instance store_;
    const sluice_storage_vtable* vt_ = nullptr;
    JsonDocument emitted_;
    int batches_ = 0;
    std::vector<std::string> tokens_;
    std::string error_;
    std::vector<std::string> logs_;
    int lookups_ = 0, reads_ = 0;
    bool preview_ = false;
    int cancel_after_ = -1, fail_after_ = -1;
    std::function<void(int)> on_emit_;
};

// A source plugin entered with StoreHost's table; one instance per `create`.
class SourcePlugin {
public:
    SourcePlugin(const std::string& library, StoreHost& host) : host_(&host) {
        handle_ = dlopen(plugin_path(library).c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle_) throw std::runtime_error(std::string("dlopen: ") + dlerror());
        auto entry = reinterpret_cast<sluice_plugin_entry_fn>(dlsym(handle_, SLUICE_ENTRY_SYMBOL));
        if (!entry) throw std::runtime_error(library + ": no entry symbol");
        descriptor_ = entry(StoreHost::api());
        if (!descriptor_) throw std::runtime_error(library + ": no descriptor");
    }

    const sluice_component* component(const std::string& type) const {
        for (size_t i = 0; i < descriptor_->component_count; ++i)
            if (descriptor_->components[i]->kind == SLUICE_KIND_SOURCE && type == descriptor_->components[i]->type_name)
                return descriptor_->components[i];
        throw std::runtime_error("no source " + type);
    }

    class Instance {
    public:
        Instance(const sluice_source_vtable* vt, void* handle, StoreHost& host) : vt_(vt), handle_(handle), host_(&host) {}
        Instance(Instance&& o) noexcept : vt_(o.vt_), handle_(o.handle_), host_(o.host_) { o.handle_ = nullptr; }
        Instance(const Instance&) = delete;
        ~Instance() {
            if (handle_) vt_->destroy(handle_);
        }
        bool valid() const { return handle_ != nullptr; }
        int32_t read(const char* since, uint32_t batch_size = 100) {
            return vt_->read(handle_, host_->context(), since, batch_size);
        }
        // One pipe run as the kernel does it: from the committed offset ("" = full run).
        int32_t run(uint32_t batch_size = 100) {
            const std::string since = host_->last_seen();
            return read(since.empty() ? nullptr : since.c_str(), batch_size);
        }

    private:
        const sluice_source_vtable* vt_;
        void* handle_;
        StoreHost* host_;
    };

    Instance create(const std::string& type, const std::string& config_json, const char* node_json = nullptr) {
        const sluice_component* c = component(type);
        auto* vt = static_cast<const sluice_source_vtable*>(c->vtable);
        sluice_create_args args{sizeof(sluice_create_args), 0, config_json.c_str(), nullptr,
                                host_->pipe_id().c_str(), node_json};
        return Instance(vt, vt->create(&args, host_->context()), *host_);
    }
    uint64_t capabilities(const std::string& type) const { return component(type)->capabilities; }

private:
    void* handle_ = nullptr;
    const sluice_plugin_descriptor* descriptor_ = nullptr;
    StoreHost* host_;
};

// Helpers over entity arrays.
inline std::map<std::string, const Json*> by_id(const JsonDocument& entities) {
    std::map<std::string, const Json*> out;
    for (const Json& e : entities.GetArray()) out[e["_id"].GetString()] = &e;
    return out;
}
inline bool is_deleted(const Json& e) {
    const Json* d = sluice::find_member(e, "_deleted");
    return d && d->IsBool() && d->GetBool();
}
// Sorted, comma-separated ids of the live (or deleted) entities.
inline std::string ids(const JsonDocument& entities, bool deleted = false) {
    std::vector<std::string> out;
    for (const Json& e : entities.GetArray())
        if (is_deleted(e) == deleted) out.push_back(e["_id"].GetString());
    std::sort(out.begin(), out.end());
    std::string text;
    for (const std::string& id : out) text += (text.empty() ? "" : ",") + id;
    return text;
}

}  // namespace sources_test

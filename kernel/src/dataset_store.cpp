#include <sluice/kernel/dataset_store.hpp>
#include <sluice/kernel/host_context.hpp>

namespace sluice::kernel {

namespace {

int32_t append(void* user, const char* data, size_t size) {
    static_cast<std::string*>(user)->append(data, size);
    return 0;
}

std::string backend_error(const HostContext& ctx, const char* what, int32_t status) {
    std::string message = std::string("storage ") + what + " failed";
    if (!ctx.error().empty()) message += ": " + ctx.error();
    else message += " (status " + std::to_string(status) + ")";
    return message;
}

}  // namespace

DatasetStore::DatasetStore(const ComponentInfo& backend, const std::string& config_json) : backend_(backend) {
    HostContext ctx;
    ctx.log_source = "sluice.storage";
    sluice_create_args args{sizeof(sluice_create_args), 0, config_json.c_str(), nullptr, nullptr, nullptr};
    handle_ = backend_.storage()->open(&args, &ctx);
    if (!handle_) {
        throw StorageError("cannot open storage '" + backend_.type_name + "'" +
                               (ctx.error().empty() ? std::string() : ": " + ctx.error()),
                           SLUICE_FATAL);
    }
}

DatasetStore::~DatasetStore() {
    if (handle_) backend_.storage()->close(handle_);
}

template <class Fn>
void DatasetStore::call(const char* what, Fn&& fn) {
    HostContext ctx;
    ctx.log_source = "sluice.storage";
    int32_t status;
    if (backend_.has(SLUICE_CAP_THREAD_SAFE)) {
        status = fn(&ctx);
    } else {
        std::lock_guard<std::mutex> lock(mutex_);
        status = fn(&ctx);
    }
    if (status != SLUICE_OK) throw StorageError(backend_error(ctx, what, status), status);
}

std::string DatasetStore::write(const std::string& dataset, std::string_view batch_json, size_t count,
                                const std::string& options_json) {
    std::string result;
    sluice_batch batch{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, batch_json.data(), batch_json.size(), count,
                       nullptr};
    call("write", [&](HostContext* ctx) {
        return backend_.storage()->write(handle_, ctx, dataset.c_str(), &batch, options_json.c_str(), &append, &result);
    });
    return result;
}

void DatasetStore::read(const std::string& query_json, sluice_receive_fn receive, void* user) {
    call("read", [&](HostContext* ctx) {
        return backend_.storage()->read(handle_, ctx, query_json.c_str(), receive, user);
    });
}

void DatasetStore::read(const std::string& query_json, const std::function<bool(std::string_view)>& deliver) {
    struct Adapter {
        static int32_t receive(void* user, const char* data, size_t size) {
            auto* fn = static_cast<const std::function<bool(std::string_view)>*>(user);
            return (*fn)(std::string_view(data, size)) ? 0 : 1;
        }
    };
    read(query_json, &Adapter::receive, const_cast<std::function<bool(std::string_view)>*>(&deliver));
}

std::string DatasetStore::lookup(const std::string& dataset, const std::string& property,
                                 const std::string& values_json) {
    std::string result;
    call("lookup", [&](HostContext* ctx) {
        return backend_.storage()->lookup(handle_, ctx, dataset.c_str(), property.c_str(), values_json.c_str(),
                                          &append, &result);
    });
    return result;
}

std::string DatasetStore::command_text(const std::string& command_json) {
    std::string result;
    call("command", [&](HostContext* ctx) {
        return backend_.storage()->command(handle_, ctx, command_json.c_str(), &append, &result);
    });
    return result;
}

JsonDocument DatasetStore::command(const std::string& command_json) {
    std::string text = command_text(command_json);
    if (text.empty()) return JsonDocument();
    return parse_json(text, "storage answer");
}

JsonDocument DatasetStore::command(const Json& command_value) { return command(to_json(command_value)); }

JsonDocument DatasetStore::state_get(const std::string& key) {
    JsonDocument cmd(rapidjson::kObjectType);
    cmd.AddMember("op", "state_get", cmd.GetAllocator());
    cmd.AddMember("key", Json(key.c_str(), cmd.GetAllocator()), cmd.GetAllocator());
    return command(cmd);
}

void DatasetStore::state_put(const std::string& key, const Json& value) {
    JsonDocument cmd(rapidjson::kObjectType);
    auto& a = cmd.GetAllocator();
    cmd.AddMember("op", "state_put", a);
    cmd.AddMember("key", Json(key.c_str(), a), a);
    cmd.AddMember("value", Json(value, a), a);
    command(cmd);
}

}  // namespace sluice::kernel

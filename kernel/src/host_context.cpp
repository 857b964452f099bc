#include <sluice/kernel/dataset_store.hpp>
#include <sluice/kernel/host_context.hpp>

#include <Poco/Logger.h>

namespace {

using sluice::kernel::HostContext;

int32_t append_to(std::string& out, sluice_receive_fn receive, void* user) {
    if (receive) return receive(user, out.data(), out.size());
    return 0;
}

// Every C entry point catches everything: an exception must never unwind into plugin code.
template <class Fn>
int32_t guarded(sluice_host_context* ctx, Fn&& fn) noexcept {
    try {
        return fn();
    } catch (const std::exception& e) {
        if (ctx) ctx->set_error(e.what());
        return SLUICE_ERROR;
    } catch (...) {
        if (ctx) ctx->set_error("unknown error in the host");
        return SLUICE_FATAL;
    }
}

void c_log(sluice_host_context* ctx, int32_t level, const char* message) {
    guarded(ctx, [&] {
        if (ctx) {
            ctx->log(level, message ? message : "");
        } else {
            HostContext fallback;
            fallback.log(level, message ? message : "");
        }
        return 0;
    });
}
void c_set_error(sluice_host_context* ctx, const char* message) {
    if (ctx) guarded(ctx, [&] { ctx->set_error(message ? message : ""); return 0; });
}
int32_t c_emit_batch(sluice_host_context* ctx, const sluice_batch* batch) {
    if (!ctx || !batch) return SLUICE_ERROR;
    return guarded(ctx, [&] { return ctx->emit_batch(*batch); });
}
void c_set_continuation(sluice_host_context* ctx, const char* token) {
    if (ctx) guarded(ctx, [&] { ctx->set_continuation(token ? token : ""); return 0; });
}
int32_t c_get_secret(sluice_host_context* ctx, const char* name, sluice_receive_fn receive, void* user) {
    if (!ctx || !name) return SLUICE_ERROR;
    return guarded(ctx, [&] {
        std::string value;
        int32_t status = ctx->get_secret(name, value);
        if (status == SLUICE_OK) append_to(value, receive, user);
        return status;
    });
}
int32_t c_lookup(sluice_host_context* ctx, const char* dataset, const char* property, const char* values_json,
                 sluice_receive_fn receive, void* user) {
    if (!ctx || !dataset || !property || !values_json) return SLUICE_ERROR;
    return guarded(ctx, [&] {
        std::string result;
        int32_t status = ctx->lookup(dataset, property, values_json, result);
        if (status == SLUICE_OK) append_to(result, receive, user);
        return status;
    });
}
int32_t c_is_cancelled(sluice_host_context* ctx) {
    if (!ctx) return 0;
    return guarded(ctx, [&] { return ctx->is_cancelled() ? 1 : 0; });
}
void c_metric(sluice_host_context* ctx, const char* name, double value) {
    if (ctx && name) guarded(ctx, [&] { ctx->metric(name, value); return 0; });
}
int32_t c_write_dataset(sluice_host_context* ctx, const char* dataset, const sluice_batch* batch,
                        const char* options_json, sluice_receive_fn result, void* user) {
    if (!ctx || !dataset || !batch) return SLUICE_ERROR;
    return guarded(ctx, [&] {
        std::string out;
        int32_t status = ctx->write_dataset(dataset, *batch, options_json ? options_json : "{}", out);
        if (status == SLUICE_OK) append_to(out, result, user);
        return status;
    });
}
int32_t c_read_dataset(sluice_host_context* ctx, const char* query_json, sluice_receive_fn receive, void* user) {
    if (!ctx || !query_json || !receive) return SLUICE_ERROR;
    return guarded(ctx, [&] { return ctx->read_dataset(query_json, receive, user); });
}
int32_t c_dataset_command(sluice_host_context* ctx, const char* command_json, sluice_receive_fn receive,
                          void* user) {
    if (!ctx || !command_json) return SLUICE_ERROR;
    return guarded(ctx, [&] {
        std::string out;
        int32_t status = ctx->dataset_command(command_json, out);
        if (status == SLUICE_OK) append_to(out, receive, user);
        return status;
    });
}

}  // namespace

void sluice_host_context::log(int32_t level, std::string_view message) {
    Poco::Logger& logger = Poco::Logger::get(log_source);
    std::string text(message);
    switch (level) {
        case SLUICE_LOG_DEBUG: logger.debug(text); break;
        case SLUICE_LOG_INFO: logger.information(text); break;
        case SLUICE_LOG_WARNING: logger.warning(text); break;
        default: logger.error(text); break;
    }
}

int32_t sluice_host_context::emit_batch(const sluice_batch&) {
    set_error("emit_batch is not available in this call");
    return SLUICE_ERROR;
}

void sluice_host_context::set_continuation(std::string_view) {}

int32_t sluice_host_context::get_secret(std::string_view name, std::string& value) {
    if (secrets) {
        if (auto found = secrets(std::string(name))) {
            value = std::move(*found);
            return SLUICE_OK;
        }
    }
    set_error("unknown secret '" + std::string(name) + "'");
    return SLUICE_ERROR;
}

int32_t sluice_host_context::lookup(std::string_view dataset, std::string_view property, std::string_view values_json,
                                    std::string& result) {
    if (!store) {
        set_error("no dataset storage available");
        return SLUICE_ERROR;
    }
    result = store->lookup(std::string(dataset), std::string(property), std::string(values_json));
    return SLUICE_OK;
}

int32_t sluice_host_context::write_dataset(std::string_view dataset, const sluice_batch& batch,
                                           std::string_view options_json, std::string& result) {
    if (!store) {
        set_error("no dataset storage available");
        return SLUICE_ERROR;
    }
    result = store->write(std::string(dataset), std::string_view(batch.data, batch.size), batch.count,
                          std::string(options_json));
    return SLUICE_OK;
}

int32_t sluice_host_context::read_dataset(std::string_view query_json, sluice_receive_fn receive, void* user) {
    if (!store) {
        set_error("no dataset storage available");
        return SLUICE_ERROR;
    }
    store->read(std::string(query_json), receive, user);
    return SLUICE_OK;
}

int32_t sluice_host_context::dataset_command(std::string_view command_json, std::string& result) {
    if (!store) {
        set_error("no dataset storage available");
        return SLUICE_ERROR;
    }
    result = store->command_text(std::string(command_json));
    return SLUICE_OK;
}

namespace sluice::kernel {

const sluice_host_api* host_api() {
    static const sluice_host_api table{sizeof(sluice_host_api), SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR,
                                       &c_log, &c_set_error, &c_emit_batch, &c_set_continuation,
                                       &c_get_secret, &c_lookup, &c_is_cancelled, &c_metric,
                                       &c_write_dataset, &c_read_dataset, &c_dataset_command};
    return &table;
}

}  // namespace sluice::kernel

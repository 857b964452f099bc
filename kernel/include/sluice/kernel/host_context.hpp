// The kernel's side of the host API: the definition of the opaque `sluice_host_context` and the
// C function table handed to every plugin.
#pragma once

#include <sluice/plugin.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::kernel {
class DatasetStore;
}

// The C contract declares `struct sluice_host_context` opaque; the kernel defines it as a
// polymorphic base so each call site (a pipe run's source, a sink write, a storage call, …)
// decides what emit/continuation/dataset access mean for that call. The static table in
// host_api() forwards each C call to the matching virtual, catching every exception.
struct sluice_host_context {
    virtual ~sluice_host_context() = default;

    virtual void log(int32_t level, std::string_view message);
    virtual void set_error(std::string_view message) { error_ = std::string(message); }
    virtual int32_t emit_batch(const sluice_batch& batch);
    virtual void set_continuation(std::string_view token);
    virtual int32_t get_secret(std::string_view name, std::string& value);
    virtual int32_t lookup(std::string_view dataset, std::string_view property, std::string_view values_json,
                           std::string& result);
    virtual bool is_cancelled() { return false; }
    virtual void metric(std::string_view name, double value) {}
    virtual int32_t write_dataset(std::string_view dataset, const sluice_batch& batch, std::string_view options_json,
                                  std::string& result);
    virtual int32_t read_dataset(std::string_view query_json, sluice_receive_fn receive, void* user);
    virtual int32_t dataset_command(std::string_view command_json, std::string& result);

    const std::string& error() const { return error_; }
    void clear_error() { error_.clear(); }

    // Where log lines go ("plugin", "pipe:<id>"), and the store dataset calls reach (may be null).
    std::string log_source = "plugin";
    sluice::kernel::DatasetStore* store = nullptr;
    // Resolves secrets by name (null: no secrets available).
    std::function<std::optional<std::string>(const std::string&)> secrets;

protected:
    std::string error_;
};

namespace sluice::kernel {

using HostContext = ::sluice_host_context;

// The process-wide host API table (static storage; valid for the life of the process).
const sluice_host_api* host_api();

}  // namespace sluice::kernel

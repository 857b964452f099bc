// The kernel's handle on the storage backend plugin: datasets, pipe state, node config.
#pragma once

#include <sluice/entity.hpp>
#include <sluice/kernel/plugin_registry.hpp>

#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice::kernel {

// A storage call failed; the message is the backend's.
class StorageError : public std::runtime_error {
public:
    StorageError(const std::string& message, int32_t status) : std::runtime_error(message), status_(status) {}
    int32_t status() const { return status_; }

private:
    int32_t status_;
};

class DatasetStore {
public:
    // Opens the backend; throws StorageError with the backend's reason on failure.
    DatasetStore(const ComponentInfo& backend, const std::string& config_json);
    ~DatasetStore();
    DatasetStore(const DatasetStore&) = delete;
    DatasetStore& operator=(const DatasetStore&) = delete;

    const ComponentInfo& backend() const { return backend_; }

    // Appends a JSON array of entities under the write rule; returns the counts object text.
    std::string write(const std::string& dataset, std::string_view batch_json, size_t count,
                      const std::string& options_json = "{}");
    // Streams a read query; `deliver` gets JSON array chunks and returns false to stop.
    void read(const std::string& query_json, const std::function<bool(std::string_view)>& deliver);
    // Same, for a plugin's receive callback.
    void read(const std::string& query_json, sluice_receive_fn receive, void* user);
    std::string lookup(const std::string& dataset, const std::string& property, const std::string& values_json);
    // Runs a storage command and returns its JSON answer text.
    std::string command_text(const std::string& command_json);
    JsonDocument command(const std::string& command_json);
    JsonDocument command(const Json& command);

    // Convenience over state_get / state_put.
    JsonDocument state_get(const std::string& key);
    void state_put(const std::string& key, const Json& value);

private:
    template <class Fn>
    void call(const char* what, Fn&& fn);

    const ComponentInfo& backend_;
    void* handle_ = nullptr;
    std::mutex mutex_;  // serialises calls for backends without SLUICE_CAP_THREAD_SAFE
};

}  // namespace sluice::kernel

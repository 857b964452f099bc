// The node: plugin registry, dataset storage, configuration, pumps and the HTTP API, wired up.
#pragma once

#include <sluice/kernel/auth.hpp>
#include <sluice/kernel/config.hpp>
#include <sluice/kernel/dataset_store.hpp>
#include <sluice/kernel/environment.hpp>
#include <sluice/kernel/orchestrator.hpp>
#include <sluice/kernel/plugin_registry.hpp>
#include <sluice/kernel/pumps.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace Poco::Net {
class HTTPServer;
}

namespace sluice::kernel {

class ManagedPostgresHandle;

struct NodeOptions {
    std::string bind_address = "127.0.0.1";
    uint16_t port = 9042;  // 0 picks a free port (written to <data-dir>/sluice.port)
    std::filesystem::path data_dir = "sluice-data";
    std::optional<std::filesystem::path> config_file;
    std::filesystem::path builtin_plugin_dir;         // <prefix>/lib/sluice/plugins
    std::vector<std::filesystem::path> plugin_dirs;   // --plugin-dir, in addition
    std::vector<std::filesystem::path> plugin_files;  // --plugin FILE, single libraries
    // "postgres" (default: the managed local cluster unless postgres_dsn is set) or "memory".
    std::string storage = "postgres";
    std::string postgres_dsn;
    size_t workers = 4;

    // TLS (Poco NetSSL): both set → the API answers HTTPS only.
    std::optional<std::filesystem::path> tls_cert;
    std::optional<std::filesystem::path> tls_key;
    // RS256 token keys (PEM); unset: HS256 with <data-dir>/jwt.key.
    std::optional<std::filesystem::path> jwt_private_key;
    std::optional<std::filesystem::path> jwt_public_key;
    // Request limits (docs/security.md): oversized requests get a JSON 413/431/400.
    size_t max_body_bytes = 64 * 1024 * 1024;
    size_t max_header_bytes = 16 * 1024;
    size_t max_json_depth = 128;
    int request_timeout_seconds = 60;  // idle socket read/write; a stalled client frees its thread
};

class Node {
public:
    explicit Node(NodeOptions options);
    ~Node();
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    // Loads plugins, opens storage, restores/loads config, starts pumps and the API. Throws on a
    // fatal problem (no storage backend, bad --config file, port in use).
    void start();
    void stop();

    uint16_t port() const { return port_; }
    const NodeOptions& options() const { return options_; }
    PluginRegistry& plugins() { return registry_; }
    DatasetStore& store() { return *store_; }
    PumpManager& pumps() { return *pumps_; }
    Orchestrator& orchestrator() { return *orchestrator_; }
    SecretResolver secret_resolver();
    // Sesam's "restart" (POST /api/admin): pumps stop and start again with the stored config,
    // and node_start_time changes, without leaving the process.
    void restart();
    int64_t start_time_us() const { return start_time_us_; }
    std::string storage_description() const { return storage_description_; }

    std::shared_ptr<const NodeConfig> config() const;
    // The configuration as stored, a JSON array: the one this node runs or, while that does not
    // build here, the stored one (this node then runs none).
    JsonDocument config_entities() const;
    // Why the stored configuration does not build on this node (it then runs none); empty when
    // it does.
    std::string stored_config_error() const;
    // Validates `entities` whole, then persists and applies it. Throws ConfigError (nothing
    // changed) when invalid.
    std::shared_ptr<const NodeConfig> apply_config(const Json& entities);
    // Edits a copy of the latest stored configuration (a JSON array) and applies it as above,
    // with concurrent edits serialised so none is lost.
    std::shared_ptr<const NodeConfig> modify_config(const std::function<void(JsonDocument&)>& edit);
    // Changes the environment variables and re-applies the configuration with them; when the
    // configuration would become invalid, throws ConfigError and keeps the old variables.
    void set_environment(const Json& object, bool replace);
    bool erase_environment_variable(const std::string& name);
    Environment& environment() { return *environment_; }
    Auth& auth() { return *auth_; }
    // Re-encrypts every secret with a new key (<data-dir>/secrets.key replaced, 0600). Throws
    // SecretsKeyMismatch (nothing changed) when this node's key cannot open the stored secrets.
    void rotate_secrets_key();

    // Takes what another node sharing the storage changed: the configuration (applied here as
    // it was there, nothing written back), the environment variables, the secrets and the pump
    // disable flags. The node does this every kSyncMicros and before each change of its own, so
    // a change made on one node reaches the others within that, and an edit starts from the
    // latest configuration.
    void sync_from_storage();
    static constexpr int64_t kSyncMicros = 2'000'000;

private:
    void open_storage();
    std::shared_ptr<const NodeConfig> apply_config_locked(const Json& entities);  // builds, stores, installs
    // Runs `next` here, storing nothing but the flags of pipes `removed_from_storage`.
    // `unbuildable` and `error`: the stored configuration that does not build here and why (then
    // `next` is the empty one).
    void install_locked(const std::shared_ptr<const NodeConfig>& next, bool removed_from_storage = false,
                        std::shared_ptr<const JsonDocument> unbuildable = nullptr, std::string error = {});
    // A variables check that builds `entities` with the would-be variables into `built`.
    Environment::VariablesCheck builds_with(const Json& entities, std::shared_ptr<const NodeConfig>& built);
    void restore_config();
    void sync_locked();  // under apply_mutex_
    void start_sync_thread();
    void stop_sync_thread();

    NodeOptions options_;
    PluginRegistry registry_;
    std::unique_ptr<ManagedPostgresHandle> managed_postgres_;
    std::unique_ptr<DatasetStore> store_;
    std::unique_ptr<Environment> environment_;
    std::unique_ptr<Auth> auth_;
    std::mutex apply_mutex_;  // one configuration change at a time
    std::unique_ptr<PumpManager> pumps_;
    std::unique_ptr<Orchestrator> orchestrator_;
    std::unique_ptr<Poco::Net::HTTPServer> http_;
    mutable std::mutex config_mutex_;
    std::shared_ptr<const NodeConfig> config_;
    uint16_t port_ = 0;
    std::atomic<int64_t> start_time_us_{0};
    std::string storage_description_;
    // The stored configuration's text as last read or written (sync_locked compares).
    std::string synced_config_text_;
    // Under config_mutex_, set while the stored configuration does not build here: why, and the
    // stored configuration itself (GET /api/config answers it; edits start from it).
    std::string stored_config_error_;
    std::shared_ptr<const JsonDocument> unbuildable_config_;
    std::thread sync_thread_;
    std::mutex sync_mutex_;
    std::condition_variable sync_wake_;
    bool sync_stop_ = false;
    bool sync_failing_ = false;  // the last periodic sync failed (logged once until one succeeds)
};

}  // namespace sluice::kernel

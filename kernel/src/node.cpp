#include <sluice/kernel/api.hpp>
#include <sluice/kernel/host_context.hpp>
#include <sluice/kernel/node.hpp>

#include <Poco/Logger.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <sluice/kernel/security.hpp>

#include <algorithm>
#include <fstream>
#include <mutex>

#if SLUICE_HAVE_POSTGRES_MANAGER
#include <sluice/kernel/managed_postgres.hpp>
#endif

namespace sluice::kernel {

namespace fs = std::filesystem;

// Owns the managed local PostgreSQL cluster when the node runs its own (the embedded default).
class ManagedPostgresHandle {
public:
#if SLUICE_HAVE_POSTGRES_MANAGER
    explicit ManagedPostgresHandle(const fs::path& dir) : postgres_(dir) { postgres_.start(); }
    std::string dsn() const { return postgres_.dsn(); }

private:
    ManagedPostgres postgres_;
#else
    explicit ManagedPostgresHandle(const fs::path&) {
        throw std::runtime_error("this build has no managed PostgreSQL; pass --postgres DSN or --storage memory");
    }
    std::string dsn() const { return {}; }
#endif
};

namespace {
const char* kConfigKey = "node:config";
}

Node::Node(NodeOptions options) : options_(std::move(options)), registry_(host_api()) {}

Node::~Node() { stop(); }

void Node::open_storage() {
    const ComponentInfo* backend = registry_.find(SLUICE_KIND_STORAGE, options_.storage);
    if (!backend) {
        std::string installed;
        for (const ComponentInfo* c : registry_.components(SLUICE_KIND_STORAGE))
            installed += (installed.empty() ? "" : ", ") + c->type_name;
        throw std::runtime_error("no storage plugin of type '" + options_.storage +
                                 "' is installed (installed: " + (installed.empty() ? "none" : installed) + ")");
    }
    JsonDocument config(rapidjson::kObjectType);
    auto& a = config.GetAllocator();
    if (options_.storage == "postgres") {
        std::string dsn = options_.postgres_dsn;
        if (dsn.empty()) {
            managed_postgres_ = std::make_unique<ManagedPostgresHandle>(options_.data_dir / "postgres");
            dsn = managed_postgres_->dsn();
            storage_description_ = "postgres (managed, " + (options_.data_dir / "postgres").string() + ")";
        } else {
            storage_description_ = "postgres (external)";
        }
        config.AddMember("dsn", Json(dsn.c_str(), a), a);
    } else {
        storage_description_ = options_.storage;
    }
    store_ = std::make_unique<DatasetStore>(*backend, to_json(config));
}

void Node::restore_config() {
    if (!options_.config_file) {
        // The stored configuration, as every node sharing the storage runs it (when it does not
        // build here, none: sync_locked).
        std::lock_guard<std::mutex> lock(apply_mutex_);
        sync_locked();
    } else {  // replaces whatever is stored (docs/deployment.md: not for nodes sharing storage)
        std::ifstream in(*options_.config_file);
        if (!in) throw std::runtime_error("cannot read --config file " + options_.config_file->string());
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        JsonDocument doc;
        try {
            doc = parse_json(text, options_.config_file->string().c_str());
        } catch (const std::exception& e) {
            throw std::runtime_error(std::string("--config: ") + e.what());
        }
        apply_config(doc);
    }
}

void Node::start() {
    start_time_us_ = now_us();
    fs::create_directories(options_.data_dir);
    if (!options_.builtin_plugin_dir.empty()) registry_.load_directory(options_.builtin_plugin_dir);
    for (const fs::path& dir : options_.plugin_dirs) registry_.load_directory(dir);
    for (const fs::path& file : options_.plugin_files) registry_.load_file(file);

    open_storage();
    config_ = NodeConfig::empty();
    const fs::path key_file = options_.data_dir / "secrets.key", next_key = options_.data_dir / "secrets.key.next";
    auto cipher = std::make_shared<const security::SecretCipher>(security::load_or_create_key(key_file, 32));
    try {
        environment_ = std::make_unique<Environment>(*store_, cipher);
    } catch (const std::exception&) {
        // A key rotation interrupted after sealing with the next key: finish it.
        if (!fs::exists(next_key)) throw;
        cipher = std::make_shared<const security::SecretCipher>(security::load_or_create_key(next_key, 32));
        environment_ = std::make_unique<Environment>(*store_, cipher);
        fs::rename(next_key, key_file);
    }
    auth_ = std::make_unique<Auth>(*store_, options_.data_dir, options_.jwt_private_key.value_or(fs::path()),
                                   options_.jwt_public_key.value_or(fs::path()));
    if (auto written = auth_->bootstrap()) {
        // Printed this once only: the password itself stays in the 0600 file, never in a log.
        Poco::Logger::get("sluice.node")
            .warning("created user 'admin' with a random password, stored in " + fs::absolute(*written).string() +
                     " (readable by this user only); log in with `sluice login`");
    }
    Environment* environment = environment_.get();
    pumps_ = std::make_unique<PumpManager>(
        *store_, [environment](const std::string& name) { return environment->secret(name); }, options_.workers);
    orchestrator_ = std::make_unique<Orchestrator>(*pumps_, *store_, [this] { return config(); });
    restore_config();
    pumps_->apply(config());
    pumps_->start();

    const Poco::Net::SocketAddress address(options_.bind_address, options_.port);
    const bool tls = options_.tls_cert || options_.tls_key;
    std::unique_ptr<Poco::Net::ServerSocket> socket;
    if (tls) {
        if (!options_.tls_cert || !options_.tls_key) throw std::runtime_error("--tls-cert and --tls-key go together");
        for (const fs::path& f : {*options_.tls_cert, *options_.tls_key})
            if (!fs::is_regular_file(f)) throw std::runtime_error("TLS file " + f.string() + " does not exist");
        static std::once_flag ssl_once;
        std::call_once(ssl_once, [] { Poco::Net::initializeSSL(); });
        Poco::Net::Context::Ptr context = new Poco::Net::Context(
            Poco::Net::Context::TLS_SERVER_USE, options_.tls_key->string(), options_.tls_cert->string(), "",
            Poco::Net::Context::VERIFY_NONE);
        context->disableProtocols(Poco::Net::Context::PROTO_SSLV2 | Poco::Net::Context::PROTO_SSLV3 |
                                  Poco::Net::Context::PROTO_TLSV1 | Poco::Net::Context::PROTO_TLSV1_1);
        socket = std::make_unique<Poco::Net::SecureServerSocket>(address, 64, context);
    } else {
        socket = std::make_unique<Poco::Net::ServerSocket>(address);
    }
    port_ = socket->address().port();
    auto params = new Poco::Net::HTTPServerParams;  // owned by the server (Poco::AutoPtr)
    params->setMaxThreads(16);
    params->setMaxQueued(256);
    params->setKeepAlive(true);
    // A client that stalls mid-request (slowloris) is dropped after this, freeing its thread.
    params->setTimeout(Poco::Timespan(options_.request_timeout_seconds, 0));
    params->setKeepAliveTimeout(Poco::Timespan(std::min(options_.request_timeout_seconds, 15), 0));
    http_ = std::make_unique<Poco::Net::HTTPServer>(make_api_factory(*this), *socket, params);
    http_->start();
    start_sync_thread();

    std::ofstream(options_.data_dir / "sluice.port") << port_ << "\n";
    Poco::Logger::get("sluice.node")
        .information(std::string("Sluice API listening on ") + (tls ? "https" : "http") + "://" +
                     options_.bind_address + ":" + std::to_string(port_) + "/api (storage: " + storage_description_ +
                     ")");
}

void Node::stop() {
    stop_sync_thread();
    if (http_) {
        http_->stopAll(true);
        http_.reset();
    }
    orchestrator_.reset();
    if (pumps_) pumps_->stop();
    pumps_.reset();
    store_.reset();
    managed_postgres_.reset();
}

void Node::rotate_secrets_key() {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    const fs::path file = options_.data_dir / "secrets.key", next = options_.data_dir / "secrets.key.next";
    const std::string key = security::random_bytes(32);
    // The new key is on disk (beside the old one) before any value is sealed with it, so a crash
    // in between leaves a key that opens what storage holds: secrets.key.previous or secrets.key.
    security::write_private_file(next, key);
    try {
        environment_->set_cipher(std::make_shared<const security::SecretCipher>(key));
    } catch (const SecretsKeyMismatch&) {
        // Refused before anything was sealed with the new key: it must not be taken up at the
        // next start (Node::start finishes an interrupted rotation with secrets.key.next).
        fs::remove(next);
        throw;
    }
    fs::rename(file, options_.data_dir / "secrets.key.previous");
    fs::rename(next, file);
    fs::remove(options_.data_dir / "secrets.key.previous");
}

SecretResolver Node::secret_resolver() {
    Environment* environment = environment_.get();
    return [environment](const std::string& name) { return environment->secret(name); };
}

void Node::restart() {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    pumps_->stop();
    pumps_->apply(config());
    pumps_->start();
    start_time_us_ = now_us();
}

std::shared_ptr<const NodeConfig> Node::config() const {
    std::lock_guard<std::mutex> lock(config_mutex_);
    return config_;
}

JsonDocument Node::config_entities() const {
    std::lock_guard<std::mutex> lock(config_mutex_);
    JsonDocument copy;
    copy.CopyFrom(unbuildable_config_ ? static_cast<const Json&>(*unbuildable_config_) : config_->entities(),
                  copy.GetAllocator());
    return copy;
}

std::shared_ptr<const NodeConfig> Node::modify_config(const std::function<void(JsonDocument&)>& edit) {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    sync_locked();
    // The edit starts from the stored configuration, whichever node stored it, even when it does
    // not build here: the result must then build here too (400 naming what is missing), and
    // never is this node's older copy written back.
    JsonDocument entities = config_entities();
    edit(entities);
    return apply_config_locked(entities);
}

std::shared_ptr<const NodeConfig> Node::apply_config(const Json& entities) {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    environment_->reload();  // built with the latest variables
    return apply_config_locked(entities);
}

// Variables are stored only once the stored configuration builds with them; the configuration
// itself is not written (it did not change), so another node's edit to it is never overwritten.
void Node::set_environment(const Json& object, bool replace) {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    sync_locked();
    const JsonDocument entities = config_entities();
    std::shared_ptr<const NodeConfig> next;
    environment_->set_variables(object, replace, builds_with(entities, next));
    install_locked(next);
}

bool Node::erase_environment_variable(const std::string& name) {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    sync_locked();
    const JsonDocument entities = config_entities();
    std::shared_ptr<const NodeConfig> next;
    if (!environment_->erase_variable(name, builds_with(entities, next))) return false;
    install_locked(next);
    return true;
}

Environment::VariablesCheck Node::builds_with(const Json& entities, std::shared_ptr<const NodeConfig>& built) {
    return [this, &entities, &built](const Json& variables) {
        built = NodeConfig::build(entities, registry_, &variables);  // ConfigError: the variables are not stored
    };
}

std::shared_ptr<const NodeConfig> Node::apply_config_locked(const Json& entities) {
    JsonDocument variables = environment_->variables();
    auto next = NodeConfig::build(entities, registry_, &variables);  // throws ConfigError: nothing changed
    JsonDocument history(rapidjson::kObjectType);
    auto& a = history.GetAllocator();
    history.AddMember("op", "state_put_history", a);
    history.AddMember("key", Json(kConfigKey, a), a);
    history.AddMember("value", Json(next->entities(), a), a);
    try {
        store_->command(history);
    } catch (const StorageError&) {
        store_->state_put(kConfigKey, next->entities());  // backends without history
    }
    // What was written, not read back: another node's write in between must still look new to
    // the next sync. (A backend that normalises the JSON costs one identical rebuild there.)
    synced_config_text_ = to_json(next->entities());
    install_locked(next, /*removed_from_storage=*/true);
    return next;
}

void Node::install_locked(const std::shared_ptr<const NodeConfig>& next, bool removed_from_storage,
                          std::shared_ptr<const JsonDocument> unbuildable, std::string error) {
    {
        std::lock_guard<std::mutex> lock(config_mutex_);
        config_ = next;
        unbuildable_config_ = std::move(unbuildable);
        stored_config_error_ = std::move(error);
    }
    if (pumps_) pumps_->apply(next, removed_from_storage);
}

std::string Node::stored_config_error() const {
    std::lock_guard<std::mutex> lock(config_mutex_);
    return stored_config_error_;
}

void Node::sync_from_storage() {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    sync_locked();
}

void Node::sync_locked() {
    bool variables_changed = environment_->reload();
    for (int attempt = 1;; ++attempt) {
        JsonDocument stored = store_->state_get(kConfigKey);
        const std::string text = stored.IsArray() ? to_json(stored) : std::string();
        if (text.empty() || (text == synced_config_text_ && !variables_changed)) break;
        JsonDocument variables = environment_->variables();
        try {
            install_locked(NodeConfig::build(stored, registry_, &variables));
        } catch (const ConfigError& e) {
            // The variables and the configuration are two reads: another node's new variable
            // and then a configuration using it can be seen half. Both are read again once
            // before the configuration counts as not building here.
            if (attempt == 1) {
                environment_->reload();
                variables_changed = true;
                continue;
            }
            // Valid where it was stored, not here: most likely a plugin this node lacks (every
            // node sharing the storage must load the same plugins), or one removed since. The
            // node runs no pipe rather than an older version of them beside the nodes running
            // the new one (their disable flags stay: the others still run them), and answers 503
            // on /api/health (out of a load balancer's rotation), until the configuration, the
            // variables or its plugins change. Said once per stored configuration: only a
            // variable changed when this one is already the unbuildable one.
            // (unbuildable_config_ is written under apply_mutex_ only, which this holds.)
            const bool already_failing = unbuildable_config_ && text == synced_config_text_;
            if (!already_failing) {
                Poco::Logger::get("sluice.node")
                    .error(std::string("the stored configuration is not valid on this node; running no pipe until "
                                       "it is: ") + e.what());
                install_locked(NodeConfig::empty(), false, std::make_shared<const JsonDocument>(std::move(stored)),
                               e.what());
            }
        }
        synced_config_text_ = text;
        break;
    }
    if (pumps_) pumps_->refresh_disabled();
}

void Node::start_sync_thread() {
    // Memory storage is this process's own: nothing another node could have changed.
    if (options_.storage == "memory") return;
    sync_stop_ = false;
    sync_thread_ = std::thread([this] {
        std::unique_lock<std::mutex> lock(sync_mutex_);
        while (!sync_wake_.wait_for(lock, std::chrono::microseconds(kSyncMicros), [this] { return sync_stop_; })) {
            lock.unlock();
            try {
                sync_from_storage();
                if (sync_failing_) Poco::Logger::get("sluice.node").information("reading shared changes from storage again");
                sync_failing_ = false;
            } catch (const std::exception& e) {
                if (!sync_failing_)
                    Poco::Logger::get("sluice.node")
                        .warning(std::string("cannot read changes other nodes stored (retrying every 2 s): ") + e.what());
                sync_failing_ = true;
            }
            lock.lock();
        }
    });
}

void Node::stop_sync_thread() {
    {
        std::lock_guard<std::mutex> lock(sync_mutex_);
        sync_stop_ = true;
    }
    sync_wake_.notify_all();
    if (sync_thread_.joinable()) sync_thread_.join();
}

}  // namespace sluice::kernel

#include <sluice/kernel/api.hpp>
#include <sluice/kernel/host_context.hpp>
#include <sluice/kernel/node.hpp>

#include <Poco/Logger.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <fstream>

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
    JsonDocument stored = store_->state_get(kConfigKey);
    if (stored.IsArray()) {
        try {
            std::lock_guard<std::mutex> lock(config_mutex_);
            JsonDocument variables = environment_->variables();
            config_ = NodeConfig::build(stored, registry_, &variables);
        } catch (const ConfigError& e) {
            // A plugin the stored config needs may be missing now: serve, but say why pipes are absent.
            Poco::Logger::get("sluice.node").error(std::string("stored configuration is not valid any more; "
                                                               "starting with none: ") + e.what());
        }
    }
    if (options_.config_file) {
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
    environment_ = std::make_unique<Environment>(*store_);
    Environment* environment = environment_.get();
    pumps_ = std::make_unique<PumpManager>(
        *store_, [environment](const std::string& name) { return environment->secret(name); }, options_.workers);
    orchestrator_ = std::make_unique<Orchestrator>(*pumps_, *store_, [this] { return config(); });
    restore_config();
    pumps_->apply(config());
    pumps_->start();

    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress(options_.bind_address, options_.port));
    port_ = socket.address().port();
    auto params = new Poco::Net::HTTPServerParams;  // owned by the server (Poco::AutoPtr)
    params->setMaxThreads(16);
    params->setMaxQueued(256);
    params->setKeepAlive(true);
    http_ = std::make_unique<Poco::Net::HTTPServer>(make_api_factory(*this), socket, params);
    http_->start();

    std::ofstream(options_.data_dir / "sluice.port") << port_ << "\n";
    Poco::Logger::get("sluice.node")
        .information("Sluice API listening on http://" + options_.bind_address + ":" + std::to_string(port_) +
                     "/api (storage: " + storage_description_ + ")");
}

void Node::stop() {
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

std::shared_ptr<const NodeConfig> Node::modify_config(const std::function<void(JsonDocument&)>& edit) {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    JsonDocument entities;
    entities.CopyFrom(config()->entities(), entities.GetAllocator());
    edit(entities);
    return apply_config_locked(entities);
}

std::shared_ptr<const NodeConfig> Node::apply_config(const Json& entities) {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    return apply_config_locked(entities);
}

void Node::set_environment(const Json& object, bool replace) {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    JsonDocument previous = environment_->variables();
    environment_->set_variables(object, replace);
    try {
        apply_config_locked(config()->entities());
    } catch (...) {
        environment_->set_variables(previous, true);
        throw;
    }
}

bool Node::erase_environment_variable(const std::string& name) {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    JsonDocument previous = environment_->variables();
    if (!environment_->erase_variable(name)) return false;
    try {
        apply_config_locked(config()->entities());
    } catch (...) {
        environment_->set_variables(previous, true);
        throw;
    }
    return true;
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
    {
        std::lock_guard<std::mutex> lock(config_mutex_);
        config_ = next;
    }
    if (pumps_) pumps_->apply(next);
    return next;
}

}  // namespace sluice::kernel

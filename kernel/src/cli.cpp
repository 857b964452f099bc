#include <sluice/kernel/cli.hpp>
#include <sluice/kernel/transform_tool.hpp>
#include <sluice/kernel/client.hpp>
#include <sluice/kernel/node.hpp>
#include <sluice/kernel/security.hpp>

#include <Poco/AutoPtr.h>
#include <Poco/Channel.h>
#include <Poco/Message.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/FormattingChannel.h>
#include <Poco/Logger.h>
#include <Poco/PatternFormatter.h>
#include <Poco/Util/ServerApplication.h>

#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>

namespace sluice::kernel {

namespace fs = std::filesystem;

namespace {

const char* kUsage = R"(usage: sluice <command> [options]

commands:
  serve      run a node
  login      get a token from a node and keep it for the other commands
  upload     upload a Sesam-layout working directory (pipes/, systems/, ...) to a node
  download   replace the working directory's configuration files with the node's
  status     compare the node's configuration with the working directory's
  run        run a pipe (or all pipes until stable) on a node and wait for the result
  test       upload, run all pipes until stable, and check the output against expected/*.test.json
  version    print the version and plugin ABI
  dtl        evaluate DTL: `sluice dtl eval '<expr>' [--source '<entity>']`, `sluice dtl run T.json < in.json`

sluice serve [options]
  --port P             HTTP port (default 9042; 0 picks a free one, written to <data-dir>/sluice.port)
  --bind ADDR          address to listen on (default 127.0.0.1)
  --data-dir D         where the node keeps its state (default ./sluice-data)
  --config FILE        a Sesam-format configuration (JSON array) to apply at start
  --plugin-dir DIR     load plugins from DIR too (repeatable)
  --plugin FILE        load one plugin library (repeatable)
  --storage TYPE       storage backend: postgres (default) or memory (nothing survives a restart)
  --postgres DSN       use this PostgreSQL instead of the managed local one
  --workers N          pipe runs in parallel (default 4)
  --log-level LEVEL    error, warning, information (default) or debug
  --tls-cert FILE      serve HTTPS with this PEM certificate (with --tls-key)
  --tls-key FILE       the certificate's PEM private key
  --jwt-private-key F  sign tokens RS256 with this PEM RSA key (default: HS256, <data-dir>/jwt.key)
  --jwt-public-key F   verify RS256 tokens with this PEM public key (default: from the private key)
  --max-body-bytes N   largest request body accepted (default 67108864; larger: 413)
  --max-header-bytes N largest request line + headers (default 16384; larger: 431)
  --max-json-depth N   deepest JSON nesting accepted in a request (default 128; deeper: 400)
  --request-timeout S  seconds a connection may stall mid-request (default 60)
  Every endpoint but /api/ping and /api/health needs a token (docs/security.md). On first
  start the `admin` user gets $SLUICE_ADMIN_PASSWORD, else a random password written to
  <data-dir>/admin-password.

Client commands talk to a node over HTTP (docs/cli.md). Every one takes
  --node URL           the node (default $SLUICE_NODE, else NODE= in a .syncconfig found in the
                       current directory or above, else http://127.0.0.1:9042)
  --token T            bearer token (default $SLUICE_TOKEN, else JWT= in .syncconfig, else the
                       token `sluice login` stored for the node)

sluice login [--user U] [--expires-in S] [--print]
  Asks for the password (or reads $SLUICE_PASSWORD), gets a token from POST /api/auth/token and
  stores it (0600) for later commands; --print writes the token to stdout instead.

sluice upload [DIR] [--profile P]
  Checks DIR (default .) locally, PUTs <P>-env.json (P default "test") to /api/env, the config to
  /api/config, then POSTs testdata/<pipe>.json to /api/receivers/<pipe>/entities.
sluice download [DIR]
  Writes pipes/<id>.conf.json, systems/<id>.conf.json and node-metadata.conf.json; removes
  local pipe and system files the node does not have.
sluice status [DIR] [--diff] [--profile P]
  Lists the files that differ from the node (--diff shows how); exit 0 when in sync, else 1.
sluice run PIPE [--with-upstream] [--full] [--timeout S]
  Starts the pipe (--full: a rescan; --with-upstream: with every pipe upstream of it, leaves
  first) and waits for it; exit 1 with the run's error if it failed.
sluice run [--zero-runs N] [--max-run-time S] [--max-runs N] [--sync] [--no-reset]
  Runs all pipes until stable (Sesam's run-all-pipes) and prints the runner's log.
sluice test [DIR] [--no-upload] [--update] [--profile P] [--runs N] [--print-log]
           [--zero-runs N] [--max-run-time S] [--max-runs N] [--sync] [--no-reset]
  upload, run all pipes until stable, then compare every expected/*.test.json spec's output
  with its expected file, printing a diff for each failure; exit 1 if any fails.
  --update writes the expected files from the current output instead.
)";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Splits "--name value" / "--name=value" options; repeatable options keep every value.
std::multimap<std::string, std::string> parse_options(const std::vector<std::string>& args,
                                                      const std::vector<std::string>& known) {
    std::multimap<std::string, std::string> out;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string arg = args[i];
        if (arg.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + arg + "'");
        std::string name = arg.substr(2), value;
        if (size_t eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
        } else {
            if (i + 1 >= args.size()) throw UsageError("option --" + name + " needs a value");
            value = args[++i];
        }
        if (std::find(known.begin(), known.end(), name) == known.end()) throw UsageError("unknown option --" + name);
        out.emplace(name, value);
    }
    return out;
}

// Masks every known secret value in a log line before it is formatted and written, whichever
// component logged it (plugin errors can carry a DSN or a password).
class RedactingChannel : public Poco::Channel {
public:
    explicit RedactingChannel(Poco::AutoPtr<Poco::Channel> next) : next_(std::move(next)) {}
    void log(const Poco::Message& message) override {
        Poco::Message copy(message);
        copy.setText(security::redact(message.getText()));
        next_->log(copy);
    }

private:
    Poco::AutoPtr<Poco::Channel> next_;
};

void configure_logging(const std::string& level) {
    Poco::AutoPtr<Poco::PatternFormatter> formatter(new Poco::PatternFormatter("%Y-%m-%d %H:%M:%S.%i %p %s: %t"));
    Poco::AutoPtr<Poco::FormattingChannel> formatting(new Poco::FormattingChannel(formatter, new Poco::ConsoleChannel));
    Poco::AutoPtr<Poco::Channel> channel(new RedactingChannel(formatting));
    Poco::Logger::root().setChannel(channel);
    Poco::Logger::root().setLevel(level);
    // Loggers created before this call keep their old channel: update every existing one.
    std::vector<std::string> names;
    Poco::Logger::names(names);
    for (const std::string& name : names) {
        Poco::Logger::get(name).setChannel(channel);
        Poco::Logger::get(name).setLevel(level);
    }
}

fs::path executable_dir() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::current_path() : exe.parent_path();
}

class ServeApp : public Poco::Util::ServerApplication {
public:
    ServeApp(NodeOptions options, std::string log_level)
        : options_(std::move(options)), log_level_(std::move(log_level)) {}

protected:
    void defineOptions(Poco::Util::OptionSet&) override {
        stopOptionsProcessing();  // options were parsed by run_cli
    }

    // Logging is set up here, not before: constructing a Poco Application gives every logger a
    // plain ConsoleChannel, which would replace the redacting channel (secrets in log lines).
    void initialize(Poco::Util::Application& self) override {
        ServerApplication::initialize(self);
        configure_logging(log_level_);
    }

    int main(const std::vector<std::string>&) override {
        Node node(options_);
        try {
            node.start();
        } catch (const std::exception& e) {
            std::cerr << "sluice: cannot start: " << e.what() << "\n";
            return EXIT_SOFTWARE;
        }
        const std::string scheme = options_.tls_cert ? "https://" : "http://";
        std::cout << "Sluice is running.\n  API: " << scheme << options_.bind_address << ":" << node.port()
                  << "/api\n  UI:  " << scheme << options_.bind_address << ":" << node.port()
                  << "/ui\n  Data: " << fs::absolute(options_.data_dir).string()
                  << "\n  Stop with Ctrl-C (SIGINT) or SIGTERM.\n"
                  << std::flush;
        waitForTerminationRequest();
        Poco::Logger::get("sluice.node").information("shutting down");
        node.stop();
        return EXIT_OK;
    }

private:
    NodeOptions options_;
    std::string log_level_;
};

int serve(const std::vector<std::string>& args) {
    auto opts = parse_options(args, {"port", "bind", "data-dir", "config", "plugin-dir", "plugin", "storage",
                                     "postgres", "workers", "log-level", "tls-cert", "tls-key", "jwt-private-key", "jwt-public-key", "max-body-bytes",
                                     "max-header-bytes", "max-json-depth", "request-timeout"});
    auto one = [&](const std::string& name) -> std::optional<std::string> {
        auto range = opts.equal_range(name);
        if (range.first == range.second) return std::nullopt;
        return std::prev(range.second)->second;
    };
    NodeOptions options;
    if (auto port = one("port")) {
        int p = std::stoi(*port);
        if (p < 0 || p > 65535) throw UsageError("--port must be 0..65535");
        options.port = static_cast<uint16_t>(p);
    }
    if (auto bind = one("bind")) options.bind_address = *bind;
    if (auto dir = one("data-dir")) options.data_dir = *dir;
    if (auto config = one("config")) options.config_file = *config;
    if (auto storage = one("storage")) options.storage = *storage;
    if (auto dsn = one("postgres")) {
        options.postgres_dsn = *dsn;
        options.storage = "postgres";
    }
    if (auto workers = one("workers")) options.workers = static_cast<size_t>(std::max(1, std::stoi(*workers)));
    if (auto cert = one("tls-cert")) options.tls_cert = *cert;
    if (auto key = one("tls-key")) options.tls_key = *key;
    if (auto key = one("jwt-private-key")) options.jwt_private_key = *key;
    if (auto key = one("jwt-public-key")) options.jwt_public_key = *key;
    auto positive = [&](const char* name, size_t fallback) -> size_t {
        auto v = one(name);
        if (!v) return fallback;
        long long n = 0;
        try {
            n = std::stoll(*v);
        } catch (const std::exception&) {
            n = 0;
        }
        if (n <= 0) throw UsageError(std::string("--") + name + " needs a positive number");
        return static_cast<size_t>(n);
    };
    options.max_body_bytes = positive("max-body-bytes", options.max_body_bytes);
    options.max_header_bytes = positive("max-header-bytes", options.max_header_bytes);
    options.max_json_depth = positive("max-json-depth", options.max_json_depth);
    options.request_timeout_seconds =
        static_cast<int>(positive("request-timeout", static_cast<size_t>(options.request_timeout_seconds)));
    auto range = opts.equal_range("plugin-dir");
    for (auto it = range.first; it != range.second; ++it) options.plugin_dirs.emplace_back(it->second);
    range = opts.equal_range("plugin");
    for (auto it = range.first; it != range.second; ++it) options.plugin_files.emplace_back(it->second);
    options.builtin_plugin_dir = (executable_dir() / ".." / "lib" / "sluice" / "plugins").lexically_normal();
    const std::string log_level = one("log-level").value_or("information");
    if (log_level != "error" && log_level != "warning" && log_level != "information" && log_level != "debug")
        throw UsageError("--log-level must be error, warning, information or debug");

    // Block the termination signals before any thread starts, so every thread inherits the mask
    // and waitForTerminationRequest() (sigwait) is the one place that receives them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    ServeApp app(options, log_level);
    std::vector<std::string> argv{"sluice"};
    return app.run(argv);
}

}  // namespace

int run_cli(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        std::cout << kUsage;
        return args.empty() ? 2 : 0;
    }
    const std::string command = args[0];
    std::vector<std::string> rest(args.begin() + 1, args.end());
    try {
        if (command == "serve") return serve(rest);
        if (command == "dtl") return run_dtl_command(rest);
        if (client::is_client_command(command)) return client::run_client(command, rest);
        if (command == "version") {
            std::cout << "sluice " << SLUICE_VERSION << " (plugin ABI " << SLUICE_ABI_MAJOR << "." << SLUICE_ABI_MINOR
                      << ")\n";
            return 0;
        }
        throw UsageError("unknown command '" + command + "'");
    } catch (const UsageError& e) {
        std::cerr << "sluice: " << e.what() << "\n\n" << kUsage;
        return 2;
    } catch (const client::UsageError& e) {
        std::cerr << "sluice: " << e.what() << "\n\n" << kUsage;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "sluice: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace sluice::kernel

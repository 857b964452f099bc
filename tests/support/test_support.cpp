#include "test_support.hpp"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::test {

TempDir::TempDir(const std::string& prefix) {
    const char* tmp = std::getenv("TMPDIR");
    fs::path base = tmp && *tmp ? fs::path(tmp) : fs::temp_directory_path();
    std::random_device rd;
    for (int attempt = 0; attempt < 100; ++attempt) {
        fs::path candidate = base / (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000));
        std::error_code ec;
        if (fs::create_directory(candidate, ec)) {
            path_ = candidate;
            return;
        }
    }
    throw std::runtime_error("TempDir: cannot create a directory under " + base.string());
}

TempDir::~TempDir() {
    std::error_code ec;
    if (!std::getenv("SLUICE_KEEP_TEST_DIRS")) fs::remove_all(path_, ec);
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + file.string());
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void write_text(const fs::path& file, const std::string& text) {
    if (file.has_parent_path()) fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + file.string());
    out << text;
}

JsonDocument HttpResponse::json() const {
    JsonDocument doc;
    doc.Parse(body.data(), body.size());
    if (doc.HasParseError())
        throw std::runtime_error("response (HTTP " + std::to_string(status) + ") is not JSON: " + body.substr(0, 500));
    return doc;
}

namespace {

// What a started NodeProcess told us about its port: the admin token its requests carry and
// whether it speaks TLS. Keyed by port so plain http_request(port, ...) calls authenticate too.
struct PortInfo {
    std::string token;
    bool tls = false;
};
std::mutex ports_mutex;
std::map<int, PortInfo> ports;

PortInfo port_info(int port) {
    std::lock_guard<std::mutex> lock(ports_mutex);
    auto it = ports.find(port);
    return it == ports.end() ? PortInfo{} : it->second;
}

void set_port_info(int port, PortInfo info) {
    std::lock_guard<std::mutex> lock(ports_mutex);
    ports[port] = std::move(info);
}

}  // namespace

HttpResponse http_request(int port, const std::string& method, const std::string& path, const std::string& body,
                          const std::string& content_type, const std::map<std::string, std::string>& headers) {
    const PortInfo info = port_info(port);
    std::unique_ptr<Poco::Net::HTTPClientSession> owned;
    if (info.tls) {
        static std::once_flag once;
        std::call_once(once, [] { Poco::Net::initializeSSL(); });
        // The test nodes use throw-away self-signed certificates; tls_test checks verification.
        Poco::Net::Context::Ptr context =
            new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", "", Poco::Net::Context::VERIFY_NONE);
        owned = std::make_unique<Poco::Net::HTTPSClientSession>("127.0.0.1", static_cast<Poco::UInt16>(port), context);
    } else {
        owned = std::make_unique<Poco::Net::HTTPClientSession>("127.0.0.1", static_cast<Poco::UInt16>(port));
    }
    Poco::Net::HTTPClientSession& session = *owned;
    session.setTimeout(Poco::Timespan(120, 0));
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    // A node started by NodeProcess wants a token: its admin one, unless the caller passes its own
    // Authorization (an empty value sends none).
    if (!headers.count("Authorization") && !info.token.empty()) request.set("Authorization", "Bearer " + info.token);
    for (const auto& [name, value] : headers) {
        if (name == "Authorization" && value.empty()) continue;
        request.set(name, value);
    }
    if (!body.empty() || method == "POST" || method == "PUT") {
        request.setContentType(content_type);
        request.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    std::ostream& out = session.sendRequest(request);
    out << body;
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    HttpResponse result;
    result.status = static_cast<int>(response.getStatus());
    result.content_type = response.getContentType();
    for (const auto& [name, value] : response) result.headers[name] = value;
    Poco::StreamCopier::copyToString(in, result.body);
    return result;
}

fs::path sluice_binary() { return fs::path(SLUICE_TEST_BINARY_DIR) / "bin" / "sluice"; }

NodeProcess::NodeProcess(fs::path data_dir, std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)), args_(std::move(extra_args)) {}

NodeProcess::~NodeProcess() {
    if (pid_ > 0) kill();
}

std::string NodeProcess::log() const {
    std::error_code ec;
    if (!fs::exists(data_dir_ / "node.log", ec)) return {};
    return read_text(data_dir_ / "node.log");
}

void NodeProcess::start(std::chrono::seconds timeout) {
    if (pid_ > 0) throw std::logic_error("NodeProcess already started");
    fs::create_directories(data_dir_);
    fs::remove(data_dir_ / "sluice.port");
    std::vector<std::string> argv = {binary_.string(), "serve", "--port", "0", "--data-dir",
                                     data_dir_.string()};
    argv.insert(argv.end(), args_.begin(), args_.end());
    const bool tls = std::find(args_.begin(), args_.end(), "--tls-cert") != args_.end();
    // The environment, built before fork (the child may only exec): ours plus the admin password.
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        if (std::string(*e).rfind("SLUICE_ADMIN_PASSWORD=", 0) != 0) env.emplace_back(*e);
    }
    if (admin_password_) env.push_back("SLUICE_ADMIN_PASSWORD=" + *admin_password_);
    std::vector<char*> cenv;
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);

    const std::string log_path = (data_dir_ / "node.log").string();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            ::close(fd);
        }
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        ::execve(cargv[0], cargv.data(), cenv.data());
        ::_exit(127);
    }

    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!running()) throw std::runtime_error("sluice serve exited during start-up:\n" + log());
        std::error_code ec;
        if (fs::exists(data_dir_ / "sluice.port", ec)) {
            std::string text = read_text(data_dir_ / "sluice.port");
            if (!text.empty() && text.back() == '\n') {
                port_ = std::stoi(text);
                set_port_info(port_, PortInfo{"", tls});
                bool up = false;
                try {
                    up = get("/api/ping").status == 200;
                } catch (const std::exception&) {
                }
                if (up) {
                    login();
                    return;
                }
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill();
    throw std::runtime_error("sluice serve did not answer /api/ping in time:\n" + log());
}

std::string NodeProcess::password() const {
    if (admin_password_) return *admin_password_;
    std::string text = read_text(data_dir_ / "admin-password");
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

void NodeProcess::login() {
    std::string body = R"({"username":"admin","password":")" + password() + R"("})";
    HttpResponse r = http_request(port_, "POST", "/api/auth/token", body, "application/json", {{"Authorization", ""}});
    if (r.status != 200) throw std::runtime_error("cannot log in to the test node: HTTP " + std::to_string(r.status) + " " + r.body);
    JsonDocument doc = r.json();
    token_ = string_or(doc, "access_token", "");
    set_port_info(port_, PortInfo{token_, port_info(port_).tls});
}

bool NodeProcess::running() {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        pid_ = -1;
        return false;
    }
    return true;
}

int NodeProcess::stop(std::chrono::seconds timeout) {
    if (pid_ <= 0) return 0;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            pid_ = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    throw std::runtime_error("sluice serve did not stop within the timeout after SIGTERM");
}

void NodeProcess::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

void NodeProcess::wait_for_pipe_runs(const std::string& pipe_id, int runs, std::chrono::seconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string last;
    while (std::chrono::steady_clock::now() < deadline) {
        HttpResponse r = get("/api/pipes/" + pipe_id + "/pump");
        last = r.body;
        if (r.status == 200) {
            JsonDocument doc = r.json();
            const Json* runtime = find_member(doc, "runtime");
            if (runtime && runtime->IsObject()) {
                const Json* is_running = find_member(*runtime, "is-running");
                const Json* count = find_member(*runtime, "runs");
                if (is_running && is_running->IsBool() && !is_running->GetBool() && count &&
                    count->IsNumber() && count->GetInt64() >= runs)
                    return;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("pipe '" + pipe_id + "' did not complete " + std::to_string(runs) +
                             " run(s) in time; last pump status: " + last);
}

CommandResult run_command(const std::vector<std::string>& argv, const fs::path& cwd) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::dup2(pipe_fds[1], 1);
        ::dup2(pipe_fds[1], 2);
        ::close(pipe_fds[0]);
        ::close(pipe_fds[1]);
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
        std::vector<std::string> copy = argv;
        std::vector<char*> cargv;
        for (auto& a : copy) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        ::execvp(cargv[0], cargv.data());
        ::_exit(127);
    }
    ::close(pipe_fds[1]);
    CommandResult result;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0) result.output.append(buffer, static_cast<size_t>(n));
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return result;
}

}  // namespace sluice::test

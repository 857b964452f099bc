// Helpers shared by the test suites: temporary directories, a real `sluice serve` child process
// and a small HTTP client. Paths known at configure time arrive as SLUICE_TEST_* definitions.
#pragma once

#include <sluice/entity.hpp>

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sluice::test {

namespace fs = std::filesystem;

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "sluice-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& name) const { return path_ / name; }

private:
    fs::path path_;
};

std::string read_text(const fs::path& file);
void write_text(const fs::path& file, const std::string& text);

struct HttpResponse {
    int status = 0;
    std::string body;
    std::string content_type;
    std::map<std::string, std::string> headers;
    // The body parsed as JSON; throws std::runtime_error naming the body when it is not JSON.
    JsonDocument json() const;
};

// One HTTP/1.1 request to 127.0.0.1:port. Throws on connection failure. A port where a
// NodeProcess runs gets its admin token (and TLS) unless `headers` has an "Authorization" entry
// of its own (an empty one sends no token).
HttpResponse http_request(int port, const std::string& method, const std::string& path,
                          const std::string& body = {}, const std::string& content_type = "application/json",
                          const std::map<std::string, std::string>& headers = {});

// `sluice` built in this tree.
fs::path sluice_binary();

// A real `sluice serve` child process on an ephemeral port with its own data directory.
// Output goes to <data_dir>/node.log (see log()).
class NodeProcess {
public:
    // `extra_args` follow `serve --port 0 --data-dir <data_dir>`.
    NodeProcess(fs::path data_dir, std::vector<std::string> extra_args = {});
    ~NodeProcess();
    NodeProcess(const NodeProcess&) = delete;
    NodeProcess& operator=(const NodeProcess&) = delete;

    // Starts the process and waits until /api/ping answers; throws with the log on failure.
    void start(std::chrono::seconds timeout = std::chrono::seconds(60));
    // SIGTERM and wait; returns the exit status (-signal if killed by a signal).
    int stop(std::chrono::seconds timeout = std::chrono::seconds(30));
    // SIGKILL and reap, as a crash would.
    void kill();
    bool running();

    // The node's admin password: kTestAdminPassword via $SLUICE_ADMIN_PASSWORD by default;
    // nullopt lets the node generate one into <data_dir>/admin-password (read from there).
    static constexpr const char* kTestAdminPassword = "test-admin-password-0123";
    void set_admin_password(std::optional<std::string> password) { admin_password_ = std::move(password); }
    std::string password() const;
    // The admin JWT got at start; every request to this node carries it unless told otherwise.
    const std::string& token() const { return token_; }

    // Runs another `sluice` (e.g. an installed one) instead of the build tree's.
    void set_binary(fs::path binary) { binary_ = std::move(binary); }
    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    std::string log() const;
    const fs::path& data_dir() const { return data_dir_; }

    HttpResponse get(const std::string& path) const { return http_request(port_, "GET", path); }
    HttpResponse post(const std::string& path, const std::string& body,
                      const std::string& content_type = "application/json") const {
        return http_request(port_, "POST", path, body, content_type);
    }
    HttpResponse put(const std::string& path, const std::string& body) const {
        return http_request(port_, "PUT", path, body);
    }
    HttpResponse del(const std::string& path) const { return http_request(port_, "DELETE", path); }

    // Polls until the pipe's pump reports no running run and at least `runs` completed runs.
    void wait_for_pipe_runs(const std::string& pipe_id, int runs = 1,
                            std::chrono::seconds timeout = std::chrono::seconds(60)) const;

private:
    void login();
    fs::path data_dir_;
    fs::path binary_ = sluice_binary();
    std::optional<std::string> admin_password_ = std::string(kTestAdminPassword);
    std::string token_;
    std::vector<std::string> args_;
    pid_t pid_ = -1;
    int port_ = 0;
};

// Runs a command to completion; returns its exit status and captured stdout+stderr.
struct CommandResult {
    int status = -1;
    std::string output;
};
CommandResult run_command(const std::vector<std::string>& argv, const fs::path& cwd = {});

}  // namespace sluice::test

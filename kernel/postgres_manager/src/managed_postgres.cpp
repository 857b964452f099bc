#include <sluice/kernel/managed_postgres.hpp>

#include <libpq-fe.h>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::kernel {

namespace fs = std::filesystem;

namespace {

// Longest Unix socket path (sun_path is 108 bytes including the terminating NUL).
constexpr size_t kMaxSocketPath = 107;
const char* const kSocketName = ".s.PGSQL.5432";

std::string errno_text() { return std::strerror(errno); }

bool is_executable_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// Output of a shell-free command (argv[0] looked up in PATH), or "" when it cannot run.
std::string capture(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return {};
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        return {};
    }
    if (pid == 0) {
        ::dup2(fds[1], 1);
        int null = ::open("/dev/null", O_RDWR);
        if (null >= 0) {
            ::dup2(null, 0);
            ::dup2(null, 2);
        }
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) out.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) out.pop_back();
    return out;
}

// Where initdb, pg_ctl and postgres live.
fs::path find_bin_dir() {
    if (const char* env = std::getenv("SLUICE_PG_BINDIR"); env && *env) {
        if (is_executable_file(fs::path(env) / "initdb")) return env;
        throw std::runtime_error(std::string("SLUICE_PG_BINDIR=") + env + " has no initdb");
    }
    std::string bindir = capture({"pg_config", "--bindir"});
    if (!bindir.empty() && is_executable_file(fs::path(bindir) / "initdb")) return bindir;
    // Debian keeps the server binaries out of PATH: take the newest /usr/lib/postgresql/<v>/bin.
    fs::path best;
    long best_version = -1;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
        const std::string name = entry.path().filename().string();
        char* end = nullptr;
        long version = std::strtol(name.c_str(), &end, 10);
        if (end == name.c_str() || version <= best_version) continue;
        if (is_executable_file(entry.path() / "bin" / "initdb")) {
            best_version = version;
            best = entry.path() / "bin";
        }
    }
    if (best.empty())
        throw std::runtime_error(
            "no PostgreSQL server binaries found (pg_config --bindir has no initdb and there is no "
            "/usr/lib/postgresql/*/bin/initdb); install the postgresql package or set SLUICE_PG_BINDIR");
    return best;
}

fs::path find_program(const std::vector<std::string>& candidates) {
    for (const std::string& c : candidates)
        if (is_executable_file(c)) return c;
    return {};
}

// FNV-1a 64, for the short socket directory name.
std::string short_hash(const std::string& text) {
    uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

std::string dsn_value(const std::string& v) {
    bool plain = !v.empty() && v.find_first_of(" \t\n'\\=") == std::string::npos;
    if (plain) return v;
    std::string out = "'";
    for (char c : v) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void append_log(const fs::path& log, const std::string& line) {
    std::ofstream out(log, std::ios::app);
    out << "sluice: " << line << "\n";
}

bool process_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// Closes every descriptor above stderr (in a forked child: the postmaster must not inherit the
// host's sockets or our lock file).
void close_inherited_fds() {
#ifdef SYS_close_range
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
    for (int fd = 3; fd < 4096; ++fd) ::close(fd);
}

}  // namespace

ManagedPostgres::ManagedPostgres(fs::path dir) : dir_(fs::absolute(std::move(dir)).lexically_normal()) {
    if (dir_.has_filename() == false) dir_ = dir_.parent_path();
}

ManagedPostgres::~ManagedPostgres() {
    try {
        stop();
    } catch (...) {
        // A destructor must not throw; the log keeps the details.
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);
}

void ManagedPostgres::fail(const std::string& message) const {
    std::string text = read_file(log_file());
    // The last 30 lines.
    size_t pos = text.size();
    for (int lines = 0; pos > 0 && lines < 31; ) {
        --pos;
        if (text[pos] == '\n') ++lines;
    }
    std::string tail = text.substr(pos == 0 ? 0 : pos + 1);
    throw std::runtime_error("managed PostgreSQL in " + dir_.string() + ": " + message +
                             (tail.empty() ? std::string(" (log is empty)")
                                           : "\n--- last lines of " + log_file().string() + " ---\n" + tail));
}

long ManagedPostgres::postmaster_pid() const {
    std::ifstream in(data_dir() / "postmaster.pid");
    long pid = 0;
    if (in >> pid) return pid;
    return 0;
}

std::string ManagedPostgres::dsn() const {
    return "host=" + dsn_value(socket_dir_.string()) + " port=" + std::to_string(kPort) + " dbname=" + kDatabase +
           " user=" + kUser;
}

bool ManagedPostgres::running() const {
    if (socket_dir_.empty() || !process_alive(postmaster_pid())) return false;
    std::string ping = "host=" + dsn_value(socket_dir_.string()) + " port=" + std::to_string(kPort) +
                       " dbname=postgres user=" + kUser + " connect_timeout=5";
    return PQping(ping.c_str()) == PQPING_OK;
}

// Decides which OS user runs the cluster and makes sure it can reach and own the directory.
void ManagedPostgres::prepare_user() {
    if (::geteuid() != 0) {
        run_user_.clear();
        run_uid_ = ::geteuid();
        run_gid_ = ::getegid();
        return;
    }
    // PostgreSQL refuses to run as root.
    struct passwd* pw = ::getpwnam("postgres");
    if (!pw) pw = ::getpwnam("sluice");
    if (!pw) {
        fs::path useradd = find_program({"/usr/sbin/useradd", "/sbin/useradd", "/usr/bin/useradd"});
        if (useradd.empty()) fail("running as root, no 'postgres' user and no useradd to create a 'sluice' user");
        run_tool("create the system user 'sluice'", useradd.string(),
                 {"--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                  "/usr/sbin/nologin", "sluice"});
        pw = ::getpwnam("sluice");
        if (!pw) fail("useradd did not create the user 'sluice'");
    }
    run_user_ = pw->pw_name;
    run_uid_ = pw->pw_uid;
    run_gid_ = pw->pw_gid;

    // Every ancestor must be searchable by that user (e.g. a data dir under /root).
    for (fs::path p = dir_.parent_path(); !p.empty(); p = p.parent_path()) {
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0) {
            mode_t need = st.st_uid == run_uid_ ? S_IXUSR : st.st_gid == run_gid_ ? S_IXGRP : S_IXOTH;
            if (!(st.st_mode & need)) {
                if (::chmod(p.c_str(), (st.st_mode & 07777) | S_IXOTH) != 0)
                    fail("cannot let user '" + run_user_ + "' traverse " + p.string() + ": " + errno_text());
                append_log(log_file(), "chmod o+x " + p.string() + " so that user '" + run_user_ +
                                           "' can reach the cluster directory");
            }
        }
        if (p == p.root_path()) break;
    }
}

void ManagedPostgres::run_tool(const std::string& what, const std::string& tool, const std::vector<std::string>& args) {
    std::vector<std::string> argv;
    if (!run_user_.empty()) {
        fs::path runuser = find_program({"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"});
        fs::path setpriv = find_program({"/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"});
        if (!runuser.empty()) {
            argv = {runuser.string(), "-u", run_user_, "--"};
        } else if (!setpriv.empty()) {
            argv = {setpriv.string(), "--reuid=" + std::to_string(run_uid_), "--regid=" + std::to_string(run_gid_),
                    "--init-groups", "--"};
        } else {
            fail("running as root but neither runuser nor setpriv is available to run " + tool + " as " + run_user_);
        }
    }
    argv.push_back(tool);
    argv.insert(argv.end(), args.begin(), args.end());

    std::string logged = "running:";
    for (const std::string& a : argv) logged += " " + a;
    append_log(log_file(), logged);

    std::vector<char*> cargs;
    for (const std::string& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
    cargs.push_back(nullptr);
    const std::string log = log_file().string();
    const std::string cwd = dir_.string();

    pid_t pid = ::fork();
    if (pid < 0) fail("fork failed: " + errno_text());
    if (pid == 0) {
        // Only async-signal-safe calls from here on.
        if (::chdir(cwd.c_str()) != 0) ::_exit(126);
        int out = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
        int in = ::open("/dev/null", O_RDONLY);
        if (out < 0 || in < 0) ::_exit(126);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(out, 2);
        close_inherited_fds();
        ::execv(cargs[0], cargs.data());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) fail("waitpid failed: " + errno_text());
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                            : "signal " + std::to_string(WTERMSIG(status));
        fail(what + " failed (" + tool + ", " + how + ")");
    }
}

void ManagedPostgres::init_cluster() {
    std::error_code ec;
    if (fs::exists(data_dir() / "PG_VERSION", ec)) return;
    // A data directory without PG_VERSION is an interrupted initdb: nothing to keep.
    if (fs::exists(data_dir(), ec)) fs::remove_all(data_dir(), ec);
    fs::create_directories(data_dir(), ec);
    if (ec) fail("cannot create " + data_dir().string() + ": " + ec.message());
    ::chmod(data_dir().c_str(), 0700);
    if (!run_user_.empty() && ::chown(data_dir().c_str(), run_uid_, run_gid_) != 0)
        fail("cannot chown " + data_dir().string() + " to " + run_user_ + ": " + errno_text());
    run_tool("initdb", (bin_dir_ / "initdb").string(),
             {"-D", data_dir().string(), "-U", kUser, "--auth-local=trust", "--auth-host=reject", "--encoding=UTF8",
              "--locale=C"});
    std::ofstream conf(data_dir() / "postgresql.conf", std::ios::app);
    conf << "\n# Settings managed by Sluice (rewritten at every start).\ninclude_if_exists = 'sluice.conf'\n";
    if (!conf) fail("cannot append to postgresql.conf");
}

void ManagedPostgres::write_settings() {
    std::string sock = socket_dir_.string();
    std::string quoted;
    for (char c : sock) {
        if (c == '\'') quoted += '\'';
        quoted += c;
    }
    fs::path file = data_dir() / "sluice.conf";
    {
        std::ofstream out(file, std::ios::trunc);
        out << "# Written by Sluice's ManagedPostgres at every start; edit postgresql.auto.conf instead.\n"
               "listen_addresses = ''\n"
               "unix_socket_directories = '" << quoted << "'\n"
               "unix_socket_permissions = 0700\n"
               "port = " << kPort << "\n"
               "max_connections = 100\n"
               "shared_buffers = 128MB\n"
               "work_mem = 16MB\n"
               "maintenance_work_mem = 128MB\n"
               "fsync = on\n"
               "synchronous_commit = on\n"
               "full_page_writes = on\n"
               "wal_compression = off\n"
               "wal_buffers = 16MB\n"
               "max_wal_size = 2GB\n"
               "checkpoint_completion_target = 0.9\n"
               "random_page_cost = 1.1\n"
               "jit = off\n"
               "logging_collector = off\n"
               "log_min_messages = warning\n"
               "log_min_error_statement = error\n"
               "log_line_prefix = '%m [%p] '\n"
               "timezone = 'UTC'\n";
        if (!out) fail("cannot write " + file.string());
    }
    if (!run_user_.empty() && ::chown(file.c_str(), run_uid_, run_gid_) != 0)
        fail("cannot chown " + file.string() + ": " + errno_text());
}

// A postmaster.pid left by a killed run: adopt a still-running postmaster of this data
// directory, otherwise remove the file (and the socket lock) so the server starts.
void ManagedPostgres::clear_stale_pid() {
    fs::path pidfile = data_dir() / "postmaster.pid";
    std::error_code ec;
    if (!fs::exists(pidfile, ec)) return;
    long pid = postmaster_pid();
    if (process_alive(pid)) {
        std::error_code cwd_ec;
        fs::path cwd = fs::read_symlink("/proc/" + std::to_string(pid) + "/cwd", cwd_ec);
        std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
        if (!cwd_ec && fs::equivalent(cwd, data_dir(), cwd_ec) && cmdline.find("postgres") != std::string::npos)
            return;  // our postmaster is still up: start() adopts it
    }
    append_log(log_file(), "removing stale postmaster.pid (pid " + std::to_string(pid) + " is not running)");
    fs::remove(pidfile, ec);
    fs::remove(socket_dir_ / (std::string(kSocketName) + ".lock"), ec);
    fs::remove(socket_dir_ / kSocketName, ec);
}

void ManagedPostgres::create_database() {
    std::string conninfo = "host=" + dsn_value(socket_dir_.string()) + " port=" + std::to_string(kPort) +
                           " dbname=postgres user=" + kUser + " connect_timeout=10";
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK)
        fail(std::string("cannot connect to the started server: ") + PQerrorMessage(conn.get()));
    std::unique_ptr<PGresult, decltype(&PQclear)> r(
        PQexec(conn.get(), "SELECT 1 FROM pg_database WHERE datname = 'sluice'"), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) fail(std::string("query failed: ") + PQerrorMessage(conn.get()));
    if (PQntuples(r.get()) > 0) return;
    r.reset(PQexec(conn.get(), "CREATE DATABASE sluice"));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
        if (!state || std::string(state) != "42P04")  // duplicate_database: a concurrent creator won
            fail(std::string("CREATE DATABASE sluice failed: ") + PQerrorMessage(conn.get()));
    }
}

void ManagedPostgres::start() {
    if (started_ && running()) return;
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) throw std::runtime_error("managed PostgreSQL: cannot create " + dir_.string() + ": " + ec.message());
    ::chmod(dir_.c_str(), 0700);

    if (lock_fd_ < 0) {
        lock_fd_ = ::open((dir_ / "manager.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock_fd_ < 0) fail("cannot open manager.lock: " + errno_text());
        if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
            ::close(lock_fd_);
            lock_fd_ = -1;
            fail("the cluster directory is in use by another process (manager.lock is held)");
        }
    }

    bin_dir_ = find_bin_dir();
    prepare_user();

    // The socket directory: <dir>/run, or a short private one under /tmp when the socket path
    // would not fit in sun_path.
    socket_dir_ = dir_ / "run";
    if (socket_dir_.string().size() + 1 + std::strlen(kSocketName) + std::strlen(".lock") > kMaxSocketPath)
        socket_dir_ = fs::path("/tmp") / ("sluice-pg-" + short_hash(dir_.string()));
    if (::mkdir(socket_dir_.c_str(), 0700) != 0 && errno != EEXIST)
        fail("cannot create the socket directory " + socket_dir_.string() + ": " + errno_text());
    struct stat st {};
    if (::lstat(socket_dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        fail("socket directory " + socket_dir_.string() + " is not a directory");
    if (!run_user_.empty()) {
        if (st.st_uid != run_uid_ && st.st_uid != 0) fail("socket directory " + socket_dir_.string() +
                                                          " belongs to another user; refusing to use it");
        if (::chown(socket_dir_.c_str(), run_uid_, run_gid_) != 0)
            fail("cannot chown " + socket_dir_.string() + ": " + errno_text());
    } else if (st.st_uid != ::geteuid()) {
        fail("socket directory " + socket_dir_.string() + " belongs to another user; refusing to use it");
    }
    ::chmod(socket_dir_.c_str(), 0700);

    if (!run_user_.empty()) {
        // The cluster directory and log belong to the server's user.
        if (::chown(dir_.c_str(), run_uid_, run_gid_) != 0) fail("cannot chown " + dir_.string() + ": " + errno_text());
        std::ofstream(log_file(), std::ios::app).close();
        if (::chown(log_file().c_str(), run_uid_, run_gid_) != 0)
            fail("cannot chown " + log_file().string() + ": " + errno_text());
        struct stat dst {};
        if (::stat(data_dir().c_str(), &dst) == 0 && dst.st_uid != run_uid_) {
            // Created by another user earlier (e.g. before a `postgres` user existed).
            for (auto it = fs::recursive_directory_iterator(data_dir(), ec); !ec && it != fs::recursive_directory_iterator();
                 it.increment(ec))
                if (::lchown(it->path().c_str(), run_uid_, run_gid_) != 0) break;
            if (::chown(data_dir().c_str(), run_uid_, run_gid_) != 0)
                fail("cannot chown " + data_dir().string() + ": " + errno_text());
        }
    }

    init_cluster();
    write_settings();
    clear_stale_pid();

    if (!running()) {
        // Orphaned backends of a killed postmaster may hold its shared memory for a moment: retry.
        for (int attempt = 1;; ++attempt) {
            try {
                run_tool("pg_ctl start", (bin_dir_ / "pg_ctl").string(),
                         {"start", "-D", data_dir().string(), "-w", "-t", "120", "-s", "-l", log_file().string()});
                break;
            } catch (const std::runtime_error&) {
                if (attempt >= 5) throw;
                append_log(log_file(), "start attempt " + std::to_string(attempt) + " failed; retrying");
                std::this_thread::sleep_for(std::chrono::seconds(2));
                clear_stale_pid();
            }
        }
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!running()) {
        if (std::chrono::steady_clock::now() > deadline) fail("the server did not accept connections within 60 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    started_ = true;
    create_database();
}

void ManagedPostgres::stop() {
    if (socket_dir_.empty() || bin_dir_.empty()) return;  // never started
    if (process_alive(postmaster_pid())) {
        run_tool("pg_ctl stop", (bin_dir_ / "pg_ctl").string(),
                 {"stop", "-D", data_dir().string(), "-m", "fast", "-w", "-t", "60", "-s"});
    }
    started_ = false;
    if (lock_fd_ >= 0) {
        ::close(lock_fd_);
        lock_fd_ = -1;
    }
}

}  // namespace sluice::kernel

// ManagedPostgres: a private local PostgreSQL cluster kept in a directory (the embedded default
// when no PostgreSQL is configured).
//
//   ManagedPostgres pg("/var/lib/sluice/postgres");
//   pg.start();                 // initdb on first use, then pg_ctl start -w; creates db "sluice"
//   PQconnectdb(pg.dsn().c_str());
//   pg.stop();                  // also done by the destructor
//
// Layout of <dir>: data/ (PGDATA), postgres.log (initdb, pg_ctl and server output), run/ (the
// Unix socket directory, unless <dir> is too long for a socket path: then a private directory
// /tmp/sluice-pg-<hash of dir>), manager.lock (held while this object runs the cluster).
//
// Security: no TCP listener (listen_addresses = ''); trust authentication on the Unix socket
// only, whose directory is 0700 and owned by the cluster's user. When the process runs as root,
// initdb/postgres run as the `postgres` system user (else a `sluice` system user is created) via
// runuser; the cluster directory is chowned to that user, and any parent directory that user
// cannot traverse gets o+x (logged to postgres.log).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace sluice::kernel {

class ManagedPostgres {
public:
    explicit ManagedPostgres(std::filesystem::path dir);
    ~ManagedPostgres();
    ManagedPostgres(const ManagedPostgres&) = delete;
    ManagedPostgres& operator=(const ManagedPostgres&) = delete;

    // Initialises the cluster on first use, starts it (reusing an existing cluster; a stale
    // postmaster.pid from a killed run is cleared) and waits until it accepts connections;
    // creates the database "sluice". Throws std::runtime_error with the log tail on failure.
    void start();
    // pg_ctl stop -m fast (no-op when not running). Throws std::runtime_error on failure.
    void stop();
    // libpq keyword/value DSN: host=<socket dir> port=... dbname=sluice user=sluice.
    std::string dsn() const;
    // True while the postmaster of this cluster is alive and answers.
    bool running() const;

    const std::filesystem::path& dir() const { return dir_; }
    std::filesystem::path data_dir() const { return dir_ / "data"; }
    std::filesystem::path log_file() const { return dir_ / "postgres.log"; }
    const std::filesystem::path& socket_dir() const { return socket_dir_; }
    // Directory holding initdb/pg_ctl/postgres (pg_config --bindir, else the newest
    // /usr/lib/postgresql/*/bin; SLUICE_PG_BINDIR overrides).
    const std::filesystem::path& bin_dir() const { return bin_dir_; }
    // The OS user the server runs as ("" = this process's user).
    const std::string& run_user() const { return run_user_; }
    // PID of the postmaster (from postmaster.pid), or 0.
    long postmaster_pid() const;

    static constexpr int kPort = 5432;            // names the socket file only (no TCP)
    static constexpr const char* kDatabase = "sluice";
    static constexpr const char* kUser = "sluice"; // the cluster's superuser (initdb -U)

private:
    void prepare_user();
    void init_cluster();
    void write_settings();
    void clear_stale_pid();
    void create_database();
    void run_tool(const std::string& what, const std::string& tool, const std::vector<std::string>& args);
    [[noreturn]] void fail(const std::string& message) const;

    std::filesystem::path dir_;
    std::filesystem::path socket_dir_;
    std::filesystem::path bin_dir_;
    std::string run_user_;
    unsigned run_uid_ = 0, run_gid_ = 0;
    int lock_fd_ = -1;
    bool started_ = false;
};

}  // namespace sluice::kernel

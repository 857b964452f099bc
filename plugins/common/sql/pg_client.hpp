// Shared by the `sql` source and sink (plugins/sources/sql, plugins/sinks/sql): the
// `system:postgresql` system config, libpq connections whose errors name the system, and a
// per-plugin connection pool. Compiled into each plugin (no state is shared between the two
// libraries: each has its own pools).
//
// Errors: every failure is a sluice::Error whose message starts with "system '<id>': ". A
// transient failure (the server is unreachable, the connection dropped, too many connections,
// a deadlock or serialization failure, the pool is exhausted) is a sluice::RetryError
// (SLUICE_RETRY); anything else (wrong credentials, unknown database, missing table, a rejected
// row) is SLUICE_ERROR.
#pragma once

#include <libpq-fe.h>

#include <sluice/sdk.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::sql {

// ---- the system --------------------------------------------------------------------------------

// The effective `system:postgresql` config (secrets already substituted by the kernel).
struct SystemConfig {
    std::string id;  // the system's _id, named in every error
    std::string host = "localhost";
    std::string port = "5432";
    std::string database;
    std::string username;
    std::string password;
    std::string sslmode;               // "" = libpq's default (prefer)
    std::string timezone = "UTC";      // zone of timezone-less timestamps in the database
    int connect_timeout = 30;          // seconds
    size_t pool_size = 10;             // connections kept per plugin and system
    size_t pool_max_overflow = 10;     // extra connections allowed under load (closed on release)
    double pool_timeout = 30;          // seconds to wait for a free connection
    double pool_recycle = 1800;        // seconds after which an idle connection is reopened
    std::string application_name = "sluice";

    // Parses and checks args.system. `who` names the component in messages ("sql source").
    // Throws sluice::Error(SLUICE_FATAL) on a missing or unusable system.
    static SystemConfig parse(const Json& system, const std::string& who);

    // "host:port/database as user" (never the password).
    std::string describe() const;
    // Identifies the pool: every connection parameter.
    std::string pool_key() const;
    bool utc() const;
};

// ---- errors ------------------------------------------------------------------------------------

class PgError : public Error {
public:
    PgError(const std::string& message, std::string sqlstate, bool transient, std::string server_message = {},
            std::string context = {})
        : Error(message, transient ? SLUICE_RETRY : SLUICE_ERROR),
          sqlstate_(std::move(sqlstate)),
          server_message_(std::move(server_message)),
          context_(std::move(context)) {}
    const std::string& sqlstate() const { return sqlstate_; }
    // The server's message (+ detail) alone, and its CONTEXT line (e.g. "COPY t, line 3, column c").
    const std::string& server_message() const { return server_message_; }
    const std::string& context() const { return context_; }

private:
    std::string sqlstate_, server_message_, context_;
};

// True for SQLSTATEs worth a retry.
bool transient_sqlstate(std::string_view state);

// ---- results -----------------------------------------------------------------------------------

class Result {
public:
    Result() = default;
    explicit Result(PGresult* r) : r_(r, &PQclear) {}
    PGresult* get() const { return r_.get(); }
    explicit operator bool() const { return r_ != nullptr; }
    int rows() const { return PQntuples(r_.get()); }
    int columns() const { return PQnfields(r_.get()); }
    bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
    const char* data(int row, int col) const { return PQgetvalue(r_.get(), row, col); }
    int length(int row, int col) const { return PQgetlength(r_.get(), row, col); }
    std::string_view text(int row, int col) const {
        return {PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col))};
    }

private:
    std::unique_ptr<PGresult, decltype(&PQclear)> r_{nullptr, &PQclear};
};

// Text parameters (NULL allowed) for exec(); types are left to the server to infer.
struct Params {
    std::vector<std::string> values;
    std::vector<bool> nulls;
    Params& add(std::string v) {
        values.push_back(std::move(v));
        nulls.push_back(false);
        return *this;
    }
    Params& add_null() {
        values.emplace_back();
        nulls.push_back(true);
        return *this;
    }
};

// ---- connections -------------------------------------------------------------------------------

class Connection {
public:
    // Connects and prepares the session: UTC time zone, ISO dates, exact floats, UTF-8.
    // Wrong credentials / unknown database → PgError(SLUICE_ERROR); unreachable → RetryError.
    explicit Connection(const SystemConfig& system);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    PGconn* raw() const { return conn_; }
    const std::string& system_id() const { return system_id_; }
    bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
    // For an idle connection: reads whatever the server sent meanwhile (a termination notice, the
    // end of the stream) without blocking; false when the connection is gone.
    bool alive() {
        for (int i = 0; i < 2; ++i) {  // the server's goodbye (a FATAL notice), then end of stream
            if (PQconsumeInput(conn_) != 1) return false;
            PQisBusy(conn_);  // parses what arrived
            if (broken() || poisoned_) return false;
        }
        return true;
    }
    bool idle() const { return PQtransactionStatus(conn_) == PQTRANS_IDLE; }
    // Not to be reused (a cancel was sent, or a stream could not be stopped): the pool closes it.
    bool poisoned() const { return poisoned_; }
    std::chrono::steady_clock::time_point opened() const { return opened_; }

    // One or more statements without parameters. `what` describes it in errors (else the SQL).
    Result exec(const std::string& sql, const std::string& what = {});
    // One statement with text parameters; binary_result asks for binary columns.
    Result exec(const std::string& sql, const Params& params, bool binary_result = false,
                const std::string& what = {});
    // Queues a statement (no parameters) and returns at once; receive() waits for its result.
    void send(const std::string& sql, bool binary_result, const std::string& what = {});
    Result receive(const std::string& what);
    // Describes the columns `sql` would return without running it (names and type OIDs).
    Result describe(const std::string& sql, int param_count, const std::string& what);
    // COPY … FROM STDIN, streamed: copy_send() sends `sql` (which may start with other
    // statements, e.g. "BEGIN; COPY …") and returns at once, copy_ready() waits until the server
    // takes data, copy_put() sends rows as they are built (the server parses while the next rows
    // are built), copy_end() finishes and throws the server's error. `sql` may also go on after
    // the COPY ("…; COPY … FROM STDIN; MERGE …; COMMIT"): the server runs the rest of the string
    // once the data has ended, with no further round trip; copy_end() then waits for those
    // statements too and names a failure among them with `after`.
    void copy_send(const std::string& sql, const std::string& what);
    void copy_ready(const std::string& what);
    void copy_put(const std::string& data, const std::string& what);
    void copy_end(const std::string& what, const std::string& after = {});
    // Streams one query's rows (binary columns) in single-row mode: nothing but the current row
    // is held. Returns the next row (a PGRES_SINGLE_TUPLE result), or an empty Result at the end.
    void stream_begin(const std::string& sql, const Params& params, const std::string& what);
    Result stream_next(const std::string& what);
    // Asks the server to stop the running statement (a stream abandoned part way); the
    // connection is then closed rather than reused.
    void cancel();
    // Drains whatever is in flight (after an exception) so the connection can be reused: a COPY
    // in progress is ended, queued results read and dropped.
    void abandon();

    std::string ident(std::string_view name) const;    // "quoted" identifier
    std::string literal(std::string_view text) const;  // 'quoted' literal

    // Per-connection memo for the plugin (e.g. which temporary tables exist on this session).
    std::set<std::string>& memo() { return memo_; }

    // The PgError for a failed result (message: "system '<id>': <what>: <server message>").
    PgError error_for(PGresult* r, const std::string& what) const;

private:
    Result check(PGresult* r, const std::string& what);
    PGconn* conn_ = nullptr;
    std::string system_id_;
    std::chrono::steady_clock::time_point opened_;
    std::set<std::string> memo_;
    bool poisoned_ = false;
};

// ---- the pool ----------------------------------------------------------------------------------

class Pool {
public:
    explicit Pool(SystemConfig system) : system_(std::move(system)) {}

    class Lease {
    public:
        Lease(Pool* pool, std::unique_ptr<Connection> c) : pool_(pool), c_(std::move(c)) {}
        Lease(Lease&& o) noexcept : pool_(o.pool_), c_(std::move(o.c_)) {}
        Lease(const Lease&) = delete;
        ~Lease() {
            if (c_) pool_->release(std::move(c_));
        }
        Connection& operator*() { return *c_; }
        Connection* operator->() { return c_.get(); }

    private:
        Pool* pool_;
        std::unique_ptr<Connection> c_;
    };

    // A connection (an idle one, or a new one while under pool_size + pool_max_overflow);
    // waits up to pool_timeout, then throws RetryError.
    Lease acquire();
    const SystemConfig& system() const { return system_; }

    // The plugin-wide pool for a system (same parameters → same pool).
    static std::shared_ptr<Pool> for_system(const SystemConfig& system);

private:
    void release(std::unique_ptr<Connection> c);

    SystemConfig system_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<Connection>> idle_;
    size_t open_ = 0;
};

// BEGIN … COMMIT; ROLLBACK on destruction unless committed.
class Transaction {
public:
    // `begin` empty: the caller has already started the transaction (e.g. "BEGIN; COPY …").
    Transaction(Connection& c, const std::string& begin = "BEGIN") : c_(c) {
        if (!begin.empty()) c_.exec(begin);
    }
    ~Transaction();
    void commit() {
        c_.exec("COMMIT");
        done_ = true;
    }
    // The caller ran COMMIT itself (e.g. as the last of several statements sent at once).
    void committed() { done_ = true; }

private:
    Connection& c_;
    bool done_ = false;
};

// ---- names -------------------------------------------------------------------------------------

// A config value that is a string or a list of strings (primary_key, whitelist, ...).
// Throws sluice::Error(SLUICE_FATAL) naming `who` and `key` for any other shape.
std::vector<std::string> string_list(const Json& config, const char* key, const std::string& who);

}  // namespace sluice::sql

#include "pg.hpp"

#include <stdexcept>

namespace sluice::pg {

namespace {

// SQLSTATEs worth a retry: connection exceptions (08…), serialization failure, deadlock,
// lock timeout, query canceled by a timeout, server shutdown (57P0…), too many connections.
bool transient_state(const std::string& s) {
    return s.rfind("08", 0) == 0 || s == "40001" || s == "40P01" || s == "55P03" || s == "57014" ||
           s.rfind("57P0", 0) == 0 || s == "53300";
}

std::string trimmed(const char* message) {
    std::string m = message ? message : "";
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return m;
}

}  // namespace

int64_t Result::int64(int row, int col) const {
    std::string_view t = text(row, col);
    int64_t v = 0;
    bool neg = false;
    size_t i = 0;
    if (!t.empty() && t[0] == '-') {
        neg = true;
        i = 1;
    }
    for (; i < t.size(); ++i) v = v * 10 + (t[i] - '0');
    return neg ? -v : v;
}

int64_t Result::bin_int64(int row, int col) const {
    return static_cast<int64_t>(get_u64(PQgetvalue(r_.get(), row, col)));
}

void Params::materialize(std::vector<const char*>& values, std::vector<int>& lengths) const {
    values.resize(values_.size());
    lengths.resize(values_.size());
    for (size_t i = 0; i < values_.size(); ++i) {
        values[i] = nulls_[i] ? nullptr : values_[i].data();
        lengths[i] = static_cast<int>(values_[i].size());
    }
}

std::string ArrayBuilder::finish() const {
    std::string out;
    out.reserve(20 + body_.size());
    put_u32(out, 1);  // dimensions
    put_u32(out, 0);  // no NULLs
    put_u32(out, element_);
    put_u32(out, static_cast<uint32_t>(count_));
    put_u32(out, 1);  // lower bound
    out += body_;
    return out;
}

Connection::Connection(const std::string& dsn, int connect_timeout_s) {
    const char* keys[] = {"connect_timeout", "application_name", "client_encoding", "dbname", nullptr};
    std::string timeout = std::to_string(connect_timeout_s);
    const char* values[] = {timeout.c_str(), "sluice-storage-postgres", "UTF8", dsn.c_str(), nullptr};
    // expand_dbname=1: `dsn` may be a keyword/value string or a URI. Its settings win: libpq takes
    // the last value of a keyword, and the expanded dbname comes last.
    conn_ = PQconnectdbParams(keys, values, 1);
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
        std::string message = conn_ ? trimmed(PQerrorMessage(conn_)) : "out of memory";
        if (conn_) PQfinish(conn_);
        conn_ = nullptr;
        throw PgError("cannot connect to PostgreSQL: " + message, "08001", true);
    }
    // NOTICEs ("relation ... already exists, skipping") are expected; never print them.
    PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
}

Connection::~Connection() {
    if (conn_) PQfinish(conn_);
}

Result Connection::check(PGresult* raw, const std::string& what) {
    Result r(raw);
    ExecStatusType st = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN) return r;
    std::string state;
    if (raw) {
        if (const char* s = PQresultErrorField(raw, PG_DIAG_SQLSTATE)) state = s;
    }
    if (state.empty() && broken()) state = "08006";
    std::string message = raw ? trimmed(PQresultErrorMessage(raw)) : trimmed(PQerrorMessage(conn_));
    if (message.empty()) message = trimmed(PQerrorMessage(conn_));
    std::string head = what.substr(0, 80);
    throw PgError("PostgreSQL: " + message + " [" + state + "] in: " + head + (what.size() > 80 ? "…" : ""), state,
                  transient_state(state));
}

Result Connection::exec(const std::string& sql) { return check(PQexec(conn_, sql.c_str()), sql); }

Result Connection::exec(const std::string& sql, const Params& params, bool binary_result) {
    std::vector<const char*> values;
    std::vector<int> lengths;
    params.materialize(values, lengths);
    return check(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), params.types(), values.data(),
                              lengths.data(), params.formats(), binary_result ? 1 : 0),
                 sql);
}

void Connection::send(const std::string& sql, const Params& params, bool binary_result) {
    std::vector<const char*> values;
    std::vector<int> lengths;
    params.materialize(values, lengths);
    if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(params.size()), params.types(), values.data(),
                          lengths.data(), params.formats(), binary_result ? 1 : 0) != 1) {
        std::string state = broken() ? "08006" : "";
        throw PgError("PostgreSQL: cannot send: " + trimmed(PQerrorMessage(conn_)), state, broken());
    }
}

void Connection::send_prepared(const std::string& name, const std::string& sql, const Params& params,
                               bool binary_result) {
    if (!prepared_.count(name)) {
        check(PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(params.size()), params.types()), sql);
        prepared_.insert(name);
    }
    std::vector<const char*> values;
    std::vector<int> lengths;
    params.materialize(values, lengths);
    if (PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(params.size()), values.data(), lengths.data(),
                            params.formats(), binary_result ? 1 : 0) != 1) {
        std::string state = broken() ? "08006" : "";
        throw PgError("PostgreSQL: cannot send: " + trimmed(PQerrorMessage(conn_)), state, broken());
    }
}

void Connection::forget_prepared(const std::string& name) {
    if (!prepared_.erase(name)) return;
    try {
        exec("DEALLOCATE " + name);
    } catch (const PgError&) {
        // Inside a failed transaction; the statement stays allocated but unused.
    }
}

Result Connection::receive(const std::string& sql) {
    Result first;
    bool have = false;
    std::optional<PgError> failure;
    while (PGresult* r = PQgetResult(conn_)) {
        if (have) {
            PQclear(r);
            continue;
        }
        have = true;
        try {
            first = check(r, sql);
        } catch (const PgError& e) {
            failure = e;
        }
    }
    if (failure) throw *failure;
    if (!have) throw PgError("PostgreSQL: no result for: " + sql.substr(0, 80), "08006", true);
    return first;
}

void Connection::copy_in(const std::string& copy_sql, const std::string& data) {
    copy_begin(copy_sql);
    copy_put(data);
    copy_end(copy_sql);
}

void Connection::copy_begin(const std::string& copy_sql) {
    check(PQexec(conn_, copy_sql.c_str()), copy_sql);
    copy_failed_ = false;
}

void Connection::copy_put(std::string_view data) {
    // Large buffers go in pieces so libpq never needs one giant send buffer.
    const size_t piece = 1 << 20;
    for (size_t pos = 0; pos < data.size() && !copy_failed_; pos += piece) {
        int n = static_cast<int>(std::min(piece, data.size() - pos));
        if (PQputCopyData(conn_, data.data() + pos, n) != 1) {
            PQputCopyEnd(conn_, "client failed to send data");
            copy_failed_ = true;
        }
    }
}

void Connection::copy_abort() noexcept {
    PQputCopyEnd(conn_, "the client abandoned the COPY");
    while (PGresult* r = PQgetResult(conn_)) PQclear(r);
}

void Connection::copy_end(const std::string& copy_sql) {
    if (!copy_failed_ && PQputCopyEnd(conn_, nullptr) != 1)
        throw PgError("PostgreSQL: COPY failed: " + trimmed(PQerrorMessage(conn_)), "08006", true);
    // The COPY's own result, then the end of the command.
    PGresult* r;
    std::optional<PgError> failure;
    while ((r = PQgetResult(conn_)) != nullptr) {
        try {
            check(r, copy_sql);
        } catch (const PgError& e) {
            if (!failure) failure = e;
        }
    }
    if (failure) throw *failure;
}

std::string Connection::literal(std::string_view text) const {
    char* escaped = PQescapeLiteral(conn_, text.data(), text.size());
    if (!escaped) throw PgError("PostgreSQL: cannot escape a literal: " + trimmed(PQerrorMessage(conn_)), "", false);
    std::string out(escaped);
    PQfreemem(escaped);
    return out;
}

Pool::Pool(std::string dsn, size_t size, int connect_timeout_s, std::string session_sql)
    : dsn_(std::move(dsn)), size_(size), connect_timeout_s_(connect_timeout_s), session_sql_(std::move(session_sql)) {}

std::unique_ptr<Connection> Pool::open() {
    auto c = std::make_unique<Connection>(dsn_, connect_timeout_s_);
    if (!session_sql_.empty()) c->exec(session_sql_);
    return c;
}

Pool::Lease Pool::acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || open_count_ < size_; });
    if (!idle_.empty()) {
        std::unique_ptr<Connection> c = std::move(idle_.back());
        idle_.pop_back();
        if (!c->broken()) return Lease(this, std::move(c));
        --open_count_;  // dropped; reconnect below
    }
    ++open_count_;
    lock.unlock();
    try {
        return Lease(this, open());
    } catch (...) {
        lock.lock();
        --open_count_;
        available_.notify_one();
        throw;
    }
}

void Pool::release(std::unique_ptr<Connection> conn) {
    // A connection left inside a transaction (an exception between BEGIN and COMMIT that
    // escaped the Transaction guard) or a broken one is not reused.
    if (!conn->broken() && !conn->idle()) {
        try {
            conn->exec("ROLLBACK");
        } catch (...) {
        }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (conn->broken() || !conn->idle()) {
        --open_count_;
    } else {
        idle_.push_back(std::move(conn));
    }
    available_.notify_one();
}

std::string hex_to_bytes(std::string_view hex) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(hex.size() / 2);
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        if (hex[i] == '-') {
            --i;
            continue;
        }
        out.push_back(static_cast<char>((nibble(hex[i]) << 4) | nibble(hex[i + 1])));
    }
    return out;
}

std::string bytes_to_hex(std::string_view bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string out(bytes.size() * 2, '0');
    for (size_t i = 0; i < bytes.size(); ++i) {
        unsigned char b = static_cast<unsigned char>(bytes[i]);
        out[2 * i] = digits[b >> 4];
        out[2 * i + 1] = digits[b & 15];
    }
    return out;
}

}  // namespace sluice::pg

#include "pg_client.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>

namespace sluice::sql {

namespace {

std::string trimmed(const char* message) {
    std::string m = message ? message : "";
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ' || m.back() == '\r')) m.pop_back();
    return m;
}

// A config value given as a string or a number ("$ENV(port)" substitutes a string).
std::optional<std::string> scalar_text(const Json& object, const char* key) {
    const Json* v = find_member(object, key);
    if (!v || v->IsNull()) return std::nullopt;
    if (v->IsString()) return std::string(as_view(*v));
    if (v->IsInt64()) return std::to_string(v->GetInt64());
    if (v->IsNumber()) return to_json(*v);
    if (v->IsBool()) return std::string(v->GetBool() ? "true" : "false");
    return std::nullopt;
}

double number_or(const Json& object, const char* key, double fallback, const std::string& who,
                 const std::string& system_id) {
    std::optional<std::string> text = scalar_text(object, key);
    if (!text) return fallback;
    char* end = nullptr;
    double v = std::strtod(text->c_str(), &end);
    if (text->empty() || !end || *end || v < 0)
        throw Error(who + ": system '" + system_id + "': '" + key + "' must be a non-negative number, not '" + *text +
                        "'",
                    SLUICE_FATAL);
    return v;
}

// Connection failures that retrying cannot fix: credentials, unknown role/database, SSL setup.
bool permanent_connect_failure(const std::string& m) {
    static const char* const needles[] = {"password authentication failed",
                                          "authentication failed",
                                          "does not exist",
                                          "no pg_hba.conf entry",
                                          "password is required",
                                          "no password supplied",
                                          "invalid sslmode",
                                          "sslmode value",
                                          "invalid connection option",
                                          "invalid port number",
                                          "permission denied",
                                          "SSL is not enabled on the server",
                                          "server does not support SSL"};
    for (const char* n : needles)
        if (m.find(n) != std::string::npos) return true;
    return false;
}

}  // namespace

// ---- SystemConfig ------------------------------------------------------------------------------

SystemConfig SystemConfig::parse(const Json& system, const std::string& who) {
    if (!system.IsObject())
        throw Error(who + ": no system: set \"system\" to the _id of a system:postgresql", SLUICE_FATAL);
    SystemConfig s;
    s.id = string_or(system, "_id", "");
    const std::string type = string_or(system, "type", "");
    if (type != "system:postgresql" && type != "system:postgres")
        throw Error(who + ": system '" + s.id + "' is of type '" + type +
                        "'; this connector talks to PostgreSQL only (type system:postgresql)",
                    SLUICE_FATAL);
    if (auto v = scalar_text(system, "host")) s.host = *v;
    if (auto v = scalar_text(system, "port")) s.port = *v;
    if (auto v = scalar_text(system, "database")) s.database = *v;
    if (auto v = scalar_text(system, "username")) s.username = *v;
    if (auto v = scalar_text(system, "password")) s.password = *v;
    if (auto v = scalar_text(system, "sslmode")) s.sslmode = *v;
    if (auto v = scalar_text(system, "timezone")) s.timezone = *v;
    if (auto v = scalar_text(system, "application_name")) s.application_name = *v;
    s.connect_timeout = static_cast<int>(number_or(system, "connect_timeout", 30, who, s.id));
    s.pool_size = static_cast<size_t>(number_or(system, "pool_size", 10, who, s.id));
    s.pool_max_overflow = static_cast<size_t>(number_or(system, "pool_max_overflow", 10, who, s.id));
    s.pool_timeout = number_or(system, "pool_timeout", 30, who, s.id);
    s.pool_recycle = number_or(system, "pool_recycle", 1800, who, s.id);
    if (s.database.empty())
        throw Error(who + ": system '" + s.id + "': 'database' is required", SLUICE_FATAL);
    if (s.username.empty())
        throw Error(who + ": system '" + s.id + "': 'username' is required", SLUICE_FATAL);
    if (s.pool_size == 0) s.pool_size = 1;
    if (s.connect_timeout < 2) s.connect_timeout = 2;  // libpq treats 1 as 2 anyway
    return s;
}

std::string SystemConfig::describe() const { return host + ":" + port + "/" + database + " as " + username; }

std::string SystemConfig::pool_key() const {
    std::string k;
    for (const std::string* part : {&host, &port, &database, &username, &password, &sslmode, &application_name}) {
        k += std::to_string(part->size());
        k += ':';
        k += *part;
    }
    k += std::to_string(connect_timeout) + ':' + std::to_string(pool_size) + ':' + std::to_string(pool_max_overflow) +
         ':' + std::to_string(pool_timeout) + ':' + std::to_string(pool_recycle);
    return k;
}

bool SystemConfig::utc() const {
    return timezone.empty() || timezone == "UTC" || timezone == "utc" || timezone == "Etc/UTC" || timezone == "Z" ||
           timezone == "GMT";
}

bool transient_sqlstate(std::string_view s) {
    return s.rfind("08", 0) == 0 || s == "40001" || s == "40P01" || s == "55P03" || s == "57014" ||
           s.rfind("57P0", 0) == 0 || s == "53300" || s == "53000" || s == "58000" || s == "58030";
}

// ---- Connection --------------------------------------------------------------------------------

Connection::Connection(const SystemConfig& system) : system_id_(system.id) {
    std::vector<const char*> keys, values;
    const std::string timeout = std::to_string(system.connect_timeout);
    auto add = [&](const char* k, const std::string& v) {
        if (v.empty()) return;
        keys.push_back(k);
        values.push_back(v.c_str());
    };
    add("host", system.host);
    add("port", system.port);
    add("dbname", system.database);
    add("user", system.username);
    add("password", system.password);
    add("sslmode", system.sslmode);
    add("connect_timeout", timeout);
    add("application_name", system.application_name);
    static const std::string utf8 = "UTF8";
    add("client_encoding", utf8);
    keys.push_back(nullptr);
    values.push_back(nullptr);
    // expand_dbname = 0: the database name is a name, never a connection string.
    conn_ = PQconnectdbParams(keys.data(), values.data(), 0);
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
        std::string message = conn_ ? trimmed(PQerrorMessage(conn_)) : "out of memory";
        if (conn_) PQfinish(conn_);
        conn_ = nullptr;
        const bool permanent = permanent_connect_failure(message);
        throw PgError("system '" + system.id + "': cannot connect to PostgreSQL at " + system.describe() + ": " +
                          message,
                      permanent ? "28000" : "08001", !permanent);
    }
    // Notices are not printed. A FATAL one arrives when the server ends an idle session
    // (terminate, shutdown, idle timeout): the connection is then done for.
    PQsetNoticeReceiver(
        conn_,
        [](void* self, const PGresult* notice) {
            const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY_NONLOCALIZED);
            if (severity && (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0))
                static_cast<Connection*>(self)->poisoned_ = true;
        },
        this);
    opened_ = std::chrono::steady_clock::now();
    exec("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601'; "
         "SET extra_float_digits = 3; SET bytea_output = 'hex'",
         "session setup");
}

Connection::~Connection() {
    if (conn_) PQfinish(conn_);
}

PgError Connection::error_for(PGresult* raw, const std::string& what) const {
    std::string state;
    std::string message;
    std::string context;
    if (raw) {
        if (const char* ctx = PQresultErrorField(raw, PG_DIAG_CONTEXT)) context = trimmed(ctx);
        if (const char* s = PQresultErrorField(raw, PG_DIAG_SQLSTATE)) state = s;
        const char* primary = PQresultErrorField(raw, PG_DIAG_MESSAGE_PRIMARY);
        message = primary ? trimmed(primary) : trimmed(PQresultErrorMessage(raw));
        if (const char* detail = PQresultErrorField(raw, PG_DIAG_MESSAGE_DETAIL)) message += " (" + trimmed(detail) + ")";
    }
    if (message.empty()) message = trimmed(PQerrorMessage(conn_));
    if (state.empty() && broken()) state = "08006";
    return PgError("system '" + system_id_ + "': " + what + ": " + message + (state.empty() ? "" : " [" + state + "]"),
                   state, transient_sqlstate(state), message, context);
}

Result Connection::check(PGresult* raw, const std::string& what) {
    Result r(raw);
    const ExecStatusType st = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN || st == PGRES_COPY_OUT) return r;
    throw error_for(raw, what);
}

Result Connection::exec(const std::string& sql, const std::string& what) {
    return check(PQexec(conn_, sql.c_str()), what.empty() ? sql.substr(0, 120) : what);
}

Result Connection::exec(const std::string& sql, const Params& params, bool binary_result, const std::string& what) {
    std::vector<const char*> values(params.values.size());
    std::vector<int> lengths(params.values.size());
    for (size_t i = 0; i < values.size(); ++i) {
        values[i] = params.nulls[i] ? nullptr : params.values[i].c_str();
        lengths[i] = static_cast<int>(params.values[i].size());
    }
    return check(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                              lengths.data(), nullptr, binary_result ? 1 : 0),
                 what.empty() ? sql.substr(0, 120) : what);
}

void Connection::send(const std::string& sql, bool binary_result, const std::string& what) {
    if (PQsendQueryParams(conn_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, binary_result ? 1 : 0) != 1) {
        const bool lost = broken();
        throw PgError("system '" + system_id_ + "': " + (what.empty() ? sql : what) + ": " +
                          trimmed(PQerrorMessage(conn_)),
                      lost ? "08006" : "", lost);
    }
}

Result Connection::receive(const std::string& what) {
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
            first = check(r, what);
        } catch (const PgError& e) {
            failure = e;
        }
    }
    if (failure) throw *failure;
    if (!have) throw PgError("system '" + system_id_ + "': " + what + ": no result (connection lost)", "08006", true);
    return first;
}

Result Connection::describe(const std::string& sql, int param_count, const std::string& what) {
    check(PQprepare(conn_, "", sql.c_str(), param_count, nullptr), what);
    return check(PQdescribePrepared(conn_, ""), what);
}

void Connection::copy_send(const std::string& sql, const std::string& what) {
    if (PQsendQuery(conn_, sql.c_str()) != 1) {
        const bool lost = broken();
        throw PgError("system '" + system_id_ + "': " + what + ": " + trimmed(PQerrorMessage(conn_)),
                      lost ? "08006" : "", lost);
    }
}

void Connection::copy_ready(const std::string& what) {
    // The results of the statements before the COPY, then PGRES_COPY_IN.
    while (PGresult* raw = PQgetResult(conn_)) {
        Result r = check(raw, what);
        if (PQresultStatus(raw) == PGRES_COPY_IN) return;
    }
    throw PgError("system '" + system_id_ + "': " + what + ": the server did not start the COPY", "", false);
}

void Connection::copy_put(const std::string& data, const std::string& what) {
    if (data.empty()) return;
    if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1) {
        if (!broken()) {
            // The server ended the COPY (it rejected a row): its reason, not libpq's.
            while (PGresult* r = PQgetResult(conn_)) check(r, what);
        }
        throw PgError("system '" + system_id_ + "': " + what + ": " + trimmed(PQerrorMessage(conn_)), "08006", broken());
    }
}

void Connection::copy_end(const std::string& what, const std::string& after) {
    if (PQputCopyEnd(conn_, nullptr) != 1)
        throw PgError("system '" + system_id_ + "': " + what + ": " + trimmed(PQerrorMessage(conn_)), "08006", true);
    std::optional<PgError> failure;
    bool copy_done = false;  // the first result is the COPY's, the rest are the statements after it
    while (PGresult* r = PQgetResult(conn_)) {
        try {
            check(r, copy_done && !after.empty() ? after : what);
        } catch (const PgError& e) {
            if (!failure) failure = e;
        }
        copy_done = true;
    }
    if (failure) throw *failure;
}

void Connection::stream_begin(const std::string& sql, const Params& params, const std::string& what) {
    std::vector<const char*> values(params.values.size());
    std::vector<int> lengths(params.values.size());
    for (size_t i = 0; i < values.size(); ++i) {
        values[i] = params.nulls[i] ? nullptr : params.values[i].c_str();
        lengths[i] = static_cast<int>(params.values[i].size());
    }
    if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), lengths.data(),
                          nullptr, 1) != 1) {
        const bool lost = broken();
        throw PgError("system '" + system_id_ + "': " + what + ": " + trimmed(PQerrorMessage(conn_)),
                      lost ? "08006" : "", lost);
    }
    if (PQsetSingleRowMode(conn_) != 1) {
        abandon();
        throw PgError("system '" + system_id_ + "': " + what + ": cannot stream rows (single-row mode refused)", "", false);
    }
}

Result Connection::stream_next(const std::string& what) {
    PGresult* raw = PQgetResult(conn_);
    if (!raw) return Result();
    Result r(raw);
    const ExecStatusType st = PQresultStatus(raw);
    if (st == PGRES_SINGLE_TUPLE) return r;
    if (st == PGRES_TUPLES_OK) {  // the end: no more rows; the next PQgetResult is NULL
        while (PGresult* rest = PQgetResult(conn_)) PQclear(rest);
        return Result();
    }
    PgError e = error_for(raw, what);
    while (PGresult* rest = PQgetResult(conn_)) PQclear(rest);
    throw e;
}

void Connection::cancel() {
    poisoned_ = true;  // a late cancel must never hit a statement of the connection's next user
    if (!conn_ || broken()) return;
    if (PGcancel* c = PQgetCancel(conn_)) {
        char buf[256];
        PQcancel(c, buf, sizeof buf);
        PQfreeCancel(c);
    }
}

void Connection::abandon() {
    if (!conn_ || broken()) return;
    while (PGresult* r = PQgetResult(conn_)) {
        const ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_COPY_IN) PQputCopyEnd(conn_, "abandoned by the client");
        else if (st == PGRES_COPY_OUT) {
            poisoned_ = true;  // cannot stop a COPY OUT here: never reused
            return;
        }
    }
}

std::string Connection::ident(std::string_view name) const {
    std::string out = "\"";
    for (char c : name) {
        if (c == '"') out.push_back('"');
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

std::string Connection::literal(std::string_view text) const {
    char* escaped = PQescapeLiteral(conn_, text.data(), text.size());
    if (!escaped) throw PgError("system '" + system_id_ + "': cannot quote a literal: " + trimmed(PQerrorMessage(conn_)), "", false);
    std::string out(escaped);
    PQfreemem(escaped);
    return out;
}

Transaction::~Transaction() {
    if (done_ || c_.broken()) return;
    try {
        c_.abandon();
        c_.exec("ROLLBACK");
    } catch (...) {
    }
}

// ---- Pool --------------------------------------------------------------------------------------

std::shared_ptr<Pool> Pool::for_system(const SystemConfig& system) {
    static std::mutex mutex;
    static std::map<std::string, std::shared_ptr<Pool>> pools;
    std::lock_guard<std::mutex> lock(mutex);
    std::shared_ptr<Pool>& pool = pools[system.pool_key()];
    if (!pool) pool = std::make_shared<Pool>(system);
    return pool;
}

Pool::Lease Pool::acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    const size_t limit = system_.pool_size + system_.pool_max_overflow;
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(system_.pool_timeout * 1000));
    if (!available_.wait_for(lock, timeout, [&] { return !idle_.empty() || open_ < limit; })) {
        throw RetryError("system '" + system_.id + "': no free PostgreSQL connection within " +
                         std::to_string(static_cast<int64_t>(system_.pool_timeout)) + " s (pool_size " +
                         std::to_string(system_.pool_size) + " + pool_max_overflow " +
                         std::to_string(system_.pool_max_overflow) + " in use)");
    }
    const auto recycle = std::chrono::milliseconds(static_cast<int64_t>(system_.pool_recycle * 1000));
    while (!idle_.empty()) {
        std::unique_ptr<Connection> c = std::move(idle_.back());
        idle_.pop_back();
        if (c->alive() && std::chrono::steady_clock::now() - c->opened() < recycle) return Lease(this, std::move(c));
        --open_;  // dropped (gone, e.g. the server restarted, or too old)
    }
    ++open_;
    lock.unlock();
    try {
        return Lease(this, std::make_unique<Connection>(system_));
    } catch (...) {
        lock.lock();
        --open_;
        available_.notify_one();
        throw;
    }
}

void Pool::release(std::unique_ptr<Connection> c) {
    if (!c->broken() && !c->poisoned() && !c->idle()) {
        try {
            c->abandon();
            c->exec("ROLLBACK");
        } catch (...) {
        }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (c->broken() || c->poisoned() || !c->idle() || idle_.size() >= system_.pool_size) {
        --open_;
        c.reset();
    } else {
        idle_.push_back(std::move(c));
    }
    available_.notify_one();
}

// ---- names -------------------------------------------------------------------------------------

std::vector<std::string> string_list(const Json& config, const char* key, const std::string& who) {
    std::vector<std::string> out;
    const Json* v = find_member(config, key);
    if (!v || v->IsNull()) return out;
    if (v->IsString()) {
        out.emplace_back(as_view(*v));
        return out;
    }
    if (v->IsArray()) {
        for (const Json& item : v->GetArray()) {
            if (!item.IsString() || item.GetStringLength() == 0)
                throw Error(who + ": '" + key + "' must be a string or a list of non-empty strings", SLUICE_FATAL);
            out.emplace_back(as_view(item));
        }
        return out;
    }
    throw Error(who + ": '" + key + "' must be a string or a list of strings", SLUICE_FATAL);
}

}  // namespace sluice::sql

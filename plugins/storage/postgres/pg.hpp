// A thin RAII layer over raw libpq for the postgres storage backend: connections, results,
// parameters (text or binary, with binary one-dimensional arrays), binary COPY and a pool.
//
// Why raw libpq: the ingest path needs COPY FROM STDIN with binary rows and binary array
// parameters on the same connection and transaction as ordinary statements; libpqxx 6.4 does not
// expose the PGconn, so everything goes through libpq here.
#pragma once

#include <libpq-fe.h>

#include <sluice/sdk.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::pg {

// Type OIDs used for binary parameters and array elements.
constexpr Oid kBool = 16, kInt8 = 20, kText = 25, kJson = 114, kUuid = 2950;
constexpr Oid kTextArray = 1009, kInt8Array = 1016, kBoolArray = 1000, kUuidArray = 2951;

// Thrown for a failed statement; `transient` marks failures worth a retry (lost connection,
// deadlock, serialization failure, lock timeout).
class PgError : public Error {
public:
    PgError(const std::string& message, std::string sqlstate, bool transient)
        : Error(message, transient ? SLUICE_RETRY : SLUICE_ERROR), sqlstate_(std::move(sqlstate)) {}
    const std::string& sqlstate() const { return sqlstate_; }

private:
    std::string sqlstate_;
};

class Result {
public:
    Result() = default;
    explicit Result(PGresult* r) : r_(r, &PQclear) {}
    PGresult* get() const { return r_.get(); }
    int rows() const { return PQntuples(r_.get()); }
    bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
    std::string_view text(int row, int col) const {
        return {PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col))};
    }
    int64_t int64(int row, int col) const;  // text-format integer column
    bool boolean(int row, int col) const { return text(row, col) == "t"; }
    // Binary-format columns.
    int64_t bin_int64(int row, int col) const;
    bool bin_bool(int row, int col) const { return PQgetvalue(r_.get(), row, col)[0] != 0; }

private:
    std::unique_ptr<PGresult, decltype(&PQclear)> r_{nullptr, &PQclear};
};

// Statement parameters; each is text or binary, or NULL.
class Params {
public:
    Params& text(std::string value) { return add(std::move(value), 0, 0); }
    Params& null() {
        values_.emplace_back();
        nulls_.push_back(true);
        types_.push_back(0);
        formats_.push_back(0);
        return *this;
    }
    Params& int64(int64_t v) { return text(std::to_string(v)); }
    Params& opt_int64(const std::optional<int64_t>& v) { return v ? int64(*v) : null(); }
    Params& boolean(bool v) { return text(v ? "t" : "f"); }
    Params& binary(std::string bytes, Oid type) { return add(std::move(bytes), type, 1); }

    size_t size() const { return values_.size(); }
    // Pointers stay valid while this object is unchanged.
    void materialize(std::vector<const char*>& values, std::vector<int>& lengths) const;
    const Oid* types() const { return types_.data(); }
    const int* formats() const { return formats_.data(); }

private:
    Params& add(std::string value, Oid type, int format) {
        values_.push_back(std::move(value));
        nulls_.push_back(false);
        types_.push_back(type);
        formats_.push_back(format);
        return *this;
    }
    std::vector<std::string> values_;
    std::vector<bool> nulls_;
    std::vector<Oid> types_;
    std::vector<int> formats_;
};

// Big-endian writers for the binary wire formats.
inline void put_u16(std::string& out, uint16_t v) {
    char b[2] = {char(v >> 8), char(v)};
    out.append(b, 2);
}
inline void put_u32(std::string& out, uint32_t v) {
    char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    out.append(b, 4);
}
inline void put_u64(std::string& out, uint64_t v) {
    put_u32(out, uint32_t(v >> 32));
    put_u32(out, uint32_t(v));
}
inline uint64_t get_u64(const char* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

// A one-dimensional array parameter in binary format (no escaping, no NULL elements).
class ArrayBuilder {
public:
    explicit ArrayBuilder(Oid element_type) : element_(element_type) {}
    void add(std::string_view bytes) {
        put_u32(body_, static_cast<uint32_t>(bytes.size()));
        body_.append(bytes.data(), bytes.size());
        ++count_;
    }
    void add_int64(int64_t v) {
        put_u32(body_, 8);
        put_u64(body_, static_cast<uint64_t>(v));
        ++count_;
    }
    void add_bool(bool v) {
        put_u32(body_, 1);
        body_.push_back(v ? 1 : 0);
        ++count_;
    }
    size_t count() const { return count_; }
    std::string finish() const;

private:
    Oid element_;
    std::string body_;
    size_t count_ = 0;
};

// Rows for COPY ... FROM STDIN (FORMAT binary).
class CopyBuilder {
public:
    // `recycled`: a buffer from an earlier builder (release()), whose capacity is reused — fresh
    // pages for every batch's few hundred kB cost page faults.
    explicit CopyBuilder(std::string recycled = {}) : data_(std::move(recycled)) {
        data_.clear();
        data_.append("PGCOPY\n\377\r\n\0", 11);
        put_u32(data_, 0);
        put_u32(data_, 0);
    }
    size_t size() const { return data_.size(); }
    // The rows built so far, for Connection::copy_put; the builder then starts empty (the
    // header went with the first piece).
    std::string_view pending() const { return data_; }
    void sent() { data_.clear(); }
    // The buffer, for the next builder.
    std::string release() { return std::move(data_); }
    void row(uint16_t fields) { put_u16(data_, fields); }
    void field(std::string_view bytes) {
        put_u32(data_, static_cast<uint32_t>(bytes.size()));
        data_.append(bytes.data(), bytes.size());
    }
    void field_null() { put_u32(data_, 0xffffffffu); }
    void field_int64(int64_t v) {
        put_u32(data_, 8);
        put_u64(data_, static_cast<uint64_t>(v));
    }
    void field_bool(bool v) {
        put_u32(data_, 1);
        data_.push_back(v ? 1 : 0);
    }
    std::string& finish() {
        put_u16(data_, 0xffff);
        return data_;
    }
    void reserve(size_t n) { data_.reserve(n); }

private:
    std::string data_;
};

class Connection {
public:
    Connection(const std::string& dsn, int connect_timeout_s);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    PGconn* raw() const { return conn_; }
    bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
    bool idle() const { return PQtransactionStatus(conn_) == PQTRANS_IDLE; }

    // Runs a statement with no parameters (several statements allowed).
    Result exec(const std::string& sql);
    // Runs one statement; `binary_result` asks for binary columns.
    Result exec(const std::string& sql, const Params& params, bool binary_result = false);
    // The same, split in two so the caller can work while the server runs the statement:
    // send() queues it, receive() waits for its result (exactly one receive per send).
    void send(const std::string& sql, const Params& params, bool binary_result = false);
    Result receive(const std::string& sql);
    // send() of a named prepared statement, prepared on this connection at first use: the
    // hot statements skip parsing and planning (a 1000-element array costs ~0.5 ms to plan).
    void send_prepared(const std::string& name, const std::string& sql, const Params& params, bool binary_result);
    // Forgets (DEALLOCATEs) a prepared statement, e.g. when its table is gone.
    void forget_prepared(const std::string& name);
    // COPY <target> FROM STDIN (FORMAT binary) with prebuilt data.
    void copy_in(const std::string& copy_sql, const std::string& data);
    // The same in pieces, so that the server works on the first rows while the client builds
    // the next: copy_begin, any number of copy_put, then copy_end (which waits for the result).
    void copy_begin(const std::string& copy_sql);
    void copy_put(std::string_view data);
    void copy_end(const std::string& copy_sql);
    // Ends the COPY in progress with an error (nothing of it is stored), e.g. when building the
    // rows threw; never throws.
    void copy_abort() noexcept;
    // A quoted literal for the rare statements that cannot take parameters (DECLARE, DDL).
    std::string literal(std::string_view text) const;

private:
    Result check(PGresult* r, const std::string& what);
    PGconn* conn_ = nullptr;
    std::set<std::string> prepared_;
    bool copy_failed_ = false;  // the COPY in progress was ended by the client (a send failed)
};

// Connections handed out one per concurrent call.
class Pool {
public:
    Pool(std::string dsn, size_t size, int connect_timeout_s, std::string session_sql);

    class Lease {
    public:
        Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
        Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) {}
        Lease(const Lease&) = delete;
        ~Lease() {
            if (conn_) pool_->release(std::move(conn_));
        }
        Connection& operator*() { return *conn_; }
        Connection* operator->() { return conn_.get(); }

    private:
        Pool* pool_;
        std::unique_ptr<Connection> conn_;
    };

    Lease acquire();

private:
    void release(std::unique_ptr<Connection> conn);
    std::unique_ptr<Connection> open();

    std::string dsn_;
    size_t size_;
    int connect_timeout_s_;
    std::string session_sql_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<Connection>> idle_;
    size_t open_count_ = 0;
};

// BEGIN ... COMMIT; rolls back on destruction unless committed.
class Transaction {
public:
    explicit Transaction(Connection& c) : c_(c) { c_.exec("BEGIN"); }
    ~Transaction() {
        if (!done_ && !c_.broken()) {
            try {
                c_.exec("ROLLBACK");
            } catch (...) {
            }
        }
    }
    void commit() {
        c_.exec("COMMIT");
        done_ = true;
    }

private:
    Connection& c_;
    bool done_ = false;
};

// "0123…" (32 hex) <-> 16 bytes.
std::string hex_to_bytes(std::string_view hex);
std::string bytes_to_hex(std::string_view bytes);

}  // namespace sluice::pg

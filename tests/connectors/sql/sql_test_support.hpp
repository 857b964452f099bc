// Shared by the SQL connector suites: one private PostgreSQL per test process (ManagedPostgres in
// a temporary directory, started by the test itself; as root the server runs as a system user),
// a fresh database per test, a password-protected role (so credentials are really checked), the
// system:postgresql JSON pointing at the server's socket, and a tiny libpq helper.
#pragma once

#include "test_support.hpp"

#include <sluice/kernel/managed_postgres.hpp>

#include <cppunit/extensions/HelperMacros.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>

namespace sluice::sqltest {

// A role that must log in with a password (scram), unlike the trusted superuser.
constexpr const char* kPasswordUser = "sluice_pw";
constexpr const char* kPassword = "s3cret-Pa55";

// A libpq connection for setting up and checking tables.
class Db {
public:
    explicit Db(const std::string& dsn) : c_(PQconnectdb(dsn.c_str())) {
        if (PQstatus(c_) != CONNECTION_OK) {
            std::string m = PQerrorMessage(c_);
            PQfinish(c_);
            c_ = nullptr;
            throw std::runtime_error("test connection failed: " + m);
        }
        PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);
        exec("SET TimeZone = 'UTC'");
    }
    ~Db() {
        if (c_) PQfinish(c_);
    }
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    void exec(const std::string& sql) {
        PGresult* r = PQexec(c_, sql.c_str());
        const ExecStatusType st = PQresultStatus(r);
        std::string error = PQresultErrorMessage(r);
        PQclear(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw std::runtime_error("SQL failed: " + error + " in: " + sql);
    }
    // The first column of the first row as text ("" for NULL or no rows).
    std::string value(const std::string& sql) {
        PGresult* r = PQexec(c_, sql.c_str());
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            std::string error = PQresultErrorMessage(r);
            PQclear(r);
            throw std::runtime_error("SQL failed: " + error + " in: " + sql);
        }
        std::string out = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "";
        PQclear(r);
        return out;
    }
    long count(const std::string& table) { return std::stol(value("SELECT count(*) FROM " + table)); }

private:
    PGconn* c_;
};

struct PgServer {
    test::TempDir dir{"sluice-sqlconn"};
    kernel::ManagedPostgres pg{dir / "pg"};
    PgServer() {
        pg.start();
        // pg_hba.conf is first-match: the password role must authenticate, everyone else stays
        // trusted on the private socket.
        const std::filesystem::path hba = pg.data_dir() / "pg_hba.conf";
        std::string text = test::read_text(hba);
        const std::string line = std::string("local all ") + kPasswordUser + " scram-sha-256\n";
        if (text.find(line) == std::string::npos) test::write_text(hba, line + text);
        Db db(pg.dsn());
        db.exec(std::string("SET password_encryption = 'scram-sha-256'; DROP ROLE IF EXISTS ") + kPasswordUser +
                "; CREATE ROLE " + kPasswordUser + " LOGIN SUPERUSER PASSWORD '" + kPassword + "'");
        db.value("SELECT pg_reload_conf()");
    }
};

inline PgServer& server() {
    static PgServer s;  // stopped (and its directory removed) at exit
    return s;
}

inline std::string dsn_for(const std::string& database) {
    std::string dsn = server().pg.dsn();
    return dsn.replace(dsn.find("dbname=sluice"), 13, "dbname=" + database);
}

// A new empty database; returns its name.
inline std::string fresh_database(const std::string& prefix = "sqlconn") {
    static std::atomic<int> counter{0};
    const std::string name = prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    Db db(server().pg.dsn());
    db.exec("CREATE DATABASE " + name);
    return name;
}

// The system:postgresql entity for `database` on the test server (socket directory as host).
inline std::string system_json(const std::string& database, const std::string& user = kPasswordUser,
                               const std::string& password = kPassword, const std::string& extra = "",
                               const std::string& id = "pg-test") {
    std::ostringstream out;
    out << "{\"_id\":\"" << id << "\",\"type\":\"system:postgresql\",\"host\":\"" << server().pg.socket_dir().string()
        << "\",\"port\":" << kernel::ManagedPostgres::kPort << ",\"database\":\"" << database << "\",\"username\":\""
        << user << "\",\"password\":\"" << password << "\",\"connect_timeout\":5" << extra << "}";
    return out.str();
}

inline std::string plugin_path(const std::string& name) {
    return std::string(SLUICE_TEST_PLUGIN_DIR) + "/" + name + ".so";
}

}  // namespace sluice::sqltest

#include "postgres_support.hpp"
#include "test_support.hpp"

#include <sluice/kernel/managed_postgres.hpp>

#include <libpq-fe.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace sluice::test {

namespace {

struct Server {
    TempDir dir{"sluice-testpg"};
    kernel::ManagedPostgres pg{dir / "pg"};
    Server() { pg.start(); }
};

Server& server() {
    static Server s;  // stopped (and its directory removed) at exit
    return s;
}

}  // namespace

std::string fresh_postgres_database(const std::string& prefix) {
    static std::atomic<int> counter{0};
    const std::string name = prefix + "_" + std::to_string(++counter);
    PGconn* c = PQconnectdb(server().pg.dsn().c_str());
    std::string error;
    if (PQstatus(c) != CONNECTION_OK) {
        error = PQerrorMessage(c);
    } else {
        PGresult* r = PQexec(c, ("CREATE DATABASE " + name).c_str());
        if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQerrorMessage(c);
        PQclear(r);
    }
    PQfinish(c);
    if (!error.empty()) throw std::runtime_error("cannot create test database " + name + ": " + error);
    std::string dsn = server().pg.dsn();
    const std::string current = std::string("dbname=") + kernel::ManagedPostgres::kDatabase;
    return dsn.replace(dsn.find(current), current.size(), "dbname=" + name);
}

std::string test_storage() {
    const char* value = std::getenv("SLUICE_TEST_STORAGE");
    return value && *value ? value : "memory";
}

}  // namespace sluice::test

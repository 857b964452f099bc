// A PostgreSQL server for test suites: one ManagedPostgres per test process, started on first
// use in a temporary directory (as root the server runs as a system user) and stopped at exit.
// Each caller gets a fresh, empty database on it, so tests never see each other's data.
#pragma once

#include <string>

namespace sluice::test {

// Creates a new empty database on the suite's server and returns its libpq DSN. Throws
// std::runtime_error when the server cannot start or the database cannot be created.
std::string fresh_postgres_database(const std::string& prefix = "test");

// Which storage the node suites run against: SLUICE_TEST_STORAGE=postgres|memory (default
// memory). CMake registers the postgres variant of a suite as its own ctest test.
std::string test_storage();

}  // namespace sluice::test

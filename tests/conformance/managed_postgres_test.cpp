// ManagedPostgres against the real server binaries: start (initdb on first use), connect,
// stop, restart reusing the cluster, recovery from a killed postmaster, long directory paths,
// and the non-root user when the test runs as root (as CI does).
#include <sluice/kernel/managed_postgres.hpp>

#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>
#include <libpq-fe.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

namespace {

using sluice::kernel::ManagedPostgres;
namespace fs = std::filesystem;

struct Conn {
    explicit Conn(const std::string& dsn) : c(PQconnectdb(dsn.c_str())) {
        CPPUNIT_ASSERT_MESSAGE(std::string("connect failed: ") + PQerrorMessage(c), PQstatus(c) == CONNECTION_OK);
    }
    ~Conn() { PQfinish(c); }
    // First column of the first row of a query's result ("" for none).
    std::string one(const std::string& sql) {
        PGresult* r = PQexec(c, sql.c_str());
        ExecStatusType st = PQresultStatus(r);
        std::string msg = PQresultErrorMessage(r);
        std::string out = (st == PGRES_TUPLES_OK && PQntuples(r) > 0) ? PQgetvalue(r, 0, 0) : "";
        PQclear(r);
        CPPUNIT_ASSERT_MESSAGE(sql + ": " + msg, st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK);
        return out;
    }
    PGconn* c;
};

size_t count_occurrences(const std::string& text, const std::string& word) {
    size_t n = 0;
    for (size_t pos = text.find(word); pos != std::string::npos; pos = text.find(word, pos + 1)) ++n;
    return n;
}

}  // namespace

class ManagedPostgresTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(ManagedPostgresTest);
    CPPUNIT_TEST(testStartConnectStop);
    CPPUNIT_TEST(testRestartReusesCluster);
    CPPUNIT_TEST(testStalePidFromKilledRun);
    CPPUNIT_TEST(testLongDirectoryUsesShortSocketDir);
    CPPUNIT_TEST(testSecondManagerIsRefused);
    CPPUNIT_TEST_SUITE_END();

public:
    void testStartConnectStop() {
        sluice::test::TempDir tmp("sluice-mpg");
        ManagedPostgres pg(tmp / "pg");
        CPPUNIT_ASSERT(!pg.running());
        pg.start();
        CPPUNIT_ASSERT(pg.running());
        CPPUNIT_ASSERT(pg.dsn().find("dbname=sluice") != std::string::npos);
        CPPUNIT_ASSERT(pg.dsn().find("host=" + pg.socket_dir().string()) != std::string::npos);
        CPPUNIT_ASSERT(fs::exists(pg.socket_dir() / ".s.PGSQL.5432"));
        {
            Conn c(pg.dsn());
            CPPUNIT_ASSERT_EQUAL(std::string("sluice"), c.one("SELECT current_database()"));
            CPPUNIT_ASSERT_EQUAL(std::string(""), c.one("SHOW listen_addresses"));  // no TCP listener
            CPPUNIT_ASSERT_EQUAL(std::string("on"), c.one("SHOW fsync"));
            CPPUNIT_ASSERT_EQUAL(std::string("on"), c.one("SHOW synchronous_commit"));
            CPPUNIT_ASSERT_EQUAL(std::string("UTF8"), c.one("SHOW server_encoding"));
            CPPUNIT_ASSERT_EQUAL(pg.socket_dir().string(), c.one("SHOW unix_socket_directories"));
            c.one("CREATE TABLE t (v int)");
            c.one("INSERT INTO t VALUES (7)");
            CPPUNIT_ASSERT_EQUAL(std::string("7"), c.one("SELECT v FROM t"));
        }
        // The private socket directory is closed to other users.
        struct stat st {};
        CPPUNIT_ASSERT_EQUAL(0, ::stat(pg.socket_dir().c_str(), &st));
        CPPUNIT_ASSERT_EQUAL(0, int(st.st_mode & 077));
        if (::geteuid() == 0) {
            // Root cannot run PostgreSQL: the server runs as a system user that owns the cluster.
            CPPUNIT_ASSERT(!pg.run_user().empty());
            CPPUNIT_ASSERT_EQUAL(0, ::stat(pg.data_dir().c_str(), &st));
            CPPUNIT_ASSERT(st.st_uid != 0);
            CPPUNIT_ASSERT(fs::exists("/proc/" + std::to_string(pg.postmaster_pid())));
            CPPUNIT_ASSERT_EQUAL(0, ::stat(("/proc/" + std::to_string(pg.postmaster_pid())).c_str(), &st));
            CPPUNIT_ASSERT(st.st_uid != 0);
        }
        pg.stop();
        CPPUNIT_ASSERT(!pg.running());
        CPPUNIT_ASSERT(!fs::exists(pg.data_dir() / "postmaster.pid"));
        pg.stop();  // idempotent
    }

    void testRestartReusesCluster() {
        sluice::test::TempDir tmp("sluice-mpg");
        {
            ManagedPostgres pg(tmp / "pg");
            pg.start();
            Conn c(pg.dsn());
            c.one("CREATE TABLE kept (v text)");
            c.one("INSERT INTO kept VALUES ('survives')");
        }  // the destructor stops the server
        std::string log = sluice::test::read_text(tmp / "pg" / "postgres.log");
        CPPUNIT_ASSERT_EQUAL(size_t(1), count_occurrences(log, "/initdb "));
        ManagedPostgres again(tmp / "pg");
        again.start();
        Conn c(again.dsn());
        CPPUNIT_ASSERT_EQUAL(std::string("survives"), c.one("SELECT v FROM kept"));
        log = sluice::test::read_text(again.log_file());
        CPPUNIT_ASSERT_EQUAL(size_t(1), count_occurrences(log, "/initdb "));  // no second initdb
        again.stop();
    }

    void testStalePidFromKilledRun() {
        sluice::test::TempDir tmp("sluice-mpg");
        auto pg = std::make_unique<ManagedPostgres>(tmp / "pg");
        pg->start();
        {
            Conn c(pg->dsn());
            c.one("CREATE TABLE kept (v int)");
            c.one("INSERT INTO kept VALUES (1)");
        }
        long pid = pg->postmaster_pid();
        CPPUNIT_ASSERT(pid > 0);
        CPPUNIT_ASSERT_EQUAL(0, ::kill(static_cast<pid_t>(pid), SIGKILL));  // a crash, not a shutdown
        for (int i = 0; i < 100 && ::kill(static_cast<pid_t>(pid), 0) == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CPPUNIT_ASSERT(fs::exists(pg->data_dir() / "postmaster.pid"));  // left behind
        CPPUNIT_ASSERT(!pg->running());
        pg.reset();  // its stop() finds nothing to stop

        ManagedPostgres again(tmp / "pg");
        again.start();
        CPPUNIT_ASSERT(again.running());
        CPPUNIT_ASSERT(again.postmaster_pid() != pid);
        Conn c(again.dsn());
        CPPUNIT_ASSERT_EQUAL(std::string("1"), c.one("SELECT v FROM kept"));
        again.stop();
    }

    void testLongDirectoryUsesShortSocketDir() {
        sluice::test::TempDir tmp("sluice-mpg");
        fs::path deep = tmp.path() / std::string(60, 'd') / std::string(60, 'e');
        ManagedPostgres pg(deep);
        pg.start();
        CPPUNIT_ASSERT(pg.socket_dir().string().rfind("/tmp/sluice-pg-", 0) == 0);
        CPPUNIT_ASSERT((pg.socket_dir() / ".s.PGSQL.5432").string().size() <= 107);
        Conn c(pg.dsn());
        CPPUNIT_ASSERT_EQUAL(std::string("sluice"), c.one("SELECT current_database()"));
        pg.stop();
        std::error_code ec;
        fs::remove_all(pg.socket_dir(), ec);
    }

    void testSecondManagerIsRefused() {
        sluice::test::TempDir tmp("sluice-mpg");
        ManagedPostgres first(tmp / "pg");
        first.start();
        ManagedPostgres second(tmp / "pg");
        try {
            second.start();
            CPPUNIT_FAIL("a second manager started the same cluster");
        } catch (const std::runtime_error& e) {
            CPPUNIT_ASSERT_MESSAGE(e.what(), std::string(e.what()).find("in use") != std::string::npos);
        }
        CPPUNIT_ASSERT(first.running());
        first.stop();
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ManagedPostgresTest);

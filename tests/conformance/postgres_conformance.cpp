// The storage conformance suite against the PostgreSQL backend (sluice-storage-postgres.so), on a
// real server that the test starts itself: ManagedPostgres in a temporary directory (as root,
// the server runs as a system user). Every test gets a fresh database; nothing is skipped.
#include "conformance_suite.hpp"
#include "postgres_support.hpp"
#include "test_support.hpp"

#include <libpq-fe.h>

namespace sluice::conformance {

namespace {

// A new empty database on the suite's server; returns its DSN.
std::string fresh_database() { return test::fresh_postgres_database("conf"); }

std::string json_text(const std::string& s) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace

class PostgresConformance : public StorageConformance {
    CPPUNIT_TEST_SUITE(PostgresConformance);
    SLUICE_CONFORMANCE_TESTS(PostgresConformance);
    SLUICE_CONFORMANCE_PERSISTENCE_TESTS(PostgresConformance);
    CPPUNIT_TEST(testUnreachableServerIsAClearError);
    CPPUNIT_TEST(testDsnSettingsWin);
    CPPUNIT_TEST(testNewerSchemaIsRefused);
    CPPUNIT_TEST(testOnePooledConnectionIsEnough);
    CPPUNIT_TEST(testMigratesSchemaOne);
    CPPUNIT_TEST(testHashCacheAnswersUnchangedFullRuns);
    CPPUNIT_TEST(testFingerprintsAnswerOnlyByteIdenticalEntities);
    CPPUNIT_TEST(testDeleteUnseenAnsweredFromMemoryOnlyWhenSure);
    CPPUNIT_TEST(testRunLocksAcrossInstances);
    CPPUNIT_TEST_SUITE_END();

public:
    void testUnreachableServerIsAClearError() {
        StoreClient bad(plugin(), *host_, "postgres", R"({"dsn":"host=/nonexistent/sluice dbname=x user=y connect_timeout=2"})");
        CPPUNIT_ASSERT(!bad.valid());
        const std::string& error = loaderHost().last_error();
        CPPUNIT_ASSERT_MESSAGE(error, error.find("cannot connect to PostgreSQL") != std::string::npos);
        StoreClient no_dsn(plugin(), *host_, "postgres", "{}");
        CPPUNIT_ASSERT(!no_dsn.valid());
        CPPUNIT_ASSERT_MESSAGE(error, error.find("'dsn' is required") != std::string::npos);
    }

    // A setting in the dsn wins over the backend's own default for it (application_name here,
    // connect_timeout likewise): the dsn is the operator's word.
    void testDsnSettingsWin() {
        StoreClient named(plugin(), *host_, "postgres",
                          "{\"dsn\":" + json_text(dsn_ + " application_name=sluice-dsn-wins") + "}");
        CPPUNIT_ASSERT_MESSAGE(loaderHost().last_error(), named.valid());
        named.write("d", R"([{"_id":"a"}])");
        PGconn* c = PQconnectdb(dsn_.c_str());
        PGresult* r = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice-dsn-wins'");
        const std::string count = PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : PQerrorMessage(c);
        PQclear(r);
        PQfinish(c);
        CPPUNIT_ASSERT_MESSAGE(count, count != "0" && count.find_first_not_of("0123456789") == std::string::npos);
    }

    void testNewerSchemaIsRefused() {
        store_->write("d", R"([{"_id":"a"}])");
        store_.reset();
        PGconn* c = PQconnectdb(dsn_.c_str());
        PGresult* r = PQexec(c, "INSERT INTO sluice_schema_version (version) VALUES (99)");
        CPPUNIT_ASSERT_EQUAL(PGRES_COMMAND_OK, PQresultStatus(r));
        PQclear(r);
        PQfinish(c);
        store_ = reopenStore();
        CPPUNIT_ASSERT(!store_->valid());
        const std::string& error = loaderHost().last_error();
        CPPUNIT_ASSERT_MESSAGE(error, error.find("schema version 99") != std::string::npos);
        store_.reset();
    }

    // A database written by schema 1 (no stage, one run-mark row per id) is upgraded at open:
    // existing datasets get their stage table and the array run marks, and keep their data.
    void testMigratesSchemaOne() {
        store_->write("d", R"([{"_id":"a","v":1}])");
        store_.reset();
        PGconn* c = PQconnectdb(dsn_.c_str());
        for (const char* sql : {"DROP TABLE sluice_stage_1",
                                "ALTER TABLE sluice_datasets DROP COLUMN staged, DROP COLUMN stage_state_key,"
                                " DROP COLUMN stage_state, DROP COLUMN breaker",
                                "DROP TABLE sluice_seen_1",
                                "CREATE UNLOGGED TABLE sluice_seen_1 (run text NOT NULL, eid text COLLATE \"C\" NOT NULL,"
                                " PRIMARY KEY (run, eid))",
                                "DELETE FROM sluice_schema_version WHERE version >= 2"}) {
            PGresult* r = PQexec(c, sql);
            CPPUNIT_ASSERT_EQUAL_MESSAGE(std::string(sql) + ": " + PQerrorMessage(c), PGRES_COMMAND_OK, PQresultStatus(r));
            PQclear(r);
        }
        PQfinish(c);
        store_ = reopenStore();
        CPPUNIT_ASSERT_MESSAGE(loaderHost().last_error(), store_->valid());
        JsonDocument w = store_->write("d", R"([{"_id":"a","v":2}])", R"({"stage":true})");
        CPPUNIT_ASSERT_EQUAL(int64_t(1), w["staged"].GetInt64());
        store_->command(R"({"op":"stage_commit","dataset":"d"})");
        JsonDocument a = store_->command(R"({"op":"get","dataset":"d","id":"a"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(2), a["v"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(int64_t(0), a["_previous"].GetInt64());
        // Run marks in the schema-3 table: a full run that saw only "b" deletes "a".
        store_->write("d", R"([{"_id":"b","v":1}])", R"({"run":"r1"})");
        JsonDocument unseen = store_->command(R"({"op":"delete_unseen","dataset":"d","run":"r1"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(1), unseen["deleted"].GetInt64());
    }

    // A full run writes everything again: once a run has been through, the next one's unchanged
    // batches are answered from the hash cache — also after the first run's delete_unseen found
    // nothing to delete — and a change by anyone else is never answered from it.
    void testHashCacheAnswersUnchangedFullRuns() {
        const char* batch = R"([{"_id":"a","v":1},{"_id":"b","v":2}])";
        auto hits = [&] {  // answered from the hashes or from the bytes' fingerprints
            JsonDocument stats = store_->command(R"({"op":"hash_cache"})");
            return stats["hit_batches"].GetInt64() + stats["raw_hit_batches"].GetInt64();
        };
        store_->write("d", batch, R"({"run":"r1"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(0), store_->command(R"({"op":"delete_unseen","dataset":"d","run":"r1"})")["deleted"].GetInt64());
        const int64_t before = hits();
        JsonDocument again = store_->write("d", batch, R"({"run":"r2"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(2), again["unchanged"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(before + 1, hits());
        // The run marks written by the cached answer count for delete_unseen: nothing deleted.
        CPPUNIT_ASSERT_EQUAL(int64_t(0), store_->command(R"({"op":"delete_unseen","dataset":"d","run":"r2"})")["deleted"].GetInt64());
        // Another writer (a second plugin instance: another node on the same database) changes
        // "a": this instance's cached state is stale, and the change is seen, not hidden.
        StoreClient other(plugin(), *host_, "postgres", "{\"dsn\":" + json_text(dsn_) + "}");
        CPPUNIT_ASSERT(other.valid());
        CPPUNIT_ASSERT_EQUAL(int64_t(1), other.write("d", R"([{"_id":"a","v":9}])")["written"].GetInt64());
        JsonDocument third = store_->write("d", batch);
        CPPUNIT_ASSERT_EQUAL(int64_t(1), third["written"].GetInt64());  // "a" back to v=1
        CPPUNIT_ASSERT_EQUAL(int64_t(1), third["unchanged"].GetInt64());
    }

    // A batch whose entities are byte for byte what was hashed before is answered from their
    // fingerprints, without a parse; other bytes with the same content from the hashes; and a
    // fingerprint never vouches for bytes that are no longer the latest version.
    void testFingerprintsAnswerOnlyByteIdenticalEntities() {
        auto stat = [&](const char* name) { return store_->command(R"({"op":"hash_cache"})")[name].GetInt64(); };
        const char* original = R"([{"_id":"a","v":1},{"_id":"b","v":2}])";
        const char* reordered = R"([{"v":1,"_id":"a"}, {"_id":"b","v":2}])";
        CPPUNIT_ASSERT_EQUAL(int64_t(2), store_->write("d", original)["written"].GetInt64());
        const int64_t raw0 = stat("raw_hit_batches"), hits0 = stat("hit_batches");
        CPPUNIT_ASSERT_EQUAL(int64_t(2), store_->write("d", original)["unchanged"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(raw0 + 1, stat("raw_hit_batches"));
        // Same content, other bytes: the hashes answer, and learn these bytes too.
        CPPUNIT_ASSERT_EQUAL(int64_t(2), store_->write("d", reordered)["unchanged"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(raw0 + 1, stat("raw_hit_batches"));
        CPPUNIT_ASSERT_EQUAL(hits0 + 1, stat("hit_batches"));
        CPPUNIT_ASSERT_EQUAL(int64_t(2), store_->write("d", reordered)["unchanged"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(raw0 + 2, stat("raw_hit_batches"));
        // A change of "a": written; then the old bytes of "a" are a change again.
        JsonDocument changed = store_->write("d", R"([{"_id":"a","v":3},{"_id":"b","v":2}])");
        CPPUNIT_ASSERT_EQUAL(int64_t(1), changed["written"].GetInt64());
        JsonDocument back = store_->write("d", original);
        CPPUNIT_ASSERT_EQUAL(int64_t(1), back["written"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(int64_t(1), store_->command(R"({"op":"get","dataset":"d","id":"a"})")["v"].GetInt64());
        // A change written without a scan (forced): the old bytes' fingerprint is dropped with
        // the hash it vouched for.
        CPPUNIT_ASSERT_EQUAL(int64_t(2), store_->write("d", original)["unchanged"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(int64_t(1), store_->write("d", R"([{"_id":"a","v":5}])", R"({"force":true})")["written"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(int64_t(1), store_->write("d", original)["written"].GetInt64());
        // Another writer changes "a" behind this instance's back: its fingerprints are stale,
        // and the same bytes as before are a change (a back to v=1), not "unchanged".
        StoreClient other(plugin(), *host_, "postgres", "{\"dsn\":" + json_text(dsn_) + "}");
        CPPUNIT_ASSERT(other.valid());
        CPPUNIT_ASSERT_EQUAL(int64_t(1), other.write("d", R"([{"_id":"a","v":9}])")["written"].GetInt64());
        const int64_t raw1 = stat("raw_hit_batches");
        JsonDocument again = store_->write("d", original);
        CPPUNIT_ASSERT_EQUAL(int64_t(1), again["written"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(int64_t(1), again["unchanged"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(raw1, stat("raw_hit_batches"));
        CPPUNIT_ASSERT_EQUAL(int64_t(1), store_->command(R"({"op":"get","dataset":"d","id":"a"})")["v"].GetInt64());
        // A malformed batch is never answered from fingerprints: refused, nothing written.
        bool refused = false;
        try {
            store_->write("d", R"([{"_id":"a","v":1},{"_id":"b","v":2} x])");
        } catch (const std::exception&) {
            refused = true;
        }
        CPPUNIT_ASSERT(refused);
    }

    // delete_unseen skips the anti join when memory proves that the run saw every live id —
    // and only then: a run that missed an id, another writer's addition, or a tombstone in the
    // run give the server's answer.
    void testDeleteUnseenAnsweredFromMemoryOnlyWhenSure() {
        auto answered = [&] { return store_->command(R"({"op":"hash_cache"})")["unseen_answered"].GetInt64(); };
        auto unseen = [&](const char* run) {
            return store_->command(std::string(R"({"op":"delete_unseen","dataset":"d","run":")") + run + "\"}")["deleted"].GetInt64();
        };
        const char* abc = R"([{"_id":"a","v":1},{"_id":"b","v":2},{"_id":"c","v":3}])";
        store_->write("d", abc, R"({"run":"r1"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(0), unseen("r1"));
        const int64_t n0 = answered();
        // Two batches, every live id seen: answered from memory.
        store_->write("d", R"([{"_id":"a","v":1},{"_id":"b","v":2}])", R"({"run":"r2"})");
        store_->write("d", R"([{"_id":"c","v":3}])", R"({"run":"r2"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(0), unseen("r2"));
        CPPUNIT_ASSERT_EQUAL(n0 + 1, answered());
        // "c" not seen: deleted, by the server's anti join.
        store_->write("d", R"([{"_id":"a","v":1},{"_id":"b","v":2}])", R"({"run":"r3"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(1), unseen("r3"));
        CPPUNIT_ASSERT_EQUAL(n0 + 1, answered());
        CPPUNIT_ASSERT(store_->command(R"({"op":"get","dataset":"d","id":"c"})")["_deleted"].GetBool());
        // Every live id seen again (after the cache was dropped by those deletions).
        store_->write("d", R"([{"_id":"a","v":1},{"_id":"b","v":2}])", R"({"run":"r4"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(0), unseen("r4"));
        CPPUNIT_ASSERT_EQUAL(n0 + 2, answered());
        // Another writer, during the run, adds "e" and deletes "b": the run did not see "e", so
        // it is deleted — though the live count equals the number of live ids the run saw
        // (memory, which describes the state before that write, would have said "all seen").
        store_->write("d", R"([{"_id":"a","v":1},{"_id":"b","v":2}])", R"({"run":"r5"})");
        StoreClient other(plugin(), *host_, "postgres", "{\"dsn\":" + json_text(dsn_) + "}");
        CPPUNIT_ASSERT(other.valid());
        other.write("d", R"([{"_id":"e","v":5},{"_id":"b","_deleted":true}])");
        CPPUNIT_ASSERT_EQUAL(int64_t(2), store_->command(R"({"op":"info","dataset":"d"})")["count"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(int64_t(1), unseen("r5"));
        CPPUNIT_ASSERT(store_->command(R"({"op":"get","dataset":"d","id":"e"})")["_deleted"].GetBool());
        CPPUNIT_ASSERT_EQUAL(n0 + 2, answered());
        // A run that sees "a" and deletes "b" itself: nothing else to delete.
        store_->write("d", R"([{"_id":"a","v":1},{"_id":"b","v":2}])", R"({"run":"r6a"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(0), unseen("r6a"));
        store_->write("d", R"([{"_id":"a","v":1},{"_id":"b","_deleted":true}])", R"({"run":"r6"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(0), unseen("r6"));
        CPPUNIT_ASSERT_EQUAL(int64_t(1), store_->command(R"({"op":"info","dataset":"d"})")["count"].GetInt64());
        // A run that wrote nothing of the dataset's live ids deletes them all.
        store_->write("d", R"([{"_id":"z","v":1}])", R"({"run":"r7"})");
        CPPUNIT_ASSERT_EQUAL(int64_t(1), unseen("r7"));
        CPPUNIT_ASSERT(store_->command(R"({"op":"get","dataset":"d","id":"a"})")["_deleted"].GetBool());
    }

    // Run locks (what keeps two nodes from running one pipe at once): held by one instance
    // until released, re-entrant for the holder, free for the next once released.
    void testRunLocksAcrossInstances() {
        StoreClient other(plugin(), *host_, "postgres", "{\"dsn\":" + json_text(dsn_) + "}");
        CPPUNIT_ASSERT(other.valid());
        const char* lock = R"({"op":"run_lock","key":"pipe:p"})";
        const char* unlock = R"({"op":"run_unlock","key":"pipe:p"})";
        CPPUNIT_ASSERT(store_->command(lock)["locked"].GetBool());
        CPPUNIT_ASSERT(store_->command(lock)["locked"].GetBool());
        CPPUNIT_ASSERT(!other.command(lock)["locked"].GetBool());
        CPPUNIT_ASSERT(other.command(R"({"op":"run_lock","key":"pipe:q"})")["locked"].GetBool());
        CPPUNIT_ASSERT(!other.command(unlock)["released"].GetBool());  // not the holder
        CPPUNIT_ASSERT(store_->command(unlock)["released"].GetBool());
        CPPUNIT_ASSERT(other.command(lock)["locked"].GetBool());
    }

    // Pool of one: a read gives its connection back before each chunk is delivered, so a
    // callback that writes (a dataset source feeding a dataset sink) cannot deadlock.
    void testOnePooledConnectionIsEnough() {
        store_ = std::make_unique<StoreClient>(plugin(), *host_, "postgres",
                                               "{\"dsn\":" + json_text(dsn_) + ",\"pool_size\":1}");
        CPPUNIT_ASSERT(store_->valid());
        testWriteFromReadCallback();
    }

protected:
    std::unique_ptr<StoreClient> openStore() override {
        dsn_ = fresh_database();
        return reopenStore();
    }
    // Instances are opened through the loader's host: open errors are reported there.
    static testing::FakeHost& loaderHost() {
        static testing::FakeHost host;
        return host;
    }
    static testing::LoadedPlugin& plugin() {
        static testing::LoadedPlugin loaded(SLUICE_TEST_PLUGIN_DIR "/sluice-storage-postgres.so", loaderHost());
        return loaded;
    }
    std::unique_ptr<StoreClient> reopenStore() override {
        return std::make_unique<StoreClient>(plugin(), *host_, "postgres",
                                             "{\"dsn\":" + json_text(dsn_) + ",\"pool_size\":4}");
    }

private:
    std::string dsn_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(PostgresConformance);

}  // namespace sluice::conformance

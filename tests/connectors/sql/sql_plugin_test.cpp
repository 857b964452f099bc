// The `sql` source and sink plugins through the C contract (sluice::testing's fake host), against
// a real PostgreSQL the test starts itself: the type mapping (every PostgreSQL type the README
// lists), source → sink round trips, composite keys, incremental reads with updated_column,
// upserts and deletes, creating tables from schema_definition, and the failure messages.
#include "sql_test_support.hpp"

#include <sluice/testing.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <thread>

using namespace sluice;
using namespace sluice::sqltest;
using sluice::testing::FakeHost;
using sluice::testing::Instance;
using sluice::testing::LoadedPlugin;

namespace {

std::string str(const Json& v) { return v.IsString() ? std::string(v.GetString()) : to_json(v); }

// Asserts that `entity` has exactly the members of `expected_json`, each serialising alike.
void assert_entity(const Json& entity, const std::string& expected_json) {
    JsonDocument expected = parse_json(expected_json, "expected");
    for (auto it = expected.MemberBegin(); it != expected.MemberEnd(); ++it) {
        const Json* actual = find_member(entity, as_view(it->name));
        CPPUNIT_ASSERT_MESSAGE(std::string("missing ") + it->name.GetString() + " in " + to_json(entity), actual);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(std::string("property ") + it->name.GetString(), to_json(it->value),
                                     to_json(*actual));
    }
    CPPUNIT_ASSERT_EQUAL_MESSAGE(to_json(entity), expected.MemberCount(), entity.MemberCount());
}

// The emitted entities' _ids in order, comma-separated.
template <class C>
std::string join(const C& items) {
    std::string out;
    for (const std::string& s : items) out += (out.empty() ? "" : ",") + s;
    return out;
}

std::string ids(JsonDocument& emitted) {
    std::string out;
    for (const Json& e : emitted.GetArray()) out += (out.empty() ? "" : ",") + str(e["_id"]);
    return out;
}

int32_t begin_run(Instance& sink, FakeHost& host, const LoadedPlugin& plugin, bool full) {
    const auto* vt = static_cast<const sluice_sink_vtable*>(plugin.component(SLUICE_KIND_SINK, "sql")->vtable);
    return vt->begin_run(sink.handle(), host.context(), full ? "{\"full\":true}" : "{\"full\":false}");
}

const char* kTypedTable = R"SQL(
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE typed (
  id int PRIMARY KEY,
  c_int2 int2, c_int4 int4, c_int8 int8,
  c_num numeric(20,5), c_num_big numeric, c_float4 float4, c_float8 float8,
  c_bool bool, c_text text, c_varchar varchar(10), c_char char(5),
  c_json json, c_jsonb jsonb, c_bytea bytea, c_uuid uuid,
  c_date date, c_ts timestamp, c_tstz timestamptz, c_time time, c_interval interval,
  c_int_arr int4[], c_text_arr text[], c_num_arr numeric[], c_matrix int4[][], c_tstz_arr timestamptz[],
  c_enum mood, c_inet inet, c_float_nan float8, c_int_num numeric);
INSERT INTO typed VALUES (1, -32768, 2147483647, 9223372036854775807,
  12345678901234.56789, 123456789012345678901234567890.123456789, 0.1, 0.1,
  true, E'tab\there "quoted" \u00fcn\u00efcode', 'short', 'ab',
  '{"b": [1, 2.50, "~tnot"], "a": null}', '{"n": 12345678901234567890}', '\x00ff10',
  '531a379e-31bb-4ce1-8690-158dceb64be6',
  '2015-12-31', '2015-01-02 03:04:05.123456', '2015-01-02 03:04:05.123+02', '13:14:15', '1 day 2 hours',
  '{1,NULL,3}', '{"a","b,c",NULL}', '{1.5,NaN}', '{{1,2},{3,4}}', '{"2020-01-01 00:00:00+00"}',
  'happy', '10.0.0.1/32', 'NaN', 42);
INSERT INTO typed (id) VALUES (2);
INSERT INTO typed (id, c_date, c_tstz, c_float8, c_int8, c_ts, c_tstz_arr) VALUES (3, '0044-03-15 BC', '1999-12-31 23:59:59+00',
  -1.5e300, -1, '0001-01-01 00:00:00', '{"9999-12-31 23:59:59.999999+00", "10000-01-01 00:00:00+00", infinity, NULL}');
)SQL";

const char* kTypedRow1 = R"({"_id": "1", "id": 1, "c_int2": -32768, "c_int4": 2147483647,
  "c_int8": 9223372036854775807, "c_num": "~f12345678901234.56789",
  "c_num_big": "~f123456789012345678901234567890.123456789", "c_float4": 0.1, "c_float8": 0.1,
  "c_bool": true, "c_text": "tab\there \"quoted\" \u00fcn\u00efcode", "c_varchar": "short", "c_char": "ab   ",
  "c_json": {"b": [1, 2.5, "~tnot"], "a": null}, "c_jsonb": {"n": 12345678901234567890}, "c_bytea": "~bAP8Q",
  "c_uuid": "~u531a379e-31bb-4ce1-8690-158dceb64be6", "c_date": "~t2015-12-31",
  "c_ts": "~t2015-01-02T03:04:05.123456Z", "c_tstz": "~t2015-01-02T01:04:05.123Z", "c_time": "13:14:15",
  "c_interval": "P1DT2H", "c_int_arr": [1, null, 3], "c_text_arr": ["a", "b,c", null],
  "c_num_arr": ["~f1.5", null], "c_matrix": [[1, 2], [3, 4]], "c_tstz_arr": ["~t2020-01-01T00:00:00Z"],
  "c_enum": "happy", "c_inet": "10.0.0.1/32", "c_int_num": "~f42"})";

}  // namespace

class SqlPluginTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(SqlPluginTest);
    CPPUNIT_TEST(testTypeMapping);
    CPPUNIT_TEST(testNullsAndFilters);
    CPPUNIT_TEST(testRoundTripSourceToSink);
    CPPUNIT_TEST(testCompositeKeys);
    CPPUNIT_TEST(testIncrementalSinceOnTable);
    CPPUNIT_TEST(testIncrementalSinceOnQuery);
    CPPUNIT_TEST(testStreamsInBatches);
    CPPUNIT_TEST(testConnectionPool);
    CPPUNIT_TEST(testTimezoneShift);
    CPPUNIT_TEST(testSchemas);
    CPPUNIT_TEST(testSinkUpsertsAndDeletes);
    CPPUNIT_TEST(testSinkKeyConflicts);
    CPPUNIT_TEST(testSinkMergeMeetsAConcurrentInsert);
    CPPUNIT_TEST(testSinkCopiesNewKeysStraightIn);
    CPPUNIT_TEST(testSinkKeepsOnConflictWhereMergeDiffers);
    CPPUNIT_TEST(testSinkRemovesNamespaces);
    CPPUNIT_TEST(testSinkCreatesTableFromSchemaDefinition);
    CPPUNIT_TEST(testSinkTruncatesOnFullRun);
    CPPUNIT_TEST(testCredentialsAndReachability);
    CPPUNIT_TEST(testMissingTablesAndBadRows);
    CPPUNIT_TEST(testBadConfigIsRefused);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        database_ = fresh_database();
        db_ = std::make_unique<Db>(dsn_for(database_));
        system_ = system_json(database_);
        host_ = std::make_unique<FakeHost>();
        source_plugin_ = std::make_unique<LoadedPlugin>(plugin_path("sluice-source-sql"), *host_);
        sink_plugin_ = std::make_unique<LoadedPlugin>(plugin_path("sluice-sink-sql"), *host_);
    }
    void tearDown() override {
        sink_plugin_.reset();
        source_plugin_.reset();
        host_.reset();
        db_.reset();
    }

    Instance source(const std::string& config, const std::string& system = {}) {
        const std::string& sys = system.empty() ? system_ : system;
        Instance i = source_plugin_->create(SLUICE_KIND_SOURCE, "sql", config, sys.c_str());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), i.valid());
        return i;
    }
    Instance sink(const std::string& config, const std::string& system = {}) {
        const std::string& sys = system.empty() ? system_ : system;
        Instance i = sink_plugin_->create(SLUICE_KIND_SINK, "sql", config, sys.c_str());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), i.valid());
        return i;
    }
    void read_ok(Instance& s, const char* since = nullptr, uint32_t batch = 100) {
        host_->clear();
        const int32_t status = s.read(since, batch);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), int32_t(SLUICE_OK), status);
    }
    void write_ok(Instance& s, const std::string& entities) {
        const int32_t status = s.write(entities);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), int32_t(SLUICE_OK), status);
    }

    void testTypeMapping() {
        db_->exec(kTypedTable);
        Instance s = source(R"({"type": "sql", "system": "pg-test", "table": "typed"})");
        read_ok(s);
        JsonDocument& out = host_->emitted();
        CPPUNIT_ASSERT_EQUAL(std::string("1,2,3"), ids(out));  // primary key from the catalog
        assert_entity(out[0], kTypedRow1);
        // NULLs are left out (preserve_null_values: false).
        assert_entity(out[1], R"({"_id": "2", "id": 2})");
        // Dates outside 0001…9999 have no transit form: left out like NULL; big floats stay floats.
        assert_entity(out[2], R"({"_id": "3", "id": 3, "c_tstz": "~t1999-12-31T23:59:59Z", "c_float8": -1.5e300,
                                  "c_int8": -1, "c_ts": "~t0001-01-01T00:00:00Z",
                                  "c_tstz_arr": ["~t9999-12-31T23:59:59.999999Z", null, null, null]})");
        // No updated_column: no continuation token, every run is full.
        CPPUNIT_ASSERT(host_->continuations().empty());
    }

    void testNullsAndFilters() {
        db_->exec(kTypedTable);
        Instance all = source(R"({"type": "sql", "system": "pg-test", "table": "typed", "preserve_null_values": true,
                                  "whitelist": ["id", "c_text", "c_float_nan", "c_bool"]})");
        read_ok(all);
        assert_entity(host_->emitted()[0], R"({"_id": "1", "id": 1, "c_text": "tab\there \"quoted\" \u00fcn\u00efcode",
                                              "c_float_nan": null, "c_bool": true})");
        assert_entity(host_->emitted()[1], R"({"_id": "2", "id": 2, "c_text": null, "c_float_nan": null, "c_bool": null})");
        Instance black = source(R"({"type": "sql", "system": "pg-test", "table": "typed",
                                    "blacklist": ["c_text", "c_json", "c_jsonb", "id"]})");
        read_ok(black);
        const Json& e = host_->emitted()[0];
        CPPUNIT_ASSERT_EQUAL(std::string("1"), str(e["_id"]));  // the key still makes _id
        CPPUNIT_ASSERT(!e.HasMember("c_text") && !e.HasMember("id") && !e.HasMember("c_jsonb"));
        CPPUNIT_ASSERT(e.HasMember("c_bool"));
        // A query with its own key and a mixed-case table name resolved like PostgreSQL would.
        db_->exec("CREATE TABLE Customers (CustomerId text PRIMARY KEY, Name text); INSERT INTO customers VALUES ('c1', 'Ann')");
        Instance cased = source(R"({"type": "sql", "system": "pg-test", "table": "Customers"})");
        read_ok(cased);
        assert_entity(host_->emitted()[0], R"({"_id": "c1", "customerid": "c1", "name": "Ann"})");
    }

    void testRoundTripSourceToSink() {
        db_->exec(kTypedTable);
        db_->exec("CREATE TABLE typed_copy (LIKE typed INCLUDING ALL)");
        Instance s = source(R"({"type": "sql", "system": "pg-test", "table": "typed"})");
        read_ok(s);
        const std::string entities = to_json(host_->emitted());
        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "typed_copy"})");
        write_ok(k, entities);
        CPPUNIT_ASSERT_EQUAL(3L, db_->count("typed_copy"));
        // Every value equal (NaN has no entity form: it comes back NULL).
        const char* diff = "SELECT count(*) FROM ((SELECT to_jsonb(t) - 'c_float_nan' - 'c_num_arr' - 'c_date' - 'c_tstz_arr' FROM typed t "
                           "EXCEPT SELECT to_jsonb(c) - 'c_float_nan' - 'c_num_arr' - 'c_date' - 'c_tstz_arr' FROM typed_copy c) UNION ALL "
                           "(SELECT to_jsonb(c) - 'c_float_nan' - 'c_num_arr' - 'c_date' - 'c_tstz_arr' FROM typed_copy c "
                           "EXCEPT SELECT to_jsonb(t) - 'c_float_nan' - 'c_num_arr' - 'c_date' - 'c_tstz_arr' FROM typed t)) d";
        CPPUNIT_ASSERT_EQUAL_MESSAGE(db_->value(std::string(diff).replace(7, 8, "string_agg(d::text, ' / ')")),
                                     std::string("0"), db_->value(diff));
        CPPUNIT_ASSERT_EQUAL(std::string("{1.5,NULL}"), db_->value("SELECT c_num_arr::text FROM typed_copy WHERE id = 1"));
        CPPUNIT_ASSERT_EQUAL(std::string(""), db_->value("SELECT c_float_nan::text FROM typed_copy WHERE id = 1"));
        CPPUNIT_ASSERT_EQUAL(std::string("2015-12-31"), db_->value("SELECT c_date::text FROM typed_copy WHERE id = 1"));
        // Reading the copy gives the same entities.
        Instance again = source(R"({"type": "sql", "system": "pg-test", "table": "typed_copy"})");
        read_ok(again);
        assert_entity(host_->emitted()[0], kTypedRow1);
    }

    void testCompositeKeys() {
        db_->exec("CREATE TABLE stock (region text, item int, qty int, PRIMARY KEY (region, item));"
                  "INSERT INTO stock VALUES ('north', 1, 5), ('a|b', 2, 6), ('50%', 3, 7);"
                  "CREATE TABLE stock_copy (LIKE stock INCLUDING ALL)");
        Instance s = source(R"({"type": "sql", "system": "pg-test", "table": "stock"})");
        read_ok(s);
        std::set<std::string> got;
        for (const Json& e : host_->emitted().GetArray()) got.insert(str(e["_id"]));
        CPPUNIT_ASSERT_EQUAL(join(std::set<std::string>({"north|1", "a%7Cb|2", "50%25|3"})), join(got));
        const std::string entities = to_json(host_->emitted());

        Instance reordered = source(R"({"type": "sql", "system": "pg-test", "query": "SELECT * FROM stock WHERE qty = 5",
                                        "primary_key": ["item", "region"]})");
        read_ok(reordered);
        CPPUNIT_ASSERT_EQUAL(std::string("1|north"), ids(host_->emitted()));

        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "stock_copy"})");
        write_ok(k, entities);
        CPPUNIT_ASSERT_EQUAL(3L, db_->count("stock_copy"));
        // A tombstone with nothing but _id: the key comes from splitting the _id.
        write_ok(k, R"([{"_id": "a%7Cb|2", "_deleted": true}, {"_id": "50%25|3", "qty": 70}])");
        CPPUNIT_ASSERT_EQUAL(std::string("north,50%"), db_->value("SELECT string_agg(region, ',' ORDER BY item) FROM stock_copy"));
        CPPUNIT_ASSERT_EQUAL(std::string("70"), db_->value("SELECT qty FROM stock_copy WHERE region = '50%'"));
        // An _id that does not split into the key is refused, naming the entity.
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), k.write(R"([{"_id": "just-one-part", "_deleted": true}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("'just-one-part'") != std::string::npos);
    }

    void testIncrementalSinceOnTable() {
        db_->exec("CREATE TABLE events (id int PRIMARY KEY, name text, updated timestamptz NOT NULL);"
                  "INSERT INTO events SELECT i, 'e' || i, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 minute' "
                  "FROM generate_series(0, 4) i");
        Instance s = source(R"({"type": "sql", "system": "pg-test", "table": "events", "updated_column": "updated"})");
        read_ok(s, nullptr, 2);
        CPPUNIT_ASSERT_EQUAL(std::string("0,1,2,3,4"), ids(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(size_t(3), host_->emitted_batches());
        // Every batch carries the largest value so far (chronological: checkpointed per batch).
        CPPUNIT_ASSERT_EQUAL(std::string("2024-01-01 00:01:00+00,2024-01-01 00:03:00+00,2024-01-01 00:04:00+00"),
                             join(host_->continuations()));
        CPPUNIT_ASSERT_EQUAL(std::string("2024-01-01 00:04:00+00"), str(host_->emitted()[4]["_updated"]));
        const std::string token = host_->continuations().back();

        db_->exec("UPDATE events SET name = 'changed', updated = '2024-01-01 00:10:00+00' WHERE id = 2;"
                  "INSERT INTO events VALUES (9, 'new', '2024-01-01 00:11:00+00')");
        read_ok(s, token.c_str(), 100);
        // >= since: the boundary row (4) again — a no-op for the dataset's hash check — then the changes in order.
        CPPUNIT_ASSERT_EQUAL(std::string("4,2,9"), ids(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string("changed"), str(host_->emitted()[1]["name"]));
        CPPUNIT_ASSERT_EQUAL(std::string("2024-01-01 00:11:00+00"), host_->continuations().back());

        // Nothing new: only the boundary row, and the token does not move.
        read_ok(s, "2024-01-01 00:11:00+00");
        CPPUNIT_ASSERT_EQUAL(std::string("9"), ids(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string("2024-01-01 00:11:00+00"), host_->continuations().back());

        // Integer versions work the same way (compared as integers by the server, not as text).
        db_->exec("CREATE TABLE versioned (id text PRIMARY KEY, version bigint);"
                  "INSERT INTO versioned VALUES ('a', 9), ('b', 10), ('c', 100)");
        Instance v = source(R"({"type": "sql", "system": "pg-test", "table": "versioned", "updated_column": "version"})");
        read_ok(v, "10");
        CPPUNIT_ASSERT_EQUAL(std::string("b,c"), ids(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string("100"), host_->continuations().back());

        // is_chronological_full: false skips the ORDER BY on full runs; the token (the largest
        // value of the same snapshot) is set once, at the end.
        Instance unordered = source(R"({"type": "sql", "system": "pg-test", "table": "versioned",
                                        "updated_column": "version", "is_chronological_full": false})");
        read_ok(unordered);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(std::string("100"), join(host_->continuations()));
    }

    void testIncrementalSinceOnQuery() {
        db_->exec("CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), changed timestamptz);"
                  "INSERT INTO orders VALUES (1, 10.50, '2024-05-01 10:00:00+00'), (2, 20, '2024-05-02 10:00:00+00'),"
                  "(3, 30, '2024-05-03 10:00:00+00')");
        Instance q = source(R"({"type": "sql", "system": "pg-test", "primary_key": "id", "updated_column": "changed",
            "query": "SELECT id, amount, changed FROM orders WHERE amount > 15;",
            "updated_query": "SELECT id, amount, changed FROM orders WHERE amount > 15 AND changed >= :since"})");
        read_ok(q);
        CPPUNIT_ASSERT_EQUAL(std::string("2,3"), ids(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string("~f20.00"), str(host_->emitted()[0]["amount"]));
        read_ok(q, "2024-05-03 10:00:00+00");
        CPPUNIT_ASSERT_EQUAL(std::string("3"), ids(host_->emitted()));
        // Without updated_query the query is filtered on updated_column.
        Instance plain = source(R"({"type": "sql", "system": "pg-test", "primary_key": "id", "updated_column": "changed",
                                    "query": "SELECT * FROM orders"})");
        read_ok(plain, "2024-05-02 10:00:00+00");
        CPPUNIT_ASSERT_EQUAL(std::string("2,3"), ids(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string("2024-05-03 10:00:00+00"), host_->continuations().back());
    }

    void testStreamsInBatches() {
        db_->exec("CREATE TABLE many (id int PRIMARY KEY, v text);"
                  "INSERT INTO many SELECT i, repeat('x', 50) FROM generate_series(1, 2500) i");
        Instance s = source(R"({"type": "sql", "system": "pg-test", "table": "many", "fetch_size": 70})");
        read_ok(s, nullptr, 1000);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2500), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(size_t(3), host_->emitted_batches());  // 1000 + 1000 + 500
        CPPUNIT_ASSERT_EQUAL(2500.0, host_->metrics().at("sql_source_rows"));
        // A downstream that stops the run stops the read: the server stops sending, nothing is
        // left open, and the next read works.
        host_->clear();
        host_->fail_emits(SLUICE_ERROR, 1);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), s.read(nullptr, 100));
        CPPUNIT_ASSERT_EQUAL(size_t(0), host_->emitted_batches());
        CPPUNIT_ASSERT(wait_for_backends("state <> 'idle'", 0));
        read_ok(s, nullptr, 100);
        CPPUNIT_ASSERT_EQUAL(size_t(25), host_->emitted_batches());
        // A statement_timeout set by the DBA does not cut a long read short (the whole read is one
        // streamed statement): a query that takes longer than the database's timeout completes.
        db_->exec("ALTER DATABASE " + database_ + " SET statement_timeout = '300ms'");
        Instance slow = source(R"({"type": "sql", "system": "pg-test", "primary_key": "id",
                                   "query": "SELECT id, pg_sleep(0.2) IS NULL AS slept FROM many WHERE id <= 3"})",
                               system_json(database_, kPasswordUser, kPassword, ",\"application_name\": \"timeout-test\"",
                                           "pg-timeout"));  // a new pool: sessions opened after the ALTER
        read_ok(slow, nullptr, 100);
        CPPUNIT_ASSERT_EQUAL(std::string("1,2,3"), ids(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string("false"), str(host_->emitted()[0]["slept"]));
    }

    // Waits (up to 5 s) until the password role has exactly `n` backends matching `where`.
    bool wait_for_backends(const std::string& where, long n) {
        const std::string sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = '" +
                                std::string(kPasswordUser) + "' AND " + where;
        for (int i = 0; i < 100; ++i) {
            if (std::stol(db_->value(sql)) == n) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    void testConnectionPool() {
        db_->exec("CREATE TABLE p (id int PRIMARY KEY); INSERT INTO p VALUES (1), (2), (3)");
        const std::string one = system_json(database_, kPasswordUser, kPassword,
                                            ",\"pool_size\": 1, \"pool_max_overflow\": 0, \"pool_timeout\": 5");
        Instance a = source(R"({"type": "sql", "system": "pg-test", "table": "p"})", one);
        Instance b = source(R"({"type": "sql", "system": "pg-test", "table": "p", "updated_column": "id"})", one);
        for (int i = 0; i < 3; ++i) {
            read_ok(a);
            read_ok(b, "2");
            CPPUNIT_ASSERT_EQUAL(std::string("2,3"), ids(host_->emitted()));
        }
        // Both instances (and every run) shared the one pooled connection, left idle.
        CPPUNIT_ASSERT(wait_for_backends("true", 1));
        CPPUNIT_ASSERT(wait_for_backends("state = 'idle'", 1));
        // A pooled connection the server dropped (restart, idle timeout, terminate) is noticed
        // and replaced before use.
        db_->value("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + std::string(kPasswordUser) +
                   "' AND datname = current_database()");
        CPPUNIT_ASSERT(wait_for_backends("true", 0));
        Instance c = source(R"({"type": "sql", "system": "pg-test", "table": "p"})", one);
        read_ok(c);
        CPPUNIT_ASSERT_EQUAL(std::string("1,2,3"), ids(host_->emitted()));
    }

    void testTimezoneShift() {
        const std::string oslo = system_json(database_, kPasswordUser, kPassword, ",\"timezone\":\"Europe/Oslo\"");
        db_->exec("CREATE TABLE local_times (id int PRIMARY KEY, at timestamp, atz timestamptz);"
                  "INSERT INTO local_times VALUES (1, '2024-01-15 12:00:00', '2024-01-15 12:00:00+00'),"
                  "(2, '2024-07-15 12:00:00', NULL)");
        Instance s = source(R"({"type": "sql", "system": "pg-test", "table": "local_times"})", oslo);
        read_ok(s);
        // Timezone-less values are shifted from the system's zone to UTC; timestamptz is not.
        CPPUNIT_ASSERT_EQUAL(std::string("~t2024-01-15T11:00:00Z"), str(host_->emitted()[0]["at"]));
        CPPUNIT_ASSERT_EQUAL(std::string("~t2024-01-15T12:00:00Z"), str(host_->emitted()[0]["atz"]));
        CPPUNIT_ASSERT_EQUAL(std::string("~t2024-07-15T10:00:00Z"), str(host_->emitted()[1]["at"]));
    }

    void testSchemas() {
        db_->exec("CREATE SCHEMA sales; CREATE TABLE sales.items (sku text PRIMARY KEY, qty int);"
                  "INSERT INTO sales.items VALUES ('a', 1), ('b', 2)");
        Instance s = source(R"({"type": "sql", "system": "pg-test", "table": "items", "schema": "sales"})");
        read_ok(s);
        CPPUNIT_ASSERT_EQUAL(std::string("a,b"), ids(host_->emitted()));
        const std::string entities = to_json(host_->emitted());
        Instance unqualified = source(R"({"type": "sql", "system": "pg-test", "table": "items"})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), unqualified.read(nullptr, 100));  // not on the search_path
        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "items_copy", "schema": "sales",
                              "create_table_if_missing": true, "schema_definition": [
                                {"name": "sku", "type": "string", "primary_key": true}, {"name": "qty", "type": "integer"}]})");
        write_ok(k, entities);
        CPPUNIT_ASSERT_EQUAL(std::string("a:1,b:2"),
                             db_->value("SELECT string_agg(sku || ':' || qty, ',' ORDER BY sku) FROM sales.items_copy"));
    }

    void testSinkUpsertsAndDeletes() {
        db_->exec("CREATE TABLE people (id int PRIMARY KEY, name text, age int, tags text[], data jsonb, doc json,"
                  " born date, seen timestamptz, photo bytea, uid uuid, score numeric(10,2), ratio float8)");
        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "people"})");
        write_ok(k, R"([
          {"_id": "1", "id": 1, "name": "Ann", "age": 30, "tags": ["a", "b\"q", null], "data": {"x": [1, "~:ns:1"]},
           "doc": [1, 2], "born": "~t1990-05-06", "seen": "~t2024-01-02T03:04:05.123456789Z", "photo": "~bAQID",
           "uid": "~u531a379e-31bb-4ce1-8690-158dceb64be6", "score": "~f12.345", "ratio": 0.25, "ignored": "x"},
          {"_id": "2", "id": 2, "name": "Bob\twith\nlines\\", "age": 40.0},
          {"_id": "3", "id": 3, "name": "Cid"}])");
        CPPUNIT_ASSERT_EQUAL(3L, db_->count("people"));
        CPPUNIT_ASSERT_EQUAL(std::string("Ann|30|{a,\"b\\\"q\",NULL}|{\"x\": [1, \"~:ns:1\"]}|[1,2]|1990-05-06|"
                                         "2024-01-02 03:04:05.123457+00|\\x010203|531a379e-31bb-4ce1-8690-158dceb64be6|12.35|0.25"),
                             db_->value("SELECT concat_ws('|', name, age, tags, data, doc, born, seen, photo, uid, score, ratio)"
                                        " FROM people WHERE id = 1"));
        CPPUNIT_ASSERT_EQUAL(std::string("Bob\twith\nlines\\|40"),
                             db_->value("SELECT concat_ws('|', name, age) FROM people WHERE id = 2"));
        const std::string xmin2 = db_->value("SELECT xmin::text FROM people WHERE id = 2");
        const std::string xmin1 = db_->value("SELECT xmin::text FROM people WHERE id = 1");

        // Update 1 (age left out → NULL: a row mirrors the latest entity), 2 unchanged, delete 3,
        // 4 twice in one batch (the last wins), 7 keyed by its _id alone.
        write_ok(k, R"([
          {"_id": "1", "id": 1, "name": "Ann B"},
          {"_id": "2", "id": 2, "name": "Bob\twith\nlines\\", "age": 40},
          {"_id": "3", "id": 3, "_deleted": true},
          {"_id": "4", "id": 4, "name": "first"},
          {"_id": "4", "id": 4, "name": "second"},
          {"_id": "7", "name": "keyed by _id"}])");
        CPPUNIT_ASSERT_EQUAL(std::string("1:Ann B:,2:Bob\twith\nlines\\:40,4:second:,7:keyed by _id:"),
                             db_->value("SELECT string_agg(concat_ws(':', id, name, coalesce(age::text, '')), ',' ORDER BY id)"
                                        " FROM people"));
        CPPUNIT_ASSERT_EQUAL(xmin2, db_->value("SELECT xmin::text FROM people WHERE id = 2"));  // not rewritten
        CPPUNIT_ASSERT(xmin1 != db_->value("SELECT xmin::text FROM people WHERE id = 1"));
        // Deleting what is not there, and a deleted-then-recreated id in one batch.
        write_ok(k, R"([{"_id": "99", "_deleted": true}, {"_id": "4", "_deleted": true},
                        {"_id": "4", "id": 4, "name": "again"}])");
        CPPUNIT_ASSERT_EQUAL(std::string("again"), db_->value("SELECT name FROM people WHERE id = 4"));
        CPPUNIT_ASSERT_EQUAL(4L, db_->count("people"));
        CPPUNIT_ASSERT_EQUAL(3.0, host_->metrics().at("sql_sink_deletes"));
    }

    void testSinkKeyConflicts() {
        db_->exec("CREATE TABLE racy (id int PRIMARY KEY, email text UNIQUE, note text)");
        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "racy"})");
        // Two _ids with the same key values in one batch: one row, the last version.
        write_ok(k, R"([{"_id": "a", "id": 5, "email": "x", "note": "first"}, {"_id": "b", "id": 5, "email": "y", "note": "last"}])");
        CPPUNIT_ASSERT_EQUAL(std::string("5:y:last"), db_->value("SELECT string_agg(concat_ws(':', id, email, note), ',') FROM racy"));
        // A violation of another unique index is the data's fault: the batch fails, naming it.
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), k.write(R"([{"_id": "7", "id": 7, "email": "y"}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("system 'pg-test'") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("racy_email_key") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(1L, db_->count("racy"));
    }

    // An unchanged row is left alone by MERGE (xmax stays 0), while ON CONFLICT DO UPDATE locks
    // it (xmax set): which statement shape wrote a batch, seen from the table.
    std::string xmax_after_unchanged_write(Instance& k, const std::string& table, const std::string& entity) {
        write_ok(k, "[" + entity + "]");
        write_ok(k, "[" + entity + "]");
        return db_->value("SELECT xmax::text FROM " + table);
    }

    void testSinkMergeMeetsAConcurrentInsert() {
        db_->exec("CREATE TABLE race (id int PRIMARY KEY, note text)");
        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "race"})");
        CPPUNIT_ASSERT_EQUAL(std::string("0"), xmax_after_unchanged_write(k, "race", R"({"_id": "1", "id": 1, "note": "a"})"));
        // Another writer inserts key 2 and commits while the sink's MERGE waits on it: the MERGE
        // fails with a unique violation, and the batch is written again the ON CONFLICT way.
        Db other(dsn_for(database_));
        other.exec("BEGIN; INSERT INTO race VALUES (2, 'theirs')");
        int32_t status = SLUICE_ERROR;
        std::thread writer([&] { status = k.write(R"([{"_id": "2", "id": 2, "note": "ours"}, {"_id": "3", "id": 3, "note": "new"}])"); });
        for (int i = 0; i < 400; ++i) {
            if (db_->value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                           "wait_event_type = 'Lock' AND query LIKE '%MERGE%'") != "0")
                break;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        other.exec("COMMIT");
        writer.join();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), int32_t(SLUICE_OK), status);
        CPPUNIT_ASSERT_EQUAL(std::string("1:a,2:ours,3:new"),
                             db_->value("SELECT string_agg(id || ':' || note, ',' ORDER BY id) FROM race"));
    }

    // A batch of new keys goes by COPY straight into the table (counted in sql_sink_copied); one
    // that meets a row already there fails that COPY and is written by MERGE after all, and the
    // sink then waits 8 batches before it tries a COPY again. Tombstones and an _id twice in a
    // batch always go by MERGE; truncating on a full run starts COPYing again at once.
    void testSinkCopiesNewKeysStraightIn() {
        db_->exec("CREATE TABLE fresh (id int PRIMARY KEY, v text)");
        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "fresh"})");
        auto copied = [&] { return host_->metrics().at("sql_sink_copied"); };
        auto rows = [&] { return db_->value("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM fresh"); };
        write_ok(k, R"([{"_id": "1", "id": 1, "v": "a"}, {"_id": "2", "id": 2, "v": "b"}])");
        CPPUNIT_ASSERT_EQUAL(2.0, copied());
        write_ok(k, R"([{"_id": "3", "id": 3, "v": "c"}, {"_id": "2", "id": 2, "v": "B"}])");  // 2 is there
        CPPUNIT_ASSERT_EQUAL(2.0, copied());
        CPPUNIT_ASSERT_EQUAL(std::string("1:a,2:B,3:c"), rows());
        for (int id = 4; id < 12; ++id)  // the 8 batches after a failed COPY go by MERGE
            write_ok(k, "[{\"_id\": \"" + std::to_string(id) + "\", \"id\": " + std::to_string(id) + ", \"v\": \"n\"}]");
        CPPUNIT_ASSERT_EQUAL(2.0, copied());
        write_ok(k, R"([{"_id": "12", "id": 12, "v": "n"}])");
        CPPUNIT_ASSERT_EQUAL(3.0, copied());
        write_ok(k, R"([{"_id": "13", "id": 13, "v": "first"}, {"_id": "13", "id": 13, "v": "last"}])");
        write_ok(k, R"([{"_id": "14", "id": 14, "v": "n"}, {"_id": "1", "_deleted": true}])");
        CPPUNIT_ASSERT_EQUAL(3.0, copied());
        CPPUNIT_ASSERT_EQUAL(std::string("2:B,3:c,4:n,5:n,6:n,7:n,8:n,9:n,10:n,11:n,12:n,13:last,14:n"), rows());
        // A row already there fails the COPY; a truncating full run COPYs the next batch again.
        Instance t = sink(R"({"type": "sql", "system": "pg-test", "table": "fresh", "truncate_table_on_first_run": true})");
        write_ok(t, R"([{"_id": "2", "id": 2, "v": "again"}])");
        CPPUNIT_ASSERT_EQUAL(3.0, copied());
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), begin_run(t, *host_, *sink_plugin_, true));
        write_ok(t, R"([{"_id": "2", "id": 2, "v": "reloaded"}])");
        CPPUNIT_ASSERT_EQUAL(4.0, copied());
        CPPUNIT_ASSERT_EQUAL(std::string("2:reloaded"), rows());
        // A table with a timestamp column (set to now(), which COPY cannot do) is always merged.
        Instance stamped = sink(R"({"type": "sql", "system": "pg-test", "table": "stamped", "timestamp": "at",
                                    "create_table_if_missing": true,
                                    "schema_definition": [{"name": "id", "type": "integer", "primary_key": true}]})");
        write_ok(stamped, R"([{"_id": "1", "id": 1}])");
        CPPUNIT_ASSERT_EQUAL(4.0, copied());
        CPPUNIT_ASSERT_EQUAL(std::string("1"), db_->value("SELECT count(*) FROM stamped WHERE at IS NOT NULL"));
    }

    void testSinkKeepsOnConflictWhereMergeDiffers() {
        // A user trigger: ON CONFLICT fires BEFORE INSERT triggers for every row, MERGE does not,
        // so such a table keeps the ON CONFLICT form (the trigger sees the update too).
        db_->exec("CREATE TABLE seen (n int); CREATE TABLE trig (id int PRIMARY KEY, v text);"
                  "CREATE FUNCTION count_insert() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$BEGIN INSERT INTO seen VALUES (NEW.id); RETURN NEW; END$$;"
                  "CREATE TRIGGER counted BEFORE INSERT ON trig FOR EACH ROW EXECUTE FUNCTION count_insert()");
        Instance trig = sink(R"({"type": "sql", "system": "pg-test", "table": "trig"})");
        CPPUNIT_ASSERT(xmax_after_unchanged_write(trig, "trig", R"({"_id": "1", "id": 1, "v": "a"})") != "0");
        write_ok(trig, R"([{"_id": "1", "id": 1, "v": "b"}])");
        CPPUNIT_ASSERT_EQUAL(std::string("b"), db_->value("SELECT v FROM trig"));
        CPPUNIT_ASSERT_EQUAL(3L, db_->count("seen"));
        // A view (MERGE takes none in PostgreSQL 15) is written through ON CONFLICT.
        db_->exec("CREATE TABLE base (id int PRIMARY KEY, v text); CREATE VIEW v_base AS SELECT * FROM base");
        Instance view = sink(R"({"type": "sql", "system": "pg-test", "table": "v_base", "primary_key": "id"})");
        write_ok(view, R"([{"_id": "1", "id": 1, "v": "a"}, {"_id": "2", "id": 2, "v": "b"}])");
        write_ok(view, R"([{"_id": "1", "id": 1, "v": "c"}, {"_id": "2", "_deleted": true}])");
        CPPUNIT_ASSERT_EQUAL(std::string("1:c"), db_->value("SELECT string_agg(id || ':' || v, ',') FROM base"));
        // An inheritance parent: MERGE would find and update a child's row with the key, which
        // the parent's key index (what ON CONFLICT and COPY go by) does not see. ON CONFLICT is
        // kept: the parent gets its own row (a tombstone keeps the batch off the COPY path).
        db_->exec("CREATE TABLE parent (id int PRIMARY KEY, v text); CREATE TABLE child () INHERITS (parent);"
                  "INSERT INTO child VALUES (1, 'child')");
        Instance parent = sink(R"({"type": "sql", "system": "pg-test", "table": "parent"})");
        write_ok(parent, R"([{"_id": "1", "id": 1, "v": "new"}, {"_id": "9", "_deleted": true}])");
        CPPUNIT_ASSERT_EQUAL(std::string("1:new"), db_->value("SELECT string_agg(id || ':' || v, ',') FROM ONLY parent"));
        CPPUNIT_ASSERT_EQUAL(std::string("1:child"), db_->value("SELECT string_agg(id || ':' || v, ',') FROM child"));
        // Key columns without a unique index: ON CONFLICT refuses them, and MERGE must not quietly
        // accept them (duplicates would be updated together).
        db_->exec("CREATE TABLE loose (id int, v text)");
        Instance loose = sink(R"({"type": "sql", "system": "pg-test", "table": "loose", "primary_key": "id"})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), loose.write(R"([{"_id": "1", "id": 1, "v": "a"}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("no unique or exclusion constraint") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(0L, db_->count("loose"));
    }

    void testSinkRemovesNamespaces() {
        db_->exec("CREATE TABLE ns (id int PRIMARY KEY, name text, ref text, refs text[], doc jsonb)");
        Instance plain = sink(R"({"type": "sql", "system": "pg-test", "table": "ns"})");
        // Off (the default: this node does not namespace identifiers): namespaced properties
        // have no column, and a namespaced identifier keeps its namespace.
        write_ok(plain, R"([{"_id": "1", "crm:name": "Ann", "ref": "~:crm:42", "refs": ["~:crm:1", "~:2"]}])");
        CPPUNIT_ASSERT_EQUAL(std::string("1||crm:42|{crm:1,2}"), db_->value("SELECT concat_ws('|', id, coalesce(name, ''), ref, refs) FROM ns"));

        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "ns", "remove_namespaces": true})");
        // Property names lose their namespace (the key too), identifiers become plain ids (in
        // lists as well); JSON values are written as they are.
        write_ok(k, R"([{"_id": "crm:2", "crm:id": 2, "crm:name": "Bob", "crm:ref": "~:crm:42", "erp:refs": ["~:crm:1", "~:2", "x"],
                         "crm:doc": {"crm:k": "~:crm:7"}},
                        {"_id": "3", "name": "plain", "crm:name": "namespaced"},
                        {"_id": "4", "erp:name": "first", "crm:name": "last", "ref": "id:with:colons"},
                        {"_id": "1", "_deleted": true}])");
        CPPUNIT_ASSERT_EQUAL(std::string("2:Bob:42:{1,2,x}:{\"crm:k\": \"~:crm:7\"},3:namespaced:::,4:last:id:with:colons::"),
                             db_->value("SELECT string_agg(concat_ws(':', id, name, coalesce(ref, ''), coalesce(refs::text, ''), "
                                        "coalesce(doc::text, '')), ',' ORDER BY id) FROM ns"));
        // With schema_definition, source_property names the property without its namespace.
        Instance mapped = sink(R"({"type": "sql", "system": "pg-test", "table": "ns", "remove_namespaces": true,
                                   "schema_definition": [{"source_property": "code", "name": "id", "type": "integer", "primary_key": true},
                                                         {"source_property": "label", "name": "name"}]})");
        write_ok(mapped, R"([{"_id": "x", "crm:code": 9, "crm:label": "~:crm:nine"}])");
        CPPUNIT_ASSERT_EQUAL(std::string("nine"), db_->value("SELECT name FROM ns WHERE id = 9"));
    }

    void testSinkCreatesTableFromSchemaDefinition() {
        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "made", "create_table_if_missing": true,
          "timestamp": "sesam-timestamp",
          "schema_definition": [
            {"source_property": "code", "name": "id", "type": "integer", "primary_key": true},
            {"source_property": "name", "name": "name", "type": "string", "max_size": 20, "allow_null": false},
            {"source_property": "price", "name": "price", "type": "decimal", "precision": 10, "scale": 2},
            {"source_property": "ratio", "name": "ratio", "type": "float"},
            {"source_property": "blob", "name": "blob", "type": "binary"},
            {"source_property": "at", "name": "at", "type": "datetime", "index": true},
            {"source_property": "day", "name": "day", "type": "date"},
            {"source_property": "clock", "name": "clock", "type": "time"},
            {"source_property": "uid", "name": "uid", "type": "uuid"},
            {"source_property": "flag", "name": "flag", "type": "boolean", "default": true},
            {"source_property": "doc", "name": "doc", "type": "json"}]})");
        write_ok(k, R"([{"_id": "5", "code": 5, "name": "Five", "price": "~f12.50", "ratio": 1.5, "blob": "~bAQID",
                         "at": "~t2020-02-03T04:05:06Z", "day": "~t2020-02-03", "clock": "10:11:12",
                         "uid": "~u00000000-0000-0000-0000-000000000001", "doc": {"k": ["v"]}}])");
        CPPUNIT_ASSERT_EQUAL(std::string("bigint,character varying(20),numeric(10,2),double precision,bytea,"
                                         "timestamp with time zone,date,time without time zone,uuid,boolean,jsonb,"
                                         "timestamp with time zone"),
                             db_->value("SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) "
                                        "FROM pg_attribute WHERE attrelid = 'made'::regclass AND attnum > 0"));
        CPPUNIT_ASSERT_EQUAL(std::string("5|Five|12.50|1.5|\\x010203|2020-02-03 04:05:06+00|2020-02-03|10:11:12|"
                                         "00000000-0000-0000-0000-000000000001|t|{\"k\": [\"v\"]}"),
                             db_->value("SELECT concat_ws('|', id, name, price, ratio, blob, at, day, clock, uid, flag, doc)"
                                        " FROM made"));
        CPPUNIT_ASSERT_EQUAL(std::string("t"), db_->value("SELECT \"sesam-timestamp\" > now() - interval '1 hour' FROM made"));
        CPPUNIT_ASSERT_EQUAL(std::string("id"), db_->value("SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a "
                                                           "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                                                           "WHERE i.indrelid = 'made'::regclass AND i.indisprimary"));
        CPPUNIT_ASSERT_EQUAL(std::string("2"), db_->value("SELECT count(*) FROM pg_index WHERE indrelid = 'made'::regclass"));
        // NOT NULL from allow_null: false is enforced (the batch fails as a whole).
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), k.write(R"([{"_id": "6", "code": 6}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("pg-test") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("null value") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(1L, db_->count("made"));
    }

    void testSinkTruncatesOnFullRun() {
        db_->exec("CREATE TABLE t (id text PRIMARY KEY, v int); INSERT INTO t VALUES ('old', 1)");
        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "t", "truncate_table_on_first_run": true})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), begin_run(k, *host_, *sink_plugin_, false));
        CPPUNIT_ASSERT_EQUAL(1L, db_->count("t"));  // incremental run: untouched
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), begin_run(k, *host_, *sink_plugin_, true));
        CPPUNIT_ASSERT_EQUAL(0L, db_->count("t"));
        write_ok(k, R"([{"_id": "new", "v": 2}])");
        CPPUNIT_ASSERT_EQUAL(std::string("new"), db_->value("SELECT id FROM t"));
    }

    void testCredentialsAndReachability() {
        db_->exec("CREATE TABLE t (id int PRIMARY KEY)");
        // The right password works (the role really needs one: see sql_test_support.hpp).
        Instance ok = source(R"({"type": "sql", "system": "pg-test", "table": "t"})");
        read_ok(ok);

        Instance wrong = source(R"({"type": "sql", "system": "pg-test", "table": "t"})",
                                system_json(database_, kPasswordUser, "badpass-xyz", "", "pg-wrong"));
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), wrong.read(nullptr, 100));  // not worth a retry
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("system 'pg-wrong'") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("password authentication failed") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("badpass-xyz") == std::string::npos);

        Instance wrong_sink = sink(R"({"type": "sql", "system": "pg-test", "table": "t"})",
                                   system_json(database_, kPasswordUser, "badpass-xyz", "", "pg-wrong"));
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), wrong_sink.write(R"([{"_id": "1"}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("password authentication failed") != std::string::npos);

        Instance no_db = source(R"({"type": "sql", "system": "pg-test", "table": "t"})",
                                system_json("no_such_db", kPasswordUser, kPassword, "", "pg-nodb"));
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), no_db.read(nullptr, 100));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("\"no_such_db\" does not exist") != std::string::npos);

        // Unreachable: a transient failure (RETRY), naming the system and where it was looked for.
        const std::string gone = R"({"_id": "pg-gone", "type": "system:postgresql", "host": "/nonexistent/sluice-socket",
                                     "port": 5432, "database": "x", "username": "y", "connect_timeout": 2})";
        Instance unreachable = source(R"({"type": "sql", "system": "pg-gone", "table": "t"})", gone);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_RETRY), unreachable.read(nullptr, 100));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("system 'pg-gone': cannot connect") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("/nonexistent/sluice-socket") != std::string::npos);
        Instance unreachable_sink = sink(R"({"type": "sql", "system": "pg-gone", "table": "t"})", gone);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_RETRY), unreachable_sink.write(R"([{"_id": "1"}])"));
    }

    void testMissingTablesAndBadRows() {
        Instance s = source(R"({"type": "sql", "system": "pg-test", "table": "nope"})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), s.read(nullptr, 100));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(),
                               host_->last_error().find("system 'pg-test': table 'nope' does not exist") != std::string::npos);
        Instance k = sink(R"({"type": "sql", "system": "pg-test", "table": "nope"})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), k.write(R"([{"_id": "1"}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(),
                               host_->last_error().find("system 'pg-test': table 'nope' does not exist") != std::string::npos);
        Instance bad_query = source(R"({"type": "sql", "system": "pg-test", "query": "SELECT * FROM nowhere", "primary_key": "id"})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), bad_query.read(nullptr, 100));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("\"nowhere\" does not exist") != std::string::npos);

        // A malformed row fails the whole batch (one transaction), naming the entity and property.
        db_->exec("CREATE TABLE nums (id int PRIMARY KEY, n int)");
        Instance nums = sink(R"({"type": "sql", "system": "pg-test", "table": "nums"})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), nums.write(R"([{"_id": "1", "id": 1, "n": 5}, {"_id": "2", "id": 2, "n": "abc"}])"));
        const std::string& e = host_->last_error();
        CPPUNIT_ASSERT_MESSAGE(e, e.find("system 'pg-test'") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(e, e.find("entity '2', property 'n'") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(e, e.find("invalid input syntax for type integer") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(0L, db_->count("nums"));
        write_ok(nums, R"([{"_id": "1", "id": 1, "n": 5}])");  // the connection is still usable
        CPPUNIT_ASSERT_EQUAL(1L, db_->count("nums"));
        // A bad row early in a large batch (the server rejects the COPY while rows are still being
        // sent): the server's reason, naming the entity, not a broken-connection message.
        std::string big = "[{\"_id\": \"x\", \"id\": 100, \"n\": \"not a number\"}";
        for (int i = 0; i < 20000; ++i) big += ",{\"_id\": \"" + std::to_string(1000 + i) + "\", \"id\": " + std::to_string(1000 + i) + ", \"n\": 1}";
        big += "]";
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), nums.write(big));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("entity 'x', property 'n'") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(1L, db_->count("nums"));
        write_ok(nums, R"([{"_id": "2", "id": 2, "n": 6}])");
        CPPUNIT_ASSERT_EQUAL(2L, db_->count("nums"));
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), nums.write(R"([{"_id": "3", "id": 3, "n": )"));  // not JSON
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("malformed JSON") != std::string::npos);
        write_ok(nums, R"([{"_id": "3", "id": 3, "n": 7}])");
        CPPUNIT_ASSERT_EQUAL(3L, db_->count("nums"));
        // A value the sink itself rejects (bad base64 for a bytea column), mid-COPY: same story.
        db_->exec("CREATE TABLE blobs (id int PRIMARY KEY, b bytea)");
        Instance blobs = sink(R"({"type": "sql", "system": "pg-test", "table": "blobs"})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR),
                             blobs.write(R"([{"_id": "1", "id": 1, "b": "~bAQID"}, {"_id": "2", "id": 2, "b": "~b*not*base64"}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("entity '2', property 'b': invalid base64") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(0L, db_->count("blobs"));
        write_ok(blobs, R"([{"_id": "3", "id": 3, "b": "plain text is stored as its bytes"}])");
        CPPUNIT_ASSERT_EQUAL(std::string("plain text is stored as its bytes"), db_->value("SELECT convert_from(b, 'UTF8') FROM blobs"));
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), nums.write(R"([{"id": 3}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("no string _id") != std::string::npos);

        // NULL in a key column of a query: the run fails rather than inventing an _id.
        Instance null_key = source(R"({"type": "sql", "system": "pg-test", "query": "SELECT NULL::int AS id", "primary_key": "id"})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), null_key.read(nullptr, 100));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("NULL in primary key column 'id'") != std::string::npos);
        // A table without a primary key needs primary_key.
        db_->exec("CREATE TABLE keyless (a int)");
        Instance keyless = source(R"({"type": "sql", "system": "pg-test", "table": "keyless"})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), keyless.read(nullptr, 100));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("has no primary key") != std::string::npos);
    }

    void testBadConfigIsRefused() {
        struct Case {
            const char* config;
            std::string system;
            const char* message;
        } cases[] = {
            {R"({"type": "sql", "system": "x", "query": "SELECT 1"})", system_, "'primary_key' is required with 'query'"},
            {R"({"type": "sql", "system": "x"})", system_, "set 'table' or 'query'"},
            {R"({"type": "sql", "system": "x", "table": "t"})", R"({"_id": "my", "type": "system:mysql", "database": "d", "username": "u"})",
             "system 'my' is of type 'system:mysql'"},
            {R"({"type": "sql", "system": "x", "table": "t"})", R"({"_id": "nodb", "type": "system:postgresql", "username": "u"})",
             "'database' is required"},
            {R"({"type": "sql", "system": "x", "table": "t", "fetch_size": 0})", system_, "'fetch_size' must be at least 1"},
            {R"({"type": "sql", "system": "x", "query": "SELECT 1 AS id", "primary_key": "id", "updated_column": "id",
                 "updated_query": "SELECT 1 AS id"})", system_, "must compare with :since"},
        };
        for (const Case& c : cases) {
            Instance i = source_plugin_->create(SLUICE_KIND_SOURCE, "sql", c.config, c.system.c_str());
            CPPUNIT_ASSERT_MESSAGE(c.config, !i.valid());
            CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find(c.message) != std::string::npos);
        }
        Instance no_system = source_plugin_->create(SLUICE_KIND_SOURCE, "sql", R"({"type": "sql", "table": "t"})");
        CPPUNIT_ASSERT(!no_system.valid());
        Instance no_schema = sink_plugin_->create(SLUICE_KIND_SINK, "sql",
                                                  R"({"type": "sql", "system": "x", "table": "t", "create_table_if_missing": true})",
                                                  system_.c_str());
        CPPUNIT_ASSERT(!no_schema.valid());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("schema_definition") != std::string::npos);
        Instance bad_type = sink_plugin_->create(SLUICE_KIND_SINK, "sql",
                                                 R"({"type": "sql", "system": "x", "table": "t", "schema_definition":
                                                     [{"name": "id", "type": "varchar2", "primary_key": true}]})",
                                                 system_.c_str());
        CPPUNIT_ASSERT(!bad_type.valid());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("unknown type 'varchar2'") != std::string::npos);
    }

private:
    std::string database_, system_;
    std::unique_ptr<Db> db_;
    std::unique_ptr<FakeHost> host_;
    std::unique_ptr<LoadedPlugin> source_plugin_, sink_plugin_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(SqlPluginTest);

// The SQL connector in a real node (`sluice serve --storage memory`, built-in plugins): a
// system:postgresql with its password from $SECRET() pointing at a PostgreSQL the test starts
// itself; a `sql` source pipe → dataset, and a dataset → `sql` sink pipe that creates its table.
// Full and incremental runs, deletion tracking reaching the sink table, and failures that leave
// the pipe's continuation where it was.
#include "sql_test_support.hpp"

#include <memory>

using namespace sluice;
using namespace sluice::sqltest;
using namespace sluice::test;

namespace {

const char* kForm = "application/x-www-form-urlencoded";

std::string str(const Json& v) { return v.IsString() ? std::string(v.GetString()) : to_json(v); }

}  // namespace

class SqlNodeTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(SqlNodeTest);
    CPPUNIT_TEST(testTableToDatasetToTable);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        database_ = fresh_database("sqlnode");
        db_ = std::make_unique<Db>(dsn_for(database_));
        dir_ = std::make_unique<TempDir>("sluice-sqlnode");
        node_ = std::make_unique<NodeProcess>((*dir_) / "data", std::vector<std::string>{"--storage", "memory"});
        node_->start();
    }
    void tearDown() override {
        node_.reset();
        dir_.reset();
        db_.reset();
    }

    // Runs a pipe once (pump "start") and returns its pump status after the run.
    JsonDocument run(const std::string& pipe) {
        const int64_t before = pump(pipe)["runtime"]["runs"].GetInt64();
        HttpResponse r = node_->post("/api/pipes/" + pipe + "/pump", "operation=start", kForm);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
        node_->wait_for_pipe_runs(pipe, static_cast<int>(before + 1));
        return pump(pipe);
    }
    JsonDocument pump(const std::string& pipe) { return node_->get("/api/pipes/" + pipe + "/pump").json(); }
    static std::string status(const JsonDocument& p) { return str(p["runtime"]["last-run"]["status"]); }
    static std::string last_seen(const JsonDocument& p) { return str(p["runtime"]["last-seen"]); }
    static std::string message(const JsonDocument& p) { return to_json(p["runtime"]); }

    std::string table_text(const std::string& table) {
        return db_->value("SELECT string_agg(concat_ws(':', id, customer, amount, placed, updated), ',' ORDER BY id) FROM " +
                          table);
    }

    void testTableToDatasetToTable() {
        db_->exec("CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2), placed date,"
                  " updated timestamptz NOT NULL, meta jsonb);"
                  "INSERT INTO orders SELECT i, 'cust' || i, i * 10.5, date '2024-03-01' + i,"
                  " timestamptz '2024-03-01 00:00:00+00' + i * interval '1 minute', jsonb_build_object('n', i)"
                  " FROM generate_series(1, 5) i");
        CPPUNIT_ASSERT_EQUAL(200, node_->post("/api/secrets", std::string("{\"pgpass\": \"") + kPassword + "\"}").status);
        std::string system = system_json(database_, kPasswordUser, "$SECRET(pgpass)", "", "pg");
        const std::string config = "[" + system + R"(,
          {"_id": "orders-in", "type": "pipe", "pump": {"mode": "manual"}, "batch_size": 2,
           "source": {"type": "sql", "system": "pg", "table": "orders", "updated_column": "updated"}},
          {"_id": "orders-out", "type": "pipe", "pump": {"mode": "manual"},
           "source": {"type": "dataset", "dataset": "orders-in"},
           "sink": {"type": "sql", "system": "pg", "table": "orders_copy", "create_table_if_missing": true,
                    "schema_definition": [
                      {"source_property": "id", "name": "id", "type": "integer", "primary_key": true},
                      {"source_property": "customer", "name": "customer", "type": "string"},
                      {"source_property": "amount", "name": "amount", "type": "decimal", "precision": 10, "scale": 2},
                      {"source_property": "placed", "name": "placed", "type": "date"},
                      {"source_property": "updated", "name": "updated", "type": "datetime"},
                      {"source_property": "meta", "name": "meta", "type": "json"}]}}])";
        HttpResponse put = node_->put("/api/config", config);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(put.body, 200, put.status);
        // The password never shows in the config answers.
        CPPUNIT_ASSERT(node_->get("/api/systems/pg").body.find(kPassword) == std::string::npos);

        // Full run: every row, typed; the token is the largest `updated`.
        JsonDocument in = run("orders-in");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(message(in), std::string("completed"), status(in));
        CPPUNIT_ASSERT_EQUAL(std::string("2024-03-01 00:05:00+00"), last_seen(in));
        JsonDocument entities = node_->get("/api/datasets/orders-in/entities?history=false").json();
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(5), entities.Size());
        const Json& first = entities[0];
        CPPUNIT_ASSERT_EQUAL(std::string("1"), str(first["_id"]));
        CPPUNIT_ASSERT_EQUAL(std::string("~f10.50"), str(first["amount"]));
        CPPUNIT_ASSERT_EQUAL(std::string("~t2024-03-02"), str(first["placed"]));
        CPPUNIT_ASSERT_EQUAL(std::string("~t2024-03-01T00:01:00Z"), str(first["updated"]));
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"n":1})"), to_json(first["meta"]));

        // Dataset → table: the sink creates orders_copy and fills it with the same values.
        JsonDocument out = run("orders-out");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(message(out), std::string("completed"), status(out));
        CPPUNIT_ASSERT_EQUAL(table_text("orders"), table_text("orders_copy"));
        CPPUNIT_ASSERT_EQUAL(std::string("{\"n\": 3}"), db_->value("SELECT meta::text FROM orders_copy WHERE id = 3"));

        // Incremental: the boundary row comes again (a no-op by the hash check) with the changes.
        db_->exec("UPDATE orders SET amount = 99, updated = '2024-03-01 00:10:00+00' WHERE id = 2;"
                  "INSERT INTO orders VALUES (6, 'cust6', 60, '2024-03-07', '2024-03-01 00:11:00+00', '{}')");
        in = run("orders-in");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(message(in), std::string("completed"), status(in));
        CPPUNIT_ASSERT_EQUAL(std::string("2024-03-01 00:05:00+00"), str(in["runtime"]["last-run"]["since"]));
        CPPUNIT_ASSERT_EQUAL(int64_t(3), in["runtime"]["last-run"]["entities"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(int64_t(2), in["runtime"]["last-run"]["changes"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(std::string("2024-03-01 00:11:00+00"), last_seen(in));
        out = run("orders-out");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(message(out), std::string("completed"), status(out));
        CPPUNIT_ASSERT_EQUAL(int64_t(2), out["runtime"]["last-run"]["entities"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(table_text("orders"), table_text("orders_copy"));

        // A deleted row is found by a full run (deletion tracking in the dataset sink) and the
        // tombstone deletes the row downstream.
        db_->exec("DELETE FROM orders WHERE id = 3");
        CPPUNIT_ASSERT_EQUAL(200, node_->post("/api/pipes/orders-in/pump", "operation=update-last-seen&last-seen=", kForm).status);
        in = run("orders-in");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(message(in), std::string("completed"), status(in));
        CPPUNIT_ASSERT_EQUAL(std::string("full"), str(in["runtime"]["last-run"]["sync_type"]));
        CPPUNIT_ASSERT_EQUAL(std::string("2024-03-01 00:11:00+00"), last_seen(in));
        out = run("orders-out");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(message(out), std::string("completed"), status(out));
        CPPUNIT_ASSERT_EQUAL(table_text("orders"), table_text("orders_copy"));
        CPPUNIT_ASSERT_EQUAL(5L, db_->count("orders_copy"));

        // A failing source run leaves the token where it was, and says which system and why.
        db_->exec("ALTER TABLE orders RENAME TO orders_away");
        in = run("orders-in");
        CPPUNIT_ASSERT_EQUAL(std::string("failed"), status(in));
        CPPUNIT_ASSERT_MESSAGE(message(in), message(in).find("system 'pg': table 'orders' does not exist") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(std::string("2024-03-01 00:11:00+00"), last_seen(in));
        db_->exec("ALTER TABLE orders_away RENAME TO orders");

        // A failing sink batch: the dataset pipe's offset does not move past it; once the table
        // takes the row again, the next run catches up.
        db_->exec("ALTER TABLE orders_copy ADD CONSTRAINT positive CHECK (amount > 0) NOT VALID;"
                  "UPDATE orders SET amount = -1, updated = '2024-03-01 00:20:00+00' WHERE id = 4");
        in = run("orders-in");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(message(in), std::string("completed"), status(in));
        CPPUNIT_ASSERT_EQUAL(std::string("2024-03-01 00:20:00+00"), last_seen(in));
        const std::string offset_before = last_seen(pump("orders-out"));
        out = run("orders-out");
        CPPUNIT_ASSERT_EQUAL(std::string("failed"), status(out));
        CPPUNIT_ASSERT_MESSAGE(message(out), message(out).find("system 'pg'") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(message(out), message(out).find("violates check constraint") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(offset_before, last_seen(out));
        CPPUNIT_ASSERT_EQUAL(std::string("42.00"), db_->value("SELECT amount FROM orders_copy WHERE id = 4"));
        db_->exec("ALTER TABLE orders_copy DROP CONSTRAINT positive");
        out = run("orders-out");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(message(out), std::string("completed"), status(out));
        CPPUNIT_ASSERT(last_seen(out) != offset_before);
        CPPUNIT_ASSERT_EQUAL(table_text("orders"), table_text("orders_copy"));

        // A wrong secret: the run fails on credentials, naming the system.
        CPPUNIT_ASSERT_EQUAL(200, node_->post("/api/secrets", "{\"pgpass\": \"not-the-password\"}").status);
        in = run("orders-in");
        CPPUNIT_ASSERT_EQUAL(std::string("failed"), status(in));
        CPPUNIT_ASSERT_MESSAGE(message(in), message(in).find("system 'pg'") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(message(in), message(in).find("password authentication failed") != std::string::npos);
        CPPUNIT_ASSERT(message(in).find("not-the-password") == std::string::npos);
        CPPUNIT_ASSERT_EQUAL(std::string("2024-03-01 00:20:00+00"), last_seen(in));
    }

private:
    std::string database_;
    std::unique_ptr<Db> db_;
    std::unique_ptr<TempDir> dir_;
    std::unique_ptr<NodeProcess> node_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(SqlNodeTest);

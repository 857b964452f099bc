// The Sesam-compatible service API against a real node: configuration endpoints with bad input
// changing nothing, env and secrets, the config zip, run-all-pipes, entities per stage,
// receiver → pipe → publisher, and run trees.
#include "postgres_support.hpp"
#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>

#include <set>
#include <thread>

using namespace sluice::test;
using sluice::Json;
using sluice::JsonDocument;

namespace {

// The node's storage for this run of the suite (SLUICE_TEST_STORAGE): memory, or a fresh
// PostgreSQL database per test.
std::vector<std::string> storage_args(std::vector<std::string> extra) {
    std::vector<std::string> args = test_storage() == "postgres"
                                        ? std::vector<std::string>{"--postgres", fresh_postgres_database("api")}
                                        : std::vector<std::string>{"--storage", "memory"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

std::string str(const Json& v) { return v.IsString() ? v.GetString() : sluice::to_json(v); }

// The entities' ids, sorted and comma-separated ("1,2,3").
std::string ids_of(const JsonDocument& entities) {
    std::set<std::string> ids;
    for (const Json& e : entities.GetArray()) ids.insert(e["_id"].GetString());
    std::string out;
    for (const std::string& id : ids) out += (out.empty() ? "" : ",") + id;
    return out;
}

const char* kChain = R"([
  {"_id": "a", "type": "pipe", "source": {"type": "embedded", "entities": [
     {"_id": "1", "name": "One"}, {"_id": "2", "name": "Two"}, {"_id": "3", "name": "Three", "hide": true}]}},
  {"_id": "b", "type": "pipe", "source": {"type": "dataset", "dataset": "a"},
   "transform": {"type": "fixture_touch"}, "pump": {"mode": "manual"}},
  {"_id": "c", "type": "pipe", "source": {"type": "dataset", "dataset": "b"}, "pump": {"mode": "manual"}}
])";

}  // namespace

class ApiTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(ApiTest);
    CPPUNIT_TEST(testBadConfigChangesNothing);
    CPPUNIT_TEST(testPipeAndSystemCrud);
    CPPUNIT_TEST(testEnvAndSecrets);
    CPPUNIT_TEST(testConfigZipRoundTrip);
    CPPUNIT_TEST(testRunAllPipesUntilStable);
    CPPUNIT_TEST(testEntitiesPerStage);
    CPPUNIT_TEST(testReceiverToPublisher);
    CPPUNIT_TEST(testRunTreeStopsAtFailingPipe);
    CPPUNIT_TEST(testPumpOperations);
    CPPUNIT_TEST(testMetricsAndOpenApi);
    CPPUNIT_TEST(testDeadLetters);
    CPPUNIT_TEST(testCircuitBreaker);
    CPPUNIT_TEST(testDatasetHeaders);
    CPPUNIT_TEST(testPostEntitiesToDataset);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        dir_ = std::make_unique<TempDir>();
        node_ = std::make_unique<NodeProcess>((*dir_) / "data", storage_args({"--plugin-dir", SLUICE_TEST_FIXTURE_DIR}));
        node_->start();
        // The suite really runs on the storage it was asked for.
        const std::string storage = node_->get("/api/status").json()["storage"].GetString();
        CPPUNIT_ASSERT_MESSAGE(storage, storage.rfind(test_storage(), 0) == 0);
    }
    void tearDown() override {
        node_.reset();
        dir_.reset();
    }

    void testBadConfigChangesNothing() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", kChain).status);
        const std::string before = n.get("/api/config").body;
        struct Case {
            const char* body;
            const char* pointer;  // expected in the answer
        } cases[] = {
            {"[{\"_id\": \"x\", ", ""},
            {R"([{"_id": "x", "type": "pipe", "source": {"type": "no_such_source"}}])", "/source/type"},
            {R"([{"_id": "x", "type": "pipe", "source": {"type": "embedded", "entities": 7}}])", "/source/entities"},
            {R"([{"_id": "x", "type": "pipe", "source": {"type": "embedded", "entities": [], "system": "ghost"}}])",
             "/source/system"},
            {R"([{"_id": "x", "type": "pipe", "source": {"type": "embedded", "entities": []}, "batch_size": -1}])",
             "/batch_size"},
        };
        for (const Case& c : cases) {
            HttpResponse r = n.put("/api/config", c.body);
            CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 400, r.status);
            JsonDocument body = r.json();
            CPPUNIT_ASSERT(body.HasMember("error"));
            if (*c.pointer) {
                const Json& errors = body["validation_errors"];
                CPPUNIT_ASSERT_MESSAGE(r.body, errors.Size() >= 1);
                CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, std::string(c.pointer), str(errors[0]["pointer"]));
                CPPUNIT_ASSERT_EQUAL(std::string("x"), str(errors[0]["entity"]));
                CPPUNIT_ASSERT(errors[0]["config-errors"][0]["msg"].IsString());  // Sesam's shape
            }
            CPPUNIT_ASSERT_EQUAL_MESSAGE(c.body, before, n.get("/api/config").body);
        }
        // The unknown type names what is installed.
        HttpResponse r = n.put("/api/config", cases[1].body);
        CPPUNIT_ASSERT_MESSAGE(r.body, r.body.find("embedded") != std::string::npos);
    }

    void testPipeAndSystemCrud() {
        NodeProcess& n = *node_;
        const std::string pipe = R"({"_id": "p1", "type": "pipe", "source": {"type": "embedded", "entities": []}})";
        CPPUNIT_ASSERT_EQUAL(201, n.post("/api/pipes", "[" + pipe + "]").status);
        CPPUNIT_ASSERT_EQUAL(409, n.post("/api/pipes", "[" + pipe + "]").status);
        CPPUNIT_ASSERT_EQUAL(200, n.get("/api/pipes/p1").status);
        // The effective config has the default sink, as Sesam's client expects.
        JsonDocument p1 = n.get("/api/pipes/p1").json();
        CPPUNIT_ASSERT_EQUAL(std::string("p1"), str(p1["config"]["effective"]["sink"]["dataset"]));
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/pipes/p1/config",
                                        R"({"type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "z"}]}})")
                                      .status);
        CPPUNIT_ASSERT_EQUAL(std::string("z"), str(n.get("/api/pipes/p1/config").json()["source"]["entities"][0]["_id"]));
        CPPUNIT_ASSERT_EQUAL(400, n.put("/api/pipes/p1/config", R"({"type": "pipe", "source": {"type": "nope"}})").status);
        CPPUNIT_ASSERT_EQUAL(std::string("z"), str(n.get("/api/pipes/p1/config").json()["source"]["entities"][0]["_id"]));

        CPPUNIT_ASSERT_EQUAL(201, n.post("/api/systems", R"([{"_id": "s1", "type": "system:url", "base_url": "http://x"}])").status);
        CPPUNIT_ASSERT_EQUAL(200, n.get("/api/systems/s1").status);
        CPPUNIT_ASSERT_EQUAL(std::string("http://x"), str(n.get("/api/systems/s1/config").json()["base_url"]));
        CPPUNIT_ASSERT_EQUAL(200, n.del("/api/systems/s1").status);
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/systems/s1").status);
        CPPUNIT_ASSERT_EQUAL(200, n.del("/api/pipes/p1").status);
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/pipes/p1").status);
        CPPUNIT_ASSERT_EQUAL(404, n.del("/api/pipes/p1").status);
    }

    void testEnvAndSecrets() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/env", R"({"greeting": "hello", "size": 2})").status);
        CPPUNIT_ASSERT_EQUAL(201, n.post("/api/pipes", R"J([{"_id": "e", "type": "pipe", "batch_size": "$ENV(size)",
            "source": {"type": "embedded", "entities": [{"_id": "1", "text": "$ENV(greeting) world"}]}}])J").status);
        JsonDocument e = n.get("/api/pipes/e").json();
        CPPUNIT_ASSERT_EQUAL(std::string("hello world"), str(e["config"]["effective"]["source"]["entities"][0]["text"]));
        CPPUNIT_ASSERT_EQUAL(int64_t(2), e["config"]["effective"]["batch_size"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(std::string("$ENV(greeting) world"),
                             str(e["config"]["original"]["source"]["entities"][0]["text"]));
        // Removing a variable the config uses is refused, and nothing changes.
        CPPUNIT_ASSERT_EQUAL(400, n.del("/api/env/greeting").status);
        CPPUNIT_ASSERT_EQUAL(std::string("hello"), str(n.get("/api/env").json()["greeting"]));
        // PUT replaces the whole set (as Sesam's client expects).
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/env", R"({"greeting": "hi", "size": 3})").status);
        CPPUNIT_ASSERT_EQUAL(std::string("hi world"),
                             str(n.get("/api/pipes/e").json()["config"]["effective"]["source"]["entities"][0]["text"]));

        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/secrets", R"({"db-password": "s3cr3t-value"})").status);
        HttpResponse names = n.get("/api/secrets");
        CPPUNIT_ASSERT_EQUAL(std::string("db-password"), str(names.json()[0]));
        CPPUNIT_ASSERT(names.body.find("s3cr3t-value") == std::string::npos);
        CPPUNIT_ASSERT_EQUAL(400, n.post("/api/secrets", R"({"bad": 5})").status);
        CPPUNIT_ASSERT_EQUAL(200, n.del("/api/secrets/db-password").status);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), n.get("/api/secrets").json().Size());
    }

    void testConfigZipRoundTrip() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", kChain).status);
        HttpResponse zip = http_request(n.port(), "GET", "/api/config", "", "application/json",
                                        {{"Accept", "application/zip"}});
        CPPUNIT_ASSERT_EQUAL(200, zip.status);
        CPPUNIT_ASSERT_EQUAL(std::string("application/zip"), zip.content_type);
        CPPUNIT_ASSERT(zip.body.compare(0, 2, "PK") == 0);
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", "[]").status);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), n.get("/api/pipes").json().Size());
        // As Sesam's client uploads it: multipart form data, part "file".
        const std::string boundary = "sluiceboundary42";
        std::string body = "--" + boundary +
                           "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"config.zip\"\r\n"
                           "Content-Type: application/zip\r\n\r\n" +
                           zip.body + "\r\n--" + boundary + "--\r\n";
        HttpResponse put = http_request(n.port(), "PUT", "/api/config?force=false", body,
                                        "multipart/form-data; boundary=" + boundary);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(put.body, 200, put.status);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), n.get("/api/pipes").json().Size());
    }

    void testRunAllPipesUntilStable() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", kChain).status);
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/pipes/stop-run-all-pipes", "terminate_timeout=30",
                                         "application/x-www-form-urlencoded").status);
        HttpResponse r = n.post("/api/pipes/run-all-pipes?extra_zero_runs=2&request_mode=sync&output_run_statistics=True",
                                "", "application/x-www-form-urlencoded");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, std::string("success"), str(r.json()["status"]));
        JsonDocument c = n.get("/api/datasets/c/entities").json();
        CPPUNIT_ASSERT_EQUAL(std::string("1,2,3"), ids_of(c));
        CPPUNIT_ASSERT(c[0]["touched"].GetBool());  // went through b's transform

        // Async: a token, then status polling and the log.
        HttpResponse a = n.post("/api/pipes/run-all-pipes?request_mode=async&reset_pipes_and_delete_sink_datasets=False",
                                "", "application/x-www-form-urlencoded");
        const std::string token = str(a.json()["token"]);
        std::string status = "running";
        for (int i = 0; i < 600 && status == "running"; ++i) {
            status = str(n.get("/api/pipes/get-pipe-runner-status?token=" + token).json()["status"]);
            if (status == "running") std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        CPPUNIT_ASSERT_EQUAL(std::string("success"), status);
        JsonDocument log = n.get("/api/pipes/get-run-all-pipes-log?since=0&token=" + token).json();
        CPPUNIT_ASSERT(log.Size() >= 2);
        CPPUNIT_ASSERT(log[0].HasMember("timestamp") && log[0].HasMember("loglevel") && log[0].HasMember("logdata"));
        // Nothing changed the second time: c still holds three versions only.
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), n.get("/api/datasets/c/entities").json().Size());
    }

    void testEntitiesPerStage() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", kChain).status);
        n.wait_for_pipe_runs("a");
        JsonDocument source = n.get("/api/pipes/b/entities?stage=source").json();
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), source.Size());
        CPPUNIT_ASSERT(!source[0].HasMember("touched"));
        JsonDocument after = n.get("/api/pipes/b/entities?stage=after-transforms").json();
        CPPUNIT_ASSERT(after[0]["touched"].GetBool());
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), n.get("/api/pipes/b/entities?limit=1").json().Size());
        CPPUNIT_ASSERT_EQUAL(400, n.get("/api/pipes/b/entities?stage=nowhere").status);
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/pipes/nope/entities").status);
        // Nothing was written by looking.
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/datasets/b").status);
    }

    void testReceiverToPublisher() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", R"([
            {"_id": "in", "type": "pipe", "source": {"type": "http_endpoint"}},
            {"_id": "out", "type": "pipe", "source": {"type": "dataset", "dataset": "in"},
             "transform": {"type": "fixture_touch"}, "sink": {"type": "http_endpoint"}}])").status);
        HttpResponse r = n.post("/api/receivers/in/entities", R"([{"_id": "a", "v": 1}, {"_id": "b", "v": 2}])");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/in/entities", R"({"_id": "c", "v": 3})").status);
        // A pulled run of a receiver reads nothing and must not delete what was pushed.
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/pipes/in/pump", "operation=start", "application/x-www-form-urlencoded").status);
        n.wait_for_pipe_runs("in", 3);
        CPPUNIT_ASSERT_EQUAL(std::string("a,b,c"), ids_of(n.get("/api/datasets/in/entities?deleted=false").json()));
        HttpResponse pulled = n.get("/api/publishers/out/entities");
        JsonDocument published = pulled.json();
        CPPUNIT_ASSERT_EQUAL(std::string("a,b,c"), ids_of(published));
        // The source dataset's headers; a transform may hide its newest entity.
        CPPUNIT_ASSERT_EQUAL(std::string("2"), pulled.headers["X-Dataset-Max-Updated"]);
        CPPUNIT_ASSERT_EQUAL(std::string("true"), pulled.headers["X-Dataset-Filtered"]);
        CPPUNIT_ASSERT_EQUAL(std::string("true"), pulled.headers["X-Dataset-Populated"]);
        CPPUNIT_ASSERT_EQUAL(published.Size(), n.get("/api/publishers/out/entities/letters.json").json().Size());
        CPPUNIT_ASSERT(published[0]["touched"].GetBool());
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), n.get("/api/publishers/out/entities?since=1").json().Size());

        // A full sync in two requests deletes what it did not send (b and c).
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/in/entities?is_full=true&sequence_id=s1&is_first=true&is_last=false",
                                         R"([{"_id": "a", "v": 1}])").status);
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/in/entities?is_full=true&sequence_id=s1&is_first=false&is_last=true",
                                         R"([{"_id": "d", "v": 4}])").status);
        JsonDocument latest = n.get("/api/datasets/in/entities?history=false&deleted=false").json();
        CPPUNIT_ASSERT_EQUAL(std::string("a,d"), ids_of(latest));

        // A publisher plugin renders the same output as bytes; a scheduled run renders nothing.
        CPPUNIT_ASSERT_EQUAL(201, n.post("/api/pipes", R"([{"_id": "lines", "type": "pipe",
            "source": {"type": "dataset", "dataset": "in"}, "sink": {"type": "fixture_lines_endpoint"}}])").status);
        HttpResponse lines = n.get("/api/publishers/lines/fixture_lines");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(lines.body, 200, lines.status);
        CPPUNIT_ASSERT_EQUAL(std::string("ids:\n- a\n- d\nend\n"), lines.body);
        // Sesam's `/<format>/<file>` form: the same document under the client's file name.
        HttpResponse named = n.get("/api/publishers/lines/fixture_lines/sheet.txt");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(named.body, 200, named.status);
        CPPUNIT_ASSERT_EQUAL(lines.body, named.body);
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/publishers/lines/csv/sheet.csv").status);
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/publishers/lines/csv").status);
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/publishers/in/fixture_lines").status);

        CPPUNIT_ASSERT_EQUAL(400, n.post("/api/receivers/in/entities", R"([{"v": 1}])").status);
        CPPUNIT_ASSERT_EQUAL(404, n.post("/api/receivers/out/entities", R"([{"_id": "x"}])").status);
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/publishers/in/entities").status);
    }

    void testRunTreeStopsAtFailingPipe() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", R"([
            {"_id": "t1", "type": "pipe", "pump": {"mode": "manual"},
             "source": {"type": "embedded", "entities": [{"_id": "1"}, {"_id": "2", "fail": true}]}},
            {"_id": "t2", "type": "pipe", "pump": {"mode": "manual"}, "source": {"type": "dataset", "dataset": "t1"},
             "transform": {"type": "fixture_fail_if"}},
            {"_id": "t3", "type": "pipe", "pump": {"mode": "manual"}, "source": {"type": "dataset", "dataset": "t2"}}])")
                                      .status);
        HttpResponse started = n.post("/api/pipes/t3/run-tree", "", "application/x-www-form-urlencoded");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(started.body, 202, started.status);
        JsonDocument tree;
        for (int i = 0; i < 600; ++i) {
            tree = n.get("/api/pipes/t3/run-tree").json();
            if (str(tree["status"]) != "running") break;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        CPPUNIT_ASSERT_EQUAL_MESSAGE(sluice::to_json(tree), std::string("failed"), str(tree["status"]));
        CPPUNIT_ASSERT(str(tree["error"]).find("'t2'") != std::string::npos);
        CPPUNIT_ASSERT(str(tree["error"]).find("asked to fail") != std::string::npos);
        std::string log;
        for (const Json& line : tree["log"].GetArray()) log += str(line["logdata"]) + "\n";
        CPPUNIT_ASSERT_MESSAGE(log, log.find("t1, t2, t3") != std::string::npos);  // leaves first
        CPPUNIT_ASSERT_MESSAGE(log, log.find("pipe t3 started") == std::string::npos);
        CPPUNIT_ASSERT_EQUAL(200, n.get("/api/datasets/t1").status);
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/datasets/t3").status);
    }

    void testPumpOperations() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", kChain).status);
        n.wait_for_pipe_runs("a");
        const char* form = "application/x-www-form-urlencoded";
        HttpResponse disabled = n.post("/api/pipes/a/pump", "operation=disable", form);
        CPPUNIT_ASSERT_EQUAL(200, disabled.status);
        CPPUNIT_ASSERT(disabled.json()["runtime"]["is-disabled"].GetBool());
        CPPUNIT_ASSERT(!n.post("/api/pipes/a/pump", R"({"operation": "enable"})").json()["runtime"]["is-disabled"].GetBool());
        // A disabled pipe that is removed and added again starts enabled (the flag went with it);
        // while configured, a config change keeps it disabled.
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/pipes/c/pump", "operation=disable", form).status);
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/pipes/c/config", R"({"_id": "c", "type": "pipe",
            "source": {"type": "dataset", "dataset": "b"}, "pump": {"mode": "manual"}, "comment": "x"})").status);
        CPPUNIT_ASSERT(n.get("/api/pipes/c/pump").json()["runtime"]["is-disabled"].GetBool());
        CPPUNIT_ASSERT_EQUAL(200, n.del("/api/pipes/c").status);
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", kChain).status);
        CPPUNIT_ASSERT(!n.get("/api/pipes/c/pump").json()["runtime"]["is-disabled"].GetBool());
        HttpResponse bad = n.post("/api/pipes/a/pump", "operation=explode", form);
        CPPUNIT_ASSERT_EQUAL(400, bad.status);
        CPPUNIT_ASSERT(bad.body.find("doesn't support the operation") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(404, n.post("/api/pipes/zzz/pump", "operation=start", form).status);
        // update-last-seen then start: b runs incrementally from offset 1.
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/pipes/b/pump", "operation=update-last-seen&last-seen=1", form).status);
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/pipes/b/pump", "operation=start", form).status);
        n.wait_for_pipe_runs("b");
        JsonDocument pump = n.get("/api/pipes/b/pump").json();
        CPPUNIT_ASSERT_EQUAL(std::string("1"), str(pump["runtime"]["last-run"]["since"]));
        CPPUNIT_ASSERT_EQUAL(int64_t(1), pump["runtime"]["last-run"]["entities"].GetInt64());  // only offset 2
    }

    void testMetricsAndOpenApi() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", kChain).status);
        n.wait_for_pipe_runs("a");
        HttpResponse metrics = n.get("/metrics");
        CPPUNIT_ASSERT_EQUAL(200, metrics.status);
        CPPUNIT_ASSERT(metrics.content_type.find("text/plain") == 0);
        for (const char* line : {"sluice_pipe_runs_total{pipe=\"a\",status=\"completed\"} 1\n",
                                 "sluice_pipe_entities_in_total{pipe=\"a\"} 3\n",
                                 "sluice_pipe_changes_total{pipe=\"a\"} 3\n",
                                 "sluice_http_requests_total{method=\"PUT\",status=\"200\"} 1\n"})
            CPPUNIT_ASSERT_MESSAGE(std::string(line) + " in\n" + metrics.body, metrics.body.find(line) != std::string::npos);

        JsonDocument spec = n.get("/api/openapi.json").json();
        const Json& paths = spec["paths"];
        CPPUNIT_ASSERT(paths.HasMember("/api/pipes/{id}/run-tree"));
        CPPUNIT_ASSERT(paths["/api/pipes/{id}/run-tree"].HasMember("get"));
        CPPUNIT_ASSERT(paths["/api/pipes/{id}/run-tree"].HasMember("post"));
        CPPUNIT_ASSERT(paths.HasMember("/metrics"));
        CPPUNIT_ASSERT(!paths.HasMember("/api/jwt"));  // only what is implemented
        // Every documented GET without parameters answers something other than 404/405.
        for (auto it = paths.MemberBegin(); it != paths.MemberEnd(); ++it) {
            const std::string path = it->name.GetString();
            if (path.find('{') != std::string::npos || !it->value.HasMember("get")) continue;
            const int status = n.get(path).status;
            CPPUNIT_ASSERT_MESSAGE(path, status != 404 && status != 405);
        }
    }

    // A dataset sink with circuit_breaker_threshold_count 2: a run changing at most 2 entities
    // commits; one changing 3 is staged (invisible), fails, holds the pipe's offset and stops the
    // pipe until an operator rolls it back (the same run trips again) or commits it.
    void testCircuitBreaker() {
        NodeProcess& n = *node_;
        const char* form = "application/x-www-form-urlencoded";
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", R"([
            {"_id": "in", "type": "pipe", "source": {"type": "http_endpoint"}},
            {"_id": "guarded", "type": "pipe", "pump": {"mode": "manual"}, "source": {"type": "dataset", "dataset": "in"},
             "sink": {"type": "dataset", "dataset": "out", "circuit_breaker_threshold_count": 2}}])").status);
        auto push = [&](const std::string& body) {
            HttpResponse r = n.post("/api/receivers/in/entities", body);
            CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
        };
        int runs = 0;
        auto run = [&]() {
            CPPUNIT_ASSERT_EQUAL(200, n.post("/api/pipes/guarded/pump", "operation=start", form).status);
            n.wait_for_pipe_runs("guarded", ++runs);
            return n.get("/api/pipes/guarded/pump").json();
        };
        auto values = [&]() {  // "id=v,…" (sorted) of out's latest committed versions
            std::string out;
            JsonDocument latest = n.get("/api/datasets/out/entities?history=false").json();
            std::set<std::string> pairs;
            for (const Json& e : latest.GetArray()) pairs.insert(str(e["_id"]) + "=" + str(e["v"]));
            for (const std::string& p : pairs) out += (out.empty() ? "" : ",") + p;
            return out;
        };
        // A bad threshold is a located error.
        HttpResponse bad = n.post("/api/pipes", R"([{"_id": "x", "type": "pipe", "source": {"type": "dataset", "dataset": "in"},
            "sink": {"type": "dataset", "dataset": "x", "circuit_breaker_threshold_factor": -0.5}}])");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(bad.body, 400, bad.status);
        CPPUNIT_ASSERT_EQUAL(std::string("/sink/circuit_breaker_threshold_factor"),
                             str(bad.json()["validation_errors"][0]["pointer"]));
        push(R"([{"_id": "1", "v": 1}, {"_id": "2", "v": 1}, {"_id": "3", "v": 1}, {"_id": "4", "v": 1}])");
        // The first run fills an unpopulated dataset: the breaker does not apply yet.
        JsonDocument pump = run();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(sluice::to_json(pump), std::string("completed"), str(pump["runtime"]["last-run"]["status"]));
        CPPUNIT_ASSERT(n.get("/api/datasets/out").json()["runtime"]["populated"].GetBool());
        // Two changes: within the limit, visible at once.
        push(R"([{"_id": "1", "v": 2}, {"_id": "2", "v": 2}])");
        pump = run();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(sluice::to_json(pump), std::string("completed"), str(pump["runtime"]["last-run"]["status"]));
        CPPUNIT_ASSERT_EQUAL(std::string("1=2,2=2,3=1,4=1"), values());
        const std::string offset = str(pump["runtime"]["last-seen"]);
        CPPUNIT_ASSERT_EQUAL(std::string("5"), offset);
        // Three changes: tripped.
        push(R"([{"_id": "1", "v": 3}, {"_id": "3", "v": 3}, {"_id": "5", "v": 3}])");
        pump = run();
        const Json& last = pump["runtime"]["last-run"];
        CPPUNIT_ASSERT_EQUAL(std::string("failed"), str(last["status"]));
        CPPUNIT_ASSERT_MESSAGE(str(last["error"]), str(last["error"]).find("circuit breaker tripped") == 0);
        CPPUNIT_ASSERT_MESSAGE(str(last["error"]), str(last["error"]).find("rollback-circuit-breaker") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(std::string("1=2,2=2,3=1,4=1"), values());  // nothing visible
        CPPUNIT_ASSERT_EQUAL(offset, str(pump["runtime"]["last-seen"]));  // the offset is held
        JsonDocument ds = n.get("/api/datasets/out").json();
        CPPUNIT_ASSERT(ds["runtime"]["circuit-breaker-tripped"].GetBool());
        CPPUNIT_ASSERT_EQUAL(int64_t(3), ds["runtime"]["count-uncommitted"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(std::string("guarded"), str(ds["circuit_breaker"]["pipe"]));
        JsonDocument staged = n.get("/api/datasets/out/entities?uncommitted=true&since=5").json();
        CPPUNIT_ASSERT_EQUAL(std::string("1,3,5"), ids_of(staged));
        CPPUNIT_ASSERT_EQUAL(400, n.get("/api/datasets/out/entities?uncommitted=true&reverse=true").status);
        // While tripped the pipe does not run; a refused run is not counted as a failure.
        const int64_t failures = pump["runtime"]["failures"].GetInt64();
        pump = run();
        CPPUNIT_ASSERT_MESSAGE(str(pump["runtime"]["last-run"]["error"]),
                               str(pump["runtime"]["last-run"]["error"]).find("is tripped") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(failures, pump["runtime"]["failures"].GetInt64());
        // Bad operations change nothing.
        CPPUNIT_ASSERT_EQUAL(400, n.post("/api/datasets/out", "operation=bogus", form).status);
        CPPUNIT_ASSERT_EQUAL(400, n.post("/api/datasets/out", "", form).status);
        CPPUNIT_ASSERT_EQUAL(404, n.post("/api/datasets/nope", "operation=commit-circuit-breaker", form).status);
        CPPUNIT_ASSERT_EQUAL(int64_t(3), n.get("/api/datasets/out").json()["runtime"]["count-uncommitted"].GetInt64());
        // Rollback discards the staged writes; the offset never moved, so the same run trips again.
        HttpResponse rolled = n.post("/api/datasets/out", "operation=rollback-circuit-breaker", form);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(rolled.body, 200, rolled.status);
        CPPUNIT_ASSERT(!rolled.json()["runtime"]["circuit-breaker-tripped"].GetBool());
        CPPUNIT_ASSERT_EQUAL(409, n.post("/api/datasets/out", "operation=rollback-circuit-breaker", form).status);
        CPPUNIT_ASSERT_EQUAL(std::string("1=2,2=2,3=1,4=1"), values());
        pump = run();
        CPPUNIT_ASSERT(str(pump["runtime"]["last-run"]["error"]).find("circuit breaker tripped") == 0);
        // Commit (JSON accepted too) exposes them with the offset that came with them.
        HttpResponse committed = n.post("/api/datasets/out", R"({"operation": "commit-circuit-breaker"})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(committed.body, 200, committed.status);
        CPPUNIT_ASSERT_EQUAL(std::string("1=3,2=2,3=3,4=1,5=3"), values());
        pump = run();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(sluice::to_json(pump), std::string("completed"), str(pump["runtime"]["last-run"]["status"]));
        CPPUNIT_ASSERT_EQUAL(std::string("8"), str(pump["runtime"]["last-seen"]));
        CPPUNIT_ASSERT_EQUAL(int64_t(0), pump["runtime"]["last-run"]["changes"].GetInt64());

        // A receiver's full sync is staged across its requests and committed by the last one; a
        // stage whose run never finished is discarded when the pipe next starts afresh.
        CPPUNIT_ASSERT_EQUAL(201, n.post("/api/pipes", R"([{"_id": "recv", "type": "pipe", "source": {"type": "http_endpoint"},
            "sink": {"type": "dataset", "dataset": "recv", "circuit_breaker_threshold_count": 1}}])").status);
        auto recv = [&](const std::string& query, const std::string& body) {
            HttpResponse r = n.post("/api/receivers/recv/entities" + query, body);
            CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
        };
        auto recv_a = [&]() { return str(n.get("/api/datasets/recv/entity?entity_id=a").json()["v"]); };
        auto uncommitted = [&]() { return n.get("/api/datasets/recv").json()["runtime"]["count-uncommitted"].GetInt64(); };
        recv("", R"([{"_id": "a", "v": 1}, {"_id": "b", "v": 1}])");
        recv("?is_full=true&sequence_id=s1&is_first=true&is_last=false", R"([{"_id": "a", "v": 2}])");
        CPPUNIT_ASSERT_EQUAL(int64_t(1), uncommitted());
        CPPUNIT_ASSERT_EQUAL(std::string("1"), recv_a());
        recv("?is_full=true&sequence_id=s2&is_first=true&is_last=true", R"([{"_id": "a", "v": 1}, {"_id": "b", "v": 1}])");
        CPPUNIT_ASSERT_EQUAL(int64_t(0), uncommitted());
        CPPUNIT_ASSERT_EQUAL(std::string("1"), recv_a());
        recv("?is_full=true&sequence_id=s3&is_first=true&is_last=false", R"([{"_id": "a", "v": 3}])");
        recv("?is_full=true&sequence_id=s3&is_first=false&is_last=true", R"([{"_id": "b", "v": 1}])");
        CPPUNIT_ASSERT_EQUAL(int64_t(0), uncommitted());
        CPPUNIT_ASSERT_EQUAL(std::string("3"), recv_a());

        // Two pipes writing one dataset: an unfinished stage of one is not the other's to
        // discard; the other is refused until an operator resolves it (no run in progress).
        CPPUNIT_ASSERT_EQUAL(201, n.post("/api/pipes", R"([{"_id": "recv2", "type": "pipe",
            "source": {"type": "http_endpoint"}, "sink": {"type": "dataset", "dataset": "recv"}}])").status);
        recv("?is_full=true&sequence_id=s4&is_first=true&is_last=false", R"([{"_id": "a", "v": 4}])");
        HttpResponse refused = n.post("/api/receivers/recv2/entities", R"([{"_id": "c"}])");
        CPPUNIT_ASSERT_EQUAL(500, refused.status);
        CPPUNIT_ASSERT_MESSAGE(refused.body, refused.body.find("staged by another pipe's run") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(int64_t(1), uncommitted());
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/datasets/recv", "operation=rollback-circuit-breaker", form).status);
        CPPUNIT_ASSERT_EQUAL(int64_t(0), uncommitted());
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/recv2/entities", R"([{"_id": "c"}])").status);
        CPPUNIT_ASSERT_EQUAL(std::string("3"), recv_a());
    }

    // Sesam's JSON-pull headers on dataset reads.
    void testDatasetHeaders() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", R"([{"_id": "h", "type": "pipe", "source": {"type": "embedded",
            "entities": [{"_id": "a"}, {"_id": "b"}]}}])").status);
        n.wait_for_pipe_runs("h");
        HttpResponse r = n.get("/api/datasets/h/entities");
        CPPUNIT_ASSERT_EQUAL(200, r.status);
        CPPUNIT_ASSERT_EQUAL(std::string("true"), r.headers["X-Dataset-Populated"]);
        CPPUNIT_ASSERT_EQUAL(std::string("1"), r.headers["X-Dataset-Max-Updated"]);
        CPPUNIT_ASSERT_EQUAL(std::string("false"), r.headers["X-Dataset-Filtered"]);
        const std::string generation = str(n.get("/api/datasets/h").json()["generation"]);
        CPPUNIT_ASSERT_EQUAL(size_t(36), generation.size());
        CPPUNIT_ASSERT_EQUAL(generation, r.headers["X-Dataset-Generation"]);
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/datasets/nope/entities").status);
    }

    // POST /api/datasets/{id}/entities: the write rule applies unless force=true; a bad entity
    // anywhere in the body writes nothing.
    void testPostEntitiesToDataset() {
        NodeProcess& n = *node_;
        HttpResponse first = n.post("/api/datasets/direct/entities", R"([{"_id": "a", "v": 1}, {"_id": "b", "v": 2}])");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(first.body, 200, first.status);
        CPPUNIT_ASSERT_EQUAL(int64_t(2), first.json()["written"].GetInt64());
        // One entity (not an array), unchanged: no new version.
        JsonDocument again = n.post("/api/datasets/direct/entities", R"({"v": 1, "_id": "a"})").json();
        CPPUNIT_ASSERT_EQUAL(int64_t(0), again["written"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(int64_t(1), again["unchanged"].GetInt64());
        JsonDocument forced = n.post("/api/datasets/direct/entities?force=true", R"([{"_id": "a", "v": 1}])").json();
        CPPUNIT_ASSERT_EQUAL(int64_t(1), forced["written"].GetInt64());
        // Entity 1 has no _id: 400 naming it, and "c" (entity 0) is not written either.
        HttpResponse bad = n.post("/api/datasets/direct/entities", R"([{"_id": "c"}, {"v": 3}])");
        CPPUNIT_ASSERT_EQUAL(400, bad.status);
        CPPUNIT_ASSERT_MESSAGE(bad.body, bad.body.find("/1") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(400, n.post("/api/datasets/direct/entities", "[{").status);
        JsonDocument all = n.get("/api/datasets/direct/entities?history=true").json();
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), all.Size());
        CPPUNIT_ASSERT_EQUAL(int64_t(0), all[2]["_previous"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(404, n.get("/api/datasets/direct/entity?entity_id=c").status);
    }

    void testDeadLetters() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", R"([
            {"_id": "kept", "type": "pipe", "pump": {"mode": "manual", "dead_letter_dataset": "rejected"},
             "source": {"type": "embedded", "entities": [{"_id": "1"}, {"_id": "2", "bad": true}, {"_id": "3"}]},
             "sink": {"type": "fixture_picky"}},
            {"_id": "strict", "type": "pipe", "pump": {"mode": "manual"},
             "source": {"type": "embedded", "entities": [{"_id": "1"}, {"_id": "2", "bad": true}]},
             "sink": {"type": "fixture_picky"}}])").status);
        const char* form = "application/x-www-form-urlencoded";
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/pipes/kept/pump", "operation=start", form).status);
        n.wait_for_pipe_runs("kept");
        JsonDocument run = n.get("/api/pipes/kept/pump").json();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(sluice::to_json(run), std::string("completed"), str(run["runtime"]["last-run"]["status"]));
        CPPUNIT_ASSERT_EQUAL(int64_t(1), run["runtime"]["last-run"]["dead_letters"].GetInt64());
        JsonDocument letters = n.get("/api/datasets/rejected/entities").json();
        CPPUNIT_ASSERT_EQUAL(std::string("2"), ids_of(letters));
        CPPUNIT_ASSERT(str(letters[0]["error"]).find("not acceptable") != std::string::npos);
        CPPUNIT_ASSERT(letters[0]["entity"]["bad"].GetBool());
        // Without a dead-letter dataset the rejected entity fails the run.
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/pipes/strict/pump", "operation=start", form).status);
        n.wait_for_pipe_runs("strict");
        JsonDocument failed = n.get("/api/pipes/strict/pump").json();
        CPPUNIT_ASSERT_EQUAL(std::string("failed"), str(failed["runtime"]["last-run"]["status"]));
        CPPUNIT_ASSERT(str(failed["runtime"]["last-run"]["error"]).find("not acceptable") != std::string::npos);

        // track_dead_letters: a later version that the sink takes deletes the dead letter.
        CPPUNIT_ASSERT_EQUAL(201, n.post("/api/pipes", R"([{"_id": "tracked", "type": "pipe",
            "pump": {"dead_letter_dataset": "tracked-dead", "track_dead_letters": true},
            "source": {"type": "http_endpoint"}, "sink": {"type": "fixture_picky"}}])").status);
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/tracked/entities",
                                         R"([{"_id": "x", "bad": true}, {"_id": "y", "bad": true}, {"_id": "z"}])").status);
        CPPUNIT_ASSERT_EQUAL(std::string("x,y"), ids_of(n.get("/api/datasets/tracked-dead/entities?history=false&deleted=false").json()));
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/tracked/entities", R"([{"_id": "x"}, {"_id": "y", "bad": true}])").status);
        CPPUNIT_ASSERT_EQUAL(std::string("y"), ids_of(n.get("/api/datasets/tracked-dead/entities?history=false&deleted=false").json()));
        // Bad input: the option must be a boolean and needs a dead-letter dataset; nothing changes.
        const std::string config = n.get("/api/config").body;
        HttpResponse bad = n.post("/api/pipes", R"([{"_id": "t2", "type": "pipe", "pump": {"track_dead_letters": true},
            "source": {"type": "embedded", "entities": []}}])");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(bad.body, 400, bad.status);
        CPPUNIT_ASSERT_EQUAL(std::string("/pump/track_dead_letters"), str(bad.json()["validation_errors"][0]["pointer"]));
        CPPUNIT_ASSERT_EQUAL(400, n.post("/api/pipes", R"([{"_id": "t3", "type": "pipe",
            "pump": {"use_dead_letter_dataset": true, "track_dead_letters": "yes"},
            "source": {"type": "embedded", "entities": []}}])").status);
        CPPUNIT_ASSERT_EQUAL(config, n.get("/api/config").body);
    }

private:
    std::unique_ptr<TempDir> dir_;
    std::unique_ptr<NodeProcess> node_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(ApiTest);

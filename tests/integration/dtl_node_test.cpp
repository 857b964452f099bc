// DTL inside a running node: broken DTL rejected at upload with its location, a DTL pipe,
// POST /api/dtl/preview, `sluice dtl eval|run`, and a hops join whose dependency tracking
// re-emits only the main entities that reached a changed joined entity.
#include "postgres_support.hpp"
#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
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

const Json* by_id(const JsonDocument& entities, const std::string& id) {
    for (const Json& e : entities.GetArray())
        if (str(e["_id"]) == id) return &e;
    return nullptr;
}

const char* kForm = "application/x-www-form-urlencoded";

// Runs `pipe` once by hand and waits for its `runs`-th run; the run must have completed.
void run_pipe(NodeProcess& node, const std::string& pipe, int runs) {
    CPPUNIT_ASSERT_EQUAL(200, node.post("/api/pipes/" + pipe + "/pump", "operation=start", kForm).status);
    node.wait_for_pipe_runs(pipe, runs);
    JsonDocument pump = node.get("/api/pipes/" + pipe + "/pump").json();
    CPPUNIT_ASSERT_EQUAL_MESSAGE(sluice::to_json(pump), std::string("completed"),
                                 str(pump["runtime"]["last-run"]["status"]));
}

// A hops join whose joined entity changes: the next run re-emits exactly the main entities
// that reached it. Run on both storage backends (the lookups and the dependency records are
// storage work).
void check_hops_dependency_tracking(NodeProcess& n) {
    CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", R"([
      {"_id": "orgs", "type": "pipe", "source": {"type": "http_endpoint"}},
      {"_id": "people", "type": "pipe", "source": {"type": "http_endpoint"}},
      {"_id": "joined", "type": "pipe", "pump": {"mode": "manual"},
       "source": {"type": "dataset", "dataset": "people"},
       "transform": {"type": "dtl", "rules": {"default": [
         ["copy", "*"],
         ["add", "org_name", ["first", ["hops", {"datasets": ["orgs o"],
                                                "where": ["eq", "_S.org", "o._id"],
                                                "return": "o.name"}]]]]}}}])").status);
    CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/orgs/entities",
                                     R"([{"_id": "o1", "name": "Acme"}, {"_id": "o2", "name": "Globex"}])").status);
    CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/people/entities",
                                     R"([{"_id": "p1", "org": "o1"}, {"_id": "p2", "org": "o2"}, {"_id": "p3", "org": "o1"}])")
                                  .status);
    run_pipe(n, "joined", 1);
    JsonDocument first = n.get("/api/datasets/joined/entities").json();
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), first.Size());
    CPPUNIT_ASSERT_EQUAL(std::string("Acme"), str((*by_id(first, "p1"))["org_name"]));
    CPPUNIT_ASSERT_EQUAL(std::string("Globex"), str((*by_id(first, "p2"))["org_name"]));

    // Rename o1: the next run re-emits p1 and p3 (new versions), not p2.
    CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/orgs/entities", R"([{"_id": "o1", "name": "Acme Corp"}])").status);
    run_pipe(n, "joined", 2);
    JsonDocument after = n.get("/api/datasets/joined/entities?since=2").json();
    std::string ids;
    for (const Json& e : after.GetArray()) ids += str(e["_id"]) + ":" + str(e["org_name"]) + " ";
    CPPUNIT_ASSERT_EQUAL(std::string("p1:Acme Corp p3:Acme Corp "), ids);
    JsonDocument pump = n.get("/api/pipes/joined/pump").json();
    CPPUNIT_ASSERT_EQUAL(int64_t(2), pump["runtime"]["last-run"]["changes"].GetInt64());
}

}  // namespace

class DtlNodeTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(DtlNodeTest);
    CPPUNIT_TEST(testBrokenDtlRejectedWithLocation);
    CPPUNIT_TEST(testDtlPipeAndPreview);
    CPPUNIT_TEST(testDtlCommandLine);
    CPPUNIT_TEST(testHopsDependencyTracking);
    CPPUNIT_TEST(testTripStopsThePipe);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        dir_ = std::make_unique<TempDir>();
        node_ = std::make_unique<NodeProcess>((*dir_) / "data", storage_args({}));
        node_->start();
        // The suite really runs on the storage it was asked for.
        const std::string storage = node_->get("/api/status").json()["storage"].GetString();
        CPPUNIT_ASSERT_MESSAGE(storage, storage.rfind(test_storage(), 0) == 0);
    }
    void tearDown() override {
        node_.reset();
        dir_.reset();
    }

    // DTL `trip!`: the run fails with the DTL's message, the sink dataset's circuit breaker trips
    // (even without thresholds) and the pipe stays stopped until an operator resolves it.
    void testTripStopsThePipe() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", R"([
            {"_id": "in", "type": "pipe", "source": {"type": "http_endpoint"}},
            {"_id": "guard", "type": "pipe", "pump": {"mode": "manual"}, "source": {"type": "dataset", "dataset": "in"},
             "transform": {"type": "dtl", "rules": {"default": [["copy", "*"],
                ["if", "_S.bad", [["trip!", ["concat", "bad entity ", "_S._id"]]]]]}}}])").status);
        int runs = 0;
        auto run = [&]() {
            CPPUNIT_ASSERT_EQUAL(200, n.post("/api/pipes/guard/pump", "operation=start", kForm).status);
            n.wait_for_pipe_runs("guard", ++runs);
            JsonDocument pump = n.get("/api/pipes/guard/pump").json();
            JsonDocument last;
            last.CopyFrom(pump["runtime"]["last-run"], last.GetAllocator());
            return last;
        };
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/in/entities", R"([{"_id": "1"}])").status);
        CPPUNIT_ASSERT_EQUAL(std::string("completed"), str(run()["status"]));
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/in/entities", R"([{"_id": "2", "bad": true}])").status);
        JsonDocument last = run();
        CPPUNIT_ASSERT_EQUAL(std::string("failed"), str(last["status"]));
        CPPUNIT_ASSERT_MESSAGE(str(last["error"]), str(last["error"]).rfind("trip!: bad entity 2", 0) == 0);
        CPPUNIT_ASSERT(n.get("/api/datasets/guard").json()["runtime"]["circuit-breaker-tripped"].GetBool());
        // The execution log says why.
        JsonDocument log = n.get("/api/pipes/guard/log").json();
        CPPUNIT_ASSERT(str(log[log.Size() - 1]["original_error_message"]).rfind("trip!: ", 0) == 0);
        last = run();
        CPPUNIT_ASSERT_MESSAGE(str(last["error"]), str(last["error"]).find("is tripped (trip!: bad entity 2") != std::string::npos);
        // Fixed upstream, rolled back: the pipe runs again from where it stopped.
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/receivers/in/entities", R"([{"_id": "2"}])").status);
        CPPUNIT_ASSERT_EQUAL(200, n.post("/api/datasets/guard", "operation=rollback-circuit-breaker", kForm).status);
        last = run();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(sluice::to_json(last), std::string("completed"), str(last["status"]));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), n.get("/api/datasets/guard/entities?history=false").json().Size());
    }

    void testBrokenDtlRejectedWithLocation() {
        NodeProcess& n = *node_;
        const std::string before = n.get("/api/config").body;
        HttpResponse r = n.put("/api/config", R"([{"_id": "p", "type": "pipe",
            "source": {"type": "embedded", "entities": []},
            "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "x", ["concatt", "a", "b"]]]}}}])");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 400, r.status);
        JsonDocument body = r.json();
        const Json& error = body["validation_errors"][0];
        CPPUNIT_ASSERT_EQUAL(std::string("p"), str(error["entity"]));
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, std::string("/transform/rules/default/1/2"), str(error["pointer"]));
        CPPUNIT_ASSERT_MESSAGE(r.body, str(error["message"]).find("concatt") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(before, n.get("/api/config").body);
    }

    void testDtlPipeAndPreview() {
        NodeProcess& n = *node_;
        CPPUNIT_ASSERT_EQUAL(200, n.put("/api/config", R"([{"_id": "people", "type": "pipe",
            "source": {"type": "embedded", "entities": [
               {"_id": "1", "First": "Ada", "Last": "Lovelace", "active": true},
               {"_id": "2", "First": "Bob", "Last": "Smith", "active": false}]},
            "transform": {"type": "dtl", "rules": {"default": [
               ["filter", "_S.active"],
               ["copy", "*"],
               ["add", "name", ["concat", "_S.First", " ", "_S.Last"]],
               ["add", "lower", ["lower", "_S.Last"]]]}}}])").status);
        node_->wait_for_pipe_runs("people");
        JsonDocument out = n.get("/api/datasets/people/entities?deleted=false").json();
        CPPUNIT_ASSERT_EQUAL_MESSAGE(sluice::to_json(out), rapidjson::SizeType(1), out.Size());
        CPPUNIT_ASSERT_EQUAL(std::string("Ada Lovelace"), str(out[0]["name"]));
        CPPUNIT_ASSERT_EQUAL(std::string("lovelace"), str(out[0]["lower"]));

        HttpResponse preview = n.post("/api/dtl/preview", R"({"rules": {"default": [["copy", "_id"], ["add", "n", ["plus", "_S.a", 1]]]},
                                                              "entities": [{"_id": "x", "a": 41}]})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(preview.body, 200, preview.status);
        CPPUNIT_ASSERT_EQUAL(int64_t(42), preview.json()["entities"][0]["n"].GetInt64());
        HttpResponse bad = n.post("/api/dtl/preview", R"({"rules": {"default": [["add", "n", ["nope"]]]}, "entities": []})");
        CPPUNIT_ASSERT_EQUAL(400, bad.status);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(bad.body, std::string("/rules/default/0/2"), str(bad.json()["pointer"]));
    }

    void testDtlCommandLine() {
        CommandResult ok = run_command({sluice_binary().string(), "dtl", "eval", R"(["upper", "_S.name"])", "--source",
                                        R"({"name": "ada"})"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(ok.output, 0, ok.status);
        CPPUNIT_ASSERT_EQUAL(std::string("\"ADA\"\n"), ok.output);
        CommandResult big = run_command({sluice_binary().string(), "dtl", "eval", R"(["plus", 1, 2])"});
        CPPUNIT_ASSERT_EQUAL(std::string("3\n"), big.output);
        CommandResult bad = run_command({sluice_binary().string(), "dtl", "eval", R"(["no-such-function", 1])"});
        CPPUNIT_ASSERT(bad.status != 0);
        CPPUNIT_ASSERT_MESSAGE(bad.output, bad.output.find("no-such-function") != std::string::npos);

        write_text((*dir_) / "t.json", R"({"type": "dtl", "rules": {"default": [["copy", "_id"], ["add", "y", ["upper", "_S.x"]]]}})");
        write_text((*dir_) / "in.json", R"([{"_id": "1", "x": "a"}, {"_id": "2", "x": "b"}])");
        CommandResult run = run_command({"sh", "-c", sluice_binary().string() + " dtl run " + ((*dir_) / "t.json").string() +
                                                         " < " + ((*dir_) / "in.json").string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(run.output, 0, run.status);
        JsonDocument out = sluice::parse_json(run.output);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), out.Size());
        CPPUNIT_ASSERT_EQUAL(std::string("B"), str(out[1]["y"]));
    }

    void testHopsDependencyTracking() { check_hops_dependency_tracking(*node_); }

private:
    std::unique_ptr<TempDir> dir_;
    std::unique_ptr<NodeProcess> node_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(DtlNodeTest);

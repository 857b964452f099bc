// union_datasets, merge and merge_datasets in a real node (memory storage): receivers feed the
// input datasets, the pipes run through the pump API, results are read back from the datasets.
// Registered from tests/sources/CMakeLists.txt.
#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>

#include <algorithm>
#include <map>
#include <vector>

using namespace sluice::test;
using sluice::Json;
using sluice::JsonDocument;

namespace {

std::string str(const Json& v) { return v.IsString() ? v.GetString() : sluice::to_json(v); }

bool deleted(const Json& e) { return e.HasMember("_deleted") && e["_deleted"].IsBool() && e["_deleted"].GetBool(); }

// Sorted, comma-separated ids of the live (or deleted) entities.
std::string ids(const JsonDocument& entities, bool want_deleted = false) {
    std::vector<std::string> out;
    for (const Json& e : entities.GetArray())
        if (deleted(e) == want_deleted) out.push_back(e["_id"].GetString());
    std::sort(out.begin(), out.end());
    std::string text;
    for (const std::string& id : out) text += (text.empty() ? "" : ",") + id;
    return text;
}

std::map<std::string, const Json*> by_id(const JsonDocument& entities) {
    std::map<std::string, const Json*> out;
    for (const Json& e : entities.GetArray()) out[e["_id"].GetString()] = &e;
    return out;
}

const char* kConfig = R"([
  {"_id": "men", "type": "pipe", "source": {"type": "http_endpoint"}},
  {"_id": "women", "type": "pipe", "source": {"type": "http_endpoint"}},
  {"_id": "crm", "type": "pipe", "source": {"type": "http_endpoint"}},
  {"_id": "erp", "type": "pipe", "source": {"type": "http_endpoint"}},
  {"_id": "people", "type": "pipe", "pump": {"mode": "manual"},
   "source": {"type": "union_datasets", "datasets": ["men", "women"]}},
  {"_id": "global-person", "type": "pipe", "pump": {"mode": "manual"},
   "source": {"type": "merge", "version": 2, "datasets": ["crm c", "erp e"],
              "equality_sets": [["c.email", "e.email"]], "strategy": "compact"}},
  {"_id": "person-all", "type": "pipe", "pump": {"mode": "manual"},
   "source": {"type": "merge_datasets", "datasets": ["crm", "erp"], "strategy": "all"}}
])";

}  // namespace

class UnionMergeTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(UnionMergeTest);
    CPPUNIT_TEST(testUnionDatasetsIncremental);
    CPPUNIT_TEST(testMergeAndUnmerge);
    CPPUNIT_TEST(testMergeDatasetsAll);
    CPPUNIT_TEST(testConfigIsValidatedAtUpload);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        dir_ = std::make_unique<TempDir>();
        node_ = std::make_unique<NodeProcess>((*dir_) / "data", std::vector<std::string>{"--storage", "memory"});
        node_->start();
        HttpResponse r = node_->put("/api/config", kConfig);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
    }
    void tearDown() override {
        node_.reset();
        dir_.reset();
    }

    void push(const std::string& receiver, const std::string& entities) {
        HttpResponse r = node_->post("/api/receivers/" + receiver + "/entities", entities);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
    }
    // Starts a run of `pipe` and waits for it to be its `run`th completed run.
    JsonDocument run(const std::string& pipe, int run) {
        HttpResponse r = node_->post("/api/pipes/" + pipe + "/pump", "operation=start", "application/x-www-form-urlencoded");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
        node_->wait_for_pipe_runs(pipe, run);
        JsonDocument pump = node_->get("/api/pipes/" + pipe + "/pump").json();
        const Json& last = pump["runtime"]["last-run"];
        CPPUNIT_ASSERT_EQUAL_MESSAGE(sluice::to_json(last), std::string("completed"), str(last["status"]));
        return pump;
    }
    JsonDocument latest(const std::string& dataset) {
        HttpResponse r = node_->get("/api/datasets/" + dataset + "/entities?history=false");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
        return r.json();
    }

    void testUnionDatasetsIncremental() {
        // The dependency graph sees both inputs of the union.
        JsonDocument pipe = node_->get("/api/pipes/people").json();
        CPPUNIT_ASSERT_EQUAL(std::string(R"(["men","women"])"), sluice::to_json(pipe["runtime"]["dependencies"]));

        push("men", R"([{"_id": "dave", "age": 40}, {"_id": "bob", "age": 30}])");
        push("women", R"([{"_id": "claire", "age": 35}])");
        JsonDocument pump = run("people", 1);
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"men":1,"women":0})"), str(pump["runtime"]["last-seen"]));
        JsonDocument people = latest("people");
        CPPUNIT_ASSERT_EQUAL(std::string("men:bob,men:dave,women:claire"), ids(people));
        CPPUNIT_ASSERT_EQUAL(int64_t(40), (*by_id(people).at("men:dave"))["age"].GetInt64());

        push("men", R"([{"_id": "bob", "_deleted": true}])");
        push("women", R"([{"_id": "anna", "age": 20}])");
        pump = run("people", 2);
        const Json& last = pump["runtime"]["last-run"];
        CPPUNIT_ASSERT_EQUAL(std::string("incremental"), str(last["sync_type"]));
        CPPUNIT_ASSERT_EQUAL(int64_t(2), last["entities"].GetInt64());  // only what changed
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"men":2,"women":1})"), str(pump["runtime"]["last-seen"]));
        people = latest("people");
        CPPUNIT_ASSERT_EQUAL(std::string("men:dave,women:anna,women:claire"), ids(people));
        CPPUNIT_ASSERT_EQUAL(std::string("men:bob"), ids(people, true));

        // Sesam's comma-separated offsets are accepted as last-seen: from men's offset 1 only.
        HttpResponse set = node_->post("/api/pipes/people/pump", "operation=update-last-seen&last-seen=1,1",
                                       "application/x-www-form-urlencoded");
        CPPUNIT_ASSERT_EQUAL(200, set.status);
        pump = run("people", 3);
        CPPUNIT_ASSERT_EQUAL(int64_t(1), pump["runtime"]["last-run"]["entities"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"men":2,"women":1})"), str(pump["runtime"]["last-seen"]));
    }

    void testMergeAndUnmerge() {
        JsonDocument pipe = node_->get("/api/pipes/global-person").json();
        CPPUNIT_ASSERT_EQUAL(std::string(R"(["crm","erp"])"), sluice::to_json(pipe["runtime"]["dependencies"]));

        push("crm", R"([{"_id": "c1", "email": "ann@x", "name": "Ann"}, {"_id": "c2", "email": "bob@x"}])");
        push("erp", R"([{"_id": "e1", "email": "ann@x", "salary": 10}])");

        // A preview computes the merge but changes nothing.
        HttpResponse preview = node_->get("/api/pipes/global-person/entities");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(preview.body, 200, preview.status);
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1,0|c2"), ids(preview.json()));
        CPPUNIT_ASSERT_EQUAL(404, node_->get("/api/datasets/system:merge:global-person").status);
        CPPUNIT_ASSERT_EQUAL(404, node_->get("/api/datasets/global-person").status);

        run("global-person", 1);
        JsonDocument global = latest("global-person");
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1,0|c2"), ids(global));
        const Json& ann = *by_id(global).at("0|c1|1|e1");
        CPPUNIT_ASSERT_EQUAL(std::string("Ann"), str(ann["name"]));
        CPPUNIT_ASSERT_EQUAL(int64_t(10), ann["salary"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(std::string("ann@x"), str(ann["email"]));  // compact: one value
        CPPUNIT_ASSERT_EQUAL(std::string(R"(["c1","e1"])"), sluice::to_json(ann["$ids"]));
        CPPUNIT_ASSERT_EQUAL(200, node_->get("/api/datasets/system:merge:global-person").status);

        // e1 moves to bob: it leaves Ann and merges with c2; the old ids are replaced.
        push("erp", R"([{"_id": "e1", "email": "bob@x", "salary": 10}])");
        JsonDocument pump = run("global-person", 2);
        CPPUNIT_ASSERT_EQUAL(std::string("incremental"), str(pump["runtime"]["last-run"]["sync_type"]));
        global = latest("global-person");
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,0|c2|1|e1"), ids(global));
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1,0|c2"), ids(global, true));
        for (const char* gone : {"0|c1|1|e1", "0|c2"})
            CPPUNIT_ASSERT_MESSAGE(gone, (*by_id(global).at(gone))["$replaced"].GetBool());

        // A full run (reset) reproduces the same result and deletion tracking keeps it.
        HttpResponse reset = node_->post("/api/pipes/global-person/pump", "operation=update-last-seen&last-seen=",
                                         "application/x-www-form-urlencoded");
        CPPUNIT_ASSERT_EQUAL(200, reset.status);
        pump = run("global-person", 3);
        CPPUNIT_ASSERT_EQUAL(std::string("full"), str(pump["runtime"]["last-run"]["sync_type"]));
        JsonDocument again = latest("global-person");
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,0|c2|1|e1"), ids(again));
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1,0|c2"), ids(again, true));
        CPPUNIT_ASSERT_EQUAL(int64_t(0), pump["runtime"]["last-run"]["changes"].GetInt64());
    }

    void testMergeDatasetsAll() {
        push("crm", R"([{"_id": "shared", "a": 1}, {"_id": "crm-only", "a": 2}])");
        push("erp", R"([{"_id": "shared", "b": 2}])");
        JsonDocument pump = run("person-all", 1);
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"crm":1,"erp":0})"), str(pump["runtime"]["last-seen"]));
        JsonDocument all = latest("person-all");
        CPPUNIT_ASSERT_EQUAL(std::string("crm-only,shared"), ids(all));
        const Json& shared = *by_id(all).at("shared");
        CPPUNIT_ASSERT_EQUAL(int64_t(1), shared["crm"]["a"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(int64_t(2), shared["erp"]["b"].GetInt64());

        push("erp", R"([{"_id": "shared", "_deleted": true}])");
        run("person-all", 2);
        all = latest("person-all");
        CPPUNIT_ASSERT(!by_id(all).at("shared")->HasMember("erp"));
        CPPUNIT_ASSERT_EQUAL(int64_t(1), (*by_id(all).at("shared"))["crm"]["a"].GetInt64());
    }

    void testConfigIsValidatedAtUpload() {
        struct Case {
            const char* source;
            const char* pointer;
        } cases[] = {
            {R"({"type": "union_datasets"})", "/source"},
            {R"({"type": "union_datasets", "datasets": ["a"], "prefix_ids": "yes"})", "/source/prefix_ids"},
            {R"({"type": "merge_datasets", "datasets": ["a"], "strategy": "first"})", "/source/strategy"},
            {R"({"type": "merge", "datasets": ["A a", "C c"], "equality": [["eq", "a.f", ["lower", "c.f"]]]})",
             "/source/equality/0/2"},
            {R"({"type": "merge", "datasets": ["A a"], "identity": "last"})", "/source/identity"},
        };
        const std::string before = node_->get("/api/config").body;
        const std::string config(kConfig);
        for (const Case& c : cases) {
            // The valid config plus one bad pipe: refused as a whole, the bad source located.
            const std::string bad = config.substr(0, config.rfind(']')) +
                                    R"(, {"_id": "bad", "type": "pipe", "source": )" + c.source + "}]";
            HttpResponse r = node_->put("/api/config", bad);
            CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 400, r.status);
            JsonDocument body = r.json();
            const Json& errors = body["validation_errors"];
            CPPUNIT_ASSERT_MESSAGE(r.body, errors.IsArray() && errors.Size() == 1);
            CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, std::string("bad"), str(errors[0]["entity"]));
            CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, std::string(c.pointer), str(errors[0]["pointer"]));
        }
        CPPUNIT_ASSERT_EQUAL(before, node_->get("/api/config").body);
    }

private:
    std::unique_ptr<TempDir> dir_;
    std::unique_ptr<NodeProcess> node_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(UnionMergeTest);

// The merge source (equality rules, $ids, $replaced) through the C contract, on the real memory
// storage: the documentation example, strategies and identities, incremental merging and
// un-merging, deletes, indexed lookups instead of scans, previews and failed batches.
#include "store_host.hpp"

#include <cppunit/extensions/HelperMacros.h>

using namespace sources_test;

namespace {

const char* kPlugin = "sluice-source-merge";
const char* kState = "system:merge:test-pipe";

std::string str(const Json& v) { return v.IsString() ? v.GetString() : sluice::to_json(v); }

// "ids" is the entity's $ids as a sorted comma list.
std::string ids_of(const Json& e) {
    std::vector<std::string> out;
    for (const Json& v : e["$ids"].GetArray()) out.push_back(v.GetString());
    std::sort(out.begin(), out.end());
    std::string text;
    for (const std::string& id : out) text += (text.empty() ? "" : ",") + id;
    return text;
}

bool replaced(const Json& e) {
    const Json* r = sluice::find_member(e, "$replaced");
    return r && r->IsBool() && r->GetBool();
}

const char* kPeople = R"({"type": "merge", "version": 2, "datasets": ["crm c", "erp e"],
                          "equality_sets": [["c.email", "e.email"]]})";

}  // namespace

class MergeTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(MergeTest);
    CPPUNIT_TEST(testDocumentationExample);
    CPPUNIT_TEST(testStrategies);
    CPPUNIT_TEST(testIdentityFirst);
    CPPUNIT_TEST(testMergeLaterReplacesOldIds);
    CPPUNIT_TEST(testUnmergeWhenEqualityNoLongerHolds);
    CPPUNIT_TEST(testDeletingTheBridgeSplitsTheCluster);
    CPPUNIT_TEST(testListValuesAndNumbersJoinLikeHops);
    CPPUNIT_TEST(testIdsOfAlreadyMergedEntities);
    CPPUNIT_TEST(testLookupsNotScans);
    CPPUNIT_TEST(testWritesDuringARun);
    CPPUNIT_TEST(testPreviewLeavesStateAlone);
    CPPUNIT_TEST(testFailedBatchIsRedoneWithReplacedDeletes);
    CPPUNIT_TEST(testMaxMerged);
    CPPUNIT_TEST(testFullRunAfterRuleChange);
    CPPUNIT_TEST(testConfigErrors);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        host_ = std::make_unique<StoreHost>();
        plugin_ = std::make_unique<SourcePlugin>(kPlugin, *host_);
    }
    void tearDown() override {
        plugin_.reset();
        host_.reset();
    }

    // Sesam's documented example, with `lower` dropped (only property paths are supported).
    void testDocumentationExample() {
        host_->write("A", R"([{"_id": "a1", "f1": 1}, {"_id": "a2", "f1": 2}])");
        host_->write("B", R"([{"_id": "b1", "f1": 1, "f2": "x"}, {"_id": "b2", "f1": 3}])");
        host_->write("C", R"([{"_id": "c1", "f3": "x"}, {"_id": "c2", "_deleted": true, "f3": "Y"},
                              {"_id": "c3", "_deleted": true, "f3": "x"}])");
        auto source = plugin_->create("merge", R"({"type": "merge", "datasets": ["A a", "B b", "C c"],
            "equality": [["eq", "a.f1", "b.f1"], ["eq", "b.f2", "c.f3"]]})");
        CPPUNIT_ASSERT_MESSAGE(host_->error(), source.valid());
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->error(), kOk, source.run());
        JsonDocument out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(std::string("0|a1|1|b1|2|c1,0|a2,1|b2"), ids(out));
        CPPUNIT_ASSERT_EQUAL(std::string("2|c2,2|c3"), ids(out, true));
        auto e = by_id(out);
        const Json& merged = *e.at("0|a1|1|b1|2|c1");
        CPPUNIT_ASSERT_EQUAL(std::string("a1,b1,c1"), ids_of(merged));
        CPPUNIT_ASSERT_EQUAL(std::string("[1,1]"), str(merged["f1"]));
        CPPUNIT_ASSERT_EQUAL(std::string("x"), str(merged["f2"]));
        CPPUNIT_ASSERT_EQUAL(std::string("x"), str(merged["f3"]));
        CPPUNIT_ASSERT_EQUAL(std::string("a2"), ids_of(*e.at("0|a2")));
        CPPUNIT_ASSERT_EQUAL(int64_t(2), (*e.at("0|a2"))["f1"].GetInt64());
        // Deleted entities are never merged (c3 shares f3 "x" with b1) and keep their content.
        CPPUNIT_ASSERT_EQUAL(std::string("c3"), ids_of(*e.at("2|c3")));
        CPPUNIT_ASSERT_EQUAL(std::string("x"), str((*e.at("2|c3"))["f3"]));
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"A":1,"B":1,"C":2})"), host_->last_seen());
    }

    void testStrategies() {
        host_->write("A", R"([{"_id": "a", "k": "same", "x": 1}])");
        host_->write("B", R"([{"_id": "b", "k": "same", "y": [2, 1]}])");
        host_->write("C", R"([{"_id": "c", "k": "same", "y": 2, "z": [3, 3]}])");
        const std::string base = R"("datasets": ["A a", "B b", "C c"], "equality_sets": [["a.k", "b.k", "c.k"]])";
        struct Case {
            const char* strategy;
            const char* x;
            const char* y;
            const char* z;
        } cases[] = {{"default", "1", "[2,1,2]", "[3,3]"}, {"compact", "1", "[2,1]", "3"}};
        for (const Case& c : cases) {
            StoreHost host;
            host.write("A", R"([{"_id": "a", "k": "same", "x": 1}])");
            host.write("B", R"([{"_id": "b", "k": "same", "y": [2, 1]}])");
            host.write("C", R"([{"_id": "c", "k": "same", "y": 2, "z": [3, 3]}])");
            SourcePlugin plugin(kPlugin, host);
            auto source = plugin.create("merge", "{\"type\": \"merge\", \"strategy\": \"" + std::string(c.strategy) +
                                                     "\", " + base + "}");
            CPPUNIT_ASSERT_EQUAL(kOk, source.run());
            CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), host.emitted().Size());
            const Json& e = host.emitted()[0];
            CPPUNIT_ASSERT_EQUAL(std::string("0|a|1|b|2|c"), str(e["_id"]));
            CPPUNIT_ASSERT_EQUAL_MESSAGE(c.strategy, std::string(c.x), str(e["x"]));
            CPPUNIT_ASSERT_EQUAL_MESSAGE(c.strategy, std::string(c.y), str(e["y"]));
            CPPUNIT_ASSERT_EQUAL_MESSAGE(c.strategy, std::string(c.z), str(e["z"]));
        }
        auto list = plugin_->create("merge", "{\"type\": \"merge\", \"strategy\": \"list\", " + base + "}");
        CPPUNIT_ASSERT_EQUAL(kOk, list.run());
        const Json& e = host_->emitted()[0];
        CPPUNIT_ASSERT(!e.HasMember("x"));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), e["$merged"].Size());
        CPPUNIT_ASSERT_EQUAL(std::string("[2,1]"), str(e["$merged"][1]["y"]));
        CPPUNIT_ASSERT_EQUAL(std::string("a,b,c"), ids_of(e));
    }

    void testIdentityFirst() {
        host_->write("crm", R"([{"_id": "p-9", "email": "x@y"}, {"_id": "p-1", "email": "x@y"}])");
        host_->write("erp", R"([{"_id": "e-5", "email": "x@y"}])");
        auto source = plugin_->create("merge", R"({"type": "merge", "version": 2, "datasets": ["crm c", "erp e"],
            "equality_sets": [["c.email", "e.email"]], "identity": "first"})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        // Ordered by dataset, then id: p-1 comes first.
        CPPUNIT_ASSERT_EQUAL(std::string("p-1"), ids(host_->latest("out")));
        CPPUNIT_ASSERT_EQUAL(std::string("e-5,p-1,p-9"), ids_of(*by_id(host_->latest("out")).at("p-1")));
    }

    void testMergeLaterReplacesOldIds() {
        host_->write("crm", R"([{"_id": "c1", "email": "ann@x", "name": "Ann"}])");
        host_->write("erp", R"([{"_id": "e1", "email": "ann@other", "salary": 10}])");
        auto source = plugin_->create("merge", kPeople);
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,1|e1"), ids(host_->latest("out")));

        host_->clear();
        host_->write("erp", R"([{"_id": "e1", "email": "ann@x", "salary": 10}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        JsonDocument out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1"), ids(out));
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,1|e1"), ids(out, true));
        auto e = by_id(out);
        CPPUNIT_ASSERT(replaced(*e.at("0|c1")) && replaced(*e.at("1|e1")));
        const Json& merged = *e.at("0|c1|1|e1");
        CPPUNIT_ASSERT_EQUAL(std::string("Ann"), str(merged["name"]));
        CPPUNIT_ASSERT_EQUAL(int64_t(10), merged["salary"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(std::string("c1,e1"), ids_of(merged));
        // Only e1 changed: one batch, and the token moved on erp only.
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"crm":0,"erp":1})"), host_->last_seen());
        // The source's own state names the output id by its members.
        JsonDocument record = host_->get(kState, "0|c1|1|e1");
        CPPUNIT_ASSERT_EQUAL(std::string(R"(["[\"crm\",\"c1\"]","[\"erp\",\"e1\"]"])"), str(record["members"]));
        CPPUNIT_ASSERT(is_deleted(host_->get(kState, "0|c1")));
    }

    void testUnmergeWhenEqualityNoLongerHolds() {
        host_->write("crm", R"([{"_id": "c1", "email": "ann@x"}, {"_id": "c2", "email": "bob@x"}])");
        host_->write("erp", R"([{"_id": "e1", "email": "ann@x"}])");
        auto source = plugin_->create("merge", kPeople);
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1,0|c2"), ids(host_->latest("out")));

        // e1 moves from ann to bob: it leaves c1 (which did not change) and joins c2.
        host_->clear();
        host_->write("erp", R"([{"_id": "e1", "email": "bob@x"}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        JsonDocument out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,0|c2|1|e1"), ids(out));
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1,0|c2"), ids(out, true));
        auto e = by_id(out);
        CPPUNIT_ASSERT(replaced(*e.at("0|c1|1|e1")));
        CPPUNIT_ASSERT(replaced(*e.at("0|c2")));
        CPPUNIT_ASSERT_EQUAL(std::string("c1"), ids_of(*e.at("0|c1")));
        CPPUNIT_ASSERT_EQUAL(std::string("ann@x"), str((*e.at("0|c1"))["email"]));

        // And away from everyone.
        host_->clear();
        host_->write("erp", R"([{"_id": "e1", "email": "nobody@x"}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,0|c2,1|e1"), ids(out));
        CPPUNIT_ASSERT(replaced(*by_id(out).at("0|c2|1|e1")));
    }

    void testDeletingTheBridgeSplitsTheCluster() {
        host_->write("A", R"([{"_id": "a1", "x": 1}])");
        host_->write("B", R"([{"_id": "b1", "x": 1, "y": 2}])");
        host_->write("C", R"([{"_id": "c1", "y": 2}])");
        auto source = plugin_->create("merge", R"({"type": "merge", "datasets": ["A a", "B b", "C c"],
            "equality_sets": [["a.x", "b.x"], ["b.y", "c.y"]]})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("0|a1|1|b1|2|c1"), ids(host_->latest("out")));

        host_->clear();
        host_->write("B", R"([{"_id": "b1", "_deleted": true, "x": 1, "y": 2}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        JsonDocument out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(std::string("0|a1,2|c1"), ids(out));
        CPPUNIT_ASSERT_EQUAL(std::string("0|a1|1|b1|2|c1,1|b1"), ids(out, true));
        auto e = by_id(out);
        CPPUNIT_ASSERT(replaced(*e.at("0|a1|1|b1|2|c1")));
        CPPUNIT_ASSERT(!replaced(*e.at("1|b1")));  // deleted in its dataset: output alone, deleted
        CPPUNIT_ASSERT_EQUAL(int64_t(2), (*e.at("1|b1"))["y"].GetInt64());
        // b1 comes back: everything merges again, and the split ids are replaced.
        host_->clear();
        host_->write("B", R"([{"_id": "b1", "x": 1, "y": 2}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(std::string("0|a1|1|b1|2|c1"), ids(out));
        CPPUNIT_ASSERT(replaced(*by_id(out).at("0|a1")) && replaced(*by_id(out).at("2|c1")));
    }

    void testListValuesAndNumbersJoinLikeHops() {
        // Any shared value joins (overlap); 1 and 1.0 are the same number; null never joins.
        host_->write("A", R"([{"_id": "a1", "k": ["p", "q"]}, {"_id": "a2", "k": 1}, {"_id": "a3", "k": null}])");
        host_->write("B", R"([{"_id": "b1", "k": "q"}, {"_id": "b2", "k": 1.0}, {"_id": "b3", "k": null}])");
        auto source = plugin_->create("merge", R"({"type": "merge", "datasets": ["A a", "B b"],
            "equality": [["eq", "a.k", "b.k"]]})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("0|a1|1|b1,0|a2|1|b2,0|a3,1|b3"), ids(host_->latest("out")));
    }

    void testIdsOfAlreadyMergedEntities() {
        host_->write("global", R"([{"_id": "g1", "$ids": ["x1", "x2"], "email": "e"}])");
        host_->write("extra", R"([{"_id": "n1", "email": "e"}])");
        auto source = plugin_->create("merge", R"({"type": "merge", "datasets": ["global g", "extra x"],
            "equality_sets": [["g.email", "x.email"]], "identity": "first"})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("n1,x1,x2"), ids_of(*by_id(host_->latest("out")).at("g1")));
    }

    void testLookupsNotScans() {
        std::string a = "[", b = "[";
        for (int i = 0; i < 300; ++i) {
            a += (i ? "," : "") + std::string("{\"_id\": \"a") + std::to_string(i) + "\", \"k\": " + std::to_string(i) + "}";
            b += (i ? "," : "") + std::string("{\"_id\": \"b") + std::to_string(i) + "\", \"k\": " + std::to_string(i) + "}";
        }
        host_->write("A", a + "]");
        host_->write("B", b + "]");
        auto source = plugin_->create("merge", R"({"type": "merge", "datasets": ["A a", "B b"],
            "equality_sets": [["a.k", "b.k"]]})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run(100));
        JsonDocument out = host_->latest("out", false);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(300), out.Size());
        CPPUNIT_ASSERT_EQUAL(std::string("0|a7|1|b7"), str(out[7]["_id"]));
        // 600 changed entities in 6 batches: a handful of batched lookups per batch, and reads
        // only to page the two datasets.
        CPPUNIT_ASSERT_EQUAL(6, host_->batches());
        CPPUNIT_ASSERT_MESSAGE(std::to_string(host_->lookups()), host_->lookups() <= 6 * 5);
        CPPUNIT_ASSERT_MESSAGE(std::to_string(host_->reads()), host_->reads() <= 10);
    }

    void testWritesDuringARun() {
        host_->write("crm", R"([{"_id": "c1", "email": "ann@x"}, {"_id": "c2", "email": "bob@x"}])");
        host_->write("erp", R"([{"_id": "e1", "email": "ann@x"}])");
        auto source = plugin_->create("merge", kPeople);
        // After the first batch (c1 with e1), e1 moves to bob and c2 changes: both are read
        // later in the same run and the result is the final state, old ids replaced.
        host_->on_emit([&](int batch) {
            if (batch != 1) return;
            host_->write("erp", R"([{"_id": "e1", "email": "bob@x"}])");
            host_->write("crm", R"([{"_id": "c2", "email": "bob@x", "name": "Bob"}])");
        });
        CPPUNIT_ASSERT_EQUAL(kOk, source.run(1));
        JsonDocument out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,0|c2|1|e1"), ids(out));
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1"), ids(out, true));
        CPPUNIT_ASSERT(replaced(*by_id(out).at("0|c1|1|e1")));
        CPPUNIT_ASSERT_EQUAL(std::string("Bob"), str((*by_id(out).at("0|c2|1|e1"))["name"]));
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"crm":2,"erp":1})"), host_->last_seen());
    }

    void testPreviewLeavesStateAlone() {
        host_->write("crm", R"([{"_id": "c1", "email": "ann@x"}])");
        host_->write("erp", R"([{"_id": "e1", "email": "ann@x"}])");
        auto source = plugin_->create("merge", kPeople);
        host_->set_preview(true);
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1"), ids(host_->emitted()));
        CPPUNIT_ASSERT(host_->command(std::string("{\"op\":\"info\",\"dataset\":\"") + kState + "\"}").IsNull());
        CPPUNIT_ASSERT_EQUAL(std::string(), host_->last_seen());
        host_->set_preview(false);
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT(host_->get(kState, "0|c1|1|e1").IsObject());
    }

    void testFailedBatchIsRedoneWithReplacedDeletes() {
        host_->write("crm", R"([{"_id": "c1", "email": "ann@x"}])");
        host_->write("erp", R"([{"_id": "e1", "email": "ann@other"}])");
        auto source = plugin_->create("merge", kPeople);
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        host_->write("erp", R"([{"_id": "e1", "email": "ann@x"}])");
        host_->clear();
        host_->fail_emits_after(0);  // the sink refuses the batch: nothing is committed
        CPPUNIT_ASSERT(source.run() != SLUICE_OK);
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,1|e1"), ids(host_->latest("out")));
        CPPUNIT_ASSERT(!host_->get(kState, "0|c1|1|e1").IsObject());
        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        JsonDocument out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1"), ids(out));
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,1|e1"), ids(out, true));
    }

    void testMaxMerged() {
        host_->write("crm", R"([{"_id": "c1", "email": "x"}, {"_id": "c2", "email": "x"}])");
        host_->write("erp", R"([{"_id": "e1", "email": "x"}])");
        auto source = plugin_->create("merge", R"({"type": "merge", "version": 2, "datasets": ["crm c", "erp e"],
            "equality_sets": [["c.email", "e.email"]], "max_merged": 2})");
        CPPUNIT_ASSERT_EQUAL(kError, source.run());
        CPPUNIT_ASSERT_MESSAGE(host_->error(), host_->error().find("max_merged (2)") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), host_->emitted().Size());
        // The node's global default applies too.
        auto by_default = plugin_->create("merge", kPeople,
                                          R"({"_id": "node", "type": "metadata", "global_defaults": {"max_merged": 2}})");
        CPPUNIT_ASSERT_EQUAL(kError, by_default.run());
        auto enough = plugin_->create("merge", kPeople);
        CPPUNIT_ASSERT_EQUAL(kOk, enough.run());
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|0|c2|1|e1"), ids(host_->latest("out")));
    }

    void testFullRunAfterRuleChange() {
        host_->write("crm", R"([{"_id": "c1", "email": "ann@x", "phone": "1"}])");
        host_->write("erp", R"([{"_id": "e1", "email": "ann@x", "phone": "2"}])");
        auto by_email = plugin_->create("merge", kPeople);
        CPPUNIT_ASSERT_EQUAL(kOk, by_email.run());
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1|1|e1"), ids(host_->latest("out")));
        // The rules change to phone (which differs) and the pipe is reset: the old id goes.
        host_->clear();
        host_->reset();
        auto by_phone = plugin_->create("merge", R"({"type": "merge", "version": 2, "datasets": ["crm c", "erp e"],
            "equality_sets": [["c.phone", "e.phone"]]})");
        CPPUNIT_ASSERT_EQUAL(kOk, by_phone.run());
        JsonDocument out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(std::string("0|c1,1|e1"), ids(out));
        CPPUNIT_ASSERT(replaced(*by_id(out).at("0|c1|1|e1")));
    }

    void testConfigErrors() {
        struct Case {
            const char* config;
            const char* message;
        } cases[] = {
            {R"({"type": "merge", "datasets": ["A a", "C c"], "equality": [["eq", "a.f", ["lower", "c.f"]]]})",
             "only \"<alias>.<property>\" paths"},
            {R"({"type": "merge", "datasets": ["A a"], "equality_sets": [["a.f", "z.f"]]})", "unknown alias 'z'"},
            {R"({"type": "merge", "datasets": ["A a"], "equality_sets": [["af"]]})", "is not \"<alias>.<property>\""},
            {R"({"type": "merge", "datasets": ["A a", "B a"]})", "alias 'a' is used twice"},
            {R"({"type": "merge", "datasets": ["A a"], "version": 3})", "'version' must be 1 or 2"},
            {R"({"type": "merge", "datasets": ["A a"], "identity": "last"})", "'identity'"},
            {R"({"type": "merge", "datasets": []})", "at least one dataset"},
        };
        for (const Case& c : cases) {
            auto source = plugin_->create("merge", c.config);
            CPPUNIT_ASSERT_MESSAGE(c.config, !source.valid());
            CPPUNIT_ASSERT_MESSAGE(host_->error(), host_->error().find(c.message) != std::string::npos);
        }
    }

private:
    std::unique_ptr<StoreHost> host_;
    std::unique_ptr<SourcePlugin> plugin_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(MergeTest);

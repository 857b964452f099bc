// The union_datasets source through the C contract, on the real memory storage: datasets read
// in order, ids prefixed, deletes kept, composite offsets (JSON and Sesam's comma list), paging.
#include "store_host.hpp"

#include <cppunit/extensions/HelperMacros.h>

using namespace sources_test;

namespace {

const char* kPlugin = "sluice-source-union-datasets";

std::string order(const JsonDocument& entities) {
    std::string out;
    for (const Json& e : entities.GetArray()) out += (out.empty() ? "" : ",") + std::string(e["_id"].GetString());
    return out;
}

}  // namespace

class UnionDatasetsTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(UnionDatasetsTest);
    CPPUNIT_TEST(testReadsDatasetsInOrderWithPrefixedIds);
    CPPUNIT_TEST(testIncrementalRunsUseCompositeOffsets);
    CPPUNIT_TEST(testDeletesAreKept);
    CPPUNIT_TEST(testPrefixIdsFalse);
    CPPUNIT_TEST(testPagesAndBatchesAcrossDatasets);
    CPPUNIT_TEST(testAbortedRunResumesFromLastCommittedBatch);
    CPPUNIT_TEST(testCommaSeparatedToken);
    CPPUNIT_TEST(testTokenSurvivesDatasetListChanges);
    CPPUNIT_TEST(testIncludePreviousVersions);
    CPPUNIT_TEST(testIfSourceEmpty);
    CPPUNIT_TEST(testConfigErrorsAndCapabilities);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        host_ = std::make_unique<StoreHost>();
        plugin_ = std::make_unique<SourcePlugin>(kPlugin, *host_);
        host_->write("men", R"([{"_id": "dave", "age": 40}, {"_id": "bob", "age": 30}])");
        host_->write("women", R"([{"_id": "claire", "age": 35}])");
    }
    void tearDown() override {
        plugin_.reset();
        host_.reset();
    }

    void testReadsDatasetsInOrderWithPrefixedIds() {
        auto source = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["men", "women"]})");
        CPPUNIT_ASSERT(source.valid());
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("men:dave,men:bob,women:claire"), order(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(int64_t(40), host_->emitted()[0]["age"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"men":1,"women":0})"), host_->last_seen());
        CPPUNIT_ASSERT_EQUAL(std::string("men:bob,men:dave,women:claire"), ids(host_->latest("out")));
    }

    void testIncrementalRunsUseCompositeOffsets() {
        auto source = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["men", "women"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        host_->clear();
        host_->write("men", R"([{"_id": "dave", "age": 41}])");      // men offset 2
        host_->write("women", R"([{"_id": "anna", "age": 20}])");    // women offset 1
        host_->write("men", R"([{"_id": "bob", "age": 30}])");       // unchanged: no new version
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("men:dave,women:anna"), order(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(int64_t(41), host_->emitted()[0]["age"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"men":2,"women":1})"), host_->last_seen());
        // Nothing new: nothing emitted, the offset stays.
        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"men":2,"women":1})"), host_->last_seen());
    }

    void testDeletesAreKept() {
        auto source = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["men", "women"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        host_->clear();
        host_->write("men", R"([{"_id": "bob", "_deleted": true}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(std::string("men:bob"), std::string(host_->emitted()[0]["_id"].GetString()));
        CPPUNIT_ASSERT(is_deleted(host_->emitted()[0]));
        CPPUNIT_ASSERT_EQUAL(std::string("men:bob"), ids(host_->latest("out"), true));
        // A full run (reset) still carries the tombstone, so downstream keeps it deleted.
        host_->clear();
        host_->reset();
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        auto emitted = by_id(host_->emitted());
        CPPUNIT_ASSERT(is_deleted(*emitted.at("men:bob")));
        CPPUNIT_ASSERT(!is_deleted(*emitted.at("men:dave")));
    }

    void testPrefixIdsFalse() {
        auto source = plugin_->create(
            "union_datasets", R"({"type": "union_datasets", "datasets": ["men", "women"], "prefix_ids": false})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("dave,bob,claire"), order(host_->emitted()));
    }

    void testPagesAndBatchesAcrossDatasets() {
        std::string many = "[";
        for (int i = 0; i < 25; ++i) many += (i ? "," : "") + std::string("{\"_id\": \"m") + std::to_string(i) + "\"}";
        host_->write("lots", many + "]");  // offsets 0..24
        auto source = plugin_->create("union_datasets",
                                      R"({"type": "union_datasets", "datasets": ["lots", "women"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run(10));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(26), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(3, host_->batches());
        // Reads are paged by the batch size (never one unbounded read of a dataset).
        CPPUNIT_ASSERT(host_->reads() >= 4);
        const std::vector<std::string> expected{R"({"lots":9})", R"({"lots":19})", R"({"lots":24,"women":0})"};
        CPPUNIT_ASSERT(expected == host_->tokens());
        // Resuming from a token in the middle reads only what follows it.
        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kOk, source.read(R"({"lots":19})", 10));
        CPPUNIT_ASSERT_EQUAL(std::string("lots:m20,lots:m21,lots:m22,lots:m23,lots:m24,women:claire"),
                             order(host_->emitted()));
    }

    void testAbortedRunResumesFromLastCommittedBatch() {
        std::string many = "[";
        for (int i = 0; i < 30; ++i) many += (i ? "," : "") + std::string("{\"_id\": \"m") + std::to_string(i) + "\"}";
        host_->write("lots", many + "]");
        auto source = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["lots"]})");
        host_->fail_emits_after(1);  // the second batch's sink fails
        CPPUNIT_ASSERT(source.run(10) != SLUICE_OK);
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"lots":9})"), host_->last_seen());
        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kOk, source.run(10));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(20), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(std::string("lots:m10"), std::string(host_->emitted()[0]["_id"].GetString()));
    }

    void testCommaSeparatedToken() {
        host_->write("men", R"([{"_id": "eve", "age": 1}])");  // men offset 2
        auto source = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["men", "women"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.read("1,0"));
        CPPUNIT_ASSERT_EQUAL(std::string("men:eve"), order(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"men":2,"women":0})"), host_->last_seen());  // handed back as JSON
        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kOk, source.read("2,"));  // empty: women from its beginning
        CPPUNIT_ASSERT_EQUAL(std::string("women:claire"), order(host_->emitted()));
        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kError, source.read("1"));  // one offset for two datasets
        CPPUNIT_ASSERT(host_->error().find("2 datasets") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(kError, source.read("x,1"));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), host_->emitted().Size());
    }

    void testTokenSurvivesDatasetListChanges() {
        auto source = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["men"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"men":1})"), host_->last_seen());
        // "women" added in front: men keeps its offset, women starts from its beginning.
        host_->clear();
        auto wider = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["women", "men"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, wider.run());
        CPPUNIT_ASSERT_EQUAL(std::string("women:claire"), order(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"women":0,"men":1})"), host_->last_seen());
    }

    void testIncludePreviousVersions() {
        host_->write("men", R"([{"_id": "dave", "age": 41}])");
        auto latest = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["men"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, latest.read(nullptr));
        CPPUNIT_ASSERT_EQUAL(std::string("men:bob,men:dave"), order(host_->emitted()));
        host_->clear();
        auto all = plugin_->create("union_datasets",
                                   R"({"type": "union_datasets", "datasets": ["men"], "include_previous_versions": true})");
        CPPUNIT_ASSERT_EQUAL(kOk, all.read(nullptr));
        CPPUNIT_ASSERT_EQUAL(std::string("men:dave,men:bob,men:dave"), order(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(int64_t(41), host_->emitted()[2]["age"].GetInt64());
    }

    void testIfSourceEmpty() {
        auto fail = plugin_->create("union_datasets",
                                    R"({"type": "union_datasets", "datasets": ["nothing"], "if_source_empty": "fail"})");
        CPPUNIT_ASSERT_EQUAL(kError, fail.read(nullptr));
        CPPUNIT_ASSERT(host_->error().find("if_source_empty") != std::string::npos);
        // Only a full run can be "empty"; an incremental one with nothing new is fine.
        CPPUNIT_ASSERT_EQUAL(kOk, fail.read(R"({"nothing":5})"));
        auto accept = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["nothing"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, accept.read(nullptr));
        // The node's global default applies when the source does not say.
        auto by_default = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["nothing"]})",
                                          R"({"_id": "node", "type": "metadata", "global_defaults": {"if_source_empty": "fail"}})");
        CPPUNIT_ASSERT_EQUAL(kError, by_default.read(nullptr));
    }

    void testConfigErrorsAndCapabilities() {
        for (const char* bad : {R"({"type": "union_datasets"})", R"({"type": "union_datasets", "datasets": []})",
                                R"({"type": "union_datasets", "datasets": ["a", "a"]})",
                                R"({"type": "union_datasets", "datasets": [7]})"}) {
            auto source = plugin_->create("union_datasets", bad);
            CPPUNIT_ASSERT_MESSAGE(bad, !source.valid());
            CPPUNIT_ASSERT_MESSAGE(host_->error(), host_->error().find("datasets") != std::string::npos ||
                                                       host_->error().find("listed twice") != std::string::npos);
        }
        // "<dataset> <alias>" (as merge sources write it) reads the dataset.
        auto aliased = plugin_->create("union_datasets", R"({"type": "union_datasets", "datasets": ["men m"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, aliased.read(nullptr));
        CPPUNIT_ASSERT_EQUAL(std::string("men:dave,men:bob"), order(host_->emitted()));
        const uint64_t caps = plugin_->capabilities("union_datasets");
        CPPUNIT_ASSERT(caps & SLUICE_CAP_SUPPORTS_SINCE);
        CPPUNIT_ASSERT(caps & SLUICE_CAP_SINCE_COMPARABLE);
        CPPUNIT_ASSERT(caps & SLUICE_CAP_CHRONOLOGICAL);
    }

private:
    std::unique_ptr<StoreHost> host_;
    std::unique_ptr<SourcePlugin> plugin_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(UnionDatasetsTest);

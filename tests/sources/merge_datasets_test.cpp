// The merge_datasets source through the C contract, on the real memory storage: `_ts` order
// across datasets, one entity per id ("latest" and "all"), ids unchanged, composite offsets.
#include "store_host.hpp"

#include <cppunit/extensions/HelperMacros.h>

#include <thread>

using namespace sources_test;

namespace {

const char* kPlugin = "sluice-source-merge-datasets";

std::string order(const JsonDocument& entities) {
    std::string out;
    for (const Json& e : entities.GetArray()) out += (out.empty() ? "" : ",") + std::string(e["_id"].GetString());
    return out;
}

// Writes with a distinct `_ts` (one per write call, microseconds).
void write(StoreHost& host, const std::string& dataset, const std::string& json) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    host.write(dataset, json);
}

std::string str(const Json& v) { return v.IsString() ? v.GetString() : sluice::to_json(v); }

}  // namespace

class MergeDatasetsTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(MergeDatasetsTest);
    CPPUNIT_TEST(testLatestReturnsNewestVersionAcrossDatasets);
    CPPUNIT_TEST(testOutputIsInTimestampOrder);
    CPPUNIT_TEST(testLatestIncrementalAndDeletes);
    CPPUNIT_TEST(testAllKeysVersionsByDataset);
    CPPUNIT_TEST(testBatchesUseOneLookupPerDataset);
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

    void testLatestReturnsNewestVersionAcrossDatasets() {
        write(*host_, "crm", R"([{"_id": "p1", "name": "old"}])");
        write(*host_, "erp", R"([{"_id": "p1", "name": "new"}, {"_id": "p2", "name": "erp only"}])");
        auto source = plugin_->create("merge_datasets", R"({"type": "merge_datasets", "datasets": ["crm", "erp"]})");
        CPPUNIT_ASSERT(source.valid());
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        // p1 once, the newer erp version; ids unchanged.
        CPPUNIT_ASSERT_EQUAL(std::string("p1,p2"), order(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string("new"), str(host_->emitted()[0]["name"]));
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"crm":0,"erp":1})"), host_->last_seen());
    }

    void testOutputIsInTimestampOrder() {
        write(*host_, "b", R"([{"_id": "1"}])");
        write(*host_, "a", R"([{"_id": "2"}])");
        write(*host_, "b", R"([{"_id": "3"}])");
        write(*host_, "a", R"([{"_id": "4"}])");
        auto source = plugin_->create("merge_datasets", R"({"type": "merge_datasets", "datasets": ["a", "b"]})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run(3));
        CPPUNIT_ASSERT_EQUAL(std::string("1,2,3,4"), order(host_->emitted()));
        const std::vector<std::string> tokens{R"({"a":0,"b":1})", R"({"a":1,"b":1})"};
        CPPUNIT_ASSERT(tokens == host_->tokens());
    }

    void testLatestIncrementalAndDeletes() {
        write(*host_, "crm", R"([{"_id": "p1", "name": "crm"}])");
        write(*host_, "erp", R"([{"_id": "p1", "name": "erp"}])");
        auto source = plugin_->create("merge_datasets",
                                      R"({"type": "merge_datasets", "datasets": ["crm", "erp"], "strategy": "latest"})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("erp"), str((*by_id(host_->latest("out")).at("p1"))["name"]));
        // crm changes later: its version is now the newest.
        host_->clear();
        write(*host_, "crm", R"([{"_id": "p1", "name": "crm again"}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("p1"), order(host_->emitted()));
        CPPUNIT_ASSERT_EQUAL(std::string("crm again"), str((*by_id(host_->latest("out")).at("p1"))["name"]));
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"crm":1,"erp":0})"), host_->last_seen());
        // A delete is a version like any other: the newest one wins.
        host_->clear();
        write(*host_, "erp", R"([{"_id": "p1", "_deleted": true}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("p1"), ids(host_->latest("out"), true));
        // Nothing new: nothing emitted.
        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), host_->emitted().Size());
    }

    void testAllKeysVersionsByDataset() {
        write(*host_, "products", R"([{"_id": "x", "price": 10}, {"_id": "y", "price": 5}])");
        write(*host_, "products-metadata", R"([{"_id": "x", "colour": "red"}])");
        auto source = plugin_->create(
            "merge_datasets",
            R"({"type": "merge_datasets", "datasets": ["products", "products-metadata"], "strategy": "all"})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        // x once (at its newest position), y once.
        CPPUNIT_ASSERT_EQUAL(std::string("y,x"), order(host_->emitted()));
        JsonDocument out = host_->latest("out");
        auto entities = by_id(out);
        const Json& x = *entities.at("x");
        CPPUNIT_ASSERT_EQUAL(int64_t(10), x["products"]["price"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(std::string("red"), str(x["products-metadata"]["colour"]));
        CPPUNIT_ASSERT_EQUAL(std::string("x"), str(x["products"]["_id"]));
        CPPUNIT_ASSERT(!x["products"].HasMember("_updated"));  // generated fields are not content
        CPPUNIT_ASSERT(!x["products"].HasMember("_ts"));
        CPPUNIT_ASSERT(!entities.at("y")->HasMember("products-metadata"));
        // A delete in one dataset leaves the other's version; gone everywhere = deleted.
        host_->clear();
        write(*host_, "products-metadata", R"([{"_id": "x", "_deleted": true}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        out = host_->latest("out");
        CPPUNIT_ASSERT(!by_id(out).at("x")->HasMember("products-metadata"));
        CPPUNIT_ASSERT_EQUAL(int64_t(10), (*by_id(out).at("x"))["products"]["price"].GetInt64());
        host_->clear();
        write(*host_, "products", R"([{"_id": "x", "_deleted": true}])");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run());
        CPPUNIT_ASSERT_EQUAL(std::string("x"), ids(host_->latest("out"), true));
        CPPUNIT_ASSERT_EQUAL(std::string("y"), ids(host_->latest("out")));
    }

    void testBatchesUseOneLookupPerDataset() {
        std::string a = "[", b = "[";
        for (int i = 0; i < 250; ++i) {
            a += (i ? "," : "") + std::string("{\"_id\": \"e") + std::to_string(i) + "\", \"a\": 1}";
            b += (i ? "," : "") + std::string("{\"_id\": \"e") + std::to_string(i) + "\", \"b\": 2}";
        }
        write(*host_, "a", a + "]");
        write(*host_, "b", b + "]");
        auto source = plugin_->create("merge_datasets",
                                      R"({"type": "merge_datasets", "datasets": ["a", "b"], "strategy": "all"})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.run(100));
        CPPUNIT_ASSERT_EQUAL(5, host_->batches());        // 500 versions in batches of 100
        CPPUNIT_ASSERT_EQUAL(10, host_->lookups());       // one per dataset per batch, not per entity
        JsonDocument out = host_->latest("out");
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(250), out.Size());
        for (const Json& e : out.GetArray()) CPPUNIT_ASSERT(e.HasMember("a") && e.HasMember("b"));
    }

    void testConfigErrors() {
        for (const char* bad : {R"({"type": "merge_datasets"})",
                                R"({"type": "merge_datasets", "datasets": ["a"], "strategy": "first"})"}) {
            auto source = plugin_->create("merge_datasets", bad);
            CPPUNIT_ASSERT_MESSAGE(bad, !source.valid());
            CPPUNIT_ASSERT(!host_->error().empty());
        }
        const uint64_t caps = plugin_->capabilities("merge_datasets");
        CPPUNIT_ASSERT((caps & (SLUICE_CAP_SUPPORTS_SINCE | SLUICE_CAP_SINCE_COMPARABLE | SLUICE_CAP_CHRONOLOGICAL)) ==
                       (SLUICE_CAP_SUPPORTS_SINCE | SLUICE_CAP_SINCE_COMPARABLE | SLUICE_CAP_CHRONOLOGICAL));
    }

private:
    std::unique_ptr<StoreHost> host_;
    std::unique_ptr<SourcePlugin> plugin_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(MergeDatasetsTest);

// Node configuration: validated whole, every problem located by entity _id + JSON pointer.
#include <sluice/kernel/config.hpp>
#include <sluice/kernel/host_context.hpp>
#include <sluice/kernel/plugin_registry.hpp>

#include <cppunit/extensions/HelperMacros.h>

using namespace sluice::kernel;

namespace {

PluginRegistry& registry() {
    static PluginRegistry r(host_api());
    static bool loaded = false;
    if (!loaded) {
        loaded = true;
        r.load_directory(SLUICE_TEST_PLUGIN_DIR);
    }
    return r;
}

// Builds `json`; returns the problems (empty when valid).
std::vector<ConfigProblem> problems_of(const std::string& json) {
    sluice::JsonDocument doc = sluice::parse_json(json);
    try {
        NodeConfig::build(doc, registry());
        return {};
    } catch (const ConfigError& e) {
        return e.problems();
    }
}

bool has_problem(const std::vector<ConfigProblem>& problems, const std::string& id, const std::string& pointer,
                 const std::string& fragment) {
    for (const ConfigProblem& p : problems)
        if (p.entity_id == id && p.pointer == pointer && p.message.find(fragment) != std::string::npos) return true;
    return false;
}

std::string dump(const std::vector<ConfigProblem>& problems) {
    std::string out;
    for (const ConfigProblem& p : problems) out += p.entity_id + " " + p.pointer + ": " + p.message + "\n";
    return out;
}

}  // namespace

class ConfigTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(ConfigTest);
    CPPUNIT_TEST(testValidPipeBuilds);
    CPPUNIT_TEST(testDefaultSinkIsDatasetNamedAfterPipe);
    CPPUNIT_TEST(testEveryProblemIsReportedAndLocated);
    CPPUNIT_TEST(testUnknownTypeNamesInstalledTypes);
    CPPUNIT_TEST(testSchemaViolationPointsIntoComponent);
    CPPUNIT_TEST(testNotAnArray);
    CPPUNIT_TEST(testDefaultIntervals);
    CPPUNIT_TEST_SUITE_END();

public:
    void testValidPipeBuilds() {
        sluice::JsonDocument doc = sluice::parse_json(R"([
            {"_id": "node", "type": "metadata"},
            {"_id": "p", "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "1"}]},
             "sink": {"type": "dataset", "dataset": "d"}}])");
        auto config = NodeConfig::build(doc, registry());
        const PipeConfig* p = config->pipe("p");
        CPPUNIT_ASSERT(p);
        CPPUNIT_ASSERT_EQUAL(std::string("embedded"), p->source.type);
        CPPUNIT_ASSERT_EQUAL(std::string("d"), p->output_dataset);
        CPPUNIT_ASSERT(config->metadata().IsObject());
    }

    void testDefaultSinkIsDatasetNamedAfterPipe() {
        sluice::JsonDocument doc = sluice::parse_json(
            R"([{"_id": "people", "type": "pipe", "source": {"type": "embedded", "entities": []}}])");
        auto config = NodeConfig::build(doc, registry());
        CPPUNIT_ASSERT_EQUAL(std::string("people"), config->pipe("people")->output_dataset);
    }

    void testEveryProblemIsReportedAndLocated() {
        auto problems = problems_of(R"([
            {"_id": "a", "type": "pipe", "source": {"type": "embedded", "entities": []}},
            {"_id": "a", "type": "pipe", "source": {"type": "embedded", "entities": []}},
            {"_id": "b", "type": "pipe"},
            {"_id": "c", "type": "bogus"},
            {"type": "pipe"},
            {"_id": "d", "type": "pipe", "source": {"type": "embedded", "entities": []}, "batch_size": 0}
        ])");
        CPPUNIT_ASSERT_MESSAGE(dump(problems), has_problem(problems, "a", "/_id", "duplicate _id"));
        CPPUNIT_ASSERT_MESSAGE(dump(problems), has_problem(problems, "b", "/source", "needs a 'source'"));
        CPPUNIT_ASSERT_MESSAGE(dump(problems), has_problem(problems, "c", "/type", "bogus"));
        CPPUNIT_ASSERT_MESSAGE(dump(problems), has_problem(problems, "", "/4/_id", "_id"));
        CPPUNIT_ASSERT_MESSAGE(dump(problems), has_problem(problems, "d", "/batch_size", "batch_size"));
        auto cron = problems_of(R"([{"_id": "c", "type": "pipe", "source": {"type": "embedded", "entities": []},
                                     "pump": {"cron_expression": "0 25 * * *"}}])");
        CPPUNIT_ASSERT_MESSAGE(dump(cron), has_problem(cron, "c", "/pump/cron_expression", "hour"));
    }

    void testUnknownTypeNamesInstalledTypes() {
        auto problems = problems_of(R"([{"_id": "p", "type": "pipe", "source": {"type": "nope"}}])");
        CPPUNIT_ASSERT_EQUAL(size_t(1), problems.size());
        CPPUNIT_ASSERT_EQUAL(std::string("/source/type"), problems[0].pointer);
        CPPUNIT_ASSERT(problems[0].message.find("'nope'") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(problems[0].message, problems[0].message.find("embedded") != std::string::npos);
    }

    void testSchemaViolationPointsIntoComponent() {
        auto problems = problems_of(
            R"([{"_id": "p", "type": "pipe", "source": {"type": "embedded", "entities": "not a list"}}])");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(dump(problems), size_t(1), problems.size());
        CPPUNIT_ASSERT_EQUAL(std::string("p"), problems[0].entity_id);
        CPPUNIT_ASSERT_EQUAL(std::string("/source/entities"), problems[0].pointer);
        auto missing = problems_of(R"([{"_id": "p", "type": "pipe", "source": {"type": "embedded", "entities": []},
                                        "sink": {"type": "dataset"}}])");
        CPPUNIT_ASSERT_MESSAGE(dump(missing), has_problem(missing, "p", "/sink", "dataset"));
    }

    void testNotAnArray() {
        auto problems = problems_of(R"({"_id": "p"})");
        CPPUNIT_ASSERT_EQUAL(size_t(1), problems.size());
        CPPUNIT_ASSERT(problems[0].message.find("array") != std::string::npos);
    }

    void testDefaultIntervals() {
        sluice::JsonDocument doc = sluice::parse_json(R"([
            {"_id": "from-dataset", "type": "pipe", "source": {"type": "dataset", "dataset": "x"}},
            {"_id": "from-embedded", "type": "pipe", "source": {"type": "embedded", "entities": []}},
            {"_id": "explicit", "type": "pipe", "source": {"type": "dataset", "dataset": "x"},
             "pump": {"schedule_interval": 5}}])");
        auto config = NodeConfig::build(doc, registry());
        CPPUNIT_ASSERT_EQUAL(30.0, config->pipe("from-dataset")->interval_seconds());
        CPPUNIT_ASSERT_EQUAL(900.0, config->pipe("from-embedded")->interval_seconds());
        CPPUNIT_ASSERT_EQUAL(5.0, config->pipe("explicit")->interval_seconds());
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ConfigTest);

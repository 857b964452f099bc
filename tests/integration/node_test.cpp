// The real `sluice serve` process: a pipe from --config runs end to end, plugins are listed,
// bad plugins are refused and failing plugins fail their pipe while the node keeps answering.
#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
#include <thread>

using namespace sluice::test;
using sluice::Json;
using sluice::JsonDocument;

namespace {

const Json* member(const Json& object, const char* name) { return sluice::find_member(object, name); }

// The last run of a pipe's pump, as reported by the API.
JsonDocument last_run(const NodeProcess& node, const std::string& pipe) {
    HttpResponse r = node.get("/api/pipes/" + pipe + "/pump");
    CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
    JsonDocument doc = r.json();
    JsonDocument run;
    const Json* runtime = member(doc, "runtime");
    CPPUNIT_ASSERT(runtime);
    const Json* last = member(*runtime, "last-run");
    CPPUNIT_ASSERT_MESSAGE(r.body, last);
    run.CopyFrom(*last, run.GetAllocator());
    return run;
}

}  // namespace

class NodeTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(NodeTest);
    CPPUNIT_TEST(testEmbeddedPipeIntoDataset);
    CPPUNIT_TEST(testPluginsListed);
    CPPUNIT_TEST(testErrorsAreJson);
    CPPUNIT_TEST(testBadPluginsRefusedAndFailingPluginsFailTheirPipe);
    CPPUNIT_TEST(testBadConfigFileRefusesToStart);
    CPPUNIT_TEST_SUITE_END();

public:
    void testEmbeddedPipeIntoDataset() {
        TempDir dir;
        write_text(dir / "config.json", R"([
          {"_id": "p", "type": "pipe",
           "source": {"type": "embedded", "entities": [
              {"_id": "a", "n": 1}, {"_id": "b", "n": 2}, {"_id": "c", "n": 3}]},
           "sink": {"type": "dataset", "dataset": "d"}},
          {"_id": "q", "type": "pipe", "source": {"type": "dataset", "dataset": "d"},
           "sink": {"type": "dataset", "dataset": "e"}}])");
        NodeProcess node(dir / "data", {"--storage", "memory", "--config", (dir / "config.json").string()});
        node.start();
        node.wait_for_pipe_runs("p");

        HttpResponse r = node.get("/api/datasets/d/entities");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
        JsonDocument entities = r.json();
        CPPUNIT_ASSERT(entities.IsArray());
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), entities.Size());
        const char* ids[] = {"a", "b", "c"};
        for (rapidjson::SizeType i = 0; i < 3; ++i) {
            CPPUNIT_ASSERT_EQUAL(std::string(ids[i]), std::string(entities[i]["_id"].GetString()));
            CPPUNIT_ASSERT_EQUAL(int64_t(i), entities[i]["_updated"].GetInt64());
            CPPUNIT_ASSERT_EQUAL(int64_t(i + 1), entities[i]["n"].GetInt64());
            CPPUNIT_ASSERT(member(entities[i], "_ts") && member(entities[i], "_hash"));
        }
        // `since` is exclusive.
        JsonDocument after = node.get("/api/datasets/d/entities?since=0").json();
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), after.Size());
        CPPUNIT_ASSERT_EQUAL(std::string("b"), std::string(after[0]["_id"].GetString()));

        // Running it again changes nothing: no new versions.
        CPPUNIT_ASSERT_EQUAL(200, node.post("/api/pipes/p/pump", "operation=start",
                                            "application/x-www-form-urlencoded").status);
        node.wait_for_pipe_runs("p", 2);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), node.get("/api/datasets/d/entities").json().Size());

        // q reads d: p's changes wake it at once instead of after its 30 s interval.
        bool copied = false;
        for (int i = 0; i < 200 && !copied; ++i) {
            HttpResponse e = node.get("/api/datasets/e/entities");
            copied = e.status == 200 && e.json().Size() == 3;
            if (!copied) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        CPPUNIT_ASSERT_MESSAGE("downstream pipe was not signalled", copied);

        CPPUNIT_ASSERT_EQUAL_MESSAGE(node.log(), 0, node.stop());
    }

    void testPluginsListed() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        HttpResponse r = node.get("/api/plugins");
        CPPUNIT_ASSERT_EQUAL(200, r.status);
        JsonDocument plugins = r.json();
        bool found_embedded = false;
        for (const Json& p : plugins.GetArray()) {
            CPPUNIT_ASSERT(member(p, "name") && member(p, "version") && member(p, "path"));
            CPPUNIT_ASSERT_EQUAL(std::string("1.0"), std::string((*member(p, "abi")).GetString()));
            for (const Json& c : (*member(p, "components")).GetArray()) {
                if (std::string(c["type"].GetString()) == "embedded") {
                    found_embedded = true;
                    CPPUNIT_ASSERT_EQUAL(std::string("source"), std::string(c["kind"].GetString()));
                    CPPUNIT_ASSERT(c["schema"].IsObject());
                }
            }
        }
        CPPUNIT_ASSERT_MESSAGE(r.body, found_embedded);
        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/health").status);
        HttpResponse ui = node.get("/ui");
        CPPUNIT_ASSERT_EQUAL(200, ui.status);
        CPPUNIT_ASSERT(ui.content_type.find("text/html") == 0);
        CPPUNIT_ASSERT(ui.body.find("/api/pipes") != std::string::npos);
        CPPUNIT_ASSERT(ui.body.find("-circuit-breaker") != std::string::npos);  // commit/roll back buttons
        CPPUNIT_ASSERT_EQUAL(std::string("pong"), std::string(node.get("/api/ping").json()["ping"].GetString()));
    }

    void testErrorsAreJson() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        HttpResponse missing = node.get("/api/no/such/thing");
        CPPUNIT_ASSERT_EQUAL(404, missing.status);
        JsonDocument body = missing.json();
        CPPUNIT_ASSERT(member(body, "error") && member(body, "detail"));
        HttpResponse no_dataset = node.get("/api/datasets/nope/entities");
        CPPUNIT_ASSERT_EQUAL(404, no_dataset.status);
        CPPUNIT_ASSERT(member(no_dataset.json(), "error"));
        HttpResponse bad_config = node.put("/api/config", "[{\"_id\": ");
        CPPUNIT_ASSERT_EQUAL(400, bad_config.status);
        CPPUNIT_ASSERT(member(bad_config.json(), "error"));
    }

    void testBadPluginsRefusedAndFailingPluginsFailTheirPipe() {
        TempDir dir;
        write_text(dir / "config.json", R"([
          {"_id": "create-fails", "type": "pipe", "source": {"type": "fixture_create_fails"},
           "sink": {"type": "dataset", "dataset": "x1"}},
          {"_id": "write-throws", "type": "pipe",
           "source": {"type": "embedded", "entities": [{"_id": "a"}]},
           "sink": {"type": "fixture_throws_in_write"}},
          {"_id": "read-throws", "type": "pipe", "source": {"type": "fixture_throws_in_read"},
           "sink": {"type": "dataset", "dataset": "x3"}},
          {"_id": "good", "type": "pipe", "source": {"type": "fixture_counter", "count": 250},
           "transform": {"type": "fixture_touch"}, "sink": {"type": "dataset", "dataset": "counted"}}])");
        NodeProcess node(dir / "data", {"--storage", "memory", "--plugin-dir", SLUICE_TEST_FIXTURE_DIR, "--config",
                                        (dir / "config.json").string()});
        node.start();

        // Every unfit library is refused with its reason, and listed.
        JsonDocument refused = node.get("/api/plugins/refused").json();
        std::string all;
        for (const Json& r : refused.GetArray()) all += std::string(r["path"].GetString()) + ": " +
                                                       r["reason"].GetString() + "\n";
        for (const char* name : {"no_entry_symbol", "abi_major_mismatch", "abi_minor_newer", "descriptor_too_small",
                                 "duplicate_type", "entry_declines"})
            CPPUNIT_ASSERT_MESSAGE(all, all.find(name) != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(node.log(), node.log().find("refused plugin") != std::string::npos);

        for (const char* pipe : {"create-fails", "write-throws", "read-throws", "good"})
            node.wait_for_pipe_runs(pipe);

        JsonDocument run = last_run(node, "create-fails");
        CPPUNIT_ASSERT_EQUAL(std::string("failed"), std::string(run["status"].GetString()));
        CPPUNIT_ASSERT(std::string(run["error"].GetString()).find("imaginary system") != std::string::npos);
        run = last_run(node, "write-throws");
        CPPUNIT_ASSERT_EQUAL(std::string("failed"), std::string(run["status"].GetString()));
        CPPUNIT_ASSERT(std::string(run["error"].GetString()).find("blew up in write") != std::string::npos);
        run = last_run(node, "read-throws");
        CPPUNIT_ASSERT_EQUAL(std::string("failed"), std::string(run["status"].GetString()));

        // The healthy pipe next to them ran through a third-party transform.
        run = last_run(node, "good");
        CPPUNIT_ASSERT_EQUAL(std::string("completed"), std::string(run["status"].GetString()));
        JsonDocument counted = node.get("/api/datasets/counted/entities").json();
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(250), counted.Size());
        CPPUNIT_ASSERT(counted[249]["touched"].GetBool());

        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/ping").status);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(node.log(), 0, node.stop());
    }

    void testBadConfigFileRefusesToStart() {
        TempDir dir;
        write_text(dir / "config.json", R"([{"_id": "p", "type": "pipe", "source": {"type": "nope"}}])");
        CommandResult r = run_command({sluice_binary().string(), "serve", "--port", "0", "--storage", "memory",
                                       "--data-dir", (dir / "data").string(), "--config",
                                       (dir / "config.json").string()});
        CPPUNIT_ASSERT(r.status != 0);
        CPPUNIT_ASSERT_MESSAGE(r.output, r.output.find("/source/type") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(r.output, r.output.find("'nope'") != std::string::npos);
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(NodeTest);

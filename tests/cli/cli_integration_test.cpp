// The client subcommands against a real `sluice serve --storage memory`: upload (located
// errors), download/status round trip, run (one pipe, with upstream, all pipes) and `sluice test`
// on a small Sesam project, passing, failing with a diff, and --update.
#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>

#include <cstdlib>

using namespace sluice::test;
using sluice::Json;
using sluice::JsonDocument;

namespace {

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

std::string url(const NodeProcess& node) { return "http://127.0.0.1:" + std::to_string(node.port()); }

// `sluice <args...> --node <node>` in `cwd`.
CommandResult sluice_cli(const NodeProcess& node, std::vector<std::string> args, const fs::path& cwd = {}) {
    std::vector<std::string> argv{sluice_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--node");
    argv.push_back(url(node));
    argv.push_back("--token");  // every endpoint but ping/health needs one
    argv.push_back(node.token());
    return run_command(argv, cwd);
}

// embedded source → dataset "source" → pipe "copy" with a dataset sink; a test spec for "copy".
void write_project(const fs::path& dir, const std::string& pump = "") {
    const std::string pump_json = pump.empty() ? "" : R"(, "pump": {"mode": ")" + pump + R"("})";
    write_text(dir / "node-metadata.conf.json", R"({"_id": "node", "type": "metadata"})");
    write_text(dir / "pipes" / "source.conf.json",
               R"({"_id": "source", "type": "pipe", "source": {"type": "embedded", "entities": [
                   {"_id": "b", "n": 2, "tag": "<b>"}, {"_id": "a", "n": 1, "tag": "a&a"}]})" + pump_json + "}");
    write_text(dir / "pipes" / "copy.conf.json",
               R"({"_id": "copy", "type": "pipe", "source": {"type": "dataset", "dataset": "source"},
                   "sink": {"type": "dataset", "dataset": "copy"})" + pump_json + "}");
    write_text(dir / "expected" / "copy.test.json", "{}\n");
    write_text(dir / "expected" / "copy.json", R"([{"_id": "a", "n": 1, "tag": "a&a"}, {"_id": "b", "n": 2, "tag": "<b>"}])");
}

JsonDocument node_config(const NodeProcess& node) {
    HttpResponse r = node.get("/api/config");
    CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
    return r.json();
}

}  // namespace

class CliIntegrationTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(CliIntegrationTest);
    CPPUNIT_TEST(testUploadReportsLocatedErrors);
    CPPUNIT_TEST(testDownloadStatusRoundTrip);
    CPPUNIT_TEST(testSyncConfigIsFound);
    CPPUNIT_TEST(testRunOnePipe);
    CPPUNIT_TEST(testRunWithUpstream);
    CPPUNIT_TEST(testRunAllPipes);
    CPPUNIT_TEST(testSluiceTestPassesFailsAndUpdates);
    CPPUNIT_TEST(testSluiceTestSpecProblems);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        // Nothing from the environment may point the client elsewhere.
        ::unsetenv("SLUICE_NODE");
        ::unsetenv("SLUICE_TOKEN");
    }

    void testUploadReportsLocatedErrors() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        const fs::path project = dir / "project";
        write_project(project);
        write_text(project / "pipes" / "bad.conf.json",
                   R"({"_id": "bad", "type": "pipe", "source": {"type": "nope"}})");
        CommandResult r = sluice_cli(node, {"upload", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "pipes/bad.conf.json: 'bad' at /source/type"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "nope"));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), node_config(node).Size());  // nothing applied

        // A malformed file is caught locally, named with its line, and nothing is sent.
        write_text(project / "pipes" / "bad.conf.json", "{\"_id\": \"bad\",\n \"type\": \"pipe\"\n");
        r = sluice_cli(node, {"upload", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "pipes/bad.conf.json: malformed JSON at line 3"));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), node_config(node).Size());

        // Fixed, it uploads, with the profile's env.
        fs::remove(project / "pipes" / "bad.conf.json");
        write_text(project / "test-env.json", R"({"greeting": "hello"})");
        r = sluice_cli(node, {"upload", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "Uploaded 2 pipes and 0 systems and the node metadata"));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), node_config(node).Size());
        HttpResponse env = node.get("/api/env");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(env.body, 200, env.status);
        CPPUNIT_ASSERT_EQUAL(std::string("hello"), sluice::string_or(env.json(), "greeting", ""));

        // Bad command lines are usage errors.
        CPPUNIT_ASSERT_EQUAL(2, sluice_cli(node, {"upload", "--bogus"}).status);
        CPPUNIT_ASSERT_EQUAL(2, sluice_cli(node, {"status", "a", "b"}).status);
    }

    void testDownloadStatusRoundTrip() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        const fs::path project = dir / "project";
        write_project(project, "manual");
        write_text(project / "systems" / "web.conf.json",
                   R"({"_id": "web", "type": "system:url", "url_pattern": "http://example.invalid/%s"})");
        CommandResult r = sluice_cli(node, {"upload", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);

        r = sluice_cli(node, {"status", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "in sync"));

        // Change a pipe on the node: status names it, --diff shows how.
        HttpResponse put = node.put("/api/pipes/copy/config",
                                    R"({"_id": "copy", "type": "pipe", "source": {"type": "dataset", "dataset": "source"},
                                        "sink": {"type": "dataset", "dataset": "copy2"}, "pump": {"mode": "manual"}})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(put.body, 200, put.status);
        r = sluice_cli(node, {"status", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "pipes/copy.conf.json: differs from the node"));
        CPPUNIT_ASSERT_MESSAGE(r.output, !contains(r.output, "pipes/source.conf.json"));
        CPPUNIT_ASSERT_MESSAGE(r.output, !contains(r.output, "\"dataset\": \"copy2\""));
        r = sluice_cli(node, {"status", project.string(), "--diff"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "--- local/pipes/copy.conf.json\n+++ node/pipes/copy.conf.json\n"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "-    \"dataset\": \"copy\",\n+    \"dataset\": \"copy2\","));

        // A local file the node does not have is reported, then removed by download.
        write_text(project / "pipes" / "stale.conf.json", R"({"_id": "stale", "type": "pipe",
            "source": {"type": "embedded", "entities": []}})");
        r = sluice_cli(node, {"status", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "pipes/stale.conf.json: not on the node"));

        r = sluice_cli(node, {"download", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "updated pipes/copy.conf.json"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "removed pipes/stale.conf.json"));
        CPPUNIT_ASSERT(!fs::exists(project / "pipes" / "stale.conf.json"));
        CPPUNIT_ASSERT_EQUAL(std::string("{\n  \"_id\": \"copy\",\n  \"pump\": {\n    \"mode\": \"manual\"\n  },\n"
                                         "  \"sink\": {\n    \"dataset\": \"copy2\",\n    \"type\": \"dataset\"\n  },\n"
                                         "  \"source\": {\n    \"dataset\": \"source\",\n    \"type\": \"dataset\"\n  },\n"
                                         "  \"type\": \"pipe\"\n}\n"),
                             read_text(project / "pipes" / "copy.conf.json"));
        r = sluice_cli(node, {"status", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);

        // Into an empty directory: the whole layout, and the round trip is exact.
        const fs::path fresh = dir / "fresh";
        r = sluice_cli(node, {"download", fresh.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "Downloaded 2 pipes and 1 system and the node metadata"));
        for (const char* f : {"node-metadata.conf.json", "pipes/source.conf.json", "pipes/copy.conf.json",
                              "systems/web.conf.json"})
            CPPUNIT_ASSERT_MESSAGE(f, fs::is_regular_file(fresh / f));
        CPPUNIT_ASSERT_EQUAL(read_text(project / "pipes" / "copy.conf.json"), read_text(fresh / "pipes" / "copy.conf.json"));
        JsonDocument before = node_config(node);
        r = sluice_cli(node, {"upload", fresh.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(before.Size()), node_config(node).Size());
        CPPUNIT_ASSERT_EQUAL(0, sluice_cli(node, {"status", fresh.string()}).status);
        CPPUNIT_ASSERT_EQUAL(0, sluice_cli(node, {"status", project.string()}).status);
    }

    void testSyncConfigIsFound() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        const fs::path project = dir / "project";
        write_project(project, "manual");
        write_text(project / ".syncconfig", "NODE=\"" + url(node) + "\"\nJWT=\"" + node.token() + "\"\n");
        fs::create_directories(project / "sub");
        // No --node: the .syncconfig above the working directory names the node.
        CommandResult r = run_command({sluice_binary().string(), "upload", ".."}, project / "sub");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), node_config(node).Size());
        // An unreachable node is an error naming it.
        r = run_command({sluice_binary().string(), "status", ".", "--node", "http://127.0.0.1:1"}, project);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "cannot reach the node at http://127.0.0.1:1"));
    }

    void testRunOnePipe() {
        TempDir dir;
        write_text(dir / "config.json", R"([
          {"_id": "p", "type": "pipe", "pump": {"mode": "manual"},
           "source": {"type": "embedded", "entities": [{"_id": "a"}, {"_id": "b"}, {"_id": "c"}]},
           "sink": {"type": "dataset", "dataset": "d"}},
          {"_id": "broken", "type": "pipe", "pump": {"mode": "manual"}, "source": {"type": "fixture_throws_in_read"},
           "sink": {"type": "dataset", "dataset": "x"}}])");
        NodeProcess node(dir / "data", {"--storage", "memory", "--plugin-dir", SLUICE_TEST_FIXTURE_DIR, "--config",
                                        (dir / "config.json").string()});
        node.start();
        CommandResult r = sluice_cli(node, {"run", "p"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "p: completed"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "3 read"));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), node.get("/api/datasets/d/entities").json().Size());

        r = sluice_cli(node, {"run", "p", "--full"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "full run"));

        r = sluice_cli(node, {"run", "broken"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "error: pipe 'broken' failed: "));

        r = sluice_cli(node, {"run", "nosuchpipe"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "pipe 'nosuchpipe' is not on the node"));
    }

    // Needs POST/GET /api/pipes/{id}/run-tree.
    void testRunWithUpstream() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        const fs::path project = dir / "project";
        write_project(project, "manual");
        CommandResult r = sluice_cli(node, {"upload", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        r = sluice_cli(node, {"run", "copy", "--with-upstream"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "copy and its upstream pipes: completed"));
        HttpResponse copy = node.get("/api/datasets/copy/entities");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(copy.body, 200, copy.status);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), copy.json().Size());
    }

    // Needs the run-all-pipes endpoints.
    void testRunAllPipes() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        const fs::path project = dir / "project";
        write_project(project, "manual");
        CommandResult r = sluice_cli(node, {"upload", project.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        r = sluice_cli(node, {"run", "--max-run-time", "120"}, project);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "Ran all pipes to completion"));
        HttpResponse copy = node.get("/api/datasets/copy/entities");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(copy.body, 200, copy.status);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), copy.json().Size());
    }

    // Needs run-all-pipes and GET /api/pipes/{id}/entities?stage=.
    void testSluiceTestPassesFailsAndUpdates() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        const fs::path project = dir / "project";
        write_project(project);
        CommandResult r = sluice_cli(node, {"test", project.string(), "--max-run-time", "120"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "PASS expected/copy.test.json"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "All 1 test passed"));

        // A wrong expected file fails with a diff naming the spec.
        write_text(project / "expected" / "copy.json",
                   R"([{"_id": "a", "n": 1, "tag": "a&a"}, {"_id": "b", "n": 3, "tag": "<b>"}])");
        r = sluice_cli(node, {"test", project.string(), "--max-run-time", "120"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "FAIL expected/copy.test.json: content mismatch"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "--- expected/copy.json\n+++ current-output.json\n"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "-    \"n\": 3,\n+    \"n\": 2,\n"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "1 of 1 test failed: expected/copy.test.json"));

        // --update writes Sesam's format (sorted, indent 2, <>& escaped); then it passes again.
        r = sluice_cli(node, {"test", project.string(), "--update", "--no-upload", "--max-run-time", "120"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "updated expected/copy.json"));
        CPPUNIT_ASSERT_EQUAL(std::string("[\n  {\n    \"_id\": \"a\",\n    \"n\": 1,\n    \"tag\": \"a\\u0026a\"\n  },\n"
                                         "  {\n    \"_id\": \"b\",\n    \"n\": 2,\n    \"tag\": \"\\u003cb\\u003e\"\n  }\n]\n"),
                             read_text(project / "expected" / "copy.json"));
        r = sluice_cli(node, {"test", project.string(), "--max-run-time", "120"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
    }

    // Needs run-all-pipes and GET /api/pipes/{id}/entities?stage=.
    void testSluiceTestSpecProblems() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        const fs::path project = dir / "project";
        write_project(project);
        // A spec for a pipe that does not exist, one with a missing expected file, one ignored,
        // and one at the source stage with a blacklist.
        write_text(project / "expected" / "ghost.test.json", "{}");
        write_text(project / "expected" / "nofile.test.json", R"({"pipe": "copy"})");
        write_text(project / "expected" / "skipped.test.json", R"({"pipe": "copy", "ignore": true})");
        write_text(project / "expected" / "source-stage.test.json",
                   R"({"pipe": "source", "stage": "source", "blacklist": ["tag"]})");
        write_text(project / "expected" / "source-stage.json", R"([{"_id": "a", "n": 1}, {"_id": "b", "n": 2}])");
        CommandResult r = sluice_cli(node, {"test", project.string(), "--max-run-time", "120"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "PASS expected/copy.test.json"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "FAIL expected/ghost.test.json: it tests pipe 'ghost', which is not on the node"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "FAIL expected/nofile.test.json: the expected output expected/nofile.json is missing"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "SKIP expected/skipped.test.json"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "PASS expected/source-stage.test.json"));
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "2 of 4 tests failed"));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(CliIntegrationTest);

// `sluice upload`/`sluice test` with testdata/: the files are POSTed to the receivers of
// http_endpoint-source pipes after the upload, and must survive the run-all-pipes that follows
// (Sesam's client sends delete_input_datasets=False when testdata/ exists).
#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>

#include <cstdlib>

using namespace sluice::test;
using sluice::JsonDocument;

namespace {

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

CommandResult sluice_cli(const NodeProcess& node, std::vector<std::string> args) {
    std::vector<std::string> argv{sluice_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--node");
    argv.push_back("http://127.0.0.1:" + std::to_string(node.port()));
    argv.push_back("--token");  // every endpoint but ping/health needs one
    argv.push_back(node.token());
    return run_command(argv);
}

// receiver "input" (testdata) → dataset "input" → "publish" with an http_endpoint sink.
void write_project(const fs::path& dir) {
    write_text(dir / "pipes" / "input.conf.json", R"({"_id": "input", "type": "pipe", "source": {"type": "http_endpoint"}})");
    write_text(dir / "pipes" / "publish.conf.json",
               R"({"_id": "publish", "type": "pipe", "source": {"type": "dataset", "dataset": "input"},
                   "sink": {"type": "http_endpoint"}})");
    write_text(dir / "testdata" / "input.json", R"([{"_id": "x", "v": 1}, {"_id": "y", "v": 2}])");
    write_text(dir / "expected" / "publish.test.json", "{}");
    write_text(dir / "expected" / "publish.json", R"([{"_id": "x", "v": 1}, {"_id": "y", "v": 2}])");
}

}  // namespace

class CliTestdataTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(CliTestdataTest);
    CPPUNIT_TEST(testUploadPostsTestdata);
    CPPUNIT_TEST(testSluiceTestKeepsTestdata);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        ::unsetenv("SLUICE_NODE");
        ::unsetenv("SLUICE_TOKEN");
    }

    void testUploadPostsTestdata() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        write_project(dir / "project");
        CommandResult r = sluice_cli(node, {"upload", (dir / "project").string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "Posted testdata/input.json (2 entities) to pipe 'input'"));
        HttpResponse input = node.get("/api/datasets/input/entities");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(input.body, 200, input.status);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), input.json().Size());

        // Testdata for a pipe that is no receiver is an error naming the file.
        write_text(dir / "project" / "testdata" / "publish.json", R"([{"_id": "z"}])");
        r = sluice_cli(node, {"upload", (dir / "project").string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "error: testdata/publish.json: POST /api/receivers/publish/entities answered HTTP 404"));
    }

    void testSluiceTestKeepsTestdata() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        write_project(dir / "project");
        // "publish" is an endpoint pipe: Sesam requires a spec for it, and there is one.
        CommandResult r = sluice_cli(node, {"test", (dir / "project").string(), "--max-run-time", "120"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "PASS expected/publish.test.json"));

        // Without the spec the endpoint pipe is reported as untested.
        fs::remove(dir / "project" / "expected" / "publish.test.json");
        r = sluice_cli(node, {"test", (dir / "project").string(), "--max-run-time", "120"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 1, r.status);
        CPPUNIT_ASSERT_MESSAGE(r.output, contains(r.output, "no test spec covers output pipe 'publish'"));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(CliTestdataTest);

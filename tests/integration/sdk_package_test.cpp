// The third-party path, end to end: install Sluice into a staging prefix, build the example
// connector out of tree with find_package(SluiceSDK 1), load it into the *installed* node.
#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>

using namespace sluice::test;
using sluice::Json;
using sluice::JsonDocument;

class SdkPackageTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(SdkPackageTest);
    CPPUNIT_TEST(testOutOfTreeConnectorLoadsIntoInstalledNode);
    CPPUNIT_TEST_SUITE_END();

public:
    void testOutOfTreeConnectorLoadsIntoInstalledNode() {
        TempDir dir("sluice-sdk");
        const fs::path prefix = dir / "stage";
        CommandResult install =
            run_command({"cmake", "--install", SLUICE_TEST_BINARY_DIR, "--prefix", prefix.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(install.output, 0, install.status);
        CPPUNIT_ASSERT(fs::exists(prefix / "bin" / "sluice"));
        CPPUNIT_ASSERT(fs::exists(prefix / "lib" / "sluice" / "plugins" / "sluice-source-embedded.so"));
        CPPUNIT_ASSERT(fs::exists(prefix / "lib" / "cmake" / "SluiceSDK" / "SluiceSDKConfig.cmake"));
        CPPUNIT_ASSERT(fs::exists(prefix / "include" / "sluice" / "plugin.h"));

        const fs::path source = fs::path(SLUICE_TEST_SOURCE_DIR) / "dist" / "examples" / "hello-connector";
        const fs::path build = dir / "hello-build";
        CommandResult configure = run_command({"cmake", "-S", source.string(), "-B", build.string(),
                                               "-DCMAKE_PREFIX_PATH=" + prefix.string(),
                                               "-DCMAKE_BUILD_TYPE=Release"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(configure.output, 0, configure.status);
        CommandResult compile = run_command({"cmake", "--build", build.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(compile.output, 0, compile.status);
        CPPUNIT_ASSERT(fs::exists(build / "hello-connector.so"));

        // A request for an SDK of another major version must fail at configure time.
        const fs::path other = dir / "other-major";
        write_text(other / "CMakeLists.txt",
                   "cmake_minimum_required(VERSION 3.22)\nproject(x CXX)\nfind_package(SluiceSDK 2 REQUIRED)\n");
        CommandResult wrong = run_command({"cmake", "-S", other.string(), "-B", (other / "b").string(),
                                           "-DCMAKE_PREFIX_PATH=" + prefix.string()});
        CPPUNIT_ASSERT_MESSAGE(wrong.output, wrong.status != 0);

        // The installed binary finds its built-in plugins relative to itself, and the connector
        // through --plugin-dir.
        const fs::path installed_binary = prefix / "bin" / "sluice";
        CommandResult version = run_command({installed_binary.string(), "version"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(version.output, 0, version.status);

        write_text(dir / "config.json", R"([{"_id": "greetings", "type": "pipe",
            "source": {"type": "hello", "names": ["Ada", "Grace"], "greeting": "Hi"}}])");
        NodeProcess node(dir / "data", {"--storage", "memory", "--plugin-dir", build.string(), "--config",
                                        (dir / "config.json").string()});
        node.set_binary(installed_binary);
        node.start();
        JsonDocument plugins = node.get("/api/plugins").json();
        bool hello = false, builtin = false;
        for (const Json& p : plugins.GetArray()) {
            const std::string name = p["name"].GetString();
            if (name == "hello-connector") {
                hello = true;
                CPPUNIT_ASSERT_EQUAL(std::string("hello"), std::string(p["components"][0]["type"].GetString()));
                CPPUNIT_ASSERT(p["components"][0]["schema"].IsObject());
            }
            if (name == "sluice-sink-dataset") builtin = std::string(p["path"].GetString()).find(prefix.string()) == 0;
        }
        CPPUNIT_ASSERT_MESSAGE(node.log(), hello);
        CPPUNIT_ASSERT_MESSAGE("built-in plugins must load from the install prefix", builtin);

        node.wait_for_pipe_runs("greetings");
        JsonDocument entities = node.get("/api/datasets/greetings/entities").json();
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), entities.Size());
        CPPUNIT_ASSERT_EQUAL(std::string("Hi, Ada!"), std::string(entities[0]["message"].GetString()));
        CPPUNIT_ASSERT_EQUAL(0, node.stop());
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(SdkPackageTest);

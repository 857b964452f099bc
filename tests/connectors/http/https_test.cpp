// verify_ssl and ca_file against a real HTTPS server with a self-signed certificate made by the
// test (openssl req): off accepts it, on refuses it unless ca_file trusts it.
#include "connector_test_util.hpp"
#include "test_server.hpp"
#include "test_support.hpp"

#include <Poco/Net/Context.h>

#include <cppunit/extensions/HelperMacros.h>

using namespace sluice::test;
using sluice::testing::FakeHost;
using sluice::testing::LoadedPlugin;

class HttpsTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(HttpsTest);
    CPPUNIT_TEST(testVerifySsl);
    CPPUNIT_TEST_SUITE_END();

public:
    void testVerifySsl() {
        TempDir dir("sluice-tls");
        const std::string key = (dir / "key.pem").string(), cert = (dir / "cert.pem").string();
        CommandResult made = run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                                          "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
                                          "-addext", "subjectAltName=IP:127.0.0.1"});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(made.output, 0, made.status);
        Poco::Net::Context::Ptr tls = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, key, cert, "",
                                                             Poco::Net::Context::VERIFY_NONE);
        TestServer server(tls);
        server.on([](const RecordedRequest&) { return Reply{200, R"([{"_id":"secure"}])"}; });

        FakeHost host;
        LoadedPlugin plugin(plugin_path("sluice-source-json"), host);
        auto read_with = [&](const std::string& system_extra) {
            host.clear();
            const std::string system = R"({"type":"system:url","url_pattern":")" + server.url("/%s") +
                                       R"(","retry_strategy":{"default":{"retries":0}})" + system_extra + "}";
            auto source = plugin.create(SLUICE_KIND_SOURCE, "json", R"({"type":"json","system":"s","url":"x"})", system.c_str());
            CPPUNIT_ASSERT_MESSAGE(host.last_error(), source.valid());
            return source.read(nullptr, 10);
        };
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host.last_error(), kOk, read_with(""));  // verify_ssl defaults to false (Sesam)
        CPPUNIT_ASSERT_EQUAL(std::string("secure"), std::string(host.emitted()[0]["_id"].GetString()));
        CPPUNIT_ASSERT_EQUAL(kError, read_with(R"(,"verify_ssl":true)"));
        CPPUNIT_ASSERT_MESSAGE(host.last_error(), host.last_error().find(server.url("/x")) != std::string::npos);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host.last_error(), kOk, read_with(R"(,"verify_ssl":true,"ca_file":")" + cert + "\""));
        CPPUNIT_ASSERT_EQUAL(size_t(2), server.request_count());  // the refused handshake never reached HTTP
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(HttpsTest);

// The `json` and `rest` sinks against a real HTTP server started by the test: batching, the JSON
// push protocol's sequence parameters, retries with back-off then kRetry, non-retryable
// 4xx as SLUICE_ERROR naming status and URL; and the `null` sink.
#include "connector_test_util.hpp"
#include "test_server.hpp"

#include <cppunit/extensions/HelperMacros.h>

using namespace sluice::test;
using sluice::Json;
using sluice::JsonDocument;
using sluice::testing::FakeHost;
using sluice::testing::LoadedPlugin;

class HttpSinkTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(HttpSinkTest);
    CPPUNIT_TEST(testBatchesAndSequenceParameters);
    CPPUNIT_TEST(testFullSyncEndsWithIsLast);
    CPPUNIT_TEST(testExactEntityTextAndHeaders);
    CPPUNIT_TEST(testRetriesThenSucceeds);
    CPPUNIT_TEST(testRetriesExhaustedIsRetryStatus);
    CPPUNIT_TEST(testConnectionErrorIsRetryStatus);
    CPPUNIT_TEST(testClientErrorIsNotRetryable);
    CPPUNIT_TEST(testPlainPostsWithoutProtocol);
    CPPUNIT_TEST(testRestSinkOperations);
    CPPUNIT_TEST(testNullSinkDiscards);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        server_ = std::make_unique<TestServer>();
        host_ = std::make_unique<FakeHost>();
        plugin_ = std::make_unique<LoadedPlugin>(plugin_path("sluice-sink-json"), *host_);
        server_->on([](const RecordedRequest&) { return Reply{200, "{}"}; });
    }
    void tearDown() override {
        plugin_.reset();
        host_.reset();
        server_.reset();
    }

    std::string system(const std::string& extra = "") const {
        return R"({"type":"system:url","url_pattern":")" + server_->url("/api/receivers/%s") +
               R"(","retry_strategy":{"default":{"retries":2,"retry_delay":0.01,"backoff_factor":2}})" + extra + "}";
    }
    sluice::testing::Instance make(const std::string& config, const std::string& sys, const char* type = "json") {
        auto sink = plugin_->create(SLUICE_KIND_SINK, type, config, sys.empty() ? nullptr : sys.c_str());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), sink.valid());
        return sink;
    }
    static std::string entities(int n) {
        std::string out = "[";
        for (int i = 1; i <= n; ++i) out += (i > 1 ? "," : "") + std::string(R"({"_id":"e)") + std::to_string(i) + R"(","v":)" + std::to_string(i) + "}";
        return out + "]";
    }

    void testBatchesAndSequenceParameters() {
        auto sink = make(R"({"type":"json","system":"s","url":"people/entities","batch_size":2})", system());
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(*plugin_, "json", sink, *host_, false));
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, sink.write(entities(5)));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(*plugin_, "json", sink, *host_, false, true));
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(size_t(3), reqs.size());  // 2 + 2 + 1, no closing request for incremental runs
        size_t total = 0;
        for (size_t i = 0; i < reqs.size(); ++i) {
            const RecordedRequest& r = reqs[i];
            CPPUNIT_ASSERT_EQUAL(std::string("POST"), r.method);
            CPPUNIT_ASSERT_EQUAL(std::string("/api/receivers/people/entities"), r.path);
            CPPUNIT_ASSERT(r.header("content-type").find("application/json") == 0);
            JsonDocument body = sluice::parse_json(r.body);
            total += body.Size();
            CPPUNIT_ASSERT(body.Size() == (i < 2 ? 2u : 1u));
            CPPUNIT_ASSERT_EQUAL(reqs[0].param("sequence_id"), r.param("sequence_id"));
            CPPUNIT_ASSERT_EQUAL(std::string("false"), r.param("is_full"));
            CPPUNIT_ASSERT(!r.has_param("is_first"));
            if (i > 0) CPPUNIT_ASSERT_EQUAL(reqs[i - 1].param("request_id"), r.param("previous_request_id"));
        }
        CPPUNIT_ASSERT(!reqs[0].has_param("previous_request_id"));
        CPPUNIT_ASSERT_EQUAL(size_t(5), total);
    }

    void testFullSyncEndsWithIsLast() {
        auto sink = make(R"({"type":"json","system":"s","url":"p/entities"})", system());
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(*plugin_, "json", sink, *host_, true));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(entities(3)));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(*plugin_, "json", sink, *host_, true, true));
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(size_t(2), reqs.size());
        CPPUNIT_ASSERT_EQUAL(std::string("true"), reqs[0].param("is_full"));
        CPPUNIT_ASSERT_EQUAL(std::string("true"), reqs[0].param("is_first"));
        CPPUNIT_ASSERT_EQUAL(std::string("false"), reqs[0].param("is_last"));
        CPPUNIT_ASSERT_EQUAL(std::string("[]"), reqs[1].body);
        CPPUNIT_ASSERT_EQUAL(std::string("false"), reqs[1].param("is_first"));
        CPPUNIT_ASSERT_EQUAL(std::string("true"), reqs[1].param("is_last"));
        CPPUNIT_ASSERT_EQUAL(reqs[0].param("sequence_id"), reqs[1].param("sequence_id"));
        CPPUNIT_ASSERT_EQUAL(reqs[0].param("request_id"), reqs[1].param("previous_request_id"));

        // A failed full run does not end the sequence (the receiver must not delete anything).
        server_->clear();
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(*plugin_, "json", sink, *host_, true));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(entities(1)));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(*plugin_, "json", sink, *host_, true, false));
        CPPUNIT_ASSERT_EQUAL(size_t(1), server_->request_count());
        CPPUNIT_ASSERT(server_->requests()[0].param("sequence_id") != reqs[0].param("sequence_id"));
    }

    void testExactEntityTextAndHeaders() {
        auto sink = make(R"({"type":"json","system":"s","url":"x","headers":{"X-Tenant":"t1"}})",
                         system(R"(, "authentication": "jwt", "jwt_token": "abc", "headers": {"X-Api": "2"})"));
        const std::string batch = R"([{"_id":"big","n":123456789012345678901234567890,"d":0.10000000000000000001,"s":"æøå \"q\""}])";
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(*plugin_, "json", sink, *host_, false));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(batch));
        auto r = server_->requests().at(0);
        CPPUNIT_ASSERT_EQUAL(batch, r.body);  // numbers keep their exact text
        CPPUNIT_ASSERT_EQUAL(std::string("Bearer abc"), r.header("authorization"));
        CPPUNIT_ASSERT_EQUAL(std::string("t1"), r.header("x-tenant"));
        CPPUNIT_ASSERT_EQUAL(std::string("2"), r.header("x-api"));
    }

    void testRetriesThenSucceeds() {
        int calls = 0;
        server_->on([&calls](const RecordedRequest&) { return ++calls <= 2 ? Reply{502, "bad gateway"} : Reply{200, "{}"}; });
        auto sink = make(R"({"type":"json","system":"s","url":"x"})", system());
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(*plugin_, "json", sink, *host_, false));
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, sink.write(entities(2)));
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(size_t(3), reqs.size());
        CPPUNIT_ASSERT_EQUAL(reqs[0].body, reqs[2].body);  // the same batch again
    }

    void testRetriesExhaustedIsRetryStatus() {
        server_->on([](const RecordedRequest&) { return Reply{500, R"({"error":"db down"})"}; });
        auto sink = make(R"({"type":"json","system":"s","url":"x"})", system());
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(*plugin_, "json", sink, *host_, false));
        const auto start = std::chrono::steady_clock::now();
        CPPUNIT_ASSERT_EQUAL(kRetry, sink.write(entities(2)));
        // back-off: 0.01 s then 0.02 s
        CPPUNIT_ASSERT(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(30));
        CPPUNIT_ASSERT_EQUAL(size_t(3), server_->request_count());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("500") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("db down") != std::string::npos);

        // A timeout is transient too.
        server_->clear();
        server_->on([](const RecordedRequest&) {
            Reply r{200, "{}"};
            r.delay_ms = 1000;
            return r;
        });
        auto slow = make(R"({"type":"json","system":"s","url":"x"})",
                         R"({"type":"system:url","url_pattern":")" + server_->url("/%s") +
                             R"(","read_timeout":0.2,"retry_strategy":{"default":{"retries":0}}})");
        CPPUNIT_ASSERT_EQUAL(kRetry, slow.write(entities(1)));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("timed out") != std::string::npos);
    }

    void testConnectionErrorIsRetryStatus() {
        auto sink = make(R"({"type":"json","url":"http://127.0.0.1:)" + std::to_string(closed_port()) + R"(/in"})",
                         R"({"type":"system:url","retry_strategy":{"default":{"retries":1,"retry_delay":0.01}}})");
        CPPUNIT_ASSERT_EQUAL(kRetry, sink.write(entities(1)));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("json sink") != std::string::npos);
    }

    void testClientErrorIsNotRetryable() {
        server_->on([](const RecordedRequest&) { return Reply{422, R"({"error":"field 'v' must be a string"})"}; });
        auto sink = make(R"({"type":"json","system":"s","url":"people/entities"})", system());
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(*plugin_, "json", sink, *host_, false));
        CPPUNIT_ASSERT_EQUAL(kError, sink.write(entities(2)));
        CPPUNIT_ASSERT_EQUAL(size_t(1), server_->request_count());
        const std::string& e = host_->last_error();
        CPPUNIT_ASSERT_MESSAGE(e, e.find("422") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(e, e.find(server_->url("/api/receivers/people/entities")) != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(e, e.find("must be a string") != std::string::npos);
    }

    void testPlainPostsWithoutProtocol() {
        auto sink = make(R"({"type":"json","url":")" + server_->url("/hook") + R"(","json_push_protocol":false})", "");
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(*plugin_, "json", sink, *host_, true));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(entities(1)));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(*plugin_, "json", sink, *host_, true, true));
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(size_t(1), reqs.size());
        CPPUNIT_ASSERT_EQUAL(std::string("/hook"), reqs[0].uri);
    }

    void testRestSinkOperations() {
        const std::string sys = R"({"type":"system:rest","url_pattern":")" + server_->url("/v1/%s") + R"(",
            "retry_strategy":{"default":{"retries":0}},
            "operations":{"put-item":{"url":"items/{{ properties.item_id }}","method":"PUT","headers":{"X-Op":"put"}},
                          "delete-item":{"url":"items/{{ properties.item_id }}","method":"DELETE"}}})";
        auto sink = make(R"({"type":"rest","system":"s"})", sys, "rest");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, sink.write(R"([
            {"_id":"1","operation":"put-item","properties":{"item_id":"a 1"},"payload":{"name":"A"}},
            {"_id":"2","operation":"delete-item","properties":{"item_id":"b"}},
            {"_id":"3","_deleted":true}])"));
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(size_t(2), reqs.size());
        CPPUNIT_ASSERT_EQUAL(std::string("PUT"), reqs[0].method);
        CPPUNIT_ASSERT_EQUAL(std::string("/v1/items/a 1"), reqs[0].path);
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"name":"A"})"), reqs[0].body);
        CPPUNIT_ASSERT_EQUAL(std::string("put"), reqs[0].header("x-op"));
        CPPUNIT_ASSERT_EQUAL(std::string("DELETE"), reqs[1].method);

        CPPUNIT_ASSERT_EQUAL(kError, sink.write(R"([{"_id":"9","operation":"explode"}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("explode") != std::string::npos);
        server_->on([](const RecordedRequest&) { return Reply{409, "conflict"}; });
        CPPUNIT_ASSERT_EQUAL(kError, sink.write(R"([{"_id":"1","operation":"put-item","properties":{"item_id":"x"}}])"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("409") != std::string::npos);
    }

    void testNullSinkDiscards() {
        FakeHost host;
        LoadedPlugin null_plugin(plugin_path("sluice-sink-null"), host);
        auto sink = null_plugin.create(SLUICE_KIND_SINK, "null", R"({"type":"null"})");
        CPPUNIT_ASSERT(sink.valid());
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(entities(3)));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), host.emitted().Size());
    }

private:
    std::unique_ptr<TestServer> server_;
    std::unique_ptr<FakeHost> host_;
    std::unique_ptr<LoadedPlugin> plugin_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(HttpSinkTest);

// The `json` and `rest` sources against a real HTTP server started by the test: pagination (body
// link, Link header, page parameter, since+limit), since and continuation tokens, basic and bearer
// authentication checked by the server, 401, retries on 5xx, timeouts, non-retryable 4xx, size
// limits and malformed responses.
#include "connector_test_util.hpp"
#include "test_server.hpp"

#include <cppunit/extensions/HelperMacros.h>

using namespace sluice::test;
using sluice::Json;
using sluice::testing::FakeHost;
using sluice::testing::LoadedPlugin;

namespace {

std::string ids(FakeHost& host) {
    std::string out;
    for (const Json& e : host.emitted().GetArray()) out += (out.empty() ? "" : ",") + std::string(e["_id"].GetString());
    return out;
}

std::string entities(int from, int to) {
    std::string out = "[";
    for (int i = from; i <= to; ++i)
        out += (i > from ? "," : "") + std::string("{\"_id\":\"e") + std::to_string(i) + "\",\"_updated\":" +
               std::to_string(i) + ",\"n\":" + std::to_string(i) + "}";
    return out + "]";
}

}  // namespace

class JsonSourceTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(JsonSourceTest);
    CPPUNIT_TEST(testArrayWithSinceAndMaxToken);
    CPPUNIT_TEST(testChronologicalTokensPerBatch);
    CPPUNIT_TEST(testSinceAsHeaderAndInitialValue);
    CPPUNIT_TEST(testNextPageLinkInBody);
    CPPUNIT_TEST(testLinkHeaderPaging);
    CPPUNIT_TEST(testPageParameter);
    CPPUNIT_TEST(testSinceLimitPaging);
    CPPUNIT_TEST(testBasicAuthAndSystemHeaders);
    CPPUNIT_TEST(testBearerToken);
    CPPUNIT_TEST(testUnauthorizedIsClearAndNotRetried);
    CPPUNIT_TEST(testRetriesServerErrorsThenSucceeds);
    CPPUNIT_TEST(testRetriesExhausted);
    CPPUNIT_TEST(testReadTimeout);
    CPPUNIT_TEST(testConnectionRefused);
    CPPUNIT_TEST(testClientErrorNotRetried);
    CPPUNIT_TEST(testIdAndUpdatedProperties);
    CPPUNIT_TEST(testLimitsAndMalformedJson);
    CPPUNIT_TEST(testRestSourceUsesSystemOperation);
    CPPUNIT_TEST(testBadConfigRefused);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        server_ = std::make_unique<TestServer>();
        host_ = std::make_unique<FakeHost>();
        plugin_ = std::make_unique<LoadedPlugin>(plugin_path("sluice-source-json"), *host_);
    }
    void tearDown() override {
        plugin_.reset();
        host_.reset();
        server_.reset();
    }

    sluice::testing::Instance make(const std::string& config, const std::string& system = "", const char* type = "json") {
        auto source = plugin_->create(SLUICE_KIND_SOURCE, type, config, system.empty() ? nullptr : system.c_str());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), source.valid());
        return source;
    }
    std::string url_system(const std::string& extra = "") const {
        return R"({"type": "system:url", "url_pattern": ")" + server_->url("/api/%s") +
               R"(", "retry_strategy": {"default": {"retries": 2, "retry_delay": 0.01}})" + extra + "}";
    }

    void testArrayWithSinceAndMaxToken() {
        server_->on([](const RecordedRequest& r) {
            if (r.param("since") == "3") return Reply{200, "[]"};
            // not chronological: the largest _updated is the token
            return Reply{200, R"([{"_id":"a","_updated":2},{"_id":"b","_updated":3},{"_id":"c","_updated":1}])"};
        });
        auto source = make(R"({"type":"json","system":"s","url":"people","supports_since":true})", url_system());
        CPPUNIT_ASSERT_EQUAL(kOk, source.read(nullptr, 100));
        CPPUNIT_ASSERT_EQUAL(std::string("a,b,c"), ids(*host_));
        CPPUNIT_ASSERT_EQUAL(size_t(1), host_->continuations().size());
        CPPUNIT_ASSERT_EQUAL(std::string("3"), host_->continuations()[0]);
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(std::string("/api/people"), reqs[0].path);
        CPPUNIT_ASSERT(!reqs[0].has_param("since"));  // a full run sends no since

        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kOk, source.read("3", 100));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), host_->emitted().Size());
        CPPUNIT_ASSERT(host_->continuations().empty());
        CPPUNIT_ASSERT_EQUAL(std::string("3"), server_->requests()[1].param("since"));
    }

    void testChronologicalTokensPerBatch() {
        server_->on([](const RecordedRequest&) { return Reply{200, entities(1, 5)}; });
        auto source = make(R"({"type":"json","url":")" + server_->url("/x") +
                           R"(","supports_since":true,"is_chronological":true})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.read(nullptr, 2));
        CPPUNIT_ASSERT_EQUAL(size_t(3), host_->emitted_batches());
        CPPUNIT_ASSERT_EQUAL(std::string("2,4,5"), join(host_->continuations()));
    }

    void testSinceAsHeaderAndInitialValue() {
        server_->on([](const RecordedRequest&) { return Reply{200, "[]"}; });
        auto source = make(R"({"type":"json","url":")" + server_->url("/x") +
                           R"(","supports_since":true,"since_property_name":"X-Since","since_property_location":"header",
                              "initial_since_value":"2020-01-01"})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.read(nullptr, 10));
        CPPUNIT_ASSERT_EQUAL(kOk, source.read("7", 10));
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(std::string("2020-01-01"), reqs[0].header("x-since"));
        CPPUNIT_ASSERT_EQUAL(std::string("7"), reqs[1].header("x-since"));
        CPPUNIT_ASSERT(!reqs[1].has_param("X-Since"));

        // supports_since false (the default): since is never sent
        auto plain = make(R"({"type":"json","url":")" + server_->url("/y") + R"("})");
        CPPUNIT_ASSERT_EQUAL(kOk, plain.read("7", 10));
        CPPUNIT_ASSERT(!server_->requests()[2].has_param("since"));
    }

    void testNextPageLinkInBody() {
        server_->on([](const RecordedRequest& r) {
            if (r.param("cursor") == "b")
                return Reply{200, R"({"data": {"items": [{"_id": "3"}]}, "paging": {"next": null}})"};
            return Reply{200, R"({"count": 3, "data": {"items": [{"_id": "1"}, {"_id": "2", "nested": {"items": [9]}}]},
                                  "paging": {"next": "/api/items?cursor=b"}})"};
        });
        auto source = make(R"({"type":"json","system":"s","url":"items","payload_property":"data.items",
                               "next_page_link":"paging.next"})", url_system());
        CPPUNIT_ASSERT_EQUAL(kOk, source.read(nullptr, 100));
        CPPUNIT_ASSERT_EQUAL(std::string("1,2,3"), ids(*host_));
        CPPUNIT_ASSERT_EQUAL(9, host_->emitted()[1]["nested"]["items"][0].GetInt());
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(size_t(2), reqs.size());
        CPPUNIT_ASSERT_EQUAL(std::string("/api/items?cursor=b"), reqs[1].uri);

        // A number outside the entity list that RapidJSON cannot parse safely: the read fails,
        // saying so, rather than paging on garbage.
        server_->on([](const RecordedRequest&) {
            return Reply{200, R"({"count": 184467440737095516151e-60, "data": {"items": [{"_id": "1"}]}, "paging": {"next": null}})"};
        });
        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kError, source.read(nullptr, 100));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(),
                               host_->last_error().find("unsupported number in the response outside the entity list") !=
                                   std::string::npos);
    }

    void testLinkHeaderPaging() {
        const std::string base = server_->url("/api/list");
        server_->on([base](const RecordedRequest& r) {
            Reply reply{200, r.param("page") == "2" ? entities(3, 3) : entities(1, 2)};
            if (r.param("page") != "2")
                reply.headers.emplace_back("Link", "<" + base + "?page=2>; rel=\"next\", <" + base + "?page=2>; rel=\"last\"");
            return reply;
        });
        auto source = make(R"({"type":"json","url":")" + base + R"(","next_page_link":"link-header"})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.read(nullptr, 100));
        CPPUNIT_ASSERT_EQUAL(std::string("e1,e2,e3"), ids(*host_));
        CPPUNIT_ASSERT_EQUAL(size_t(2), server_->request_count());
    }

    void testPageParameter() {
        server_->on([](const RecordedRequest& r) {
            const std::string page = r.param("page");
            if (page == "1") return Reply{200, entities(1, 2)};
            if (page == "2") return Reply{200, entities(3, 4)};
            if (page == "3") return Reply{200, entities(5, 5)};
            return Reply{200, entities(6, 7)};  // never reached: page 3 was short
        });
        auto source = make(R"({"type":"json","url":")" + server_->url("/p") +
                           R"(","page_parameter":"page","page_size":2,"page_size_parameter":"per_page"})");
        CPPUNIT_ASSERT_EQUAL(kOk, source.read(nullptr, 100));
        CPPUNIT_ASSERT_EQUAL(std::string("e1,e2,e3,e4,e5"), ids(*host_));
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(size_t(3), reqs.size());
        CPPUNIT_ASSERT_EQUAL(std::string("2"), reqs[2].param("per_page"));
        CPPUNIT_ASSERT_EQUAL(std::string("3"), reqs[2].param("page"));

        // without page_size: until an empty page
        server_->clear();
        host_->clear();
        server_->on([](const RecordedRequest& r) {
            return Reply{200, r.param("page") == "0" ? entities(1, 3) : std::string("[]")};
        });
        auto zero = make(R"({"type":"json","url":")" + server_->url("/p") + R"(","page_parameter":"page","page_start":0})");
        CPPUNIT_ASSERT_EQUAL(kOk, zero.read(nullptr, 100));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(size_t(2), server_->request_count());
    }

    void testSinceLimitPaging() {
        server_->on([](const RecordedRequest& r) {
            const std::string since = r.param("since");
            if (since.empty()) return Reply{200, entities(1, 2)};
            if (since == "2") return Reply{200, entities(3, 4)};
            if (since == "4") return Reply{200, entities(5, 5)};
            return Reply{500, "unexpected"};
        });
        auto source = make(R"({"type":"json","url":")" + server_->url("/s") +
                           R"(","supports_since":true,"is_chronological":true,"page_size":2})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, source.read(nullptr, 100));
        CPPUNIT_ASSERT_EQUAL(std::string("e1,e2,e3,e4,e5"), ids(*host_));
        auto reqs = server_->requests();
        CPPUNIT_ASSERT_EQUAL(size_t(3), reqs.size());
        CPPUNIT_ASSERT_EQUAL(std::string("2"), reqs[0].param("limit"));
        CPPUNIT_ASSERT_EQUAL(std::string("4"), reqs[2].param("since"));
        CPPUNIT_ASSERT_EQUAL(std::string("5"), host_->continuations().back());

        // A server that ignores since would loop: refused with a clear error.
        server_->on([](const RecordedRequest&) { return Reply{200, entities(1, 2)}; });
        host_->clear();
        CPPUNIT_ASSERT_EQUAL(kError, source.read(nullptr, 100));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("no progress") != std::string::npos);
    }

    void testBasicAuthAndSystemHeaders() {
        server_->on([](const RecordedRequest& r) {
            if (r.header("authorization") != "Basic dXNlcjpzM2NyM3Q=") return Reply{401, R"({"error":"who are you"})"};
            if (r.header("x-api-version") != "3" || r.header("x-pipe") != "yes") return Reply{400, "missing headers"};
            return Reply{200, entities(1, 1)};
        });
        auto source = make(R"({"type":"json","system":"s","url":"/people","headers":{"X-Pipe":"yes"}})",
                           url_system(R"(, "authentication": "basic", "username": "user", "password": "s3cr3t",
                                        "headers": {"X-Api-Version": "3"})"));
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, source.read(nullptr, 10));
        CPPUNIT_ASSERT_EQUAL(std::string("e1"), ids(*host_));
        CPPUNIT_ASSERT_EQUAL(std::string("/api/people"), server_->requests()[0].path);  // no "//"
    }

    void testBearerToken() {
        server_->on([](const RecordedRequest& r) {
            return r.header("authorization") == "Bearer tok-123" ? Reply{200, entities(1, 2)} : Reply{401, ""};
        });
        auto source = make(R"({"type":"json","system":"s","url":"x"})",
                           url_system(R"(, "authentication": "jwt", "jwt_token": "tok-123")"));
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, source.read(nullptr, 10));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), host_->emitted().Size());
    }

    void testUnauthorizedIsClearAndNotRetried() {
        server_->on([](const RecordedRequest&) { return Reply{401, R"({"error":"bad credentials"})"}; });
        auto source = make(R"({"type":"json","system":"s","url":"people"})",
                           url_system(R"(, "authentication": "basic", "username": "user", "password": "wrong")"));
        CPPUNIT_ASSERT_EQUAL(kError, source.read(nullptr, 10));
        const std::string& e = host_->last_error();
        CPPUNIT_ASSERT_MESSAGE(e, e.find("401 Unauthorized") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(e, e.find(server_->url("/api/people")) != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(e, e.find("authentication") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(e, e.find("bad credentials") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(e, e.find("wrong") == std::string::npos);  // never the password
        CPPUNIT_ASSERT_EQUAL(size_t(1), server_->request_count());
    }

    void testRetriesServerErrorsThenSucceeds() {
        int calls = 0;
        server_->on([&calls](const RecordedRequest&) {
            return ++calls <= 2 ? Reply{500, "boom"} : Reply{200, entities(1, 3)};
        });
        auto source = make(R"({"type":"json","system":"s","url":"x"})", url_system());  // 2 retries
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, source.read(nullptr, 10));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(size_t(3), server_->request_count());
        size_t warnings = 0;
        for (const auto& l : host_->logs()) warnings += l.level == SLUICE_LOG_WARNING && l.message.find("retrying") != std::string::npos;
        CPPUNIT_ASSERT_EQUAL(size_t(2), warnings);
    }

    void testRetriesExhausted() {
        server_->on([](const RecordedRequest&) { return Reply{503, "maintenance"}; });
        auto source = make(R"({"type":"json","system":"s","url":"x"})", url_system());
        CPPUNIT_ASSERT_EQUAL(kError, source.read(nullptr, 10));
        CPPUNIT_ASSERT_EQUAL(size_t(3), server_->request_count());  // 1 + retries 2
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("503") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("after 3 attempts") != std::string::npos);

        // A per-status rule overrides the default: 503 never retried.
        server_->clear();
        auto strict = make(R"({"type":"json","system":"s","url":"x"})",
                           R"({"type":"system:url","url_pattern":")" + server_->url("/%s") +
                               R"(","retry_strategy":{"503":{"retries":0},"default":{"retries":5,"retry_delay":0.01}}})");
        CPPUNIT_ASSERT_EQUAL(kError, strict.read(nullptr, 10));
        CPPUNIT_ASSERT_EQUAL(size_t(1), server_->request_count());
    }

    void testReadTimeout() {
        server_->on([](const RecordedRequest&) {
            Reply r{200, entities(1, 1)};
            r.delay_ms = 1500;
            return r;
        });
        auto source = make(R"({"type":"json","system":"s","url":"slow"})",
                           url_system(R"(, "read_timeout": 0.3, "connect_timeout": 2)"));
        const auto start = std::chrono::steady_clock::now();
        CPPUNIT_ASSERT_EQUAL(kError, source.read(nullptr, 10));
        const auto took = std::chrono::steady_clock::now() - start;
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("timed out") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(size_t(3), server_->request_count());  // timeouts are retried
        CPPUNIT_ASSERT(took < std::chrono::milliseconds(1500 * 3));
    }

    void testConnectionRefused() {
        const int port = closed_port();
        auto source = make(R"({"type":"json","url":"http://127.0.0.1:)" + std::to_string(port) + R"(/x"})",
                           R"({"type":"system:url","retry_strategy":{"default":{"retries":1,"retry_delay":0.01}}})");
        CPPUNIT_ASSERT_EQUAL(kError, source.read(nullptr, 10));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("failed") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find(std::to_string(port)) != std::string::npos);
    }

    void testClientErrorNotRetried() {
        server_->on([](const RecordedRequest&) { return Reply{404, R"({"error":"no such collection"})"}; });
        auto source = make(R"({"type":"json","system":"s","url":"nope"})", url_system());
        CPPUNIT_ASSERT_EQUAL(kError, source.read(nullptr, 10));
        CPPUNIT_ASSERT_EQUAL(size_t(1), server_->request_count());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("404 Not Found") != std::string::npos);
    }

    void testIdAndUpdatedProperties() {
        server_->on([](const RecordedRequest&) {
            return Reply{200, R"({"results": [{"id": 7, "_id": "old", "modified": "2024-01-02", "x": {"_id": "inner"}},
                                              {"id": "b", "modified": "2024-01-05"},
                                              {"id": 9, "modified": "2024-01-03"},
                                              {"_id": "own", "id": null, "modified": "2024-01-01"}]})"};
        });
        auto source = make(R"({"type":"json","url":")" + server_->url("/r") +
                           R"(","payload_property":"results","id_expression":"{{ id }}",
                              "updated_expression":"{{ modified }}","supports_since":true})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, source.read(nullptr, 10));
        CPPUNIT_ASSERT_EQUAL(std::string("7,b,9,own"), ids(*host_));  // no id value: the entity's own _id
        CPPUNIT_ASSERT_EQUAL(std::string("inner"), std::string(host_->emitted()[0]["x"]["_id"].GetString()));
        CPPUNIT_ASSERT_EQUAL(7, host_->emitted()[0]["id"].GetInt());
        CPPUNIT_ASSERT_EQUAL(std::string("2024-01-05"), host_->continuations().back());
    }

    void testLimitsAndMalformedJson() {
        server_->on([](const RecordedRequest& r) {
            if (r.path == "/big") return Reply{200, R"([{"_id":"1","text":")" + std::string(500, 'x') + R"("}])"};
            if (r.path == "/scalar") return Reply{200, R"([{"_id":"1"}, 42])"};
            return Reply{200, R"([{"_id":"1"}, {"_id": "2",)"};
        });
        auto big = make(R"({"type":"json","url":")" + server_->url("/big") + R"(","max_entity_bytes":100})");
        CPPUNIT_ASSERT_EQUAL(kError, big.read(nullptr, 10));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("max_entity_bytes") != std::string::npos);

        auto capped = make(R"({"type":"json","url":")" + server_->url("/big") + R"(","max_response_bytes":64})");
        CPPUNIT_ASSERT_EQUAL(kError, capped.read(nullptr, 10));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("max_response_bytes") != std::string::npos);

        auto scalar = make(R"({"type":"json","url":")" + server_->url("/scalar") + R"("})");
        CPPUNIT_ASSERT_EQUAL(kError, scalar.read(nullptr, 10));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("not entity objects") != std::string::npos);

        host_->clear();
        auto broken = make(R"({"type":"json","url":")" + server_->url("/broken") + R"("})");
        CPPUNIT_ASSERT_EQUAL(kError, broken.read(nullptr, 1));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("at byte") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), host_->emitted().Size());  // streamed before the error
    }

    void testRestSourceUsesSystemOperation() {
        server_->on([](const RecordedRequest& r) {
            if (r.param("after") == "p2") return Reply{200, R"({"results": [{"key": "c"}], "paging": {}})"};
            return Reply{200, R"({"results": [{"key": "a"}, {"key": "b"}], "paging": {"next": {"link": "/api/companies?after=p2"}}})"};
        });
        const std::string system = R"({"type": "system:rest", "url_pattern": ")" + server_->url("/api/%s") + R"(",
            "operations": {"list": {"url": "{{ properties.url }}", "method": "GET", "payload_property": "results",
                                    "id_expression": "{{ key }}", "next_page_link": "{{ body.paging.next.link }}"}}})";
        auto source = make(R"({"type":"rest","system":"s","operation":"list","properties":{"url":"companies"}})", system, "rest");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, source.read(nullptr, 10));
        CPPUNIT_ASSERT_EQUAL(std::string("a,b,c"), ids(*host_));
        CPPUNIT_ASSERT_EQUAL(std::string("/api/companies"), server_->requests()[0].path);

        auto missing = plugin_->create(SLUICE_KIND_SOURCE, "rest", R"({"type":"rest","operation":"nope"})", system.c_str());
        CPPUNIT_ASSERT(!missing.valid());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("no operation 'nope'") != std::string::npos);
    }

    void testBadConfigRefused() {
        struct Case {
            std::string config, system, expect;
        } cases[] = {
            {R"({"type":"json","url":"relative"})", "", "absolute"},
            {R"({"type":"json","url":"http://x/","page_size":10})", "", "supports_since"},
            {R"({"type":"json","url":"http://x/","updated_property":"a.b"})", "", "top-level"},
            {R"({"type":"json","url":"x","system":"s"})", R"({"type":"system:url","url_pattern":"http://x/%s","authentication":"ntlm"})", "ntlm"},
            {R"({"type":"json","url":"x","system":"s"})", R"({"type":"system:url","url_pattern":"http://x/%s","retry_strategy":{"oops":{}}})", "oops"},
            {R"({"type":"json","url":"http://x/","id_expression":"{{ a }}-{{ b }}"})", "", "single"},
        };
        for (const Case& c : cases) {
            auto source = plugin_->create(SLUICE_KIND_SOURCE, "json", c.config, c.system.empty() ? nullptr : c.system.c_str());
            CPPUNIT_ASSERT_MESSAGE(c.config, !source.valid());
            CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find(c.expect) != std::string::npos);
        }
    }

private:
    static std::string join(const std::vector<std::string>& v) {
        std::string out;
        for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
        return out;
    }

    std::unique_ptr<TestServer> server_;
    std::unique_ptr<FakeHost> host_;
    std::unique_ptr<LoadedPlugin> plugin_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(JsonSourceTest);

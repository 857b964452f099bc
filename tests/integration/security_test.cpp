// Security against a real node (docs/security.md): the 401/403 matrix over every route of the
// node's own route table, API tokens and revocation, per-pipe open endpoints, secrets never
// leaking (answers, log, execution log), request limits, TLS, and `sluice login`.
#include "postgres_support.hpp"
#include "test_support.hpp"

#include <sluice/kernel/auth.hpp>
#include <sluice/kernel/security.hpp>

#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>

#include <cppunit/extensions/HelperMacros.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <thread>

using namespace sluice::test;
using sluice::Json;
using sluice::JsonDocument;
namespace security = sluice::kernel::security;

namespace {

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::map<std::string, std::string> bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

std::string login(const NodeProcess& node, const std::string& user, const std::string& password) {
    HttpResponse r = http_request(node.port(), "POST", "/api/auth/token",
                                  R"({"username":")" + user + R"(","password":")" + password + R"("})",
                                  "application/json", {{"Authorization", ""}});
    CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 200, r.status);
    return r.json()["access_token"].GetString();
}

void add_user(const NodeProcess& node, const std::string& name, const std::string& role) {
    HttpResponse r = node.post("/api/auth/users", R"({"username":")" + name + R"(","password":"password-of-)" + name +
                                                      R"(","role":")" + role + R"("})");
    CPPUNIT_ASSERT_EQUAL_MESSAGE(r.body, 201, r.status);
}

int mode_of(const fs::path& file) {
    struct stat st {};
    CPPUNIT_ASSERT_EQUAL_MESSAGE(file.string(), 0, ::stat(file.c_str(), &st));
    return static_cast<int>(st.st_mode & 0777);
}

std::string sign(const std::string& key, int64_t exp) {
    JsonDocument claims(rapidjson::kObjectType);
    auto& a = claims.GetAllocator();
    claims.AddMember("sub", "admin", a);
    claims.AddMember("iat", now_seconds() - 7200, a);
    claims.AddMember("exp", exp, a);
    return security::sign_jwt_hs256(key, claims);
}

int rank(const std::string& role) {
    if (role == "reader") return 0;
    if (role == "operator") return 1;
    if (role == "developer") return 2;
    if (role == "admin") return 3;
    return -1;
}

}  // namespace

class SecurityTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(SecurityTest);
    CPPUNIT_TEST(testRolesDerivedFromTheRouteTable);
    CPPUNIT_TEST(testAuthMatrixOverEveryRoute);
    CPPUNIT_TEST(testApiTokensAndRevocation);
    CPPUNIT_TEST(testRevocationReachesNodesSharingStorage);
    CPPUNIT_TEST(testGeneratedAdminPasswordAndKeyFiles);
    CPPUNIT_TEST(testOpenEndpointsPerPipe);
    CPPUNIT_TEST(testSecretNeverLeaks);
    CPPUNIT_TEST(testLimits);
    CPPUNIT_TEST(testTlsWithSelfSignedCertificate);
    CPPUNIT_TEST(testCliLogin);
    CPPUNIT_TEST(testRs256KeyPair);
    CPPUNIT_TEST(testWorkspaceGrants);
    CPPUNIT_TEST_SUITE_END();

public:
    void testRolesDerivedFromTheRouteTable() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        JsonDocument spec = node.get("/api/openapi.json").json();
        const Json& paths = spec["paths"];
        auto role = [&](const char* path, const char* method) {
            CPPUNIT_ASSERT_MESSAGE(path, paths.HasMember(path) && paths[path].HasMember(method));
            return std::string(paths[path][method]["x-required-role"].GetString());
        };
        CPPUNIT_ASSERT_EQUAL(std::string("public"), role("/api/ping", "get"));
        CPPUNIT_ASSERT_EQUAL(std::string("public"), role("/api/health", "get"));
        CPPUNIT_ASSERT_EQUAL(std::string("public"), role("/api/auth/token", "post"));
        CPPUNIT_ASSERT_EQUAL(std::string("reader"), role("/api/pipes", "get"));
        CPPUNIT_ASSERT_EQUAL(std::string("reader"), role("/api/datasets/{id}/entities", "get"));
        CPPUNIT_ASSERT_EQUAL(std::string("operator"), role("/api/pipes/{id}/pump", "post"));
        CPPUNIT_ASSERT_EQUAL(std::string("operator"), role("/api/pipes/run-all-pipes", "post"));
        CPPUNIT_ASSERT_EQUAL(std::string("operator"), role("/api/pipes/{id}/run-tree", "post"));
        CPPUNIT_ASSERT_EQUAL(std::string("operator"), role("/api/receivers/{id}/entities", "post"));
        CPPUNIT_ASSERT_EQUAL(std::string("developer"), role("/api/config", "put"));
        CPPUNIT_ASSERT_EQUAL(std::string("developer"), role("/api/pipes", "post"));
        CPPUNIT_ASSERT_EQUAL(std::string("developer"), role("/api/env", "put"));
        CPPUNIT_ASSERT_EQUAL(std::string("developer"), role("/api/dtl/preview", "post"));
        CPPUNIT_ASSERT_EQUAL(std::string("developer"), role("/api/datasets/{id}", "delete"));
        CPPUNIT_ASSERT_EQUAL(std::string("admin"), role("/api/secrets", "get"));
        CPPUNIT_ASSERT_EQUAL(std::string("admin"), role("/api/secrets", "put"));
        CPPUNIT_ASSERT_EQUAL(std::string("admin"), role("/api/auth/users", "get"));
        CPPUNIT_ASSERT_EQUAL(std::string("admin"), role("/api/auth/tokens", "post"));
        CPPUNIT_ASSERT_EQUAL(std::string("admin"), role("/api/admin", "post"));
    }

    // Every route of the node's route table (its OpenAPI) × no token, expired, forged, "alg: none"
    // and each role: the anonymous ones get 401, the too-weak roles 403, the rest neither.
    void testAuthMatrixOverEveryRoute() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        for (const char* r : {"reader", "operator", "developer"}) add_user(node, std::string(r) + "1", r);
        std::map<std::string, std::string> tokens;
        for (const char* r : {"reader", "operator", "developer"})
            tokens[r] = login(node, std::string(r) + "1", "password-of-" + std::string(r) + "1");
        tokens["admin"] = node.token();

        const std::string key = read_text(dir / "data" / "jwt.key");
        const std::map<std::string, std::string> bad = {
            {"none", ""},
            {"expired", sign(key, now_seconds() - 60)},
            {"forged", sign(security::random_bytes(32), now_seconds() + 3600)},
            {"alg-none", security::base64url_encode(R"({"alg":"none"})") + "." +
                             security::base64url_encode(R"({"sub":"admin","exp":99999999999})") + "."},
            {"garbage", "not-a-jwt"},
        };

        JsonDocument spec = node.get("/api/openapi.json").json();
        const Json& paths = spec["paths"];
        size_t routes = 0;
        std::string failures;
        for (auto p = paths.MemberBegin(); p != paths.MemberEnd(); ++p) {
            std::string path = p->name.GetString();
            for (size_t open; (open = path.find('{')) != std::string::npos;)
                path.replace(open, path.find('}', open) - open + 1, "no-such-thing");
            for (auto m = p->value.MemberBegin(); m != p->value.MemberEnd(); ++m) {
                std::string method = m->name.GetString();
                if (method == "parameters") continue;
                for (char& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                const std::string required = m->value["x-required-role"].GetString();
                const std::string what = method + " " + path + " (" + required + ")";
                ++routes;
                for (const auto& [name, token] : bad) {
                    HttpResponse r = http_request(node.port(), method, path, "", "application/json",
                                                  {{"Authorization", token.empty() ? "" : "Bearer " + token}});
                    if (required == "public") {
                        // Public: no token check. (The login itself answers 401 for the empty
                        // credentials it got, which is about the password, not the token.)
                        if ((r.status == 401 || r.status == 403) && !contains(r.body, "invalid username or password"))
                            failures += what + " with " + name + " token: " + std::to_string(r.status) + "\n";
                    } else if (r.status != 401 || !contains(r.body, "\"unauthorized\"") ||
                               !r.headers.count("WWW-Authenticate")) {
                        failures += what + " with " + name + " token: " + std::to_string(r.status) + " " + r.body + "\n";
                    }
                }
                for (const char* role : {"reader", "operator", "developer", "admin"}) {
                    HttpResponse r = http_request(node.port(), method, path, "", "application/json", bearer(tokens[role]));
                    const bool allowed = required == "public" || rank(role) >= rank(required);
                    if (allowed && (r.status == 401 || r.status == 403) &&
                        !(required == "public" && contains(r.body, "invalid username or password")))
                        failures += what + " as " + role + ": " + std::to_string(r.status) + " " + r.body + "\n";
                    if (!allowed && r.status != 403)
                        failures += what + " as " + role + ": " + std::to_string(r.status) + " (expected 403)\n";
                }
            }
        }
        CPPUNIT_ASSERT_MESSAGE(failures, failures.empty());
        CPPUNIT_ASSERT_MESSAGE(std::to_string(routes), routes >= 40);
        // Unknown paths do not tell strangers what exists.
        CPPUNIT_ASSERT_EQUAL(401, http_request(node.port(), "GET", "/api/nothing-here", "", "application/json",
                                               {{"Authorization", ""}}).status);
        CPPUNIT_ASSERT_EQUAL(404, node.get("/api/nothing-here").status);
        // Sesam's client writes the scheme in lower case.
        CPPUNIT_ASSERT_EQUAL(200, http_request(node.port(), "GET", "/api/pipes", "", "application/json",
                                               {{"Authorization", "bearer " + tokens["reader"]}}).status);
        // A demotion takes effect at once, for tokens issued before it.
        CPPUNIT_ASSERT_EQUAL(200, node.put("/api/auth/users/developer1", R"({"role":"reader"})").status);
        CPPUNIT_ASSERT_EQUAL(403, http_request(node.port(), "PUT", "/api/env", "{}", "application/json",
                                               bearer(tokens["developer"])).status);
        // A deleted user's tokens stop working.
        CPPUNIT_ASSERT_EQUAL(200, node.del("/api/auth/users/developer1").status);
        CPPUNIT_ASSERT_EQUAL(401, http_request(node.port(), "GET", "/api/pipes", "", "application/json",
                                               bearer(tokens["developer"])).status);
        // Wrong passwords and unknown users get the same 401.
        HttpResponse wrong = http_request(node.port(), "POST", "/api/auth/token",
                                          R"({"username":"admin","password":"nope"})", "application/json",
                                          {{"Authorization", ""}});
        HttpResponse unknown = http_request(node.port(), "POST", "/api/auth/token",
                                            R"({"username":"nobody","password":"nope"})", "application/json",
                                            {{"Authorization", ""}});
        CPPUNIT_ASSERT_EQUAL(401, wrong.status);
        CPPUNIT_ASSERT_EQUAL(wrong.body, unknown.body);
    }

    // Two nodes on one PostgreSQL (the scale-out setup, sharing jwt.key as docs/security.md
    // says): a token revoked and a user deleted on one node are refused by the other within
    // Auth::kRefreshMicros, without a restart.
    void testRevocationReachesNodesSharingStorage() {
        TempDir dir;
        const std::string dsn = sluice::test::fresh_postgres_database("shared_auth");
        NodeProcess first(dir / "a", {"--postgres", dsn});
        first.start();
        std::filesystem::create_directories(dir / "b");
        for (const char* key : {"jwt.key", "secrets.key"}) {
            std::filesystem::copy_file(dir / "a" / key, dir / "b" / key);
            std::filesystem::permissions(dir / "b" / key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                         std::filesystem::perm_options::replace);
        }
        NodeProcess second(dir / "b", {"--postgres", dsn});
        second.start();
        HttpResponse created = first.post("/api/auth/tokens", R"({"name":"ci","role":"reader"})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(created.body, 201, created.status);
        const std::string token = created.json()["token"].GetString();
        const std::string id = created.json()["id"].GetString();
        add_user(first, "temp", "reader");
        // The user is created on the first node and logs in on the second, once it has re-read.
        std::this_thread::sleep_for(std::chrono::microseconds(sluice::kernel::Auth::kRefreshMicros + 200'000));
        const std::string temp = login(second, "temp", "password-of-temp");
        auto status_on_second = [&](const std::string& bearer_token) {
            return http_request(second.port(), "GET", "/api/pipes", "", "application/json", bearer(bearer_token)).status;
        };
        // Seen by the second node (at most one refresh interval after the change).
        auto eventually = [&](const std::string& bearer_token, int expected) {
            int status = 0;
            for (int i = 0; i < 100 && (status = status_on_second(bearer_token)) != expected; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            return status;
        };
        CPPUNIT_ASSERT_EQUAL(200, eventually(token, 200));
        CPPUNIT_ASSERT_EQUAL(200, status_on_second(temp));
        CPPUNIT_ASSERT_EQUAL(200, first.del("/api/auth/tokens/" + id).status);
        CPPUNIT_ASSERT_EQUAL(200, first.del("/api/auth/users/temp").status);
        CPPUNIT_ASSERT_EQUAL(401, eventually(token, 401));
        CPPUNIT_ASSERT_EQUAL(401, eventually(temp, 401));
    }

    void testApiTokensAndRevocation() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        HttpResponse created = node.post("/api/auth/tokens", R"({"name":"ci","role":"reader"})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(created.body, 201, created.status);
        JsonDocument doc = created.json();
        const std::string token = doc["token"].GetString();
        const std::string id = doc["id"].GetString();
        CPPUNIT_ASSERT_EQUAL(200, http_request(node.port(), "GET", "/api/pipes", "", "application/json", bearer(token)).status);
        CPPUNIT_ASSERT_EQUAL(403, http_request(node.port(), "PUT", "/api/env", "{}", "application/json", bearer(token)).status);
        JsonDocument who = http_request(node.port(), "GET", "/api/auth/whoami", "", "application/json", bearer(token)).json();
        CPPUNIT_ASSERT_EQUAL(std::string("reader"), std::string(who["role"].GetString()));
        CPPUNIT_ASSERT_EQUAL(id, std::string(who["token_id"].GetString()));
        // Listed by name and id, never with the token itself.
        HttpResponse list = node.get("/api/auth/tokens");
        CPPUNIT_ASSERT(contains(list.body, id) && contains(list.body, "\"ci\""));
        CPPUNIT_ASSERT(!contains(list.body, token));
        CPPUNIT_ASSERT_EQUAL(200, node.del("/api/auth/tokens/" + id).status);
        CPPUNIT_ASSERT_EQUAL(401, http_request(node.port(), "GET", "/api/pipes", "", "application/json", bearer(token)).status);
        CPPUNIT_ASSERT_EQUAL(404, node.del("/api/auth/tokens/" + id).status);
        // Users are listed without hashes.
        HttpResponse users = node.get("/api/auth/users");
        CPPUNIT_ASSERT_EQUAL(200, users.status);
        CPPUNIT_ASSERT(contains(users.body, "\"admin\"") && !contains(users.body, "hash") && !contains(users.body, "salt"));
    }

    void testGeneratedAdminPasswordAndKeyFiles() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.set_admin_password(std::nullopt);
        node.start();  // logs in with the generated password read from the file
        const fs::path file = dir / "data" / "admin-password";
        CPPUNIT_ASSERT_EQUAL(0600, mode_of(file));
        CPPUNIT_ASSERT_EQUAL(0600, mode_of(dir / "data" / "jwt.key"));
        CPPUNIT_ASSERT_EQUAL(0600, mode_of(dir / "data" / "secrets.key"));
        CPPUNIT_ASSERT(node.password().size() >= 16);
        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/pipes").status);
        // The path is printed, the password is not.
        CPPUNIT_ASSERT_MESSAGE(node.log(), contains(node.log(), file.string()));
        CPPUNIT_ASSERT(!contains(node.log(), node.password()));
        // A restart (memory storage: users gone) keeps the handed-out password working.
        node.stop();
        node.start();
        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/pipes").status);
        // A leaked key is refused rather than used.
        node.stop();
        fs::permissions(dir / "data" / "jwt.key", fs::perms::group_read, fs::perm_options::add);
        bool refused = false;
        try {
            node.start();
        } catch (const std::exception& e) {
            refused = contains(e.what(), "chmod 600");
        }
        CPPUNIT_ASSERT(refused);
    }

    void testOpenEndpointsPerPipe() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        HttpResponse put = node.put("/api/config", R"([
          {"_id": "open-in", "type": "pipe", "source": {"type": "http_endpoint", "anonymous_access": true}},
          {"_id": "closed-in", "type": "pipe", "source": {"type": "http_endpoint"}},
          {"_id": "open-out", "type": "pipe", "source": {"type": "dataset", "dataset": "open-in"},
           "sink": {"type": "http_endpoint", "anonymous_access": true}},
          {"_id": "closed-out", "type": "pipe", "source": {"type": "dataset", "dataset": "open-in"},
           "sink": {"type": "http_endpoint"}}
        ])");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(put.body, 200, put.status);
        const std::map<std::string, std::string> anonymous = {{"Authorization", ""}};
        CPPUNIT_ASSERT_EQUAL(200, http_request(node.port(), "POST", "/api/receivers/open-in/entities", R"([{"_id":"1"}])",
                                               "application/json", anonymous).status);
        CPPUNIT_ASSERT_EQUAL(401, http_request(node.port(), "POST", "/api/receivers/closed-in/entities",
                                               R"([{"_id":"1"}])", "application/json", anonymous).status);
        HttpResponse out = http_request(node.port(), "GET", "/api/publishers/open-out/entities", "", "application/json",
                                        anonymous);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(out.body, 200, out.status);
        CPPUNIT_ASSERT(contains(out.body, "\"1\""));
        CPPUNIT_ASSERT_EQUAL(401, http_request(node.port(), "GET", "/api/publishers/closed-out/entities", "",
                                               "application/json", anonymous).status);
        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/publishers/closed-out/entities").status);
        // Opening a publisher opens nothing else of the pipe.
        CPPUNIT_ASSERT_EQUAL(401, http_request(node.port(), "GET", "/api/pipes/open-out", "", "application/json",
                                               anonymous).status);
    }

    void testSecretNeverLeaks() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory", "--plugin-dir",
                                        std::string(SLUICE_TEST_BINARY_DIR) + "/lib/sluice/fixtures-security"});
        node.start();
        const std::string secret = "sup3r-s3cret-Value-4711";
        CPPUNIT_ASSERT_EQUAL(200, node.put("/api/secrets", R"({"db-password": ")" + secret + R"("})").status);
        HttpResponse put = node.put("/api/config", R"J([
          {"_id": "leaky", "type": "pipe", "pump": {"mode": "manual"},
           "source": {"type": "fixture_leaks_config", "password": "$SECRET(db-password)"}}
        ])J");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(put.body, 200, put.status);
        CPPUNIT_ASSERT_EQUAL(200, node.post("/api/pipes/leaky/pump", R"({"operation":"start"})").status);
        node.wait_for_pipe_runs("leaky");
        HttpResponse pump = node.get("/api/pipes/leaky/pump");
        // The run failed with the plugin's message, the value masked.
        CPPUNIT_ASSERT_MESSAGE(pump.body, contains(pump.body, "cannot connect with") && contains(pump.body, "********"));
        // Entities computed on demand fail through the error path too.
        HttpResponse stage = node.get("/api/pipes/leaky/entities");
        CPPUNIT_ASSERT(stage.status >= 400);
        CPPUNIT_ASSERT(node.post("/api/pipes/leaky/run-tree", "{}").status < 300);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));

        // Every answer: each GET of the route table (placeholders → the pipe), the execution log,
        // the secret list, the config.
        std::string seen = stage.body + pump.body;
        JsonDocument spec = node.get("/api/openapi.json").json();
        for (auto p = spec["paths"].MemberBegin(); p != spec["paths"].MemberEnd(); ++p) {
            if (!p->value.HasMember("get")) continue;
            std::string path = p->name.GetString();
            for (size_t open; (open = path.find('{')) != std::string::npos;)
                path.replace(open, path.find('}', open) - open + 1, "leaky");
            seen += node.get(path).body;
        }
        seen += node.get("/api/datasets/system:pump_execution:leaky/entities").body;
        CPPUNIT_ASSERT(contains(seen, "db-password"));          // names are listed
        CPPUNIT_ASSERT(contains(seen, "$SECRET(db-password)"));  // the config shows the reference
        CPPUNIT_ASSERT_MESSAGE("secret value in an API answer", !contains(seen, secret));
        node.stop();
        CPPUNIT_ASSERT_MESSAGE("secret value in the log", !contains(node.log(), secret));
        CPPUNIT_ASSERT_MESSAGE(node.log(), contains(node.log(), "********"));
    }

    void testLimits() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory", "--max-body-bytes", "1048576", "--request-timeout", "2"});
        node.start();
        // Body over the limit (Content-Length known up front).
        HttpResponse big = node.post("/api/pipes", std::string(2 * 1024 * 1024, ' '));
        CPPUNIT_ASSERT_EQUAL_MESSAGE(big.body, 413, big.status);
        CPPUNIT_ASSERT(contains(big.body, "request body too large"));
        // Body over the limit without a Content-Length (chunked): refused while it streams in,
        // and nothing of it written.
        {
            Poco::Net::StreamSocket chunked(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(node.port())));
            chunked.setReceiveTimeout(Poco::Timespan(30, 0));
            const std::string head = "POST /api/datasets/chunked/entities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                     node.token() + "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            chunked.sendBytes(head.data(), static_cast<int>(head.size()));
            std::string body = "[";
            for (int i = 0; body.size() < 2 * 1024 * 1024; ++i)
                body += (i ? "," : "") + std::string("{\"_id\":\"") + std::to_string(i) + "\",\"pad\":\"" + std::string(200, 'x') + "\"}";
            body += "]";
            try {
                for (size_t at = 0; at < body.size(); at += 65536) {
                    const std::string piece = body.substr(at, 65536);
                    char size_line[32];
                    std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
                    const std::string chunk = size_line + piece + "\r\n";
                    chunked.sendBytes(chunk.data(), static_cast<int>(chunk.size()));
                }
                chunked.sendBytes("0\r\n\r\n", 5);
            } catch (const Poco::Exception&) {
                // The node may answer and close before the whole body is sent.
            }
            std::string answer;
            char buffer[4096];
            try {
                for (int n; (n = chunked.receiveBytes(buffer, sizeof buffer)) > 0;) answer.append(buffer, static_cast<size_t>(n));
            } catch (const Poco::Exception&) {
            }
            CPPUNIT_ASSERT_MESSAGE(answer, answer.rfind("HTTP/1.1 413", 0) == 0);
            CPPUNIT_ASSERT(contains(answer, "request body too large"));
            CPPUNIT_ASSERT_EQUAL(404, node.get("/api/datasets/chunked").status);
        }
        // Nesting deeper than the parser should recurse.
        const std::string deep = std::string(100000, '[') + std::string(100000, ']');
        HttpResponse nested = node.put("/api/env", deep);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(nested.body, 400, nested.status);
        CPPUNIT_ASSERT(contains(nested.body, "nested too deeply"));
        CPPUNIT_ASSERT_EQUAL(400, node.put("/api/config", deep).status);
        // Numbers RapidJSON 1.1.0 misparses are refused rather than stored wrong.
        CPPUNIT_ASSERT_EQUAL(400, node.put("/api/env", R"({"a": 0e188})").status);
        CPPUNIT_ASSERT_EQUAL(400, node.put("/api/env", R"({"a": -0.000E-5})").status);
        CPPUNIT_ASSERT_EQUAL(400, node.put("/api/env", "{\"a\": 3" + std::string(120, '8') + "E300}").status);
        CPPUNIT_ASSERT_EQUAL(400, node.put("/api/config", "[1e309]").status);
        HttpResponse fine = node.put("/api/env", R"({"a": 0, "b": 0.0, "c": 1e300, "d": 0.5e-3, "e": "0e188", "f": -12.5E2})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(fine.body, 200, fine.status);
        CPPUNIT_ASSERT(contains(fine.body, "1e300") && contains(fine.body, "\"0e188\""));
        // Malformed JSON.
        HttpResponse malformed = node.post("/api/pipes", "{\"_id\": ");
        CPPUNIT_ASSERT_EQUAL(400, malformed.status);
        CPPUNIT_ASSERT(contains(malformed.body, "malformed JSON"));
        // Headers over the limit: a JSON 431.
        std::map<std::string, std::string> headers;
        for (int i = 0; i < 40; ++i) headers["X-Padding-" + std::to_string(i)] = std::string(600, 'x');
        HttpResponse fat = http_request(node.port(), "GET", "/api/pipes", "", "application/json", headers);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(fat.body, 431, fat.status);
        CPPUNIT_ASSERT(contains(fat.body, "header"));
        // A client stalling mid-request neither blocks others nor keeps its connection.
        Poco::Net::StreamSocket slow(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(node.port())));
        const std::string partial = "POST /api/pipes HTTP/1.1\r\nHost: x\r\n";
        slow.sendBytes(partial.data(), static_cast<int>(partial.size()));
        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/pipes").status);
        slow.setReceiveTimeout(Poco::Timespan(15, 0));
        char buffer[512];
        const auto started = std::chrono::steady_clock::now();
        try {
            while (slow.receiveBytes(buffer, sizeof buffer) > 0) {
            }
        } catch (const Poco::Exception&) {
        }
        CPPUNIT_ASSERT(std::chrono::steady_clock::now() - started < std::chrono::seconds(12));
        // And the node keeps answering.
        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/ping").status);
        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/pipes").status);
    }

    void testTlsWithSelfSignedCertificate() {
        TempDir dir;
        const fs::path cert = dir / "cert.pem", key = dir / "key.pem";
        CommandResult gen = run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                                         "-subj", "/CN=localhost", "-addext",
                                         "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key.string(),
                                         "-out", cert.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(gen.output, 0, gen.status);
        NodeProcess node(dir / "data", {"--storage", "memory", "--tls-cert", cert.string(), "--tls-key", key.string()});
        node.start();  // pings and logs in over HTTPS
        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/pipes").status);
        // The handshake verifies against the self-signed certificate as the trust anchor.
        CommandResult s_client = run_command(
            {"sh", "-c",
             "openssl s_client -connect 127.0.0.1:" + std::to_string(node.port()) + " -CAfile " + cert.string() +
                 " -verify_return_error -verify_ip 127.0.0.1 -brief </dev/null"});
        CPPUNIT_ASSERT_MESSAGE(s_client.output, s_client.status == 0);
        CPPUNIT_ASSERT_MESSAGE(s_client.output, contains(s_client.output, "Verification: OK"));
        // Plain HTTP on the TLS port gets no API answer.
        bool plain_answered = false;
        try {
            Poco::Net::StreamSocket plain(
                Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(node.port())));
            const std::string request = "GET /api/ping HTTP/1.1\r\nHost: x\r\n\r\n";
            plain.sendBytes(request.data(), static_cast<int>(request.size()));
            plain.setReceiveTimeout(Poco::Timespan(5, 0));
            char buffer[256];
            int n = plain.receiveBytes(buffer, sizeof buffer);
            plain_answered = n > 0 && contains(std::string(buffer, static_cast<size_t>(n)), "pong");
        } catch (const Poco::Exception&) {
        }
        CPPUNIT_ASSERT(!plain_answered);
    }

    void testCliLogin() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        const std::string url = "http://127.0.0.1:" + std::to_string(node.port());
        const std::string credentials = (dir / "credentials").string();
        const std::string sluice = sluice_binary().string();
        fs::create_directories(dir / "project");
        // Without a token the client is refused, and says so.
        CommandResult r = run_command({"env", "-u", "SLUICE_TOKEN", "SLUICE_CREDENTIALS=" + credentials, sluice,
                                       "download", (dir / "project").string(), "--node", url});
        CPPUNIT_ASSERT_MESSAGE(r.output, r.status != 0 && contains(r.output, "401"));
        r = run_command({"env", "SLUICE_CREDENTIALS=" + credentials, "SLUICE_PASSWORD=wrong-password", sluice, "login",
                         "--node", url});
        CPPUNIT_ASSERT_MESSAGE(r.output, r.status != 0 && contains(r.output, "401"));
        r = run_command({"env", "SLUICE_CREDENTIALS=" + credentials,
                         std::string("SLUICE_PASSWORD=") + NodeProcess::kTestAdminPassword, sluice, "login", "--node", url});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
        CPPUNIT_ASSERT_EQUAL(0600, mode_of(credentials));
        CPPUNIT_ASSERT(!contains(r.output, NodeProcess::kTestAdminPassword));
        r = run_command({"env", "-u", "SLUICE_TOKEN", "SLUICE_CREDENTIALS=" + credentials, sluice, "download",
                         (dir / "project").string(), "--node", url});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(r.output, 0, r.status);
    }

    // With a key pair configured, tokens are RS256 (checked with openssl against the public key)
    // and nothing else is accepted — notably not HS256 "signed" with the public key.
    void testRs256KeyPair() {
        TempDir dir;
        const fs::path priv = dir / "jwt-private.pem", pub = dir / "jwt-public.pem";
        CommandResult gen = run_command({"sh", "-c", "openssl genrsa -out " + priv.string() + " 2048 && openssl rsa -in " +
                                                         priv.string() + " -pubout -out " + pub.string()});
        CPPUNIT_ASSERT_EQUAL_MESSAGE(gen.output, 0, gen.status);
        NodeProcess node(dir / "data", {"--storage", "memory", "--jwt-private-key", priv.string()});
        node.start();
        CPPUNIT_ASSERT_EQUAL(200, node.get("/api/pipes").status);
        const std::string token = node.token();
        const size_t dot = token.find('.'), last = token.rfind('.');
        CPPUNIT_ASSERT(contains(*security::base64url_decode(token.substr(0, dot)), "\"RS256\""));
        write_text(dir / "signed.txt", token.substr(0, last));
        write_text(dir / "signature.bin", *security::base64url_decode(token.substr(last + 1)));
        CommandResult verified = run_command({"openssl", "dgst", "-sha256", "-verify", pub.string(), "-signature",
                                              (dir / "signature.bin").string(), (dir / "signed.txt").string()});
        CPPUNIT_ASSERT_MESSAGE(verified.output, contains(verified.output, "Verified OK"));
        JsonDocument claims(rapidjson::kObjectType);
        claims.AddMember("sub", "admin", claims.GetAllocator());
        claims.AddMember("exp", now_seconds() + 3600, claims.GetAllocator());
        const std::string confused = security::sign_jwt_hs256(read_text(pub), claims);
        CPPUNIT_ASSERT_EQUAL(401, http_request(node.port(), "GET", "/api/pipes", "", "application/json",
                                               bearer(confused)).status);
        // API tokens are RS256 too.
        HttpResponse created = node.post("/api/auth/tokens", R"({"name":"ci"})");
        CPPUNIT_ASSERT_EQUAL(201, created.status);
        CPPUNIT_ASSERT_EQUAL(200, http_request(node.port(), "GET", "/api/pipes", "", "application/json",
                                               bearer(created.json()["token"].GetString())).status);
    }

    // A reader with developer rights in workspace "crm-" changes and runs crm-* pipes only.
    void testWorkspaceGrants() {
        TempDir dir;
        NodeProcess node(dir / "data", {"--storage", "memory"});
        node.start();
        const std::string pipe = R"({"type": "pipe", "pump": {"mode": "manual"},
                                     "source": {"type": "embedded", "entities": [{"_id": "1"}]}})";
        auto with_id = [&](const std::string& id) { return "{\"_id\": \"" + id + "\", " + pipe.substr(1); };
        CPPUNIT_ASSERT_EQUAL(200, node.put("/api/config", "[" + with_id("crm-a") + "," + with_id("erp-b") + "]").status);
        HttpResponse added = node.post("/api/auth/users", R"({"username": "crmdev", "password": "password-of-crmdev",
                                                             "role": "reader", "workspaces": {"crm-": "developer"}})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(added.body, 201, added.status);
        CPPUNIT_ASSERT(contains(added.body, R"("workspaces":{"crm-":"developer"})"));
        CPPUNIT_ASSERT_EQUAL(400, node.put("/api/auth/users/crmdev", R"({"workspaces": {"x-": "root"}})").status);
        const auto as = bearer(login(node, "crmdev", "password-of-crmdev"));
        auto call = [&](const std::string& method, const std::string& path, const std::string& body) {
            return http_request(node.port(), method, path, body, "application/json", as).status;
        };
        CPPUNIT_ASSERT_EQUAL(200, call("GET", "/api/pipes", ""));
        CPPUNIT_ASSERT_EQUAL(200, call("PUT", "/api/pipes/crm-a/config", with_id("crm-a")));
        CPPUNIT_ASSERT_EQUAL(403, call("PUT", "/api/pipes/erp-b/config", with_id("erp-b")));
        CPPUNIT_ASSERT_EQUAL(200, call("POST", "/api/pipes/crm-a/pump", R"({"operation": "disable"})"));
        CPPUNIT_ASSERT_EQUAL(403, call("POST", "/api/pipes/erp-b/pump", R"({"operation": "disable"})"));
        CPPUNIT_ASSERT_EQUAL(403, call("PUT", "/api/config", "[]"));  // node-wide: still a reader
        CPPUNIT_ASSERT_EQUAL(403, call("GET", "/api/secrets", ""));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(SecurityTest);

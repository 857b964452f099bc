// Who may call what (docs/security.md): the access policy every route goes through, and the
// endpoints for tokens, users and API tokens.
#include <sluice/kernel/node.hpp>

#include "api_internal.hpp"

#include <Poco/Logger.h>

namespace sluice::kernel::api {

using security::Role;

void check_json_depth(std::string_view text, size_t max_depth) {
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "JSON nested too deeply",
                                "more than " + std::to_string(max_depth) + " levels of arrays/objects");
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
}

void check_json_numbers(std::string_view text) {
    // The SDK's rule (sluice/entity.hpp), answered as a JSON 400 (docs/security.md, "Findings").
    const std::string_view bad = sluice::find_unsafe_json_number(text);
    if (bad.empty()) return;
    throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "unsupported number", sluice::unsafe_json_number_reason(bad));
}

namespace {

// Exceptions to the derived rules, by exact method + route pattern ("*": any method).
struct Override {
    const char* method;
    const char* pattern;
    bool is_public;
    Role role;
};
const Override kOverrides[] = {
    {"GET", "/api/ping", true, Role::reader},
    {"GET", "/api/health", true, Role::reader},
    {"POST", "/api/auth/token", true, Role::reader},  // logging in is how one gets a token
    // The operator page is static HTML + script; every call it makes carries the user's token.
    {"GET", "/ui", true, Role::reader},
    {"GET", "/", true, Role::reader},
    {"GET", "/api/auth/whoami", false, Role::reader},
    {"POST", "/api/admin", false, Role::admin},          // restarts every pump
    {"POST", "/api/receivers/{id}/entities", false, Role::operator_},  // feeding data, not changing config
    // Resolving a tripped circuit breaker (commit / roll back the staged run) is operations work.
    {"POST", "/api/datasets/{id}", false, Role::operator_},
};

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Segments naming an operation on pumps/runs (POST /api/pipes/{id}/pump, run-tree,
// run-all-pipes, stop-run-all-pipes, and any run-/start-/stop- route added later).
bool is_run_operation(const std::string& pattern) {
    for (const std::string& segment : split_path(pattern)) {
        if (segment == "pump" || starts_with(segment, "run") || starts_with(segment, "start") ||
            starts_with(segment, "stop") || starts_with(segment, "trigger"))
            return true;
    }
    return false;
}

// publishers/receivers of a pipe whose endpoint is opened with "anonymous_access": true.
bool anonymous_endpoint(Node& node, const std::string& pattern, const Request& req) {
    const bool publisher = starts_with(pattern, "/api/publishers/{");
    const bool receiver = starts_with(pattern, "/api/receivers/{");
    if ((!publisher && !receiver) || req.params.empty()) return false;
    auto config = node.config();
    const PipeConfig* pipe = config->pipe(req.params[0]);
    if (!pipe || !pipe->effective || !pipe->effective->IsObject()) return false;
    const Json* endpoint = find_member(*pipe->effective, publisher ? "sink" : "source");
    return endpoint && endpoint->IsObject() && bool_or(*endpoint, "anonymous_access", false);
}

}  // namespace

Access required_access(const std::string& method, const std::string& pattern) {
    for (const Override& o : kOverrides) {
        if ((std::string(o.method) == "*" || method == o.method) && pattern == o.pattern) return {o.is_public, o.role};
    }
    // Users, tokens and secrets: admins only, reading included (token and user lists are
    // sensitive too).
    if (starts_with(pattern, "/api/auth/") || pattern == "/api/secrets" || starts_with(pattern, "/api/secrets/"))
        return {false, Role::admin};
    if (method == "GET" || method == "HEAD") return {false, Role::reader};
    if (is_run_operation(pattern)) return {false, Role::operator_};
    // Every other change (config, pipes, systems, env, datasets, DTL preview) is development.
    return {false, Role::developer};
}

void authorize(Node& node, const Router::Entry* route, Request& req, HTTPServerResponse& response) {
    const std::string& method = req.http.getMethod();
    Access access = route ? required_access(method, route->pattern) : Access{false, Role::reader};
    if (access.is_public || (route && anonymous_endpoint(node, route->pattern, req))) return;
    try {
        req.principal = node.auth().authenticate(req.http.get("Authorization", ""));
    } catch (const AuthError& e) {
        response.set("WWW-Authenticate", "Bearer realm=\"sluice\"");
        throw HttpError(HTTPResponse::HTTP_UNAUTHORIZED, "unauthorized", e.what());
    }
    Role granted = req.principal->role;
    // Workspace grants apply to routes addressing one pipe, system or dataset by id.
    for (const char* family : {"/api/pipes/{", "/api/systems/{", "/api/datasets/{", "/api/publishers/{",
                               "/api/receivers/{"}) {
        if (route && starts_with(route->pattern, family) && !req.params.empty()) {
            granted = req.principal->role_for(req.params[0]);
            break;
        }
    }
    if (!security::role_allows(granted, access.role))
        throw HttpError(HTTPResponse::HTTP_FORBIDDEN, "forbidden",
                        std::string("role '") + security::role_name(granted) + "' may not " + method +
                            " " + (route ? route->pattern : std::string()) + " (needs '" +
                            security::role_name(access.role) + "')");
}

namespace {

Json user_json(const UserInfo& u, JsonAllocator& a) {
    Json o(rapidjson::kObjectType);
    o.AddMember("username", Json(u.name.c_str(), a), a);
    o.AddMember("role", Json(security::role_name(u.role), a), a);
    Json w(rapidjson::kObjectType);
    for (const WorkspaceGrant& g : u.workspaces)
        w.AddMember(Json(g.prefix.c_str(), a), Json(security::role_name(g.role), a), a);
    o.AddMember("workspaces", w, a);
    return o;
}

// The "workspaces" object of a JSON body (forms cannot carry one).
std::optional<JsonDocument> workspaces_field(const std::map<std::string, std::string>& fields) {
    auto it = fields.find("workspaces");
    if (it == fields.end()) return std::nullopt;
    JsonDocument doc;
    doc.Parse(it->second.data(), it->second.size());
    if (doc.HasParseError())
        throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid workspaces", "expected {\"<id prefix>\": \"<role>\"}");
    return doc;
}

Json token_json(const ApiTokenInfo& t, JsonAllocator& a) {
    Json o(rapidjson::kObjectType);
    o.AddMember("id", Json(t.id.c_str(), a), a);
    o.AddMember("name", Json(t.name.c_str(), a), a);
    o.AddMember("user", Json(t.user.c_str(), a), a);
    o.AddMember("role", Json(security::role_name(t.role), a), a);
    o.AddMember("created", t.created, a);
    if (t.expires) o.AddMember("expires", t.expires, a);
    return o;
}

Role role_field(const std::map<std::string, std::string>& fields, Role fallback) {
    auto it = fields.find("role");
    if (it == fields.end() || it->second.empty()) return fallback;
    auto role = security::role_from_name(it->second);
    if (!role)
        throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid role",
                        "'" + it->second + "' is not one of admin, developer, operator, reader");
    return *role;
}

int64_t ttl_field(const std::map<std::string, std::string>& fields, int64_t fallback) {
    auto it = fields.find("expires_in");
    if (it == fields.end() || it->second.empty()) return fallback;
    try {
        return std::stoll(it->second);
    } catch (const std::exception&) {
        throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid expires_in", "expected seconds");
    }
}

std::string field(const std::map<std::string, std::string>& fields, const char* name) {
    auto it = fields.find(name);
    return it == fields.end() ? std::string() : it->second;
}

void send_users(Node& node, HTTPServerResponse& res, HTTPResponse::HTTPStatus status = HTTPResponse::HTTP_OK) {
    JsonDocument doc(rapidjson::kArrayType);
    for (const UserInfo& u : node.auth().users()) doc.PushBack(user_json(u, doc.GetAllocator()), doc.GetAllocator());
    send_json(res, doc, status);
}

}  // namespace

void register_auth_routes(Router& r, Node& node) {
    r.add("POST", "/api/auth/token", [&node](Request& req, HTTPServerResponse& res) {
        auto fields = request_fields(req);
        std::string user = field(fields, "username");
        if (user.empty()) user = field(fields, "user");
        const std::string password = field(fields, "password");
        const int64_t ttl = ttl_field(fields, Auth::kDefaultTtlSeconds);
        std::string token;
        try {
            token = node.auth().login(user, password, ttl);
        } catch (const AuthError& e) {
            Poco::Logger::get("sluice.auth").warning("failed login for user '" + user + "'");
            res.set("WWW-Authenticate", "Bearer realm=\"sluice\"");
            throw HttpError(HTTPResponse::HTTP_UNAUTHORIZED, "unauthorized", e.what());
        }
        Principal p = node.auth().authenticate("Bearer " + token);
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        doc.AddMember("access_token", Json(token.c_str(), a), a);
        doc.AddMember("token_type", "bearer", a);
        doc.AddMember("expires_in", ttl, a);
        doc.AddMember("user", Json(p.user.c_str(), a), a);
        doc.AddMember("role", Json(security::role_name(p.role), a), a);
        send_json(res, doc);
    });
    r.add("GET", "/api/auth/whoami", [](Request& req, HTTPServerResponse& res) {
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        doc.AddMember("user", Json(req.principal->user.c_str(), a), a);
        doc.AddMember("role", Json(security::role_name(req.principal->role), a), a);
        if (!req.principal->token_id.empty())
            doc.AddMember("token_id", Json(req.principal->token_id.c_str(), a), a);
        send_json(res, doc);
    });

    // ---- users ----------------------------------------------------------------------------
    r.add("GET", "/api/auth/users", [&node](Request&, HTTPServerResponse& res) { send_users(node, res); });
    r.add("POST", "/api/auth/users", [&node](Request& req, HTTPServerResponse& res) {
        auto fields = request_fields(req);
        auto workspaces = workspaces_field(fields);
        try {
            node.auth().put_user(field(fields, "username"), field(fields, "password"), role_field(fields, Role::reader),
                                 true, workspaces ? &*workspaces : nullptr);
        } catch (const std::invalid_argument& e) {
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid user", e.what());
        }
        send_users(node, res, HTTPResponse::HTTP_CREATED);
    });
    r.add("PUT", "/api/auth/users/{name}", [&node](Request& req, HTTPServerResponse& res) {
        auto fields = request_fields(req);
        std::optional<Role> role;
        if (!field(fields, "role").empty()) role = role_field(fields, Role::reader);
        auto workspaces = workspaces_field(fields);
        try {
            node.auth().put_user(req.params[0], field(fields, "password"), role, false,
                                 workspaces ? &*workspaces : nullptr);
        } catch (const std::invalid_argument& e) {
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid user", e.what());
        }
        send_users(node, res);
    });
    r.add("DELETE", "/api/auth/users/{name}", [&node](Request& req, HTTPServerResponse& res) {
        if (req.principal && req.principal->user == req.params[0])
            throw HttpError(HTTPResponse::HTTP_CONFLICT, "cannot delete yourself",
                            "another admin has to delete user '" + req.params[0] + "'");
        if (!node.auth().delete_user(req.params[0]))
            throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such user", "'" + req.params[0] + "' does not exist");
        send_users(node, res);
    });

    // ---- long-lived API tokens --------------------------------------------------------------
    r.add("GET", "/api/auth/tokens", [&node](Request&, HTTPServerResponse& res) {
        JsonDocument doc(rapidjson::kArrayType);
        for (const ApiTokenInfo& t : node.auth().tokens()) doc.PushBack(token_json(t, doc.GetAllocator()), doc.GetAllocator());
        send_json(res, doc);
    });
    r.add("POST", "/api/auth/tokens", [&node](Request& req, HTTPServerResponse& res) {
        auto fields = request_fields(req);
        const std::string name = field(fields, "name");
        if (name.empty()) throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "missing 'name'", "name the token");
        std::pair<std::string, ApiTokenInfo> created;
        try {
            created = node.auth().create_token(*req.principal, name, role_field(fields, req.principal->role),
                                               ttl_field(fields, 0));
        } catch (const std::invalid_argument& e) {
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid token request", e.what());
        }
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        Json o = token_json(created.second, a);
        doc.CopyFrom(o, a);
        doc.AddMember("token", Json(created.first.c_str(), a), a);
        send_json(res, doc, HTTPResponse::HTTP_CREATED);
    });
    // ---- secrets key rotation ---------------------------------------------------------------
    r.add("POST", "/api/secrets/rotate-key", [&node](Request&, HTTPServerResponse& res) {
        node.rotate_secrets_key();
        JsonDocument doc(rapidjson::kObjectType);
        doc.AddMember("rotated", true, doc.GetAllocator());
        doc.AddMember("secrets", static_cast<uint64_t>(node.environment().secret_names().size()), doc.GetAllocator());
        send_json(res, doc);
    });

    r.add("DELETE", "/api/auth/tokens/{id}", [&node](Request& req, HTTPServerResponse& res) {
        if (!node.auth().revoke_token(req.params[0]))
            throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such token", "'" + req.params[0] + "' does not exist");
        send_json(res, R"({"revoked":true})");
    });
}

}  // namespace sluice::kernel::api

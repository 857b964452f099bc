#include <sluice/kernel/auth.hpp>
#include <sluice/kernel/dataset_store.hpp>

#include <Poco/Logger.h>

#include <chrono>
#include <cstdlib>
#include <fstream>

namespace sluice::kernel {

namespace fs = std::filesystem;
using security::Role;

namespace {

constexpr const char* kUsersKey = "node:users";
constexpr const char* kTokensKey = "node:api-tokens";

int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string trim_line(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

void validate_name(const std::string& name) {
    if (name.empty() || name.size() > 128) throw std::invalid_argument("a user name must be 1..128 characters");
    for (char c : name) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '@'))
            throw std::invalid_argument("a user name may contain letters, digits, '.', '_', '-' and '@' only");
    }
}

std::vector<WorkspaceGrant> grants_of(const Json& user) {
    std::vector<WorkspaceGrant> out;
    const Json* w = find_member(user, "workspaces");
    if (!w || !w->IsObject()) return out;
    for (auto it = w->MemberBegin(); it != w->MemberEnd(); ++it) {
        if (!it->value.IsString()) continue;
        if (auto role = security::role_from_name(as_view(it->value)))
            out.push_back({std::string(as_view(it->name)), *role});
    }
    return out;
}

}  // namespace

security::Role Principal::role_for(const std::string& id) const {
    Role best = role;
    for (const WorkspaceGrant& g : workspaces) {
        if (id.rfind(g.prefix, 0) == 0 && !security::role_allows(best, g.role)) best = g.role;
    }
    return best;
}

Auth::Auth(DatasetStore& store, const fs::path& data_dir, const fs::path& rs256_private_pem,
           const fs::path& rs256_public_pem)
    : store_(store),
      data_dir_(data_dir),
      keys_(rs256_private_pem.empty() && rs256_public_pem.empty()
                ? security::JwtKeys::hs256(security::load_or_create_key(data_dir / "jwt.key", 32))
                : security::JwtKeys::rs256(rs256_private_pem, rs256_public_pem)) {
    users_ = store_.state_get(kUsersKey);
    if (!users_.IsObject()) users_.SetObject();
    tokens_ = store_.state_get(kTokensKey);
    if (!tokens_.IsObject()) tokens_.SetObject();
}

std::optional<fs::path> Auth::bootstrap() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        refresh_locked(true);
        if (users_.MemberCount() > 0) return std::nullopt;
    }
    const fs::path file = data_dir_ / "admin-password";
    std::string password;
    std::optional<fs::path> written;
    if (const char* env = std::getenv("SLUICE_ADMIN_PASSWORD"); env && *env) {
        password = env;
    } else if (fs::exists(file)) {
        // Memory storage forgets users at restart; the password handed out before still works.
        std::ifstream in(file);
        std::getline(in, password);
        password = trim_line(password);
    }
    if (password.empty()) {
        password = security::base64url_encode(security::random_bytes(18));
        security::write_private_file(file, password + "\n");
        written = file;
    }
    put_user("admin", password, Role::admin, false);
    return written;
}

std::string Auth::login(const std::string& user, const std::string& password, int64_t ttl_seconds) {
    std::string salt, hash, role;
    int iterations = kIterations;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        refresh_locked(false);
        if (const Json* u = find_member(users_, user); u && u->IsObject()) {
            salt = security::base64url_decode(string_or(*u, "salt", "")).value_or("");
            hash = security::base64url_decode(string_or(*u, "hash", "")).value_or("");
            iterations = static_cast<int>(int_or(*u, "iterations", kIterations));
            role = string_or(*u, "role", "reader");
        }
    }
    // An unknown user costs the same PBKDF2 as a known one, so timing does not reveal names.
    const std::string computed =
        security::pbkdf2_sha256(password, salt.empty() ? std::string(16, '\0') : salt, iterations);
    if (hash.empty() || !security::constant_time_equal(computed, hash))
        throw AuthError("invalid username or password");
    JsonDocument claims(rapidjson::kObjectType);
    auto& a = claims.GetAllocator();
    const int64_t now = now_seconds();
    claims.AddMember("iss", "sluice", a);
    claims.AddMember("sub", Json(user.c_str(), a), a);
    claims.AddMember("role", Json(role.c_str(), a), a);
    claims.AddMember("iat", now, a);
    claims.AddMember("exp", now + std::max<int64_t>(1, ttl_seconds), a);
    return keys_.sign(claims);
}

Principal Auth::authenticate(const std::string& authorization) const {
    if (authorization.empty()) throw AuthError("missing bearer token (Authorization: Bearer <token>)");
    const size_t space = authorization.find(' ');
    std::string scheme = authorization.substr(0, space);
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme != "bearer" || space == std::string::npos)
        throw AuthError("expected an Authorization header of the form 'Bearer <token>'");
    std::string token = authorization.substr(space + 1);
    while (!token.empty() && token.front() == ' ') token.erase(0, 1);
    while (!token.empty() && token.back() == ' ') token.pop_back();
    JsonDocument claims;
    try {
        claims = keys_.verify(token, now_seconds());
    } catch (const security::JwtError& e) {
        throw AuthError(e.what());
    }
    Principal p;
    p.user = string_or(claims, "sub", "");
    std::lock_guard<std::mutex> lock(mutex_);
    refresh_locked(false);
    // Roles come from the current user record, so a demotion or deletion takes effect at once.
    const Json* user = find_member(users_, p.user);
    if (!user || !user->IsObject()) throw AuthError("the token's user does not exist any more");
    Role user_role = security::role_from_name(string_or(*user, "role", "reader")).value_or(Role::reader);
    p.role = user_role;
    p.workspaces = grants_of(*user);
    if (const Json* jti = find_member(claims, "jti"); jti && jti->IsString()) {
        p.token_id = std::string(as_view(*jti));
        const Json* record = find_member(tokens_, p.token_id);
        if (!record || !record->IsObject()) throw AuthError("the API token was revoked");
        Role token_role = security::role_from_name(string_or(*record, "role", "reader")).value_or(Role::reader);
        if (!security::role_allows(user_role, token_role)) token_role = user_role;
        p.role = token_role;
        // An API token carries its own (capped) role; workspace grants stay with logins.
        p.workspaces.clear();
    }
    return p;
}

std::vector<UserInfo> Auth::users() const {
    std::lock_guard<std::mutex> lock(mutex_);
    refresh_locked(false);
    std::vector<UserInfo> out;
    for (auto it = users_.MemberBegin(); it != users_.MemberEnd(); ++it)
        out.push_back({std::string(as_view(it->name)),
                       security::role_from_name(string_or(it->value, "role", "reader")).value_or(Role::reader),
                       grants_of(it->value)});
    return out;
}

void Auth::put_user(const std::string& name, const std::string& password, std::optional<Role> role, bool must_be_new,
                    const Json* workspaces) {
    validate_name(name);
    if (workspaces && !workspaces->IsNull()) {
        if (!workspaces->IsObject())
            throw std::invalid_argument("workspaces must be an object of \"<id prefix>\": \"<role>\"");
        for (auto it = workspaces->MemberBegin(); it != workspaces->MemberEnd(); ++it) {
            if (it->name.GetStringLength() == 0) throw std::invalid_argument("a workspace prefix may not be empty");
            if (!it->value.IsString() || !security::role_from_name(as_view(it->value)))
                throw std::invalid_argument("workspace '" + std::string(as_view(it->name)) +
                                            "': the role must be one of admin, developer, operator, reader");
        }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    refresh_locked(true);
    Json* existing = users_.HasMember(name.c_str()) ? &users_[name.c_str()] : nullptr;
    if (existing && must_be_new) throw std::invalid_argument("user '" + name + "' exists");
    if (!existing && password.empty()) throw std::invalid_argument("a new user needs a password");
    if (!password.empty() && password.size() < 8) throw std::invalid_argument("a password needs at least 8 characters");
    auto& a = users_.GetAllocator();
    Json record(rapidjson::kObjectType);
    if (existing) record.CopyFrom(*existing, a);
    if (!password.empty()) {
        const std::string salt = security::random_bytes(16);
        const std::string hash = security::pbkdf2_sha256(password, salt, kIterations);
        record.RemoveMember("salt");
        record.RemoveMember("hash");
        record.RemoveMember("iterations");
        record.AddMember("salt", Json(security::base64url_encode(salt).c_str(), a), a);
        record.AddMember("hash", Json(security::base64url_encode(hash).c_str(), a), a);
        record.AddMember("iterations", kIterations, a);
    }
    if (role || !existing) {
        record.RemoveMember("role");
        record.AddMember("role", Json(security::role_name(role.value_or(Role::reader)), a), a);
    }
    if (workspaces && !workspaces->IsNull()) {
        record.RemoveMember("workspaces");
        record.AddMember("workspaces", Json(*workspaces, a), a);
    }
    users_.RemoveMember(name.c_str());
    users_.AddMember(Json(name.c_str(), a), record, a);
    save_users_locked();
}

bool Auth::delete_user(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex_);
    refresh_locked(true);
    if (!users_.RemoveMember(name.c_str())) return false;
    save_users_locked();
    return true;
}

std::pair<std::string, ApiTokenInfo> Auth::create_token(const Principal& owner, const std::string& name, Role role,
                                                        int64_t ttl_seconds) {
    if (!security::role_allows(owner.role, role))
        throw std::invalid_argument(std::string("cannot create a token with role '") + security::role_name(role) +
                                    "' above your own ('" + security::role_name(owner.role) + "')");
    ApiTokenInfo info;
    info.id = security::hex_encode(security::random_bytes(12));
    info.name = name;
    info.user = owner.user;
    info.role = role;
    info.created = now_seconds();
    info.expires = ttl_seconds > 0 ? info.created + ttl_seconds : 0;
    JsonDocument claims(rapidjson::kObjectType);
    auto& ca = claims.GetAllocator();
    claims.AddMember("iss", "sluice", ca);
    claims.AddMember("sub", Json(info.user.c_str(), ca), ca);
    claims.AddMember("jti", Json(info.id.c_str(), ca), ca);
    claims.AddMember("iat", info.created, ca);
    if (info.expires) claims.AddMember("exp", info.expires, ca);
    std::lock_guard<std::mutex> lock(mutex_);
    refresh_locked(true);
    auto& a = tokens_.GetAllocator();
    Json record(rapidjson::kObjectType);
    record.AddMember("name", Json(info.name.c_str(), a), a);
    record.AddMember("user", Json(info.user.c_str(), a), a);
    record.AddMember("role", Json(security::role_name(role), a), a);
    record.AddMember("created", info.created, a);
    record.AddMember("expires", info.expires, a);
    tokens_.AddMember(Json(info.id.c_str(), a), record, a);
    save_tokens_locked();
    return {keys_.sign(claims), info};
}

std::vector<ApiTokenInfo> Auth::tokens() const {
    std::lock_guard<std::mutex> lock(mutex_);
    refresh_locked(false);
    std::vector<ApiTokenInfo> out;
    for (auto it = tokens_.MemberBegin(); it != tokens_.MemberEnd(); ++it) {
        ApiTokenInfo t;
        t.id = std::string(as_view(it->name));
        t.name = string_or(it->value, "name", "");
        t.user = string_or(it->value, "user", "");
        t.role = security::role_from_name(string_or(it->value, "role", "reader")).value_or(Role::reader);
        t.created = int_or(it->value, "created", 0);
        t.expires = int_or(it->value, "expires", 0);
        out.push_back(std::move(t));
    }
    return out;
}

bool Auth::revoke_token(const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex_);
    refresh_locked(true);
    if (!tokens_.RemoveMember(id.c_str())) return false;
    save_tokens_locked();
    return true;
}

std::string Auth::sign(const Json& claims) const { return keys_.sign(claims); }

void Auth::refresh_locked(bool force) const {
    const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now().time_since_epoch()).count();
    if (!force && now - refreshed_us_ < kRefreshMicros) return;
    try {
        JsonDocument users = store_.state_get(kUsersKey);
        JsonDocument tokens = store_.state_get(kTokensKey);
        if (users.IsObject()) users_.Swap(users);
        if (tokens.IsObject()) tokens_.Swap(tokens);
        refreshed_us_ = now;
    } catch (const std::exception& e) {
        Poco::Logger::get("sluice.auth").warning(std::string("cannot re-read users and tokens, keeping the copy: ") + e.what());
    }
}

void Auth::save_users_locked() { store_.state_put(kUsersKey, users_); }
void Auth::save_tokens_locked() { store_.state_put(kTokensKey, tokens_); }

}  // namespace sluice::kernel

// Users, passwords, tokens: who is calling the API and with which role (docs/security.md).
//
// Users live in storage under `node:users` (like the configuration, so nodes sharing storage share
// them): a PBKDF2-SHA256 hash with a per-user salt and a role. Logging in gives a JWT: HS256
// signed with the node key (<data-dir>/jwt.key, 0600), or RS256 when a key pair is configured. Long-lived API tokens are JWTs with a `jti`
// recorded under `node:api-tokens`; revoking one deletes the record, and a token whose record is
// gone is refused.
#pragma once

#include <sluice/kernel/security.hpp>

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sluice::kernel {

class DatasetStore;

// Authentication failed (401): `what()` says why without echoing the credential.
struct AuthError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A workspace grant: a role on the pipes, systems and datasets whose id starts with `prefix`,
// on top of the user's node-wide role.
struct WorkspaceGrant {
    std::string prefix;
    security::Role role;
};

struct Principal {
    std::string user;
    security::Role role = security::Role::reader;
    std::string token_id;  // set for API tokens
    std::vector<WorkspaceGrant> workspaces;
    // The role on one pipe/system/dataset id: the node-wide role raised by matching grants.
    security::Role role_for(const std::string& id) const;
};

struct UserInfo {
    std::string name;
    security::Role role;
    std::vector<WorkspaceGrant> workspaces;
};

struct ApiTokenInfo {
    std::string id;
    std::string name;
    std::string user;
    security::Role role;
    int64_t created = 0;  // seconds since the epoch
    int64_t expires = 0;  // 0: never
};

class Auth {
public:
    static constexpr int kIterations = 210000;  // OWASP's 2023 figure for PBKDF2-HMAC-SHA256
    static constexpr int64_t kDefaultTtlSeconds = 12 * 3600;

    // RS256 when `rs256_private_pem` or `rs256_public_pem` is set (PEM files), else HS256 with
    // <data-dir>/jwt.key.
    Auth(DatasetStore& store, const std::filesystem::path& data_dir, const std::filesystem::path& rs256_private_pem = {},
         const std::filesystem::path& rs256_public_pem = {});
    const char* algorithm() const { return keys_.algorithm(); }

    // First start: with no users, creates `admin` with $SLUICE_ADMIN_PASSWORD, else the password in
    // <data-dir>/admin-password, else a random one written there (0600). Returns that file's path
    // when it was just written (so the caller prints it once).
    std::optional<std::filesystem::path> bootstrap();

    // username + password → a JWT valid for `ttl_seconds`; AuthError on a bad pair.
    std::string login(const std::string& user, const std::string& password, int64_t ttl_seconds = kDefaultTtlSeconds);
    // The caller behind an Authorization header value ("Bearer <jwt>", any case); AuthError when
    // missing, malformed, forged, expired, revoked or of a deleted user.
    Principal authenticate(const std::string& authorization) const;

    std::vector<UserInfo> users() const;
    // Creates or updates a user; an empty password keeps the old one, null `workspaces` the old
    // grants ({"<id prefix>": "<role>"} replaces them). Throws std::invalid_argument.
    void put_user(const std::string& name, const std::string& password, std::optional<security::Role> role,
                  bool must_be_new, const Json* workspaces = nullptr);
    bool delete_user(const std::string& name);

    // A long-lived token (returned once, only its record is kept); `role` is capped at the user's.
    std::pair<std::string, ApiTokenInfo> create_token(const Principal& owner, const std::string& name,
                                                      security::Role role, int64_t ttl_seconds);
    std::vector<ApiTokenInfo> tokens() const;
    bool revoke_token(const std::string& id);

    // For tests and tooling: signs arbitrary claims with the node key.
    std::string sign(const Json& claims) const;

    // How long a node trusts its copy of the users and API tokens: nodes sharing one storage see
    // each other's changes (a revoked token, a deleted or demoted user) within this time.
    static constexpr int64_t kRefreshMicros = 2'000'000;

private:
    void save_users_locked();
    void save_tokens_locked();
    // Re-reads users and tokens from storage when the copy is older than kRefreshMicros (always
    // when `force`: before a change, so it applies to the current records). A storage error
    // keeps the copy: a short storage outage must not lock every caller out.
    void refresh_locked(bool force) const;

    DatasetStore& store_;
    std::filesystem::path data_dir_;
    security::JwtKeys keys_;
    mutable std::mutex mutex_;
    // Copies of the stored records, refreshed by refresh_locked (hence mutable).
    mutable JsonDocument users_;   // {name: {salt, hash, iterations, role}}
    mutable JsonDocument tokens_;  // {id: {name, user, role, created, expires}}
    mutable int64_t refreshed_us_ = 0;
};

}  // namespace sluice::kernel

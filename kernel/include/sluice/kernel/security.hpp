// Cryptographic building blocks of the node's security (docs/security.md): random bytes, base64url,
// HMAC-SHA256, PBKDF2-SHA256 password hashes, constant-time comparison, 0600 key files,
// AES-256-GCM for secrets at rest, HS256 JWTs, roles, and the redaction of secret values from
// anything the node writes out. All of it is OpenSSL underneath; nothing here is home-grown
// cryptography beyond the encodings.
#pragma once

#include <sluice/entity.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice::kernel::security {

namespace fs = std::filesystem;

std::string random_bytes(size_t n);  // from OpenSSL's CSPRNG; throws if it fails
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);
std::string hex_encode(std::string_view bytes);
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string sha256(std::string_view data);
std::string pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations, size_t length = 32);
// Compares without an early exit, so timing says nothing about where two values differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// Writes `content` to `file` readable by the owner only (0600), replacing it atomically.
void write_private_file(const fs::path& file, std::string_view content);
// The `length`-byte key in `file`, created (0600) from random bytes when missing. Throws when the
// file exists with another length or is readable by group/others (a leaked key is not a key).
std::string load_or_create_key(const fs::path& file, size_t length);

// AES-256-GCM with a random 96-bit nonce per value. Ciphertexts read "aesgcm1:<base64url(nonce |
// ciphertext | tag)>"; decrypt() throws std::runtime_error on a wrong key or tampered value.
class SecretCipher {
public:
    explicit SecretCipher(std::string key);  // 32 bytes
    std::string encrypt(std::string_view plain) const;
    std::string decrypt(std::string_view sealed) const;
    static bool is_sealed(std::string_view value);

private:
    std::string key_;
};

// Node-wide roles, each including the ones below it: admin ⊇ developer ⊇ operator ⊇ reader.
enum class Role : int { reader = 0, operator_ = 1, developer = 2, admin = 3 };
const char* role_name(Role role);
std::optional<Role> role_from_name(std::string_view name);
inline bool role_allows(Role granted, Role required) { return static_cast<int>(granted) >= static_cast<int>(required); }

// HS256 JSON Web Tokens (RFC 7519) with the node key.
struct JwtError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
std::string sign_jwt_hs256(std::string_view key, const Json& claims);
// The claims of a token signed with `key`; throws JwtError("malformed" / "unsupported algorithm" /
// "invalid signature" / "expired") — only HS256 is accepted, never "none".
JsonDocument verify_jwt_hs256(std::string_view key, std::string_view token, int64_t now_seconds);

// The node's token keys: HS256 with a shared secret (the default, <data-dir>/jwt.key), or RS256
// with an RSA key pair when one is configured (then only RS256 is accepted, so a token "signed"
// with the public key as an HMAC secret is refused). Verification only needs the public key.
class JwtKeys {
public:
    static JwtKeys hs256(std::string secret);
    // `private_pem` may be empty on a node that only verifies; `public_pem` empty derives the
    // public key from the private one. Throws std::runtime_error naming the unreadable file.
    static JwtKeys rs256(const fs::path& private_pem, const fs::path& public_pem);
    const char* algorithm() const { return rsa_ ? "RS256" : "HS256"; }
    std::string sign(const Json& claims) const;
    JsonDocument verify(std::string_view token, int64_t now_seconds) const;  // throws JwtError

private:
    std::string secret_;
    std::shared_ptr<void> private_key_, public_key_;  // EVP_PKEY*, freed with EVP_PKEY_free
    bool rsa_ = false;
};

// Every secret value the process knows, replaced by "********" in text the node writes out:
// log lines, error answers, run errors stored in execution logs. Process-wide because log
// channels and plugin error paths have no handle on a node; values shorter than 4 characters are
// not tracked (they would shred ordinary text).
class Redactor {
public:
    static Redactor& global();
    void add(const std::string& value);
    void remove(const std::string& value);
    std::string redact(std::string text) const;

private:
    mutable std::mutex mutex_;
    std::set<std::string> values_;
};
inline std::string redact(std::string text) { return Redactor::global().redact(std::move(text)); }

}  // namespace sluice::kernel::security

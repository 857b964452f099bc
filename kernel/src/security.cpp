#include <sluice/kernel/security.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <vector>
#include <fstream>
#include <memory>
#include <sstream>

namespace sluice::kernel::security {

std::string random_bytes(size_t n) {
    std::string out(n, '\0');
    if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        throw std::runtime_error("OpenSSL RAND_bytes failed");
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (i + 1 == bytes.size()) {
        uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
    } else if (i + 2 == bytes.size()) {
        uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '-' || c == '+') return 62;
        if (c == '_' || c == '/') return 63;
        return -1;
    };
    while (!text.empty() && text.back() == '=') text.remove_suffix(1);
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        int v = value(c);
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((acc >> bits) & 0xff);
        }
    }
    return out;
}

std::string hex_encode(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (char c : bytes) {
        out += digits[(uint8_t(c) >> 4) & 15];
        out += digits[uint8_t(c) & 15];
    }
    return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
              data.size(), mac, &len))
        throw std::runtime_error("OpenSSL HMAC failed");
    return std::string(reinterpret_cast<char*>(mac), len);
}

std::string sha256(std::string_view data) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    return std::string(reinterpret_cast<char*>(digest), sizeof digest);
}

std::string pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations, size_t length) {
    std::string out(length, '\0');
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations,
                          EVP_sha256(), static_cast<int>(length), reinterpret_cast<unsigned char*>(out.data())) != 1)
        throw std::runtime_error("OpenSSL PBKDF2 failed");
    return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    // The lengths of hashes and MACs are public; only their contents must not leak.
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void write_private_file(const fs::path& file, std::string_view content) {
    const fs::path tmp = file.string() + ".tmp";
    ::unlink(tmp.c_str());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot create " + tmp.string() + ": " + std::strerror(errno));
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            ::close(fd);
            throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
        }
        done += static_cast<size_t>(n);
    }
    ::fsync(fd);
    ::close(fd);
    if (::rename(tmp.c_str(), file.c_str()) != 0)
        throw std::runtime_error("cannot rename to " + file.string() + ": " + std::strerror(errno));
}

std::string load_or_create_key(const fs::path& file, size_t length) {
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0) {
        if (st.st_mode & (S_IRWXG | S_IRWXO))
            throw std::runtime_error("key file " + file.string() +
                                     " is readable by group or others; run chmod 600 on it");
        std::ifstream in(file, std::ios::binary);
        std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (key.size() != length)
            throw std::runtime_error("key file " + file.string() + " holds " + std::to_string(key.size()) +
                                     " bytes, expected " + std::to_string(length));
        return key;
    }
    std::string key = random_bytes(length);
    write_private_file(file, key);
    return key;
}

// ---- AES-256-GCM --------------------------------------------------------------------------

namespace {
constexpr std::string_view kSealedPrefix = "aesgcm1:";
constexpr size_t kNonce = 12, kTag = 16;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
}  // namespace

SecretCipher::SecretCipher(std::string key) : key_(std::move(key)) {
    if (key_.size() != 32) throw std::invalid_argument("AES-256-GCM needs a 32-byte key");
}

bool SecretCipher::is_sealed(std::string_view value) { return value.substr(0, kSealedPrefix.size()) == kSealedPrefix; }

std::string SecretCipher::encrypt(std::string_view plain) const {
    const std::string nonce = random_bytes(kNonce);
    CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    std::string out(plain.size() + 16, '\0');
    int len = 0, total = 0;
    auto u = [](const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); };
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) != 1 ||
        EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, u(key_), u(nonce)) != 1 ||
        EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                          reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(plain.size())) != 1)
        throw std::runtime_error("AES-256-GCM encryption failed");
    total = len;
    if (EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + total, &len) != 1)
        throw std::runtime_error("AES-256-GCM encryption failed");
    total += len;
    out.resize(static_cast<size_t>(total));
    std::string tag(kTag, '\0');
    if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, tag.data()) != 1)
        throw std::runtime_error("AES-256-GCM encryption failed");
    return std::string(kSealedPrefix) + base64url_encode(nonce + out + tag);
}

std::string SecretCipher::decrypt(std::string_view sealed) const {
    if (!is_sealed(sealed)) throw std::runtime_error("not an encrypted value");
    std::optional<std::string> raw = base64url_decode(sealed.substr(kSealedPrefix.size()));
    if (!raw || raw->size() < kNonce + kTag) throw std::runtime_error("encrypted value is malformed");
    const std::string nonce = raw->substr(0, kNonce);
    const std::string body = raw->substr(kNonce, raw->size() - kNonce - kTag);
    std::string tag = raw->substr(raw->size() - kTag);
    CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    std::string out(body.size() + 16, '\0');
    int len = 0, total = 0;
    auto u = [](const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); };
    if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) != 1 ||
        EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, u(key_), u(nonce)) != 1 ||
        EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, u(body),
                          static_cast<int>(body.size())) != 1)
        throw std::runtime_error("AES-256-GCM decryption failed");
    total = len;
    if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data()) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + total, &len) != 1)
        throw std::runtime_error("encrypted value does not authenticate (wrong key or tampered)");
    total += len;
    out.resize(static_cast<size_t>(total));
    return out;
}

// ---- roles ---------------------------------------------------------------------------------

const char* role_name(Role role) {
    switch (role) {
        case Role::reader: return "reader";
        case Role::operator_: return "operator";
        case Role::developer: return "developer";
        case Role::admin: return "admin";
    }
    return "reader";
}

std::optional<Role> role_from_name(std::string_view name) {
    for (Role r : {Role::reader, Role::operator_, Role::developer, Role::admin})
        if (name == role_name(r)) return r;
    return std::nullopt;
}

// ---- JWT -----------------------------------------------------------------------------------

std::string sign_jwt_hs256(std::string_view key, const Json& claims) {
    const std::string signing_input =
        base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url_encode(to_json(claims));
    return signing_input + "." + base64url_encode(hmac_sha256(key, signing_input));
}

namespace {

struct JwtParts {
    std::string_view signing_input;
    std::string signature;
    JsonDocument claims;
};

// Splits and decodes a token, checking the header names `algorithm`; the signature is the
// caller's to check.
JwtParts split_jwt(std::string_view token, const char* algorithm) {
    const size_t first = token.find('.');
    const size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
        throw JwtError("malformed token");
    auto header_text = base64url_decode(token.substr(0, first));
    auto claims_text = base64url_decode(token.substr(first + 1, second - first - 1));
    auto signature = base64url_decode(token.substr(second + 1));
    if (!header_text || !claims_text || !signature) throw JwtError("malformed token");
    JsonDocument header;
    header.Parse(header_text->data(), header_text->size());
    if (header.HasParseError() || !header.IsObject()) throw JwtError("malformed token");
    // The algorithm is fixed by the node, never chosen by the token ("none", RS/HS confusion).
    if (string_or(header, "alg", "") != algorithm) throw JwtError("unsupported algorithm");
    JwtParts parts;
    parts.signing_input = token.substr(0, second);
    parts.signature = std::move(*signature);
    parts.claims.Parse(claims_text->data(), claims_text->size());
    if (parts.claims.HasParseError() || !parts.claims.IsObject()) throw JwtError("malformed token");
    return parts;
}

void check_expiry(const JsonDocument& claims, int64_t now_seconds) {
    if (const Json* exp = find_member(claims, "exp")) {
        if (!exp->IsNumber() || exp->GetDouble() <= static_cast<double>(now_seconds)) throw JwtError("token expired");
    }
}

std::shared_ptr<void> read_pem_key(const fs::path& file, bool is_private) {
    FILE* f = std::fopen(file.c_str(), "r");
    if (!f) throw std::runtime_error("cannot read key file " + file.string());
    EVP_PKEY* key = is_private ? PEM_read_PrivateKey(f, nullptr, nullptr, nullptr)
                               : PEM_read_PUBKEY(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (!key) throw std::runtime_error("key file " + file.string() + " holds no PEM " + (is_private ? "private" : "public") + " key");
    if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        throw std::runtime_error("key file " + file.string() + " is not an RSA key (RS256 needs one)");
    }
    return std::shared_ptr<void>(key, [](void* k) { EVP_PKEY_free(static_cast<EVP_PKEY*>(k)); });
}

using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

}  // namespace

JwtKeys JwtKeys::hs256(std::string secret) {
    JwtKeys k;
    k.secret_ = std::move(secret);
    return k;
}

JwtKeys JwtKeys::rs256(const fs::path& private_pem, const fs::path& public_pem) {
    JwtKeys k;
    k.rsa_ = true;
    if (!private_pem.empty()) k.private_key_ = read_pem_key(private_pem, true);
    k.public_key_ = !public_pem.empty() ? read_pem_key(public_pem, false) : k.private_key_;
    if (!k.public_key_) throw std::runtime_error("RS256 needs a private or a public key file");
    return k;
}

std::string JwtKeys::sign(const Json& claims) const {
    if (!rsa_) return sign_jwt_hs256(secret_, claims);
    if (!private_key_) throw std::runtime_error("this node has only the public RS256 key: it cannot issue tokens");
    const std::string signing_input =
        base64url_encode(R"({"alg":"RS256","typ":"JWT"})") + "." + base64url_encode(to_json(claims));
    MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    size_t length = 0;
    if (!ctx ||
        EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, static_cast<EVP_PKEY*>(private_key_.get())) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) != 1)
        throw std::runtime_error("RS256 signing failed");
    std::string signature(length, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
        throw std::runtime_error("RS256 signing failed");
    signature.resize(length);
    return signing_input + "." + base64url_encode(signature);
}

JsonDocument JwtKeys::verify(std::string_view token, int64_t now_seconds) const {
    if (!rsa_) return verify_jwt_hs256(secret_, token, now_seconds);
    JwtParts parts = split_jwt(token, "RS256");
    MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx ||
        EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, static_cast<EVP_PKEY*>(public_key_.get())) != 1 ||
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(parts.signature.data()), parts.signature.size(),
                         reinterpret_cast<const unsigned char*>(parts.signing_input.data()),
                         parts.signing_input.size()) != 1) {
        ERR_clear_error();  // the thread's OpenSSL error queue is shared with TLS sockets
        throw JwtError("invalid signature");
    }
    check_expiry(parts.claims, now_seconds);
    return std::move(parts.claims);
}

JsonDocument verify_jwt_hs256(std::string_view key, std::string_view token, int64_t now_seconds) {
    JwtParts parts = split_jwt(token, "HS256");
    if (!constant_time_equal(hmac_sha256(key, parts.signing_input), parts.signature)) throw JwtError("invalid signature");
    check_expiry(parts.claims, now_seconds);
    return std::move(parts.claims);
}

// ---- redaction -----------------------------------------------------------------------------

Redactor& Redactor::global() {
    static Redactor instance;
    return instance;
}

void Redactor::add(const std::string& value) {
    if (value.size() < 4) return;
    std::lock_guard<std::mutex> lock(mutex_);
    values_.insert(value);
}

void Redactor::remove(const std::string& value) {
    std::lock_guard<std::mutex> lock(mutex_);
    values_.erase(value);
}

std::string Redactor::redact(std::string text) const {
    std::lock_guard<std::mutex> lock(mutex_);
    // Longest first, so a secret containing another is hidden whole.
    std::vector<const std::string*> ordered;
    for (const std::string& v : values_) ordered.push_back(&v);
    std::sort(ordered.begin(), ordered.end(), [](auto* a, auto* b) { return a->size() > b->size(); });
    for (const std::string* v : ordered) {
        for (size_t at = text.find(*v); at != std::string::npos; at = text.find(*v, at + 8))
            text.replace(at, v->size(), "********");
    }
    return text;
}

}  // namespace sluice::kernel::security

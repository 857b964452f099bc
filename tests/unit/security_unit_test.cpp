// The security building blocks (kernel/src/security.cpp) against known answers and tampering.
#include <sluice/kernel/security.hpp>

#include <cppunit/extensions/HelperMacros.h>

using namespace sluice::kernel::security;
using sluice::Json;
using sluice::JsonDocument;

class SecurityUnitTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(SecurityUnitTest);
    CPPUNIT_TEST(testKnownAnswers);
    CPPUNIT_TEST(testBase64UrlRoundTrip);
    CPPUNIT_TEST(testCipherRoundTripAndTampering);
    CPPUNIT_TEST(testJwt);
    CPPUNIT_TEST(testRedactor);
    CPPUNIT_TEST(testRoles);
    CPPUNIT_TEST_SUITE_END();

public:
    void testKnownAnswers() {
        // RFC 7914 §11 PBKDF2-HMAC-SHA256 test vector (P="passwd", S="salt", c=1, dkLen=64).
        CPPUNIT_ASSERT_EQUAL(std::string("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                                         "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"),
                             hex_encode(pbkdf2_sha256("passwd", "salt", 1, 64)));
        // RFC 4231 test case 2.
        CPPUNIT_ASSERT_EQUAL(std::string("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
                             hex_encode(hmac_sha256("Jefe", "what do ya want for nothing?")));
        CPPUNIT_ASSERT(constant_time_equal("abc", "abc"));
        CPPUNIT_ASSERT(!constant_time_equal("abc", "abd"));
        CPPUNIT_ASSERT(!constant_time_equal("abc", "abcd"));
    }

    void testBase64UrlRoundTrip() {
        CPPUNIT_ASSERT_EQUAL(std::string("eyJhbGciOiJIUzI1NiJ9"), base64url_encode(R"({"alg":"HS256"})"));
        for (size_t n = 0; n < 40; ++n) {
            const std::string bytes = random_bytes(n);
            CPPUNIT_ASSERT(base64url_decode(base64url_encode(bytes)) == bytes);
        }
        CPPUNIT_ASSERT(!base64url_decode("a").has_value());
        CPPUNIT_ASSERT(!base64url_decode("ab$d").has_value());
    }

    void testCipherRoundTripAndTampering() {
        SecretCipher cipher(random_bytes(32));
        const std::string sealed = cipher.encrypt("hunter2-and-more");
        CPPUNIT_ASSERT(SecretCipher::is_sealed(sealed));
        CPPUNIT_ASSERT(sealed.find("hunter2") == std::string::npos);
        CPPUNIT_ASSERT_EQUAL(std::string("hunter2-and-more"), cipher.decrypt(sealed));
        CPPUNIT_ASSERT(cipher.encrypt("x") != cipher.encrypt("x"));  // fresh nonce each time
        CPPUNIT_ASSERT_EQUAL(std::string(), cipher.decrypt(cipher.encrypt("")));
        std::string tampered = sealed;
        tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
        CPPUNIT_ASSERT_THROW(cipher.decrypt(tampered), std::runtime_error);
        CPPUNIT_ASSERT_THROW(SecretCipher(random_bytes(32)).decrypt(sealed), std::runtime_error);
        CPPUNIT_ASSERT_THROW(SecretCipher("short"), std::invalid_argument);
    }

    void testJwt() {
        const std::string key = random_bytes(32);
        JsonDocument claims(rapidjson::kObjectType);
        claims.AddMember("sub", "alice", claims.GetAllocator());
        claims.AddMember("exp", 2000, claims.GetAllocator());
        const std::string token = sign_jwt_hs256(key, claims);
        CPPUNIT_ASSERT_EQUAL(std::string("alice"), std::string(verify_jwt_hs256(key, token, 1000)["sub"].GetString()));
        auto fails = [&](const std::string& t, int64_t now, const std::string& why) {
            try {
                verify_jwt_hs256(key, t, now);
            } catch (const JwtError& e) {
                CPPUNIT_ASSERT_EQUAL(why, std::string(e.what()));
                return;
            }
            CPPUNIT_FAIL("accepted: " + t);
        };
        fails(token, 2000, "token expired");
        fails(sign_jwt_hs256(random_bytes(32), claims), 1000, "invalid signature");
        fails(token.substr(0, token.rfind('.')) + ".", 1000, "invalid signature");
        fails(base64url_encode(R"({"alg":"none"})") + "." + base64url_encode(R"({"sub":"alice"})") + ".", 1000,
              "unsupported algorithm");
        fails("a.b", 1000, "malformed token");
        fails("", 1000, "malformed token");
    }

    void testRedactor() {
        Redactor r;
        r.add("abc");  // too short to track
        r.add("s3cret");
        r.add("s3cret-longer");
        CPPUNIT_ASSERT_EQUAL(std::string("abc ******** and ********"), r.redact("abc s3cret-longer and s3cret"));
        r.remove("s3cret");
        CPPUNIT_ASSERT_EQUAL(std::string("s3cret"), r.redact("s3cret"));
    }

    void testRoles() {
        CPPUNIT_ASSERT(role_allows(Role::admin, Role::developer));
        CPPUNIT_ASSERT(role_allows(Role::operator_, Role::reader));
        CPPUNIT_ASSERT(!role_allows(Role::operator_, Role::developer));
        CPPUNIT_ASSERT(role_from_name("operator") == Role::operator_);
        CPPUNIT_ASSERT(!role_from_name("root").has_value());
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(SecurityUnitTest);

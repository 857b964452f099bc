// DTL engine: dictionaries, namespaces, NIs, encryption, phone numbers and misc functions
// (reference §4.3).
#include "dtl_test_util.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

using dtltest::eval;

namespace {

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
}
// A fresh RSA-2048 key pair as PEM (public, private), JSON-escaped for embedding in DTL.
std::pair<std::string, std::string> rsa_pair() {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    BIO* pub = BIO_new(BIO_s_mem());
    BIO* priv = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(pub, key);
    PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
    EVP_PKEY_free(key);
    auto escape = [](std::string s) {
        std::string out;
        for (char ch : s) out += ch == '\n' ? std::string("\\n") : std::string(1, ch);
        return out;
    };
    return {escape(bio_text(pub)), escape(bio_text(priv))};
}

}  // namespace

class DtlDictsTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(DtlDictsTest);
    CPPUNIT_TEST(testDict);
    CPPUNIT_TEST(testHasKeyItemsKeysValues);
    CPPUNIT_TEST(testPath);
    CPPUNIT_TEST(testApplyNsStripNs);
    CPPUNIT_TEST(testNi);
    CPPUNIT_TEST(testNiCollapsesUris);
    CPPUNIT_TEST(testFernetKnownToken);
    CPPUNIT_TEST(testFernetRoundTrip);
    CPPUNIT_TEST(testPkiRoundTrip);
    CPPUNIT_TEST(testPhoneNumbers);
    CPPUNIT_TEST(testMisc);
    CPPUNIT_TEST(testDeprecatedAndUnsupported);
    CPPUNIT_TEST_SUITE_END();

public:
    void testDict() {
        DTL_EQ("{}", eval(R"(["dict"])"));
        DTL_EQ(R"({"a":1,"b":[2]})", eval(R"(["dict", "a", 1, "b", ["list", 2]])"));
        DTL_EQ(R"({"a":2})", eval(R"(["dict", "a", 1, "a", 2])"));  // the last key wins
        DTL_EQ(R"({"a":1,"b":2})", eval(R"(["dict", ["list", ["list", "a", 1], ["list", "b", 2], ["list", 3, 4]]])"));
        DTL_EQ(R"({"k":"v"})", eval(R"(["dict", ["list", {"key":"k","value":"v"}]])"));
        CPPUNIT_ASSERT(dtltest::expr_error(R"(["dict", "a", 1, "b"])").find("dict") != std::string::npos);
    }
    void testHasKeyItemsKeysValues() {
        DTL_EQ("true", eval(R"(["has-key", "a", {"a":null}])"));
        DTL_EQ("false", eval(R"(["has-key", "b", {"a":1}])"));
        DTL_EQ("null", eval(R"(["has-key", "a", ["list", {"a":1}]])"));
        DTL_EQ(R"([["a",1],["b",2]])", eval(R"(["items", {"a":1,"b":2}])"));
        DTL_EQ(R"([{"key":"a","value":1}])", eval(R"(["key-values", {"a":1}])"));
        DTL_EQ(R"(["a","b","c"])", eval(R"(["keys", ["list", {"a":1,"b":2}, {"c":3}, 4]])"));
        DTL_EQ("[1,2]", eval(R"(["values", {"a":1,"b":2}])"));
    }
    void testPath() {
        std::string s = R"({"_id":"x","a":{"b":{"c":1}},"l":[{"b":1},{"b":2}],"k.j":5})";
        DTL_EQ(R"({"c":1})", eval(R"(["path", "a.b", "_S."])", s));
        DTL_EQ("1", eval(R"(["path", ["list", "a", "b", "c"], "_S."])", s));
        DTL_EQ("5", eval(R"(["path", "'k.j'", "_S."])", s));
        DTL_EQ("[1,2]", eval(R"(["path", "b", "_S.l"])", s));
        DTL_EQ("null", eval(R"(["path", "zz", "_S."])", s));
    }
    void testApplyNsStripNs() {
        DTL_EQ(R"({"_id":"crm:1","crm:name":"A","$ids":[]})", eval(R"(["apply-ns", "crm", {"_id":"1","name":"A","$ids":[]}])"));
        DTL_EQ(R"({"_id":"1","p:a":{"p:b":1}})",
               eval(R"(["apply-ns", {"property_namespace":"p","recursive":true}, {"_id":"1","a":{"b":1}}])"));
        DTL_EQ(R"({"name":"A","x":{"y":1},"_id":"1"})", eval(R"(["strip-ns", {"crm:name":"A","x":{"a:b:y":1},"_id":"1"}])"));
    }
    void testNi() {
        DTL_EQ(R"("~:crm:42")", eval(R"(["ni", "crm", "42"])"));
        DTL_EQ(R"("~:42")", eval(R"(["ni", "42"])"));
        DTL_EQ(R"(["~:foo:bar","~:foo:x:y","~:foo:7"])", eval(R"(["ni", "foo", ["list", "bar", "x:y", 7, true]])"));
        DTL_EQ(R"("~:a:b")", eval(R"(["ni", "other", "~:a:b"])"));
        DTL_EQ(R"("x:y")", eval(R"(["ni-id", "~:foo:x:y"])"));
        DTL_EQ(R"("foo")", eval(R"(["ni-ns", "~:foo:x:y"])"));
        DTL_EQ(R"("bar")", eval(R"(["ni-id", "~:bar"])"));
        DTL_EQ("null", eval(R"(["ni-ns", "~:bar"])"));
        DTL_EQ("null", eval(R"(["ni-id", "plain"])"));
    }
    void testNiCollapsesUris() {
        DTL_EQ(R"("~:rdfs:label")", eval(R"(["ni", "~rhttp://www.w3.org/2000/01/rdf-schema#label"])"));
        DTL_EQ(R"("~:bar")", eval(R"(["ni", "~rhttp://example.org/bar"])"));
        DTL_EQ(R"("~:http://x.test/y")", eval(R"(["ni", "~rhttp://x.test/y"])"));
        // namespaces declared in the node metadata (namespaces.default), longest match first
        rapidjson::Document cfg, input;
        sluice::dtl::parse_json(R"({"type":"dtl","rules":{"default":[["copy","_id"],["add","n",["ni","_S.u"]]]}})", cfg);
        sluice::dtl::parse_json(R"([{"_id":"a","u":["~rhttp://crm.test/p/42","~rhttp://crm.test/x"]}])", input);
        auto program = sluice::dtl::compile_transform(cfg, {{"crm", "http://crm.test/"}, {"person", "http://crm.test/p/"}});
        sluice::dtl::Runner runner(program);
        std::string out;
        runner.run(input, out);
        DTL_EQ(R"([{"_id":"a","n":["~:person:42","~:crm:x"]}])", dtltest::norm(out));
    }
    void testFernetKnownToken() {
        // the test vector of the Fernet specification
        DTL_EQ(R"("hello")", eval(R"(["decrypt", "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=",
            "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="])"));
        // a tampered token does not decrypt
        DTL_EQ("null", eval(R"(["decrypt", "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=",
            "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKY_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="])"));
    }
    void testFernetRoundTrip() {
        std::string key = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
        DTL_EQ(R"(["secret æ",""])",
               eval(R"(["decrypt", ")" + key + R"(", ["encrypt", ")" + key + R"(", ["list", "secret æ", "", 5]]])"));
        CPPUNIT_ASSERT_THROW(eval(R"(["encrypt", "short", "x"])"), sluice::dtl::RuntimeError);
    }
    void testPkiRoundTrip() {
        auto [pub, priv] = rsa_pair();
        std::string enc = R"(["encrypt-pki", ")" + pub + R"(", "short secret"])";
        DTL_EQ("true", eval(R"(["is-bytes", )" + enc + "]"));
        DTL_EQ(R"("short secret")", eval(R"(["decrypt-pki", ")" + priv + R"(", )" + enc + "]"));
        CPPUNIT_ASSERT_THROW(eval(R"(["encrypt-pki", "not a key", "x"])"), sluice::dtl::RuntimeError);
    }
    void testPhoneNumbers() {
        DTL_EQ(R"("~rtel:+4722222222")", eval(R"(["phonenumber-parse", "NO", "22 22 22 22"])"));
        DTL_EQ(R"("~rtel:+442079460000")", eval(R"(["phonenumber-parse", "GB", "020 7946 0000"])"));
        DTL_EQ(R"(["~rtel:+4722222222","~rtel:+4791234567"])",
               eval(R"(["phonenumber-parse", ["list", "+47 22 22 22 22", "0047-912 34 567", "22222222", "abc"]])"));
        std::string n = R"("~rtel:+442079460000")";
        DTL_EQ(R"("+442079460000")", eval(R"(["phonenumber-format", "e164", )" + n + "]"));
        DTL_EQ(R"("tel:+44-2079460000")", eval(R"(["phonenumber-format", "rfc3966", )" + n + "]"));
        DTL_EQ(R"("02079460000")", eval(R"(["phonenumber-format", "national", )" + n + "]"));
        DTL_EQ(R"("+44 2079460000")", eval(R"(["phonenumber-format", "international", )" + n + "]"));
        DTL_EQ(R"("GB")", eval(R"(["phonenumber-format", "isocode", )" + n + "]"));
        DTL_EQ("44", eval(R"(["phonenumber-format", "country-code", )" + n + "]"));
        CPPUNIT_ASSERT_THROW(eval(R"(["phonenumber-format", "nope", "+4722222222"])"), sluice::dtl::RuntimeError);
    }
    void testMisc() {
        DTL_EQ("null", eval(R"(["is-changed", "_S.x"])"));
        DTL_EQ("null", eval(R"(["completeness", "a", "b"])"));
    }
    void testDeprecatedAndUnsupported() {
        for (const char* name : {"curie", "uri-expand", "lookup", "reference", "ni-collapse", "ni-expand"}) {
            std::string err = dtltest::expr_error(std::string("[\"") + name + "\", \"x\"]");
            CPPUNIT_ASSERT_MESSAGE(name, err.find("deprecated") != std::string::npos);
        }
        CPPUNIT_ASSERT(dtltest::expr_error(R"(["decrypt-pgp", "k", "p", "v"])").find("OpenPGP") != std::string::npos);
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DtlDictsTest);

// DTL engine: strings, URIs, UUIDs, bytes and JSON functions (reference §4.3). Value functions map
// over lists and skip values of the wrong type.
#include "dtl_test_util.hpp"

using dtltest::eval;

class DtlStringsTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(DtlStringsTest);
    CPPUNIT_TEST(testConcatJoin);
    CPPUNIT_TEST(testString);
    CPPUNIT_TEST(testLengthMatches);
    CPPUNIT_TEST(testCase);
    CPPUNIT_TEST(testJustify);
    CPPUNIT_TEST(testStrip);
    CPPUNIT_TEST(testReplace);
    CPPUNIT_TEST(testSplit);
    CPPUNIT_TEST(testSubstring);
    CPPUNIT_TEST(testUris);
    CPPUNIT_TEST(testUuids);
    CPPUNIT_TEST(testBytes);
    CPPUNIT_TEST(testJson);
    CPPUNIT_TEST_SUITE_END();

public:
    void testConcatJoin() {
        DTL_EQ(R"("ab-c")", eval(R"(["concat", "a", ["list", "b", 1, null], "-", "c"])"));
        DTL_EQ(R"("")", eval(R"(["concat"])"));
        DTL_EQ(R"("Ann Lee")", eval(R"(["concat", "_S.f", " ", "_S.l"])", R"({"_id":"x","f":"Ann","l":"Lee"})"));
        DTL_EQ(R"("a, b")", eval(R"(["join", ", ", ["list", "a", 2, "b"]])"));
        DTL_EQ(R"("")", eval(R"(["join", ",", ["list"]])"));
    }
    void testString() {
        DTL_EQ(R"("12")", eval(R"(["string", 12])"));
        DTL_EQ(R"("1.5")", eval(R"(["string", 1.5])"));
        DTL_EQ(R"("2.0")", eval(R"(["string", 2.0])"));
        DTL_EQ(R"("true")", eval(R"(["string", true])"));
        DTL_EQ(R"("12.50")", eval(R"(["string", "~f12.50"])"));
        DTL_EQ(R"("2015-01-02T03:04:05Z")", eval(R"(["string", "~t2015-01-02T03:04:05Z"])"));
        DTL_EQ(R"("hi")", eval(R"(["string", "~baGk="])"));
        DTL_EQ(R"("[1,\"a\"]")", eval(R"(["string", ["list", 1, "a"]])"));
        DTL_EQ(R"("{\"a\":1}")", eval(R"(["string", {"a":1}])"));
        DTL_EQ(R"("123456789012345678901234567890")", eval(R"(["string", 123456789012345678901234567890])"));
        DTL_EQ("null", eval(R"(["string", null])"));
    }
    void testLengthMatches() {
        DTL_EQ("5", eval(R"(["length", "hello"])"));
        DTL_EQ("3", eval(R"(["length", "æøå"])"));
        DTL_EQ("[1,2]", eval(R"(["length", ["list", "a", 5, "bc"]])"));
        DTL_EQ("null", eval(R"(["length", 5])"));
        DTL_EQ("true", eval(R"(["matches", "a*c?", "abbcd"])"));
        DTL_EQ("false", eval(R"(["matches", "a*", ["list", "ab", "ba"]])"));
        DTL_EQ("true", eval(R"(["matches", "a*", ["list", "ab", "ac"]])"));
        DTL_EQ("false", eval(R"(["matches", "a*", ["list"]])"));
    }
    void testCase() {
        DTL_EQ(R"("ABC")", eval(R"(["upper", "abc"])"));
        DTL_EQ(R"(["A"])", eval(R"(["upper", ["list", "a", 1]])"));  // §4.1's example
        DTL_EQ(R"("ÆØÅ É")", eval(R"(["upper", "æøå é"])"));
        DTL_EQ(R"("straße")", eval(R"(["lower", "STRAßE"])"));
        DTL_EQ("null", eval(R"(["lower", 1])"));
        DTL_EQ("null", eval(R"(["lower", "~:Ns:X"])"));
    }
    void testJustify() {
        DTL_EQ(R"("ab...")", eval(R"(["ljust", 5, ".", "ab"])"));
        DTL_EQ(R"("007")", eval(R"(["rjust", 3, "0", "7"])"));
        DTL_EQ(R"("abcdef")", eval(R"(["rjust", 3, "0", "abcdef"])"));
        DTL_EQ(R"(["ø-","ab"])", eval(R"(["ljust", 2, "-", ["list", "ø", "ab"]])"));
        DTL_EQ("null", eval(R"(["ljust", 3, "ab", "x"])"));
    }
    void testStrip() {
        DTL_EQ(R"("a b")", eval(R"(["strip", "  a b \n"])"));
        DTL_EQ(R"("a  ")", eval(R"(["lstrip", "  a  "])"));
        DTL_EQ(R"("  a")", eval(R"(["rstrip", "  a  "])"));
        DTL_EQ(R"("b")", eval(R"(["strip", "xy", "xxbyy"])"));
        DTL_EQ(R"(["a"])", eval(R"(["strip", ["list", " a ", 3]])"));
    }
    void testReplace() {
        DTL_EQ(R"("b-b-b")", eval(R"(["replace", "a", "b", "a-a-b"])"));
        DTL_EQ(R"("xyz")", eval(R"(["replace", {"a":"x","b":"y"}, "abz"])"));
        DTL_EQ(R"(["bb"])", eval(R"(["replace", "a", "b", ["list", "ab", 1]])"));
    }
    void testSplit() {
        DTL_EQ(R"(["a","b","c"])", eval(R"(["split", "  a b\tc "])"));
        DTL_EQ(R"(["a","","b"])", eval(R"(["split", ",", "a,,b"])"));
        DTL_EQ(R"(["æ","b"])", eval(R"(["split", "", "æb"])"));
        DTL_EQ(R"([["a","b"],["c"]])", eval(R"(["split", "-", ["list", "a-b", "c", 5]])"));
    }
    void testSubstring() {
        DTL_EQ(R"("ell")", eval(R"(["substring", 1, 4, "hello"])"));
        DTL_EQ(R"("llo")", eval(R"(["substring", 2, "hello"])"));
        DTL_EQ(R"("lo")", eval(R"(["substring", -2, "hello"])"));
        DTL_EQ(R"("hell")", eval(R"(["substring", 0, -1, "hello"])"));
        DTL_EQ(R"("øå")", eval(R"(["substring", 1, "æøå"])"));
        DTL_EQ(R"("")", eval(R"(["substring", 9, "abc"])"));
    }
    void testUris() {
        DTL_EQ(R"("~rhttp://x/y z")", eval(R"(["uri", "http://x/y z"])"));
        DTL_EQ(R"(["~rhttp://a","~rhttp://b"])", eval(R"(["uri", ["list", "http://a", "~rhttp://b", 1]])"));
        DTL_EQ(R"("a%20b/c%C3%A6%3F")", eval(R"(["url-quote", "a b/cæ?"])"));
        DTL_EQ(R"("a%20b%2Fc")", eval(R"(["url-quote", "", "a b/c"])"));
        DTL_EQ(R"("a b/cæ?")", eval(R"(["url-unquote", "a%20b/c%C3%A6%3F"])"));
        DTL_EQ("true", eval(R"(["is-uri", ["uri", "x"]])"));
    }
    void testUuids() {
        DTL_EQ(R"("~u531a379e-31bb-4ce1-8690-158dceb64be6")", eval(R"(["uuid", "531A379E31BB4CE18690158DCEB64BE6"])"));
        DTL_EQ(R"("~u531a379e-31bb-4ce1-8690-158dceb64be6")", eval(R"(["uuid", "{531a379e-31bb-4ce1-8690-158dceb64be6}"])"));
        DTL_EQ("null", eval(R"(["uuid", "not-a-uuid"])"));
        std::string fresh = eval(R"(["uuid"])");
        CPPUNIT_ASSERT_EQUAL(size_t(40), fresh.size());  // "~u" + 36 + quotes
        CPPUNIT_ASSERT_EQUAL('4', fresh[17]);             // version 4
        CPPUNIT_ASSERT(fresh != eval(R"(["uuid"])"));
        DTL_EQ("true", eval(R"(["is-uuid", ["uuid"]])"));
    }
    void testBytes() {
        DTL_EQ(R"("~baGk=")", eval(R"(["bytes", "hi"])"));
        DTL_EQ(R"("aGk=")", eval(R"(["base64-encode", ["bytes", "hi"]])"));
        DTL_EQ(R"("~baGk=")", eval(R"(["base64-decode", "aGk="])"));
        DTL_EQ(R"("hi")", eval(R"(["string", ["base64-decode", "aGk="]])"));
        DTL_EQ("null", eval(R"(["base64-decode", "!!"])"));
        DTL_EQ("true", eval(R"(["is-bytes", ["bytes", "x"]])"));
    }
    void testJson() {
        DTL_EQ(R"("{\"a\":[1,\"x\"],\"b\":null}")", eval(R"(["json", {"b":null,"a":[1,"x"]}])"));
        DTL_EQ(R"("[\"2015-01-01T00:00:00Z\",1.5]")", eval(R"(["json", ["list", "~t2015-01-01T00:00:00Z", "~f1.5"]])"));
        DTL_EQ(R"("[\"~t2015-01-01T00:00:00Z\",\"~f1.5\"]")",
               eval(R"(["json-transit", ["list", "~t2015-01-01T00:00:00Z", "~f1.5"]])"));
        DTL_EQ(R"({"a":[1,2.5,123456789012345678901234567890]})",
               eval(R"(["json-parse", "{\"a\":[1,2.5,123456789012345678901234567890]}"])"));
        DTL_EQ(R"("~t2015-01-01T00:00:00Z")", eval(R"(["json-transit-parse", "\"~t2015-01-01T00:00:00Z\""])"));
        DTL_EQ(R"("bad")", eval(R"(["json-parse", "bad", "{oops"])"));
        DTL_EQ("null", eval(R"(["json-parse", "{oops"])"));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DtlStringsTest);

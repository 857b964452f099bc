// DTL engine: math and number functions over the number model — 64-bit and big integers, floats,
// exact decimals (reference §4.3 "Math", "Numbers", §1.4).
#include "dtl_test_util.hpp"

using dtltest::eval;

class DtlNumbersTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(DtlNumbersTest);
    CPPUNIT_TEST(testOperators);
    CPPUNIT_TEST(testOperatorsNullsAndTypes);
    CPPUNIT_TEST(testBigIntegers);
    CPPUNIT_TEST(testDecimalsAreExact);
    CPPUNIT_TEST(testMapForms);
    CPPUNIT_TEST(testRounding);
    CPPUNIT_TEST(testAbsSqrtTrig);
    CPPUNIT_TEST(testInteger);
    CPPUNIT_TEST(testDecimalAndFloat);
    CPPUNIT_TEST(testHex);
    CPPUNIT_TEST(testHash128);
    CPPUNIT_TEST(testResourceBounds);
    CPPUNIT_TEST_SUITE_END();

public:
    void testOperators() {
        DTL_EQ("3", eval(R"(["+", 1, 2])"));
        DTL_EQ("3.5", eval(R"(["+", 1, 2.5])"));
        DTL_EQ("-1", eval(R"(["-", 1, 2])"));
        DTL_EQ("6", eval(R"(["*", 2, 3])"));
        DTL_EQ("2", eval(R"(["/", 10, 5])"));
        DTL_EQ("2.5", eval(R"(["/", 10, 4])"));
        DTL_EQ("null", eval(R"(["/", 10, 0])"));
        DTL_EQ("null", eval(R"(["/", 1.0, 0.0])"));
        DTL_EQ("1", eval(R"(["%", 7, 3])"));
        DTL_EQ("2", eval(R"(["%", -7, 3])"));  // the sign of the divisor
        DTL_EQ("1024", eval(R"(["^", 2, 10])"));
        DTL_EQ("0.5", eval(R"(["^", 2, -1])"));
        DTL_EQ("3", eval(R"(["+", ["list", 1, 5], ["list", 2]])"));  // first values
    }
    void testOperatorsNullsAndTypes() {
        DTL_EQ("null", eval(R"(["+", null, 2])"));
        DTL_EQ("null", eval(R"(["+", "_S.none", 2])"));
        DTL_EQ("null", eval(R"(["+", "a", 2])"));
        DTL_EQ("null", eval(R"(["*", ["list"], 2])"));
    }
    void testBigIntegers() {
        DTL_EQ("9223372036854775808", eval(R"(["+", 9223372036854775807, 1])"));
        DTL_EQ("-9223372036854775809", eval(R"(["-", -9223372036854775808, 1])"));
        DTL_EQ("85070591730234615847396907784232501249", eval(R"(["*", 9223372036854775807, 9223372036854775807])"));
        DTL_EQ("1267650600228229401496703205376", eval(R"(["^", 2, 100])"));
        DTL_EQ("123456789012345678901234567890", eval(R"(["-", 123456789012345678901234567891, 1])"));
        DTL_EQ("41152263004115226300411522630", eval(R"(["/", 123456789012345678901234567890, 3])"));
        DTL_EQ("true", eval(R"(["gt", 123456789012345678901234567890, 9223372036854775807])"));
        DTL_EQ("true", eval(R"(["eq", 18446744073709551616, ["+", 18446744073709551615, 1]])"));
    }
    void testDecimalsAreExact() {
        DTL_EQ(R"("~f0.3")", eval(R"(["+", "~f0.1", "~f0.2"])"));
        DTL_EQ(R"("~f1.10")", eval(R"(["+", "~f1.05", "~f0.05"])"));
        DTL_EQ(R"("~f100000000000000000000.000000000000000000001")",
               eval(R"(["+", "~f100000000000000000000", "~f0.000000000000000000001"])"));
        DTL_EQ(R"("~f0.3333333333333333333333333333")", eval(R"(["/", "~f1", 3])"));
        DTL_EQ(R"("~f2.5")", eval(R"(["/", "~f5", 2])"));
        DTL_EQ(R"("~f6.0")", eval(R"(["*", "~f1.5", 4])"));
        DTL_EQ(R"("~f1.75")", eval(R"(["+", "~f1.5", 0.25])"));  // floats enter by their shortest text
        DTL_EQ(R"("~f-1.5")", eval(R"(["%", "~f-7.5", 3])"));      // decimals: the sign of the dividend
        DTL_EQ("true", eval(R"(["lt", "~f0.1", 0.1000000001])"));
    }
    void testMapForms() {
        DTL_EQ("2", eval(R"(["divide", 10, 20])"));  // the reference's example: 20 / 10
        DTL_EQ("[11,12]", eval(R"(["plus", 10, ["list", 1, 2, "x"]])"));
        DTL_EQ("[-9]", eval(R"(["minus", 10, ["list", 1]])"));
        DTL_EQ("[2.5,5.0]", eval(R"(["multiply", 2.5, ["list", 1, 2]])"));
        DTL_EQ("[1,0]", eval(R"(["mod", 2, ["list", 3, 4]])"));
        DTL_EQ("[9,16]", eval(R"(["pow", 2, ["list", 3, 4]])"));
        DTL_EQ("null", eval(R"(["plus", "x", ["list", 1]])"));
        DTL_EQ("[]", eval(R"(["divide", 0, ["list", 1]])"));
    }
    void testRounding() {
        DTL_EQ("2", eval(R"(["round", 2.5])"));  // half to even
        DTL_EQ("4", eval(R"(["round", 3.5])"));
        DTL_EQ("-2", eval(R"(["round", -2.5])"));
        DTL_EQ("1.24", eval(R"(["round", 2, 1.235])"));  // 1.235 is exactly "1.235": half to even
        DTL_EQ(R"("~f1.24")", eval(R"(["round", 2, "~f1.235"])"));
        DTL_EQ(R"("~f1.22")", eval(R"(["round", 2, "~f1.225"])"));
        DTL_EQ("1200", eval(R"(["round", -2, 1234])"));
        DTL_EQ("[3,-2]", eval(R"(["ceil", ["list", 2.1, -2.9, "x"]])"));
        DTL_EQ("[2,-3]", eval(R"(["floor", ["list", 2.9, -2.1]])"));
        DTL_EQ("1.3", eval(R"(["ceil", 1, 1.21])"));
        DTL_EQ("5", eval(R"(["floor", 5])"));
        DTL_EQ("123456789012345678901234567891", eval(R"(["ceil", "~f123456789012345678901234567890.2"])"));
    }
    void testAbsSqrtTrig() {
        DTL_EQ("[1,2.5,\"~f3.5\"]", eval(R"(["abs", ["list", -1, -2.5, "~f-3.5", "x"]])"));
        DTL_EQ("9223372036854775808", eval(R"(["abs", -9223372036854775808])"));
        DTL_EQ("3.0", eval(R"(["sqrt", 9])"));
        DTL_EQ("null", eval(R"(["sqrt", -1])"));
        DTL_EQ("0.0", eval(R"(["sin", 0])"));
        DTL_EQ("1.0", eval(R"(["cos", 0])"));
        DTL_EQ("[0.0]", eval(R"(["tan", ["list", 0]])"));
    }
    void testInteger() {
        DTL_EQ("[42,-3,2,7,255,-1]", eval(R"(["integer", ["list", "42", " -3 ", 2.9, "~f7.9", "0x00ff", "0xff", "x", true]])"));
        DTL_EQ("123456789012345678901234567890", eval(R"(["integer", "123456789012345678901234567890"])"));
        DTL_EQ("0", eval(R"(["integer", 0, "x"])"));
        DTL_EQ("[1,0]", eval(R"(["integer", 0, ["list", "1", "bad"]])"));
        DTL_EQ("null", eval(R"(["integer", "1.5"])"));
    }
    void testDecimalAndFloat() {
        DTL_EQ(R"(["~f1.50","~f2","~f0.1","~f1500"])", eval(R"(["decimal", ["list", "1.50", 2, 0.1, "1.5e3", "x"]])"));
        DTL_EQ(R"("~f0")", eval(R"(["decimal", "~f0", "nope"])"));
        DTL_EQ("[1.5,2.0,0.1]", eval(R"(["float", ["list", "1.5", 2, "~f0.1", "nan", "x"]])"));
        DTL_EQ("-1.0", eval(R"(["float", -1.0, "bad"])"));
        DTL_EQ("true", eval(R"(["is-float", ["float", 1]])"));
        DTL_EQ("true", eval(R"(["is-decimal", ["decimal", 1]])"));
    }
    void testHex() {
        DTL_EQ(R"(["0x00","0x7f","0x00ff","0xff","0xff00","0x0100"])", eval(R"(["hex", ["list", 0, 127, 255, -1, -256, 256, "x"]])"));
        DTL_EQ("255", eval(R"(["integer", ["hex", 255]])"));
        DTL_EQ("-256", eval(R"(["integer", ["hex", -256]])"));
        DTL_EQ(R"("0x0100000000000000000000")", eval(R"(["hex", 1208925819614629174706176])"));
    }
    void testResourceBounds() {
        DTL_EQ("null", eval(R"(["round", 100000, 1.5])"));
        DTL_EQ("null", eval(R"(["^", 12345678901234567890, 100000])"));  // too big to be exact: a float (inf → null)
        DTL_EQ("null", eval(R"(["nth", 1e300, ["list", 1]])"));
        CPPUNIT_ASSERT_THROW(eval(R"(["range", 0, 2000000])"), sluice::dtl::RuntimeError);
        DTL_EQ("[9223372036854775806]", eval(R"(["range", 9223372036854775806, 9223372036854775807, 5])"));
        DTL_EQ("null", eval(R"(["datetime-plus", "day", 9223372036854775807, "~t2015-01-01T00:00:00Z"])"));
        DTL_EQ("null", eval(R"(["decimal", "1e999999"])"));
    }
    void testHash128() {
        // MurmurHash3 x64 128 (seed 0) of "" is 0; of "hello" as mmh3.hash128("hello")
        DTL_EQ("0", eval(R"(["hash128", "murmur3", ""])"));
        DTL_EQ("121118445609844952839898260755277781762", eval(R"(["hash128", "murmur3", "hello"])"));
        CPPUNIT_ASSERT(eval(R"(["hash128", "murmur3", 1, "hello"])") != eval(R"(["hash128", "murmur3", "hello"])"));
        DTL_EQ("[0]", eval(R"(["hash128", "murmur3", ["list", "", null]])"));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DtlNumbersTest);

// DTL engine: date and time functions — UTC, nanosecond precision, Olson timezones
// (reference §4.3 "Date and time", §1.4 `~t`).
#include "dtl_test_util.hpp"

using dtltest::eval;

class DtlDatetimeTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(DtlDatetimeTest);
    CPPUNIT_TEST(testDatetime);
    CPPUNIT_TEST(testNanosecondPrecision);
    CPPUNIT_TEST(testFormat);
    CPPUNIT_TEST(testFormatTimezone);
    CPPUNIT_TEST(testParse);
    CPPUNIT_TEST(testParseTimezone);
    CPPUNIT_TEST(testPlus);
    CPPUNIT_TEST(testDiff);
    CPPUNIT_TEST(testShift);
    CPPUNIT_TEST(testNow);
    CPPUNIT_TEST(testUnknownTimezoneFails);
    CPPUNIT_TEST_SUITE_END();

public:
    void testDatetime() {
        DTL_EQ(R"("~t2015-01-02T03:04:05Z")", eval(R"(["datetime", "2015-01-02T03:04:05Z"])"));
        DTL_EQ(R"("~t2015-01-02T02:04:05Z")", eval(R"(["datetime", "2015-01-02T03:04:05+01:00"])"));
        DTL_EQ(R"("~t2015-12-31T00:00:00Z")", eval(R"(["datetime", "2015-12-31"])"));
        DTL_EQ(R"("~t1970-01-01T00:00:01.500Z")", eval(R"(["datetime", 1500000000])"));  // ns since the epoch
        DTL_EQ(R"("~t1969-12-31T23:59:59Z")", eval(R"(["datetime", -1000000000])"));
        DTL_EQ(R"(["~t2015-01-01T00:00:00Z"])", eval(R"(["datetime", ["list", "2015-01-01T00:00:00Z", "junk", 1.5]])"));
        DTL_EQ(R"("fallback")", eval(R"(["datetime", "fallback", "2015-13-01"])"));
        DTL_EQ("null", eval(R"(["datetime", "2015-02-29"])"));  // not a leap year
        DTL_EQ(R"("~t2016-02-29T00:00:00Z")", eval(R"(["datetime", "~t2016-02-29"])"));
    }
    void testNanosecondPrecision() {
        DTL_EQ(R"("~t2015-01-02T03:04:05.123456789Z")", eval(R"(["datetime", "2015-01-02T03:04:05.123456789Z"])"));
        DTL_EQ("true", eval(R"(["lt", "~t2015-01-02T03:04:05.123456788Z", "~t2015-01-02T03:04:05.123456789Z"])"));
        DTL_EQ(R"("~t2015-01-02T03:04:05.123456790Z")",
               eval(R"(["datetime-plus", "nanosecond", 1, "~t2015-01-02T03:04:05.123456789Z"])"));
    }
    void testFormat() {
        DTL_EQ(R"("2015-07-28 13:04:05.123456")",
               eval(R"(["datetime-format", "%Y-%m-%d %H:%M:%S.%f", "~t2015-07-28T13:04:05.123456789Z"])"));
        DTL_EQ(R"("Tue 28 Jul 15, 01 PM, day 209 %")",
               eval(R"(["datetime-format", "%a %e %b %y, %I %p, day %j %%", "~t2015-07-28T13:04:05Z"])"));
        DTL_EQ(R"(["2015"])", eval(R"(["datetime-format", "%Y", ["list", "~t2015-07-28", "2015-07-28"]])"));
    }
    void testFormatTimezone() {
        DTL_EQ(R"("2015-07-28 15:00 +0200")",
               eval(R"(["datetime-format", "Europe/Oslo", "%Y-%m-%d %H:%M %z", "~t2015-07-28T13:00:00Z"])"));
        DTL_EQ(R"("2015-01-28 14:00 +0100")",
               eval(R"(["datetime-format", "Europe/Oslo", "%Y-%m-%d %H:%M %z", "~t2015-01-28T13:00:00Z"])"));
        DTL_EQ(R"("08:00")", eval(R"(["datetime-format", "America/New_York", "%H:%M", "~t2015-01-28T13:00:00Z"])"));
    }
    void testParse() {
        DTL_EQ(R"("~t2015-07-28T13:04:05.500Z")",
               eval(R"(["datetime-parse", "%d.%m.%Y %H:%M:%S.%f", "28.07.2015 13:04:05.5"])"));
        DTL_EQ(R"("~t2015-07-28T11:04:00Z")", eval(R"(["datetime-parse", "%Y-%m-%d %H:%M%z", "2015-07-28 13:04+0200"])"));
        DTL_EQ(R"("~t2015-07-28T13:00:00Z")", eval(R"(["datetime-parse", "%y%m%d %I%p", "150728 01PM"])"));
        DTL_EQ(R"("~t2015-07-28T00:00:00Z")", eval(R"(["datetime-parse", "%d %B %Y", "28 July 2015"])"));
        DTL_EQ("null", eval(R"(["datetime-parse", "%Y-%m-%d", "2015-07-28 extra"])"));
        DTL_EQ("null", eval(R"(["datetime-parse", "%Y-%m-%d", "2015-02-30"])"));
    }
    void testParseTimezone() {
        // local time in Oslo (summer: +02:00, winter: +01:00)
        DTL_EQ(R"("~t2015-07-28T11:00:00Z")", eval(R"(["datetime-parse", "Europe/Oslo", "%Y-%m-%d %H", "2015-07-28 13"])"));
        DTL_EQ(R"("~t2015-01-28T12:00:00Z")", eval(R"(["datetime-parse", "Europe/Oslo", "%Y-%m-%d %H", "2015-01-28 13"])"));
        // an explicit %z wins over the timezone argument
        DTL_EQ(R"("~t2015-01-28T13:00:00Z")",
               eval(R"(["datetime-parse", "Europe/Oslo", "%Y-%m-%d %H%z", "2015-01-28 13+0000"])"));
    }
    void testPlus() {
        DTL_EQ(R"("~t2015-03-31T10:00:00Z")", eval(R"(["datetime-plus", "day", 1, "~t2015-03-30T10:00:00Z"])"));
        DTL_EQ(R"("~t2015-02-28T10:00:00Z")", eval(R"(["datetime-plus", "month", 1, "~t2015-01-31T10:00:00Z"])"));
        DTL_EQ(R"("~t2017-02-28T00:00:00Z")", eval(R"(["datetime-plus", "year", 1, "~t2016-02-29T00:00:00Z"])"));
        DTL_EQ(R"("~t2014-12-31T23:00:00Z")", eval(R"(["datetime-plus", "hour", -1, "~t2015-01-01T00:00:00Z"])"));
        DTL_EQ(R"("~t2015-01-15")", eval(R"(["datetime-plus", "week", 2, "~t2015-01-01"])"));  // dates stay dates
        DTL_EQ(R"(["~t2015-01-01T00:00:00.001Z"])", eval(R"(["datetime-plus", "millisecond", 1, ["list", "~t2015-01-01T00:00:00Z", "x"]])"));
        DTL_EQ("null", eval(R"(["datetime-plus", "year", 9000, "~t2015-01-01T00:00:00Z"])"));  // out of range
    }
    void testDiff() {
        DTL_EQ("-1", eval(R"(["datetime-diff", "day", "~t2015-07-28T00:00:00Z", "~t2015-07-29T00:00:00Z"])"));  // START − END
        DTL_EQ("1", eval(R"(["datetime-diff", "day", "~t2015-07-29T12:00:00Z", "~t2015-07-28T00:00:00Z"])"));
        DTL_EQ("36", eval(R"(["datetime-diff", "hour", "~t2015-07-29T12:00:00Z", "~t2015-07-28T00:00:00Z"])"));
        DTL_EQ("0", eval(R"(["datetime-diff", "month", "~t2015-02-27T00:00:00Z", "~t2015-01-28T00:00:00Z"])"));
        DTL_EQ("1", eval(R"(["datetime-diff", "month", "~t2015-02-28T00:00:00Z", "~t2015-01-28T00:00:00Z"])"));
        DTL_EQ("-2", eval(R"(["datetime-diff", "year", "~t2013-01-01T00:00:00Z", "~t2015-06-01T00:00:00Z"])"));
        DTL_EQ("1500", eval(R"(["datetime-diff", "nanosecond", "~t2015-01-01T00:00:00.0000015Z", "~t2015-01-01T00:00:00Z"])"));
        DTL_EQ("null", eval(R"(["datetime-diff", "day", "x", "~t2015-01-01T00:00:00Z"])"));
    }
    void testShift() {
        // 12:00 naive in Oslo (summer) is 06:00 in New York
        DTL_EQ(R"("~t2015-07-28T06:00:00Z")",
               eval(R"(["datetime-shift", "Europe/Oslo", "America/New_York", "~t2015-07-28T12:00:00Z"])"));
        DTL_EQ(R"("~t2015-07-28T10:00:00Z")", eval(R"(["datetime-shift", "Europe/Oslo", "UTC", "~t2015-07-28T12:00:00Z"])"));
    }
    void testNow() {
        std::string now = eval(R"(["now"])");
        CPPUNIT_ASSERT(now.rfind("\"~t20", 0) == 0);
        DTL_EQ("true", eval(R"(["gt", ["now"], "~t2020-01-01T00:00:00Z"])"));
        DTL_EQ("true", eval(R"(["is-datetime", ["now"]])"));
    }
    void testUnknownTimezoneFails() {
        CPPUNIT_ASSERT_THROW(eval(R"(["datetime-format", "Mars/Olympus", "%Y", "~t2015-01-01T00:00:00Z"])"),
                             sluice::dtl::RuntimeError);
        CPPUNIT_ASSERT_THROW(eval(R"(["datetime-format", "../../etc/passwd", "%Y", "~t2015-01-01T00:00:00Z"])"),
                             sluice::dtl::RuntimeError);
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DtlDatetimeTest);

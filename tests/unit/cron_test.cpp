// Cron schedules: parsing errors name the field; next_after walks to the right UTC minute.
#include <sluice/kernel/cron.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <ctime>

using sluice::kernel::CronError;
using sluice::kernel::CronExpression;

namespace {

int64_t utc(int y, int mo, int d, int h, int mi) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return static_cast<int64_t>(timegm(&tm)) * 1'000'000;
}

std::string format(int64_t us) {
    std::time_t t = static_cast<std::time_t>(us / 1'000'000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M %a", &tm);
    return buf;
}

std::string next(const char* expr, int64_t after) { return format(*CronExpression::parse(expr).next_after(after)); }

std::string error_of(const char* expr) {
    try {
        CronExpression::parse(expr);
    } catch (const CronError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

class CronTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(CronTest);
    CPPUNIT_TEST(testNextRuns);
    CPPUNIT_TEST(testLastDays);
    CPPUNIT_TEST(testErrors);
    CPPUNIT_TEST_SUITE_END();

public:
    void testNextRuns() {
        const int64_t t = utc(2026, 11, 23, 10, 15);  // a Monday
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-24 00:00 Tue"), next("0 0 * * *", t));
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-23 10:16 Mon"), next("* * * * *", t));
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-23 10:30 Mon"), next("*/15 * * * *", t));
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-23 12:05 Mon"), next("5 9-17/3 * * ?", t));
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-28 06:00 Sat"), next("0 6 ? * SAT", t));
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-29 00:00 Sun"), next("0 0 * * 7", t));
        CPPUNIT_ASSERT_EQUAL(std::string("2027-01-01 00:00 Fri"), next("0 0 1 JAN *", t));
        CPPUNIT_ASSERT_EQUAL(std::string("2028-02-29 00:00 Tue"), next("0 0 29 2 *", t));  // leap day
        CPPUNIT_ASSERT_EQUAL(std::string("2030-03-01 00:00 Fri"), next("0 0 1 3 * 2030", t));
        // Both day fields restricted: either matches (standard cron).
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-25 00:00 Wed"), next("0 0 1 * WED", t));
        // Strictly after: the current minute itself is not returned.
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-24 10:15 Tue"), next("15 10 * * *", t));
        CPPUNIT_ASSERT(!CronExpression::parse("0 0 30 2 *").next_after(t));
    }

    void testLastDays() {
        const int64_t t = utc(2026, 11, 23, 10, 15);
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-30 00:00 Mon"), next("0 0 L * ?", t));
        CPPUNIT_ASSERT_EQUAL(std::string("2026-11-27 00:00 Fri"), next("0 0 ? * 5L", t));   // last Friday
        CPPUNIT_ASSERT_EQUAL(std::string("2026-12-25 00:00 Fri"), next("0 0 ? 12 5L", t));
    }

    void testErrors() {
        CPPUNIT_ASSERT(error_of("0 0 * *").find("5 or 6 fields") != std::string::npos);
        CPPUNIT_ASSERT(error_of("61 0 * * *").find("minute") != std::string::npos);
        CPPUNIT_ASSERT(error_of("0 24 * * *").find("hour") != std::string::npos);
        CPPUNIT_ASSERT(error_of("0 0 * * 1#2").find("not supported") != std::string::npos);
        CPPUNIT_ASSERT(error_of("0 0 15W * *").find("not supported") != std::string::npos);
        CPPUNIT_ASSERT(error_of("0 0 * FOO *").find("month") != std::string::npos);
        CPPUNIT_ASSERT(error_of("5-1 * * * *").find("backwards") != std::string::npos);
        CPPUNIT_ASSERT(error_of("*/0 * * * *").find("step") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(std::string(), error_of("0 0 * * *"));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(CronTest);

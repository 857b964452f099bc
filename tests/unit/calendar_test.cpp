// The SDK's calendar arithmetic (sluice/calendar.hpp), shared by DTL and the SQL/CSV connectors:
// known dates, leap rules, and the round trip over every day from year 1 to 9999.
#include <sluice/calendar.hpp>

#include <cppunit/extensions/HelperMacros.h>

class CalendarTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(CalendarTest);
    CPPUNIT_TEST(testKnownDates);
    CPPUNIT_TEST(testRoundTripEveryDay);
    CPPUNIT_TEST_SUITE_END();

public:
    void testKnownDates() {
        CPPUNIT_ASSERT_EQUAL(int64_t(0), sluice::days_from_civil(1970, 1, 1));
        CPPUNIT_ASSERT_EQUAL(int64_t(10957), sluice::days_from_civil(2000, 1, 1));  // PostgreSQL's epoch
        CPPUNIT_ASSERT_EQUAL(int64_t(-719162), sluice::days_from_civil(1, 1, 1));
        CPPUNIT_ASSERT_EQUAL(int64_t(2932896), sluice::days_from_civil(9999, 12, 31));
        // Leap years: 2000 (by 400) and 2024 have a Feb 29; 1900 (by 100) does not.
        CPPUNIT_ASSERT_EQUAL(sluice::days_from_civil(2000, 3, 1) - 1, sluice::days_from_civil(2000, 2, 29));
        CPPUNIT_ASSERT_EQUAL(int64_t(1), sluice::days_from_civil(2024, 3, 1) - sluice::days_from_civil(2024, 2, 29));
        CPPUNIT_ASSERT_EQUAL(int64_t(1), sluice::days_from_civil(1900, 3, 1) - sluice::days_from_civil(1900, 2, 28));
        int64_t y = 0;
        unsigned m = 0, d = 0;
        sluice::civil_from_days(-1, y, m, d);
        CPPUNIT_ASSERT(y == 1969 && m == 12 && d == 31);
    }

    void testRoundTripEveryDay() {
        int64_t previous_y = 0;
        unsigned previous_m = 12, previous_d = 31;
        for (int64_t day = sluice::days_from_civil(1, 1, 1); day <= sluice::days_from_civil(9999, 12, 31); ++day) {
            int64_t y = 0;
            unsigned m = 0, d = 0;
            sluice::civil_from_days(day, y, m, d);
            CPPUNIT_ASSERT_EQUAL(day, sluice::days_from_civil(y, m, d));
            // Consecutive days: the next day of the month, or the first of the next month.
            const bool next_day = y == previous_y && m == previous_m && d == previous_d + 1;
            const bool next_month = d == 1 && ((y == previous_y && m == previous_m + 1) ||
                                               (y == previous_y + 1 && m == 1 && previous_m == 12));
            CPPUNIT_ASSERT(next_day || next_month);
            previous_y = y;
            previous_m = m;
            previous_d = d;
        }
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(CalendarTest);

// Proleptic Gregorian calendar arithmetic for plugins that read or write `~t` datetimes (DTL,
// the SQL and CSV connectors): days since 1970-01-01 <-> year/month/day, for any year, without
// the C library's time_t or time-zone state. Howard Hinnant's algorithms
// (https://howardhinnant.github.io/date_algorithms.html). Header-only, part of the C++ layer,
// not the C contract.
#pragma once

#include <cstdint>

namespace sluice {

// Year/month (1-12)/day (1-31) → days since 1970-01-01 (negative before it).
constexpr int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Days since 1970-01-01 → year/month (1-12)/day (1-31).
constexpr void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = static_cast<int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
}

}  // namespace sluice

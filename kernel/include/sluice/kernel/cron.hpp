// Cron schedules as Sesam evaluates them (reference §2.7): UTC, 5 or 6 fields — minute, hour,
// day of month, month, day of week (0-6, SUN = 0; 7 is SUN too; names SUN..SAT, JAN..DEC) and an
// optional year — with `*`, `,`, `-`, `/`, `?` and `L` (last day of the month in day-of-month;
// `5L` = the month's last Friday in day-of-week). `W` and `#` are refused.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace sluice::kernel {

class CronError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

class CronExpression {
public:
    // Throws CronError naming the field and why.
    static CronExpression parse(const std::string& text);

    // The first matching minute strictly after `after_us` (µs since the epoch, UTC); nullopt when
    // nothing matches within the next ten years (e.g. 30 February).
    std::optional<int64_t> next_after(int64_t after_us) const;

    bool matches(int year, int month, int day, int hour, int minute) const;  // month 1-12, day 1-31

private:
    bool day_matches(int year, int month, int day) const;

    std::bitset<60> minutes_;
    std::bitset<24> hours_;
    std::bitset<32> days_;  // 1-31
    std::bitset<13> months_;  // 1-12
    std::bitset<7> weekdays_;  // 0 = Sunday
    std::bitset<7> last_weekdays_;  // "5L": the last such weekday of the month
    bool last_day_of_month_ = false;
    bool day_any_ = true;      // day-of-month is * or ?
    bool weekday_any_ = true;  // day-of-week is * or ?
    std::bitset<200> year_set_;                 // 1970 + i
    bool has_years_ = false;
};

}  // namespace sluice::kernel

#include <sluice/kernel/cron.hpp>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <sstream>
#include <vector>

namespace sluice::kernel {

namespace {

struct Field {
    const char* name;
    int min;
    int max;
    const char* const* names;  // index = value - min, or null
};

const char* const kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                   "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
const char* const kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> out;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, sep)) out.push_back(part);
    return out;
}

int parse_value(const std::string& token, const Field& f) {
    std::string upper = token;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (f.names) {
        for (int i = 0; i <= f.max - f.min; ++i) {
            if (i < (f.max == 7 ? 7 : f.max - f.min + 1) && upper == f.names[i]) return f.min + i;
        }
    }
    if (token.empty() || !std::all_of(token.begin(), token.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        throw CronError(std::string(f.name) + ": '" + token + "' is not a number");
    int v = std::stoi(token);
    if (v < f.min || v > f.max)
        throw CronError(std::string(f.name) + ": " + token + " is outside " + std::to_string(f.min) + "-" +
                        std::to_string(f.max));
    return v;
}

// Parses one field into the values it allows (min..max); `*` and `?` allow all.
std::vector<int> parse_field(const std::string& text, const Field& f, bool& any) {
    any = text == "*" || text == "?";
    std::vector<int> values;
    for (const std::string& item : split(text, ',')) {
        if (item.empty()) throw CronError(std::string(f.name) + ": empty list item in '" + text + "'");
        std::string range = item;
        int step = 1;
        if (size_t slash = item.find('/'); slash != std::string::npos) {
            range = item.substr(0, slash);
            const std::string step_text = item.substr(slash + 1);
            if (step_text.empty() || !std::all_of(step_text.begin(), step_text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
                throw CronError(std::string(f.name) + ": bad step in '" + item + "'");
            step = std::stoi(step_text);
            if (step <= 0) throw CronError(std::string(f.name) + ": step must be positive in '" + item + "'");
        }
        int lo, hi;
        if (range == "*" || range == "?") {
            lo = f.min;
            hi = f.max;
        } else if (size_t dash = range.find('-'); dash != std::string::npos) {
            lo = parse_value(range.substr(0, dash), f);
            hi = parse_value(range.substr(dash + 1), f);
            if (hi < lo) throw CronError(std::string(f.name) + ": range '" + range + "' runs backwards");
        } else {
            lo = parse_value(range, f);
            hi = item.find('/') != std::string::npos ? f.max : lo;
        }
        for (int v = lo; v <= hi; v += step) values.push_back(v);
    }
    return values;
}

int days_in_month(int year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
    return days[month - 1];
}

// Day of week, 0 = Sunday (Sakamoto).
int weekday(int y, int m, int d) {
    static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (m < 3) y -= 1;
    return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

}  // namespace

CronExpression CronExpression::parse(const std::string& text) {
    std::vector<std::string> fields;
    {
        std::istringstream in(text);
        std::string f;
        while (in >> f) fields.push_back(f);
    }
    if (fields.size() != 5 && fields.size() != 6)
        throw CronError("a cron expression has 5 or 6 fields (minute hour day-of-month month day-of-week [year]), got " +
                        std::to_string(fields.size()));
    // W only means something in day-of-month (WED in day-of-week is a name).
    for (const std::string& f : fields) {
        if (f.find('#') != std::string::npos) throw CronError("'" + f + "': # is not supported");
    }
    if (fields[2].find('W') != std::string::npos || fields[2].find('w') != std::string::npos)
        throw CronError("'" + fields[2] + "': W is not supported");
    CronExpression c;
    bool any = false;
    for (int v : parse_field(fields[0], {"minute", 0, 59, nullptr}, any)) c.minutes_.set(v);
    for (int v : parse_field(fields[1], {"hour", 0, 23, nullptr}, any)) c.hours_.set(v);
    // Day of month: L = the last day.
    if (fields[2] == "L") {
        c.last_day_of_month_ = true;
        c.day_any_ = false;
    } else {
        for (int v : parse_field(fields[2], {"day-of-month", 1, 31, nullptr}, any)) c.days_.set(v);
        c.day_any_ = any;
    }
    for (int v : parse_field(fields[3], {"month", 1, 12, kMonthNames}, any)) c.months_.set(v);
    // Day of week: 0-7 (7 = Sunday), names, and "<d>L".
    {
        bool week_any = false;
        std::vector<std::string> plain;
        for (const std::string& item : split(fields[4], ',')) {
            if (item.size() >= 2 && (item.back() == 'L' || item.back() == 'l')) {
                int d = parse_value(item.substr(0, item.size() - 1), {"day-of-week", 0, 7, kDayNames});
                c.last_weekdays_.set(d % 7);
            } else {
                plain.push_back(item);
            }
        }
        if (!plain.empty()) {
            std::string joined;
            for (const std::string& p : plain) joined += (joined.empty() ? "" : ",") + p;
            for (int v : parse_field(joined, {"day-of-week", 0, 7, kDayNames}, week_any)) c.weekdays_.set(v % 7);
        }
        c.weekday_any_ = week_any && c.last_weekdays_.none();
    }
    if (fields.size() == 6) {
        c.has_years_ = true;
        for (int v : parse_field(fields[5], {"year", 1970, 2169, nullptr}, any)) c.year_set_.set(static_cast<size_t>(v - 1970));
    }
    return c;
}

bool CronExpression::day_matches(int year, int month, int day) const {
    if (has_years_ && (year < 1970 || year > 2169 || !year_set_.test(static_cast<size_t>(year - 1970)))) return false;
    if (!months_.test(month)) return false;
    const int wd = weekday(year, month, day);
    const int month_days = days_in_month(year, month);
    const bool dom = last_day_of_month_ ? day == month_days : days_.test(day);
    const bool dow = weekdays_.test(wd) || (last_weekdays_.test(wd) && day + 7 > month_days);
    // Standard cron: when both day fields are restricted, either may match.
    if (day_any_ && weekday_any_) return true;
    if (day_any_) return dow;
    if (weekday_any_) return dom;
    return dom || dow;
}

bool CronExpression::matches(int year, int month, int day, int hour, int minute) const {
    return hours_.test(hour) && minutes_.test(minute) && day_matches(year, month, day);
}

std::optional<int64_t> CronExpression::next_after(int64_t after_us) const {
    std::time_t t = static_cast<std::time_t>(after_us / 1'000'000);
    t = t - t % 60 + 60;  // the next whole minute
    std::tm tm{};
    gmtime_r(&t, &tm);
    int year = tm.tm_year + 1900, month = tm.tm_mon + 1, day = tm.tm_mday, hour = tm.tm_hour, minute = tm.tm_min;
    const int last_year = year + 10;
    // Day by day (at most ~3650 steps); within a matching day, hour by hour, minute by minute.
    while (year <= last_year) {
        if (day_matches(year, month, day)) {
            for (; hour < 24; ++hour, minute = 0) {
                if (!hours_.test(hour)) continue;
                for (; minute < 60; ++minute) {
                    if (!minutes_.test(minute)) continue;
                    std::tm out{};
                    out.tm_year = year - 1900;
                    out.tm_mon = month - 1;
                    out.tm_mday = day;
                    out.tm_hour = hour;
                    out.tm_min = minute;
                    return static_cast<int64_t>(timegm(&out)) * 1'000'000;
                }
            }
        }
        hour = 0;
        minute = 0;
        if (++day > days_in_month(year, month)) {
            day = 1;
            if (++month > 12) {
                month = 1;
                ++year;
            }
        }
    }
    return std::nullopt;
}

}  // namespace sluice::kernel

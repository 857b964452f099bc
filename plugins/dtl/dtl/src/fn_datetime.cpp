// fn_datetime.cpp — date and time (reference §4.3 "Date and time"). Datetimes are UTC with
// nanosecond precision; timezones come from the system's Olson database (/usr/share/zoneinfo).
#include "fn_common.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <unordered_map>

namespace sluice::dtl {

namespace {

constexpr int64_t kNs = 1000000000;

// ---- timezones -------------------------------------------------------------------------------
struct Zone {
    std::vector<int64_t> transitions;  // UTC seconds
    std::vector<uint8_t> index;        // type per transition
    std::vector<int32_t> offsets;      // UT offset per type (seconds)
    std::vector<bool> dst;
    int32_t fixed = 0;
    bool is_fixed = true;
    int32_t offset_at(int64_t utc) const {
        if (is_fixed) return fixed;
        if (transitions.empty() || utc < transitions.front()) {
            for (size_t i = 0; i < offsets.size(); ++i)
                if (!dst[i]) return offsets[i];
            return offsets.empty() ? 0 : offsets[0];
        }
        size_t lo = 0, hi = transitions.size();
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (transitions[mid] <= utc) lo = mid;
            else hi = mid;
        }
        return offsets[index[lo]];
    }
    // UTC seconds for a local wall-clock time.
    int64_t to_utc(int64_t local) const {
        int64_t guess = local - offset_at(local);
        return local - offset_at(guess);
    }
};

int64_t be(const unsigned char* p, int n) {
    int64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
    if (n == 4 && (v & 0x80000000)) v -= (int64_t(1) << 32);
    return v;
}

bool load_tzif(const std::string& name, Zone& z) {
    for (char ch : name)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '_' || ch == '-' || ch == '+')) return false;
    if (name.find("..") != std::string::npos || name.empty() || name[0] == '/') return false;
    std::ifstream in("/usr/share/zoneinfo/" + name, std::ios::binary);
    if (!in) return false;
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    auto header = [&](size_t at, int64_t counts[6]) {
        if (at + 44 > data.size() || data.compare(at, 4, "TZif") != 0) return false;
        for (int i = 0; i < 6; ++i) counts[i] = be(p + at + 20 + 4 * i, 4);
        return true;
    };
    int64_t cnt[6];  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
    if (!header(0, cnt)) return false;
    size_t at = 44;
    int width = 4;
    if (data[4] >= '2') {  // skip the v1 block, read the 64-bit one
        at += static_cast<size_t>(cnt[3] * 4 + cnt[3] + cnt[4] * 6 + cnt[5] + cnt[2] * 8 + cnt[1] + cnt[0]);
        if (!header(at, cnt)) return false;
        at += 44;
        width = 8;
    }
    size_t need = static_cast<size_t>(cnt[3] * width + cnt[3] + cnt[4] * 6);
    if (at + need > data.size()) return false;
    z.is_fixed = false;
    for (int64_t i = 0; i < cnt[3]; ++i) z.transitions.push_back(be(p + at + static_cast<size_t>(i * width), width));
    at += static_cast<size_t>(cnt[3] * width);
    for (int64_t i = 0; i < cnt[3]; ++i) z.index.push_back(p[at + static_cast<size_t>(i)]);
    at += static_cast<size_t>(cnt[3]);
    for (int64_t i = 0; i < cnt[4]; ++i) {
        z.offsets.push_back(static_cast<int32_t>(be(p + at, 4)));
        z.dst.push_back(p[at + 4] != 0);
        at += 6;
    }
    for (uint8_t idx : z.index)
        if (idx >= z.offsets.size()) return false;
    return !z.offsets.empty();
}

// "UTC", "Europe/Oslo", "+02:00", "-0530".
const Zone* find_zone(std::string_view name) {
    static std::mutex mutex;
    static std::unordered_map<std::string, std::unique_ptr<Zone>> zones;
    std::lock_guard<std::mutex> lock(mutex);
    std::string key(name);
    auto it = zones.find(key);
    if (it != zones.end()) return it->second.get();
    auto z = std::make_unique<Zone>();
    bool ok = false;
    if (key == "UTC" || key == "Z" || key == "GMT" || key == "Etc/UTC") {
        ok = true;
    } else if (!key.empty() && (key[0] == '+' || key[0] == '-')) {
        int h = 0, m = 0;
        std::string digits;
        for (char ch : key.substr(1))
            if (ch != ':') digits.push_back(ch);
        if ((digits.size() == 2 || digits.size() == 4) && digits.find_first_not_of("0123456789") == std::string::npos) {
            h = std::stoi(digits.substr(0, 2));
            if (digits.size() == 4) m = std::stoi(digits.substr(2));
            z->fixed = (key[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
            ok = h < 24 && m < 60;
        }
    } else {
        ok = load_tzif(key, *z);
    }
    if (!ok) return nullptr;
    return (zones[key] = std::move(z)).get();
}
const Zone* zone_arg(const Json* v) {
    v = first_value(v);
    if (!v->IsString()) return nullptr;
    const Zone* z = find_zone(sv(*v));
    if (!z) throw RuntimeError("unknown timezone \"" + std::string(sv(*v)) + "\"");
    return z;
}

// ---- helpers -------------------------------------------------------------------------------
struct Civil {
    int64_t y;
    unsigned mo, d;
    int h, mi, s;
    int32_t ns;
};
Civil civil(int64_t sec, int32_t nsec) {
    int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
    int64_t rem = sec - days * 86400;
    Civil c{};
    DateTime::civil_from_days(days, c.y, c.mo, c.d);
    c.h = static_cast<int>(rem / 3600);
    c.mi = static_cast<int>(rem / 60 % 60);
    c.s = static_cast<int>(rem % 60);
    c.ns = nsec;
    return c;
}
int64_t from_civil(int64_t y, unsigned mo, unsigned d, int h, int mi, int s) {
    return DateTime::days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}
bool set_dt(Json& out, const DateTime& t, Ctx& c) {
    if (!t.in_range()) return false;
    set_datetime(out, t, *c.a);
    return true;
}
DateTime from_ns(__int128 ns) {
    DateTime t;
    const __int128 limit = static_cast<__int128>(400000000000LL) * kNs;  // far beyond year 9999
    if (ns > limit || ns < -limit) {
        t.sec = INT64_MIN;  // out of range: fails in_range()
        return t;
    }
    __int128 sec = ns / kNs;
    __int128 rem = ns % kNs;
    if (rem < 0) {
        rem += kNs;
        sec -= 1;
    }
    t.sec = static_cast<int64_t>(sec);
    t.nsec = static_cast<int32_t>(rem);
    return t;
}
__int128 to_ns(const DateTime& t) { return static_cast<__int128>(t.sec) * kNs + t.nsec; }
bool dt_of(const Json& v, DateTime& out) { return get_datetime(v, out); }

const char* const kMonths[] = {"January", "February", "March", "April", "May", "June", "July",
                               "August", "September", "October", "November", "December"};
const char* const kDays[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

// ---- datetime [DEFAULT] VALUES -------------------------------------------------------------
bool to_datetime(const Json& v, Json& out, Ctx& c) {
    DateTime t;
    if (dt_of(v, t)) {
        t.date = false;
        return set_dt(out, t, c);
    }
    if (v.IsInt64()) return set_dt(out, from_ns(v.GetInt64()), c);
    std::string_view s;
    if (plain_text(v, s) && DateTime::parse(s, t)) {
        t.date = false;
        return set_dt(out, t, c);
    }
    return false;
}
const Json* f_datetime(const Node& n, Ctx& c, Json& tmp) {
    Json t, dt;
    const Json* v = ev(n.args.back(), c, t);
    const Json* def = n.args.size() == 2 ? own(ev(n.args[0], c, dt), dt, c) : nullptr;
    return map_values(v, c, tmp, [&](const Json& e, Json& o) {
        if (to_datetime(e, o, c)) return true;
        if (def && !e.IsNull()) {
            copy_into(o, *def, c);
            return true;
        }
        return false;
    });
}

// ---- datetime-format [TZ] FORMAT VALUES ------------------------------------------------------
std::string format_time(std::string_view fmt, const DateTime& t, const Zone* zone) {
    int32_t off = zone ? zone->offset_at(t.sec) : 0;
    Civil cv = civil(t.sec + off, t.nsec);
    int64_t days = DateTime::days_from_civil(cv.y, cv.mo, cv.d);
    int weekday = static_cast<int>(((days % 7) + 7 + 3) % 7);  // 1970-01-01 was a Thursday (3)
    std::string out;
    char buf[64];
    for (size_t i = 0; i < fmt.size(); ++i) {
        if (fmt[i] != '%' || i + 1 >= fmt.size()) {
            out.push_back(fmt[i]);
            continue;
        }
        char f = fmt[++i];
        switch (f) {
            case 'Y': std::snprintf(buf, sizeof buf, "%04lld", static_cast<long long>(cv.y)); break;
            case 'y': std::snprintf(buf, sizeof buf, "%02lld", static_cast<long long>(cv.y % 100)); break;
            case 'm': std::snprintf(buf, sizeof buf, "%02u", cv.mo); break;
            case 'd': std::snprintf(buf, sizeof buf, "%02u", cv.d); break;
            case 'e': std::snprintf(buf, sizeof buf, "%2u", cv.d); break;
            case 'H': std::snprintf(buf, sizeof buf, "%02d", cv.h); break;
            case 'I': std::snprintf(buf, sizeof buf, "%02d", cv.h % 12 == 0 ? 12 : cv.h % 12); break;
            case 'p': std::snprintf(buf, sizeof buf, "%s", cv.h < 12 ? "AM" : "PM"); break;
            case 'M': std::snprintf(buf, sizeof buf, "%02d", cv.mi); break;
            case 'S': std::snprintf(buf, sizeof buf, "%02d", cv.s); break;
            case 'f': std::snprintf(buf, sizeof buf, "%06d", cv.ns / 1000); break;
            case 'j': {
                int64_t doy = days - DateTime::days_from_civil(cv.y, 1, 1) + 1;
                std::snprintf(buf, sizeof buf, "%03lld", static_cast<long long>(doy));
                break;
            }
            case 'a': std::snprintf(buf, sizeof buf, "%.3s", kDays[weekday]); break;
            case 'A': std::snprintf(buf, sizeof buf, "%s", kDays[weekday]); break;
            case 'b': std::snprintf(buf, sizeof buf, "%.3s", kMonths[cv.mo - 1]); break;
            case 'B': std::snprintf(buf, sizeof buf, "%s", kMonths[cv.mo - 1]); break;
            case 'z': {
                int32_t a = off < 0 ? -off : off;
                std::snprintf(buf, sizeof buf, "%c%02d%02d", off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
                break;
            }
            case '%': std::snprintf(buf, sizeof buf, "%%"); break;
            default: std::snprintf(buf, sizeof buf, "%%%c", f); break;
        }
        out.append(buf);
    }
    return out;
}
const Json* f_datetime_format(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    const Zone* zone = n.args.size() == 3 ? zone_arg(ev(n.args[0], c, t1)) : nullptr;
    const Json* fmt = first_value(ev(n.args[n.args.size() - 2], c, t2));
    std::string_view f;
    if (!plain_text(*fmt, f)) return &kNull;
    return map_values(ev(n.args.back(), c, t3), c, tmp, [&](const Json& e, Json& o) {
        DateTime t;
        if (!dt_of(e, t)) return false;
        set_text(o, format_time(f, t, zone), c);
        return true;
    });
}

// ---- datetime-parse [TZ] FORMAT VALUES -------------------------------------------------------
bool read_int(std::string_view s, size_t& i, int max_digits, int64_t& out, bool allow_space = false) {
    size_t start = i;
    if (allow_space && i < s.size() && s[i] == ' ') ++i, ++start;
    out = 0;
    while (i < s.size() && i - start < static_cast<size_t>(max_digits) && s[i] >= '0' && s[i] <= '9')
        out = out * 10 + (s[i++] - '0');
    return i > start;
}
bool parse_time(std::string_view fmt, std::string_view s, const Zone* zone, DateTime& out) {
    int64_t y = 1900, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ns = 0;
    bool pm = false, has_p = false, has_z = false;
    int32_t zoff = 0;
    size_t i = 0;
    for (size_t k = 0; k < fmt.size(); ++k) {
        if (fmt[k] != '%' || k + 1 >= fmt.size()) {
            if (i >= s.size() || s[i] != fmt[k]) return false;
            ++i;
            continue;
        }
        char f = fmt[++k];
        switch (f) {
            case 'Y': if (!read_int(s, i, 4, y)) return false; break;
            case 'y': if (!read_int(s, i, 2, y)) return false; y += y < 69 ? 2000 : 1900; break;
            case 'm': if (!read_int(s, i, 2, mo)) return false; break;
            case 'd': if (!read_int(s, i, 2, d)) return false; break;
            case 'e': if (!read_int(s, i, 2, d, true)) return false; break;
            case 'H': if (!read_int(s, i, 2, h)) return false; break;
            case 'I': if (!read_int(s, i, 2, h)) return false; break;
            case 'M': if (!read_int(s, i, 2, mi)) return false; break;
            case 'S': if (!read_int(s, i, 2, sec)) return false; break;
            case 'f': {
                size_t start = i;
                if (!read_int(s, i, 9, ns)) return false;
                for (size_t digits = i - start; digits < 9; ++digits) ns *= 10;
                break;
            }
            case 'p': {
                if (i + 2 > s.size()) return false;
                std::string ap = ascii_lower(s.substr(i, 2));
                if (ap != "am" && ap != "pm") return false;
                pm = ap == "pm";
                has_p = true;
                i += 2;
                break;
            }
            case 'b':
            case 'B': {
                bool found = false;
                for (int m = 0; m < 12 && !found; ++m) {
                    std::string full = kMonths[m], abbr = full.substr(0, 3);
                    for (const std::string& cand : {full, abbr}) {
                        if (i + cand.size() <= s.size() && ascii_lower(s.substr(i, cand.size())) == ascii_lower(cand)) {
                            mo = m + 1;
                            i += cand.size();
                            found = true;
                            break;
                        }
                    }
                }
                if (!found) return false;
                break;
            }
            case 'z': {
                if (i < s.size() && s[i] == 'Z') {
                    ++i;
                } else {
                    if (i >= s.size() || (s[i] != '+' && s[i] != '-')) return false;
                    int sign = s[i++] == '-' ? -1 : 1;
                    int64_t oh, om = 0;
                    if (!read_int(s, i, 2, oh)) return false;
                    if (i < s.size() && s[i] == ':') ++i;
                    if (i < s.size() && !read_int(s, i, 2, om)) return false;
                    zoff = static_cast<int32_t>(sign * (oh * 3600 + om * 60));
                }
                has_z = true;
                break;
            }
            case '%': if (i >= s.size() || s[i] != '%') return false; ++i; break;
            default: return false;
        }
    }
    if (i != s.size()) return false;
    if (has_p) {
        if (h < 1 || h > 12) return false;
        h = h % 12 + (pm ? 12 : 0);
    }
    if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return false;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return false;
    int64_t local = from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d), static_cast<int>(h),
                               static_cast<int>(mi), static_cast<int>(sec));
    out = DateTime();
    out.sec = has_z ? local - zoff : zone ? zone->to_utc(local) : local;
    out.nsec = static_cast<int32_t>(ns);
    return true;
}
const Json* f_datetime_parse(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    const Zone* zone = n.args.size() == 3 ? zone_arg(ev(n.args[0], c, t1)) : nullptr;
    std::string_view f;
    if (!plain_text(*first_value(ev(n.args[n.args.size() - 2], c, t2)), f)) return &kNull;
    return map_values(ev(n.args.back(), c, t3), c, tmp, [&](const Json& e, Json& o) {
        std::string_view s;
        DateTime t;
        if (!plain_text(e, s) || !parse_time(f, s, zone, t)) return false;
        return set_dt(o, t, c);
    });
}

// ---- datetime-plus PART N VALUES / datetime-diff PART START END ------------------------------
int64_t unit_ns(std::string_view part) {
    if (part == "week") return 7 * 86400 * kNs;
    if (part == "day") return 86400 * kNs;
    if (part == "hour") return 3600 * kNs;
    if (part == "minute") return 60 * kNs;
    if (part == "second") return kNs;
    if (part == "millisecond") return 1000000;
    if (part == "microsecond") return 1000;
    if (part == "nanosecond") return 1;
    return 0;
}
bool add_months(DateTime& t, int64_t months) {
    Civil cv = civil(t.sec, t.nsec);
    int64_t total = cv.y * 12 + (cv.mo - 1) + months;
    int64_t y = total >= 0 ? total / 12 : -((-total + 11) / 12);
    unsigned mo = static_cast<unsigned>(total - y * 12 + 1);
    if (y < 1 || y > 9999) return false;
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    unsigned d = std::min(cv.d, mdays[mo - 1] + (mo == 2 && leap ? 1u : 0u));
    t.sec = from_civil(y, mo, d, cv.h, cv.mi, cv.s);
    return true;
}
const Json* f_datetime_plus(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    std::string_view part;
    int64_t amount;
    if (!plain_text(*first_value(ev(n.args[0], c, t1)), part) || !int_arg(ev(n.args[1], c, t2), amount)) return &kNull;
    bool months = part == "year" || part == "month";
    if (amount > 100000000 || amount < -100000000) amount = amount > 0 ? 100000000 : -100000000;  // out of range anyway
    int64_t unit = unit_ns(part);
    if (!months && !unit) throw RuntimeError("datetime-plus: unknown part \"" + std::string(part) + "\"");
    return map_values(ev(n.args[2], c, t3), c, tmp, [&](const Json& e, Json& o) {
        DateTime t;
        if (!dt_of(e, t)) return false;
        bool date = t.date;
        if (months) {
            if (!add_months(t, part == "year" ? amount * 12 : amount)) return false;
        } else {
            __int128 ns = to_ns(t) + static_cast<__int128>(amount) * unit;
            t = from_ns(ns);
            t.date = date && unit % (86400 * kNs) == 0;
        }
        t.date = date && (months || unit % (86400 * kNs) == 0);
        return set_dt(o, t, c);
    });
}
const Json* f_datetime_diff(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    std::string_view part;
    if (!plain_text(*first_value(ev(n.args[0], c, t1)), part)) return &kNull;
    DateTime a, b;
    if (!dt_of(*first_value(ev(n.args[1], c, t2)), a) || !dt_of(*first_value(ev(n.args[2], c, t3)), b)) return &kNull;
    if (part == "year" || part == "month") {
        Civil ca = civil(a.sec, a.nsec), cb = civil(b.sec, b.nsec);
        int64_t m = (ca.y - cb.y) * 12 + (static_cast<int64_t>(ca.mo) - static_cast<int64_t>(cb.mo));
        // the rest of the month (day, time) decides whether the last month is complete
        DateTime shifted = b;
        if (!add_months(shifted, m)) return &kNull;
        shifted.nsec = b.nsec;
        if (m > 0 && shifted.cmp(a) > 0) --m;
        if (m < 0 && shifted.cmp(a) < 0) ++m;
        tmp.SetInt64(part == "year" ? m / 12 : m);
        return &tmp;
    }
    int64_t unit = unit_ns(part);
    if (!unit) throw RuntimeError("datetime-diff: unknown part \"" + std::string(part) + "\"");
    __int128 diff = (to_ns(a) - to_ns(b)) / unit;  // START − END, truncated towards zero
    tmp.SetInt64(static_cast<int64_t>(diff));
    return &tmp;
}

// ---- datetime-shift FROM_TZ TO_TZ VALUES -----------------------------------------------------
const Json* f_datetime_shift(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    const Zone* from = zone_arg(ev(n.args[0], c, t1));
    const Zone* to = zone_arg(ev(n.args[1], c, t2));
    if (!from || !to) return &kNull;
    return map_values(ev(n.args[2], c, t3), c, tmp, [&](const Json& e, Json& o) {
        DateTime t;
        if (!dt_of(e, t)) return false;
        int64_t utc = from->to_utc(t.sec);
        t.sec = utc + to->offset_at(utc);
        t.date = false;
        return set_dt(o, t, c);
    });
}

const Json* f_now(const Node&, Ctx& c, Json& tmp) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    set_datetime(tmp, from_ns(ns), *c.a);
    return &tmp;
}

}  // namespace

void register_datetime(FnTable& t) {
    t["datetime"] = {1, 2, &f_datetime};
    t["datetime-format"] = {2, 3, &f_datetime_format};
    t["datetime-parse"] = {2, 3, &f_datetime_parse};
    t["datetime-plus"] = {3, 3, &f_datetime_plus};
    t["datetime-diff"] = {3, 3, &f_datetime_diff};
    t["datetime-shift"] = {3, 3, &f_datetime_shift};
    t["now"] = {0, 0, &f_now};
}

}  // namespace sluice::dtl

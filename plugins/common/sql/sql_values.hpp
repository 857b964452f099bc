// Value conversions shared by the `sql` source and sink: PostgreSQL type OIDs, base64, dates and
// times as transit `~t` strings, UUIDs, floats, and the composite-key `_id` encoding.
#pragma once

#include <sluice/calendar.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::sql {

// ---- type OIDs (pg_type.dat; stable across PostgreSQL versions) --------------------------------

namespace oid {
constexpr unsigned kBool = 16, kBytea = 17, kChar = 18, kName = 19, kInt8 = 20, kInt2 = 21, kInt4 = 23,
                   kText = 25, kOid = 26, kJson = 114, kXml = 142, kFloat4 = 700, kFloat8 = 701,
                   kBpchar = 1042, kVarchar = 1043, kDate = 1082, kTime = 1083, kTimestamp = 1114,
                   kTimestampTz = 1184, kInterval = 1186, kTimeTz = 1266, kNumeric = 1700, kUuid = 2950,
                   kJsonb = 3802;
// Arrays of the above.
constexpr unsigned kBoolArray = 1000, kByteaArray = 1001, kNameArray = 1003, kInt2Array = 1005,
                   kInt4Array = 1007, kTextArray = 1009, kBpcharArray = 1014, kVarcharArray = 1015,
                   kInt8Array = 1016, kFloat4Array = 1021, kFloat8Array = 1022, kOidArray = 1028,
                   kTimestampArray = 1115, kDateArray = 1182, kTimeArray = 1183, kTimestampTzArray = 1185,
                   kIntervalArray = 1187, kNumericArray = 1231, kTimeTzArray = 1270, kUuidArray = 2951,
                   kJsonArray = 199, kJsonbArray = 3807, kXmlArray = 143;
}  // namespace oid

// ---- big-endian reads --------------------------------------------------------------------------

inline uint16_t be16(const char* p) {
    return static_cast<uint16_t>((static_cast<unsigned char>(p[0]) << 8) | static_cast<unsigned char>(p[1]));
}
inline uint32_t be32(const char* p) {
    return (uint32_t(static_cast<unsigned char>(p[0])) << 24) | (uint32_t(static_cast<unsigned char>(p[1])) << 16) |
           (uint32_t(static_cast<unsigned char>(p[2])) << 8) | uint32_t(static_cast<unsigned char>(p[3]));
}
inline uint64_t be64(const char* p) { return (uint64_t(be32(p)) << 32) | be32(p + 4); }

// ---- base64 (RFC 4648, with padding) -----------------------------------------------------------

inline void base64_append(std::string& out, std::string_view bytes) {
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        uint32_t n = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
        out.push_back(table[(n >> 18) & 63]);
        out.push_back(table[(n >> 12) & 63]);
        out.push_back(table[(n >> 6) & 63]);
        out.push_back(table[n & 63]);
    }
    if (i + 1 == bytes.size()) {
        uint32_t n = uint32_t(uint8_t(bytes[i])) << 16;
        out.push_back(table[(n >> 18) & 63]);
        out.push_back(table[(n >> 12) & 63]);
        out.append("==");
    } else if (i + 2 == bytes.size()) {
        uint32_t n = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8);
        out.push_back(table[(n >> 18) & 63]);
        out.push_back(table[(n >> 12) & 63]);
        out.push_back(table[(n >> 6) & 63]);
        out.push_back('=');
    }
}

// Decodes standard or URL-safe base64 (padding optional, whitespace ignored); nullopt if invalid.
inline std::optional<std::string> base64_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        int v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+' || c == '-') v = 62;
        else if (c == '/' || c == '_') v = 63;
        else if (c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        else return std::nullopt;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    return out;
}

// ---- calendar ----------------------------------------------------------------------------------

// Calendar arithmetic: the SDK's (sluice/calendar.hpp).
using sluice::civil_from_days;
using sluice::days_from_civil;

constexpr int64_t kPgEpochDays = 10957;  // 2000-01-01 in days since 1970-01-01
// Transit dates run from 0001-01-01 to 9999-12-31; as PostgreSQL day numbers:
constexpr int64_t kMinPgDay = days_from_civil(1, 1, 1) - kPgEpochDays;
constexpr int64_t kMaxPgDay = days_from_civil(9999, 12, 31) - kPgEpochDays;

inline char* put2(char* p, unsigned v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
    return p + 2;
}

inline void put_digits(std::string& out, int64_t v, int width) {
    char buf[24];
    int n = 0;
    uint64_t u = static_cast<uint64_t>(v < 0 ? -v : v);
    do {
        buf[n++] = static_cast<char>('0' + u % 10);
        u /= 10;
    } while (u);
    while (n < width) buf[n++] = '0';
    while (n) out.push_back(buf[--n]);
}

inline bool date_in_range(int64_t pg_days) { return pg_days >= kMinPgDay && pg_days <= kMaxPgDay; }

inline char* put_date(char* p, int64_t pg_days) {
    int64_t y;
    unsigned m, d;
    civil_from_days(pg_days + kPgEpochDays, y, m, d);
    const unsigned year = static_cast<unsigned>(y);
    p = put2(p, year / 100);
    p = put2(p, year % 100);
    *p++ = '-';
    p = put2(p, m);
    *p++ = '-';
    return put2(p, d);
}

// PostgreSQL `date` (days since 2000-01-01) → "YYYY-MM-DD"; false outside 0001…9999 (transit's
// range) and for ±infinity.
inline bool format_date(int32_t pg_days, std::string& out) {
    if (!date_in_range(pg_days)) return false;
    char buf[16];
    out.append(buf, static_cast<size_t>(put_date(buf, pg_days) - buf));
    return true;
}

inline int64_t timestamp_day(int64_t pg_us) {
    int64_t days = pg_us / 86400000000LL;
    if (pg_us % 86400000000LL < 0) --days;
    return days;
}
inline bool timestamp_in_range(int64_t pg_us) {
    return pg_us != INT64_MAX && pg_us != INT64_MIN && date_in_range(timestamp_day(pg_us));
}

// PostgreSQL `timestamp[tz]` (µs since 2000-01-01 UTC) → "YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z",
// the fraction as short as exact (as DTL writes datetimes); false out of range / ±infinity.
inline bool format_timestamp(int64_t pg_us, std::string& out) {
    if (!timestamp_in_range(pg_us)) return false;
    const int64_t days = timestamp_day(pg_us);
    const int64_t rem = pg_us - days * 86400000000LL;
    const unsigned secs = static_cast<unsigned>(rem / 1000000), us = static_cast<unsigned>(rem % 1000000);
    char buf[40];
    char* p = put_date(buf, days);
    *p++ = 'T';
    p = put2(p, secs / 3600);
    *p++ = ':';
    p = put2(p, secs / 60 % 60);
    *p++ = ':';
    p = put2(p, secs % 60);
    if (us) {
        *p++ = '.';
        const bool millis = us % 1000 == 0;
        unsigned v = millis ? us / 1000 : us;
        const int width = millis ? 3 : 6;
        for (int i = width - 1; i >= 0; --i) {
            p[i] = static_cast<char>('0' + v % 10);
            v /= 10;
        }
        p += width;
    }
    *p++ = 'Z';
    out.append(buf, static_cast<size_t>(p - buf));
    return true;
}

// ---- UUIDs -------------------------------------------------------------------------------------

inline void format_uuid(const char* bytes16, std::string& out) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        const unsigned char b = static_cast<unsigned char>(bytes16[i]);
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
}

// ---- numbers -----------------------------------------------------------------------------------

// Shortest text that reads back as the same value, always with a '.' or exponent so it stays a
// Float (not an Integer) in the entity model. NaN/±Inf have no JSON form: false.
template <class T>
inline bool format_float(T v, std::string& out) {
    if (!std::isfinite(v)) return false;
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    std::string_view s(buf, static_cast<size_t>(r.ptr - buf));
    out.append(s);
    if (s.find_first_of(".eEn") == std::string_view::npos) out.append(".0");
    return true;
}

// ---- composite keys ----------------------------------------------------------------------------
//
// A one-column key is the value's text as is: `_id` "42" for id = 42. A composite key joins the
// values' texts with '|' in the order of `primary_key`, each value percent-escaped for '%' and
// '|' only ("%25", "%7C"), so the `_id` splits back into its values unambiguously — the sink
// uses that to delete a row from a tombstone that carries nothing but `_id`. '|' rather than ':'
// because ':' is common inside key values (times, namespaced ids) and would need escaping far
// more often; it is also the separator Sesam's merge source uses in composite ids.

constexpr char kKeySeparator = '|';

inline void append_key_part(std::string& out, std::string_view part, bool escape) {
    if (!escape) {
        out.append(part);
        return;
    }
    for (char c : part) {
        if (c == '%') out.append("%25");
        else if (c == kKeySeparator) out.append("%7C");
        else out.push_back(c);
    }
}

// Splits an `_id` into `count` key values (undoing the escapes); nullopt when it does not have
// exactly `count` parts.
inline std::optional<std::vector<std::string>> split_key(std::string_view id, size_t count) {
    std::vector<std::string> parts;
    if (count <= 1) {
        parts.emplace_back(id);
        return parts;
    }
    std::string current;
    for (size_t i = 0; i < id.size(); ++i) {
        const char c = id[i];
        if (c == kKeySeparator) {
            parts.push_back(std::move(current));
            current.clear();
        } else if (c == '%' && i + 2 < id.size() &&
                   (id.substr(i, 3) == "%25" || id.substr(i, 3) == "%7C" || id.substr(i, 3) == "%7c")) {
            current.push_back(id[i + 1] == '2' ? '%' : kKeySeparator);
            i += 2;
        } else {
            current.push_back(c);
        }
    }
    parts.push_back(std::move(current));
    if (parts.size() != count) return std::nullopt;
    return parts;
}

}  // namespace sluice::sql

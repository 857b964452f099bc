// value.cpp — BigInt, Decimal, DateTime, classification, ordering, JSON text.
#include "value.hpp"

#include <sluice/calendar.hpp>

#include <rapidjson/memorystream.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <rapidjson/internal/dtoa.h>
#include <rapidjson/internal/itoa.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace sluice::dtl {

// ============================================================================ BigInt
void BigInt::trim() {
    while (!d.empty() && d.back() == 0) d.pop_back();
    if (d.empty()) neg = false;
}
BigInt BigInt::from_u64(uint64_t v) {
    BigInt r;
    while (v) { r.d.push_back(static_cast<uint32_t>(v % kBase)); v /= kBase; }
    return r;
}
BigInt BigInt::from_i64(int64_t v) {
    bool n = v < 0;
    uint64_t mag = n ? (~static_cast<uint64_t>(v) + 1) : static_cast<uint64_t>(v);
    BigInt r = from_u64(mag);
    r.neg = n && !r.d.empty();
    return r;
}
bool BigInt::parse(std::string_view s, BigInt& out) {
    out = BigInt();
    bool n = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) { n = s[0] == '-'; s.remove_prefix(1); }
    if (s.empty()) return false;
    for (char c : s) if (c < '0' || c > '9') return false;
    for (size_t end = s.size(); end > 0;) {
        size_t start = end >= 9 ? end - 9 : 0;
        uint32_t limb = 0;
        for (size_t i = start; i < end; ++i) limb = limb * 10 + static_cast<uint32_t>(s[i] - '0');
        out.d.push_back(limb);
        end = start;
    }
    out.neg = n;
    out.trim();
    return true;
}
std::string BigInt::str() const {
    if (d.empty()) return "0";
    std::string s = neg ? "-" : "";
    s += std::to_string(d.back());
    char buf[16];
    for (size_t i = d.size() - 1; i-- > 0;) {
        std::snprintf(buf, sizeof buf, "%09u", d[i]);
        s += buf;
    }
    return s;
}
bool BigInt::fits_i64() const {
    if (d.size() > 3) return false;
    static const BigInt maxv = from_i64(INT64_MAX), minv = from_i64(INT64_MIN);
    return cmp(*this, maxv) <= 0 && cmp(*this, minv) >= 0;
}
int64_t BigInt::to_i64() const {
    uint64_t v = 0;
    for (size_t i = d.size(); i-- > 0;) v = v * kBase + d[i];
    return neg ? static_cast<int64_t>(~v + 1) : static_cast<int64_t>(v);
}
double BigInt::to_double() const {
    double v = 0;
    for (size_t i = d.size(); i-- > 0;) v = v * kBase + d[i];
    return neg ? -v : v;
}
int BigInt::cmp_abs(const BigInt& a, const BigInt& b) {
    if (a.d.size() != b.d.size()) return a.d.size() < b.d.size() ? -1 : 1;
    for (size_t i = a.d.size(); i-- > 0;)
        if (a.d[i] != b.d[i]) return a.d[i] < b.d[i] ? -1 : 1;
    return 0;
}
int BigInt::cmp(const BigInt& a, const BigInt& b) {
    if (a.neg != b.neg) return a.neg ? -1 : 1;
    int c = cmp_abs(a, b);
    return a.neg ? -c : c;
}
static BigInt add_abs(const BigInt& a, const BigInt& b) {
    BigInt r;
    r.d.resize(std::max(a.d.size(), b.d.size()) + 1, 0);
    uint64_t carry = 0;
    for (size_t i = 0; i < r.d.size(); ++i) {
        uint64_t s = carry + (i < a.d.size() ? a.d[i] : 0) + (i < b.d.size() ? b.d[i] : 0);
        r.d[i] = static_cast<uint32_t>(s % BigInt::kBase);
        carry = s / BigInt::kBase;
    }
    r.trim();
    return r;
}
static BigInt sub_abs(const BigInt& a, const BigInt& b) {  // |a| >= |b|
    BigInt r;
    r.d.resize(a.d.size());
    int64_t borrow = 0;
    for (size_t i = 0; i < a.d.size(); ++i) {
        int64_t s = static_cast<int64_t>(a.d[i]) - borrow - (i < b.d.size() ? b.d[i] : 0);
        borrow = s < 0;
        if (s < 0) s += BigInt::kBase;
        r.d[i] = static_cast<uint32_t>(s);
    }
    r.trim();
    return r;
}
BigInt BigInt::add(const BigInt& a, const BigInt& b) {
    if (a.neg == b.neg) { BigInt r = add_abs(a, b); r.neg = a.neg && !r.d.empty(); return r; }
    if (cmp_abs(a, b) >= 0) { BigInt r = sub_abs(a, b); r.neg = a.neg && !r.d.empty(); return r; }
    BigInt r = sub_abs(b, a);
    r.neg = b.neg && !r.d.empty();
    return r;
}
BigInt BigInt::sub(const BigInt& a, const BigInt& b) {
    BigInt nb = b;
    if (!nb.d.empty()) nb.neg = !nb.neg;
    return add(a, nb);
}
BigInt BigInt::mul(const BigInt& a, const BigInt& b) {
    BigInt r;
    if (a.d.empty() || b.d.empty()) return r;
    std::vector<uint64_t> acc(a.d.size() + b.d.size() + 1, 0);
    for (size_t i = 0; i < a.d.size(); ++i) {
        uint64_t carry = 0;
        for (size_t j = 0; j < b.d.size(); ++j) {
            uint64_t cur = acc[i + j] + static_cast<uint64_t>(a.d[i]) * b.d[j] + carry;
            acc[i + j] = cur % kBase;
            carry = cur / kBase;
        }
        size_t k = i + b.d.size();
        while (carry) { uint64_t cur = acc[k] + carry; acc[k] = cur % kBase; carry = cur / kBase; ++k; }
    }
    r.d.assign(acc.begin(), acc.end());
    r.neg = a.neg != b.neg;
    r.trim();
    return r;
}
void BigInt::mul_small(uint32_t m, uint32_t add) {
    uint64_t carry = add;
    for (auto& limb : d) {
        uint64_t cur = static_cast<uint64_t>(limb) * m + carry;
        limb = static_cast<uint32_t>(cur % kBase);
        carry = cur / kBase;
    }
    while (carry) { d.push_back(static_cast<uint32_t>(carry % kBase)); carry /= kBase; }
    trim();
}
uint32_t BigInt::div_small(uint32_t m) {
    uint64_t rem = 0;
    for (size_t i = d.size(); i-- > 0;) {
        uint64_t cur = d[i] + rem * kBase;
        d[i] = static_cast<uint32_t>(cur / m);
        rem = cur % m;
    }
    trim();
    return static_cast<uint32_t>(rem);
}
bool BigInt::divmod(const BigInt& a, const BigInt& b, BigInt& q, BigInt& r) {
    if (b.d.empty()) return false;
    BigInt babs = b;
    babs.neg = false;
    q = BigInt();
    BigInt rem;
    q.d.assign(a.d.size(), 0);
    for (size_t i = a.d.size(); i-- > 0;) {
        // rem = rem * base + a.d[i]
        rem.d.insert(rem.d.begin(), a.d[i]);
        rem.trim();
        // binary search the largest x with babs * x <= rem
        uint32_t lo = 0, hi = kBase - 1;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo + 1) / 2;
            BigInt t = babs;
            t.mul_small(mid);
            if (cmp_abs(t, rem) <= 0) lo = mid; else hi = mid - 1;
        }
        if (lo) {
            BigInt t = babs;
            t.mul_small(lo);
            rem = sub_abs(rem, t);
        }
        q.d[i] = lo;
    }
    q.neg = a.neg != b.neg;
    q.trim();
    rem.neg = a.neg && !rem.d.empty();
    r = rem;
    return true;
}
BigInt BigInt::pow10(int n) {
    BigInt r = from_u64(1);
    for (int i = 0; i < n / 9; ++i) r.mul_small(kBase);
    for (int i = 0; i < n % 9; ++i) r.mul_small(10);
    return r;
}

// ============================================================================ Decimal
bool Decimal::parse(std::string_view s, Decimal& out) {
    out = Decimal();
    bool n = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) { n = s[0] == '-'; s.remove_prefix(1); }
    std::string digits;
    int32_t scale = 0;
    bool seen_point = false, any = false;
    size_t i = 0;
    for (; i < s.size(); ++i) {
        char c = s[i];
        if (c >= '0' && c <= '9') { digits.push_back(c); any = true; if (seen_point) ++scale; }
        else if (c == '.' && !seen_point) seen_point = true;
        else break;
    }
    if (!any) return false;
    if (i < s.size()) {
        if (s[i] != 'e' && s[i] != 'E') return false;
        int exp = 0;
        auto sub = s.substr(i + 1);
        if (!sub.empty() && sub[0] == '+') sub.remove_prefix(1);
        auto res = std::from_chars(sub.data(), sub.data() + sub.size(), exp);
        if (res.ec != std::errc() || res.ptr != sub.data() + sub.size() || exp > 5000 || exp < -5000) return false;
        scale -= exp;
    }
    if (!BigInt::parse(digits, out.m)) return false;
    if (scale < 0) { out.m = BigInt::mul(out.m, BigInt::pow10(-scale)); scale = 0; }
    out.scale = scale;
    out.m.neg = n && !out.m.zero();
    return true;
}
bool Decimal::from_double(double v, Decimal& out) {
    if (!std::isfinite(v)) return false;
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    return parse(std::string_view(buf, static_cast<size_t>(res.ptr - buf)), out);
}
std::string Decimal::str() const {
    std::string digits = m.str();
    bool n = false;
    if (digits[0] == '-') { n = true; digits.erase(0, 1); }
    if (scale > 0) {
        if (digits.size() <= static_cast<size_t>(scale)) digits.insert(0, static_cast<size_t>(scale) - digits.size() + 1, '0');
        digits.insert(digits.size() - static_cast<size_t>(scale), ".");
    }
    return n ? "-" + digits : digits;
}
double Decimal::to_double() const {
    std::string s = str();
    double v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}
void Decimal::rescale(int32_t s) {
    if (s > scale) { m = BigInt::mul(m, BigInt::pow10(s - scale)); scale = s; }
}
int Decimal::cmp(Decimal a, Decimal b) {
    int32_t s = std::max(a.scale, b.scale);
    a.rescale(s);
    b.rescale(s);
    return BigInt::cmp(a.m, b.m);
}
Decimal Decimal::add(Decimal a, Decimal b) {
    int32_t s = std::max(a.scale, b.scale);
    a.rescale(s);
    b.rescale(s);
    return Decimal{BigInt::add(a.m, b.m), s};
}
Decimal Decimal::sub(Decimal a, Decimal b) {
    int32_t s = std::max(a.scale, b.scale);
    a.rescale(s);
    b.rescale(s);
    return Decimal{BigInt::sub(a.m, b.m), s};
}
Decimal Decimal::mul(const Decimal& a, const Decimal& b) { return Decimal{BigInt::mul(a.m, b.m), a.scale + b.scale}; }
bool Decimal::div(const Decimal& a, const Decimal& b, Decimal& out, int digits) {
    if (b.m.zero()) return false;
    // a/b = (a.m / b.m) * 10^(b.scale - a.scale); compute with `extra` more fractional digits.
    int extra = digits + static_cast<int>(b.m.str().size());
    BigInt num = BigInt::mul(a.m, BigInt::pow10(extra));
    BigInt q, r;
    BigInt::divmod(num, b.m, q, r);
    out.m = q;
    out.scale = a.scale - b.scale + extra;
    // keep at most `digits` significant digits (half-even), then drop trailing zeros
    std::string qs = q.str();
    size_t sig = qs.size() - (qs[0] == '-' ? 1 : 0);
    if (static_cast<int>(sig) > digits) {
        out = out.quantize(out.scale - static_cast<int32_t>(sig - digits), Round::HalfEven);
    }
    int32_t ideal = std::max(0, a.scale - b.scale);
    out.normalize_trailing(ideal);
    if (out.scale < 0) { out.m = BigInt::mul(out.m, BigInt::pow10(-out.scale)); out.scale = 0; }
    return true;
}
Decimal Decimal::quantize(int32_t digits, Round mode) const {
    if (digits >= scale) { Decimal r = *this; r.rescale(digits); return r; }
    BigInt div = BigInt::pow10(scale - digits), q, r;
    BigInt::divmod(m, div, q, r);
    if (!r.zero()) {
        bool negative = m.neg;
        bool up = false;  // away from zero
        switch (mode) {
            case Round::Trunc: break;
            case Round::Floor: up = negative; break;
            case Round::Ceil: up = !negative; break;
            case Round::HalfEven: {
                BigInt twice = r;
                twice.neg = false;
                twice.mul_small(2);
                int c = BigInt::cmp_abs(twice, div);
                up = c > 0 || (c == 0 && !q.d.empty() && (q.d[0] & 1));
                break;
            }
        }
        if (up) q = BigInt::add(q, BigInt::from_i64(negative ? -1 : 1));
    }
    Decimal out{q, digits};
    if (digits < 0) { out.m = BigInt::mul(out.m, BigInt::pow10(-digits)); out.scale = 0; }
    return out;
}
void Decimal::normalize_trailing(int32_t min_scale) {
    while (scale > min_scale && !m.zero() && m.d[0] % 10 == 0) {
        m.div_small(10);
        --scale;
    }
    if (m.zero() && scale > min_scale) scale = min_scale;
}

// ============================================================================ DateTime
int64_t DateTime::days_from_civil(int64_t y, unsigned m, unsigned d) { return sluice::days_from_civil(y, m, d); }
void DateTime::civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) { sluice::civil_from_days(z, y, m, d); }
static bool digits_at(std::string_view s, size_t pos, size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}
static bool valid_date(int y, int m, int d) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1) return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}
bool DateTime::parse(std::string_view s, DateTime& out) {
    int y, mo, d;
    if (!digits_at(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits_at(s, 5, 2, mo) || s[7] != '-' ||
        !digits_at(s, 8, 2, d) || !valid_date(y, mo, d))
        return false;
    out = DateTime();
    int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    if (s.size() == 10) { out.sec = days * 86400; out.date = true; return true; }
    if (s[10] != 'T' && s[10] != ' ') return false;
    int h, mi, sec = 0;
    if (!digits_at(s, 11, 2, h) || s.size() < 16 || s[13] != ':' || !digits_at(s, 14, 2, mi)) return false;
    size_t p = 16;
    if (p < s.size() && s[p] == ':') {
        if (!digits_at(s, 17, 2, sec)) return false;
        p = 19;
    }
    int64_t nanos = 0;
    if (p < s.size() && (s[p] == '.' || s[p] == ',')) {
        ++p;
        int nd = 0;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
            if (nd < 9) { nanos = nanos * 10 + (s[p] - '0'); ++nd; }
            ++p;
        }
        if (nd == 0) return false;
        for (; nd < 9; ++nd) nanos *= 10;
    }
    if (h > 23 || mi > 59 || sec > 60) return false;
    int64_t offset = 0;
    if (p < s.size() && s[p] == 'Z') ++p;
    else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
        int oh, om = 0;
        int sign = s[p] == '-' ? -1 : 1;
        if (!digits_at(s, p + 1, 2, oh)) return false;
        p += 3;
        if (p < s.size() && s[p] == ':') ++p;
        if (p < s.size()) { if (!digits_at(s, p, 2, om)) return false; p += 2; }
        offset = sign * (oh * 3600 + om * 60);
    }
    if (p != s.size()) return false;
    out.sec = days * 86400 + h * 3600 + mi * 60 + sec - offset;
    out.nsec = static_cast<int32_t>(nanos);
    return true;
}
bool DateTime::in_range() const {
    return sec >= days_from_civil(1, 1, 1) * 86400 && sec < days_from_civil(10000, 1, 1) * 86400;
}
std::string DateTime::str() const {
    int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
    int64_t rem = sec - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, y, m, d);
    char buf[64];
    if (date) {
        std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m, d);
        return buf;
    }
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d", static_cast<long long>(y), m, d,
                  static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60));
    std::string out = buf;
    if (nsec) {
        char f[16];
        std::snprintf(f, sizeof f, "%09d", nsec);
        size_t len = 9;
        if (nsec % 1000000 == 0) len = 3;
        else if (nsec % 1000 == 0) len = 6;
        out += '.';
        out.append(f, len);
    }
    out += 'Z';
    return out;
}

// ============================================================================ classification
Type type_of(const Json& v) {
    switch (v.GetType()) {
        case rapidjson::kNullType: return Type::Null;
        case rapidjson::kFalseType:
        case rapidjson::kTrueType: return Type::Bool;
        case rapidjson::kObjectType: return Type::Dict;
        case rapidjson::kArrayType: return Type::List;
        case rapidjson::kNumberType:
            if (v.IsInt64()) return Type::Int;
            if (v.IsUint64()) return Type::BigInt;
            return Type::Float;
        case rapidjson::kStringType: {
            const char* s = v.GetString();
            if (v.GetStringLength() >= 2) {
                if (s[0] == '~') {
                    switch (s[1]) {
                        case ':': return Type::Ni;
                        case 'r': return Type::Uri;
                        case 't': return Type::Datetime;
                        case 'b': return Type::Bytes;
                        case 'u': return Type::Uuid;
                        case 'f': return Type::Decimal;
                        default: return Type::String;
                    }
                }
                if (s[0] == kBigIntMarker[0] && s[1] == kBigIntMarker[1]) return Type::BigInt;
            }
            return Type::String;
        }
    }
    return Type::Null;
}
const char* type_name(Type t) {
    switch (t) {
        case Type::Null: return "null";
        case Type::Bool: return "boolean";
        case Type::Int: return "integer";
        case Type::BigInt: return "integer";
        case Type::Float: return "float";
        case Type::Decimal: return "decimal";
        case Type::Datetime: return "datetime";
        case Type::Uuid: return "uuid";
        case Type::Ni: return "ni";
        case Type::Uri: return "uri";
        case Type::String: return "string";
        case Type::Dict: return "dict";
        case Type::List: return "list";
        case Type::Bytes: return "bytes";
    }
    return "?";
}
int type_rank(Type t) {
    switch (t) {
        case Type::Null: return 1;
        case Type::Bool: return 2;
        case Type::Int: case Type::BigInt: case Type::Float: case Type::Decimal: return 3;
        case Type::Datetime: return 4;
        case Type::Uuid: return 5;
        case Type::Ni: return 6;
        case Type::Uri: return 7;
        case Type::String: return 8;
        case Type::Dict: return 9;
        case Type::List: return 10;
        case Type::Bytes: return 11;
    }
    return 12;
}

bool Num::from(const Json& v, Num& out) {
    Type t = type_of(v);
    switch (t) {
        case Type::Int: out.k = I; out.i = v.GetInt64(); return true;
        case Type::Float: out.k = F; out.f = v.GetDouble(); return true;
        case Type::BigInt:
            out.k = B;
            if (v.IsUint64()) out.b = BigInt::from_u64(v.GetUint64());
            else BigInt::parse(sv(v).substr(2), out.b);
            return true;
        case Type::Decimal:
            out.k = D;
            return Decimal::parse(sv(v).substr(2), out.dec);
        default: return false;
    }
}
BigInt Num::as_big() const {
    switch (k) {
        case I: return BigInt::from_i64(i);
        case B: return b;
        case F: { Decimal dd; Decimal::from_double(std::trunc(f), dd); return dd.quantize(0, Decimal::Round::Trunc).m; }
        case D: return dec.quantize(0, Decimal::Round::Trunc).m;
    }
    return {};
}
Decimal Num::as_dec() const {
    switch (k) {
        case I: return Decimal::from_int(BigInt::from_i64(i));
        case B: return Decimal::from_int(b);
        case F: { Decimal dd; Decimal::from_double(f, dd); return dd; }
        case D: return dec;
    }
    return {};
}
double Num::as_double() const {
    switch (k) {
        case I: return static_cast<double>(i);
        case B: return b.to_double();
        case F: return f;
        case D: return dec.to_double();
    }
    return 0;
}
void set_string(Json& out, std::string_view s, Alloc& a) {
    out.SetString(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
}
void set_bigint(Json& out, const BigInt& b, Alloc& a) {
    if (b.fits_i64()) { out.SetInt64(b.to_i64()); return; }
    set_string(out, std::string(kBigIntMarker) + b.str(), a);
}
void set_decimal(Json& out, const Decimal& d, Alloc& a) { set_string(out, "~f" + d.str(), a); }
void set_datetime(Json& out, const DateTime& t, Alloc& a) { set_string(out, "~t" + t.str(), a); }
bool get_datetime(const Json& v, DateTime& out) {
    return v.IsString() && type_of(v) == Type::Datetime && DateTime::parse(sv(v).substr(2), out);
}
void Num::to_json(Json& out, Alloc& a) const {
    switch (k) {
        case I: out.SetInt64(i); break;
        case B: set_bigint(out, b, a); break;
        case F: out.SetDouble(f); break;
        case D: set_decimal(out, dec, a); break;
    }
}

// ============================================================================ semantics
bool truthy(const Json& v) {
    if (v.IsNull() || v.IsFalse()) return false;
    if (v.IsArray()) return !v.Empty();
    return true;
}
static int num_cmp(const Num& a, const Num& b) {
    if (a.k == Num::I && b.k == Num::I) return a.i < b.i ? -1 : a.i > b.i;
    if ((a.k == Num::F || b.k == Num::F) && a.k != Num::D && b.k != Num::D && a.k != Num::B && b.k != Num::B) {
        double x = a.as_double(), y = b.as_double();
        return x < y ? -1 : x > y;
    }
    if (a.k == Num::F && std::isnan(a.f)) return -1;
    if (b.k == Num::F && std::isnan(b.f)) return 1;
    if (a.k == Num::F && std::isinf(a.f)) return a.f < 0 ? -1 : 1;
    if (b.k == Num::F && std::isinf(b.f)) return b.f < 0 ? 1 : -1;
    return Decimal::cmp(a.as_dec(), b.as_dec());
}
bool equals(const Json& a, const Json& b) {
    Type ta = type_of(a), tb = type_of(b);
    if (is_number_type(ta) && is_number_type(tb)) {
        if (ta == Type::Int && tb == Type::Int) return a.GetInt64() == b.GetInt64();
        Num x, y;
        if (!Num::from(a, x) || !Num::from(b, y)) return false;
        return num_cmp(x, y) == 0;
    }
    if (ta != tb) return false;
    switch (ta) {
        case Type::Null: return true;
        case Type::Bool: return a.GetBool() == b.GetBool();
        case Type::List: {
            if (a.Size() != b.Size()) return false;
            for (rapidjson::SizeType i = 0; i < a.Size(); ++i)
                if (!equals(a[i], b[i])) return false;
            return true;
        }
        case Type::Dict: {
            if (a.MemberCount() != b.MemberCount()) return false;
            for (auto it = a.MemberBegin(); it != a.MemberEnd(); ++it) {
                auto jt = b.FindMember(it->name);
                if (jt == b.MemberEnd() || !equals(it->value, jt->value)) return false;
            }
            return true;
        }
        case Type::Datetime: {
            DateTime x, y;
            if (get_datetime(a, x) && get_datetime(b, y)) return x.cmp(y) == 0 && x.date == y.date;
            return sv(a) == sv(b);
        }
        default: return sv(a) == sv(b);
    }
}
static std::vector<const Json::Member*> sorted_members(const Json& v) {
    std::vector<const Json::Member*> m;
    m.reserve(v.MemberCount());
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) m.push_back(&*it);
    std::sort(m.begin(), m.end(), [](auto* x, auto* y) { return sv(x->name) < sv(y->name); });
    return m;
}
int compare(const Json& a, const Json& b) {
    Type ta = type_of(a), tb = type_of(b);
    int ra = type_rank(ta), rb = type_rank(tb);
    if (ra != rb) return ra < rb ? -1 : 1;
    switch (ta) {
        case Type::Null: return 0;
        case Type::Bool: return static_cast<int>(a.GetBool()) - static_cast<int>(b.GetBool());
        case Type::Int: case Type::BigInt: case Type::Float: case Type::Decimal: {
            Num x, y;
            if (!Num::from(a, x)) return -1;
            if (!Num::from(b, y)) return 1;
            return num_cmp(x, y);
        }
        case Type::Datetime: {
            DateTime x, y;
            bool okx = get_datetime(a, x), oky = get_datetime(b, y);
            if (okx && oky) return x.cmp(y);
            break;
        }
        case Type::List: {
            for (rapidjson::SizeType i = 0; i < a.Size() && i < b.Size(); ++i) {
                int c = compare(a[i], b[i]);
                if (c) return c;
            }
            return a.Size() < b.Size() ? -1 : a.Size() > b.Size();
        }
        case Type::Dict: {
            auto ma = sorted_members(a), mb = sorted_members(b);
            for (size_t i = 0; i < ma.size() && i < mb.size(); ++i) {
                int c = sv(ma[i]->name).compare(sv(mb[i]->name));
                if (c) return c < 0 ? -1 : 1;
            }
            if (ma.size() != mb.size()) return ma.size() < mb.size() ? -1 : 1;
            for (size_t i = 0; i < ma.size(); ++i) {
                int c = compare(ma[i]->value, mb[i]->value);
                if (c) return c;
            }
            return 0;
        }
        default: break;
    }
    int c = sv(a).compare(sv(b));
    return c < 0 ? -1 : c > 0;
}

void shallow_copy(Json& out, const Json& in, Alloc& a) {
    switch (in.GetType()) {
        case rapidjson::kStringType: {
            // Short strings live inside the value itself: copy those (no allocation); refer to
            // the others (their storage outlives the run).
            const char* s = in.GetString();
            const char* self = reinterpret_cast<const char*>(&in);
            if (s >= self && s < self + sizeof(Json)) out.SetString(s, in.GetStringLength(), a);
            else out.SetString(rapidjson::StringRef(s, in.GetStringLength()));
            break;
        }
        case rapidjson::kArrayType:
            out.SetArray();
            out.Reserve(in.Size(), a);
            for (const Json& e : in.GetArray()) {
                Json c;
                shallow_copy(c, e, a);
                out.PushBack(c, a);
            }
            break;
        case rapidjson::kObjectType:
            out.SetObject();
            for (auto it = in.MemberBegin(); it != in.MemberEnd(); ++it) {
                Json k(rapidjson::StringRef(it->name.GetString(), it->name.GetStringLength()));
                Json c;
                shallow_copy(c, it->value, a);
                out.AddMember(k, c, a);
            }
            break;
        default: out.CopyFrom(in, a); break;
    }
}
void deep_copy(Json& out, const Json& in, Alloc& a) {
    switch (in.GetType()) {
        case rapidjson::kStringType: out.SetString(in.GetString(), in.GetStringLength(), a); break;
        case rapidjson::kArrayType:
            out.SetArray();
            out.Reserve(in.Size(), a);
            for (const Json& e : in.GetArray()) {
                Json c;
                deep_copy(c, e, a);
                out.PushBack(c, a);
            }
            break;
        case rapidjson::kObjectType:
            out.SetObject();
            for (auto it = in.MemberBegin(); it != in.MemberEnd(); ++it) {
                Json k(it->name.GetString(), it->name.GetStringLength(), a), c;
                deep_copy(c, it->value, a);
                out.AddMember(k, c, a);
            }
            break;
        default: out.CopyFrom(in, a); break;
    }
}

// ============================================================================ text
namespace {
template <class Doc>
struct BigIntHandler {
    Doc& doc;
    bool Null() { return doc.Null(); }
    bool Bool(bool b) { return doc.Bool(b); }
    bool Int(int i) { return doc.Int(i); }
    bool Uint(unsigned i) { return doc.Uint(i); }
    bool Int64(int64_t i) { return doc.Int64(i); }
    bool Uint64(uint64_t i) { return doc.Uint64(i); }
    bool Double(double d) { return doc.Double(d); }
    bool RawNumber(const char* str, rapidjson::SizeType len, bool) {
        std::string_view s(str, len);
        bool integral = s.find_first_of(".eE") == std::string_view::npos;
        if (integral) {
            int64_t i;
            auto r = std::from_chars(s.data(), s.data() + s.size(), i);
            if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return doc.Int64(i);
            std::string text = std::string(kBigIntMarker) + std::string(s[0] == '+' ? s.substr(1) : s);
            return doc.String(text.data(), static_cast<rapidjson::SizeType>(text.size()), true);
        }
        double d = 0;
        auto r = std::from_chars(s.data(), s.data() + s.size(), d);
        if (r.ec == std::errc::result_out_of_range) d = s[0] == '-' ? -HUGE_VAL : HUGE_VAL;
        return doc.Double(d);
    }
    bool String(const char* s, rapidjson::SizeType len, bool copy) { return doc.String(s, len, copy); }
    bool StartObject() { return doc.StartObject(); }
    bool Key(const char* s, rapidjson::SizeType len, bool copy) { return doc.Key(s, len, copy); }
    bool EndObject(rapidjson::SizeType n) { return doc.EndObject(n); }
    bool StartArray() { return doc.StartArray(); }
    bool EndArray(rapidjson::SizeType n) { return doc.EndArray(n); }
};
}  // namespace

void parse_json(std::string_view text, rapidjson::Document& doc) {
    rapidjson::MemoryStream ms(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
    rapidjson::Reader reader;
    bool failed = false;
    size_t offset = 0;
    auto gen = [&](rapidjson::Document& d) {
        BigIntHandler<rapidjson::Document> h{d};
        rapidjson::ParseResult r = reader.Parse<rapidjson::kParseNumbersAsStringsFlag>(is, h);
        if (r.IsError()) { failed = true; offset = r.Offset(); }
        return !r.IsError();
    };
    doc.Populate(gen);
    if (failed) throw std::invalid_argument("malformed JSON at byte " + std::to_string(offset));
}
template <class Doc>
static void parse_insitu(char* text, Doc& doc) {
    rapidjson::InsituStringStream is(text);
    rapidjson::Reader reader;
    bool failed = false;
    size_t offset = 0;
    auto gen = [&](Doc& d) {
        BigIntHandler<Doc> h{d};
        rapidjson::ParseResult r =
            reader.Parse<rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseInsituFlag>(is, h);
        if (r.IsError()) { failed = true; offset = r.Offset(); }
        return !r.IsError();
    };
    doc.Populate(gen);
    if (failed) throw std::invalid_argument("malformed JSON at byte " + std::to_string(offset));
}
void parse_json_insitu(char* text, rapidjson::Document& doc) { parse_insitu(text, doc); }
void parse_json_insitu(char* text, InputDocument& doc) { parse_insitu(text, doc); }

std::string format_double(double v) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    std::string s(buf, static_cast<size_t>(r.ptr - buf));
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
}

namespace {
// A JSON writer straight into a StringBuffer (faster than rapidjson::Writer for our values: no
// state machine, strings without escapes copied whole). Same output as rapidjson's Writer.
void put(rapidjson::StringBuffer& out, const char* s, size_t n) {
    if (n) std::memcpy(out.Push(n), s, n);
}
void write_string(rapidjson::StringBuffer& out, const char* s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    out.Put('"');
    size_t start = 0;
    for (size_t i = 0; i < n; ++i) {
        unsigned char ch = static_cast<unsigned char>(s[i]);
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        put(out, s + start, i - start);
        start = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t len = 2;
        switch (ch) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[ch >> 4];
                esc[5] = hex[ch & 15];
                len = 6;
        }
        put(out, esc, len);
    }
    put(out, s + start, n - start);
    out.Put('"');
}
void write_value(const Json& v, rapidjson::StringBuffer& out, bool sort_keys) {
    char buf[32];
    switch (v.GetType()) {
        case rapidjson::kNullType: put(out, "null", 4); return;
        case rapidjson::kFalseType: put(out, "false", 5); return;
        case rapidjson::kTrueType: put(out, "true", 4); return;
        case rapidjson::kNumberType: {
            char* end;
            if (v.IsDouble()) {
                double d = v.GetDouble();
                if (!std::isfinite(d)) {
                    put(out, "null", 4);
                    return;
                }
                end = rapidjson::internal::dtoa(d, buf, 324);
            } else if (v.IsInt64()) {
                end = rapidjson::internal::i64toa(v.GetInt64(), buf);
            } else {
                end = rapidjson::internal::u64toa(v.GetUint64(), buf);
            }
            put(out, buf, static_cast<size_t>(end - buf));
            return;
        }
        case rapidjson::kStringType:
            if (v.GetStringLength() >= 2 && v.GetString()[0] == kBigIntMarker[0] && v.GetString()[1] == kBigIntMarker[1]) {
                put(out, v.GetString() + 2, v.GetStringLength() - 2);
                return;
            }
            write_string(out, v.GetString(), v.GetStringLength());
            return;
        case rapidjson::kArrayType: {
            out.Put('[');
            bool first = true;
            for (const Json& e : v.GetArray()) {
                if (!first) out.Put(',');
                first = false;
                write_value(e, out, sort_keys);
            }
            out.Put(']');
            return;
        }
        case rapidjson::kObjectType: {
            out.Put('{');
            bool first = true;
            auto member = [&](const Json& name, const Json& value) {
                if (!first) out.Put(',');
                first = false;
                write_string(out, name.GetString(), name.GetStringLength());
                out.Put(':');
                write_value(value, out, sort_keys);
            };
            if (sort_keys) {
                for (auto* m : sorted_members(v)) member(m->name, m->value);
            } else {
                for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) member(it->name, it->value);
            }
            out.Put('}');
            return;
        }
    }
}
}  // namespace

void serialize(const Json& v, std::string& out, bool sort_keys) {
    rapidjson::StringBuffer buf;
    write_value(v, buf, sort_keys);
    out.append(buf.GetString(), buf.GetSize());
}
void write_json(const Json& v, rapidjson::StringBuffer& out) { write_value(v, out, false); }
std::string serialize(const Json& v, bool sort_keys) {
    std::string s;
    serialize(v, s, sort_keys);
    return s;
}
std::string to_text(const Json& v) {
    if (v.IsString() && type_of(v) != Type::BigInt) return std::string(sv(v));
    return serialize(v);
}

// ============================================================================ base64 / utf-8
std::string base64_encode(std::string_view in, bool urlsafe) {
    const char* tbl = urlsafe ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                              : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
        out += tbl[n >> 18]; out += tbl[(n >> 12) & 63]; out += tbl[(n >> 6) & 63]; out += tbl[n & 63];
    }
    if (i + 1 == in.size()) {
        uint32_t n = uint8_t(in[i]) << 16;
        out += tbl[n >> 18]; out += tbl[(n >> 12) & 63]; out += "==";
    } else if (i + 2 == in.size()) {
        uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
        out += tbl[n >> 18]; out += tbl[(n >> 12) & 63]; out += tbl[(n >> 6) & 63]; out += '=';
    }
    return out;
}
bool base64_decode(std::string_view in, std::string& out, bool urlsafe) {
    out.clear();
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        int v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == (urlsafe ? '-' : '+')) v = 62;
        else if (c == (urlsafe ? '_' : '/')) v = 63;
        else if (c == '=' || c == '\n' || c == '\r') continue;
        else return false;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) { bits -= 8; out.push_back(static_cast<char>((acc >> bits) & 0xff)); }
    }
    return true;
}
size_t utf8_length(std::string_view s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}
std::vector<uint32_t> utf8_decode(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        uint32_t cp;
        int len;
        if (c < 0x80) { cp = c; len = 1; }
        else if ((c >> 5) == 6) { cp = c & 0x1f; len = 2; }
        else if ((c >> 4) == 14) { cp = c & 0x0f; len = 3; }
        else { cp = c & 0x07; len = 4; }
        for (int k = 1; k < len && i + static_cast<size_t>(k) < s.size(); ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0x3f);
        out.push_back(cp);
        i += static_cast<size_t>(len);
    }
    return out;
}
void utf8_append(std::string& out, uint32_t cp) {
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
    else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18)); out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f)); out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

}  // namespace sluice::dtl

// fn_numbers.cpp — math and numbers (reference §4.3 "Math", "Numbers", "Misc: hash128").
#include "fn_common.hpp"

#include <sluice/entity.hpp>

#include <charconv>
#include <cmath>

namespace sluice::dtl {

// ---- arithmetic ------------------------------------------------------------------------------
static Num from_big(const BigInt& b) {
    Num n;
    if (b.fits_i64()) {
        n.k = Num::I;
        n.i = b.to_i64();
    } else {
        n.k = Num::B;
        n.b = b;
    }
    return n;
}
static Num from_double(double d) {
    Num n;
    n.k = Num::F;
    n.f = d;
    return n;
}
static Num from_dec(const Decimal& d) {
    Num n;
    n.k = Num::D;
    n.dec = d;
    return n;
}
static bool is_int(const Num& n) { return n.k == Num::I || n.k == Num::B; }
static bool any_dec(const Num& a, const Num& b) { return a.k == Num::D || b.k == Num::D; }
static bool any_float(const Num& a, const Num& b) { return a.k == Num::F || b.k == Num::F; }

Num num_add(const Num& a, const Num& b) {
    if (any_dec(a, b)) return from_dec(Decimal::add(a.as_dec(), b.as_dec()));
    if (any_float(a, b)) return from_double(a.as_double() + b.as_double());
    int64_t r;
    if (a.k == Num::I && b.k == Num::I && !__builtin_add_overflow(a.i, b.i, &r)) return from_big(BigInt::from_i64(r));
    return from_big(BigInt::add(a.as_big(), b.as_big()));
}
Num num_sub(const Num& a, const Num& b) {
    if (any_dec(a, b)) return from_dec(Decimal::sub(a.as_dec(), b.as_dec()));
    if (any_float(a, b)) return from_double(a.as_double() - b.as_double());
    int64_t r;
    if (a.k == Num::I && b.k == Num::I && !__builtin_sub_overflow(a.i, b.i, &r)) return from_big(BigInt::from_i64(r));
    return from_big(BigInt::sub(a.as_big(), b.as_big()));
}
Num num_mul(const Num& a, const Num& b) {
    if (any_dec(a, b)) return from_dec(Decimal::mul(a.as_dec(), b.as_dec()));
    if (any_float(a, b)) return from_double(a.as_double() * b.as_double());
    int64_t r;
    if (a.k == Num::I && b.k == Num::I && !__builtin_mul_overflow(a.i, b.i, &r)) return from_big(BigInt::from_i64(r));
    return from_big(BigInt::mul(a.as_big(), b.as_big()));
}
static bool is_zero(const Num& n) {
    switch (n.k) {
        case Num::I: return n.i == 0;
        case Num::B: return n.b.zero();
        case Num::F: return n.f == 0;
        case Num::D: return n.dec.m.zero();
    }
    return false;
}
bool num_div(const Num& a, const Num& b, Num& out) {
    if (is_zero(b)) return false;
    if (any_dec(a, b)) {
        Decimal d;
        if (!Decimal::div(a.as_dec(), b.as_dec(), d)) return false;
        out = from_dec(d);
        return true;
    }
    if (any_float(a, b)) {
        out = from_double(a.as_double() / b.as_double());
        return true;
    }
    // integers: exact quotient stays an integer, otherwise a float
    BigInt q, r;
    BigInt::divmod(a.as_big(), b.as_big(), q, r);
    if (r.zero()) out = from_big(q);
    else out = from_double(a.as_double() / b.as_double());
    return true;
}
bool num_mod(const Num& a, const Num& b, Num& out) {
    if (is_zero(b)) return false;
    if (any_dec(a, b)) {  // like Python's Decimal: the sign of the dividend
        Decimal x = a.as_dec(), y = b.as_dec();
        int32_t s = std::max(x.scale, y.scale);
        x.rescale(s);
        y.rescale(s);
        BigInt q, r;
        BigInt::divmod(x.m, y.m, q, r);
        out = from_dec(Decimal{r, s});
        return true;
    }
    if (any_float(a, b)) {  // like Python: the sign of the divisor
        double x = a.as_double(), y = b.as_double(), r = std::fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        out = from_double(r);
        return true;
    }
    BigInt q, r, bb = b.as_big();
    BigInt::divmod(a.as_big(), bb, q, r);
    if (!r.zero() && r.neg != bb.neg) r = BigInt::add(r, bb);
    out = from_big(r);
    return true;
}
// Decimal digits of a number's exact form (for bounding exact powers).
static size_t digit_count(const Num& a) {
    if (a.k == Num::I) return std::to_string(a.i).size();
    if (a.k == Num::B) return a.b.str().size();
    if (a.k == Num::D) return a.dec.m.str().size();
    return 0;
}
bool num_pow(const Num& a, const Num& b, Num& out) {
    // exact when the result stays below ~100 000 digits; otherwise a float
    if (is_int(b) && b.k == Num::I && b.i >= 0 && (is_int(a) || a.k == Num::D) &&
        static_cast<double>(b.i) * static_cast<double>(digit_count(a)) <= 100000.0) {
        if (is_int(a)) {
            BigInt result = BigInt::from_i64(1), base = a.as_big();
            for (int64_t e = b.i; e > 0; e >>= 1) {
                if (e & 1) result = BigInt::mul(result, base);
                if (e > 1) base = BigInt::mul(base, base);
            }
            out = from_big(result);
        } else {
            Decimal result{BigInt::from_i64(1), 0}, base = a.dec;
            for (int64_t e = b.i; e > 0; e >>= 1) {
                if (e & 1) result = Decimal::mul(result, base);
                if (e > 1) base = Decimal::mul(base, base);
            }
            out = from_dec(result);
        }
        return true;
    }
    double r = std::pow(a.as_double(), b.as_double());
    if (std::isnan(r)) return false;
    out = from_double(r);
    return true;
}

namespace {

bool num_of(const Json* v, Num& out) { return Num::from(*first_value(v), out); }

// Operator forms: first value of each side; null when either is null or not a number.
template <int Op>
const Json* f_op(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    Num a, b, r;
    if (!num_of(ev(n.args[0], c, t1), a) || !num_of(ev(n.args[1], c, t2), b)) return &kNull;
    switch (Op) {
        case 0: r = num_add(a, b); break;
        case 1: r = num_sub(a, b); break;
        case 2: r = num_mul(a, b); break;
        case 3: if (!num_div(a, b, r)) return &kNull; break;
        case 4: if (!num_mod(a, b, r)) return &kNull; break;
        default: if (!num_pow(a, b, r)) return &kNull; break;
    }
    r.to_json(tmp, *c.a);
    return &tmp;
}
// Map forms: OPERAND VALUES, `value OP operand` for every value.
template <int Op>
const Json* f_map_op(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    Num b;
    if (!num_of(ev(n.args[0], c, t1), b)) return &kNull;
    return map_values(ev(n.args[1], c, t2), c, tmp, [&](const Json& e, Json& o) {
        Num a, r;
        if (!Num::from(e, a)) return false;
        switch (Op) {
            case 0: r = num_add(a, b); break;
            case 1: r = num_sub(a, b); break;
            case 2: r = num_mul(a, b); break;
            case 3: if (!num_div(a, b, r)) return false; break;
            case 4: if (!num_mod(a, b, r)) return false; break;
            default: if (!num_pow(a, b, r)) return false; break;
        }
        r.to_json(o, *c.a);
        return true;
    });
}

const Json* f_abs(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        Num a;
        if (!Num::from(e, a)) return false;
        switch (a.k) {
            case Num::I: if (a.i == INT64_MIN) { a = from_big(BigInt::sub(BigInt(), a.as_big())); } else a.i = a.i < 0 ? -a.i : a.i; break;
            case Num::B: a.b.neg = false; break;
            case Num::F: a.f = std::fabs(a.f); break;
            case Num::D: a.dec.m.neg = false; break;
        }
        a.to_json(o, *c.a);
        return true;
    });
}

// ceil/floor/round: [DIGITS] VALUES
template <Decimal::Round Mode>
const Json* f_round(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    int64_t digits = 0;
    bool has_digits = n.args.size() == 2;
    if (has_digits && (!int_arg(ev(n.args[0], c, t1), digits) || digits > 1000 || digits < -1000)) return &kNull;
    return map_values(ev(n.args.back(), c, t2), c, tmp, [&](const Json& e, Json& o) {
        Num a;
        if (!Num::from(e, a)) return false;
        if (a.k == Num::F && !std::isfinite(a.f)) return false;
        Decimal d = a.as_dec().quantize(static_cast<int32_t>(digits), Mode);
        if (!has_digits) {
            set_bigint(o, d.m, *c.a);  // digits 0: an integer
            return true;
        }
        switch (a.k) {
            case Num::F: o.SetDouble(d.to_double()); break;
            case Num::D: set_decimal(o, d, *c.a); break;
            default: {
                d.normalize_trailing(0);
                Decimal whole = d.quantize(0, Decimal::Round::Trunc);
                set_bigint(o, whole.m, *c.a);
            }
        }
        return true;
    });
}

template <double (*F)(double)>
const Json* f_float_fn(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        Num a;
        if (!Num::from(e, a)) return false;
        double x = a.as_double();
        double r = F(x);
        if (!std::isfinite(r)) return false;
        o.SetDouble(r);
        return true;
    });
}
double dsin(double x) { return std::sin(x); }
double dcos(double x) { return std::cos(x); }
double dtan(double x) { return std::tan(x); }
const Json* f_sqrt(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        Num a;
        if (!Num::from(e, a) || a.as_double() < 0) return false;
        o.SetDouble(std::sqrt(a.as_double()));
        return true;
    });
}

// ---- conversions: [DEFAULT] VALUES -----------------------------------------------------------
std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}
// "0x…": two's complement (a leading digit >= 8 means negative).
bool parse_hex(std::string_view s, BigInt& out) {
    bool neg_sign = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        neg_sign = s[0] == '-';
        s.remove_prefix(1);
    }
    if (s.size() < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return false;
    s.remove_prefix(2);
    BigInt v;
    int first = -1;
    for (char ch : s) {
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0) return false;
        if (first < 0) first = d;
        v.mul_small(16, static_cast<uint32_t>(d));
    }
    if (first >= 8 && !neg_sign) {
        BigInt mod = BigInt::from_i64(1);
        for (size_t i = 0; i < s.size(); ++i) mod.mul_small(16);
        v = BigInt::sub(v, mod);
    }
    if (neg_sign) v = BigInt::sub(BigInt(), v);
    out = v;
    return true;
}
bool to_integer(const Json& v, Json& o, Ctx& c) {
    Num a;
    if (Num::from(v, a)) {
        if (a.k == Num::F && !std::isfinite(a.f)) return false;
        set_bigint(o, a.as_big(), *c.a);
        return true;
    }
    std::string_view s;
    if (!plain_text(v, s)) return false;
    s = trim(s);
    BigInt b;
    if (BigInt::parse(s, b) || parse_hex(s, b)) {
        set_bigint(o, b, *c.a);
        return true;
    }
    return false;
}
bool to_decimal(const Json& v, Json& o, Ctx& c) {
    Num a;
    if (Num::from(v, a)) {
        if (a.k == Num::F && !std::isfinite(a.f)) return false;
        set_decimal(o, a.as_dec(), *c.a);
        return true;
    }
    std::string_view s;
    if (!plain_text(v, s)) return false;
    Decimal d;
    if (!Decimal::parse(trim(s), d)) return false;
    set_decimal(o, d, *c.a);
    return true;
}
bool to_float(const Json& v, Json& o, Ctx&) {
    Num a;
    if (Num::from(v, a)) {
        o.SetDouble(a.as_double());
        return true;
    }
    std::string_view s;
    if (!plain_text(v, s)) return false;
    s = trim(s);
    Decimal d;
    if (!Decimal::parse(s, d)) return false;  // digits only: no "nan"/"inf"
    double x = 0;
    auto r = std::from_chars(s.data() + (s[0] == '+'), s.data() + s.size(), x);
    if (r.ec != std::errc() || !std::isfinite(x)) return false;
    o.SetDouble(x);
    return true;
}
template <bool (*Convert)(const Json&, Json&, Ctx&)>
const Json* f_convert(const Node& n, Ctx& c, Json& tmp) {
    Json t, dt;
    const Json* v = ev(n.args.back(), c, t);
    const Json* def = n.args.size() == 2 ? own(ev(n.args[0], c, dt), dt, c) : nullptr;
    return map_values(v, c, tmp, [&](const Json& e, Json& o) {
        if (Convert(e, o, c)) return true;
        if (def && !e.IsNull()) {
            copy_into(o, *def, c);
            return true;
        }
        return false;
    });
}

// hex: two's complement in whole bytes, "0x00ff" for 255, "0xff" for -1.
std::string to_hex(const BigInt& value) {
    BigInt v = value;
    size_t bytes = 1;
    BigInt limit = BigInt::from_i64(128);  // 2^(8*bytes-1)
    while (true) {
        bool fits = v.neg ? BigInt::cmp(BigInt::sub(BigInt(), v), limit) <= 0 : BigInt::cmp(v, limit) < 0;
        if (fits) break;
        ++bytes;
        limit.mul_small(256);
    }
    if (v.neg) {
        BigInt mod = limit;
        mod.mul_small(2);
        v = BigInt::add(v, mod);
    }
    std::string digits;
    for (size_t i = 0; i < bytes * 2; ++i) {
        uint32_t d = v.div_small(16);
        digits.push_back("0123456789abcdef"[d]);
    }
    std::reverse(digits.begin(), digits.end());
    return "0x" + digits;
}
const Json* f_hex(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        Num a;
        if (!Num::from(e, a) || !is_int(a)) return false;
        set_text(o, to_hex(a.as_big()), c);
        return true;
    });
}

// hash128 "murmur3" [SEED] VALUES → MurmurHash3 x64 128 as an unsigned integer (h1 + h2·2^64).
const Json* f_hash128(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    const Json* algo = first_value(ev(n.args[0], c, t1));
    if (!algo->IsString() || sv(*algo) != "murmur3") throw RuntimeError("hash128: only \"murmur3\" is supported");
    int64_t seed = 0;
    if (n.args.size() == 3 && !int_arg(ev(n.args[1], c, t2), seed)) return &kNull;
    return map_values(ev(n.args.back(), c, t3), c, tmp, [&](const Json& e, Json& o) {
        if (e.IsNull()) return false;
        std::string bytes;
        if (type_of(e) == Type::Bytes) {
            if (!base64_decode(sv(e).substr(2), bytes)) return false;
        } else if (e.IsString() && type_of(e) != Type::BigInt) {
            bytes = std::string(sv(e));
        } else {
            bytes = serialize(e, true);
        }
        sluice::Hash128 h = sluice::murmur3_128(bytes.data(), bytes.size(), static_cast<uint32_t>(seed));
        BigInt v = BigInt::from_u64(h.low);  // the second 64-bit word (h2)
        BigInt shift = BigInt::from_u64(1ull << 32);
        v = BigInt::mul(BigInt::mul(v, shift), shift);
        v = BigInt::add(v, BigInt::from_u64(h.high));
        set_bigint(o, v, *c.a);
        return true;
    });
}

}  // namespace

void register_numbers(FnTable& t) {
    t["+"] = {2, 2, &f_op<0>};
    t["-"] = {2, 2, &f_op<1>};
    t["*"] = {2, 2, &f_op<2>};
    t["/"] = {2, 2, &f_op<3>};
    t["%"] = {2, 2, &f_op<4>};
    t["^"] = {2, 2, &f_op<5>};
    t["plus"] = {2, 2, &f_map_op<0>};
    t["minus"] = {2, 2, &f_map_op<1>};
    t["multiply"] = {2, 2, &f_map_op<2>};
    t["divide"] = {2, 2, &f_map_op<3>};
    t["mod"] = {2, 2, &f_map_op<4>};
    t["pow"] = {2, 2, &f_map_op<5>};
    t["abs"] = {1, 1, &f_abs};
    t["ceil"] = {1, 2, &f_round<Decimal::Round::Ceil>};
    t["floor"] = {1, 2, &f_round<Decimal::Round::Floor>};
    t["round"] = {1, 2, &f_round<Decimal::Round::HalfEven>};
    t["sqrt"] = {1, 1, &f_sqrt};
    t["sin"] = {1, 1, &f_float_fn<&dsin>};
    t["cos"] = {1, 1, &f_float_fn<&dcos>};
    t["tan"] = {1, 1, &f_float_fn<&dtan>};
    t["integer"] = {1, 2, &f_convert<&to_integer>};
    t["decimal"] = {1, 2, &f_convert<&to_decimal>};
    t["float"] = {1, 2, &f_convert<&to_float>};
    t["hex"] = {1, 1, &f_hex};
    t["hash128"] = {2, 3, &f_hash128};
}

}  // namespace sluice::dtl

// value.hpp — the DTL value model over RapidJSON values (internal to the engine).
//
// Values are plain rapidjson::Value objects. Typed values are transit strings ("~t…", "~f…", …).
// Integers beyond 64 bits are strings holding the internal marker kBigIntMarker followed by the
// decimal digits; serialize() writes them back as bare JSON numbers.
#pragma once

#include "sluice/dtl/dtl.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::dtl {

using Json = rapidjson::Value;
using Alloc = rapidjson::MemoryPoolAllocator<>;

// Internal prefix for integers that do not fit 64 bits (never appears on the wire).
inline constexpr char kBigIntMarker[] = "\x1f" "I";

// ---- arbitrary-precision integers (sign + magnitude, base 1e9 limbs) -------------------------
struct BigInt {
    bool neg = false;
    std::vector<uint32_t> d;  // little-endian limbs, base 1e9; empty = 0

    static constexpr uint32_t kBase = 1000000000u;
    BigInt() = default;
    static BigInt from_i64(int64_t v);
    static BigInt from_u64(uint64_t v);
    static bool parse(std::string_view s, BigInt& out);  // [+-]digits
    std::string str() const;
    bool zero() const { return d.empty(); }
    bool fits_i64() const;
    int64_t to_i64() const;
    double to_double() const;
    void trim();
    static int cmp_abs(const BigInt& a, const BigInt& b);
    static int cmp(const BigInt& a, const BigInt& b);
    static BigInt add(const BigInt& a, const BigInt& b);
    static BigInt sub(const BigInt& a, const BigInt& b);
    static BigInt mul(const BigInt& a, const BigInt& b);
    // Truncating division; false on division by zero.
    static bool divmod(const BigInt& a, const BigInt& b, BigInt& q, BigInt& r);
    static BigInt pow10(int n);
    void mul_small(uint32_t m, uint32_t add = 0);
    uint32_t div_small(uint32_t m);  // returns remainder
};

// ---- exact decimals: value = m * 10^-scale ---------------------------------------------------
struct Decimal {
    BigInt m;
    int32_t scale = 0;
    static bool parse(std::string_view s, Decimal& out);  // "12.30", "-1e5", "1E-3"
    static Decimal from_int(const BigInt& b) { return Decimal{b, 0}; }
    static bool from_double(double v, Decimal& out);       // via the shortest round-trip text
    std::string str() const;                               // like Python's str(Decimal)
    double to_double() const;
    void rescale(int32_t s);                               // s >= scale: exact
    static int cmp(Decimal a, Decimal b);
    static Decimal add(Decimal a, Decimal b);
    static Decimal sub(Decimal a, Decimal b);
    static Decimal mul(const Decimal& a, const Decimal& b);
    static bool div(const Decimal& a, const Decimal& b, Decimal& out, int digits = 28);
    // Integer part, rounding towards -inf (floor), +inf (ceil) or half-even.
    enum class Round { Floor, Ceil, HalfEven, Trunc };
    Decimal quantize(int32_t digits, Round mode) const;  // keep `digits` fractional digits
    void normalize_trailing(int32_t min_scale = 0);      // strip trailing zeros down to min_scale
};

// ---- date/time: seconds + nanoseconds since 1970-01-01T00:00:00Z -----------------------------
struct DateTime {
    int64_t sec = 0;
    int32_t nsec = 0;   // 0..999999999
    bool date = false;  // a date ("~t2015-12-31") rather than a datetime
    static bool parse(std::string_view iso, DateTime& out);  // without the "~t" prefix
    std::string str() const;                                 // without the "~t" prefix
    static int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
    static void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d);
    bool in_range() const;
    int cmp(const DateTime& o) const {
        if (sec != o.sec) return sec < o.sec ? -1 : 1;
        if (nsec != o.nsec) return nsec < o.nsec ? -1 : 1;
        return 0;
    }
};

// ---- classification --------------------------------------------------------------------------
enum class Type {
    Null, Bool, Int, BigInt, Float, Decimal, Datetime, Uuid, Ni, Uri, String, Dict, List, Bytes
};
Type type_of(const Json& v);
const char* type_name(Type t);
inline bool is_number_type(Type t) { return t == Type::Int || t == Type::BigInt || t == Type::Float || t == Type::Decimal; }
inline std::string_view sv(const Json& s) { return {s.GetString(), s.GetStringLength()}; }
inline bool is_plain_string(const Json& v) { return v.IsString() && type_of(v) == Type::String; }

// Numbers as a tagged union for arithmetic.
struct Num {
    enum Kind { I, B, F, D } k = I;
    int64_t i = 0;
    BigInt b;
    double f = 0;
    Decimal dec;
    static bool from(const Json& v, Num& out);  // false when v is not a number
    BigInt as_big() const;
    Decimal as_dec() const;  // for F: via shortest text
    double as_double() const;
    void to_json(Json& out, Alloc& a) const;  // Int / big-int marker / double / "~f…"
};
void set_bigint(Json& out, const BigInt& b, Alloc& a);   // Int64 when it fits
void set_decimal(Json& out, const Decimal& d, Alloc& a);
void set_datetime(Json& out, const DateTime& t, Alloc& a);
bool get_datetime(const Json& v, DateTime& out);  // "~t…" only

// ---- semantics -------------------------------------------------------------------------------
bool truthy(const Json& v);                      // false, null and [] are false
bool equals(const Json& a, const Json& b);       // exact, but numbers compare by value
int compare(const Json& a, const Json& b);       // mixed-type ordering (reference §1.4)
int type_rank(Type t);

// Shallow copy: strings are referenced (not copied); arrays/objects are rebuilt in `a`.
// The source must outlive the copy (true for a batch: inputs live until the output is written).
void shallow_copy(Json& out, const Json& in, Alloc& a);
// Deep copy owning everything (used for values that outlive the batch, e.g. lookup caches).
void deep_copy(Json& out, const Json& in, Alloc& a);
void set_string(Json& out, std::string_view s, Alloc& a);

// ---- text ------------------------------------------------------------------------------------
// Parses JSON keeping integers of any size exactly (beyond 64 bits: the big-int marker). Throws
// std::invalid_argument with the byte offset on malformed input.
// Writes JSON; big-int markers become numbers, NaN/Inf become null. `sort_keys` sorts objects.
void serialize(const Json& v, std::string& out, bool sort_keys = false);
// Python-ish str(): strings as-is, others as JSON.
std::string to_text(const Json& v);
// A document whose parse stack also lives in a pool (reused from batch to batch: no large
// malloc/free per batch); its values are ordinary Json values.
using InputDocument = rapidjson::GenericDocument<rapidjson::UTF8<>, Alloc, Alloc>;
void parse_json_insitu(char* text, InputDocument& doc);
// Appends JSON text to a reusable buffer (big integers as numbers, NaN/Inf as null).
void write_json(const Json& v, rapidjson::StringBuffer& out);
std::string format_double(double v);  // shortest round-trip, "1.0" style for integral values

// ---- base64 / utf-8 helpers ------------------------------------------------------------------
std::string base64_encode(std::string_view bytes, bool urlsafe = false);
bool base64_decode(std::string_view text, std::string& out, bool urlsafe = false);
size_t utf8_length(std::string_view s);
std::vector<uint32_t> utf8_decode(std::string_view s);
void utf8_append(std::string& out, uint32_t cp);

}  // namespace sluice::dtl

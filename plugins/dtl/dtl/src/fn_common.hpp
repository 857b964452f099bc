// fn_common.hpp — helpers shared by the function implementations (internal).
#pragma once

#include "engine.hpp"

#include <string>
#include <cmath>
#include <string_view>

namespace sluice::dtl {

bool list_equals(const Json& a, const Json& b);  // eq: both sides as lists, exact
bool overlaps(const Json& a, const Json& b);     // join eq: any value in common
bool is_nullish(const Json& v);                  // null, [] or [null, ...]
std::string string_of(const Json& v);            // `string`: text of any value
std::string string_or_empty(const Json& obj, const char* key);
const Json* f_eq(const Node& n, Ctx& c, Json& tmp);
const Json* f_eq_overlap(const Node& n, Ctx& c, Json& tmp);

// Arithmetic over the number model (Int / BigInt / Float / Decimal); see docs/dtl.md.
Num num_add(const Num& a, const Num& b);
Num num_sub(const Num& a, const Num& b);
Num num_mul(const Num& a, const Num& b);
bool num_div(const Num& a, const Num& b, Num& out);  // false: division by zero
bool num_mod(const Num& a, const Num& b, Num& out);
bool num_pow(const Num& a, const Num& b, Num& out);

inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (char& ch : out)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    return out;
}
// The string `v` as text when it is a plain string (no transit tag).
inline bool plain_text(const Json& v, std::string_view& out) {
    if (!is_plain_string(v)) return false;
    out = sv(v);
    return true;
}
// Appends every element (lists flattened one level) of `v` to `out`, skipping nulls.
inline void append_flat(Json& out, const Json& v, Ctx& c) {
    each(&v, [&](const Json& e) {
        if (!e.IsNull()) push_copy(out, e, c);
    });
}
// An integer argument (first value); false when it is not an integer.
inline bool int_arg(const Json* v, int64_t& out) {
    v = first_value(v);
    if (v->IsInt64()) {
        out = v->GetInt64();
        return true;
    }
    if (v->IsDouble()) {
        double d = v->GetDouble();
        if (!(d >= -9.0e18 && d <= 9.0e18) || d != std::trunc(d)) return false;  // NaN fails too
        out = static_cast<int64_t>(d);
        return true;
    }
    return false;
}
inline void set_text(Json& out, std::string_view s, Ctx& c) { set_string(out, s, *c.a); }
inline std::string make_ni_text(std::string_view ns, std::string_view id) {
    std::string out = "~:";
    if (!ns.empty()) out.append(ns).push_back(':');
    out.append(id);
    return out;
}

}  // namespace sluice::dtl

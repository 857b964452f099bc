// fn_strings.cpp — strings, URIs, UUIDs, bytes, JSON (reference §4.3).
#include "fn_common.hpp"

#include <algorithm>
#include <cctype>
#include <clocale>
#include <cstdio>
#include <cstring>
#include <cwctype>
#include <locale.h>
#include <random>

namespace sluice::dtl {

// Text of a value for `string`, `join` and messages (see docs/dtl.md).
std::string string_of(const Json& v) {
    switch (type_of(v)) {
        case Type::Null: return "";
        case Type::Bool: return v.GetBool() ? "true" : "false";
        case Type::Int: return std::to_string(v.GetInt64());
        case Type::BigInt: return serialize(v);
        case Type::Float: return format_double(v.GetDouble());
        case Type::String: return std::string(sv(v));
        case Type::Ni: return std::string(sv(v));
        case Type::Bytes: {
            std::string out;
            base64_decode(sv(v).substr(2), out);
            return out;
        }
        case Type::Datetime:
        case Type::Decimal:
        case Type::Uri:
        case Type::Uuid: return std::string(sv(v).substr(2));
        case Type::Dict:
        case Type::List: return serialize(v);
    }
    return "";
}

namespace {

bool is_ascii(std::string_view s) {
    for (unsigned char ch : s)
        if (ch >= 0x80) return false;
    return true;
}
locale_t utf8_locale() {
    static locale_t loc = [] {
        locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
        return l;
    }();
    return loc;
}
// ASCII case change straight into the pool; false when `s` is not ASCII.
template <bool Upper>
bool change_case_ascii(std::string_view s, Json& out, Ctx& c) {
    if (!is_ascii(s)) return false;
    char* buf = static_cast<char*>(c.a->Malloc(s.size() + 1));
    for (size_t i = 0; i < s.size(); ++i) {
        char ch = s[i];
        if (Upper && ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
        if (!Upper && ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
        buf[i] = ch;
    }
    buf[s.size()] = '\0';
    out.SetString(rapidjson::StringRef(buf, static_cast<rapidjson::SizeType>(s.size())));
    return true;
}
template <bool Upper>
std::string change_case(std::string_view s) {
    std::string out(s);
    if (is_ascii(s)) {
        for (char& ch : out) {
            if (Upper && ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
            if (!Upper && ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
        }
        return out;
    }
    locale_t loc = utf8_locale();
    out.clear();
    for (uint32_t cp : utf8_decode(s)) {
        wint_t w = static_cast<wint_t>(cp);
        if (loc) w = Upper ? towupper_l(w, loc) : towlower_l(w, loc);
        else if (cp < 128) w = static_cast<wint_t>(Upper ? std::toupper(static_cast<int>(cp)) : std::tolower(static_cast<int>(cp)));
        utf8_append(out, static_cast<uint32_t>(w));
    }
    return out;
}

// Maps `fn(std::string_view) -> std::string` over the plain strings of a value.
template <class F>
const Json* map_strings(const Json* v, Ctx& c, Json& tmp, F&& fn) {
    return map_values(v, c, tmp, [&](const Json& e, Json& o) {
        std::string_view s;
        if (!plain_text(e, s)) return false;
        set_text(o, fn(s), c);
        return true;
    });
}

const Json* f_concat(const Node& n, Ctx& c, Json& tmp) {
    // Collect the parts, then write them once into the pool (no temporary std::string).
    std::string_view parts[16];
    std::vector<std::string_view> more;
    size_t count = 0, total = 0;
    Json small[8];
    std::vector<Json> large(n.args.size() > 8 ? n.args.size() : 0);
    Json* temps = n.args.size() > 8 ? large.data() : small;
    for (size_t i = 0; i < n.args.size(); ++i) {
        each(ev(n.args[i], c, temps[i]), [&](const Json& e) {
            std::string_view s;
            if (!plain_text(e, s)) return;
            if (count < 16) parts[count] = s;
            else more.push_back(s);
            ++count;
            total += s.size();
        });
    }
    char* buf = static_cast<char*>(c.a->Malloc(total + 1));
    size_t at = 0;
    for (size_t i = 0; i < count; ++i) {
        std::string_view s = i < 16 ? parts[i] : more[i - 16];
        if (!s.empty()) std::memcpy(buf + at, s.data(), s.size());
        at += s.size();
    }
    buf[total] = '\0';
    tmp.SetString(rapidjson::StringRef(buf, static_cast<rapidjson::SizeType>(total)));
    return &tmp;
}
const Json* f_join(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Json* sep = first_value(ev(n.args[0], c, t1));
    std::string_view s;
    if (!plain_text(*sep, s)) return &kNull;
    std::string out;
    bool first = true;
    each(ev(n.args[1], c, t2), [&](const Json& e) {
        std::string_view part;
        if (!plain_text(e, part)) return;
        if (!first) out.append(s);
        out.append(part);
        first = false;
    });
    set_text(tmp, out, c);
    return &tmp;
}
const Json* f_string(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[0], c, t);
    if (v->IsNull()) return &kNull;
    set_text(tmp, string_of(*v), c);
    return &tmp;
}
const Json* f_length(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        std::string_view s;
        if (!plain_text(e, s)) return false;
        o.SetInt64(static_cast<int64_t>(utf8_length(s)));
        return true;
    });
}
const Json* f_matches(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    std::string_view pattern;
    if (!plain_text(*first_value(ev(n.args[0], c, t1)), pattern)) return ret_bool(tmp, false);
    const Json* v = ev(n.args[1], c, t2);
    bool any = false, all = true;
    each(v, [&](const Json& e) {
        std::string_view s;
        any = true;
        if (!plain_text(e, s) || !wildcard_match(pattern, s)) all = false;
    });
    return ret_bool(tmp, any && all);
}
template <bool Upper>
const Json* f_case(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        std::string_view s;
        if (!plain_text(e, s)) return false;
        if (!change_case_ascii<Upper>(s, o, c)) set_text(o, change_case<Upper>(s), c);
        return true;
    });
}
template <bool Left>
const Json* f_just(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    int64_t width;
    std::string_view fill;
    if (!int_arg(ev(n.args[0], c, t1), width) || !plain_text(*first_value(ev(n.args[1], c, t2)), fill) ||
        utf8_length(fill) != 1)
        return &kNull;
    if (width > 10000000) throw RuntimeError("ljust/rjust: width above 10 000 000");
    return map_strings(ev(n.args[2], c, t3), c, tmp, [&](std::string_view s) {
        std::string out(s);
        int64_t len = static_cast<int64_t>(utf8_length(s));
        std::string pad;
        for (int64_t i = len; i < width; ++i) pad.append(fill);
        return Left ? out + pad : pad + out;
    });
}
template <int Side>  // 0 both, 1 left, 2 right
const Json* f_strip(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    std::vector<uint32_t> chars;
    bool custom = false;
    if (n.args.size() == 2) {
        std::string_view cs;
        if (!plain_text(*first_value(ev(n.args[0], c, t1)), cs)) return &kNull;
        chars = utf8_decode(cs);
        custom = true;
    }
    auto strip_me = [&](uint32_t cp) {
        if (custom) return std::find(chars.begin(), chars.end(), cp) != chars.end();
        return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f' || cp == 0xA0 ||
               cp == 0x2028 || cp == 0x2029 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200A);
    };
    return map_strings(ev(n.args.back(), c, t2), c, tmp, [&](std::string_view s) {
        std::vector<uint32_t> cps = utf8_decode(s);
        size_t b = 0, e = cps.size();
        if (Side != 2) while (b < e && strip_me(cps[b])) ++b;
        if (Side != 1) while (e > b && strip_me(cps[e - 1])) --e;
        std::string out;
        for (size_t i = b; i < e; ++i) utf8_append(out, cps[i]);
        return out;
    });
}
std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    if (from.empty()) return std::string(s);
    std::string out;
    size_t pos = 0;
    while (true) {
        size_t hit = s.find(from, pos);
        if (hit == std::string_view::npos) break;
        out.append(s.substr(pos, hit - pos)).append(to);
        pos = hit + from.size();
    }
    out.append(s.substr(pos));
    return out;
}
const Json* f_replace(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    std::vector<std::pair<std::string, std::string>> pairs;
    if (n.args.size() == 2) {
        const Json* d = ev(n.args[0], c, t1);
        if (!d->IsObject()) return &kNull;
        for (auto it = d->MemberBegin(); it != d->MemberEnd(); ++it)
            if (is_plain_string(it->value)) pairs.emplace_back(sv(it->name), sv(it->value));
    } else {
        std::string_view from, to;
        if (!plain_text(*first_value(ev(n.args[0], c, t1)), from) || !plain_text(*first_value(ev(n.args[1], c, t2)), to))
            return &kNull;
        pairs.emplace_back(from, to);
    }
    return map_strings(ev(n.args.back(), c, t3), c, tmp, [&](std::string_view s) {
        std::string out(s);
        for (const auto& [from, to] : pairs) out = replace_all(out, from, to);
        return out;
    });
}
const Json* f_split(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    bool whitespace = true;
    std::string sep;
    if (n.args.size() == 2) {
        std::string_view s;
        if (!plain_text(*first_value(ev(n.args[0], c, t1)), s)) return &kNull;
        sep = std::string(s);
        whitespace = false;
    }
    return map_values(ev(n.args.back(), c, t2), c, tmp, [&](const Json& e, Json& o) {
        std::string_view s;
        if (!plain_text(e, s)) return false;
        o.SetArray();
        auto push = [&](std::string_view part) {
            Json p;
            set_text(p, part, c);
            o.PushBack(p, *c.a);
        };
        if (whitespace) {
            size_t i = 0;
            while (i < s.size()) {
                while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
                size_t start = i;
                while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
                if (i > start) push(s.substr(start, i - start));
            }
        } else if (sep.empty()) {
            for (uint32_t cp : utf8_decode(s)) {
                std::string ch;
                utf8_append(ch, cp);
                push(ch);
            }
        } else {
            size_t pos = 0;
            while (true) {
                size_t hit = s.find(sep, pos);
                if (hit == std::string_view::npos) break;
                push(s.substr(pos, hit - pos));
                pos = hit + sep.size();
            }
            push(s.substr(pos));
        }
        return true;
    });
}
const Json* f_substring(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    int64_t start, end = 0;
    bool has_end = n.args.size() == 3;
    if (!int_arg(ev(n.args[0], c, t1), start)) return &kNull;
    if (has_end && !int_arg(ev(n.args[1], c, t2), end)) return &kNull;
    return map_strings(ev(n.args.back(), c, t3), c, tmp, [&](std::string_view s) {
        std::vector<uint32_t> cps = utf8_decode(s);
        int64_t size = static_cast<int64_t>(cps.size());
        int64_t b = start < 0 ? std::max<int64_t>(0, size + start) : std::min(start, size);
        int64_t e = !has_end ? size : end < 0 ? std::max<int64_t>(0, size + end) : std::min(end, size);
        std::string out;
        for (int64_t i = b; i < e; ++i) utf8_append(out, cps[static_cast<size_t>(i)]);
        return out;
    });
}

// ---- URIs ----------------------------------------------------------------------------------
const Json* f_uri(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        if (type_of(e) == Type::Uri) {
            copy_into(o, e, c);
            return true;
        }
        std::string_view s;
        if (!plain_text(e, s)) return false;
        set_text(o, "~r" + std::string(s), c);
        return true;
    });
}
const Json* f_url_quote(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    std::string safe = "/";
    if (n.args.size() == 2) {
        std::string_view s;
        if (!plain_text(*first_value(ev(n.args[0], c, t1)), s)) return &kNull;
        safe = std::string(s);
    }
    return map_strings(ev(n.args.back(), c, t2), c, tmp, [&](std::string_view s) {
        std::string out;
        for (unsigned char ch : s) {
            if (std::isalnum(ch) || ch == '_' || ch == '.' || ch == '-' || ch == '~' ||
                (ch < 128 && safe.find(static_cast<char>(ch)) != std::string::npos)) {
                out.push_back(static_cast<char>(ch));
            } else {
                char buf[4];
                std::snprintf(buf, sizeof buf, "%%%02X", ch);
                out.append(buf);
            }
        }
        return out;
    });
}
const Json* f_url_unquote(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_strings(ev(n.args[0], c, t), c, tmp, [&](std::string_view s) {
        std::string out;
        for (size_t i = 0; i < s.size(); ++i) {
            if (s[i] == '%' && i + 2 < s.size() + 0 && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
                std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
                out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
                i += 2;
            } else {
                out.push_back(s[i]);
            }
        }
        return out;
    });
}

// ---- UUIDs ---------------------------------------------------------------------------------
bool parse_uuid(std::string_view s, std::string& out) {
    if (s.substr(0, 9) == "urn:uuid:") s.remove_prefix(9);
    if (s.size() >= 2 && s.front() == '{' && s.back() == '}') s = s.substr(1, s.size() - 2);
    std::string hex;
    for (size_t i = 0; i < s.size(); ++i) {
        char ch = s[i];
        if (ch == '-') {
            continue;
        }
        if (!std::isxdigit(static_cast<unsigned char>(ch))) return false;
        hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    }
    if (hex.size() != 32) return false;
    if (s.size() != 32 && s.size() != 36) return false;
    if (s.size() == 36 && (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')) return false;
    out = hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" + hex.substr(20);
    return true;
}
std::string random_uuid() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    uint64_t a = rng(), b = rng();
    a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull;  // version 4
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // variant 10
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                  static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffull));
    return buf;
}
const Json* f_uuid(const Node& n, Ctx& c, Json& tmp) {
    if (n.args.empty()) {
        set_text(tmp, "~u" + random_uuid(), c);
        return &tmp;
    }
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        std::string_view s;
        if (type_of(e) == Type::Uuid) s = sv(e).substr(2);
        else if (!plain_text(e, s)) return false;
        std::string canonical;
        if (!parse_uuid(s, canonical)) return false;
        set_text(o, "~u" + canonical, c);
        return true;
    });
}

// ---- bytes ---------------------------------------------------------------------------------
const Json* f_bytes(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        if (type_of(e) == Type::Bytes) {
            copy_into(o, e, c);
            return true;
        }
        std::string_view s;
        if (!plain_text(e, s)) return false;
        set_text(o, "~b" + base64_encode(s), c);
        return true;
    });
}
const Json* f_base64_encode(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        std::string bytes;
        if (type_of(e) == Type::Bytes) {
            if (!base64_decode(sv(e).substr(2), bytes)) return false;
        } else {
            std::string_view s;
            if (!plain_text(e, s)) return false;
            bytes = std::string(s);
        }
        set_text(o, base64_encode(bytes), c);
        return true;
    });
}
const Json* f_base64_decode(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        std::string_view s;
        if (!plain_text(e, s)) return false;
        std::string bytes;
        bool urlsafe = s.find_first_of("-_") != std::string_view::npos;
        if (!base64_decode(s, bytes, urlsafe)) return false;
        set_text(o, "~b" + base64_encode(bytes), c);
        return true;
    });
}

// ---- JSON ----------------------------------------------------------------------------------
// Typed values as plain JSON (for `json`): decimals as numbers, others as their text.
void plain_json(const Json& v, Json& out, Ctx& c) {
    switch (type_of(v)) {
        case Type::Decimal: {
            Decimal d;
            if (Decimal::parse(sv(v).substr(2), d)) {
                std::string text = d.str();
                if (text.find('.') == std::string::npos) {
                    set_bigint(out, d.m, *c.a);
                } else {
                    double x = d.to_double();
                    out.SetDouble(x);
                }
                return;
            }
            break;
        }
        case Type::Datetime:
        case Type::Uri:
        case Type::Uuid:
        case Type::Bytes: set_text(out, sv(v).substr(2), c); return;
        case Type::List:
            out.SetArray();
            for (const Json& e : v.GetArray()) {
                Json x;
                plain_json(e, x, c);
                out.PushBack(x, *c.a);
            }
            return;
        case Type::Dict:
            out.SetObject();
            for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
                Json k, x;
                shallow_copy(k, it->name, *c.a);
                plain_json(it->value, x, c);
                out.AddMember(k, x, *c.a);
            }
            return;
        default: break;
    }
    shallow_copy(out, v, *c.a);
}
template <bool Transit>
const Json* f_json(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[0], c, t);
    if (Transit) {
        set_text(tmp, serialize(*v, true), c);
    } else {
        Json plain;
        plain_json(*v, plain, c);
        set_text(tmp, serialize(plain, true), c);
    }
    return &tmp;
}
const Json* f_json_parse(const Node& n, Ctx& c, Json& tmp) {
    Json t, dt;
    const Json* v = first_value(ev(n.args.back(), c, t));
    std::string_view s;
    if (plain_text(*v, s)) {
        rapidjson::Document doc;
        try {
            parse_json(s, doc);
            deep_copy(tmp, doc, *c.a);
            return &tmp;
        } catch (const std::invalid_argument&) {
        }
    }
    if (n.args.size() == 2) return ev(n.args[0], c, tmp);
    return &kNull;
}

}  // namespace

void register_strings(FnTable& t) {
    t["concat"] = {0, -1, &f_concat};
    t["join"] = {2, 2, &f_join};
    t["string"] = {1, 1, &f_string};
    t["length"] = {1, 1, &f_length};
    t["matches"] = {2, 2, &f_matches};
    t["lower"] = {1, 1, &f_case<false>};
    t["upper"] = {1, 1, &f_case<true>};
    t["ljust"] = {3, 3, &f_just<true>};
    t["rjust"] = {3, 3, &f_just<false>};
    t["strip"] = {1, 2, &f_strip<0>};
    t["lstrip"] = {1, 2, &f_strip<1>};
    t["rstrip"] = {1, 2, &f_strip<2>};
    t["replace"] = {2, 3, &f_replace};
    t["split"] = {1, 2, &f_split};
    t["substring"] = {2, 3, &f_substring};
    t["uri"] = {1, 1, &f_uri};
    t["url-quote"] = {1, 2, &f_url_quote};
    t["url-unquote"] = {1, 1, &f_url_unquote};
    t["uuid"] = {0, 1, &f_uuid};
    t["bytes"] = {1, 1, &f_bytes};
    t["base64-encode"] = {1, 1, &f_base64_encode};
    t["base64-decode"] = {1, 1, &f_base64_decode};
    t["json"] = {1, 1, &f_json<false>};
    t["json-transit"] = {1, 1, &f_json<true>};
    t["json-parse"] = {1, 2, &f_json_parse};
    t["json-transit-parse"] = {1, 2, &f_json_parse};
}

}  // namespace sluice::dtl

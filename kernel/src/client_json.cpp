// JSON text for the client: Python-compatible formatting (Sesam's client writes and compares
// JSON with Python's json.dumps), parsing with located errors, and unified diffs.
#include <sluice/kernel/client.hpp>

#include <rapidjson/error/en.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace sluice::kernel::client {

// ---- Python-style JSON output ---------------------------------------------------------------

std::string python_float_repr(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
    // The shortest decimal that reads back as the same double (what Python's repr prints).
    char buffer[40];
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buffer, sizeof buffer, "%.*e", precision - 1, value);
        if (std::strtod(buffer, nullptr) == value) break;
    }
    std::string text(buffer);
    bool negative = false;
    size_t at = 0;
    if (text[0] == '-') {
        negative = true;
        at = 1;
    }
    size_t e = text.find('e');
    std::string digits;
    for (size_t i = at; i < e; ++i)
        if (text[i] != '.') digits.push_back(text[i]);
    int exponent = std::atoi(text.c_str() + e + 1);
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    const int decpt = exponent + 1;  // digits d1d2... mean 0.d1d2... × 10^decpt
    std::string out = negative ? "-" : "";
    if (decpt > -4 && decpt <= 16) {
        const int n = static_cast<int>(digits.size());
        if (decpt <= 0) {
            out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
        } else if (decpt >= n) {
            out += digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
        } else {
            out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
        }
    } else {
        out += digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        const int x = decpt - 1;
        char exp_text[16];
        std::snprintf(exp_text, sizeof exp_text, "e%c%02d", x < 0 ? '-' : '+', std::abs(x));
        out += exp_text;
    }
    return out;
}

namespace {

void dump_string(std::string_view s, std::string& out) {
    static const char* hex = "0123456789abcdef";
    out.push_back('"');
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (u < 0x20) {
                    out += "\\u00";
                    out.push_back(hex[u >> 4]);
                    out.push_back(hex[u & 0xF]);
                } else {
                    out.push_back(c);
                }
        }
    }
    out.push_back('"');
}

void newline(std::string& out, int indent, int depth) {
    out.push_back('\n');
    out.append(static_cast<size_t>(indent * depth), ' ');
}

void dump_value(const Json& v, const DumpOptions& o, int depth, std::string& out) {
    const bool pretty = o.indent >= 0;
    if (v.IsObject()) {
        if (v.MemberCount() == 0) {
            out += "{}";
            return;
        }
        std::vector<const Json::Member*> members;
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) members.push_back(&*it);
        if (o.sort_keys) {
            std::stable_sort(members.begin(), members.end(), [](const Json::Member* a, const Json::Member* b) {
                return as_view(a->name) < as_view(b->name);
            });
        }
        out.push_back('{');
        bool first = true;
        for (const Json::Member* m : members) {
            if (!first) out += pretty ? "," : ", ";
            first = false;
            if (pretty) newline(out, o.indent, depth + 1);
            dump_string(as_view(m->name), out);
            out += ": ";
            dump_value(m->value, o, depth + 1, out);
        }
        if (pretty) newline(out, o.indent, depth);
        out.push_back('}');
    } else if (v.IsArray()) {
        if (v.Empty()) {
            out += "[]";
            return;
        }
        out.push_back('[');
        bool first = true;
        for (const Json& item : v.GetArray()) {
            if (!first) out += pretty ? "," : ", ";
            first = false;
            if (pretty) newline(out, o.indent, depth + 1);
            dump_value(item, o, depth + 1, out);
        }
        if (pretty) newline(out, o.indent, depth);
        out.push_back(']');
    } else if (v.IsString()) {
        dump_string(as_view(v), out);
    } else if (v.IsBool()) {
        out += v.GetBool() ? "true" : "false";
    } else if (v.IsNull()) {
        out += "null";
    } else if (v.IsInt64()) {
        out += std::to_string(v.GetInt64());
    } else if (v.IsUint64()) {
        out += std::to_string(v.GetUint64());
    } else {
        out += python_float_repr(v.GetDouble());
    }
}

}  // namespace

std::string dump_json(const Json& value, const DumpOptions& options) {
    std::string out;
    dump_value(value, options, 0, out);
    if (options.html_escape) {
        std::string escaped;
        escaped.reserve(out.size());
        for (char c : out) {
            if (c == '<') escaped += "\\u003c";
            else if (c == '>') escaped += "\\u003e";
            else if (c == '&') escaped += "\\u0026";
            else escaped.push_back(c);
        }
        out = std::move(escaped);
    }
    return out;
}

JsonDocument parse_json_text(const std::string& text, const std::string& what) {
    size_t skip = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
    JsonDocument doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data() + skip, text.size() - skip);
    if (doc.HasParseError()) {
        const size_t offset = skip + doc.GetErrorOffset();
        size_t line = 1, column = 1;
        for (size_t i = 0; i < offset && i < text.size(); ++i) {
            if (text[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        throw std::invalid_argument(what + ": malformed JSON at line " + std::to_string(line) + ", column " +
                                    std::to_string(column) + ": " + rapidjson::GetParseError_En(doc.GetParseError()));
    }
    return doc;
}

// ---- unified diff ---------------------------------------------------------------------------

namespace {

enum class Op { Equal, Delete, Insert };
struct Edit {
    Op op;
    size_t a;  // index into a (Equal, Delete)
    size_t b;  // index into b (Equal, Insert)
};

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) {
            lines.push_back(text.substr(start));
            break;
        }
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return lines;
}

// Myers' O((N+M)D) shortest edit script between a[a0,a1) and b[b0,b1), appended to `out`.
// Beyond `max_d` differences it gives up on minimality: all deletions, then all insertions.
void myers(const std::vector<std::string>& a, size_t a0, size_t a1, const std::vector<std::string>& b, size_t b0,
           size_t b1, std::vector<Edit>& out, int max_d = 4000) {
    const int n = static_cast<int>(a1 - a0), m = static_cast<int>(b1 - b0);
    const int limit = std::min(n + m, max_d);
    const int offset = limit + 1;
    std::vector<int> v(static_cast<size_t>(2 * limit + 3), 0);
    std::vector<std::vector<int>> trace;  // v[-d..d] after each step d
    int found = -1;
    for (int d = 0; d <= limit && found < 0; ++d) {
        for (int k = -d; k <= d; k += 2) {
            int x;
            if (k == -d || (k != d && v[static_cast<size_t>(offset + k - 1)] < v[static_cast<size_t>(offset + k + 1)]))
                x = v[static_cast<size_t>(offset + k + 1)];
            else
                x = v[static_cast<size_t>(offset + k - 1)] + 1;
            int y = x - k;
            while (x < n && y < m && a[a0 + static_cast<size_t>(x)] == b[b0 + static_cast<size_t>(y)]) {
                ++x;
                ++y;
            }
            v[static_cast<size_t>(offset + k)] = x;
            if (x >= n && y >= m) {
                found = d;
                break;
            }
        }
        trace.emplace_back(v.begin() + (offset - d), v.begin() + (offset + d + 1));
    }
    if (found < 0) {
        for (int i = 0; i < n; ++i) out.push_back({Op::Delete, a0 + static_cast<size_t>(i), b0});
        for (int j = 0; j < m; ++j) out.push_back({Op::Insert, a1, b0 + static_cast<size_t>(j)});
        return;
    }
    std::vector<Edit> reversed;
    int x = n, y = m;
    for (int d = found; d > 0; --d) {
        const std::vector<int>& prev = trace[static_cast<size_t>(d - 1)];  // indices -(d-1)..(d-1)
        auto at = [&](int k) { return prev[static_cast<size_t>(k + d - 1)]; };
        const int k = x - y;
        const int prev_k = (k == -d || (k != d && at(k - 1) < at(k + 1))) ? k + 1 : k - 1;
        const int prev_x = at(prev_k), prev_y = prev_x - prev_k;
        while (x > prev_x && y > prev_y) {
            --x;
            --y;
            reversed.push_back({Op::Equal, a0 + static_cast<size_t>(x), b0 + static_cast<size_t>(y)});
        }
        if (x == prev_x) {
            --y;
            reversed.push_back({Op::Insert, a0 + static_cast<size_t>(x), b0 + static_cast<size_t>(y)});
        } else {
            --x;
            reversed.push_back({Op::Delete, a0 + static_cast<size_t>(x), b0 + static_cast<size_t>(y)});
        }
    }
    while (x > 0 && y > 0) {
        --x;
        --y;
        reversed.push_back({Op::Equal, a0 + static_cast<size_t>(x), b0 + static_cast<size_t>(y)});
    }
    out.insert(out.end(), reversed.rbegin(), reversed.rend());
}

std::string range_text(size_t start, size_t length) {
    // difflib's _format_range_unified: 1-based start; a lone line is just its number; an empty
    // range names the line before it.
    if (length == 1) return std::to_string(start + 1);
    if (length == 0) return std::to_string(start) + ",0";
    return std::to_string(start + 1) + "," + std::to_string(length);
}

}  // namespace

std::string unified_diff(const std::string& a_text, const std::string& b_text, const std::string& a_name,
                         const std::string& b_name, int context) {
    if (a_text == b_text) return {};
    const std::vector<std::string> a = split_lines(a_text), b = split_lines(b_text);
    std::vector<Edit> edits;
    size_t prefix = 0;
    while (prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) {
        edits.push_back({Op::Equal, prefix, prefix});
        ++prefix;
    }
    size_t suffix = 0;
    while (suffix < a.size() - prefix && suffix < b.size() - prefix &&
           a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix])
        ++suffix;
    myers(a, prefix, a.size() - suffix, b, prefix, b.size() - suffix, edits);
    for (size_t i = 0; i < suffix; ++i) edits.push_back({Op::Equal, a.size() - suffix + i, b.size() - suffix + i});

    // Positions (in `edits`) of changes, grouped into hunks separated by > 2*context equal lines.
    std::vector<size_t> changes;
    for (size_t i = 0; i < edits.size(); ++i)
        if (edits[i].op != Op::Equal) changes.push_back(i);
    if (changes.empty()) {
        // Same lines, different text: only a final newline differs.
        return "--- " + a_name + "\n+++ " + b_name + "\n@@ (the texts differ only in their final newline) @@\n";
    }
    const size_t ctx = static_cast<size_t>(std::max(0, context));
    std::string out = "--- " + a_name + "\n+++ " + b_name + "\n";
    size_t c = 0;
    while (c < changes.size()) {
        size_t last = c;
        while (last + 1 < changes.size() && changes[last + 1] - changes[last] - 1 <= 2 * ctx) ++last;
        const size_t begin = changes[c] >= ctx ? changes[c] - ctx : 0;
        const size_t end = std::min(edits.size(), changes[last] + ctx + 1);
        // Where the hunk starts in a and b: the cursor positions before edits[begin].
        size_t a_start = 0, b_start = 0;
        {
            const Edit& e = edits[begin];
            a_start = e.a;
            b_start = e.b;
        }
        size_t a_len = 0, b_len = 0;
        std::string body;
        for (size_t i = begin; i < end; ++i) {
            const Edit& e = edits[i];
            switch (e.op) {
                case Op::Equal:
                    body += " " + a[e.a] + "\n";
                    ++a_len;
                    ++b_len;
                    break;
                case Op::Delete:
                    body += "-" + a[e.a] + "\n";
                    ++a_len;
                    break;
                case Op::Insert:
                    body += "+" + b[e.b] + "\n";
                    ++b_len;
                    break;
            }
        }
        out += "@@ -" + range_text(a_start, a_len) + " +" + range_text(b_start, b_len) + " @@\n" + body;
        c = last + 1;
    }
    return out;
}

}  // namespace sluice::kernel::client

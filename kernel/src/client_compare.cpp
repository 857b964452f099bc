// `sluice test`'s verify step without a node: test specs, Sesam's normalisation of pipe output
// and the comparison with the expected files (reference §6.4).
#include <sluice/kernel/client.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cmath>
#include <set>

namespace sluice::kernel::client {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string under_expected(std::string file) {
    std::replace(file.begin(), file.end(), '\\', '/');
    return file.rfind("expected/", 0) == 0 ? file : "expected/" + file;
}

// Python's str() of a query parameter value, as `requests` sends it.
std::vector<std::string> parameter_values(const Json& v) {
    if (v.IsString()) return {std::string(as_view(v))};
    if (v.IsBool()) return {v.GetBool() ? "True" : "False"};
    if (v.IsNull()) return {};
    if (v.IsArray()) {
        std::vector<std::string> out;
        for (const Json& item : v.GetArray()) {
            auto values = parameter_values(item);
            out.insert(out.end(), values.begin(), values.end());
        }
        return out;
    }
    return {dump_json(v)};
}

}  // namespace

TestSpec parse_test_spec(const std::string& spec_file, const Json& spec) {
    if (!spec.IsObject()) throw std::invalid_argument(spec_file + ": a test spec must be a JSON object");
    TestSpec t;
    t.spec_file = under_expected(spec_file);
    std::string base = t.spec_file.substr(t.spec_file.rfind('/') + 1);
    if (ends_with(base, ".test.json")) base.resize(base.size() - std::string(".test.json").size());
    t.name = base;
    t.id = base;
    t.pipe = base;
    t.file = "expected/" + base + ".json";

    auto string_field = [&](const char* name, std::string& target) {
        const Json* v = find_member(spec, name);
        if (!v || v->IsNull()) return;
        if (!v->IsString()) throw std::invalid_argument(spec_file + ": '" + name + "' must be a string");
        target = std::string(as_view(*v));
    };
    auto string_list = [&](const char* name, std::vector<std::string>& target) {
        const Json* v = find_member(spec, name);
        if (!v || v->IsNull()) return;
        if (!v->IsArray()) throw std::invalid_argument(spec_file + ": '" + name + "' must be a list of strings");
        target.clear();
        for (const Json& item : v->GetArray()) {
            if (!item.IsString())
                throw std::invalid_argument(spec_file + ": '" + name + "' must be a list of strings");
            target.emplace_back(as_view(item));
        }
    };
    string_field("_id", t.id);
    string_field("pipe", t.pipe);
    std::string file;
    string_field("file", file);
    if (!file.empty()) t.file = under_expected(file);
    string_field("endpoint", t.endpoint);
    string_field("stage", t.stage);
    if (t.stage == "before-transform") t.stage = "before-transforms";
    if (t.stage == "after-transform") t.stage = "after-transforms";
    // Sesam's client tests `is True`: anything but the JSON literal true is false.
    if (const Json* v = find_member(spec, "ignore")) t.ignore = v->IsBool() && v->GetBool();
    if (const Json* v = find_member(spec, "ignore_deletes")) t.ignore_deletes = v->IsBool() && v->GetBool();
    string_list("blacklist", t.blacklist);
    string_list("fields_to_sort_by", t.fields_to_sort_by);
    if (const Json* v = find_member(spec, "parameters"); v && !v->IsNull()) {
        if (!v->IsObject()) throw std::invalid_argument(spec_file + ": 'parameters' must be an object");
        for (auto it = v->MemberBegin(); it != v->MemberEnd(); ++it)
            for (const std::string& value : parameter_values(it->value))
                t.parameters.emplace_back(std::string(as_view(it->name)), value);
    }
    if (t.pipe.empty()) throw std::invalid_argument(spec_file + ": 'pipe' must not be empty");
    return t;
}

// ---- blacklist ------------------------------------------------------------------------------

namespace {

// fnmatch-style `*` and `?` within one key.
bool glob(std::string_view pattern, std::string_view text) {
    size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
    while (t < text.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            mark = t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++mark;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

// "a.b\.c.d" → {"a", "b.c", "d"}; Sesam's "foos[].bar" spelling means "foos.*.bar".
std::vector<std::string> split_pattern(const std::string& pattern) {
    std::vector<std::string> segments(1);
    for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size() && pattern[i + 1] == '.') {
            segments.back().push_back('.');
            ++i;
        } else if (c == '[' && pattern.compare(i, 2, "[]") == 0) {
            if (!segments.back().empty()) segments.emplace_back();
            segments.back() = "*";
            i += 1;  // the ']'
            if (i + 1 < pattern.size() && pattern[i + 1] == '.') ++i;
            if (i + 1 < pattern.size()) segments.emplace_back();
        } else if (c == '.') {
            segments.emplace_back();
        } else {
            segments.back().push_back(c);
        }
    }
    return segments;
}

bool match_path(const std::vector<std::string>& pattern, size_t pi, const std::vector<std::string>& path, size_t si) {
    if (si == path.size()) return pi == pattern.size();
    if (path[si] == "[]") {
        if (pi < pattern.size() && (pattern[pi] == "*" || pattern[pi] == "[]") && match_path(pattern, pi + 1, path, si + 1))
            return true;
        return match_path(pattern, pi, path, si + 1);
    }
    return pi < pattern.size() && glob(pattern[pi], path[si]) && match_path(pattern, pi + 1, path, si + 1);
}

}  // namespace

bool is_blacklisted(const std::vector<std::string>& path, const std::vector<std::string>& blacklist) {
    for (const std::string& pattern : blacklist) {
        if (match_path(split_pattern(pattern), 0, path, 0)) return true;
    }
    return false;
}

// ---- normalisation --------------------------------------------------------------------------

namespace {

void filter_into(const Json& in, Json& out, JsonAllocator& a, std::vector<std::string>& path,
                 const std::vector<std::string>& blacklist) {
    if (in.IsObject()) {
        out.SetObject();
        for (auto it = in.MemberBegin(); it != in.MemberEnd(); ++it) {
            const std::string key(as_view(it->name));
            path.push_back(key);
            bool keep;
            if (!blacklist.empty() && is_blacklisted(path, blacklist)) keep = false;
            else if (!key.empty() && key[0] == '_') keep = key == "_id" || (key == "_deleted" && it->value.IsBool() && it->value.GetBool());
            else keep = true;
            if (keep) {
                Json value;
                if (key[0] == '_') value.CopyFrom(it->value, a);
                else filter_into(it->value, value, a, path, blacklist);
                out.AddMember(Json(key.c_str(), static_cast<rapidjson::SizeType>(key.size()), a), value, a);
            }
            path.pop_back();
        }
    } else if (in.IsArray()) {
        out.SetArray();
        path.push_back("[]");
        for (const Json& item : in.GetArray()) {
            Json value;
            filter_into(item, value, a, path, blacklist);
            out.PushBack(value, a);
        }
        path.pop_back();
    } else {
        out.CopyFrom(in, a);
    }
}

}  // namespace

JsonDocument filter_entity(const Json& entity, const std::vector<std::string>& blacklist) {
    JsonDocument out;
    std::vector<std::string> path;
    filter_into(entity, out, out.GetAllocator(), path, blacklist);
    return out;
}

void fix_numbers(Json& value) {
    if (value.IsObject()) {
        for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) fix_numbers(it->value);
    } else if (value.IsArray()) {
        for (Json& item : value.GetArray()) fix_numbers(item);
    } else if (value.IsDouble()) {
        // Python: str(float) ends with ".0" → int(value).
        const std::string repr = python_float_repr(value.GetDouble());
        if (ends_with(repr, ".0")) {
            const double d = value.GetDouble();
            if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) value.SetInt64(static_cast<int64_t>(d));
        }
    } else if (value.IsInt64() || value.IsUint64()) {
        const std::string text = value.IsInt64() ? std::to_string(value.GetInt64()) : std::to_string(value.GetUint64());
        if (text.size() > std::string("9007199254740991").size()) {
            // int(Decimal(str(float(value)))): the digits Python prints for the double, as an int.
            const double d = value.IsInt64() ? static_cast<double>(value.GetInt64()) : static_cast<double>(value.GetUint64());
            const std::string repr = python_float_repr(d);  // e.g. "1.2345678901234568e+16"
            const bool negative = repr[0] == '-';
            const size_t e = repr.find('e');
            std::string digits;
            int exponent = 0;
            if (e == std::string::npos) {  // "1234567890123456.0" cannot happen above 16 digits, but be safe
                digits = repr.substr(negative ? 1 : 0, repr.find('.') - (negative ? 1 : 0));
            } else {
                for (size_t i = negative ? 1 : 0; i < e; ++i)
                    if (repr[i] != '.') digits.push_back(repr[i]);
                exponent = std::atoi(repr.c_str() + e + 1) - static_cast<int>(digits.size()) + 1;
                if (exponent > 0) digits.append(static_cast<size_t>(exponent), '0');
            }
            errno = 0;
            if (negative) {
                long long n = std::strtoll(("-" + digits).c_str(), nullptr, 10);
                if (errno == 0) value.SetInt64(n);
                else value.SetDouble(d);
            } else {
                unsigned long long n = std::strtoull(digits.c_str(), nullptr, 10);
                if (errno == 0) value.SetUint64(n);
                else value.SetDouble(d);
            }
        }
    }
}

// ---- sorting --------------------------------------------------------------------------------

namespace {

struct SortPart {
    int rank = 0;  // null < bool < number < string < other (as JSON text)
    double number = 0;
    std::string text;
    bool operator<(const SortPart& o) const {
        if (rank != o.rank) return rank < o.rank;
        if (rank == 1 || rank == 2) return number < o.number;
        return text < o.text;
    }
};

SortPart sort_part(const Json* v) {
    SortPart p;
    if (!v || v->IsNull()) return p;
    if (v->IsBool()) {
        p.rank = 1;
        p.number = v->GetBool() ? 1 : 0;
    } else if (v->IsNumber()) {
        p.rank = 2;
        p.number = v->GetDouble();
    } else if (v->IsString()) {
        p.rank = 3;
        p.text = std::string(as_view(*v));
    } else {
        p.rank = 4;
        p.text = dump_json(*v);
    }
    return p;
}

}  // namespace

void sort_entities(Json& entities, const std::vector<std::string>& fields) {
    if (!entities.IsArray()) return;
    struct Keyed {
        std::vector<SortPart> key;
        std::string text;
        size_t index;
    };
    std::vector<Keyed> keys;
    for (rapidjson::SizeType i = 0; i < entities.Size(); ++i) {
        Keyed k{{}, dump_json(entities[i]), i};
        for (const std::string& f : fields) k.key.push_back(sort_part(find_member(entities[i], f)));
        keys.push_back(std::move(k));
    }
    std::stable_sort(keys.begin(), keys.end(), [](const Keyed& a, const Keyed& b) {
        if (std::lexicographical_compare(a.key.begin(), a.key.end(), b.key.begin(), b.key.end())) return true;
        if (std::lexicographical_compare(b.key.begin(), b.key.end(), a.key.begin(), a.key.end())) return false;
        return a.text < b.text;
    });
    std::vector<Json> moved;
    moved.reserve(keys.size());
    for (const Keyed& k : keys) moved.emplace_back(std::move(entities[static_cast<rapidjson::SizeType>(k.index)]));
    for (rapidjson::SizeType i = 0; i < entities.Size(); ++i) entities[i] = std::move(moved[i]);
}

// ---- comparison -----------------------------------------------------------------------------

namespace {

bool is_deleted(const Json& e) {
    const Json* d = find_member(e, "_deleted");
    return d && d->IsBool() && d->GetBool();
}

// The current output as Sesam's verify sees it: filtered, fixed, sorted. With ignore_deletes,
// deleted entities are dropped unless their _id is in `keep_deleted`.
JsonDocument normalise_current(const Json& current, const TestSpec& spec, const std::set<std::string>* keep_deleted) {
    JsonDocument out(rapidjson::kArrayType);
    auto& a = out.GetAllocator();
    if (current.IsArray()) {
        for (const Json& e : current.GetArray()) {
            JsonDocument filtered = filter_entity(e, spec.blacklist);
            if (spec.ignore_deletes && is_deleted(filtered)) {
                if (!keep_deleted || !keep_deleted->count(string_or(filtered, "_id", ""))) continue;
            }
            Json copy(filtered, a);
            fix_numbers(copy);
            out.PushBack(copy, a);
        }
    }
    sort_entities(out, spec.fields_to_sort_by);
    return out;
}

}  // namespace

Comparison compare_entities(const Json& expected, const Json& current, const TestSpec& spec) {
    Comparison c;
    if (!expected.IsArray()) {
        c.message = spec.file + " is not a JSON array of entities";
        return c;
    }
    if (!current.IsArray()) {
        c.message = "the node's output for pipe '" + spec.pipe + "' is not a JSON array";
        return c;
    }
    std::set<std::string> expected_deletes;
    for (const Json& e : expected.GetArray())
        if (is_deleted(e)) expected_deletes.insert(string_or(e, "_id", ""));
    JsonDocument expected_sorted;
    expected_sorted.CopyFrom(expected, expected_sorted.GetAllocator());
    sort_entities(expected_sorted, spec.fields_to_sort_by);
    JsonDocument actual = normalise_current(current, spec, &expected_deletes);

    DumpOptions pretty;
    pretty.indent = 2;
    c.expected_text = dump_json(expected_sorted, pretty) + "\n";
    c.current_text = dump_json(actual, pretty) + "\n";
    if (expected_sorted.Size() != actual.Size()) {
        c.message = "length mismatch for test spec '" + spec.spec_file + "': expected " +
                    std::to_string(expected_sorted.Size()) + " entities, got " + std::to_string(actual.Size());
    } else if (c.expected_text != c.current_text) {
        c.message = "content mismatch for test spec '" + spec.spec_file + "'";
    } else {
        c.equal = true;
        return c;
    }
    c.diff = unified_diff(c.expected_text, c.current_text, spec.file, "current-output.json");
    return c;
}

Comparison compare_bytes(const std::string& expected, const std::string& current, const TestSpec& spec) {
    Comparison c;
    c.expected_text = expected;
    c.current_text = current;
    if (expected == current) {
        c.equal = true;
        return c;
    }
    c.message = "content mismatch for test spec '" + spec.spec_file + "' (" + spec.endpoint + " output, compared byte for byte)";
    const bool text = expected.find('\0') == std::string::npos && current.find('\0') == std::string::npos;
    if (text) {
        // Show line-ending differences (CSV uses CRLF) rather than hiding them.
        auto visible = [](const std::string& s) {
            std::string out;
            for (size_t i = 0; i < s.size(); ++i) {
                if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') out += "\\r";
                else out.push_back(s[i]);
            }
            return out;
        };
        c.diff = unified_diff(visible(expected), visible(current), spec.file, "current-output." + spec.endpoint);
    } else {
        c.message += "; binary data, no diff shown";
    }
    return c;
}

std::string expected_file_text(const Json& current, const TestSpec& spec) {
    JsonDocument actual = normalise_current(current, spec, nullptr);
    DumpOptions options;
    options.indent = 2;
    options.html_escape = true;
    return dump_json(actual, options) + "\n";
}

std::string pipe_class(const Json& effective) {
    static const Json empty(rapidjson::kObjectType);
    const Json* source = find_member(effective, "source");
    const Json* sink = find_member(effective, "sink");
    if (!source || !source->IsObject()) source = &empty;
    if (string_or(*source, "type", "") == "embedded") return "input";
    if (!sink || !sink->IsObject()) return "internal";  // no sink: the default dataset sink
    const std::string sink_type = string_or(*sink, "type", "");
    if (ends_with(sink_type, "_endpoint")) return "endpoint";
    auto truthy = [](const Json* v) {
        if (!v || v->IsNull()) return false;
        if (v->IsString()) return v->GetStringLength() > 0;
        if (v->IsArray()) return !v->Empty();
        if (v->IsBool()) return v->GetBool();
        return true;
    };
    if (!truthy(find_member(*sink, "dataset"))) return "output";
    return "internal";
}

}  // namespace sluice::kernel::client

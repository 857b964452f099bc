#include <sluice_http/http.hpp>

#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace sluice::http {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

double number_or(const Json& object, const char* key, double fallback, const std::string& where) {
    const Json* v = find_member(object, key);
    if (!v || v->IsNull()) return fallback;
    if (!v->IsNumber()) {
        // $ENV()/$SECRET() substitution always yields strings: accept numeric text.
        if (v->IsString()) {
            try {
                size_t used = 0;
                double d = std::stod(std::string(as_view(*v)), &used);
                if (used == v->GetStringLength()) return d;
            } catch (const std::exception&) {
            }
        }
        throw std::invalid_argument(where + key + " must be a number");
    }
    return v->GetDouble();
}

bool bool_value(const Json& object, const char* key, bool fallback, const std::string& where) {
    const Json* v = find_member(object, key);
    if (!v || v->IsNull()) return fallback;
    if (v->IsBool()) return v->GetBool();
    if (v->IsString()) {
        std::string s = lower(as_view(*v));
        if (s == "true") return true;
        if (s == "false") return false;
    }
    throw std::invalid_argument(where + key + " must be a boolean");
}

std::string string_value(const Json& object, const char* key, const std::string& where) {
    const Json* v = find_member(object, key);
    if (!v || v->IsNull()) return {};
    if (!v->IsString()) throw std::invalid_argument(where + key + " must be a string");
    return std::string(as_view(*v));
}

void read_headers(const Json& object, Headers& into, const std::string& where) {
    const Json* h = find_member(object, "headers");
    if (!h || h->IsNull()) return;
    if (!h->IsObject()) throw std::invalid_argument(where + "headers must be an object of strings");
    for (auto it = h->MemberBegin(); it != h->MemberEnd(); ++it) {
        std::string name(as_view(it->name));
        std::string value = it->value.IsString() ? std::string(as_view(it->value)) : to_json(it->value);
        auto same = std::find_if(into.begin(), into.end(),
                                 [&](const auto& p) { return lower(p.first) == lower(name); });
        if (same != into.end()) {
            same->second = value;
        } else {
            into.emplace_back(name, value);
        }
    }
}

RetryRule parse_rule(const Json& v, const std::string& where) {
    if (!v.IsObject()) throw std::invalid_argument(where + " must be an object");
    RetryRule r;
    r.retries = static_cast<int>(number_or(v, "retries", r.retries, where + "/"));
    r.retry_delay = number_or(v, "retry_delay", r.retry_delay, where + "/");
    r.backoff_factor = number_or(v, "backoff_factor", r.backoff_factor, where + "/");
    r.max_retry_delay = number_or(v, "max_retry_delay", r.max_retry_delay, where + "/");
    if (r.retries < 0 || r.retry_delay < 0 || r.backoff_factor < 0 || r.max_retry_delay < 0)
        throw std::invalid_argument(where + ": values must not be negative");
    return r;
}

}  // namespace

double RetryRule::delay_before(int retry_number) const {
    double d = retry_delay * std::pow(backoff_factor, std::max(0, retry_number - 1));
    return std::min(d, max_retry_delay);
}

std::optional<RetryRule> RetryPolicy::rule_for(int status) const {
    const std::string code = std::to_string(status);
    for (const auto& [codes, rule] : by_status) {
        for (const std::string& c : codes) {
            const bool match = c == code || (status > 0 && c.size() == 3 && c[1] == 'x' && c[2] == 'x' &&
                                             c[0] == code[0]);
            if (match) return rule.retries > 0 ? std::optional<RetryRule>(rule) : std::nullopt;
        }
    }
    const bool transient = status == 0 || status == 408 || status == 429 || status >= 500;
    if (transient && fallback.retries > 0) return fallback;
    return std::nullopt;
}

RetryPolicy RetryPolicy::parse(const Json* retry_strategy) {
    RetryPolicy p;
    if (!retry_strategy || retry_strategy->IsNull()) return p;
    if (!retry_strategy->IsObject()) throw std::invalid_argument("retry_strategy must be an object");
    for (auto it = retry_strategy->MemberBegin(); it != retry_strategy->MemberEnd(); ++it) {
        std::string key(as_view(it->name));
        RetryRule rule = parse_rule(it->value, "retry_strategy/" + key);
        if (key == "default") {
            p.fallback = rule;
            continue;
        }
        std::vector<std::string> codes;
        size_t start = 0;
        while (start <= key.size()) {
            size_t comma = key.find(',', start);
            std::string code = lower(trim(key.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
            const bool ok = code.size() == 3 && std::isdigit(static_cast<unsigned char>(code[0])) &&
                            ((std::isdigit(static_cast<unsigned char>(code[1])) &&
                              std::isdigit(static_cast<unsigned char>(code[2]))) ||
                             (code[1] == 'x' && code[2] == 'x'));
            if (!ok)
                throw std::invalid_argument("retry_strategy: '" + key +
                                            "' is not \"default\" or a comma-separated list of HTTP statuses");
            codes.push_back(code);
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
        p.by_status.emplace_back(std::move(codes), rule);
    }
    return p;
}

UrlSystem UrlSystem::parse(const Json* system, const Json* component) {
    UrlSystem s;
    if (system && system->IsObject()) {
        const std::string where = "system: ";
        s.url_pattern = string_value(*system, "url_pattern", where);
        if (s.url_pattern.empty()) s.url_pattern = string_value(*system, "base_url", where);
        if (s.url_pattern.empty()) s.url_pattern = string_value(*system, "url", where);
        read_headers(*system, s.headers, where);
        s.connect_timeout = number_or(*system, "connect_timeout", s.connect_timeout, where);
        s.read_timeout = number_or(*system, "read_timeout", s.read_timeout, where);
        if (s.connect_timeout <= 0 || s.read_timeout <= 0)
            throw std::invalid_argument("system: connect_timeout and read_timeout must be positive");
        s.verify_ssl = bool_value(*system, "verify_ssl", false, where);
        s.ca_file = string_value(*system, "ca_file", where);
        s.retry = RetryPolicy::parse(find_member(*system, "retry_strategy"));

        s.username = string_value(*system, "username", where);
        s.password = string_value(*system, "password", where);
        s.token = string_value(*system, "jwt_token", where);
        if (s.token.empty()) s.token = string_value(*system, "token", where);
        const std::string auth = lower(string_value(*system, "authentication", where));
        if (auth == "basic") {
            s.auth = AuthKind::Basic;
            if (s.username.empty()) throw std::invalid_argument("system: basic authentication needs 'username'");
        } else if (auth == "jwt" || auth == "bearer" || auth == "token") {
            s.auth = AuthKind::Bearer;
            if (s.token.empty())
                throw std::invalid_argument("system: " + auth + " authentication needs 'jwt_token' (or 'token')");
        } else if (auth.empty()) {
            if (!s.username.empty()) {
                s.auth = AuthKind::Basic;
            } else if (!s.token.empty()) {
                s.auth = AuthKind::Bearer;
            }
        } else {
            throw std::invalid_argument("system: authentication '" + auth +
                                        "' is not supported (supported: basic, jwt/bearer)");
        }
        if (find_member(*system, "oauth2"))
            throw std::invalid_argument("system: oauth2 is not supported yet; use a bearer token (jwt_token)");
    }
    if (component && component->IsObject()) read_headers(*component, s.headers, "");
    return s;
}

std::string UrlSystem::resolve(std::string_view url) const {
    if (url.find("://") != std::string_view::npos) return std::string(url);
    if (url_pattern.empty()) {
        throw std::invalid_argument("the URL '" + std::string(url) +
                                    "' is relative, and no system with a url_pattern or base_url is configured");
    }
    const size_t slot = url_pattern.find("%s");
    if (slot != std::string::npos) {
        std::string prefix = url_pattern.substr(0, slot);
        std::string suffix = url_pattern.substr(slot + 2);
        std::string_view u = url;
        if (!prefix.empty() && prefix.back() == '/' && !u.empty() && u.front() == '/') u.remove_prefix(1);
        return prefix + std::string(u) + suffix;
    }
    std::string base = url_pattern;
    if (url.empty()) return base;
    const bool base_slash = !base.empty() && base.back() == '/';
    const bool url_slash = url.front() == '/';
    if (base_slash && url_slash) return base + std::string(url.substr(1));
    if (!base_slash && !url_slash && url.front() != '?') return base + "/" + std::string(url);
    return base + std::string(url);
}

std::string describe_status(int status, const std::string& reason) {
    return std::to_string(status) + (reason.empty() ? "" : " " + reason);
}

std::string link_header_next(std::string_view header) {
    // <url>; rel="next"; title="x", <url2>; rel=last
    size_t pos = 0;
    while (pos < header.size()) {
        size_t open = header.find('<', pos);
        if (open == std::string_view::npos) break;
        size_t close = header.find('>', open);
        if (close == std::string_view::npos) break;
        std::string url(header.substr(open + 1, close - open - 1));
        size_t next_entry = header.find('<', close);
        std::string params = lower(header.substr(close + 1, next_entry == std::string_view::npos
                                                                ? std::string_view::npos
                                                                : next_entry - close - 1));
        size_t rel = params.find("rel");
        if (rel != std::string::npos) {
            size_t eq = params.find('=', rel);
            if (eq != std::string::npos) {
                std::string value = params.substr(eq + 1);
                value = value.substr(0, value.find(';'));
                value = trim(value);
                if (!value.empty() && value.back() == ',') value.pop_back();
                if (!value.empty() && value.front() == '"') value = value.substr(1, value.find('"', 1) - 1);
                // rel may hold several space-separated relation types
                size_t s = 0;
                while (s < value.size()) {
                    size_t e = value.find(' ', s);
                    if (value.substr(s, e == std::string::npos ? std::string::npos : e - s) == "next") return url;
                    if (e == std::string::npos) break;
                    s = e + 1;
                }
            }
        }
        if (next_entry == std::string_view::npos) break;
        pos = next_entry;
    }
    return {};
}

std::string resolve_reference(const std::string& base, const std::string& relative) {
    if (relative.find("://") != std::string::npos) return relative;
    Poco::URI uri(base);
    uri.resolve(relative);
    return uri.toString();
}

std::string add_query_parameter(const std::string& url, const std::string& name, const std::string& value) {
    Poco::URI uri(url);
    uri.addQueryParameter(name, value);
    return uri.toString();
}

std::string simple_template_variable(std::string_view text) {
    std::string t = trim(text);
    if (t.size() >= 4 && t.compare(0, 2, "{{") == 0 && t.compare(t.size() - 2, 2, "}}") == 0) {
        std::string inner = trim(std::string_view(t).substr(2, t.size() - 4));
        for (char c : inner) {
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' || c == ':'))
                throw std::invalid_argument("'" + std::string(text) +
                                            "': only a single {{ property }} reference is supported");
        }
        return inner;
    }
    if (t.find("{{") != std::string::npos || t.find("{%") != std::string::npos)
        throw std::invalid_argument("'" + std::string(text) + "': only a single {{ property }} reference is supported");
    return t;
}

const Json* find_path(const Json& root, std::string_view dotted) {
    const Json* cur = &root;
    size_t start = 0;
    while (cur) {
        size_t dot = dotted.find('.', start);
        std::string_view part = dotted.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (cur->IsArray() && !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
            size_t index = std::stoul(std::string(part));
            cur = index < cur->Size() ? &(*cur)[static_cast<rapidjson::SizeType>(index)] : nullptr;
        } else {
            cur = find_member(*cur, part);
        }
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return cur;
}

std::string render_template(std::string_view text, const Json& root) {
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t open = text.find("{{", pos);
        if (open == std::string_view::npos) {
            out.append(text.substr(pos));
            break;
        }
        size_t close = text.find("}}", open);
        if (close == std::string_view::npos) throw std::invalid_argument("unterminated {{ in '" + std::string(text) + "'");
        out.append(text.substr(pos, open - pos));
        std::string var = simple_template_variable(text.substr(open, close + 2 - open));
        const Json* v = find_path(root, var);
        if (v && v->IsString()) {
            out.append(as_view(*v));
        } else if (v && !v->IsNull()) {
            out.append(to_json(*v));
        }
        pos = close + 2;
    }
    return out;
}

}  // namespace sluice::http

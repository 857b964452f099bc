// The `json` source (reference §3.4, the JSON pull protocol) and the `rest` source.
//
// GETs a JSON array of entities (or an object holding the list at `payload_property`) from a URL
// on a `system:url`, page by page, streaming each response through a SAX parser so memory stays
// bounded by one entity. Paging: a next-page link (a body property or the Link header), a page
// number parameter, or Sesam's since+limit paging (`page_size`). With `supports_since` the
// pipe's continuation token is sent as `since` (query parameter or header, named by
// `since_property_name`) and the token committed is the last (chronological) or the largest
// value of `updated_property` seen. `rest` reads its defaults from the system's `operations`.
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <sluice_http/http.hpp>
#include <sluice_http/json_stream.hpp>

#include <cstdlib>
#include <optional>

namespace {

using sluice::Error;
using sluice::Json;
using sluice::JsonDocument;
using namespace sluice::http;

// -1, 0, 1 comparing two continuation values: numerically when both are numbers, else bytewise.
int compare_tokens(const RawScalar& a, const RawScalar& b) {
    if (a.is_number && b.is_number) {
        long double x = std::strtold(a.text.c_str(), nullptr), y = std::strtold(b.text.c_str(), nullptr);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
}

std::string require_string(const Json& cfg, const char* key, std::string fallback = {}) {
    const Json* v = sluice::find_member(cfg, key);
    if (!v || v->IsNull()) return fallback;
    if (!v->IsString()) throw Error(std::string(key) + " must be a string", SLUICE_FATAL);
    return std::string(sluice::as_view(*v));
}

int64_t require_int(const Json& cfg, const char* key, int64_t fallback, int64_t min) {
    const Json* v = sluice::find_member(cfg, key);
    if (!v || v->IsNull()) return fallback;
    int64_t n = 0;
    if (v->IsInt64()) {
        n = v->GetInt64();
    } else if (v->IsString()) {  // $ENV() substitutions are strings
        char* end = nullptr;
        n = std::strtoll(v->GetString(), &end, 10);
        if (!end || *end || !v->GetStringLength()) throw Error(std::string(key) + " must be an integer", SLUICE_FATAL);
    } else {
        throw Error(std::string(key) + " must be an integer", SLUICE_FATAL);
    }
    if (n < min) throw Error(std::string(key) + " must be at least " + std::to_string(min), SLUICE_FATAL);
    return n;
}

std::vector<std::string> split_path(const std::string& dotted) {
    std::vector<std::string> parts;
    if (dotted.empty()) return parts;
    size_t start = 0;
    while (true) {
        size_t dot = dotted.find('.', start);
        parts.push_back(dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return parts;
}

class JsonSource : public sluice::Source {
public:
    JsonSource(const sluice::CreateArgs& args, sluice::Host& host) : JsonSource(args, host, false) {}

protected:
    JsonSource(const sluice::CreateArgs& args, sluice::Host& host, bool rest) : type_(rest ? "rest" : "json") {
        try {
            configure(args, rest);
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw Error(type_ + " source: " + e.what(), SLUICE_FATAL);
        }
    }

public:
    void read(sluice::Host& host, const char* since, uint32_t batch_size) override {
        Client client(system_);
        client.cancelled = [&host] { return host.cancelled(); };
        client.on_retry = [&host](int attempt, const Failure& f, double delay) {
            host.warn(f.message + "; retrying in " + std::to_string(delay) + " s (attempt " + std::to_string(attempt) + ")");
        };
        if (batch_size == 0) batch_size = 1000;

        std::string since_value = since ? since : "";
        if (since_value.empty()) since_value = initial_since_;

        sluice::BatchBuilder batch;
        std::string batch_token;            // chronological: the last entity's value in the batch
        std::optional<RawScalar> max_token; // otherwise: the largest value seen
        auto flush = [&] {
            if (batch.empty()) return;
            if (supports_since_ && chronological_ && !batch_token.empty()) {
                host.emit(batch, batch_token.c_str());
            } else {
                host.emit(batch);
            }
            batch.clear();
        };

        std::string url = system_.resolve(url_);
        std::string page_since = since_value;
        int64_t page_number = page_start_;
        size_t pages = 0, total = 0;
        while (true) {
            if (host.cancelled()) throw Error(type_ + " source: the run was stopped");
            Request request;
            request.method = "GET";
            request.url = url;
            if (pages == 0 || mode_ != Mode::NextLink) {
                const std::string& s = mode_ == Mode::SinceLimit ? page_since : since_value;
                if (supports_since_ && !s.empty()) {
                    if (since_in_header_) {
                        request.headers.emplace_back(since_name_, s);
                    } else {
                        request.url = add_query_parameter(request.url, since_name_, s);
                    }
                }
                if (page_size_ > 0)
                    request.url = add_query_parameter(request.url, page_size_name_, std::to_string(page_size_));
                if (mode_ == Mode::PageNumber)
                    request.url = add_query_parameter(request.url, page_parameter_, std::to_string(page_number));
            }
            ++pages;

            size_t page_entities = 0;
            std::optional<RawScalar> page_last;
            EntityStreamParser parser(stream_options_, [&](const StreamedEntity& e) {
                batch.add_raw(e.json);
                ++page_entities;
                if (e.updated) {
                    page_last = e.updated;
                    if (supports_since_) {
                        if (chronological_) {
                            batch_token = e.updated->text;
                        } else if (!max_token || compare_tokens(*max_token, *e.updated) < 0) {
                            max_token = e.updated;
                        }
                    }
                }
                if (batch.count() >= batch_size) flush();
                return true;
            });
            ResponseHead head;
            const std::string what = "GET " + request.url;
            std::optional<Failure> failure;
            try {
                failure = client.send(request, [&](const ResponseHead& h, std::istream& in) {
                    head = h;
                    parser.parse(in, what);
                });
            } catch (const TransportError& e) {
                throw Error(type_ + " source: " + e.what());
            }
            if (failure) throw Error(type_ + " source: " + failure->message);
            total += page_entities;
            if (!payload_property_.empty() && !parser.found_list() && page_entities == 0)
                host.warn(what + ": the response has no list at payload_property '" + payload_property_ + "'");
            host.log(SLUICE_LOG_DEBUG, what + ": " + std::to_string(page_entities) + " entities");

            if (max_pages_ && pages >= static_cast<size_t>(max_pages_)) {
                host.warn(type_ + " source: stopped after max_pages (" + std::to_string(max_pages_) + ") pages");
                break;
            }
            bool more = false;
            switch (mode_) {
                case Mode::Single: break;
                case Mode::SinceLimit: {
                    if (page_entities < static_cast<size_t>(page_size_)) break;
                    if (!page_last)
                        throw Error(type_ + " source: since paging needs '" + updated_property_ +
                                    "' in the entities (page of " + what + ")");
                    if (page_last->text == page_since)
                        throw Error(type_ + " source: since paging made no progress at since=" + page_since +
                                    " (more than page_size entities share one '" + updated_property_ + "' value?)");
                    page_since = page_last->text;
                    more = true;
                    break;
                }
                case Mode::PageNumber:
                    more = page_entities > 0 && (page_size_ == 0 || page_entities >= static_cast<size_t>(page_size_));
                    ++page_number;
                    break;
                case Mode::NextLink: {
                    if (stop_on_empty_result_ && page_entities == 0) break;
                    std::string next = next_link(head, parser.envelope());
                    if (next.empty()) break;
                    next = resolve_reference(request.url, next);
                    if (next == request.url || next == url) break;  // same-next-page-request
                    url = next;
                    more = true;
                    break;
                }
            }
            if (!more) break;
        }
        flush();
        if (supports_since_ && !chronological_ && max_token) host.set_continuation(max_token->text);
        host.metric("http_pages", static_cast<double>(pages));
        host.log(SLUICE_LOG_DEBUG, type_ + " source: " + std::to_string(total) + " entities in " +
                                       std::to_string(pages) + " page(s)");
    }

private:
    enum class Mode { Single, NextLink, PageNumber, SinceLimit };

    void configure(const sluice::CreateArgs& args, bool rest) {
        // The effective config: for `rest`, the system operation's settings under the source's.
        JsonDocument cfg(rapidjson::kObjectType);
        auto& a = cfg.GetAllocator();
        if (rest) {
            const std::string op = require_string(args.config, "operation", "get");
            const Json* ops = sluice::find_member(args.system, "operations");
            const Json* found = ops ? sluice::find_member(*ops, op) : nullptr;
            if (ops && !found) throw Error("rest source: the system has no operation '" + op + "'", SLUICE_FATAL);
            if (found && found->IsObject()) cfg.CopyFrom(*found, a);
        }
        if (args.config.IsObject()) {
            for (auto it = args.config.MemberBegin(); it != args.config.MemberEnd(); ++it) {
                cfg.RemoveMember(it->name);
                cfg.AddMember(Json(it->name, a), Json(it->value, a), a);
            }
        }

        system_ = UrlSystem::parse(args.system.IsObject() ? &args.system : nullptr, &cfg);
        url_ = require_string(cfg, "url");
        if (rest && url_.find("{{") != std::string::npos) url_ = render_template(url_, cfg);
        const std::string method = require_string(cfg, "method", "GET");
        if (method != "GET" && method != "get")
            throw Error(type_ + " source: only GET is supported (method '" + method + "')", SLUICE_FATAL);
        if (url_.find("://") == std::string::npos && system_.url_pattern.empty())
            throw Error(type_ + " source: 'url' must be absolute unless 'system' is a system:url with url_pattern",
                        SLUICE_FATAL);

        supports_since_ = sluice::bool_or(cfg, "supports_since", false);
        chronological_ = sluice::bool_or(cfg, "is_chronological", false);
        since_name_ = require_string(cfg, "since_property_name", "since");
        const std::string location = require_string(cfg, "since_property_location", "query");
        if (location != "query" && location != "header")
            throw Error(type_ + " source: since_property_location must be \"query\" or \"header\"", SLUICE_FATAL);
        since_in_header_ = location == "header";
        if (const Json* init = sluice::find_member(cfg, "initial_since_value"); init && !init->IsNull())
            initial_since_ = init->IsString() ? std::string(sluice::as_view(*init)) : sluice::to_json(*init);

        updated_property_ = require_string(cfg, "updated_property");
        if (updated_property_.empty()) updated_property_ = simple_template_variable(require_string(cfg, "updated_expression"));
        if (updated_property_.empty()) updated_property_ = "_updated";
        std::string id_property = require_string(cfg, "id_property");
        if (id_property.empty()) id_property = simple_template_variable(require_string(cfg, "id_expression"));
        for (const std::string* p : {&updated_property_, &id_property}) {
            if (p->find('.') != std::string::npos)
                throw Error(type_ + " source: '" + *p + "' must be a top-level property name", SLUICE_FATAL);
        }
        payload_property_ = require_string(cfg, "payload_property");

        stream_options_.payload_path = split_path(payload_property_);
        stream_options_.id_property = id_property;
        stream_options_.updated_property = updated_property_;
        stream_options_.max_entity_bytes = static_cast<size_t>(require_int(cfg, "max_entity_bytes", 100ll << 20, 1));
        stream_options_.max_response_bytes = static_cast<size_t>(require_int(cfg, "max_response_bytes", 0, 0));

        page_size_ = require_int(cfg, "page_size", 0, 0);
        page_size_name_ = require_string(cfg, "page_size_parameter", "limit");
        page_parameter_ = require_string(cfg, "page_parameter");
        page_start_ = require_int(cfg, "page_start", 1, 0);
        max_pages_ = require_int(cfg, "max_pages", 0, 0);

        const std::string next = require_string(cfg, "next_page_link");
        if (!next.empty()) {
            mode_ = Mode::NextLink;
            std::string n = next == "link-header" || next == "link_header" ? "headers.Link" : simple_template_variable(next);
            if (n.rfind("headers.", 0) == 0) {
                next_header_ = n.substr(8);
            } else {
                next_body_path_ = n.rfind("body.", 0) == 0 ? n.substr(5) : n;
            }
        } else if (!page_parameter_.empty()) {
            mode_ = Mode::PageNumber;
        } else if (page_size_ > 0) {
            mode_ = Mode::SinceLimit;
            if (!supports_since_)
                throw Error(type_ + " source: page_size alone pages with since and limit, which needs supports_since: true "
                                    "(or set next_page_link or page_parameter)",
                            SLUICE_FATAL);
        }
        const Json* term = sluice::find_member(cfg, "next_page_termination_strategy");
        auto term_value = [&](const Json& v) {
            if (!v.IsString()) throw Error(type_ + " source: next_page_termination_strategy holds strings", SLUICE_FATAL);
            std::string s(sluice::as_view(v));
            if (s == "empty-result") {
                stop_on_empty_result_ = true;
            } else if (s != "empty-next-page-link" && s != "same-next-page-request") {
                throw Error(type_ + " source: unknown next_page_termination_strategy '" + s +
                                "' (empty-next-page-link, empty-result, same-next-page-request)",
                            SLUICE_FATAL);
            }
        };
        if (term && term->IsArray()) {
            for (const Json& v : term->GetArray()) term_value(v);
        } else if (term && !term->IsNull()) {
            term_value(*term);
        }
    }

    std::string next_link(const ResponseHead& head, const JsonDocument& envelope) const {
        if (!next_header_.empty()) {
            std::string value = head.header(next_header_);
            if (value.find('<') != std::string::npos) return link_header_next(value);
            return value;
        }
        if (envelope.IsNull()) return {};
        const Json* v = find_path(envelope, next_body_path_);
        if (!v || v->IsNull() || (v->IsBool() && !v->GetBool())) return {};
        return v->IsString() ? std::string(sluice::as_view(*v)) : sluice::to_json(*v);
    }

    std::string type_;
    UrlSystem system_;
    std::string url_;
    bool supports_since_ = false;
    bool chronological_ = false;
    std::string since_name_;
    bool since_in_header_ = false;
    std::string initial_since_;
    std::string updated_property_;
    std::string payload_property_;
    EntityStreamOptions stream_options_;
    Mode mode_ = Mode::Single;
    int64_t page_size_ = 0;
    std::string page_size_name_;
    std::string page_parameter_;
    int64_t page_start_ = 1;
    int64_t max_pages_ = 0;
    std::string next_header_;
    std::string next_body_path_;
    bool stop_on_empty_result_ = false;
};

class RestSource : public JsonSource {
public:
    RestSource(const sluice::CreateArgs& args, sluice::Host& host) : JsonSource(args, host, true) {}
};

constexpr uint64_t kCaps = SLUICE_CAP_SUPPORTS_SINCE | SLUICE_CAP_SINCE_COMPARABLE;

}  // namespace

SLUICE_PLUGIN("sluice-source-json", "1.0.0", "Pulls JSON entities from an HTTP API (json and rest sources)",
              "Apache-2.0", sluice::source<JsonSource>("json", SLUICE_SCHEMA_JSON, kCaps),
              sluice::source<RestSource>("rest", SLUICE_SCHEMA_JSON, kCaps))

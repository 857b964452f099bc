// Internal to the kernel's API: request/response helpers and the router shared by the api_*.cpp
// files. Not installed, not part of any public interface.
#pragma once

#include <sluice/entity.hpp>
#include <sluice/kernel/auth.hpp>

#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/URI.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sluice::kernel::api {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

constexpr std::streamsize kMaxBodyBytes = 256 * 1024 * 1024;
constexpr size_t kMaxJsonDepth = 128;

// Answered as {"error": ..., "detail": ...} with the given status.
struct HttpError : std::runtime_error {
    HttpError(HTTPResponse::HTTPStatus status, const std::string& error, std::string detail = {})
        : std::runtime_error(error), status(status), detail(std::move(detail)) {}
    HTTPResponse::HTTPStatus status;
    std::string detail;
};

// Throws 400 when `text` nests arrays/objects deeper than `max_depth`: rapidjson's parser
// recurses per level, so an unbounded depth is a stack overflow an attacker can send.
void check_json_depth(std::string_view text, size_t max_depth = kMaxJsonDepth);
// Throws 400 for numbers Debian 12's RapidJSON misparses at full precision: a zero with an
// exponent ("0e188"), and values past a double's range (out-of-bounds table read).
void check_json_numbers(std::string_view text);

struct Request {
    HTTPServerRequest& http;
    std::vector<std::string> params;  // the {placeholders} of the route, decoded
    Poco::URI::QueryParameters query;
    std::optional<Principal> principal;  // who called (unset on public endpoints)
    std::streamsize max_body = kMaxBodyBytes;
    size_t max_json_depth = kMaxJsonDepth;

    std::string body() {
        std::string text;
        std::istream& in = http.stream();
        char buffer[65536];
        while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
            text.append(buffer, static_cast<size_t>(in.gcount()));
            if (static_cast<std::streamsize>(text.size()) > max_body)
                throw HttpError(HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE, "request body too large",
                                "the limit is " + std::to_string(max_body) + " bytes");
        }
        return text;
    }
    JsonDocument json_body() {
        std::string text = body();
        // An empty body is an empty object (clients send form-less POSTs with a JSON type).
        if (text.find_first_not_of(" \t\r\n") == std::string::npos) return JsonDocument(rapidjson::kObjectType);
        check_json_depth(text, max_json_depth);
        check_json_numbers(text);
        JsonDocument doc;
        doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
        if (doc.HasParseError())
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "malformed JSON",
                            "parse error at byte " + std::to_string(doc.GetErrorOffset()));
        return doc;
    }
    // A body of entities (receivers, direct dataset writes): one entity or an array of them, as
    // an array; every entity an object with a string `_id`, else a 400 naming its index.
    JsonDocument entities_body() {
        JsonDocument doc = json_body();
        if (doc.IsObject()) {
            JsonDocument array(rapidjson::kArrayType);
            array.PushBack(Json(doc, array.GetAllocator()), array.GetAllocator());
            doc.Swap(array);
        }
        if (!doc.IsArray()) throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "expected an entity or a JSON array of entities");
        for (rapidjson::SizeType i = 0; i < doc.Size(); ++i) {
            const Json* id = doc[i].IsObject() ? find_member(doc[i], "_id") : nullptr;
            if (!id || !id->IsString())
                throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid entity",
                                "/" + std::to_string(i) + ": " +
                                    (doc[i].IsObject() ? "an entity needs a string '_id'" : "not a JSON object"));
        }
        return doc;
    }
    std::optional<std::string> param(const std::string& name) const {
        for (const auto& [k, v] : query) {
            if (k == name) return v;
        }
        return std::nullopt;
    }
    bool flag(const std::string& name, bool fallback) const {
        auto v = param(name);
        if (!v) return fallback;
        if (*v == "true" || *v == "True" || *v == "1" || v->empty()) return true;
        if (*v == "false" || *v == "False" || *v == "0") return false;
        throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid query parameter '" + name + "'",
                        "expected true or false, got '" + *v + "'");
    }
    std::optional<int64_t> integer(const std::string& name) const {
        auto v = param(name);
        if (!v || v->empty()) return std::nullopt;
        try {
            size_t used = 0;
            long long n = std::stoll(*v, &used);
            if (used != v->size()) throw std::invalid_argument("trailing");
            return n;
        } catch (const std::exception&) {
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid query parameter '" + name + "'",
                            "expected an integer, got '" + *v + "'");
        }
    }
};

inline void send_json(HTTPServerResponse& response, const std::string& body,
               HTTPResponse::HTTPStatus status = HTTPResponse::HTTP_OK) {
    response.setStatus(status);
    response.setContentType("application/json");
    response.setContentLength(static_cast<std::streamsize>(body.size()));
    response.send() << body;
}

inline void send_json(HTTPServerResponse& response, const Json& value, HTTPResponse::HTTPStatus status = HTTPResponse::HTTP_OK) {
    send_json(response, to_json(value), status);
}

inline void send_error(HTTPServerResponse& response, HTTPResponse::HTTPStatus status, const std::string& error,
                const std::string& detail) {
    JsonDocument doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    doc.AddMember("error", Json(error.c_str(), a), a);
    doc.AddMember("detail", Json(detail.c_str(), a), a);
    send_json(response, doc, status);
}

using Handler = std::function<void(Request&, HTTPServerResponse&)>;

inline std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= path.size()) {
        size_t slash = path.find('/', start);
        if (slash == std::string::npos) slash = path.size();
        if (slash > start) {
            std::string decoded;
            Poco::URI::decode(path.substr(start, slash - start), decoded);
            out.push_back(decoded);
        }
        start = slash + 1;
    }
    return out;
}


// Form fields (application/x-www-form-urlencoded or multipart), JSON object members, and query
// parameters, merged: Sesam's client posts forms, other clients JSON.
std::map<std::string, std::string> request_fields(Request& req);

}  // namespace sluice::kernel::api

namespace sluice::kernel {
class Node;
class DatasetStore;
struct PipeConfig;
struct PumpStatus;
struct RunResult;
}  // namespace sluice::kernel

namespace sluice::kernel::api {

// JSON shapes shared by the route groups (defined in api.cpp).
Json run_json(const RunResult& r, JsonAllocator& a);
Json pump_json(const PumpStatus& s, DatasetStore& store, JsonAllocator& a);
Json pipe_json(const PipeConfig& pipe, Node& node, JsonAllocator& a);
// Streams a dataset read (query JSON for DatasetStore::read) as one JSON array, chunked.
void stream_entities(DatasetStore& store, const std::string& query, HTTPServerResponse& response);
// Sesam's X-Dataset-* JSON-pull headers from a dataset's `info` (`filtered`: a transform may
// hide the newest entity). Call before the body is sent.
void set_dataset_headers(HTTPServerResponse& response, const Json& info, bool filtered);
// The read query for `dataset` from since/limit/history/deleted/reverse query parameters.
std::string read_query(const std::string& dataset, Request& req, bool history_default);

// Collects routes; the Api dispatches requests to them.
class Router {
public:
    void add(const std::string& method, const std::string& pattern, Handler handler) {
        std::vector<std::string> segments;
        for (const std::string& s : split_path(pattern)) segments.push_back(s.front() == '{' ? "{}" : s);
        routes_.push_back({method, pattern, std::move(segments), std::move(handler)});
    }
    struct Entry {
        std::string method;
        std::string pattern;
        std::vector<std::string> segments;
        Handler handler;
    };
    const std::vector<Entry>& routes() const { return routes_; }

private:
    std::vector<Entry> routes_;
};

// HTTP requests answered, by method and status (for /metrics).
class HttpMetrics {
public:
    void count(const std::string& method, int status);
    std::map<std::pair<std::string, int>, uint64_t> snapshot() const;

private:
    mutable std::mutex mutex_;
    std::map<std::pair<std::string, int>, uint64_t> requests_;
};

// Who may call a route, derived from its method and pattern (api_auth.cpp) so a route added
// anywhere is protected without being listed: public, or the least role it needs.
struct Access {
    bool is_public = false;
    security::Role role = security::Role::admin;
};
Access required_access(const std::string& method, const std::string& pattern);
// Authenticates and authorises a matched route (nullptr: no route matched, so only
// authentication applies, and unknown paths do not answer 404 to strangers). Throws HttpError
// 401/403; sets req.principal.
void authorize(Node& node, const Router::Entry* route, Request& req, HTTPServerResponse& response);

// Route groups, one file each.
void register_ops_routes(Router& router, Node& node, const HttpMetrics& http_metrics);
void register_config_routes(Router& router, Node& node);
void register_run_routes(Router& router, Node& node);
void register_ui_routes(Router& router, Node& node);
void register_auth_routes(Router& router, Node& node);

}  // namespace sluice::kernel::api

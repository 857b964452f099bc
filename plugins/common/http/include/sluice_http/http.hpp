// sluice_http/http.hpp — the `system:url` model and an HTTP client with retries, shared by the
// HTTP connectors (json/rest source, json/rest sink) and the CSV source's URL mode.
//
// A `system:url` (reference §3.6) as the plugin receives it in CreateArgs.system, secrets already
// substituted by the kernel:
//   {"type": "system:url", "url_pattern": "https://api.example.com/v1/%s",   (or "base_url")
//    "headers": {"X-Api-Version": "3"},
//    "authentication": "basic", "username": "u", "password": "$SECRET(pw)",   (or "jwt"/"bearer"
//                                                                              with "jwt_token"/"token")
//    "connect_timeout": 60, "read_timeout": 1800, "verify_ssl": false, "ca_file": "/etc/ssl/my-ca.pem",
//    "retry_strategy": {"429": {"retries": 5, "retry_delay": 10},
//                       "500,502,504": {"retries": 3, "retry_delay": 1, "backoff_factor": 2},
//                       "default": {"retries": 2}}}
// Everything is documented in docs/connectors-http.md.
#pragma once

#include <sluice/entity.hpp>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

// How often and how patiently one class of failure is retried.
struct RetryRule {
    int retries = 3;             // extra attempts after the first (0: never retried)
    double retry_delay = 1.0;    // seconds before the first retry
    double backoff_factor = 2.0; // each further delay is multiplied by this
    double max_retry_delay = 60.0;

    double delay_before(int retry_number) const;  // 1-based retry number → seconds
};

// `retry_strategy`: rules per HTTP status ("429", "500,502,504", "5xx") plus "default", which
// covers connection errors, timeouts, 408, 429 and 5xx unless a status rule says otherwise.
// Other statuses (4xx) are never retried unless listed explicitly.
struct RetryPolicy {
    std::vector<std::pair<std::vector<std::string>, RetryRule>> by_status;
    RetryRule fallback;

    // The rule for `status` (0 = connection error or timeout), or nullopt when not retryable.
    std::optional<RetryRule> rule_for(int status) const;
    static RetryPolicy parse(const Json* retry_strategy);  // throws std::invalid_argument
};

enum class AuthKind { None, Basic, Bearer };

// The effective `system:url` (plus per-component `headers`).
struct UrlSystem {
    std::string url_pattern;  // may contain one "%s"; else a base URL
    Headers headers;
    AuthKind auth = AuthKind::None;
    std::string username, password, token;
    double connect_timeout = 60.0;
    double read_timeout = 1800.0;
    bool verify_ssl = false;
    std::string ca_file;
    RetryPolicy retry;

    // Reads the system (may be null or not an object: no system) and overlays the component's
    // `headers`. Throws std::invalid_argument naming the bad key.
    static UrlSystem parse(const Json* system, const Json* component);

    // An absolute URL for `url`: absolute URLs pass through; otherwise `url` replaces "%s" in
    // url_pattern, or is appended to the base URL with exactly one '/' between them.
    std::string resolve(std::string_view url) const;
};

// A request: `url` is absolute.
struct Request {
    std::string method = "GET";
    std::string url;
    Headers headers;       // added after the system's headers (same name: replaces)
    std::string body;      // sent when non-empty or method is POST/PUT/PATCH
    std::string content_type = "application/json";
};

struct ResponseHead {
    int status = 0;
    std::string reason;
    Headers headers;
    // The first header called `name` (case-insensitive), or "".
    std::string header(std::string_view name) const;
};

// Why a request finally failed.
struct Failure {
    bool transport = false;  // connection error or timeout (no HTTP status)
    bool retryable = false;  // a retryable class (5xx, 429, 408, transport) whose retries ran out
    int status = 0;
    std::string message;     // "GET http://… answered 401 Unauthorized: <body excerpt>"
};

// Connection errors and timeouts (no response).
class TransportError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Reads a successful (2xx) response's body.
using BodyReader = std::function<void(const ResponseHead&, std::istream&)>;

class Client {
public:
    explicit Client(UrlSystem system) : system_(std::move(system)) {}
    const UrlSystem& system() const { return system_; }

    // Called before each retry (attempt number from 2, the failure, the delay in seconds).
    std::function<void(int, const Failure&, double)> on_retry;
    // Polled while waiting between retries; true aborts the wait (returns the last failure).
    std::function<bool()> cancelled;

    // One attempt. 2xx → `on_success` reads the body; otherwise the body (first 2 KB) is kept in
    // `error_body`. Throws TransportError on connection errors and timeouts (also while reading).
    ResponseHead send_once(const Request& request, const BodyReader& on_success, std::string* error_body = nullptr);

    // With the retry policy. Returns nullopt after a 2xx (the body went to `on_success`), else
    // why it failed. An exception thrown by `on_success` propagates (it is not retried).
    std::optional<Failure> send(const Request& request, const BodyReader& on_success);

    // Sleeps `seconds` in small steps, returning false early when `cancelled` says so.
    bool sleep(double seconds) const;

private:
    UrlSystem system_;
};

// Helpers.
std::string describe_status(int status, const std::string& reason);
// The URL of the rel="next" entry of an RFC 8288 Link header, or "".
std::string link_header_next(std::string_view link_header);
// `relative` resolved against `base` (RFC 3986); absolute `relative` passes through.
std::string resolve_reference(const std::string& base, const std::string& relative);
// `url` with query parameter `name`=`value` added (values are percent-encoded).
std::string add_query_parameter(const std::string& url, const std::string& name, const std::string& value);
// The property name inside a simple template "{{ name }}" (or the text itself when it has no
// braces). Throws std::invalid_argument for anything richer.
std::string simple_template_variable(std::string_view text);
// Replaces every "{{ a.b }}" in `text` by the string value at that dotted path of `root`.
std::string render_template(std::string_view text, const Json& root);
// The value at a dotted path ("paging.next.link") of `root`, or nullptr.
const Json* find_path(const Json& root, std::string_view dotted);

}  // namespace sluice::http

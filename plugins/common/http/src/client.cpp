#include <sluice_http/http.hpp>

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPBasicCredentials.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <istream>
#include <memory>
#include <thread>

namespace sluice::http {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

Poco::Timespan seconds(double s) {
    return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(s * 1e6));
}

// A body read failed after the response started: never retried (the reader may have consumed
// part of it already).
class BodyReadError : public TransportError {
public:
    using TransportError::TransportError;
};

std::string excerpt(std::string text) {
    for (char& c : text) {
        if (c == '\r' || c == '\n' || c == '\t') c = ' ';
    }
    if (text.size() > 500) text = text.substr(0, 500) + "…";
    return text;
}

std::string redact_url(const std::string& url) {
    // Never echo credentials embedded in a URL (user:password@host).
    size_t scheme = url.find("://");
    if (scheme == std::string::npos) return url;
    size_t at = url.find('@', scheme + 3);
    size_t slash = url.find('/', scheme + 3);
    if (at == std::string::npos || (slash != std::string::npos && at > slash)) return url;
    return url.substr(0, scheme + 3) + "***@" + url.substr(at + 1);
}

}  // namespace

std::string ResponseHead::header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
        if (iequals(k, name)) return v;
    }
    return {};
}

ResponseHead Client::send_once(const Request& request, const BodyReader& on_success, std::string* error_body) {
    Poco::URI uri;
    try {
        uri = Poco::URI(request.url);
    } catch (const Poco::Exception& e) {
        throw std::invalid_argument("bad URL '" + redact_url(request.url) + "': " + e.displayText());
    }
    const std::string scheme = uri.getScheme();
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    if (scheme == "https") {
        Poco::Net::Context::Params params;
        params.caLocation = system_.ca_file;
        params.verificationMode = system_.verify_ssl ? Poco::Net::Context::VERIFY_RELAXED : Poco::Net::Context::VERIFY_NONE;
        params.loadDefaultCAs = system_.verify_ssl;
        Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
        session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), context);
    } else if (scheme == "http") {
        session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
    } else {
        throw std::invalid_argument("unsupported URL scheme in '" + redact_url(request.url) + "' (use http or https)");
    }
    session->setTimeout(seconds(system_.connect_timeout), seconds(system_.read_timeout), seconds(system_.read_timeout));
    session->setKeepAlive(false);

    std::string path = uri.getPathEtc();
    if (path.empty()) path = "/";
    Poco::Net::HTTPRequest req(request.method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    req.set("User-Agent", "sluice-http/1.0");
    req.set("Accept", "application/json, text/csv, */*");
    for (const auto& [k, v] : system_.headers) req.set(k, v);
    for (const auto& [k, v] : request.headers) req.set(k, v);
    if (system_.auth == AuthKind::Basic) {
        Poco::Net::HTTPBasicCredentials(system_.username, system_.password).authenticate(req);
    } else if (system_.auth == AuthKind::Bearer) {
        req.set("Authorization", "Bearer " + system_.token);
    }
    const bool has_body = !request.body.empty() || request.method == "POST" || request.method == "PUT" ||
                          request.method == "PATCH";
    if (has_body) {
        if (!req.has("Content-Type")) req.setContentType(request.content_type);
        req.setContentLength(static_cast<std::streamsize>(request.body.size()));
    }

    ResponseHead head;
    std::istream* body = nullptr;
    const std::string what = request.method + " " + redact_url(request.url);
    try {
        std::ostream& out = session->sendRequest(req);
        if (has_body) out.write(request.body.data(), static_cast<std::streamsize>(request.body.size()));
        out.flush();
        Poco::Net::HTTPResponse resp;
        body = &session->receiveResponse(resp);
        head.status = static_cast<int>(resp.getStatus());
        head.reason = resp.getReason();
        for (const auto& [k, v] : resp) head.headers.emplace_back(k, v);
    } catch (const Poco::TimeoutException& e) {
        throw TransportError(what + " timed out (connect_timeout " + std::to_string(static_cast<int>(system_.connect_timeout)) +
                             " s, read_timeout " + std::to_string(static_cast<int>(system_.read_timeout)) + " s)");
    } catch (const Poco::Exception& e) {
        throw TransportError(what + " failed: " + e.displayText());
    } catch (const std::ios_base::failure& e) {
        throw TransportError(what + " failed: " + e.what());
    }

    body->exceptions(std::ios::badbit);
    try {
        if (head.status >= 200 && head.status < 300) {
            if (on_success) on_success(head, *body);
        } else {
            std::string text(2048, '\0');
            body->read(text.data(), static_cast<std::streamsize>(text.size()));
            text.resize(static_cast<size_t>(body->gcount()));
            if (error_body) *error_body = std::move(text);
        }
    } catch (const Poco::TimeoutException& e) {
        throw BodyReadError(what + ": reading the response timed out (read_timeout " +
                            std::to_string(static_cast<int>(system_.read_timeout)) + " s)");
    } catch (const Poco::Exception& e) {
        throw BodyReadError(what + ": reading the response failed: " + e.displayText());
    } catch (const std::ios_base::failure& e) {
        throw BodyReadError(what + ": reading the response failed: " + e.what());
    }
    return head;
}

std::optional<Failure> Client::send(const Request& request, const BodyReader& on_success) {
    const std::string what = request.method + " " + redact_url(request.url);
    for (int attempt = 1;; ++attempt) {
        Failure failure;
        double retry_after = -1;
        try {
            std::string error_body;
            ResponseHead head = send_once(request, on_success, &error_body);
            if (head.status >= 200 && head.status < 300) return std::nullopt;
            failure.status = head.status;
            failure.message = what + " answered " + describe_status(head.status, head.reason);
            if (head.status == 401 || head.status == 403) {
                failure.message += std::string(" (check the system's authentication: ") +
                                   (system_.auth == AuthKind::None ? "none is configured"
                                    : system_.auth == AuthKind::Basic ? "basic, username/password"
                                                                      : "bearer token") + ")";
            }
            if (!error_body.empty()) failure.message += ": " + excerpt(error_body);
            const std::string ra = head.header("Retry-After");
            if (!ra.empty() && std::all_of(ra.begin(), ra.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
                retry_after = std::stod(ra);
        } catch (const BodyReadError&) {
            throw;
        } catch (const TransportError& e) {
            failure.transport = true;
            failure.message = e.what();
        }
        std::optional<RetryRule> rule = system_.retry.rule_for(failure.status);
        if (!rule) return failure;
        failure.retryable = true;
        if (attempt > rule->retries) {
            if (attempt > 1) failure.message += " (after " + std::to_string(attempt) + " attempts)";
            return failure;
        }
        double delay = rule->delay_before(attempt);
        if (retry_after >= 0) delay = std::max(delay, std::min(retry_after, rule->max_retry_delay));
        if (on_retry) on_retry(attempt + 1, failure, delay);
        if (!sleep(delay)) return failure;
    }
}

bool Client::sleep(double secs) const {
    auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(static_cast<int64_t>(secs * 1e6));
    while (std::chrono::steady_clock::now() < until) {
        if (cancelled && cancelled()) return false;
        auto left = until - std::chrono::steady_clock::now();
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
    }
    return !(cancelled && cancelled());
}

}  // namespace sluice::http

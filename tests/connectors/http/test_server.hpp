// An HTTP server the tests start in-process (Poco HTTPServer on 127.0.0.1, ephemeral port): the
// real counterpart of the HTTP connectors. Each test installs a handler that decides the reply;
// every request is recorded (method, URI, headers, body) for the test to check.
#pragma once

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::test {

struct RecordedRequest {
    std::string method;
    std::string uri;    // path and query, as sent
    std::string path;   // decoded path
    std::map<std::string, std::string> query;    // decoded query parameters
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;

    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
    std::string param(const std::string& name) const {
        auto it = query.find(name);
        return it == query.end() ? std::string() : it->second;
    }
    bool has_param(const std::string& name) const { return query.count(name) > 0; }
};

struct Reply {
    Reply(int status_ = 200, std::string body_ = {}) : status(status_), body(std::move(body_)) {}
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
    int delay_ms = 0;  // wait before answering (timeouts)
};

class TestServer {
public:
    using Handler = std::function<Reply(const RecordedRequest&)>;

    // With `tls`, an HTTPS server (the context holds its key and certificate).
    explicit TestServer(Poco::Net::Context::Ptr tls = nullptr) : pool_(2, 16), tls_(!tls.isNull()) {
        Poco::Net::ServerSocket socket = tls_ ? Poco::Net::SecureServerSocket(Poco::Net::SocketAddress("127.0.0.1", 0), 64, tls)
                                              : Poco::Net::ServerSocket(Poco::Net::SocketAddress("127.0.0.1", 0));
        port_ = socket.address().port();
        auto* params = new Poco::Net::HTTPServerParams;
        params->setKeepAlive(false);
        params->setMaxThreads(16);
        server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), pool_, socket, params);
        server_->start();
    }
    ~TestServer() {
        server_->stopAll(true);
        pool_.joinAll();
    }
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;

    int port() const { return port_; }
    std::string url(const std::string& path = "") const {
        return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_) + path;
    }

    void on(Handler handler) {
        std::lock_guard<std::mutex> lock(mutex_);
        handler_ = std::move(handler);
    }
    std::vector<RecordedRequest> requests() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return requests_;
    }
    size_t request_count() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return requests_.size();
    }
    void clear() {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.clear();
    }

private:
    class RequestHandler : public Poco::Net::HTTPRequestHandler {
    public:
        explicit RequestHandler(TestServer& server) : server_(server) {}
        void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
            RecordedRequest r;
            r.method = request.getMethod();
            r.uri = request.getURI();
            Poco::URI uri(r.uri);
            r.path = uri.getPath();
            for (const auto& [k, v] : uri.getQueryParameters()) r.query[k] = v;
            for (const auto& [k, v] : request) {
                std::string name = k;
                std::transform(name.begin(), name.end(), name.begin(),
                               [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
                r.headers[name] = v;
            }
            Poco::StreamCopier::copyToString(request.stream(), r.body);
            Handler handler;
            {
                std::lock_guard<std::mutex> lock(server_.mutex_);
                server_.requests_.push_back(r);
                handler = server_.handler_;
            }
            Reply reply = handler ? handler(r) : Reply{404, R"({"error":"no handler"})"};
            if (reply.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(reply.delay_ms));
            response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
            response.setContentType(reply.content_type);
            for (const auto& [k, v] : reply.headers) response.set(k, v);
            response.setContentLength(static_cast<std::streamsize>(reply.body.size()));
            try {
                response.send() << reply.body;
            } catch (...) {
                // the client went away (timeout tests)
            }
        }

    private:
        TestServer& server_;
    };

    class Factory : public Poco::Net::HTTPRequestHandlerFactory {
    public:
        explicit Factory(TestServer& server) : server_(server) {}
        Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new RequestHandler(server_);
        }

    private:
        TestServer& server_;
    };

    mutable std::mutex mutex_;
    Handler handler_;
    std::vector<RecordedRequest> requests_;
    Poco::ThreadPool pool_;
    bool tls_ = false;
    std::unique_ptr<Poco::Net::HTTPServer> server_;
    int port_ = 0;
};

// A port nothing listens on (bound, then closed).
inline int closed_port() {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    int port = socket.address().port();
    socket.close();
    return port;
}

}  // namespace sluice::test

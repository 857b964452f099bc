// The client's connection to a node: where it is (--node, $SLUICE_NODE, .syncconfig), the
// bearer token, and plain HTTP(S) requests.
#include <sluice/kernel/client.hpp>
#include <sluice/kernel/security.hpp>

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

namespace sluice::kernel::client {

namespace {

std::string trim(const std::string& s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    const size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

}  // namespace

SyncConfig parse_syncconfig(const std::string& text) {
    SyncConfig config;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        line = trim(line);
        if (line.empty() || line[0] == '#') continue;
        const size_t eq = line.find('=');
        if (eq == std::string::npos) continue;
        const std::string name = trim(line.substr(0, eq));
        std::string value = trim(line.substr(eq + 1));
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
            value = value.substr(1, value.size() - 2);
        if (name == "NODE") config.node = value;
        else if (name == "JWT") config.jwt = value;
    }
    return config;
}

std::optional<SyncConfig> find_syncconfig(const fs::path& start) {
    std::error_code ec;
    fs::path dir = fs::absolute(start, ec);
    if (ec) return std::nullopt;
    while (true) {
        const fs::path candidate = dir / ".syncconfig";
        if (fs::is_regular_file(candidate, ec)) {
            std::ifstream in(candidate, std::ios::binary);
            std::ostringstream text;
            text << in.rdbuf();
            SyncConfig config = parse_syncconfig(text.str());
            config.file = candidate;
            return config;
        }
        if (!dir.has_parent_path() || dir.parent_path() == dir) return std::nullopt;
        dir = dir.parent_path();
    }
}

std::string normalise_node_url(const std::string& node) {
    std::string url = trim(node);
    if (url.find("://") == std::string::npos) {
        std::string host = url.substr(0, url.find('/'));
        if (host.rfind('[', 0) == 0) host = host.substr(0, host.find(']') + 1);
        else host = host.substr(0, host.find(':'));
        const bool loopback = host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
        url = (loopback ? "http://" : "https://") + url;
    }
    while (!url.empty() && url.back() == '/') url.pop_back();
    if (url.size() >= 4 && url.compare(url.size() - 4, 4, "/api") == 0) url.resize(url.size() - 4);
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
}

Connection resolve_connection(const std::optional<std::string>& node_arg, const std::optional<std::string>& token_arg,
                              const fs::path& cwd,
                              const std::function<std::optional<std::string>(const char*)>& getenv) {
    std::optional<SyncConfig> sync;
    bool sync_read = false;
    auto syncconfig = [&]() -> const std::optional<SyncConfig>& {
        if (!sync_read) {
            sync = find_syncconfig(cwd);
            sync_read = true;
        }
        return sync;
    };
    Connection c;
    std::optional<std::string> node = node_arg;
    if (!node || node->empty()) node = getenv("SLUICE_NODE");
    if (!node || node->empty()) {
        if (syncconfig() && syncconfig()->node) node = syncconfig()->node;
    }
    c.base_url = normalise_node_url(node && !node->empty() ? *node : std::string(kDefaultNode));
    std::optional<std::string> token = token_arg;
    if (!token) token = getenv("SLUICE_TOKEN");
    if (!token) {
        if (syncconfig() && syncconfig()->jwt) token = syncconfig()->jwt;
    }
    if (!token) token = stored_token(credentials_file(getenv), c.base_url);
    c.token = token.value_or("");
    return c;
}

fs::path credentials_file(const std::function<std::optional<std::string>(const char*)>& getenv) {
    if (auto f = getenv("SLUICE_CREDENTIALS"); f && !f->empty()) return *f;
    if (auto x = getenv("XDG_CONFIG_HOME"); x && !x->empty()) return fs::path(*x) / "sluice" / "credentials";
    auto home = getenv("HOME");
    return fs::path(home && !home->empty() ? *home : ".") / ".config" / "sluice" / "credentials";
}

std::optional<std::string> stored_token(const fs::path& file, const std::string& base_url) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        const size_t space = line.find(' ');
        if (space != std::string::npos && line.substr(0, space) == base_url) return trim(line.substr(space + 1));
    }
    return std::nullopt;
}

void store_token(const fs::path& file, const std::string& base_url, const std::string& token) {
    std::string kept;
    {
        std::ifstream in(file);
        std::string line;
        while (std::getline(in, line)) {
            if (line.substr(0, line.find(' ')) != base_url && !trim(line).empty()) kept += line + "\n";
        }
    }
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    security::write_private_file(file, kept + base_url + " " + token + "\n");
}

std::string url_encode(const std::string& text) {
    std::string out;
    Poco::URI::encode(text, "!#$&'()*+,/:;=?@[]%\" <>", out);
    return out;
}

std::string describe_failure(const std::string& method, const std::string& path, const HttpResult& r) {
    std::string what = method + " " + path + " answered HTTP " + std::to_string(r.status);
    JsonDocument doc;
    doc.Parse(r.body.data(), r.body.size());
    if (!doc.HasParseError() && doc.IsObject() && (find_member(doc, "error") || find_member(doc, "detail"))) {
        const std::string error = string_or(doc, "error", "");
        const std::string detail = string_or(doc, "detail", "");
        if (!error.empty()) what += ": " + error;
        if (!detail.empty()) what += (error.empty() ? ": " : " (") + detail + (error.empty() ? "" : ")");
    } else if (!r.body.empty()) {
        what += ": " + r.body.substr(0, 300);
    }
    return what;
}

HttpResult NodeClient::request(const std::string& method, const std::string& path, const std::string& body,
                               const std::string& content_type, int timeout_seconds, const std::string& accept) const {
    try {
        Poco::URI base(connection_.base_url);
        std::unique_ptr<Poco::Net::HTTPClientSession> session;
        if (base.getScheme() == "https") {
            // $SLUICE_CA_FILE trusts a node's own (e.g. self-signed) certificate besides the system CAs.
            const char* ca = std::getenv("SLUICE_CA_FILE");
            Poco::Net::Context::Ptr context =
                new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", ca ? ca : "",
                                       Poco::Net::Context::VERIFY_RELAXED, 9, true);
            session = std::make_unique<Poco::Net::HTTPSClientSession>(base.getHost(), base.getPort(), context);
        } else if (base.getScheme() == "http") {
            session = std::make_unique<Poco::Net::HTTPClientSession>(base.getHost(), base.getPort());
        } else {
            throw std::runtime_error("unsupported node URL '" + connection_.base_url + "' (use http:// or https://)");
        }
        session->setTimeout(Poco::Timespan(timeout_seconds, 0));
        Poco::Net::HTTPRequest request(method, base.getPath() + path, Poco::Net::HTTPMessage::HTTP_1_1);
        request.set("Accept", accept);
        request.set("User-Agent", "sluice-client/" SLUICE_VERSION);
        if (!connection_.token.empty()) request.set("Authorization", "Bearer " + connection_.token);
        if (!body.empty() || method == "POST" || method == "PUT") {
            // No body, no Content-Type: as Sesam's client posts query-only requests.
            if (!content_type.empty() && !body.empty()) request.setContentType(content_type);
            request.setContentLength(static_cast<std::streamsize>(body.size()));
        }
        std::ostream& out = session->sendRequest(request);
        out << body;
        Poco::Net::HTTPResponse response;
        std::istream& in = session->receiveResponse(response);
        HttpResult result;
        result.status = static_cast<int>(response.getStatus());
        result.content_type = response.getContentType();
        Poco::StreamCopier::copyToString(in, result.body);
        return result;
    } catch (const Poco::Exception& e) {
        throw std::runtime_error("cannot reach the node at " + connection_.base_url + " (" + method + " " + path +
                                 "): " + e.displayText());
    }
}

}  // namespace sluice::kernel::client

// Operations endpoints: Prometheus metrics and the OpenAPI description, generated from the
// router's own table so it lists exactly the endpoints implemented.
#include <sluice/kernel/node.hpp>

#include "api_internal.hpp"

#include <sstream>

namespace sluice::kernel::api {

namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string label(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

}  // namespace

void HttpMetrics::count(const std::string& method, int status) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_[{method, status}];
}

std::map<std::pair<std::string, int>, uint64_t> HttpMetrics::snapshot() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
}

void register_ops_routes(Router& r, Node& node, const HttpMetrics& http_metrics) {
    r.add("GET", "/metrics", [&node, &http_metrics](Request&, HTTPServerResponse& res) {
        std::ostringstream out;
        auto family = [&](const char* name, const char* type, const char* help) {
            out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
        };
        const std::vector<PumpStatus> pumps = node.pumps().statuses();
        family("sluice_pipe_runs_total", "counter", "Completed pipe runs, by outcome.");
        for (const PumpStatus& p : pumps) {
            out << "sluice_pipe_runs_total{pipe=\"" << label(p.pipe_id) << "\",status=\"completed\"} "
                << p.runs - p.failures << '\n';
            out << "sluice_pipe_runs_total{pipe=\"" << label(p.pipe_id) << "\",status=\"failed\"} " << p.failures
                << '\n';
        }
        family("sluice_pipe_entities_in_total", "counter", "Entities read from the pipe's source.");
        for (const PumpStatus& p : pumps)
            out << "sluice_pipe_entities_in_total{pipe=\"" << label(p.pipe_id) << "\"} " << p.entities_read_total << '\n';
        family("sluice_pipe_entities_out_total", "counter", "Entities handed to the pipe's sink.");
        for (const PumpStatus& p : pumps)
            out << "sluice_pipe_entities_out_total{pipe=\"" << label(p.pipe_id) << "\"} " << p.entities_to_sink_total
                << '\n';
        family("sluice_pipe_changes_total", "counter", "Versions a dataset sink appended.");
        for (const PumpStatus& p : pumps)
            out << "sluice_pipe_changes_total{pipe=\"" << label(p.pipe_id) << "\"} " << p.changes_total << '\n';
        family("sluice_pipe_run_seconds_total", "counter", "Time spent in pipe runs.");
        for (const PumpStatus& p : pumps)
            out << "sluice_pipe_run_seconds_total{pipe=\"" << label(p.pipe_id) << "\"} " << p.run_seconds_total << '\n';
        family("sluice_pipe_running", "gauge", "1 while the pipe runs.");
        for (const PumpStatus& p : pumps)
            out << "sluice_pipe_running{pipe=\"" << label(p.pipe_id) << "\"} " << (p.running ? 1 : 0) << '\n';
        family("sluice_http_requests_total", "counter", "HTTP requests answered, by method and status.");
        for (const auto& [key, n] : http_metrics.snapshot())
            out << "sluice_http_requests_total{method=\"" << label(key.first) << "\",status=\"" << key.second << "\"} "
                << n << '\n';
        family("sluice_up", "gauge", "1 while the node serves.");
        out << "sluice_up 1\n";
        const std::string text = out.str();
        res.setStatus(HTTPResponse::HTTP_OK);
        res.setContentType("text/plain; version=0.0.4");
        res.setContentLength(static_cast<std::streamsize>(text.size()));
        res.send() << text;
    });

    r.add("GET", "/api/openapi.json", [&r](Request&, HTTPServerResponse& res) {
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        doc.AddMember("openapi", "3.0.3", a);
        Json info(rapidjson::kObjectType);
        info.AddMember("title", "Sluice service API", a);
        info.AddMember("version", SLUICE_VERSION, a);
        info.AddMember("description", "Sesam-compatible service API of a Sluice node (docs/api.md).", a);
        doc.AddMember("info", info, a);
        Json paths(rapidjson::kObjectType);
        for (const Router::Entry& route : r.routes()) {
            std::string path = route.pattern;
            Json* item = nullptr;
            auto it = paths.FindMember(path.c_str());
            if (it == paths.MemberEnd()) {
                paths.AddMember(Json(path.c_str(), a), Json(rapidjson::kObjectType), a);
                item = &paths[path.c_str()];
                // Path parameters, from the {placeholders}.
                Json parameters(rapidjson::kArrayType);
                size_t open = 0;
                while ((open = path.find('{', open)) != std::string::npos) {
                    size_t close = path.find('}', open);
                    Json p(rapidjson::kObjectType);
                    std::string name = path.substr(open + 1, close - open - 1);
                    p.AddMember("name", Json(name.c_str(), a), a);
                    p.AddMember("in", "path", a);
                    p.AddMember("required", true, a);
                    Json schema(rapidjson::kObjectType);
                    schema.AddMember("type", "string", a);
                    p.AddMember("schema", schema, a);
                    parameters.PushBack(p, a);
                    open = close;
                }
                if (!parameters.Empty()) item->AddMember("parameters", parameters, a);
            } else {
                item = &it->value;
            }
            std::string method = route.method;
            for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            Json operation(rapidjson::kObjectType);
            Json responses(rapidjson::kObjectType);
            Json ok(rapidjson::kObjectType);
            ok.AddMember("description", "success", a);
            responses.AddMember("200", ok, a);
            Json error(rapidjson::kObjectType);
            error.AddMember("description", "error: {\"error\": ..., \"detail\": ...}", a);
            responses.AddMember("default", error, a);
            operation.AddMember("responses", responses, a);
            // Who may call it (docs/security.md); the 401/403 matrix test walks this table.
            const Access access = required_access(route.method, route.pattern);
            operation.AddMember("x-required-role",
                                Json(access.is_public ? "public" : security::role_name(access.role), a), a);
            item->AddMember(Json(method.c_str(), a), operation, a);
        }
        doc.AddMember("paths", paths, a);
        send_json(res, doc);
    });
}

}  // namespace sluice::kernel::api

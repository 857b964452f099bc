// REST API handlers. Paths follow Sesam's service API (reference §5) under /api.
#include <sluice/kernel/api.hpp>
#include <sluice/kernel/node.hpp>
#include <sluice/kernel/security.hpp>

#include "api_internal.hpp"

#include <Poco/Logger.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <rapidjson/prettywriter.h>

#include <functional>
#include <sstream>

namespace sluice::kernel {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

namespace api {

// ---- JSON shapes --------------------------------------------------------------------------

Json capabilities_json(uint64_t caps, JsonAllocator& a) {
    Json list(rapidjson::kArrayType);
    const std::pair<uint64_t, const char*> names[] = {
        {SLUICE_CAP_SUPPORTS_SINCE, "supports_since"}, {SLUICE_CAP_SINCE_COMPARABLE, "is_since_comparable"},
        {SLUICE_CAP_CHRONOLOGICAL, "is_chronological"}, {SLUICE_CAP_SIDE_EFFECTS, "side_effects"},
        {SLUICE_CAP_THREAD_SAFE, "thread_safe"}, {SLUICE_CAP_DATASET_SINK, "dataset_sink"},
        {SLUICE_CAP_PUSH_ONLY, "push_only"}, {SLUICE_CAP_PUBLISHER, "publisher"}};
    for (const auto& [bit, name] : names) {
        if (caps & bit) list.PushBack(Json(rapidjson::StringRef(name)), a);
    }
    return list;
}

Json run_json(const RunResult& r, JsonAllocator& a) {
    Json o(rapidjson::kObjectType);
    o.AddMember("run_id", Json(r.run_id.c_str(), a), a);
    o.AddMember("status", Json(r.ok ? "completed" : "failed", a), a);
    o.AddMember("sync_type", Json(r.full ? "full" : "incremental", a), a);
    o.AddMember("started_us", r.started_us, a);
    o.AddMember("ended_us", r.ended_us, a);
    o.AddMember("entities", r.entities_read, a);
    o.AddMember("changes", r.changes, a);
    o.AddMember("unchanged", r.unchanged, a);
    o.AddMember("dead_letters", r.dead_letters, a);
    o.AddMember("since", Json(r.since.c_str(), a), a);
    o.AddMember("last_seen", Json(r.last_seen.c_str(), a), a);
    if (!r.ok) o.AddMember("error", Json(r.error.c_str(), a), a);
    return o;
}

Json pump_json(const PumpStatus& s, DatasetStore& store, JsonAllocator& a) {
    Json o(rapidjson::kObjectType);
    std::string id = "pump:" + s.pipe_id;
    o.AddMember("_id", Json(id.c_str(), a), a);
    Json runtime(rapidjson::kObjectType);
    runtime.AddMember("is-running", s.running, a);
    runtime.AddMember("is-disabled", s.disabled, a);
    runtime.AddMember("mode", Json(s.mode.c_str(), a), a);
    runtime.AddMember("runs", s.runs, a);
    runtime.AddMember("failures", s.failures, a);
    Json progress(rapidjson::kObjectType);
    progress.AddMember("processed", s.progress, a);
    runtime.AddMember("progress", progress, a);
    JsonDocument state = store.state_get(PipeRunner::state_key(s.pipe_id));
    std::string last_seen = state.IsObject() ? string_or(state, "last_seen", "") : "";
    runtime.AddMember("last-seen", Json(last_seen.c_str(), a), a);
    if (s.next_run_us > 0) runtime.AddMember("next-run-us", s.next_run_us, a);
    if (s.last_run) {
        runtime.AddMember("last-run", run_json(*s.last_run, a), a);
        runtime.AddMember("last-message", Json(s.last_run->ok ? "" : s.last_run->error.c_str(), a), a);
    }
    Json ops(rapidjson::kArrayType);
    for (const char* op : {"start", "stop", "enable", "disable", "update-last-seen", "start-rescan", "reset-rescan"})
        ops.PushBack(Json(rapidjson::StringRef(op)), a);
    runtime.AddMember("supported-operations", ops, a);
    o.AddMember("runtime", runtime, a);
    return o;
}

Json pipe_json(const PipeConfig& pipe, Node& node, JsonAllocator& a) {
    Json o(rapidjson::kObjectType);
    o.AddMember("_id", Json(pipe.id.c_str(), a), a);
    Json config(rapidjson::kObjectType);
    config.AddMember("original", Json(*pipe.original, a), a);
    config.AddMember("effective", Json(*pipe.effective, a), a);
    o.AddMember("config", config, a);
    Json runtime(rapidjson::kObjectType);
    auto status = node.pumps().status(pipe.id);
    runtime.AddMember("state", Json(status && status->running ? "Running" : "Deployed", a), a);
    runtime.AddMember("is-running", status && status->running, a);
    runtime.AddMember("is-disabled", status && status->disabled, a);
    runtime.AddMember("is-valid-config", true, a);
    runtime.AddMember("config-errors", Json(rapidjson::kArrayType), a);
    Json deps(rapidjson::kArrayType);
    for (const std::string& d : pipe.input_datasets) deps.PushBack(Json(d.c_str(), a), a);
    runtime.AddMember("dependencies", deps, a);
    std::string exec = PipeRunner::execution_dataset(pipe.id);
    runtime.AddMember("execution-dataset", Json(exec.c_str(), a), a);
    o.AddMember("runtime", runtime, a);
    return o;
}

// Streams a dataset read as one JSON array, never holding the dataset in memory.
void stream_entities(DatasetStore& store, const std::string& query, HTTPServerResponse& response) {
    response.setStatus(HTTPResponse::HTTP_OK);
    response.setContentType("application/json");
    response.setChunkedTransferEncoding(true);
    std::ostream& out = response.send();
    out << '[';
    bool first = true;
    store.read(query, [&](std::string_view chunk) {
        size_t open = chunk.find('['), close = chunk.rfind(']');
        if (open == std::string_view::npos || close == std::string_view::npos || close <= open) return true;
        std::string_view inner = chunk.substr(open + 1, close - open - 1);
        if (inner.find_first_not_of(" \t\r\n") == std::string_view::npos) return true;
        if (!first) out << ',';
        out.write(inner.data(), static_cast<std::streamsize>(inner.size()));
        first = false;
        return static_cast<bool>(out);
    });
    out << ']';
}

std::string read_query(const std::string& dataset, Request& req, bool history_default) {
    JsonDocument q(rapidjson::kObjectType);
    auto& a = q.GetAllocator();
    q.AddMember("dataset", Json(dataset.c_str(), a), a);
    if (auto since = req.integer("since")) q.AddMember("since", *since, a);
    if (auto limit = req.integer("limit")) {
        if (*limit < 0) throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid query parameter 'limit'", "must be >= 0");
        q.AddMember("limit", *limit, a);
    }
    q.AddMember("history", req.flag("history", history_default), a);
    q.AddMember("deleted", req.flag("deleted", true), a);
    q.AddMember("reverse", req.flag("reverse", false), a);
    if (req.flag("uncommitted", false)) {
        // Circuit-breaker debugging: the staged versions after the log (not with reverse).
        if (req.flag("reverse", false))
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid query parameters",
                            "'uncommitted' cannot be combined with 'reverse'");
        q.AddMember("uncommitted", true, a);
    }
    return to_json(q);
}

JsonDocument dataset_info(DatasetStore& store, const std::string& id) {
    JsonDocument cmd(rapidjson::kObjectType);
    cmd.AddMember("op", "info", cmd.GetAllocator());
    cmd.AddMember("dataset", Json(id.c_str(), cmd.GetAllocator()), cmd.GetAllocator());
    return store.command(cmd);
}

// Sesam's dataset object: `_id` + `runtime` counters (plus the plain backend fields).
Json dataset_json(const Json& info, JsonAllocator& a) {
    Json o(info, a);
    Json runtime(rapidjson::kObjectType);
    runtime.AddMember("count-index-exists", int_or(info, "count", 0), a);
    runtime.AddMember("count-index-deleted", int_or(info, "deleted", 0), a);
    runtime.AddMember("count-log-exists", int_or(info, "versions", 0), a);
    runtime.AddMember("populated", bool_or(info, "populated", false), a);
    if (const Json* last = find_member(info, "last_offset")) runtime.AddMember("last-offset", Json(*last, a), a);
    const Json* breaker = find_member(info, "circuit_breaker");
    runtime.AddMember("circuit-breaker-tripped", breaker != nullptr && breaker->IsObject(), a);
    runtime.AddMember("count-uncommitted", int_or(info, "staged", 0), a);
    o.AddMember("runtime", runtime, a);
    return o;
}

// Sesam's JSON-pull headers (reference §5.6) from a dataset's info. Completeness and restore
// info are not tracked by Sluice, so those headers are not sent.
void set_dataset_headers(HTTPServerResponse& response, const Json& info, bool filtered) {
    response.set("X-Dataset-Populated", bool_or(info, "populated", false) ? "true" : "false");
    const Json* last = find_member(info, "last_offset");
    response.set("X-Dataset-Max-Updated", last ? to_json(*last) : "null");
    response.set("X-Dataset-Generation", string_or(info, "generation", ""));
    response.set("X-Dataset-Filtered", filtered ? "true" : "false");
}

std::map<std::string, std::string> request_fields(Request& req) {
    std::map<std::string, std::string> fields;
    const std::string content_type = req.http.getContentType();
    if (content_type.find("application/json") != std::string::npos) {
        JsonDocument body = req.json_body();
        if (body.IsObject()) {
            for (auto it = body.MemberBegin(); it != body.MemberEnd(); ++it)
                fields[std::string(as_view(it->name))] =
                    it->value.IsString() ? std::string(as_view(it->value)) : to_json(it->value);
        }
    } else if (req.http.getMethod() == "POST" || req.http.getMethod() == "PUT") {
        Poco::Net::HTMLForm form(req.http, req.http.stream());
        for (const auto& [k, v] : form) fields[k] = v;
    }
    for (const auto& [k, v] : req.query) fields.emplace(k, v);
    return fields;
}

}  // namespace api

namespace {

using namespace api;

class Api {
public:
    explicit Api(Node& node) : node_(node) { define_routes(); }

    void handle(HTTPServerRequest& http, HTTPServerResponse& response) {
        dispatch(http, response);
        http_metrics_.count(http.getMethod(), static_cast<int>(response.getStatus()));
    }

    void dispatch(HTTPServerRequest& http, HTTPServerResponse& response) {
        Request req{http, {}, {}, std::nullopt, static_cast<std::streamsize>(node_.options().max_body_bytes),
                    node_.options().max_json_depth};
        try {
            check_limits(http);
            Poco::URI uri(http.getURI());
            std::vector<std::string> path = split_path(uri.getPath());
            req.query = uri.getQueryParameters();
            // The most specific route wins: literal segments beat {placeholders}, so
            // /api/pipes/run-all-pipes is never taken for /api/pipes/{id}.
            bool path_matched = false;
            const Router::Entry* best = nullptr;
            size_t best_literals = 0;
            std::vector<std::string> best_params;
            for (const Router::Entry& route : router_.routes()) {
                if (route.segments.size() != path.size()) continue;
                std::vector<std::string> params;
                bool match = true;
                size_t literals = 0;
                for (size_t i = 0; i < path.size() && match; ++i) {
                    if (route.segments[i] == "{}") params.push_back(path[i]);
                    else if ((match = route.segments[i] == path[i])) ++literals;
                }
                if (!match) continue;
                path_matched = true;
                if (route.method != http.getMethod()) continue;
                if (!best || literals > best_literals) {
                    best = &route;
                    best_literals = literals;
                    best_params = std::move(params);
                }
            }
            if (best) {
                req.params = std::move(best_params);
                authorize(node_, best, req, response);
                best->handler(req, response);
                return;
            }
            authorize(node_, nullptr, req, response);
            if (path_matched)
                throw HttpError(HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "method not allowed",
                                http.getMethod() + " is not supported on " + uri.getPath());
            throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "not found", "no endpoint at " + uri.getPath());
        } catch (const HttpError& e) {
            // The rest of an oversized body may still be on the wire: do not read it as a request.
            if (e.status == HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE) response.setKeepAlive(false);
            if (!response.sent()) send_error(response, e.status, security::redact(e.what()), security::redact(e.detail));
        } catch (const ConfigError& e) {
            if (!response.sent()) send_config_errors(response, e);
        } catch (const SecretsKeyMismatch& e) {
            if (!response.sent())
                send_error(response, HTTPResponse::HTTP_CONFLICT, "secrets sealed with another key",
                           security::redact(e.what()));
        } catch (const std::exception& e) {
            const std::string what = security::redact(e.what());
            Poco::Logger::get("sluice.api").error(http.getMethod() + " " + http.getURI() + ": " + what);
            if (!response.sent()) send_error(response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "internal error", what);
        }
    }

    // Size limits checked before authentication and before any handler reads the request (the
    // body limit again while reading, for chunked bodies): answered as JSON, the node keeps serving.
    void check_limits(HTTPServerRequest& http) {
        const NodeOptions& o = node_.options();
        size_t header_bytes = http.getURI().size() + http.getMethod().size() + 16;
        for (const auto& [name, value] : http) header_bytes += name.size() + value.size() + 4;
        if (header_bytes > o.max_header_bytes)
            throw HttpError(static_cast<HTTPResponse::HTTPStatus>(431), "request header fields too large",
                            "the request line and headers take " + std::to_string(header_bytes) +
                                " bytes; the limit is " + std::to_string(o.max_header_bytes));
        if (http.hasContentLength() && http.getContentLength64() > static_cast<Poco::Int64>(o.max_body_bytes)) {
            // Read (and drop) a bounded part of what the client is still sending, so it gets to
            // read the answer instead of a connection reset; the connection closes after it.
            std::istream& in = http.stream();
            char buffer[65536];
            std::streamsize drained = 0;
            while (drained < kDrainBytes && in.read(buffer, sizeof buffer).gcount() > 0) drained += in.gcount();
            throw HttpError(HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE, "request body too large",
                            "Content-Length " + std::to_string(http.getContentLength64()) + " exceeds the limit of " +
                                std::to_string(o.max_body_bytes) + " bytes");
        }
    }
    static constexpr std::streamsize kDrainBytes = 16 * 1024 * 1024;

private:
    void route(const std::string& method, const std::string& pattern, Handler handler) {
        router_.add(method, pattern, std::move(handler));
    }

    static void send_config_errors(HTTPServerResponse& response, const ConfigError& e) {
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        doc.AddMember("error", "invalid configuration", a);
        doc.AddMember("detail", Json(e.what(), a), a);
        Json errors(rapidjson::kArrayType);
        for (const ConfigProblem& p : e.problems()) {
            Json item(rapidjson::kObjectType);
            item.AddMember("entity", Json(p.entity_id.c_str(), a), a);
            item.AddMember("pointer", Json(p.pointer.c_str(), a), a);
            item.AddMember("level", "error", a);
            item.AddMember("message", Json(p.message.c_str(), a), a);
            // Sesam's shape too, which its client prints: posted-config + config-errors.
            Json posted(rapidjson::kObjectType);
            posted.AddMember("_id", Json(p.entity_id.c_str(), a), a);
            item.AddMember("posted-config", posted, a);
            Json config_errors(rapidjson::kArrayType);
            Json config_error(rapidjson::kObjectType);
            config_error.AddMember("level", "error", a);
            const std::string msg = (p.pointer.empty() ? std::string() : p.pointer + ": ") + p.message;
            config_error.AddMember("msg", Json(msg.c_str(), a), a);
            config_error.AddMember("elements", Json(p.pointer.c_str(), a), a);
            config_errors.PushBack(config_error, a);
            item.AddMember("config-errors", config_errors, a);
            errors.PushBack(item, a);
        }
        doc.AddMember("validation_errors", errors, a);
        send_json(response, doc, HTTPResponse::HTTP_BAD_REQUEST);
    }

    const PipeConfig& pipe_or_404(const std::shared_ptr<const NodeConfig>& config, const std::string& id) {
        const PipeConfig* pipe = config->pipe(id);
        if (!pipe) throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such pipe", "pipe '" + id + "' is not configured");
        return *pipe;
    }

    void define_routes() {
        route("GET", "/api/ping", [](Request&, HTTPServerResponse& res) { send_json(res, R"({"ping":"pong"})"); });
        route("GET", "/api/health", [this](Request&, HTTPServerResponse& res) { health(res); });
        route("GET", "/api", [this](Request&, HTTPServerResponse& res) { service_info(res); });
        route("GET", "/api/status", [this](Request&, HTTPServerResponse& res) { status(res); });
        route("GET", "/api/plugins", [this](Request&, HTTPServerResponse& res) { plugins(res); });
        route("GET", "/api/plugins/refused", [this](Request&, HTTPServerResponse& res) { refused(res); });

        register_config_routes(router_, node_);
        register_run_routes(router_, node_);
        register_ui_routes(router_, node_);
        register_ops_routes(router_, node_, http_metrics_);
        register_auth_routes(router_, node_);

        route("GET", "/api/pipes", [this](Request&, HTTPServerResponse& res) {
            auto config = node_.config();
            JsonDocument doc(rapidjson::kArrayType);
            for (const auto& [id, pipe] : config->pipes()) doc.PushBack(pipe_json(pipe, node_, doc.GetAllocator()), doc.GetAllocator());
            send_json(res, doc);
        });
        route("GET", "/api/pipes/{id}", [this](Request& req, HTTPServerResponse& res) {
            auto config = node_.config();
            JsonDocument doc;
            Json o = pipe_json(pipe_or_404(config, req.params[0]), node_, doc.GetAllocator());
            send_json(res, o);
        });
        route("GET", "/api/pipes/{id}/pump", [this](Request& req, HTTPServerResponse& res) { pump(req, res); });
        route("POST", "/api/pipes/{id}/pump", [this](Request& req, HTTPServerResponse& res) { pump_operation(req, res); });
        route("GET", "/api/pipes/{id}/log", [this](Request& req, HTTPServerResponse& res) {
            auto config = node_.config();
            pipe_or_404(config, req.params[0]);
            stream_entities(node_.store(), read_query(PipeRunner::execution_dataset(req.params[0]), req, true), res);
        });

        route("GET", "/api/datasets", [this](Request&, HTTPServerResponse& res) {
            JsonDocument list = node_.store().command(R"({"op":"list"})");
            JsonDocument doc(rapidjson::kArrayType);
            if (list.IsArray()) {
                for (const Json& info : list.GetArray()) doc.PushBack(dataset_json(info, doc.GetAllocator()), doc.GetAllocator());
            }
            send_json(res, doc);
        });
        route("GET", "/api/datasets/{id}", [this](Request& req, HTTPServerResponse& res) {
            JsonDocument info = dataset_or_404(req.params[0]);
            JsonDocument doc;
            Json o = dataset_json(info, doc.GetAllocator());
            send_json(res, o);
        });
        route("DELETE", "/api/datasets/{id}", [this](Request& req, HTTPServerResponse& res) {
            dataset_or_404(req.params[0]);
            JsonDocument cmd(rapidjson::kObjectType);
            cmd.AddMember("op", "delete", cmd.GetAllocator());
            cmd.AddMember("dataset", Json(req.params[0].c_str(), cmd.GetAllocator()), cmd.GetAllocator());
            send_json(res, node_.store().command(cmd));
        });
        route("GET", "/api/datasets/{id}/entities", [this](Request& req, HTTPServerResponse& res) {
            JsonDocument info = dataset_or_404(req.params[0]);
            const std::string query = read_query(req.params[0], req, true);
            set_dataset_headers(res, info, false);
            stream_entities(node_.store(), query, res);
        });
        route("POST", "/api/datasets/{id}", [this](Request& req, HTTPServerResponse& res) {
            circuit_breaker_operation(req, res);
        });
        route("POST", "/api/datasets/{id}/entities", [this](Request& req, HTTPServerResponse& res) {
            write_entities(req, res);
        });
        route("GET", "/api/datasets/{id}/entity", [this](Request& req, HTTPServerResponse& res) {
            auto entity_id = req.param("entity_id");
            if (!entity_id) throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "missing query parameter 'entity_id'");
            JsonDocument cmd(rapidjson::kObjectType);
            auto& a = cmd.GetAllocator();
            cmd.AddMember("op", "get", a);
            cmd.AddMember("dataset", Json(req.params[0].c_str(), a), a);
            cmd.AddMember("id", Json(entity_id->c_str(), a), a);
            JsonDocument entity = node_.store().command(cmd);
            if (!entity.IsObject())
                throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such entity",
                                "dataset '" + req.params[0] + "' has no entity '" + *entity_id + "'");
            send_json(res, entity);
        });
    }

    // POST /api/datasets/{id}/entities[?force=true] (reference §5.4): writes one entity or an
    // array of them straight into the dataset under the write rule (`force` bypasses the hash
    // check), creating the dataset if needed. The whole body is one storage write — one
    // transaction — so it lands whole or not at all; every entity is checked first (an object
    // with a string `_id`), and a bad one is a 400 naming its index that writes nothing. Meant
    // for tests and repairs: pipes and receivers are the production path.
    void write_entities(Request& req, HTTPServerResponse& res) {
        const std::string& dataset = req.params[0];
        const JsonDocument doc = req.entities_body();
        const std::optional<std::string> force = req.param("force");
        if (force && *force != "true" && *force != "false")
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "query parameter 'force' must be true or false");
        const bool forced = force && *force == "true";
        // The storage's answer: {"written", "unchanged", "last_offset"}.
        const std::string answer = node_.store().write(dataset, to_json(doc), doc.Size(), forced ? R"({"force":true})" : "{}");
        send_json(res, answer);
    }

    // POST /api/datasets/{id} operation=commit-circuit-breaker | rollback-circuit-breaker
    // (reference §2.9, §5.4): exposes or discards what the tripped run staged, and lets the pipe
    // run again. Form-encoded like Sesam's client, or JSON.
    void circuit_breaker_operation(Request& req, HTTPServerResponse& res) {
        const std::string& id = req.params[0];
        std::map<std::string, std::string> fields = request_fields(req);
        const std::string op = fields.count("operation") ? fields["operation"] : "";
        if (op != "commit-circuit-breaker" && op != "rollback-circuit-breaker")
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST,
                            op.empty() ? std::string("missing 'operation'") : "unsupported operation '" + op + "'",
                            "supported: commit-circuit-breaker, rollback-circuit-breaker");
        JsonDocument info = dataset_or_404(id);
        const Json* breaker = find_member(info, "circuit_breaker");
        if (!breaker || !breaker->IsObject()) {
            // Not tripped: what is staged belongs to a run in progress (committing or discarding
            // it under that run would lose the batches whose offset it holds), or to one that
            // never finished, which only an operator can resolve when the dataset is shared.
            if (int_or(info, "staged", 0) == 0)
                throw HttpError(HTTPResponse::HTTP_CONFLICT, "the circuit breaker is not tripped",
                                "dataset '" + id + "' has no tripped circuit breaker and nothing staged");
            auto config = node_.config();
            for (const auto& [pipe_id, pipe] : config->pipes()) {
                auto status = node_.pumps().status(pipe_id);
                if (pipe.output_dataset == id && status && status->running)
                    throw HttpError(HTTPResponse::HTTP_CONFLICT, "a run is staging writes to this dataset",
                                    "pipe '" + pipe_id + "' is running; its writes are committed when it ends");
            }
        }
        JsonDocument cmd(rapidjson::kObjectType);
        auto& a = cmd.GetAllocator();
        cmd.AddMember("op", Json(op == "commit-circuit-breaker" ? "stage_commit" : "stage_rollback", a), a);
        cmd.AddMember("dataset", Json(id.c_str(), a), a);
        node_.store().command(cmd);
        JsonDocument after = dataset_or_404(id);
        JsonDocument doc;
        Json o = dataset_json(after, doc.GetAllocator());
        send_json(res, o);
    }

    JsonDocument dataset_or_404(const std::string& id) {
        JsonDocument info = dataset_info(node_.store(), id);
        if (!info.IsObject()) throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such dataset", "dataset '" + id + "' does not exist");
        return info;
    }

    void health(HTTPServerResponse& res) {
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        try {
            node_.store().command(R"({"op":"state_get","key":"node:health"})");
            if (!node_.stored_config_error().empty()) {
                // Reachable, but running none of the pipes the other nodes run (Node::sync_locked).
                // The reason names pipes and plugins: it is in the log and /api/status, which
                // need a token; this endpoint needs none.
                doc.AddMember("status", "failing", a);
                doc.AddMember("error", "the stored configuration does not build on this node", a);
                doc.AddMember("detail", "the node runs no pipe; its log and /api/status say why", a);
                send_json(res, doc, HTTPResponse::HTTP_SERVICE_UNAVAILABLE);
                return;
            }
            doc.AddMember("status", "ok", a);
            doc.AddMember("storage", Json(node_.storage_description().c_str(), a), a);
            send_json(res, doc);
        } catch (const std::exception& e) {
            doc.AddMember("status", "failing", a);
            doc.AddMember("error", "storage unavailable", a);
            doc.AddMember("detail", Json(e.what(), a), a);
            send_json(res, doc, HTTPResponse::HTTP_SERVICE_UNAVAILABLE);
        }
    }

    void service_info(HTTPServerResponse& res) {
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        Json status(rapidjson::kObjectType);
        status.AddMember("developer_mode", true, a);
        status.AddMember("node_version", SLUICE_VERSION, a);
        doc.AddMember("status", status, a);
        doc.AddMember("product", "sluice", a);
        send_json(res, doc);
    }

    void status(HTTPServerResponse& res) {
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        doc.AddMember("node_start_time", node_.start_time_us(), a);
        doc.AddMember("node_version", SLUICE_VERSION, a);
        doc.AddMember("storage", Json(node_.storage_description().c_str(), a), a);
        doc.AddMember("pipes", static_cast<uint64_t>(node_.config()->pipes().size()), a);
        if (const std::string error = node_.stored_config_error(); !error.empty())
            doc.AddMember("config_error", Json(security::redact(error).c_str(), a), a);
        send_json(res, doc);
    }

    void plugins(HTTPServerResponse& res) {
        JsonDocument doc(rapidjson::kArrayType);
        auto& a = doc.GetAllocator();
        for (const PluginInfo* p : node_.plugins().plugins()) {
            Json o(rapidjson::kObjectType);
            o.AddMember("name", Json(p->name.c_str(), a), a);
            o.AddMember("version", Json(p->version.c_str(), a), a);
            o.AddMember("description", Json(p->description.c_str(), a), a);
            o.AddMember("license", Json(p->license.c_str(), a), a);
            std::string abi = std::to_string(p->abi_major) + "." + std::to_string(p->abi_minor);
            o.AddMember("abi", Json(abi.c_str(), a), a);
            o.AddMember("abi_major", p->abi_major, a);
            o.AddMember("abi_minor", p->abi_minor, a);
            o.AddMember("path", Json(p->path.c_str(), a), a);
            Json components(rapidjson::kArrayType);
            for (const ComponentInfo* c : p->components) {
                Json co(rapidjson::kObjectType);
                co.AddMember("kind", Json(kind_name(c->kind), a), a);
                co.AddMember("type", Json(c->type_name.c_str(), a), a);
                co.AddMember("capabilities", capabilities_json(c->capabilities, a), a);
                JsonDocument schema;
                schema.Parse(c->schema_text.c_str());
                co.AddMember("schema", Json(schema, a), a);
                components.PushBack(co, a);
            }
            o.AddMember("components", components, a);
            doc.PushBack(o, a);
        }
        send_json(res, doc);
    }

    void refused(HTTPServerResponse& res) {
        JsonDocument doc(rapidjson::kArrayType);
        auto& a = doc.GetAllocator();
        for (const PluginRefusal& r : node_.plugins().refusals()) {
            Json o(rapidjson::kObjectType);
            o.AddMember("path", Json(r.path.c_str(), a), a);
            o.AddMember("reason", Json(r.reason.c_str(), a), a);
            doc.PushBack(o, a);
        }
        send_json(res, doc);
    }

    void pump(Request& req, HTTPServerResponse& res) {
        auto status = node_.pumps().status(req.params[0]);
        if (!status) throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such pipe", "pipe '" + req.params[0] + "' is not configured");
        JsonDocument doc;
        Json o = pump_json(*status, node_.store(), doc.GetAllocator());
        send_json(res, o);
    }

    void pump_operation(Request& req, HTTPServerResponse& res) {
        const std::string& id = req.params[0];
        auto config = node_.config();
        pipe_or_404(config, id);
        // Sesam's client posts a form (operation=start); JSON bodies are accepted too.
        std::map<std::string, std::string> fields = request_fields(req);
        const std::string op = fields.count("operation") ? fields["operation"] : "";
        PumpManager& pumps = node_.pumps();
        if (op == "start" || op == "start-rescan") {
            if (!pumps.trigger(id, op == "start-rescan"))
                throw HttpError(HTTPResponse::HTTP_CONFLICT, "pump is already running", "pipe '" + id + "' is running");
        } else if (op == "stop") {
            pumps.request_stop(id);
        } else if (op == "disable" || op == "enable") {
            pumps.set_disabled(id, op == "disable");
        } else if (op == "update-last-seen" || op == "reset-rescan") {
            JsonDocument state(rapidjson::kObjectType);
            std::string last_seen = op == "update-last-seen" && fields.count("last-seen") ? fields["last-seen"] : "";
            state.AddMember("last_seen", Json(last_seen.c_str(), state.GetAllocator()), state.GetAllocator());
            node_.store().state_put(PipeRunner::state_key(id), state);
        } else {
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "the pump doesn't support the operation '" + op + "'",
                            "supported: start, stop, enable, disable, update-last-seen, start-rescan, reset-rescan");
        }
        pump(req, res);
    }

    Node& node_;
    Router router_;
    HttpMetrics http_metrics_;
};

class ApiHandler : public Poco::Net::HTTPRequestHandler {
public:
    explicit ApiHandler(Api& api) : api_(api) {}
    void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override { api_.handle(request, response); }

private:
    Api& api_;
};

class ApiFactory : public Poco::Net::HTTPRequestHandlerFactory {
public:
    explicit ApiFactory(Node& node) : api_(node) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override { return new ApiHandler(api_); }

private:
    Api api_;
};

}  // namespace

Poco::Net::HTTPRequestHandlerFactory::Ptr make_api_factory(Node& node) { return new ApiFactory(node); }

}  // namespace sluice::kernel

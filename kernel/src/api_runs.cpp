// Running pipes beyond a single pump: run trees, Sesam's run-all-pipes test runner, a pipe's
// entities computed on demand, publishers (pull) and receivers (push) (reference §5.3, §5.6,
// §5.7, §6.5).
#include <sluice/kernel/node.hpp>
#include <sluice/kernel/transform_tool.hpp>

#include "api_internal.hpp"

#include <Poco/DateTime.h>
#include <Poco/Logger.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Timestamp.h>

namespace sluice::kernel::api {

namespace {

const PipeConfig& pipe_or_404(const NodeConfig& config, const std::string& id) {
    const PipeConfig* pipe = config.pipe(id);
    if (!pipe) throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such pipe", "pipe '" + id + "' is not configured");
    return *pipe;
}

// Sesam's client sends Python booleans ("True"/"False").
bool field_flag(const std::map<std::string, std::string>& fields, const std::string& name, bool fallback) {
    auto it = fields.find(name);
    if (it == fields.end() || it->second.empty()) return fallback;
    const std::string& v = it->second;
    if (v == "true" || v == "True" || v == "1") return true;
    if (v == "false" || v == "False" || v == "0") return false;
    throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid parameter '" + name + "'", "expected true or false, got '" + v + "'");
}

double field_number(const std::map<std::string, std::string>& fields, const std::string& name, double fallback) {
    auto it = fields.find(name);
    if (it == fields.end() || it->second.empty()) return fallback;
    try {
        size_t used = 0;
        double v = std::stod(it->second, &used);
        if (used != it->second.size()) throw std::invalid_argument("trailing");
        return v;
    } catch (const std::exception&) {
        throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid parameter '" + name + "'",
                        "expected a number, got '" + it->second + "'");
    }
}

std::string iso_time(int64_t us) {
    Poco::Timestamp ts(static_cast<Poco::Timestamp::TimeVal>(us));
    return Poco::DateTimeFormatter::format(ts, "%Y-%m-%dT%H:%M:%S.%FZ");
}

Json job_json(const RunJob& job, JsonAllocator& a) {
    Json o(rapidjson::kObjectType);
    o.AddMember("token", Json(job.token().c_str(), a), a);
    o.AddMember("status", Json(job.state().c_str(), a), a);
    o.AddMember("state", Json(job.state() == "success" ? "completed" : job.state().c_str(), a), a);
    const std::string error = job.error();
    if (!error.empty()) {
        o.AddMember("additional_info", Json(error.c_str(), a), a);
        o.AddMember("error", Json(error.c_str(), a), a);
    }
    Json log(rapidjson::kArrayType);
    for (const JobLogLine& line : job.log_since(0)) {
        Json l(rapidjson::kObjectType);
        l.AddMember("timestamp", Json(iso_time(line.timestamp_us).c_str(), a), a);
        l.AddMember("loglevel", Json(line.level.c_str(), a), a);
        l.AddMember("logdata", Json(line.text.c_str(), a), a);
        log.PushBack(l, a);
    }
    o.AddMember("log", log, a);
    return o;
}

// Streams the batches of an evaluation as one JSON array; `limit` caps the entity count.
void stream_evaluation(Node& node, const PipeConfig& pipe, const NodeConfig& config, Stage stage,
                       const std::string& since, std::optional<int64_t> limit, HTTPServerResponse& res) {
    PipeRunner runner(node.store(), node.secret_resolver());
    std::ostream* out = nullptr;
    bool first = true;
    int64_t remaining = limit.value_or(-1);
    auto open = [&] {
        if (out) return;
        res.setStatus(HTTPResponse::HTTP_OK);
        res.setContentType("application/json");
        res.setChunkedTransferEncoding(true);
        out = &res.send();
        *out << '[';
    };
    try {
        runner.evaluate(pipe, config, stage, since, [&](std::string_view batch) {
            JsonDocument doc = parse_json(batch, "batch");
            open();
            for (const Json& e : doc.GetArray()) {
                if (remaining == 0) return false;
                if (!first) *out << ',';
                *out << to_json(e);
                first = false;
                if (remaining > 0) --remaining;
            }
            return remaining != 0 && static_cast<bool>(*out);
        });
    } catch (const std::exception& e) {
        if (!out)
            throw HttpError(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "pipe failed", e.what());
        // Headers are gone: end the array so the client sees what was produced, and log why.
        Poco::Logger::get("sluice.api").error("pipe " + pipe.id + " failed while streaming: " + e.what());
    }
    open();
    *out << ']';
}

}  // namespace

void register_run_routes(Router& r, Node& node) {
    // ---- Sesam's test runner -------------------------------------------------------------
    r.add("POST", "/api/pipes/run-all-pipes", [&node](Request& req, HTTPServerResponse& res) {
        std::map<std::string, std::string> fields = request_fields(req);
        RunAllOptions options;
        options.extra_zero_runs = static_cast<int>(field_number(fields, "extra_zero_runs", options.extra_zero_runs));
        options.max_run_time = field_number(fields, "max_run_time", options.max_run_time);
        options.max_runs = static_cast<int>(field_number(fields, "max_runs", options.max_runs));
        options.reset_pipes_and_delete_sink_datasets = field_flag(
            fields, "reset_pipes_and_delete_sink_datasets", options.reset_pipes_and_delete_sink_datasets);
        options.delete_input_datasets = field_flag(fields, "delete_input_datasets", options.delete_input_datasets);
        const std::string mode = fields.count("request_mode") ? fields["request_mode"] : "sync";
        std::shared_ptr<RunJob> job;
        try {
            job = node.orchestrator().start_run_all(options);
        } catch (const std::logic_error& e) {
            throw HttpError(HTTPResponse::HTTP_CONFLICT, e.what());
        }
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        if (mode == "async") {
            doc.AddMember("token", Json(job->token().c_str(), a), a);
            send_json(res, doc);
            return;
        }
        job->wait();
        Json o = job_json(*job, a);
        send_json(res, o);
    });
    r.add("GET", "/api/pipes/get-pipe-runner-status", [&node](Request& req, HTTPServerResponse& res) {
        auto token = req.param("token");
        std::shared_ptr<RunJob> job = token ? node.orchestrator().job(*token) : node.orchestrator().latest_run_all();
        JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        if (!job) {
            doc.AddMember("status", "not-running", a);
            send_json(res, doc);
            return;
        }
        Json o = job_json(*job, a);
        send_json(res, o);
    });
    r.add("GET", "/api/pipes/get-run-all-pipes-log", [&node](Request& req, HTTPServerResponse& res) {
        auto token = req.param("token");
        std::shared_ptr<RunJob> job = token ? node.orchestrator().job(*token) : node.orchestrator().latest_run_all();
        JsonDocument doc(rapidjson::kArrayType);
        auto& a = doc.GetAllocator();
        if (job) {
            // `since`: a line count, or (as Sesam's client sends it) the last timestamp seen.
            const std::string since_text = req.param("since").value_or("");
            size_t skip = 0;
            std::string after_timestamp;
            if (!since_text.empty() && since_text.find_first_not_of("0123456789") == std::string::npos)
                skip = static_cast<size_t>(std::stoull(since_text));
            else
                after_timestamp = since_text;
            for (const JobLogLine& line : job->log_since(skip)) {
                // ISO-8601 UTC timestamps of one format compare correctly as text.
                if (!after_timestamp.empty() && iso_time(line.timestamp_us) <= after_timestamp) continue;
                Json l(rapidjson::kObjectType);
                l.AddMember("timestamp", Json(iso_time(line.timestamp_us).c_str(), a), a);
                l.AddMember("loglevel", Json(line.level.c_str(), a), a);
                l.AddMember("logdata", Json(line.text.c_str(), a), a);
                doc.PushBack(l, a);
            }
        }
        send_json(res, doc);
    });
    r.add("POST", "/api/pipes/stop-run-all-pipes", [&node](Request& req, HTTPServerResponse& res) {
        std::map<std::string, std::string> fields = request_fields(req);
        const bool stopped = node.orchestrator().stop_run_all(field_number(fields, "terminate_timeout", 30));
        if (!stopped) throw HttpError(HTTPResponse::HTTP_SERVICE_UNAVAILABLE, "run-all-pipes did not stop in time");
        send_json(res, R"({"status":"not-running"})");
    });

    // ---- run trees ---------------------------------------------------------------------------
    r.add("POST", "/api/pipes/{id}/run-tree", [&node](Request& req, HTTPServerResponse& res) {
        auto config = node.config();
        pipe_or_404(*config, req.params[0]);
        std::map<std::string, std::string> fields = request_fields(req);
        std::shared_ptr<RunJob> job;
        try {
            job = node.orchestrator().start_tree(req.params[0], field_flag(fields, "full", false));
        } catch (const std::logic_error& e) {
            throw HttpError(HTTPResponse::HTTP_CONFLICT, e.what());
        }
        JsonDocument doc;
        Json o = job_json(*job, doc.GetAllocator());
        send_json(res, o, HTTPResponse::HTTP_ACCEPTED);
    });
    r.add("GET", "/api/pipes/{id}/run-tree", [&node](Request& req, HTTPServerResponse& res) {
        pipe_or_404(*node.config(), req.params[0]);
        std::shared_ptr<RunJob> job = node.orchestrator().tree(req.params[0]);
        if (!job) throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no run tree", "no run tree was started for '" + req.params[0] + "'");
        JsonDocument doc;
        Json o = job_json(*job, doc.GetAllocator());
        send_json(res, o);
    });

    // ---- entities on demand ------------------------------------------------------------------
    r.add("GET", "/api/pipes/{id}/entities", [&node](Request& req, HTTPServerResponse& res) {
        auto config = node.config();
        const PipeConfig& pipe = pipe_or_404(*config, req.params[0]);
        std::optional<Stage> stage = parse_stage(req.param("stage").value_or("sink"));
        if (!stage)
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid stage",
                            "stage must be source, before-transforms, after-transforms or sink");
        stream_evaluation(node, pipe, *config, *stage, req.param("since").value_or(""), req.integer("limit"), res);
    });
    // Also `/entities/<filename>` (reference §3.6): the sink's `filename`, for clients that want one.
    auto publish_entities = [&node](Request& req, HTTPServerResponse& res) {
        auto config = node.config();
        const PipeConfig& pipe = pipe_or_404(*config, req.params[0]);
        if (pipe.sink.type != "http_endpoint")
            throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "not a publisher",
                            "pipe '" + pipe.id + "' has no http_endpoint sink");
        // A pipe reading one dataset answers with that dataset's headers (reference §5.6), so a
        // client can tell a recreated or unpopulated upstream; any transform may filter.
        if (pipe.source.type == "dataset" && pipe.input_datasets.size() == 1) {
            JsonDocument cmd(rapidjson::kObjectType);
            cmd.AddMember("op", "info", cmd.GetAllocator());
            cmd.AddMember("dataset", Json(pipe.input_datasets[0].c_str(), cmd.GetAllocator()), cmd.GetAllocator());
            JsonDocument info = node.store().command(cmd);
            if (info.IsObject()) set_dataset_headers(res, info, !pipe.transforms.empty());
        }
        stream_evaluation(node, pipe, *config, Stage::Sink, req.param("since").value_or(""), req.integer("limit"), res);
    };
    r.add("GET", "/api/publishers/{id}/entities", publish_entities);
    r.add("GET", "/api/publishers/{id}/entities/{filename}", publish_entities);

    // `/api/publishers/<pipe>/csv/<file>.csv` (reference §3.6, §5.6): the same document under a
    // file name of the client's choosing (spreadsheet programs use it as the sheet's name).
    auto publish_document = [&node](Request& req, HTTPServerResponse& res) {
        auto config = node.config();
        const PipeConfig& pipe = pipe_or_404(*config, req.params[0]);
        const std::string& format = req.params[1];
        const std::string& type = pipe.sink.type;
        const bool matches = type == format || type == format + "_endpoint";
        if (!pipe.sink.component->has(SLUICE_CAP_PUBLISHER) || !matches)
            throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "not a " + format + " publisher",
                            "pipe '" + pipe.id + "' has a '" + type + "' sink");
        const std::string content_type = format == "csv"   ? "text/csv; charset=utf-8"
                                         : format == "xml" ? "application/xml"
                                         : format == "json" ? "application/json"
                                                            : "application/octet-stream";
        PipeRunner runner(node.store(), node.secret_resolver());
        std::ostream* out = nullptr;
        auto open = [&] {
            if (out) return;
            res.setStatus(HTTPResponse::HTTP_OK);
            res.setContentType(content_type);
            res.setChunkedTransferEncoding(true);
            out = &res.send();
        };
        try {
            runner.publish(pipe, *config, req.param("since").value_or(""), [&](std::string_view bytes) {
                open();
                out->write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
                return static_cast<bool>(*out);
            });
        } catch (const std::exception& e) {
            if (!out) throw HttpError(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "publisher failed", e.what());
            Poco::Logger::get("sluice.api").error("publisher " + pipe.id + " failed while streaming: " + e.what());
        }
        open();
    };
    r.add("GET", "/api/publishers/{id}/{format}", publish_document);
    r.add("GET", "/api/publishers/{id}/{format}/{file}", publish_document);

    // ---- receivers ---------------------------------------------------------------------------
    r.add("POST", "/api/receivers/{id}/entities", [&node](Request& req, HTTPServerResponse& res) {
        auto config = node.config();
        const PipeConfig& pipe = pipe_or_404(*config, req.params[0]);
        if (pipe.source.type != "http_endpoint")
            throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "not a receiver",
                            "pipe '" + pipe.id + "' has no http_endpoint source");
        const JsonDocument body = req.entities_body();
        const std::string text = to_json(body);
        PushedInput pushed;
        pushed.batch_json = text;
        pushed.count = body.Size();
        pushed.full = req.flag("is_full", false);
        pushed.first = req.flag("is_first", true);
        pushed.last = req.flag("is_last", true);
        if (pushed.full) {
            // One run id per full-sync sequence, so its last request deletes what it never sent.
            const std::string sequence = req.param("sequence_id").value_or("");
            if (sequence.empty() && !(pushed.first && pushed.last))
                throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "missing sequence_id",
                                "a multi-request full sync needs sequence_id");
            pushed.run_id = "receiver:" + pipe.id + ":" + (sequence.empty() ? new_run_id() : sequence);
        }
        std::optional<RunResult> result = node.pumps().run_pushed(pipe.id, pushed);
        if (!result) throw HttpError(HTTPResponse::HTTP_SERVICE_UNAVAILABLE, "the pipe is busy, retry");
        if (!result->ok) throw HttpError(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "pipe failed", result->error);
        send_json(res, "{}");
    });

    // ---- DTL preview: rules + entities → output entities, or the located error ---------------
    r.add("POST", "/api/dtl/preview", [&node](Request& req, HTTPServerResponse& res) {
        JsonDocument body = req.json_body();
        if (!body.IsObject())
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "expected {\"rules\": {...}, \"entities\": [...]}");
        JsonDocument transform(rapidjson::kObjectType);
        auto& ta = transform.GetAllocator();
        if (const Json* t = find_member(body, "transform"); t && t->IsObject()) {
            transform.CopyFrom(*t, ta);
        } else {
            transform.AddMember("type", "dtl", ta);
            for (const char* key : {"rules", "expression"})
                if (const Json* v = find_member(body, key)) transform.AddMember(Json(key, ta), Json(*v, ta), ta);
        }
        const std::string type = string_or(transform, "type", "dtl");
        const ComponentInfo* component = node.plugins().find(SLUICE_KIND_TRANSFORM, type);
        if (!component)
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "unknown transform type '" + type + "'");
        if (component->has(SLUICE_CAP_SIDE_EFFECTS))
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "transform '" + type + "' has side effects; no preview");
        const Json* entities = find_member(body, "entities");
        if (!entities || !entities->IsArray())
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "'entities' must be a JSON array");
        try {
            std::string output = run_transform_once(*component, to_json(transform), to_json(*entities), &node.store(),
                                                     node.secret_resolver());
            send_json(res, "{\"entities\":" + output + "}");
        } catch (const TransformConfigError& e) {
            JsonDocument doc(rapidjson::kObjectType);
            auto& a = doc.GetAllocator();
            doc.AddMember("error", "invalid DTL", a);
            doc.AddMember("detail", Json(e.what(), a), a);
            doc.AddMember("pointer", Json(e.pointer().c_str(), a), a);
            doc.AddMember("message", Json(e.message().c_str(), a), a);
            send_json(res, doc, HTTPResponse::HTTP_BAD_REQUEST);
        } catch (const std::exception& e) {
            throw HttpError(HTTPResponse::HTTP_UNPROCESSABLE_ENTITY, "the transform failed", e.what());
        }
    });

    // ---- Sesam's restart ---------------------------------------------------------------------
    r.add("POST", "/api/admin", [&node](Request& req, HTTPServerResponse& res) {
        std::map<std::string, std::string> fields = request_fields(req);
        if (fields["operation"] != "restart")
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "unsupported operation", "supported: restart");
        node.restart();
        send_json(res, R"({"message":"OK"})");
    });
}

}  // namespace sluice::kernel::api

// The `json` sink (reference §3.4 "JSON Push protocol", §3.6): POSTs the pipe's entities as JSON
// arrays of `batch_size` (100) to a URL on a `system:url`, with the JSON push protocol's sequence
// parameters (sequence_id, is_full, request_id, previous_request_id, is_first, is_last; a full run
// ends with an empty is_last=true request so the receiver deletes what it did not see). And the
// `rest` sink: one request per entity shaped {"_id", "operation", "properties", "payload"}, the
// operation (url template, method, headers) taken from the system's `operations`.
//
// Failures: connection errors, timeouts, 408, 429 and 5xx are retried with back-off as the system's
// retry_strategy says, then reported as SLUICE_RETRY (sluice::RetryError) so the kernel retries the
// batch and falls back to single entities. Any other status (4xx) is not retryable: SLUICE_ERROR
// naming the status and URL (the kernel routes such entities to the dead-letter dataset).
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <sluice_http/http.hpp>
#include <sluice_http/json_stream.hpp>

#include <Poco/UUIDGenerator.h>

#include <map>

namespace {

using sluice::Error;
using sluice::Json;
using sluice::JsonDocument;
using namespace sluice::http;

std::string new_uuid() { return Poco::UUIDGenerator::defaultGenerator().createRandom().toString(); }

void configure_client(Client& client, sluice::Host& host) {
    client.cancelled = [&host] { return host.cancelled(); };
    client.on_retry = [&host](int attempt, const Failure& f, double delay) {
        host.warn(f.message + "; retrying in " + std::to_string(delay) + " s (attempt " + std::to_string(attempt) + ")");
    };
}

// Sends `request`; throws RetryError for transient failures, Error for the others.
void send_or_throw(Client& client, const Request& request, const std::string& who) {
    std::optional<Failure> failure;
    try {
        failure = client.send(request, nullptr);
    } catch (const TransportError& e) {
        throw sluice::RetryError(who + ": " + e.what());
    }
    if (!failure) return;
    if (failure->transport || failure->retryable) throw sluice::RetryError(who + ": " + failure->message);
    throw Error(who + ": " + failure->message);
}

class JsonSink : public sluice::Sink {
public:
    JsonSink(const sluice::CreateArgs& args, sluice::Host&) {
        const Json& cfg = args.config;
        try {
            system_ = UrlSystem::parse(args.system.IsObject() ? &args.system : nullptr, &cfg);
        } catch (const std::exception& e) {
            throw Error(std::string("json sink: ") + e.what(), SLUICE_FATAL);
        }
        url_ = sluice::string_or(cfg, "url", "");
        if (url_.find("://") == std::string::npos && system_.url_pattern.empty())
            throw Error("json sink: 'url' must be absolute unless 'system' is a system:url with url_pattern", SLUICE_FATAL);
        const Json* bs = sluice::find_member(cfg, "batch_size");
        batch_size_ = bs && bs->IsInt64() ? bs->GetInt64() : 100;
        if (batch_size_ < 1) throw Error("json sink: batch_size must be at least 1", SLUICE_FATAL);
        protocol_ = sluice::bool_or(cfg, "json_push_protocol", true);
        try {
            resolved_url_ = system_.resolve(url_);
        } catch (const std::exception& e) {
            throw Error(std::string("json sink: ") + e.what(), SLUICE_FATAL);
        }
    }

    void begin_run(sluice::Host&, bool full) override {
        full_ = full;
        sequence_id_ = new_uuid();
        first_ = true;
        previous_request_.clear();
    }

    void write(sluice::Host& host, const sluice_batch& batch) override {
        if (batch.format != SLUICE_FORMAT_JSON_ARRAY) throw Error("json sink: expected a JSON batch");
        if (sequence_id_.empty()) begin_run(host, false);
        Client client(system_);
        configure_client(client, host);
        // Split the kernel's batch into requests of batch_size entities, keeping each entity's
        // text exactly as it came (numbers included).
        std::string body = "[";
        int64_t in_body = 0;
        EntityStreamOptions options;
        options.updated_property.clear();
        options.max_entity_bytes = 0;
        EntityStreamParser parser(options, [&](const StreamedEntity& e) {
            if (in_body) body.push_back(',');
            body.append(e.json);
            if (++in_body >= batch_size_) {
                body.push_back(']');
                post(client, host, body, false);
                body = "[";
                in_body = 0;
            }
            return true;
        });
        parser.parse(std::string_view(batch.data, batch.size), "json sink batch");
        if (in_body) {
            body.push_back(']');
            post(client, host, body, false);
        }
    }

    void end_run(sluice::Host& host, bool, bool completed) override {
        if (protocol_ && full_ && completed && !sequence_id_.empty()) {
            Client client(system_);
            configure_client(client, host);
            post(client, host, "[]", true);  // ends the full sync: the receiver deletes what it did not see
        }
        sequence_id_.clear();
    }

private:
    void post(Client& client, sluice::Host& host, const std::string& body, bool last) {
        Request request;
        request.method = "POST";
        request.url = resolved_url_;
        request.body = body;
        request.content_type = "application/json; charset=utf-8";
        const std::string request_id = new_uuid();
        if (protocol_) {
            request.url = add_query_parameter(request.url, "sequence_id", sequence_id_);
            request.url = add_query_parameter(request.url, "is_full", full_ ? "true" : "false");
            request.url = add_query_parameter(request.url, "request_id", request_id);
            if (!previous_request_.empty())
                request.url = add_query_parameter(request.url, "previous_request_id", previous_request_);
            if (full_) {
                request.url = add_query_parameter(request.url, "is_first", first_ ? "true" : "false");
                request.url = add_query_parameter(request.url, "is_last", last ? "true" : "false");
            }
        }
        send_or_throw(client, request, "json sink");
        previous_request_ = request_id;
        first_ = false;
        host.metric("http_requests", 1);
    }

    UrlSystem system_;
    std::string url_;
    std::string resolved_url_;
    int64_t batch_size_ = 100;
    bool protocol_ = true;
    bool full_ = false;
    bool first_ = true;
    std::string sequence_id_;
    std::string previous_request_;
};

// One request per entity {"_id", "operation", "properties", "payload"} (reference §3.6 "rest").
class RestSink : public sluice::Sink {
public:
    RestSink(const sluice::CreateArgs& args, sluice::Host&) {
        try {
            system_ = UrlSystem::parse(args.system.IsObject() ? &args.system : nullptr, &args.config);
        } catch (const std::exception& e) {
            throw Error(std::string("rest sink: ") + e.what(), SLUICE_FATAL);
        }
        operations_.SetObject();
        auto& a = operations_.GetAllocator();
        for (const Json* source : {sluice::find_member(args.system, "operations"), sluice::find_member(args.config, "operations")}) {
            if (!source || !source->IsObject()) continue;
            for (auto it = source->MemberBegin(); it != source->MemberEnd(); ++it) {
                if (!it->value.IsObject() || !sluice::find_member(it->value, "url"))
                    throw Error("rest sink: operation '" + std::string(sluice::as_view(it->name)) + "' needs a 'url'",
                                SLUICE_FATAL);
                operations_.RemoveMember(it->name);
                operations_.AddMember(Json(it->name, a), Json(it->value, a), a);
            }
        }
        if (operations_.MemberCount() == 0)
            throw Error("rest sink: no operations (set 'operations' on the system or the sink)", SLUICE_FATAL);
    }

    void write(sluice::Host& host, const sluice_batch& raw) override {
        sluice::Batch batch(raw);
        Client client(system_);
        configure_client(client, host);
        for (const Json& entity : batch.document().GetArray()) {
            const std::string id = sluice::string_or(entity, "_id", "");
            const Json* op_name = sluice::find_member(entity, "operation");
            if (!op_name || !op_name->IsString()) {
                if (sluice::bool_or(entity, "_deleted", false)) continue;  // a deletion without an operation
                throw Error("rest sink: entity '" + id + "' has no 'operation'");
            }
            const Json* op = sluice::find_member(operations_, sluice::as_view(*op_name));
            if (!op) throw Error("rest sink: entity '" + id + "' names the unknown operation '" + op_name->GetString() + "'");
            Request request;
            request.method = sluice::string_or(*op, "method", "POST");
            for (char& c : request.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            request.url = system_.resolve(render_template(sluice::string_or(*op, "url", ""), entity));
            if (const Json* headers = sluice::find_member(*op, "headers"); headers && headers->IsObject()) {
                for (auto it = headers->MemberBegin(); it != headers->MemberEnd(); ++it) {
                    request.headers.emplace_back(std::string(sluice::as_view(it->name)),
                                                 it->value.IsString() ? std::string(sluice::as_view(it->value))
                                                                      : sluice::to_json(it->value));
                }
            }
            const std::string payload_type = sluice::string_or(*op, "payload-type", sluice::string_or(*op, "payload_type", "json"));
            if (const Json* payload = sluice::find_member(entity, "payload"); payload && !payload->IsNull()) {
                if (payload_type == "json") {
                    request.body = sluice::to_json(*payload);
                } else {
                    request.body = payload->IsString() ? std::string(sluice::as_view(*payload)) : sluice::to_json(*payload);
                    request.content_type = payload_type == "form" ? "application/x-www-form-urlencoded" : "text/plain; charset=utf-8";
                }
            }
            send_or_throw(client, request, "rest sink (entity '" + id + "')");
            host.metric("http_requests", 1);
        }
    }

private:
    UrlSystem system_;
    JsonDocument operations_;
};

}  // namespace

SLUICE_PLUGIN("sluice-sink-json", "1.0.0", "Pushes entities to an HTTP API (json push protocol and rest sinks)",
              "Apache-2.0", sluice::sink<JsonSink>("json", SLUICE_SCHEMA_JSON, SLUICE_CAP_SIDE_EFFECTS),
              sluice::sink<RestSink>("rest", SLUICE_SCHEMA_JSON, SLUICE_CAP_SIDE_EFFECTS))

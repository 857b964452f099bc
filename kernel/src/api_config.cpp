// Configuration endpoints: the whole config (JSON or Sesam's zip, raw or multipart), pipes and
// systems one at a time, environment variables and secrets (reference §5.2, §5.5, §6.5).
#include <sluice/kernel/node.hpp>

#include "api_internal.hpp"

#include <Poco/DateTime.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/MessageHeader.h>
#include <Poco/Net/PartHandler.h>
#include <Poco/StreamCopier.h>
#include <Poco/Zip/Compress.h>
#include <Poco/Zip/ZipArchive.h>
#include <Poco/Zip/ZipStream.h>

#include <rapidjson/prettywriter.h>

#include <set>
#include <sstream>

namespace sluice::kernel::api {

namespace {

// ---- reading an uploaded configuration ----------------------------------------------------

bool looks_like_zip(const std::string& body) { return body.size() >= 4 && body.compare(0, 4, "PK\x03\x04") == 0; }

JsonDocument parse_config_json(const std::string& text, const std::string& where) {
    check_json_depth(text);
    check_json_numbers(text);
    JsonDocument doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
    if (doc.HasParseError())
        throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "malformed JSON",
                        where + ": parse error at byte " + std::to_string(doc.GetErrorOffset()));
    return doc;
}

// Sesam's config zip: pipes/<id>.conf.json, systems/<id>.conf.json, node-metadata.conf.json
// (each one entity, or an array of them). Anything else in the archive is ignored.
JsonDocument config_from_zip(const std::string& body) {
    JsonDocument entities(rapidjson::kArrayType);
    auto& a = entities.GetAllocator();
    std::istringstream in(body);
    Poco::Zip::ZipArchive archive(in);
    for (auto it = archive.headerBegin(); it != archive.headerEnd(); ++it) {
        const std::string name = it->first;
        if (it->second.isDirectory()) continue;
        const bool wanted = name == "node-metadata.conf.json" ||
                            ((name.rfind("pipes/", 0) == 0 || name.rfind("systems/", 0) == 0) &&
                             name.size() > 10 && name.compare(name.size() - 10, 10, ".conf.json") == 0);
        if (!wanted) continue;
        std::istringstream zin(body);
        Poco::Zip::ZipInputStream entry(zin, it->second, true);
        std::string text;
        Poco::StreamCopier::copyToString(entry, text);
        JsonDocument doc = parse_config_json(text, name);
        if (doc.IsArray()) {
            for (Json& e : doc.GetArray()) entities.PushBack(Json(e, a), a);
        } else {
            entities.PushBack(Json(doc, a), a);
        }
    }
    return entities;
}

// Captures the `file` part of a multipart upload.
class FilePartHandler : public Poco::Net::PartHandler {
public:
    void handlePart(const Poco::Net::MessageHeader& header, std::istream& stream) override {
        std::string disposition, name;
        Poco::Net::NameValueCollection params;
        if (header.has("Content-Disposition")) {
            Poco::Net::MessageHeader::splitParameters(header.get("Content-Disposition"), disposition, params);
            name = params.get("name", "");
        }
        std::string content;
        Poco::StreamCopier::copyToString(stream, content);
        if (name == "file" || !found) {
            data = std::move(content);
            found = true;
        }
    }
    std::string data;
    bool found = false;
};

// The configuration in a request body: JSON, a zip, or either inside multipart part `file`.
JsonDocument config_from_request(Request& req) {
    const std::string content_type = req.http.getContentType();
    std::string body;
    if (content_type.find("multipart/form-data") != std::string::npos) {
        FilePartHandler handler;
        Poco::Net::HTMLForm form(req.http, req.http.stream(), handler);
        if (!handler.found)
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "no configuration in the upload",
                            "a multipart upload needs a part named 'file' holding a JSON array or a zip");
        body = std::move(handler.data);
    } else {
        body = req.body();
    }
    if (looks_like_zip(body) || content_type.find("application/zip") != std::string::npos) {
        try {
            return config_from_zip(body);
        } catch (const HttpError&) {
            throw;
        } catch (const std::exception& e) {
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "unreadable zip", e.what());
        }
    }
    return parse_config_json(body, "request body");
}

// ---- writing the configuration as Sesam's zip ---------------------------------------------

std::string pretty(const Json& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
    writer.SetIndent(' ', 2);
    value.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

std::string config_zip(const Json& entities) {
    std::ostringstream out;
    Poco::Zip::Compress zip(out, true);
    for (const Json& e : entities.GetArray()) {
        const std::string id = string_or(e, "_id", "");
        const std::string type = string_or(e, "type", "");
        std::string path;
        if (type == "pipe") path = "pipes/" + id + ".conf.json";
        else if (type == "metadata") path = "node-metadata.conf.json";
        else if (type.rfind("system:", 0) == 0) path = "systems/" + id + ".conf.json";
        else continue;
        std::istringstream content(pretty(e));
        zip.addFile(content, Poco::DateTime(), Poco::Path(path, Poco::Path::PATH_UNIX));
    }
    zip.close();
    return out.str();
}

// ---- one entity kind (pipes or systems) ----------------------------------------------------

bool is_kind(const Json& e, const std::string& kind) {
    const std::string type = string_or(e, "type", "");
    return kind == "pipe" ? type == "pipe" : type.rfind("system:", 0) == 0;
}

rapidjson::SizeType find_entity(const Json& entities, const std::string& id) {
    for (rapidjson::SizeType i = 0; i < entities.Size(); ++i)
        if (string_or(entities[i], "_id", "") == id) return i;
    return entities.Size();
}

// The answer after a successful change, Sesam-style.
void send_ok(HTTPServerResponse& res, HTTPResponse::HTTPStatus status = HTTPResponse::HTTP_OK) {
    send_json(res, R"({"validation_errors":[]})", status);
}

JsonDocument body_as_entity_list(Request& req, const std::string& kind) {
    JsonDocument body = req.json_body();
    if (body.IsObject()) {
        JsonDocument list(rapidjson::kArrayType);
        list.PushBack(Json(body, list.GetAllocator()), list.GetAllocator());
        body = std::move(list);
    }
    if (!body.IsArray())
        throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "expected a JSON array of " + kind + " configurations");
    for (const Json& e : body.GetArray()) {
        if (!e.IsObject() || !find_member(e, "_id") || !find_member(e, "_id")->IsString())
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "each " + kind + " needs a string '_id'");
    }
    return body;
}

void register_kind(Router& r, Node& node, const std::string& kind, const std::string& collection) {
    // POST /api/pipes: add new ones; 409 when one exists already.
    r.add("POST", "/api/" + collection, [&node, kind](Request& req, HTTPServerResponse& res) {
        JsonDocument body = body_as_entity_list(req, kind);
        for (Json& e : body.GetArray()) {
            if (!find_member(e, "type")) {
                e.AddMember("type", Json(kind == "pipe" ? "pipe" : "system:url", body.GetAllocator()),
                            body.GetAllocator());
            }
            if (!is_kind(e, kind))
                throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "wrong type",
                                "'" + string_or(e, "_id", "") + "' is not a " + kind);
        }
        node.modify_config([&](JsonDocument& entities) {
            for (const Json& e : body.GetArray()) {
                const std::string id = string_or(e, "_id", "");
                if (find_entity(entities, id) != entities.Size())
                    throw HttpError(HTTPResponse::HTTP_CONFLICT, kind + " already exists",
                                    "'" + id + "' already exists; PUT /api/" + kind + "s/" + id + "/config replaces it");
                entities.PushBack(Json(e, entities.GetAllocator()), entities.GetAllocator());
            }
        });
        send_ok(res, HTTPResponse::HTTP_CREATED);
    });
    r.add("DELETE", "/api/" + collection + "/{id}", [&node, kind](Request& req, HTTPServerResponse& res) {
        const std::string id = req.params[0];
        node.modify_config([&](JsonDocument& entities) {
            rapidjson::SizeType at = find_entity(entities, id);
            if (at == entities.Size() || !is_kind(entities[at], kind))
                throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such " + kind, "'" + id + "' is not configured");
            entities.Erase(entities.Begin() + at);
        });
        send_json(res, R"({"deleted":true})");
    });
    r.add("GET", "/api/" + collection + "/{id}/config", [&node, kind](Request& req, HTTPServerResponse& res) {
        const JsonDocument entities = node.config_entities();  // as stored, also where it does not build
        rapidjson::SizeType at = find_entity(entities, req.params[0]);
        if (at == entities.Size() || !is_kind(entities[at], kind))
            throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such " + kind, "'" + req.params[0] + "' is not configured");
        send_json(res, entities[at]);
    });
    r.add("PUT", "/api/" + collection + "/{id}/config", [&node, kind](Request& req, HTTPServerResponse& res) {
        const std::string id = req.params[0];
        JsonDocument body = req.json_body();
        if (!body.IsObject()) throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "expected a JSON object");
        if (const Json* body_id = find_member(body, "_id"); body_id && (!body_id->IsString() || as_view(*body_id) != id))
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "_id mismatch",
                            "the body's _id must be '" + id + "' (or absent)");
        if (!find_member(body, "_id")) body.AddMember("_id", Json(id.c_str(), body.GetAllocator()), body.GetAllocator());
        if (!is_kind(body, kind))
            throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "wrong type", "'" + id + "' is not a " + kind);
        node.modify_config([&](JsonDocument& entities) {
            rapidjson::SizeType at = find_entity(entities, id);
            if (at == entities.Size()) {
                entities.PushBack(Json(body, entities.GetAllocator()), entities.GetAllocator());
            } else {
                entities[at].CopyFrom(body, entities.GetAllocator());
            }
        });
        send_ok(res);
    });
}

}  // namespace

void register_config_routes(Router& r, Node& node) {
    r.add("GET", "/api/config", [&node](Request& req, HTTPServerResponse& res) {
        // As stored, also on a node where it does not build (and that runs none): a client that
        // reads, edits and uploads through that node must not upload an empty configuration.
        const JsonDocument entities = node.config_entities();
        if (req.http.get("Accept", "").find("application/zip") != std::string::npos) {
            const std::string zip = config_zip(entities);
            res.setStatus(HTTPResponse::HTTP_OK);
            res.setContentType("application/zip");
            res.setContentLength(static_cast<std::streamsize>(zip.size()));
            res.send() << zip;
            return;
        }
        send_json(res, entities);
    });
    r.add("PUT", "/api/config", [&node](Request& req, HTTPServerResponse& res) {
        // `force=true` is accepted for Sesam's client, but a configuration with errors is never
        // applied in part: it is refused whole (docs/decisions.md).
        JsonDocument entities = config_from_request(req);
        node.apply_config(entities);
        send_ok(res);
    });

    register_kind(r, node, "pipe", "pipes");
    register_kind(r, node, "system", "systems");
    r.add("GET", "/api/systems", [&node](Request&, HTTPServerResponse& res) {
        auto config = node.config();
        JsonDocument list(rapidjson::kArrayType);
        auto& a = list.GetAllocator();
        for (const auto& [id, system] : config->systems()) {
            Json o(rapidjson::kObjectType);
            o.AddMember("_id", Json(id.c_str(), a), a);
            Json c(rapidjson::kObjectType);
            c.AddMember("original", Json(*system.original, a), a);
            c.AddMember("effective", Json(*system.effective, a), a);
            o.AddMember("config", c, a);
            o.AddMember("type", Json(system.type.c_str(), a), a);
            list.PushBack(o, a);
        }
        send_json(res, list);
    });
    r.add("GET", "/api/systems/{id}", [&node](Request& req, HTTPServerResponse& res) {
        auto config = node.config();
        const SystemConfig* system = config->system(req.params[0]);
        if (!system) throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such system", "'" + req.params[0] + "' is not configured");
        JsonDocument o(rapidjson::kObjectType);
        auto& a = o.GetAllocator();
        o.AddMember("_id", Json(system->id.c_str(), a), a);
        Json c(rapidjson::kObjectType);
        c.AddMember("original", Json(*system->original, a), a);
        c.AddMember("effective", Json(*system->effective, a), a);
        o.AddMember("config", c, a);
        o.AddMember("type", Json(system->type.c_str(), a), a);
        send_json(res, o);
    });

    // ---- environment variables: PUT replaces all (as Sesam's client expects), POST/PATCH merge.
    r.add("GET", "/api/env", [&node](Request&, HTTPServerResponse& res) {
        send_json(res, node.environment().variables());
    });
    for (const char* method : {"PUT", "POST", "PATCH"}) {
        const bool replace = std::string(method) == "PUT";
        r.add(method, "/api/env", [&node, replace](Request& req, HTTPServerResponse& res) {
            JsonDocument body = req.json_body();
            if (!body.IsObject())
                throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "expected a JSON object of name: value");
            node.set_environment(body, replace);
            send_json(res, node.environment().variables());
        });
    }
    r.add("DELETE", "/api/env/{name}", [&node](Request& req, HTTPServerResponse& res) {
        if (!node.erase_environment_variable(req.params[0]))
            throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such variable", "'" + req.params[0] + "' is not set");
        send_json(res, node.environment().variables());
    });

    // ---- secrets: write-only; listing shows names.
    auto secret_names = [&node](HTTPServerResponse& res) {
        JsonDocument names(rapidjson::kArrayType);
        for (const std::string& n : node.environment().secret_names())
            names.PushBack(Json(n.c_str(), names.GetAllocator()), names.GetAllocator());
        send_json(res, names);
    };
    r.add("GET", "/api/secrets", [secret_names](Request&, HTTPServerResponse& res) { secret_names(res); });
    for (const char* method : {"PUT", "POST"}) {
        // Both add or overwrite (the reference's reading of the spec); existing ones are kept.
        r.add(method, "/api/secrets", [&node, secret_names](Request& req, HTTPServerResponse& res) {
            JsonDocument body = req.json_body();
            try {
                node.environment().set_secrets(body, false);
            } catch (const std::invalid_argument& e) {
                throw HttpError(HTTPResponse::HTTP_BAD_REQUEST, "invalid secrets", e.what());
            }  // SecretsKeyMismatch: 409
            secret_names(res);
        });
    }
    r.add("DELETE", "/api/secrets/{name}", [&node, secret_names](Request& req, HTTPServerResponse& res) {
        const bool erased = node.environment().erase_secret(req.params[0]);  // SecretsKeyMismatch: 409
        if (!erased) throw HttpError(HTTPResponse::HTTP_NOT_FOUND, "no such secret", "'" + req.params[0] + "' is not set");
        secret_names(res);
    });
}

}  // namespace sluice::kernel::api

#include <sluice/kernel/config.hpp>
#include <sluice/kernel/environment.hpp>
#include <sluice/kernel/host_context.hpp>

#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>

#include <set>

namespace sluice::kernel {

namespace {

std::string join_problems(const std::vector<ConfigProblem>& problems) {
    std::string text = "invalid configuration:";
    for (const ConfigProblem& p : problems) {
        text += "\n  " + (p.entity_id.empty() ? std::string("<config>") : p.entity_id) + " " +
                (p.pointer.empty() ? "/" : p.pointer) + ": " + p.message;
    }
    return text;
}

std::string pointer_text(const rapidjson::Pointer& pointer) {
    rapidjson::StringBuffer buffer;
    pointer.Stringify(buffer);
    return buffer.GetString();
}

const char* type_of(const Json& v) {
    switch (v.GetType()) {
        case rapidjson::kNullType: return "null";
        case rapidjson::kFalseType:
        case rapidjson::kTrueType: return "boolean";
        case rapidjson::kObjectType: return "object";
        case rapidjson::kArrayType: return "array";
        case rapidjson::kStringType: return "string";
        case rapidjson::kNumberType: return v.IsInt64() || v.IsUint64() ? "integer" : "number";
    }
    return "unknown";
}

// A readable sentence for a schema violation (RapidJSON 1.1 reports only keyword + pointers).
std::string describe_violation(const std::string& keyword, const Json* schema_node, const Json* instance) {
    if (keyword == "required" && schema_node && instance && instance->IsObject()) {
        if (const Json* required = find_member(*schema_node, "required"); required && required->IsArray()) {
            for (const Json& name : required->GetArray()) {
                if (name.IsString() && !find_member(*instance, as_view(name)))
                    return "missing required property '" + std::string(as_view(name)) + "'";
            }
        }
    }
    if (keyword == "additionalProperties" && schema_node && instance && instance->IsObject()) {
        const Json* properties = find_member(*schema_node, "properties");
        for (auto it = instance->MemberBegin(); it != instance->MemberEnd(); ++it) {
            if (!properties || !find_member(*properties, as_view(it->name)))
                return "property '" + std::string(as_view(it->name)) + "' is not allowed";
        }
    }
    if (keyword == "type" && schema_node && instance) {
        if (const Json* expected = find_member(*schema_node, "type"))
            return "expected " + (expected->IsString() ? std::string(as_view(*expected)) : to_json(*expected)) +
                   ", got " + type_of(*instance);
    }
    if (keyword == "enum" && schema_node) {
        if (const Json* allowed = find_member(*schema_node, "enum"))
            return "must be one of " + to_json(*allowed);
    }
    if ((keyword == "minimum" || keyword == "maximum" || keyword == "minLength" || keyword == "maxLength" ||
         keyword == "minItems" || keyword == "maxItems") && schema_node) {
        if (const Json* limit = find_member(*schema_node, keyword))
            return "violates " + keyword + " " + to_json(*limit);
    }
    return "violates the schema keyword '" + keyword + "'";
}

class Builder {
public:
    explicit Builder(const PluginRegistry& registry) : registry_(registry) {}

    void problem(const std::string& id, const std::string& pointer, const std::string& message) {
        problems_.push_back({id, pointer, message});
    }
    std::vector<ConfigProblem>& problems() { return problems_; }

    std::string installed_types(uint32_t kind) const {
        std::string list;
        for (const ComponentInfo* c : registry_.components(kind)) list += (list.empty() ? "" : ", ") + c->type_name;
        return list.empty() ? "none" : list;
    }

    // Resolves $ENV(...) in an entity, reporting each unknown variable where it is used.
    void substitute(const std::string& id, JsonDocument& entity, const Json* variables) {
        static const Json no_variables(rapidjson::kObjectType);
        std::vector<UnresolvedReference> unresolved;
        substitute_env(entity, entity.GetAllocator(), variables ? *variables : no_variables, "", unresolved);
        for (const UnresolvedReference& u : unresolved)
            problem(id, u.pointer, "unknown environment variable '" + u.name + "' in $ENV(" + u.name + ")");
    }

    // Resolves and schema-checks one component object found at `pointer` inside entity `id`.
    bool component(const std::string& id, const std::string& pointer, uint32_t kind, const Json& object,
                   ComponentConfig& out) {
        if (!object.IsObject()) {
            problem(id, pointer, std::string("a ") + kind_name(kind) + " must be a JSON object");
            return false;
        }
        const Json* type = find_member(object, "type");
        if (!type || !type->IsString()) {
            problem(id, pointer + "/type", std::string("a ") + kind_name(kind) + " needs a string 'type'");
            return false;
        }
        out.type = std::string(as_view(*type));
        out.component = registry_.find(kind, out.type);
        if (!out.component) {
            problem(id, pointer + "/type",
                    "unknown " + std::string(kind_name(kind)) + " type '" + out.type + "'; installed " +
                        kind_name(kind) + " types: " + installed_types(kind));
            return false;
        }
        rapidjson::SchemaValidator validator(*out.component->schema);
        if (!object.Accept(validator)) {
            std::string keyword = validator.GetInvalidSchemaKeyword();
            rapidjson::Pointer schema_ptr = validator.GetInvalidSchemaPointer();
            rapidjson::Pointer doc_ptr = validator.GetInvalidDocumentPointer();
            JsonDocument schema_doc;
            schema_doc.Parse(out.component->schema_text.c_str());
            const Json* schema_node = schema_ptr.Get(schema_doc);
            const Json* instance = doc_ptr.Get(object);
            problem(id, pointer + pointer_text(doc_ptr),
                    describe_violation(keyword, schema_node, instance) + " (" + kind_name(kind) + " '" + out.type +
                        "' schema at #" + pointer_text(schema_ptr) + ")");
            return false;
        }
        if (const Json* system = find_member(object, "system"); system && system->IsString())
            out.system_id = std::string(as_view(*system));
        out.config_json = to_json(object);
        if (kind == SLUICE_KIND_TRANSFORM) return trial_create(id, pointer, out);
        return true;
    }

    // Transforms are compiled at upload (DTL is parsed here, never per entity): create one
    // instance and destroy it. Sources and sinks are not created here, since that may reach
    // external systems. A plugin message that starts with a JSON pointer ("/rules/default/2: …")
    // is located inside the component.
    bool trial_create(const std::string& id, const std::string& pointer, const ComponentConfig& c) {
        const sluice_transform_vtable* vt = c.component->transform();
        HostContext ctx;
        ctx.log_source = "config:" + id;
        sluice_create_args args{sizeof(sluice_create_args), 0, c.config_json.c_str(), nullptr, id.c_str(), nullptr};
        void* instance = vt->create(&args, &ctx);
        if (instance) {
            vt->destroy(instance);
            return true;
        }
        std::string message = ctx.error().empty() ? "the transform could not be created" : ctx.error();
        std::string where = pointer;
        if (!message.empty() && message[0] == '/') {
            const size_t colon = message.find(": ");
            if (colon != std::string::npos) {
                where += message.substr(0, colon);
                message = message.substr(colon + 2);
            }
        }
        problem(id, where, "transform '" + c.type + "': " + message);
        return false;
    }

private:
    const PluginRegistry& registry_;
    std::vector<ConfigProblem> problems_;
};

bool valid_id(std::string_view id) { return !id.empty() && id.find('/') == std::string_view::npos; }

// Datasets a source reads, from its conventional properties ("dataset", "datasets").
std::vector<std::string> source_datasets(const Json& source) {
    std::vector<std::string> out;
    if (const Json* d = find_member(source, "dataset"); d && d->IsString()) out.emplace_back(as_view(*d));
    if (const Json* list = find_member(source, "datasets"); list && list->IsArray()) {
        for (const Json& d : list->GetArray()) {
            if (!d.IsString()) continue;
            std::string name(as_view(d));
            // merge sources write "<dataset> <alias>"
            out.push_back(name.substr(0, name.find(' ')));
        }
    }
    return out;
}

}  // namespace

ConfigError::ConfigError(std::vector<ConfigProblem> problems)
    : std::runtime_error(join_problems(problems)), problems_(std::move(problems)) {}

double PipeConfig::interval_seconds() const {
    if (pump.schedule_interval) return *pump.schedule_interval;
    return !input_datasets.empty() && !output_dataset.empty() ? 30.0 : 900.0;
}

std::shared_ptr<const NodeConfig> NodeConfig::empty() {
    auto config = std::make_shared<NodeConfig>();
    config->entities_ = std::make_shared<JsonDocument>(rapidjson::kArrayType);
    config->metadata_ = std::make_shared<JsonDocument>();
    return config;
}

std::shared_ptr<const NodeConfig> NodeConfig::build(const Json& entities, const PluginRegistry& registry,
                                                   const Json* variables) {
    Builder b(registry);
    if (!entities.IsArray()) throw ConfigError({{"", "", "the configuration must be a JSON array of entities"}});

    auto config = std::make_shared<NodeConfig>();
    config->entities_ = std::make_shared<JsonDocument>();
    config->entities_->CopyFrom(entities, config->entities_->GetAllocator());
    config->metadata_ = std::make_shared<JsonDocument>();

    std::set<std::string> ids;
    // Pass 1: shapes, ids, systems, metadata — pipes refer to systems declared anywhere.
    for (rapidjson::SizeType i = 0; i < entities.Size(); ++i) {
        const Json& e = entities[i];
        const std::string where = "/" + std::to_string(i);
        if (!e.IsObject()) {
            b.problem("", where, "each configuration entity must be a JSON object");
            continue;
        }
        const Json* id = find_member(e, "_id");
        if (!id || !id->IsString() || !valid_id(as_view(*id))) {
            b.problem("", where + "/_id", "'_id' must be a non-empty string without '/'");
            continue;
        }
        std::string entity_id(as_view(*id));
        if (!ids.insert(entity_id).second) b.problem(entity_id, "/_id", "duplicate _id '" + entity_id + "'");
        const Json* type = find_member(e, "type");
        std::string type_text = type && type->IsString() ? std::string(as_view(*type)) : "";
        if (type_text == "pipe") continue;
        if (type_text == "metadata") {
            if (entity_id != "node") b.problem(entity_id, "/_id", "the metadata entity must have _id 'node'");
            config->metadata_->CopyFrom(e, config->metadata_->GetAllocator());
        } else if (type_text.rfind("system:", 0) == 0 && type_text.size() > 7) {
            SystemConfig system;
            system.id = entity_id;
            system.type = type_text;
            auto doc = std::make_shared<JsonDocument>();
            doc->CopyFrom(e, doc->GetAllocator());
            system.original = doc;
            auto effective = std::make_shared<JsonDocument>();
            effective->CopyFrom(e, effective->GetAllocator());
            b.substitute(entity_id, *effective, variables);
            system.effective = effective;
            config->systems_[entity_id] = std::move(system);
        } else {
            b.problem(entity_id, "/type",
                      "'type' must be \"pipe\", \"metadata\" or \"system:<kind>\", got " +
                          (type ? to_json(*type) : std::string("nothing")));
        }
    }

    // Pass 2: pipes.
    for (rapidjson::SizeType i = 0; i < entities.Size(); ++i) {
        const Json& e = entities[i];
        if (!e.IsObject()) continue;
        const Json* type = find_member(e, "type");
        const Json* id = find_member(e, "_id");
        if (!type || !type->IsString() || as_view(*type) != "pipe" || !id || !id->IsString() ||
            !valid_id(as_view(*id)))
            continue;
        PipeConfig pipe;
        pipe.id = std::string(as_view(*id));
        const size_t problems_before = b.problems().size();

        auto effective = std::make_shared<JsonDocument>();
        effective->CopyFrom(e, effective->GetAllocator());
        auto& alloc = effective->GetAllocator();
        b.substitute(pipe.id, *effective, variables);
        const Json& pe = *effective;  // what the components see: $ENV(...) resolved

        const Json* source = find_member(pe, "source");
        if (!source) {
            b.problem(pipe.id, "/source", "a pipe needs a 'source'");
        } else if (b.component(pipe.id, "/source", SLUICE_KIND_SOURCE, *source, pipe.source)) {
            pipe.input_datasets = source_datasets(*source);
        }

        if (const Json* transform = find_member(pe, "transform")) {
            if (transform->IsArray()) {
                for (rapidjson::SizeType t = 0; t < transform->Size(); ++t) {
                    ComponentConfig c;
                    if (b.component(pipe.id, "/transform/" + std::to_string(t), SLUICE_KIND_TRANSFORM,
                                    (*transform)[t], c))
                        pipe.transforms.push_back(std::move(c));
                }
            } else {
                ComponentConfig c;
                if (b.component(pipe.id, "/transform", SLUICE_KIND_TRANSFORM, *transform, c))
                    pipe.transforms.push_back(std::move(c));
            }
        }

        // Sesam's default sink: a dataset named after the pipe.
        if (!find_member(pe, "sink")) {
            Json sink(rapidjson::kObjectType);
            sink.AddMember("type", "dataset", alloc);
            sink.AddMember("dataset", Json(pipe.id.c_str(), alloc), alloc);
            effective->AddMember("sink", sink, alloc);
        }
        const Json& sink = (*effective)["sink"];
        if (b.component(pipe.id, "/sink", SLUICE_KIND_SINK, sink, pipe.sink) &&
            pipe.sink.component->has(SLUICE_CAP_DATASET_SINK)) {
            std::string dataset = string_or(sink, "dataset", "");
            if (!valid_id(dataset) || dataset.rfind("system:", 0) == 0)
                b.problem(pipe.id, "/sink/dataset",
                          "a dataset sink needs a 'dataset' id without '/' that does not start with 'system:'");
            pipe.output_dataset = dataset;
        }

        // References to systems.
        auto check_system = [&](const ComponentConfig& c, const std::string& pointer) {
            if (!c.system_id.empty() && !config->systems_.count(c.system_id))
                b.problem(pipe.id, pointer + "/system", "unknown system '" + c.system_id + "'");
        };
        check_system(pipe.source, "/source");
        check_system(pipe.sink, "/sink");

        if (const Json* batch = find_member(pe, "batch_size")) {
            if (!batch->IsUint() || batch->GetUint() == 0 || batch->GetUint() > 1000000)
                b.problem(pipe.id, "/batch_size", "batch_size must be an integer from 1 to 1000000");
            else
                pipe.batch_size = batch->GetUint();
        } else {
            effective->AddMember("batch_size", pipe.batch_size, alloc);
        }

        if (const Json* pump = find_member(pe, "pump")) {
            if (!pump->IsObject()) {
                b.problem(pipe.id, "/pump", "'pump' must be an object");
            } else {
                if (const Json* interval = find_member(*pump, "schedule_interval")) {
                    if (!interval->IsNumber() || interval->GetDouble() <= 0)
                        b.problem(pipe.id, "/pump/schedule_interval", "schedule_interval must be a positive number");
                    else
                        pipe.pump.schedule_interval = interval->GetDouble();
                }
                if (const Json* cron = find_member(*pump, "cron_expression")) {
                    if (!cron->IsString()) b.problem(pipe.id, "/pump/cron_expression", "cron_expression must be a string");
                    else {
                        pipe.pump.cron_expression = std::string(as_view(*cron));
                        try {
                            pipe.pump.cron = CronExpression::parse(pipe.pump.cron_expression);
                        } catch (const CronError& e) {
                            b.problem(pipe.id, "/pump/cron_expression", e.what());
                        }
                    }
                }
                std::string mode = string_or(*pump, "mode", "scheduled");
                if (mode != "scheduled" && mode != "manual" && mode != "off")
                    b.problem(pipe.id, "/pump/mode", "mode must be scheduled, manual or off");
                pipe.pump.mode = mode;
                pipe.pump.run_at_startup = bool_or(*pump, "run_at_startup", false);
                if (const Json* dead = find_member(*pump, "dead_letter_dataset")) {
                    if (!dead->IsString() || !valid_id(as_view(*dead)))
                        b.problem(pipe.id, "/pump/dead_letter_dataset", "dead_letter_dataset must be a dataset id");
                    else
                        pipe.pump.dead_letter_dataset = std::string(as_view(*dead));
                } else if (bool_or(*pump, "use_dead_letter_dataset", false)) {
                    pipe.pump.dead_letter_dataset = "system:dead-letter:" + pipe.id;
                }
                if (const Json* track = find_member(*pump, "track_dead_letters")) {
                    if (!track->IsBool())
                        b.problem(pipe.id, "/pump/track_dead_letters", "track_dead_letters must be true or false");
                    else if (track->GetBool() && pipe.pump.dead_letter_dataset.empty())
                        b.problem(pipe.id, "/pump/track_dead_letters",
                                  "track_dead_letters needs dead_letter_dataset (or use_dead_letter_dataset)");
                    else
                        pipe.pump.track_dead_letters = track->GetBool();
                }
            }
        }

        if (b.problems().size() != problems_before) continue;
        auto original = std::make_shared<JsonDocument>();
        original->CopyFrom(e, original->GetAllocator());
        pipe.original = original;
        pipe.effective = effective;
        config->pipes_[pipe.id] = std::move(pipe);
    }

    if (!b.problems().empty()) throw ConfigError(std::move(b.problems()));
    return config;
}

const PipeConfig* NodeConfig::pipe(const std::string& id) const {
    auto it = pipes_.find(id);
    return it == pipes_.end() ? nullptr : &it->second;
}

const SystemConfig* NodeConfig::system(const std::string& id) const {
    auto it = systems_.find(id);
    return it == systems_.end() ? nullptr : &it->second;
}

}  // namespace sluice::kernel

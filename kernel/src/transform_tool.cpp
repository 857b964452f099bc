#include <sluice/kernel/host_context.hpp>
#include <sluice/kernel/transform_tool.hpp>

#include <Poco/Logger.h>

#include <rapidjson/prettywriter.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace sluice::kernel {

namespace fs = std::filesystem;

namespace {

// Collects every emitted batch into one JSON array.
class CollectingHost : public HostContext {
public:
    int32_t emit_batch(const sluice_batch& batch) override {
        if (batch.format != SLUICE_FORMAT_JSON_ARRAY) {
            set_error("unsupported batch format " + std::to_string(batch.format));
            return SLUICE_ERROR;
        }
        std::string_view text(batch.data, batch.size);
        size_t open = text.find('['), close = text.rfind(']');
        if (open == std::string_view::npos || close == std::string_view::npos || close <= open) return SLUICE_OK;
        std::string_view inner = text.substr(open + 1, close - open - 1);
        if (inner.find_first_not_of(" \t\r\n") == std::string_view::npos) return SLUICE_OK;
        if (output.size() > 1) output.push_back(',');
        output.append(inner);
        return SLUICE_OK;
    }
    std::string output = "[";
};

std::string read_all(std::istream& in) {
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

fs::path executable_dir() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::current_path() : exe.parent_path();
}

const char* kDtlUsage = R"(usage:
  sluice dtl eval '<expression JSON>' [--source '<entity JSON>']
      prints the value of one DTL expression (with _S bound to the source entity) as JSON
  sluice dtl run TRANSFORM.json [--plugin-dir DIR] < entities.json
      runs a transform ({"type": "dtl", "rules": {...}}, or a pipe config with "transform") over
      a JSON array of entities and prints the output entities
)";

}  // namespace

std::string run_transform_once(const ComponentInfo& transform, const std::string& config_json,
                               const std::string& batch_json, DatasetStore* store, const SecretResolver& secrets) {
    const sluice_transform_vtable* vt = transform.transform();
    CollectingHost ctx;
    ctx.log_source = "transform:" + transform.type_name;
    ctx.store = store;
    ctx.secrets = secrets;
    sluice_create_args args{sizeof(sluice_create_args), 0, config_json.c_str(), nullptr, "preview", nullptr};
    void* instance = vt->create(&args, &ctx);
    if (!instance) {
        std::string message = ctx.error().empty() ? "the transform could not be created" : ctx.error();
        std::string pointer;
        if (!message.empty() && message[0] == '/') {
            const size_t colon = message.find(": ");
            if (colon != std::string::npos) {
                pointer = message.substr(0, colon);
                message = message.substr(colon + 2);
            }
        }
        throw TransformConfigError(pointer, message);
    }
    JsonDocument input = parse_json(batch_json, "entities");
    if (!input.IsArray()) {
        vt->destroy(instance);
        throw std::runtime_error("entities must be a JSON array");
    }
    sluice_batch batch{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, batch_json.data(), batch_json.size(),
                       input.Size(), nullptr};
    int32_t status = vt->transform(instance, &ctx, &batch);
    vt->destroy(instance);
    if (status != SLUICE_OK)
        throw std::runtime_error(ctx.error().empty() ? "the transform failed with status " + std::to_string(status)
                                                     : ctx.error());
    ctx.output.push_back(']');
    return ctx.output;
}

int run_dtl_command(const std::vector<std::string>& args) {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
        std::cerr << kDtlUsage;
        return args.empty() ? 2 : 0;
    }
    // The DTL plugin is found like any other: the built-in dir, plus --plugin-dir.
    Poco::Logger::root().setLevel("warning");
    PluginRegistry registry(host_api());
    std::vector<std::string> rest;
    for (size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--plugin-dir" && i + 1 < args.size()) registry.load_directory(args[++i]);
        else rest.push_back(args[i]);
    }
    registry.load_directory((executable_dir() / ".." / "lib" / "sluice" / "plugins").lexically_normal());
    const ComponentInfo* dtl = registry.find(SLUICE_KIND_TRANSFORM, "dtl");
    if (!dtl) {
        std::cerr << "sluice dtl: no 'dtl' transform plugin is installed\n";
        return 1;
    }
    try {
        if (args[0] == "eval") {
            if (rest.empty()) {
                std::cerr << kDtlUsage;
                return 2;
            }
            std::string source = "{\"_id\": \"0\"}";
            for (size_t i = 1; i < rest.size(); ++i) {
                if (rest[i] == "--source" && i + 1 < rest.size()) source = rest[++i];
                else throw std::invalid_argument("unexpected argument '" + rest[i] + "'");
            }
            JsonDocument expression = parse_json(rest[0], "expression");
            JsonDocument entity = parse_json(source, "--source");
            if (!entity.IsObject()) throw std::invalid_argument("--source must be a JSON object");
            if (!find_member(entity, "_id")) entity.AddMember("_id", "0", entity.GetAllocator());
            JsonDocument config(rapidjson::kObjectType);
            config.AddMember("type", "dtl", config.GetAllocator());
            config.AddMember("expression", Json(expression, config.GetAllocator()), config.GetAllocator());
            const std::string output =
                run_transform_once(*dtl, to_json(config), "[" + to_json(entity) + "]", nullptr);
            JsonDocument out = parse_json(output, "output");
            if (!out.IsArray() || out.Empty() || !find_member(out[0], "value"))
                throw std::runtime_error("the expression produced no value");
            std::cout << to_json(out[0]["value"]) << "\n";
            return 0;
        }
        if (args[0] == "run") {
            if (rest.size() != 1) {
                std::cerr << kDtlUsage;
                return 2;
            }
            std::ifstream file(rest[0]);
            if (!file) throw std::runtime_error("cannot read " + rest[0]);
            JsonDocument transform = parse_json(read_all(file), rest[0].c_str());
            // A pipe config: take its transform (the first one when there is a list).
            if (const Json* t = find_member(transform, "transform")) {
                JsonDocument inner;
                inner.CopyFrom(t->IsArray() && !t->Empty() ? (*t)[0] : *t, inner.GetAllocator());
                transform = std::move(inner);
            }
            if (!transform.IsObject()) throw std::runtime_error(rest[0] + ": expected a transform object");
            const std::string entities = read_all(std::cin);
            const std::string output = run_transform_once(*dtl, to_json(transform), entities, nullptr);
            JsonDocument out = parse_json(output, "output");
            rapidjson::StringBuffer buffer;
            rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
            writer.SetIndent(' ', 2);
            out.Accept(writer);
            std::cout << buffer.GetString() << "\n";
            return 0;
        }
        std::cerr << "sluice dtl: unknown subcommand '" << args[0] << "'\n" << kDtlUsage;
        return 2;
    } catch (const TransformConfigError& e) {
        std::cerr << "sluice dtl: invalid DTL at " << (e.pointer().empty() ? "/" : e.pointer()) << ": " << e.message()
                  << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "sluice dtl: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace sluice::kernel

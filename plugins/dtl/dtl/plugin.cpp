// The `dtl` transform plugin: Sesam's Data Transformation Language (reference §4).
//
// The rules are compiled once, in the constructor (= the C `create`); a config that does not
// compile throws sluice::Error(SLUICE_FATAL) whose message starts with a JSON pointer into the
// transform config ("/rules/default/2/1: unknown function ...").
#include <sluice/dtl/dtl.hpp>
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

namespace {

namespace dtl = sluice::dtl;

// Dataset lookups through the host: one call per (dataset, property) per batch step.
class HostLookups : public dtl::LookupProvider {
public:
    void bind(sluice::Host* host) { host_ = host; }
    void lookup(const std::string& dataset, const std::string& property, const dtl::Json& values,
                rapidjson::Document& out) override {
        if (!host_) throw sluice::Error("dtl: no host to run lookups against");
        std::string values_json = dtl::serialize(values), text;
        int32_t status = host_->api()->lookup(host_->context(), dataset.c_str(), property.c_str(), values_json.c_str(),
                                              &sluice::detail::append_to_string, &text);
        if (status != SLUICE_OK) throw sluice::Error("dtl: lookup in dataset \"" + dataset + "\" failed", status);
        dtl::parse_json(text.empty() ? std::string_view("[]") : std::string_view(text), out);
        if (!out.IsArray()) throw sluice::Error("dtl: lookup in dataset \"" + dataset + "\" did not answer an array");
    }

private:
    sluice::Host* host_ = nullptr;
};

// Binds the host for the duration of one call.
struct HostScope {
    HostScope(HostLookups& l, sluice::Host& h) : lookups(l) { lookups.bind(&h); }
    ~HostScope() { lookups.bind(nullptr); }
    HostLookups& lookups;
};

// `namespaces.default` of the node metadata: prefix → URI.
std::vector<std::pair<std::string, std::string>> node_namespaces(const sluice::JsonDocument& node) {
    std::vector<std::pair<std::string, std::string>> out;
    const sluice::Json* ns = sluice::find_member(node, "namespaces");
    const sluice::Json* def = ns ? sluice::find_member(*ns, "default") : nullptr;
    if (def && def->IsObject())
        for (auto it = def->MemberBegin(); it != def->MemberEnd(); ++it)
            if (it->value.IsString()) out.emplace_back(it->name.GetString(), it->value.GetString());
    return out;
}

class DtlTransform : public sluice::Transform {
public:
    DtlTransform(const sluice::CreateArgs& args, sluice::Host&) {
        try {
            program_ = dtl::compile_transform(args.config, node_namespaces(args.node));
        } catch (const dtl::CompileError& e) {
            throw sluice::Error(e.what(), SLUICE_FATAL);
        }
        runner_ = std::make_unique<dtl::Runner>(program_, &lookups_);
    }

    void transform(sluice::Host& host, sluice::Batch& input) override {
        std::string text = input.to_json();
        run(host, text);
    }

    // Parses the raw batch itself: integers beyond 64 bits stay exact.
    void transform_raw(sluice::Host& host, const sluice_batch& input) override {
        if (input.format != SLUICE_FORMAT_JSON_ARRAY)
            throw sluice::Error("dtl: unsupported batch format " + std::to_string(input.format));
        run(host, std::string_view(input.data, input.size));
    }

    std::string describe(sluice::Host&) override {
        rapidjson::Document d(rapidjson::kObjectType);
        auto& a = d.GetAllocator();
        dtl::Json deps(rapidjson::kArrayType), joins(rapidjson::kArrayType);
        for (const std::string& ds : dtl::tracked_datasets(*program_)) {
            dtl::Json item(rapidjson::kObjectType);
            item.AddMember("dataset", dtl::Json(ds.c_str(), a), a);
            deps.PushBack(item, a);
        }
        for (const auto& [ds, prop] : dtl::joined_properties(*program_)) {
            dtl::Json item(rapidjson::kObjectType);
            item.AddMember("dataset", dtl::Json(ds.c_str(), a), a);
            item.AddMember("property", dtl::Json(prop.c_str(), a), a);
            joins.PushBack(item, a);
        }
        d.AddMember("dependencies", deps, a);
        d.AddMember("joins", joins, a);
        return dtl::serialize(d);
    }

    std::string dependents(sluice::Host& host, const std::string& dataset, const sluice_batch& changed) override {
        rapidjson::Document doc;
        dtl::parse_json(std::string_view(changed.data, changed.size), doc);
        HostScope scope(lookups_, host);
        std::string out;
        std::vector<std::string> warnings;
        dtl::dependents(*program_, dataset, doc, &lookups_, out, &warnings);
        for (const std::string& w : warnings) host.warn("dtl dependency tracking: " + w);
        return out;
    }

private:
    void run(sluice::Host& host, std::string_view text) {
        const dtl::Json* parsed = nullptr;
        try {
            parsed = &input_.parse(text);
        } catch (const std::invalid_argument& e) {
            throw sluice::Error(std::string("dtl: input batch: ") + e.what());
        }
        const dtl::Json& input = *parsed;
        HostScope scope(lookups_, host);
        size_t count = 0;
        std::string_view out;
        try {
            out = runner_->run(input, count);
        } catch (const dtl::RuntimeError& e) {
            throw sluice::Error(e.what(), SLUICE_ERROR);
        }
        const dtl::RunStats& stats = runner_->stats();
        if (stats.lookups) host.metric("dtl_lookups", static_cast<double>(stats.lookups));
        if (count) host.emit(out, count);
    }

    std::shared_ptr<const dtl::Program> program_;
    HostLookups lookups_;
    std::unique_ptr<dtl::Runner> runner_;
    dtl::BatchInput input_;
};

}  // namespace

SLUICE_PLUGIN("sluice-dtl", "1.0.0", "Sesam DTL (Data Transformation Language) transform", "Apache-2.0",
              sluice::transform<DtlTransform>("dtl", SLUICE_SCHEMA_JSON, 0))

// Helpers for the DTL engine suites: evaluate expressions / run rules on JSON text and compare
// JSON by value (keys sorted), plus an in-memory LookupProvider standing in for the store.
#pragma once

#include <sluice/dtl/dtl.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <map>
#include <string>
#include <vector>

namespace dtltest {

namespace dtl = sluice::dtl;

// JSON text normalised: parsed (big integers kept) and written with sorted keys.
inline std::string norm(const std::string& json) {
    rapidjson::Document d;
    dtl::parse_json(json, d);
    return dtl::serialize(d, true);
}

// Evaluates an expression (JSON text) with _S = source.
inline std::string eval(const std::string& expr, const std::string& source = "{\"_id\":\"s\"}",
                        dtl::LookupProvider* lookups = nullptr) {
    return norm(dtl::evaluate_text(expr, source, lookups));
}

// Runs {"type":"dtl","rules": rules} over entities; returns the output array normalised.
inline std::string run(const std::string& rules, const std::string& entities, dtl::LookupProvider* lookups = nullptr) {
    return norm(dtl::run_text("{\"type\":\"dtl\",\"rules\":" + rules + "}", entities, lookups));
}

// The CompileError what() of a transform config, or "" when it compiles.
inline std::string compile_error(const std::string& config) {
    rapidjson::Document d;
    dtl::parse_json(config, d);
    try {
        dtl::compile_transform(d);
    } catch (const dtl::CompileError& e) {
        return e.what();
    }
    return "";
}
inline std::string expr_error(const std::string& expr) {
    return compile_error("{\"type\":\"dtl\",\"rules\":{\"default\":[[\"add\",\"x\"," + expr + "]]}}");
}

// Datasets in memory; lookup matches a dotted property path with list overlap, like the store.
class MapLookups : public dtl::LookupProvider {
public:
    void add(const std::string& dataset, const std::string& entities_json) {
        auto doc = std::make_unique<rapidjson::Document>();
        dtl::parse_json(entities_json, *doc);
        for (auto& e : doc->GetArray()) entities_[dataset].push_back(dtl::serialize(e));
    }
    void lookup(const std::string& dataset, const std::string& property, const dtl::Json& values,
                rapidjson::Document& out) override {
        ++calls;
        calls_log.push_back(dataset + "." + property + "=" + dtl::serialize(values));
        std::string text = "[";
        for (const std::string& e : entities_[dataset]) {
            rapidjson::Document d;
            dtl::parse_json(e, d);
            std::vector<const dtl::Json*> found{&d};
            size_t start = 0;
            while (start <= property.size()) {
                size_t dot = property.find('.', start);
                std::string key = property.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
                std::vector<const dtl::Json*> next;
                for (const dtl::Json* v : found) {
                    std::vector<const dtl::Json*> items;
                    if (v->IsArray()) for (auto& x : v->GetArray()) items.push_back(&x);
                    else items.push_back(v);
                    for (const dtl::Json* x : items)
                        if (x->IsObject() && x->HasMember(key.c_str())) next.push_back(&(*x)[key.c_str()]);
                }
                found.swap(next);
                if (dot == std::string::npos) break;
                start = dot + 1;
            }
            bool hit = false;
            for (const dtl::Json* v : found) {
                std::vector<const dtl::Json*> items;
                if (v->IsArray()) for (auto& x : v->GetArray()) items.push_back(&x);
                else items.push_back(v);
                for (const dtl::Json* x : items)
                    for (auto& want : values.GetArray())
                        if (*x == want) hit = true;
            }
            if (hit) text += (text.size() > 1 ? "," : "") + e;
        }
        text += "]";
        dtl::parse_json(text, out);
    }
    int calls = 0;
    std::vector<std::string> calls_log;

private:
    std::map<std::string, std::vector<std::string>> entities_;
};

}  // namespace dtltest

#define DTL_EQ(expected, actual) CPPUNIT_ASSERT_EQUAL(::dtltest::norm(expected), (actual))

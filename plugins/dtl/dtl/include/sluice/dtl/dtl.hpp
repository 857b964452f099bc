// sluice/dtl/dtl.hpp — the DTL engine API (static library sluice_dtl_engine).
//
// Used by the `dtl` transform plugin (plugin.cpp) and by the engine's own tests and benchmark.
// The kernel never links it: it drives the plugin through the C contract.
//
//   auto program = sluice::dtl::compile_transform(config);          // throws CompileError
//   sluice::dtl::Runner runner(program, &my_lookups);                // one per thread
//   std::string out;                                                 // JSON array text
//   runner.run(input_entities_array, out);
//
// Values are RapidJSON values; typed values are transit strings ("~t…", "~f…"); integers beyond
// 64 bits are kept exactly (parse input with sluice::dtl::parse_json and write output with
// sluice::dtl::serialize — see docs/dtl.md, "Numbers").
#pragma once

#include <rapidjson/document.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::dtl {

using Json = rapidjson::Value;

// A DTL that does not compile. `pointer()` is a JSON pointer into the transform config
// ("/rules/default/2/1"); what() is "<pointer>: <message>".
class CompileError : public std::runtime_error {
public:
    CompileError(std::string pointer, std::string message);
    const std::string& pointer() const { return pointer_; }
    const std::string& message() const { return message_; }

private:
    std::string pointer_;
    std::string message_;
};

// A run-time failure raised by the DTL itself (`fail!`, `trip!`) or a violated contract
// (output `_id` not a string with id_required). `trip()` is true for `trip!`.
class RuntimeError : public std::runtime_error {
public:
    explicit RuntimeError(const std::string& message, bool trip = false)
        : std::runtime_error(message), trip_(trip) {}
    bool trip() const { return trip_; }

private:
    bool trip_;
};

// Dataset lookups for hops/apply-hops/lookup-entity. The engine calls it once per
// (dataset, property) per join step per batch, with every key the batch needs.
class LookupProvider {
public:
    virtual ~LookupProvider() = default;
    // Fills `out` with a JSON array: the latest live entities of `dataset` whose `property`
    // (dotted path) equals any element of `values` (a JSON array of scalars).
    virtual void lookup(const std::string& dataset, const std::string& property, const Json& values,
                        rapidjson::Document& out) = 0;
};

struct Options {
    bool id_required = true;    // output `_id` must be a string
    std::string trigger_key;    // trigger_on.key ("" = off)
    std::string trigger_value;  // trigger_on.value (wildcards * and ?)
    bool expression_mode = false;  // {"expression": E}: emit {"_id", "value"} per entity
    // Declared namespaces (node metadata `namespaces.default`: prefix → URI), used by `ni` to
    // collapse URIs; the built-in prefixes (rdf, rdfs, owl, foaf, wgs84, xsd, dc, skos, dcterms,
    // and "_" = http://example.org/ for the global namespace) are always known.
    std::vector<std::pair<std::string, std::string>> namespaces;
};

class Program;
class Expression;

// Compiles a `rules` object ({"default": [...], ...}). Throws CompileError; pointers start
// with `pointer_base` ("/rules" for a transform config).
std::shared_ptr<const Program> compile(const Json& rules, const Options& options = {},
                                       const std::string& pointer_base = "/rules");
// Compiles a whole DTL transform config ({"type":"dtl","rules":…,"id_required":…,"trigger_on":…}).
// `namespaces`: see Options::namespaces.
std::shared_ptr<const Program> compile_transform(
    const Json& config, const std::vector<std::pair<std::string, std::string>>& namespaces = {});
// Compiles one expression (expression mode, `sluice dtl eval`). Pointers start with
// `pointer_base`.
std::shared_ptr<const Expression> compile_expression(const Json& expression,
                                                     const std::string& pointer_base = "/expression");

// ---- dependency tracking ---------------------------------------------------------------------
// The datasets a program joins with dependency tracking on (hops/apply-hops reached from the
// main source entity), in first-use order.
std::vector<std::string> tracked_datasets(const Program& program);
// Every (dataset, property) the program looks up (secondary indexes the store should keep).
std::vector<std::pair<std::string, std::string>> joined_properties(const Program& program);

// Which main-source entities depend on `changed` entities of the joined `dataset`: a JSON array
// [{"property": "<dotted path in main-source entities>", "values": [...]}] written to `out`.
// Multi-hop chains walk back through `lookups` (one call per step). Joins whose main-side is not
// a plain path cannot be inverted; they are listed in `warnings`.
void dependents(const Program& program, const std::string& dataset, const Json& changed,
                LookupProvider* lookups, std::string& out, std::vector<std::string>* warnings = nullptr);

struct RunStats {
    size_t input = 0, output = 0, filtered = 0, discarded = 0, created = 0;
    size_t lookups = 0, lookup_keys = 0, passes = 0;
};

// Executes a program. Not thread-safe: use one Runner per thread (the Program is shared).
class Runner {
public:
    explicit Runner(std::shared_ptr<const Program> program, LookupProvider* lookups = nullptr);
    ~Runner();
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    // `_B`: the publisher request's URL parameters (an object), or nullptr.
    void set_bindings(const Json* bindings);
    // Runs over `input` (an array of entities) and appends the output entities, as a JSON array
    // text ("[...]"), to `out`. Returns the number of output entities.
    size_t run(const Json& input, std::string& out);
    // The same, without a copy: the JSON array text stays valid until the next run().
    std::string_view run(const Json& input, size_t& count);
    const RunStats& stats() const;  // of the last run()

private:
    struct State;
    std::unique_ptr<State> state_;
};

// Evaluates an expression with `_S` = `source` (an object or null); appends the result as JSON
// text to `out`. Throws RuntimeError/std::exception on failure.
void evaluate(const Expression& expression, const Json& source, std::string& out,
              LookupProvider* lookups = nullptr);

// Text conveniences (parse errors throw std::invalid_argument; DTL errors as above).
std::string evaluate_text(std::string_view expression_json, std::string_view source_json = "null",
                          LookupProvider* lookups = nullptr);
// `transform_json`: a DTL transform config. Returns the output array text.
std::string run_text(std::string_view transform_json, std::string_view entities_json,
                     LookupProvider* lookups = nullptr);

// The input side of a batch: copies the batch text, parses it in place (integers of any size
// kept) into memory reused from batch to batch. The document is valid until the next parse().
class BatchInput {
public:
    BatchInput();
    ~BatchInput();
    BatchInput(const BatchInput&) = delete;
    BatchInput& operator=(const BatchInput&) = delete;
    const Json& parse(std::string_view text);  // throws std::invalid_argument on malformed JSON

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// JSON text that keeps integers of any size (see docs/dtl.md). `insitu` parses in place:
// `text` must then be a mutable, NUL-terminated buffer that outlives the document.
void parse_json(std::string_view text, rapidjson::Document& doc);
void parse_json_insitu(char* text, rapidjson::Document& doc);
std::string serialize(const Json& value, bool sort_keys = false);

}  // namespace sluice::dtl

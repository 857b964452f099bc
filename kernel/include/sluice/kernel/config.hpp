// The node configuration: a JSON array of pipe, system and metadata entities in Sesam's format,
// validated whole (schemas, references, shape) before anything is applied.
#pragma once

#include <sluice/entity.hpp>
#include <sluice/kernel/cron.hpp>
#include <sluice/kernel/plugin_registry.hpp>

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sluice::kernel {

// One located problem: which entity, where inside it (RFC 6901 JSON pointer), what is wrong.
struct ConfigProblem {
    std::string entity_id;
    std::string pointer;
    std::string message;
};

class ConfigError : public std::runtime_error {
public:
    explicit ConfigError(std::vector<ConfigProblem> problems);
    const std::vector<ConfigProblem>& problems() const { return problems_; }

private:
    std::vector<ConfigProblem> problems_;
};

struct ComponentConfig {
    const ComponentInfo* component = nullptr;
    std::string type;
    std::string config_json;  // the effective component object, passed to create
    std::string system_id;    // "" when the component names no system
};

struct PumpSettings {
    std::optional<double> schedule_interval;  // seconds
    std::string cron_expression;
    std::optional<CronExpression> cron;  // parsed cron_expression; wins over the interval
    std::string mode = "scheduled";  // scheduled | manual | off
    bool run_at_startup = false;
    // Entities a sink rejects (after retries) are kept here instead of failing the run; empty:
    // a rejected entity fails the run. `use_dead_letter_dataset: true` = system:dead-letter:<pipe>.
    std::string dead_letter_dataset;
    // A dead letter is deleted once a later version of its entity reaches the sink.
    bool track_dead_letters = false;
};

struct PipeConfig {
    std::string id;
    std::shared_ptr<const JsonDocument> original;   // as written
    std::shared_ptr<const JsonDocument> effective;  // defaults filled in
    ComponentConfig source;
    std::vector<ComponentConfig> transforms;
    ComponentConfig sink;
    uint32_t batch_size = 100;
    std::vector<std::string> input_datasets;  // datasets the source reads (dataset graph)
    std::string output_dataset;               // the sink's dataset, if it is a dataset sink
    PumpSettings pump;

    // The interval the scheduler uses: the configured one, else Sesam's defaults (30 s for
    // dataset-to-dataset pipes, 900 s otherwise).
    double interval_seconds() const;
};

struct SystemConfig {
    std::string id;
    std::string type;
    std::shared_ptr<const JsonDocument> original;
    std::shared_ptr<const JsonDocument> effective;  // $ENV(...) resolved
};

class NodeConfig {
public:
    // Validates `entities` (a JSON array) whole; throws ConfigError listing every problem.
    // `variables` resolves $ENV(name) (none when null).
    static std::shared_ptr<const NodeConfig> build(const Json& entities, const PluginRegistry& registry,
                                                   const Json* variables = nullptr);
    static std::shared_ptr<const NodeConfig> empty();

    const std::map<std::string, PipeConfig>& pipes() const { return pipes_; }
    const std::map<std::string, SystemConfig>& systems() const { return systems_; }
    const PipeConfig* pipe(const std::string& id) const;
    const SystemConfig* system(const std::string& id) const;
    // The metadata entity ("node"), or null.
    const Json& metadata() const { return *metadata_; }
    // The configuration as uploaded (a JSON array).
    const JsonDocument& entities() const { return *entities_; }

private:
    std::shared_ptr<JsonDocument> entities_;
    std::shared_ptr<JsonDocument> metadata_;
    std::map<std::string, PipeConfig> pipes_;
    std::map<std::string, SystemConfig> systems_;
};

}  // namespace sluice::kernel

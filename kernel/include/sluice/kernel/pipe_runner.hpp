// Runs one pipe once: source batches since the stored continuation token → transforms → sink,
// committing the new token with each batch (in the sink's own transaction for dataset sinks).
#pragma once

#include <sluice/kernel/config.hpp>
#include <sluice/kernel/dataset_store.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::kernel {

// Entities pushed to a receiver (an `http_endpoint` source) instead of read from the source.
struct PushedInput {
    std::string_view batch_json;  // a JSON array of entities
    size_t count = 0;
    // Sesam's full-sync sequence: every request of one sequence shares `run_id`; the sink's
    // begin_run happens on the first request, end_run (deletion tracking) on the last.
    bool full = false;
    bool first = true;
    bool last = true;
    std::string run_id;
};

struct RunOptions {
    bool force_full = false;                     // ignore the stored token (a rescan)
    const std::atomic<bool>* cancel = nullptr;   // set to stop the run between batches
    std::function<void(uint64_t processed)> on_progress;  // called after each committed batch
    const PushedInput* pushed = nullptr;         // receiver requests: skip the source
};

// Where to look at a pipe's entities on demand (GET /api/pipes/{id}/entities?stage=).
enum class Stage { Source, BeforeTransforms, AfterTransforms, Sink };
std::optional<Stage> parse_stage(const std::string& text);

struct RunResult {
    bool ok = false;
    bool full = false;
    std::string run_id;
    std::string error;        // why it failed ("" when ok)
    bool refused = false;     // never started: a tripped circuit breaker holds the pipe (`error` says so)
    std::string since;        // the token the run started from ("" = from the start)
    std::string last_seen;    // the token committed at the end
    uint64_t entities_read = 0;      // entities the source emitted
    uint64_t entities_to_sink = 0;   // entities handed to the sink
    uint64_t changes = 0;            // versions a dataset sink appended
    uint64_t unchanged = 0;          // entities a dataset sink found unchanged
    uint64_t dead_letters = 0;       // entities the sink rejected, kept in the dead-letter dataset
    int64_t started_us = 0;
    int64_t ended_us = 0;
};

// Secrets visible to plugins (name → value); empty optional when unknown.
using SecretResolver = std::function<std::optional<std::string>(const std::string&)>;

class PipeRunner {
public:
    PipeRunner(DatasetStore& store, SecretResolver secrets) : store_(store), secrets_(std::move(secrets)) {}

    // Never throws for plugin failures: they come back as RunResult::error. The execution log
    // dataset `system:pump_execution:<pipe>` gets pump-started and pump-completed/pump-failed.
    RunResult run(const PipeConfig& pipe, const NodeConfig& config, const RunOptions& options = {});

    // Computes a pipe's entities at `stage` without writing anything: the source from `since`
    // ("" = the start) and the transforms up to `stage`; each batch (a JSON array text) goes to
    // `consume`, which returns false to stop. At the sink stage `_filtered` entities are dropped.
    // Throws std::runtime_error with the failing plugin's message.
    void evaluate(const PipeConfig& pipe, const NodeConfig& config, Stage stage, const std::string& since,
                  const std::function<bool(std::string_view)>& consume, const std::atomic<bool>* cancel = nullptr);

    // A publisher pull: the sink (SLUICE_CAP_PUBLISHER) renders the pipe's output, computed as
    // evaluate() does at the sink stage; every byte chunk it emits goes to `out` (false: stop).
    void publish(const PipeConfig& pipe, const NodeConfig& config, const std::string& since,
                 const std::function<bool(std::string_view)>& out);

    static std::string state_key(const std::string& pipe_id) { return "pipe:" + pipe_id; }
    static std::string execution_dataset(const std::string& pipe_id) { return "system:pump_execution:" + pipe_id; }

private:
    DatasetStore& store_;
    SecretResolver secrets_;
};

int64_t now_us();
std::string new_run_id();

}  // namespace sluice::kernel

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

namespace sluice::kernel {

struct RunOptions {
    bool force_full = false;                     // ignore the stored token (a rescan)
    const std::atomic<bool>* cancel = nullptr;   // set to stop the run between batches
    std::function<void(uint64_t processed)> on_progress;  // called after each committed batch
};

struct RunResult {
    bool ok = false;
    bool full = false;
    std::string run_id;
    std::string error;        // why it failed ("" when ok)
    std::string since;        // the token the run started from ("" = from the start)
    std::string last_seen;    // the token committed at the end
    uint64_t entities_read = 0;      // entities the source emitted
    uint64_t entities_to_sink = 0;   // entities handed to the sink
    uint64_t changes = 0;            // versions a dataset sink appended
    uint64_t unchanged = 0;          // entities a dataset sink found unchanged
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

    static std::string state_key(const std::string& pipe_id) { return "pipe:" + pipe_id; }
    static std::string execution_dataset(const std::string& pipe_id) { return "system:pump_execution:" + pipe_id; }

private:
    DatasetStore& store_;
    SecretResolver secrets_;
};

int64_t now_us();
std::string new_run_id();

}  // namespace sluice::kernel

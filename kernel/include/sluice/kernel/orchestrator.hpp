// Runs groups of pipes: a pipe with everything upstream of it (a run tree, leaves first), and
// Sesam's "run all pipes until stable" used by its CLI test runner (reference §6.5). Each group
// is a job with a token, a state and a log readable while it runs.
#pragma once

#include <sluice/kernel/config.hpp>
#include <sluice/kernel/dataset_store.hpp>
#include <sluice/kernel/pumps.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::kernel {

struct JobLogLine {
    int64_t timestamp_us = 0;
    std::string level;  // "INFO" | "ERROR"
    std::string text;
};

class RunJob {
public:
    explicit RunJob(std::string token, std::string kind) : token_(std::move(token)), kind_(std::move(kind)) {}
    const std::string& token() const { return token_; }
    const std::string& kind() const { return kind_; }
    // running | success | failed | stopped
    std::string state() const;
    std::string error() const;
    std::vector<JobLogLine> log_since(size_t index) const;
    bool finished() const;
    void wait() const;

    void log(const std::string& level, const std::string& text);
    void finish(const std::string& state, const std::string& error = {});
    std::atomic<bool> cancel{false};
    std::string current_pipe() const;
    void set_current_pipe(const std::string& id);

private:
    std::string token_;
    std::string kind_;
    mutable std::mutex mutex_;
    mutable std::condition_variable done_;
    std::string state_ = "running";
    std::string error_;
    std::string current_pipe_;
    std::vector<JobLogLine> log_;
};

struct RunAllOptions {
    int extra_zero_runs = 2;      // passes without changes that end the job
    double max_run_time = 900;    // seconds
    int max_runs = 100;           // passes
    bool reset_pipes_and_delete_sink_datasets = true;
    // Input pipes are receivers (push-only sources); their datasets hold pushed test data and
    // are kept unless this is true (Sesam's client sends False when testdata/ exists).
    bool delete_input_datasets = true;
};

class Orchestrator {
public:
    Orchestrator(PumpManager& pumps, DatasetStore& store, std::function<std::shared_ptr<const NodeConfig>()> config);
    ~Orchestrator();
    Orchestrator(const Orchestrator&) = delete;
    Orchestrator& operator=(const Orchestrator&) = delete;

    // Starts a run-all job. Throws std::logic_error when one is already running.
    std::shared_ptr<RunJob> start_run_all(const RunAllOptions& options);
    // Starts a run tree for `pipe_id`. Throws std::logic_error when one runs for that pipe.
    std::shared_ptr<RunJob> start_tree(const std::string& pipe_id, bool full);
    // Asks the running run-all job to stop and waits up to `timeout_s`. True when none runs.
    bool stop_run_all(double timeout_s);

    std::shared_ptr<RunJob> job(const std::string& token) const;
    std::shared_ptr<RunJob> latest_run_all() const;
    std::shared_ptr<RunJob> tree(const std::string& pipe_id) const;

    // Pipes in dependency order (producers of a pipe's input datasets before it). Cycles are
    // broken in id order.
    static std::vector<std::string> topological_order(const NodeConfig& config);
    // `pipe_id` and every pipe upstream of it, leaves first.
    static std::vector<std::string> upstream_order(const NodeConfig& config, const std::string& pipe_id);

private:
    void run_all(std::shared_ptr<RunJob> job, RunAllOptions options);
    void run_tree(std::shared_ptr<RunJob> job, std::string pipe_id, bool full);
    // Runs one pipe on the calling thread (waiting if its pump is busy); nullopt when cancelled.
    std::optional<RunResult> run_pipe(RunJob& job, const std::string& pipe_id, bool full);
    void launch(std::function<void()> body);

    PumpManager& pumps_;
    DatasetStore& store_;
    std::function<std::shared_ptr<const NodeConfig>()> config_;
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<RunJob>> jobs_;         // by token
    std::map<std::string, std::shared_ptr<RunJob>> trees_;        // latest tree per pipe
    std::shared_ptr<RunJob> run_all_;                             // latest run-all job
    std::vector<std::thread> threads_;
};

}  // namespace sluice::kernel

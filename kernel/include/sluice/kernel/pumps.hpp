// Pumps: run pipes on their schedules on a bounded worker pool, one run per pipe at a time.
#pragma once

#include <sluice/kernel/config.hpp>
#include <sluice/kernel/pipe_runner.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sluice::kernel {

struct PumpStatus {
    std::string pipe_id;
    bool running = false;
    bool disabled = false;
    std::string mode;
    uint64_t runs = 0;
    uint64_t failures = 0;
    uint64_t progress = 0;  // entities read so far by the running run
    // Totals since the node started (exported on /metrics).
    uint64_t entities_read_total = 0;
    uint64_t entities_to_sink_total = 0;
    uint64_t changes_total = 0;
    double run_seconds_total = 0;
    int64_t next_run_us = 0;
    std::optional<RunResult> last_run;
};

class PumpManager {
public:
    PumpManager(DatasetStore& store, SecretResolver secrets, size_t workers);
    ~PumpManager();
    PumpManager(const PumpManager&) = delete;
    PumpManager& operator=(const PumpManager&) = delete;

    // Installs a new configuration: new pipes are scheduled to run now (scheduled mode), removed
    // pipes stop being scheduled (a running run finishes). `removed_from_storage`: the pipes it
    // lacks were removed from the stored configuration (this node stored it), so their disable
    // flags go too; not so when this node only stops running them (another node stored the
    // change, or the stored configuration does not build here) — the flags are shared.
    void apply(std::shared_ptr<const NodeConfig> config, bool removed_from_storage = false);
    void start();
    void stop();  // asks running runs to stop and joins the workers

    // Queues a run now. false when the pipe is unknown or already running/queued.
    bool trigger(const std::string& pipe_id, bool force_full = false);
    // Runs a pipe on the calling thread and returns its result (used by tests and run-all).
    std::optional<RunResult> run_now(const std::string& pipe_id, bool force_full = false);
    // Runs a receiver request (pushed entities) through the pipe on the calling thread; nullopt
    // when the pipe is unknown or does not become free within a few seconds.
    std::optional<RunResult> run_pushed(const std::string& pipe_id, const PushedInput& input);
    bool request_stop(const std::string& pipe_id);
    bool set_disabled(const std::string& pipe_id, bool disabled);
    // Takes the disable flags as stored (another node sharing the storage may have set them).
    void refresh_disabled();
    // Blocks until no run is queued or running, or `timeout_ms` passes. True when idle.
    bool wait_idle(int timeout_ms);
    // Blocks until this pipe's pump is neither running nor queued, or `timeout_ms` passes.
    bool wait_pipe_idle(const std::string& pipe_id, int timeout_ms);

    std::optional<PumpStatus> status(const std::string& pipe_id) const;
    std::vector<PumpStatus> statuses() const;
    void set_scheduler_enabled(bool enabled);

private:
    struct Pump {
        std::string pipe_id;
        bool running = false;
        bool queued = false;
        bool queued_full = false;
        bool disabled = false;
        uint64_t runs = 0;
        uint64_t failures = 0;
        std::atomic<uint64_t> progress{0};
        uint64_t entities_read_total = 0;
        uint64_t entities_to_sink_total = 0;
        uint64_t changes_total = 0;
        double run_seconds_total = 0;
        int64_t next_run_us = 0;
        // An upstream run changed this pipe's input while this pipe was running: the running
        // run may have read before the change, so the pipe runs again as soon as it ends.
        bool signalled_while_running = false;
        std::atomic<bool> cancel{false};
        std::optional<RunResult> last_run;
    };

    void scheduler_loop();
    void worker_loop();
    RunResult execute(Pump& pump, bool force_full, const PushedInput* pushed = nullptr);
    PumpStatus snapshot(const Pump& pump) const;

    DatasetStore& store_;
    SecretResolver secrets_;
    size_t worker_count_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable idle_;
    std::shared_ptr<const NodeConfig> config_;
    std::map<std::string, std::shared_ptr<Pump>> pumps_;
    std::deque<std::shared_ptr<Pump>> queue_;
    std::vector<std::thread> threads_;
    bool stopping_ = false;
    bool started_ = false;
    bool scheduler_enabled_ = true;
    size_t active_ = 0;
    uint64_t disabled_writes_ = 0;  // set_disabled calls: refresh_disabled skips a stale read
};

}  // namespace sluice::kernel

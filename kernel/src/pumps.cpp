#include <sluice/kernel/pumps.hpp>

#include <Poco/Logger.h>

#include <algorithm>
#include <chrono>

namespace sluice::kernel {

PumpManager::PumpManager(DatasetStore& store, SecretResolver secrets, size_t workers)
    : store_(store), secrets_(std::move(secrets)), worker_count_(workers == 0 ? 1 : workers),
      config_(NodeConfig::empty()) {}

PumpManager::~PumpManager() { stop(); }

namespace {
// Storage state key of a pump's operator-set disable flag ({"disabled": bool}).
std::string disabled_key(const std::string& pipe_id) { return "pump:" + pipe_id; }
}  // namespace

void PumpManager::apply(std::shared_ptr<const NodeConfig> config, bool removed_from_storage) {
    // Pumps an operator disabled stay disabled across restarts: the flags live in storage, read
    // in one call (before the lock: storage may be slow).
    JsonDocument stored = store_.command(R"({"op":"state_list","prefix":"pump:"})");
    std::vector<std::string> forgotten;
    std::lock_guard<std::mutex> lock(mutex_);
    std::map<std::string, std::shared_ptr<Pump>> next;
    const int64_t now = now_us();
    for (const auto& [id, pipe] : config->pipes()) {
        auto it = pumps_.find(id);
        if (it != pumps_.end()) {
            next[id] = it->second;
        } else {
            auto pump = std::make_shared<Pump>();
            pump->pipe_id = id;
            const Json* flag = stored.IsObject() ? find_member(stored, disabled_key(id)) : nullptr;
            pump->disabled = pipe.pump.mode == "off" || (flag && bool_or(*flag, "disabled", false));
            // A newly configured pipe runs right away, then on its interval; a cron pipe only at
            // its cron times.
            pump->next_run_us = pipe.pump.mode != "scheduled" ? 0
                                : pipe.pump.cron ? pipe.pump.cron->next_after(now).value_or(0)
                                                 : now;
            next[id] = pump;
        }
    }
    for (auto& [id, pump] : pumps_) {
        if (!next.count(id)) {
            pump->cancel = true;  // removed: let a running run stop early
            forgotten.push_back(id);
        }
    }
    pumps_ = std::move(next);
    config_ = std::move(config);
    wake_.notify_all();
    // A removed pipe's flag goes with it: a pipe added later under the same id starts enabled.
    if (!removed_from_storage) return;
    for (const std::string& id : forgotten) {
        if (!stored.IsObject() || !find_member(stored, disabled_key(id))) continue;
        JsonDocument cmd(rapidjson::kObjectType);
        cmd.AddMember("op", "state_delete", cmd.GetAllocator());
        cmd.AddMember("key", Json(disabled_key(id).c_str(), cmd.GetAllocator()), cmd.GetAllocator());
        store_.command(cmd);
    }
}

void PumpManager::start() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (started_) return;
    started_ = true;
    stopping_ = false;
    threads_.emplace_back([this] { scheduler_loop(); });
    for (size_t i = 0; i < worker_count_; ++i) threads_.emplace_back([this] { worker_loop(); });
}

void PumpManager::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!started_) return;
        stopping_ = true;
        for (auto& [id, pump] : pumps_) pump->cancel = true;
        queue_.clear();
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    std::lock_guard<std::mutex> lock(mutex_);
    started_ = false;
}

void PumpManager::set_scheduler_enabled(bool enabled) {
    std::lock_guard<std::mutex> lock(mutex_);
    scheduler_enabled_ = enabled;
    wake_.notify_all();
}

void PumpManager::scheduler_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        const int64_t now = now_us();
        int64_t next_wake = now + 1'000'000;
        if (scheduler_enabled_) {
            for (auto& [id, pump] : pumps_) {
                const PipeConfig* pipe = config_->pipe(id);
                if (!pipe || pump->disabled || pipe->pump.mode != "scheduled" || pump->next_run_us == 0 ||
                    pipe->source.component->has(SLUICE_CAP_PUSH_ONLY))
                    continue;
                if (pump->next_run_us <= now) {
                    if (!pump->running && !pump->queued) {
                        pump->queued = true;
                        queue_.push_back(pump);
                    }
                    pump->next_run_us = pipe->pump.cron ? pipe->pump.cron->next_after(now).value_or(0)
                                                        : now + static_cast<int64_t>(pipe->interval_seconds() * 1e6);
                }
                next_wake = std::min(next_wake, pump->next_run_us);
            }
        }
        wake_.notify_all();
        wake_.wait_for(lock, std::chrono::microseconds(std::max<int64_t>(next_wake - now, 1000)));
    }
}

void PumpManager::worker_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        std::shared_ptr<Pump> pump = queue_.front();
        queue_.pop_front();
        const bool full = pump->queued_full;
        pump->queued = false;
        pump->queued_full = false;
        pump->running = true;
        ++active_;
        lock.unlock();
        execute(*pump, full);
        lock.lock();
        --active_;
        idle_.notify_all();
    }
}

namespace {

// The storage's run lock for one pipe (ops run_lock / run_unlock, docs/storage.md), released when
// the run ends. An empty pipe id, or a storage that does not know the ops, takes no lock.
class RunLock {
public:
    RunLock(DatasetStore& store, const std::string& pipe_id) : store_(store) {
        if (pipe_id.empty()) return;
        try {
            JsonDocument answer = store_.command(command("run_lock", "pipe:" + pipe_id));
            const Json* locked = answer.IsObject() ? find_member(answer, "locked") : nullptr;
            if (locked && locked->IsBool() && !locked->GetBool()) {
                acquired_ = false;
                return;
            }
            if (locked) key_ = "pipe:" + pipe_id;
        } catch (const std::exception&) {
            // Run anyway: no locks (or storage trouble, which the run itself will report).
        }
    }
    ~RunLock() {
        if (key_.empty()) return;
        try {
            store_.command(command("run_unlock", key_));
        } catch (const std::exception&) {
            // The lock goes with the storage's session if it cannot be released now.
        }
    }
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;
    bool acquired() const { return acquired_; }

private:
    static JsonDocument command(const char* op, const std::string& key) {
        JsonDocument doc(rapidjson::kObjectType);
        doc.AddMember("op", Json(op, doc.GetAllocator()), doc.GetAllocator());
        doc.AddMember("key", Json(key.c_str(), doc.GetAllocator()), doc.GetAllocator());
        return doc;
    }

    DatasetStore& store_;
    std::string key_;  // held lock, "" when none
    bool acquired_ = true;
};

}  // namespace

RunResult PumpManager::execute(Pump& pump, bool force_full, const PushedInput* pushed) {
    std::shared_ptr<const NodeConfig> config;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        config = config_;
        pump.cancel = false;
        pump.progress = 0;
        pump.running = true;
    }
    RunResult result;
    const PipeConfig* pipe = config->pipe(pump.pipe_id);
    // Nodes sharing the storage run a pipe on one node at a time: the storage's run lock. Pushed
    // input (a receiver's request) is never skipped — it would be lost — and a storage without
    // run locks (a third-party backend) runs everything, as a single node does.
    RunLock run_lock(store_, pipe && !pushed ? pump.pipe_id : std::string());
    if (!run_lock.acquired()) {
        Poco::Logger::get("sluice.pumps").debug("pipe " + pump.pipe_id + " is running on another node: skipped");
        std::lock_guard<std::mutex> lock(mutex_);
        pump.running = false;
        idle_.notify_all();
        RunResult skipped;
        skipped.error = "running on another node";
        skipped.refused = true;
        return skipped;
    }
    if (!pipe) {
        result.error = "pipe '" + pump.pipe_id + "' is no longer configured";
    } else {
        PipeRunner runner(store_, secrets_);
        RunOptions options;
        options.force_full = force_full;
        options.pushed = pushed;
        options.cancel = &pump.cancel;
        options.on_progress = [&pump](uint64_t n) { pump.progress = n; };
        result = runner.run(*pipe, *config, options);
    }
    Poco::Logger& log = Poco::Logger::get("sluice.pumps");
    // A pipe held by a tripped circuit breaker is asked to run at every interval until an
    // operator resolves it: the refusal is logged once, not as a failure per interval.
    const bool refused_before = pump.last_run && pump.last_run->refused;
    if (result.refused) {
        if (!refused_before) log.warning("pipe " + pump.pipe_id + " not run: " + result.error);
    } else if (result.ok) {
        log.information("pipe " + pump.pipe_id + " completed: " + std::to_string(result.entities_read) +
                        " read, " + std::to_string(result.changes) + " changes");
    } else {
        log.error("pipe " + pump.pipe_id + " failed: " + result.error);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    pump.running = false;
    ++pump.runs;
    if (!result.ok && !result.refused) ++pump.failures;
    pump.entities_read_total += result.entities_read;
    pump.entities_to_sink_total += result.entities_to_sink;
    pump.changes_total += result.changes;
    pump.run_seconds_total += static_cast<double>(result.ended_us - result.started_us) / 1e6;
    // Signalling: a run that changed its output dataset wakes the scheduled pipes reading it,
    // instead of leaving them to their next interval (dataset pipes default to 30 s).
    if (result.ok && result.changes > 0 && pipe && !pipe->output_dataset.empty()) {
        for (const auto& [id, downstream] : config->pipes()) {
            // Cron pipes keep to their times (reference §2.7: signalling is off for them).
            if (id == pump.pipe_id || downstream.pump.mode != "scheduled" || downstream.pump.cron) continue;
            const auto& inputs = downstream.input_datasets;
            if (std::find(inputs.begin(), inputs.end(), pipe->output_dataset) == inputs.end()) continue;
            auto it = pumps_.find(id);
            if (it == pumps_.end() || it->second->disabled) continue;
            it->second->next_run_us = now_us();
            if (it->second->running) it->second->signalled_while_running = true;
        }
        wake_.notify_all();
    }
    if (pump.signalled_while_running) {
        pump.signalled_while_running = false;
        pump.next_run_us = now_us();
        wake_.notify_all();
    }
    pump.last_run = result;
    idle_.notify_all();
    return result;
}

bool PumpManager::trigger(const std::string& pipe_id, bool force_full) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pumps_.find(pipe_id);
    if (it == pumps_.end() || it->second->running || it->second->queued) return false;
    it->second->queued = true;
    it->second->queued_full = force_full;
    queue_.push_back(it->second);
    wake_.notify_all();
    return true;
}

std::optional<RunResult> PumpManager::run_now(const std::string& pipe_id, bool force_full) {
    std::shared_ptr<Pump> pump;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = pumps_.find(pipe_id);
        if (it == pumps_.end() || it->second->running) return std::nullopt;
        pump = it->second;
        pump->running = true;
        ++active_;
    }
    RunResult result = execute(*pump, force_full);
    std::lock_guard<std::mutex> lock(mutex_);
    --active_;
    idle_.notify_all();
    return result;
}

std::optional<RunResult> PumpManager::run_pushed(const std::string& pipe_id, const PushedInput& input) {
    std::shared_ptr<Pump> pump;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        // Receiver requests of one pipe are applied one at a time, in arrival order.
        const bool free = idle_.wait_for(lock, std::chrono::seconds(10), [&] {
            auto it = pumps_.find(pipe_id);
            return it == pumps_.end() || !it->second->running;
        });
        auto it = pumps_.find(pipe_id);
        if (!free || it == pumps_.end()) return std::nullopt;
        pump = it->second;
        pump->running = true;
        ++active_;
    }
    RunResult result = execute(*pump, false, &input);
    std::lock_guard<std::mutex> lock(mutex_);
    --active_;
    idle_.notify_all();
    return result;
}

bool PumpManager::request_stop(const std::string& pipe_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pumps_.find(pipe_id);
    if (it == pumps_.end()) return false;
    it->second->cancel = true;
    return true;
}

bool PumpManager::set_disabled(const std::string& pipe_id, bool disabled) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!pumps_.count(pipe_id)) return false;
    }
    // Stored first: a storage failure leaves the pump as it was (the caller gets the error).
    JsonDocument flag(rapidjson::kObjectType);
    flag.AddMember("disabled", disabled, flag.GetAllocator());
    store_.state_put(disabled_key(pipe_id), flag);
    std::lock_guard<std::mutex> lock(mutex_);
    ++disabled_writes_;
    auto it = pumps_.find(pipe_id);
    if (it == pumps_.end()) return false;
    it->second->disabled = disabled;
    return true;
}

void PumpManager::refresh_disabled() {
    uint64_t writes_before = 0;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        writes_before = disabled_writes_;
    }
    JsonDocument stored = store_.command(R"({"op":"state_list","prefix":"pump:"})");  // not under the lock
    std::lock_guard<std::mutex> lock(mutex_);
    // A set_disabled on this node since the read: the read may predate its flag; the next refresh
    // sees it.
    if (writes_before != disabled_writes_ || !config_) return;
    for (auto& [id, pump] : pumps_) {
        const auto pipe = config_->pipes().find(id);
        if (pipe == config_->pipes().end()) continue;
        const Json* flag = stored.IsObject() ? find_member(stored, disabled_key(id)) : nullptr;
        pump->disabled = pipe->second.pump.mode == "off" || (flag && bool_or(*flag, "disabled", false));
    }
}

bool PumpManager::wait_idle(int timeout_ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    return idle_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
        if (active_ > 0 || !queue_.empty()) return false;
        for (auto& [id, pump] : pumps_) {
            if (pump->running || pump->queued) return false;
        }
        return true;
    });
}

bool PumpManager::wait_pipe_idle(const std::string& pipe_id, int timeout_ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    return idle_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
        auto it = pumps_.find(pipe_id);
        return it == pumps_.end() || (!it->second->running && !it->second->queued);
    });
}

PumpStatus PumpManager::snapshot(const Pump& pump) const {
    PumpStatus s;
    s.pipe_id = pump.pipe_id;
    s.running = pump.running;
    s.disabled = pump.disabled;
    const PipeConfig* pipe = config_->pipe(pump.pipe_id);
    s.mode = pipe ? pipe->pump.mode : "";
    s.runs = pump.runs;
    s.failures = pump.failures;
    s.progress = pump.progress;
    s.entities_read_total = pump.entities_read_total;
    s.entities_to_sink_total = pump.entities_to_sink_total;
    s.changes_total = pump.changes_total;
    s.run_seconds_total = pump.run_seconds_total;
    s.next_run_us = pump.next_run_us;
    s.last_run = pump.last_run;
    return s;
}

std::optional<PumpStatus> PumpManager::status(const std::string& pipe_id) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pumps_.find(pipe_id);
    if (it == pumps_.end()) return std::nullopt;
    return snapshot(*it->second);
}

std::vector<PumpStatus> PumpManager::statuses() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<PumpStatus> out;
    for (const auto& [id, pump] : pumps_) out.push_back(snapshot(*pump));
    return out;
}

}  // namespace sluice::kernel

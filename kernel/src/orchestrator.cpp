#include <sluice/kernel/orchestrator.hpp>

#include <Poco/Logger.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <stdexcept>

namespace sluice::kernel {

// ---- RunJob ------------------------------------------------------------------------------

std::string RunJob::state() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_;
}

std::string RunJob::error() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_;
}

std::vector<JobLogLine> RunJob::log_since(size_t index) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (index >= log_.size()) return {};
    return std::vector<JobLogLine>(log_.begin() + static_cast<std::ptrdiff_t>(index), log_.end());
}

bool RunJob::finished() const { return state() != "running"; }

void RunJob::wait() const {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return state_ != "running"; });
}

void RunJob::log(const std::string& level, const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex_);
    log_.push_back({now_us(), level, text});
}

void RunJob::finish(const std::string& state, const std::string& error) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        state_ = state;
        error_ = error;
        current_pipe_.clear();
        log_.push_back({now_us(), state == "success" ? "INFO" : "ERROR",
                        kind_ + " " + state + (error.empty() ? "" : ": " + error)});
    }
    done_.notify_all();
}

std::string RunJob::current_pipe() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return current_pipe_;
}

void RunJob::set_current_pipe(const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex_);
    current_pipe_ = id;
}

// ---- ordering ----------------------------------------------------------------------------

namespace {

// dataset → pipes writing it
std::map<std::string, std::vector<std::string>> producers(const NodeConfig& config) {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& [id, pipe] : config.pipes()) {
        if (!pipe.output_dataset.empty()) out[pipe.output_dataset].push_back(id);
    }
    return out;
}

}  // namespace

std::vector<std::string> Orchestrator::topological_order(const NodeConfig& config) {
    auto writers = producers(config);
    std::map<std::string, std::set<std::string>> upstream;  // pipe → pipes it waits for
    for (const auto& [id, pipe] : config.pipes()) {
        auto& deps = upstream[id];
        for (const std::string& dataset : pipe.input_datasets) {
            auto it = writers.find(dataset);
            if (it == writers.end()) continue;
            for (const std::string& writer : it->second)
                if (writer != id) deps.insert(writer);
        }
    }
    std::vector<std::string> order;
    std::set<std::string> done;
    while (order.size() < upstream.size()) {
        bool progressed = false;
        for (const auto& [id, deps] : upstream) {  // std::map: id order, deterministic
            if (done.count(id)) continue;
            if (std::all_of(deps.begin(), deps.end(), [&](const std::string& d) { return done.count(d) > 0; })) {
                order.push_back(id);
                done.insert(id);
                progressed = true;
            }
        }
        if (!progressed) {  // a cycle: take the first remaining pipe and go on
            for (const auto& [id, deps] : upstream) {
                if (!done.count(id)) {
                    order.push_back(id);
                    done.insert(id);
                    break;
                }
            }
        }
    }
    return order;
}

std::vector<std::string> Orchestrator::upstream_order(const NodeConfig& config, const std::string& pipe_id) {
    auto writers = producers(config);
    std::set<std::string> wanted;
    std::vector<std::string> stack{pipe_id};
    while (!stack.empty()) {
        std::string id = stack.back();
        stack.pop_back();
        if (!wanted.insert(id).second) continue;
        const PipeConfig* pipe = config.pipe(id);
        if (!pipe) continue;
        for (const std::string& dataset : pipe->input_datasets) {
            auto it = writers.find(dataset);
            if (it == writers.end()) continue;
            for (const std::string& writer : it->second) stack.push_back(writer);
        }
    }
    std::vector<std::string> order;
    for (const std::string& id : topological_order(config))
        if (wanted.count(id)) order.push_back(id);
    // The requested pipe always runs last, even inside a cycle.
    order.erase(std::remove(order.begin(), order.end(), pipe_id), order.end());
    order.push_back(pipe_id);
    return order;
}

// ---- Orchestrator ------------------------------------------------------------------------

Orchestrator::Orchestrator(PumpManager& pumps, DatasetStore& store,
                           std::function<std::shared_ptr<const NodeConfig>()> config)
    : pumps_(pumps), store_(store), config_(std::move(config)) {}

Orchestrator::~Orchestrator() {
    std::vector<std::thread> threads;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& [token, job] : jobs_) job->cancel = true;
        threads.swap(threads_);
    }
    for (auto& [token, job] : jobs_) {
        if (!job->finished()) {
            std::string pipe = job->current_pipe();
            if (!pipe.empty()) pumps_.request_stop(pipe);
        }
    }
    for (std::thread& t : threads) t.join();
}

void Orchestrator::launch(std::function<void()> body) {
    std::lock_guard<std::mutex> lock(mutex_);
    threads_.emplace_back(std::move(body));
}

std::shared_ptr<RunJob> Orchestrator::start_run_all(const RunAllOptions& options) {
    std::shared_ptr<RunJob> job;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (run_all_ && !run_all_->finished()) throw std::logic_error("run-all-pipes is already running");
        job = std::make_shared<RunJob>(new_run_id(), "run-all-pipes");
        jobs_[job->token()] = job;
        run_all_ = job;
    }
    launch([this, job, options] { run_all(job, options); });
    return job;
}

std::shared_ptr<RunJob> Orchestrator::start_tree(const std::string& pipe_id, bool full) {
    std::shared_ptr<RunJob> job;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = trees_.find(pipe_id);
        if (it != trees_.end() && !it->second->finished())
            throw std::logic_error("a run tree for '" + pipe_id + "' is already running");
        job = std::make_shared<RunJob>(new_run_id(), "run-tree " + pipe_id);
        jobs_[job->token()] = job;
        trees_[pipe_id] = job;
    }
    launch([this, job, pipe_id, full] { run_tree(job, pipe_id, full); });
    return job;
}

bool Orchestrator::stop_run_all(double timeout_s) {
    std::shared_ptr<RunJob> job = latest_run_all();
    if (!job || job->finished()) return true;
    job->cancel = true;
    const std::string pipe = job->current_pipe();
    if (!pipe.empty()) pumps_.request_stop(pipe);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (!job->finished() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return job->finished();
}

std::shared_ptr<RunJob> Orchestrator::job(const std::string& token) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = jobs_.find(token);
    return it == jobs_.end() ? nullptr : it->second;
}

std::shared_ptr<RunJob> Orchestrator::latest_run_all() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return run_all_;
}

std::shared_ptr<RunJob> Orchestrator::tree(const std::string& pipe_id) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = trees_.find(pipe_id);
    return it == trees_.end() ? nullptr : it->second;
}

std::optional<RunResult> Orchestrator::run_pipe(RunJob& job, const std::string& pipe_id, bool full) {
    job.set_current_pipe(pipe_id);
    while (!job.cancel) {
        if (!pumps_.status(pipe_id)) {
            RunResult gone;
            gone.error = "pipe '" + pipe_id + "' is not configured any more";
            return gone;
        }
        std::optional<RunResult> result = pumps_.run_now(pipe_id, full);
        if (result) return result;
        // Its pump is busy with a scheduled run: wait for that to finish, then run ours.
        pumps_.wait_pipe_idle(pipe_id, 200);
    }
    return std::nullopt;
}

void Orchestrator::run_tree(std::shared_ptr<RunJob> job, std::string pipe_id, bool full) {
    try {
        auto config = config_();
        if (!config->pipe(pipe_id)) throw std::runtime_error("pipe '" + pipe_id + "' is not configured");
        std::vector<std::string> order = upstream_order(*config, pipe_id);
        std::string listed;
        for (const std::string& id : order) listed += (listed.empty() ? "" : ", ") + id;
        job->log("INFO", "running " + std::to_string(order.size()) + " pipe(s), leaves first: " + listed);
        for (const std::string& id : order) {
            job->log("INFO", "pipe " + id + " started");
            std::optional<RunResult> result = run_pipe(*job, id, full && id == pipe_id);
            if (!result) return job->finish("stopped", "stopped before pipe '" + id + "' ran");
            if (!result->ok) {
                job->log("ERROR", "pipe " + id + " failed: " + result->error);
                return job->finish("failed", "pipe '" + id + "' failed: " + result->error);
            }
            job->log("INFO", "pipe " + id + " completed: " + std::to_string(result->entities_read) + " read, " +
                                 std::to_string(result->changes) + " changes");
        }
        job->finish("success");
    } catch (const std::exception& e) {
        job->finish("failed", e.what());
    }
}

void Orchestrator::run_all(std::shared_ptr<RunJob> job, RunAllOptions options) {
    // The node's own schedules stay idle while the test runner drives the pipes.
    pumps_.set_scheduler_enabled(false);
    struct ResumeScheduler {
        PumpManager& pumps;
        ~ResumeScheduler() { pumps.set_scheduler_enabled(true); }
    } resume{pumps_};
    const auto started = std::chrono::steady_clock::now();
    try {
        auto config = config_();
        std::vector<std::string> order = topological_order(*config);
        if (options.reset_pipes_and_delete_sink_datasets) {
            for (const std::string& id : order) {
                JsonDocument reset(rapidjson::kObjectType);
                reset.AddMember("last_seen", "", reset.GetAllocator());
                store_.state_put(PipeRunner::state_key(id), reset);
                const PipeConfig* pipe = config->pipe(id);
                const std::string& dataset = pipe->output_dataset;
                const bool input_pipe = pipe->source.component->has(SLUICE_CAP_PUSH_ONLY);
                if (!dataset.empty() && (!input_pipe || options.delete_input_datasets)) {
                    JsonDocument cmd(rapidjson::kObjectType);
                    cmd.AddMember("op", "delete", cmd.GetAllocator());
                    cmd.AddMember("dataset", Json(dataset.c_str(), cmd.GetAllocator()), cmd.GetAllocator());
                    store_.command(cmd);
                }
            }
            job->log("INFO", "reset " + std::to_string(order.size()) + " pipe(s) and deleted their sink datasets");
        }
        const int zero_runs_needed = std::max(1, options.extra_zero_runs);
        int zero_runs = 0;
        for (int pass = 1;; ++pass) {
            uint64_t changes = 0;
            for (const std::string& id : order) {
                std::optional<RunResult> result = run_pipe(*job, id, false);
                if (!result) return job->finish("stopped", "stopped during pass " + std::to_string(pass));
                if (!result->ok) {
                    job->log("ERROR", "pipe " + id + " failed: " + result->error);
                    return job->finish("failed", "pipe '" + id + "' failed: " + result->error);
                }
                changes += result->changes;
            }
            job->log("INFO", "pass " + std::to_string(pass) + ": " + std::to_string(order.size()) + " pipe(s), " +
                                 std::to_string(changes) + " change(s)");
            zero_runs = changes == 0 ? zero_runs + 1 : 0;
            if (zero_runs >= zero_runs_needed) return job->finish("success");
            if (pass >= options.max_runs)
                return job->finish("failed", "not stable after " + std::to_string(pass) + " passes (max_runs)");
            const double elapsed =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            if (elapsed > options.max_run_time)
                return job->finish("failed", "not stable after " + std::to_string(static_cast<int>(elapsed)) +
                                                 " s (max_run_time)");
        }
    } catch (const std::exception& e) {
        job->finish("failed", e.what());
    }
}

}  // namespace sluice::kernel

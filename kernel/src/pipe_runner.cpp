#include <sluice/kernel/environment.hpp>
#include <sluice/kernel/host_context.hpp>
#include <sluice/kernel/pipe_runner.hpp>
#include <sluice/sdk.hpp>

#include <Poco/UUIDGenerator.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>
#include <unordered_set>

namespace sluice::kernel {

int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string new_run_id() { return Poco::UUIDGenerator::defaultGenerator().createRandom().toString(); }

namespace {

// Appends the entities of a JSON array text to `out` (an array under construction, "[" + …).
void append_array_items(std::string& out, std::string_view array_text) {
    size_t open = array_text.find('[');
    size_t close = array_text.rfind(']');
    if (open == std::string_view::npos || close == std::string_view::npos || close <= open) return;
    std::string_view inner = array_text.substr(open + 1, close - open - 1);
    size_t first = inner.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return;
    if (out.size() > 1) out.push_back(',');
    out.append(inner.substr(first));
}

// One plugin instance (source, transform or sink), destroyed exactly once.
class Instance {
public:
    Instance(const ComponentConfig& component, const PipeConfig& pipe, const NodeConfig& config, HostContext& ctx)
        : component_(component) {
        std::string system_json;
        if (!component.system_id.empty()) {
            if (const SystemConfig* system = config.system(component.system_id)) system_json = to_json(*system->effective);
        }
        std::string node_json = config.metadata().IsObject() ? to_json(config.metadata()) : std::string();
        // $SECRET(name) is resolved only here, for the plugin: values never reach config answers or logs.
        std::string config_json;
        try {
            config_json = substitute_secrets(component.config_json, ctx.secrets);
            if (!system_json.empty()) system_json = substitute_secrets(system_json, ctx.secrets);
        } catch (const std::exception& e) {
            throw std::runtime_error("cannot create " + std::string(kind_name(component.component->kind)) + " '" +
                                     component.type + "': " + e.what());
        }
        sluice_create_args args{sizeof(sluice_create_args), 0, config_json.c_str(),
                                system_json.empty() ? nullptr : system_json.c_str(), pipe.id.c_str(),
                                node_json.empty() ? nullptr : node_json.c_str()};
        const ComponentInfo& info = *component.component;
        switch (info.kind) {
            case SLUICE_KIND_SOURCE: handle_ = info.source()->create(&args, &ctx); break;
            case SLUICE_KIND_TRANSFORM: handle_ = info.transform()->create(&args, &ctx); break;
            case SLUICE_KIND_SINK: handle_ = info.sink()->create(&args, &ctx); break;
            default: break;
        }
        if (!handle_) {
            throw std::runtime_error("cannot create " + std::string(kind_name(info.kind)) + " '" + component.type +
                                     "'" + (ctx.error().empty() ? std::string() : ": " + ctx.error()));
        }
    }
    ~Instance() {
        const ComponentInfo& info = *component_.component;
        switch (info.kind) {
            case SLUICE_KIND_SOURCE: info.source()->destroy(handle_); break;
            case SLUICE_KIND_TRANSFORM: info.transform()->destroy(handle_); break;
            case SLUICE_KIND_SINK: info.sink()->destroy(handle_); break;
            default: break;
        }
    }
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    void* handle() const { return handle_; }
    const ComponentInfo& info() const { return *component_.component; }
    const std::string& type() const { return component_.type; }

private:
    const ComponentConfig& component_;
    void* handle_ = nullptr;
};

class Run;

// Base for the contexts of one run: shared cancellation, secrets, store, logging.
class RunContext : public HostContext {
public:
    explicit RunContext(Run& run);
    bool is_cancelled() override;

protected:
    Run& run_;
};

// A transform's context: collects whatever it emits into one array for the next stage.
class CollectingContext : public RunContext {
public:
    using RunContext::RunContext;
    int32_t emit_batch(const sluice_batch& batch) override {
        if (batch.format != SLUICE_FORMAT_JSON_ARRAY) {
            set_error("unsupported batch format " + std::to_string(batch.format));
            return SLUICE_ERROR;
        }
        append_array_items(output, std::string_view(batch.data, batch.size));
        count += batch.count;
        return SLUICE_OK;
    }
    std::string output = "[";
    size_t count = 0;
};

// The sink's context: a dataset write carries the pipe state (exactly-once) and the run id.
class SinkContext : public RunContext {
public:
    using RunContext::RunContext;
    int32_t write_dataset(std::string_view dataset, const sluice_batch& batch, std::string_view options_json,
                          std::string& result) override;
    int32_t dataset_command(std::string_view command_json, std::string& result) override;

    const Json* pending_state = nullptr;  // state to commit with the next dataset write
    bool state_committed = false;
};

// The source's context: each emitted batch runs through the rest of the pipe before returning.
class SourceContext : public RunContext {
public:
    using RunContext::RunContext;
    int32_t emit_batch(const sluice_batch& batch) override;
    void set_continuation(std::string_view token) override;
};

class Run {
public:
    Run(const PipeConfig& pipe, const NodeConfig& config, DatasetStore& store, const SecretResolver& secrets,
        const RunOptions& options, RunResult& result)
        : pipe(pipe), config(config), store(store), secrets(secrets), options(options), result(result) {}

    bool cancelled() const { return options.cancel && options.cancel->load(); }

    // The pipe state value with `last_seen` = token.
    JsonDocument state_with(const std::string& token) {
        JsonDocument state(rapidjson::kObjectType);
        auto& a = state.GetAllocator();
        state.AddMember("last_seen", Json(token.c_str(), a), a);
        state.AddMember("updated_us", now_us(), a);
        state.AddMember("run_id", Json(result.run_id.c_str(), a), a);
        return state;
    }

    void commit_token(const std::string& token) {
        JsonDocument state = state_with(token);
        if (breaker.enabled) {
            // Held with the staged writes: the offset moves exactly when they become visible.
            JsonDocument options(rapidjson::kObjectType);
            auto& a = options.GetAllocator();
            Json held(rapidjson::kObjectType);
            held.AddMember("key", Json(PipeRunner::state_key(pipe.id).c_str(), a), a);
            held.AddMember("value", Json(state, a), a);
            options.AddMember("stage", true, a);
            options.AddMember("state", held, a);
            store.write(breaker.dataset, "[]", 0, to_json(options));
        } else {
            store.state_put(PipeRunner::state_key(pipe.id), state);
        }
        result.last_seen = token;
    }

    // Trips the sink dataset's circuit breaker: what this run staged stays staged (invisible)
    // until an operator commits or rolls it back, and the pipe does not run meanwhile.
    void trip(const std::string& reason, int64_t staged) {
        breaker.tripped = true;
        fail(reason);
        JsonDocument cmd(rapidjson::kObjectType);
        auto& a = cmd.GetAllocator();
        cmd.AddMember("op", "stage_trip", a);
        cmd.AddMember("dataset", Json(breaker.dataset.c_str(), a), a);
        Json info(rapidjson::kObjectType);
        info.AddMember("pipe", Json(pipe.id.c_str(), a), a);
        info.AddMember("run_id", Json(result.run_id.c_str(), a), a);
        info.AddMember("reason", Json(reason.c_str(), a), a);
        info.AddMember("staged", staged, a);
        if (breaker.enabled) info.AddMember("limit", breaker.limit, a);
        info.AddMember("tripped_us", now_us(), a);
        cmd.AddMember("info", info, a);
        store.command(cmd);
    }

    // After a staged write: trips the breaker when the run's staged versions exceed the limit.
    // Returns false when it tripped.
    bool check_breaker(int64_t staged) {
        if (staged <= breaker.limit) return true;
        trip("circuit breaker tripped: this run would change more than " + std::to_string(breaker.limit) +
                 " entities of dataset '" + breaker.dataset + "' (" + breaker.rule +
                 "); its writes are staged and not visible. Commit or roll them back with POST /api/datasets/" +
                 breaker.dataset + " operation=commit-circuit-breaker or operation=rollback-circuit-breaker",
             staged);
        return false;
    }

    // Sends one batch through the transforms and into the sink. Returns a status; on failure
    // `failure` holds the reason.
    int32_t process(std::string_view batch_json, size_t count, const char* continuation) {
        result.entities_read += count;
        // Numbers the JSON library would crash on or misread (sluice/entity.hpp) fail the run
        // here, once per source batch, before any transform, sink or storage parses the text.
        if (const std::string_view bad = sluice::find_unsafe_json_number(batch_json); !bad.empty()) {
            fail("source ('" + pipe.source.type + "') emitted an unsupported number at byte " +
                 std::to_string(bad.data() - batch_json.data()) + " of a batch (" +
                 sluice::unsafe_json_number_reason(bad) + ")");
            return SLUICE_ERROR;
        }
        // The batch as it stands: the source's text itself until a transform (or dropping
        // `_filtered` entities) produces a new one into `owned` — no copy of the source's batch.
        std::string owned;
        std::string_view current = batch_json;
        size_t current_count = count;
        const size_t transform_count = evaluate_consumer ? evaluate_transforms : transforms.size();
        for (size_t i = 0; i < transform_count; ++i) {
            CollectingContext ctx(*this);
            ctx.log_source = "pipe:" + pipe.id;
            sluice_batch in{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, current.data(), current.size(),
                            current_count, nullptr};
            int32_t status = transforms[i]->info().transform()->transform(transforms[i]->handle(), &ctx, &in);
            if (status != SLUICE_OK) {
                // DTL `trip!` (its message starts "trip!: "): the run fails with that message and
                // the sink dataset's circuit breaker trips, keeping whatever the run staged.
                if (ctx.error().rfind("trip!: ", 0) == 0) {
                    const std::string message = ctx.error() + " (transform " + std::to_string(i) + ", '" +
                                                transforms[i]->type() + "')";
                    fail(message);
                    if (!breaker.dataset.empty()) trip(message, breaker.staged);
                    return status;
                }
                fail("transform " + std::to_string(i) + " ('" + transforms[i]->type() + "') failed: " +
                     (ctx.error().empty() ? "status " + std::to_string(status) : ctx.error()));
                return status;
            }
            ctx.output.push_back(']');
            owned = std::move(ctx.output);
            current = owned;
            current_count = ctx.count;
        }
        if ((!sink_is_dataset || evaluate_drop_filtered) && current.find("\"_filtered\"") != std::string_view::npos) {
            owned = drop_filtered(current);
            current = owned;
        }
        if (evaluate_consumer) {
            if (!(*evaluate_consumer)(current)) {
                stopped_by_consumer = true;
                return SLUICE_ERROR;
            }
            return SLUICE_OK;
        }

        const bool has_entities = current.find('{') != std::string::npos;
        const std::string token = continuation ? continuation : "";
        if (has_entities) {
            SinkContext ctx(*this);
            ctx.log_source = "pipe:" + pipe.id;
            JsonDocument state;
            if (continuation) {
                state = state_with(token);
                ctx.pending_state = &state;
            }
            sluice_batch out{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, current.data(), current.size(),
                             current_count, nullptr};
            int32_t status = write_with_retries(ctx, out);
            if (status != SLUICE_OK && breaker.tripped) return status;  // not the entities' fault
            if (status != SLUICE_OK && current_count > 1 && !pipe.pump.dead_letter_dataset.empty()) {
                // Find the entities the sink rejects: one at a time, the rest go through.
                ctx.pending_state = nullptr;
                status = write_singly(current);
                if (status == SLUICE_OK && continuation) commit_token(token);
            } else if (status != SLUICE_OK && current_count == 1 && !pipe.pump.dead_letter_dataset.empty()) {
                status = dead_letter(current, ctx.error());
                if (status == SLUICE_OK && continuation) commit_token(token);
            }
            if (status != SLUICE_OK) {
                fail("sink ('" + sink->type() + "') failed: " +
                     (ctx.error().empty() ? "status " + std::to_string(status) : ctx.error()));
                return status;
            }
            result.entities_to_sink += current_count;
            if (pipe.pump.track_dead_letters) resolve_dead_letters(current);
            if (ctx.state_committed) {
                result.last_seen = token;
            } else if (continuation) {
                commit_token(token);
            }
        } else if (continuation) {
            commit_token(token);
        }
        rejected_now.clear();
        if (options.on_progress) options.on_progress(result.entities_read);
        return SLUICE_OK;
    }

    // track_dead_letters: the entities of a batch the sink took (all but those just rejected)
    // delete their dead letters — one lookup per batch, one write when any are found.
    void resolve_dead_letters(std::string_view batch_json) {
        JsonDocument batch = parse_json(batch_json, "batch");
        JsonDocument ids(rapidjson::kArrayType);
        for (const Json& e : batch.GetArray()) {
            const Json* id = find_member(e, "_id");
            if (id && id->IsString() && !rejected_now.count(std::string(as_view(*id))))
                ids.PushBack(Json(*id, ids.GetAllocator()), ids.GetAllocator());
        }
        if (ids.Empty()) return;
        JsonDocument found = parse_json(store.lookup(pipe.pump.dead_letter_dataset, "_id", to_json(ids)), "dead letters");
        sluice::BatchBuilder resolved;
        for (const Json& letter : found.GetArray()) {
            JsonDocument tombstone(rapidjson::kObjectType);
            auto& a = tombstone.GetAllocator();
            tombstone.AddMember("_id", Json(letter["_id"], a), a);
            tombstone.AddMember("_deleted", true, a);
            tombstone.AddMember("resolved_by_run", Json(result.run_id.c_str(), a), a);
            resolved.add(tombstone);
        }
        if (!resolved.empty()) store.write(pipe.pump.dead_letter_dataset, resolved.text(), resolved.count());
    }

    // One sink write, retried (with back-off) while the sink answers RETRY.
    int32_t write_with_retries(SinkContext& ctx, const sluice_batch& out) {
        int32_t status = SLUICE_RETRY;
        for (int attempt = 0; attempt <= kBatchRetries && status == SLUICE_RETRY; ++attempt) {
            if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
            ctx.clear_error();
            status = sink->info().sink()->write(sink->handle(), &ctx, &out);
        }
        return status;
    }

    // After a failed batch: entity by entity, each rejected one to the dead-letter dataset.
    // Rewriting the ones that did go through is harmless (the write rule finds them unchanged).
    int32_t write_singly(std::string_view batch_json) {
        JsonDocument entities = parse_json(batch_json, "batch");
        for (const Json& entity : entities.GetArray()) {
            const std::string one = "[" + to_json(entity) + "]";
            SinkContext ctx(*this);
            ctx.log_source = "pipe:" + pipe.id;
            sluice_batch out{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, one.data(), one.size(), 1, nullptr};
            if (write_with_retries(ctx, out) == SLUICE_OK) continue;
            if (breaker.tripped) return SLUICE_ERROR;  // staged, then over the limit: not a rejection
            if (int32_t status = dead_letter(one, ctx.error()); status != SLUICE_OK) return status;
        }
        return SLUICE_OK;
    }

    // Records rejected entities (a one-entity batch) in the pipe's dead-letter dataset.
    int32_t dead_letter(std::string_view one_entity_batch, const std::string& error) {
        JsonDocument batch = parse_json(one_entity_batch, "batch");
        sluice::BatchBuilder letters;
        for (const Json& entity : batch.GetArray()) {
            JsonDocument letter(rapidjson::kObjectType);
            auto& a = letter.GetAllocator();
            const Json* id = find_member(entity, "_id");
            const std::string entity_id = id && id->IsString() ? std::string(as_view(*id)) : to_json(entity);
            letter.AddMember("_id", Json(entity_id.c_str(), a), a);
            letter.AddMember("pipe", Json(pipe.id.c_str(), a), a);
            letter.AddMember("run_id", Json(result.run_id.c_str(), a), a);
            letter.AddMember("dead", true, a);
            letter.AddMember("error", Json(security::redact(error).c_str(), a), a);
            letter.AddMember("entity", Json(entity, a), a);
            letter.AddMember("ts", now_us(), a);
            letters.add(letter);
            rejected_now.insert(entity_id);
        }
        try {
            store.write(pipe.pump.dead_letter_dataset, letters.text(), letters.count());
        } catch (const std::exception& e) {
            fail(std::string("cannot write the dead-letter dataset: ") + e.what());
            return SLUICE_ERROR;
        }
        result.dead_letters += letters.count();
        return SLUICE_OK;
    }

    static std::string drop_filtered(std::string_view batch_json) {
        JsonDocument doc = parse_json(batch_json, "batch");
        sluice::BatchBuilder kept;
        for (const Json& e : doc.GetArray()) {
            const Json* filtered = find_member(e, "_filtered");
            if (!(filtered && filtered->IsBool() && filtered->GetBool())) kept.add(e);
        }
        return std::string(kept.text());
    }

    void fail(const std::string& why) {
        if (failure.empty()) failure = why;
    }

    static constexpr int kBatchRetries = 3;

    // The circuit breaker of the sink dataset (reference §2.9) for this run.
    struct Breaker {
        std::string dataset;  // the sink's dataset ("" when the sink is not a dataset sink)
        bool enabled = false; // this run's writes to it are staged
        int64_t limit = 0;    // more staged versions than this trips it
        std::string rule;     // how the limit was computed, for the message
        int64_t staged = 0;   // versions staged so far
        bool tripped = false;
        bool populated = false;  // the dataset was populated when the run started
    };
    Breaker breaker;
    JsonDocument pending_deps;  // dependency offsets held until the staged writes are committed
    std::unordered_set<std::string> rejected_now;  // ids dead-lettered from the batch in hand

    const PipeConfig& pipe;
    const NodeConfig& config;
    DatasetStore& store;
    const SecretResolver& secrets;
    const RunOptions& options;
    RunResult& result;
    // Contexts given to `create` must outlive their instances (declared first, destroyed last).
    std::vector<std::unique_ptr<HostContext>> create_contexts;
    std::vector<std::unique_ptr<Instance>> transforms;
    std::unique_ptr<Instance> sink;
    bool sink_is_dataset = false;
    std::string failure;
    std::string pending_continuation;  // set by set_continuation outside a batch
    bool has_pending_continuation = false;
    // Evaluation (PipeRunner::evaluate): batches go to the consumer after this many transforms.
    const std::function<bool(std::string_view)>* evaluate_consumer = nullptr;
    size_t evaluate_transforms = 0;
    bool evaluate_drop_filtered = false;
    bool stopped_by_consumer = false;
};

RunContext::RunContext(Run& run) : run_(run) {
    store = &run.store;
    secrets = run.secrets;
}

bool RunContext::is_cancelled() { return run_.cancelled(); }

int32_t SinkContext::write_dataset(std::string_view dataset, const sluice_batch& batch, std::string_view options_json,
                                   std::string& result) {
    JsonDocument options = parse_json(options_json.empty() ? "{}" : options_json, "write options");
    if (!options.IsObject()) options.SetObject();
    auto& a = options.GetAllocator();
    if (pending_state && !state_committed) {
        Json state(rapidjson::kObjectType);
        state.AddMember("key", Json(PipeRunner::state_key(run_.pipe.id).c_str(), a), a);
        state.AddMember("value", Json(*pending_state, a), a);
        options.RemoveMember("state");
        options.AddMember("state", state, a);
    }
    if (run_.result.full) {
        options.RemoveMember("run");
        options.AddMember("run", Json(run_.result.run_id.c_str(), a), a);
    }
    const bool staged = run_.breaker.enabled && dataset == run_.breaker.dataset;
    if (staged) {
        options.RemoveMember("stage");
        options.AddMember("stage", true, a);
    }
    std::string text = to_json(options);
    int32_t status = HostContext::write_dataset(dataset, batch, text, result);
    if (status == SLUICE_OK && pending_state) state_committed = true;
    if (status == SLUICE_OK && !result.empty()) {
        JsonDocument counts = parse_json(result, "write result");
        run_.result.changes += static_cast<uint64_t>(int_or(counts, "written", 0));
        run_.result.unchanged += static_cast<uint64_t>(int_or(counts, "unchanged", 0));
        if (staged) {
            run_.breaker.staged = int_or(counts, "staged", 0);
            if (!run_.check_breaker(run_.breaker.staged)) {
                set_error(run_.failure);
                return SLUICE_ERROR;
            }
        }
    }
    return status;
}

int32_t SinkContext::dataset_command(std::string_view command_json, std::string& result) {
    JsonDocument command = parse_json(command_json, "dataset command");
    if (command.IsObject() && string_or(command, "op", "") == "delete_unseen") {
        // Deletion tracking is only meaningful for the ids this run saw: the run id is the kernel's.
        if (!run_.result.full) {
            result = "{\"deleted\":0}";
            return SLUICE_OK;
        }
        command.RemoveMember("run");
        command.AddMember("run", Json(run_.result.run_id.c_str(), command.GetAllocator()), command.GetAllocator());
        // Deletion tracking counts against the circuit breaker like any other change.
        const bool staged = run_.breaker.enabled && string_or(command, "dataset", "") == run_.breaker.dataset;
        if (staged) command.AddMember("stage", true, command.GetAllocator());
        int32_t status = HostContext::dataset_command(to_json(command), result);
        if (status == SLUICE_OK && !result.empty()) {
            JsonDocument counts = parse_json(result, "delete_unseen result");
            run_.result.changes += static_cast<uint64_t>(int_or(counts, "deleted", 0));
            if (staged && int_or(counts, "deleted", 0) > 0) {
                run_.breaker.staged = int_or(counts, "staged", run_.breaker.staged);
                if (!run_.check_breaker(run_.breaker.staged)) {
                    set_error(run_.failure);
                    return SLUICE_ERROR;
                }
            }
        }
        return status;
    }
    return HostContext::dataset_command(command_json, result);
}

int32_t SourceContext::emit_batch(const sluice_batch& batch) {
    if (run_.cancelled()) {
        run_.fail("the run was stopped");
        set_error("the run was stopped");
        return SLUICE_ERROR;
    }
    if (batch.format != SLUICE_FORMAT_JSON_ARRAY) {
        set_error("unsupported batch format " + std::to_string(batch.format));
        return SLUICE_ERROR;
    }
    size_t count = batch.count;
    if (count == 0 && batch.size > 2) {
        // The source did not count: count the top-level entities so statistics stay honest.
        JsonDocument doc = parse_json(std::string_view(batch.data, batch.size), "source batch");
        count = doc.IsArray() ? doc.Size() : 0;
    }
    int32_t status = run_.process(std::string_view(batch.data, batch.size), count, batch.continuation);
    if (status != SLUICE_OK) set_error(run_.failure);
    return status;
}

void SourceContext::set_continuation(std::string_view token) {
    run_.pending_continuation = std::string(token);
    run_.has_pending_continuation = true;
}

// Receives a plugin's answer text.
int32_t append_text(void* user, const char* data, size_t size) {
    static_cast<std::string*>(user)->append(data, size);
    return 0;
}

// Dependency tracking (DTL hops): the transforms name the datasets they join; entities of those
// that changed since the last run select, through the transform's `dependents` answer and
// indexed lookups, the main-source entities to process again. Offsets per joined dataset are
// kept in the pipe's state "pipe:<id>:deps". Only for pipes reading a dataset.
void track_dependencies(Run& run) {
    const PipeConfig& pipe = run.pipe;
    if (pipe.source.type != "dataset" || pipe.input_datasets.size() != 1 || run.cancelled()) return;
    const std::string& main_dataset = pipe.input_datasets[0];
    constexpr size_t kDescribeEnd = offsetof(sluice_transform_vtable, dependents) + sizeof(void*);

    const std::string state_key = PipeRunner::state_key(pipe.id) + ":deps";
    JsonDocument offsets = run.store.state_get(state_key);
    if (!offsets.IsObject()) offsets.SetObject();
    bool changed_offsets = false;

    for (size_t t = 0; t < run.transforms.size(); ++t) {
        Instance& instance = *run.transforms[t];
        const sluice_transform_vtable* vt = instance.info().transform();
        if (vt->struct_size < kDescribeEnd || !vt->describe || !vt->dependents) continue;
        RunContext ctx(run);
        ctx.log_source = "pipe:" + pipe.id;
        std::string described;
        if (vt->describe(instance.handle(), &ctx, &append_text, &described) != SLUICE_OK || described.empty()) continue;
        JsonDocument description = parse_json(described, "transform description");
        const Json* deps = find_member(description, "dependencies");
        if (!deps || !deps->IsArray()) continue;
        for (const Json& dep : deps->GetArray()) {
            const std::string dataset = string_or(dep, "dataset", "");
            if (dataset.empty() || dataset == main_dataset) continue;
            const Json* stored = find_member(offsets, dataset);
            if (!stored || run.result.full) {
                // First run (or a full one, which reprocessed everything): start from the end.
                JsonDocument info = run.store.command("{\"op\":\"info\",\"dataset\":" + to_json(Json(dataset.c_str(), offsets.GetAllocator())) + "}");
                const int64_t last = info.IsObject() ? int_or(info, "last_offset", -1) : -1;
                offsets.RemoveMember(dataset.c_str());
                offsets.AddMember(Json(dataset.c_str(), offsets.GetAllocator()), Json(last), offsets.GetAllocator());
                changed_offsets = true;
                continue;
            }
            int64_t since = stored->IsInt64() ? stored->GetInt64() : -1;
            // Pages of changed joined entities; never the whole dataset in memory.
            constexpr int kPage = 1000;
            while (!run.cancelled()) {
                JsonDocument query(rapidjson::kObjectType);
                auto& qa = query.GetAllocator();
                query.AddMember("dataset", Json(dataset.c_str(), qa), qa);
                if (since >= 0) query.AddMember("since", since, qa);
                query.AddMember("limit", kPage, qa);
                query.AddMember("history", true, qa);
                query.AddMember("deleted", true, qa);
                std::string page = "[";
                run.store.read(to_json(query), [&](std::string_view chunk) {
                    size_t open = chunk.find('['), close = chunk.rfind(']');
                    if (open == std::string_view::npos || close == std::string_view::npos || close <= open) return true;
                    std::string_view inner = chunk.substr(open + 1, close - open - 1);
                    if (inner.find_first_not_of(" \t\r\n") == std::string_view::npos) return true;
                    if (page.size() > 1) page.push_back(',');
                    page.append(inner);
                    return true;
                });
                page.push_back(']');
                JsonDocument changed = parse_json(page, "changed joined entities");
                if (changed.Empty()) break;
                since = int_or(changed[changed.Size() - 1], "_updated", since);
                sluice_batch batch{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, page.data(), page.size(),
                                   changed.Size(), nullptr};
                std::string answer;
                RunContext dctx(run);
                if (vt->dependents(instance.handle(), &dctx, dataset.c_str(), &batch, &append_text, &answer) != SLUICE_OK)
                    throw std::runtime_error("dependency tracking of '" + dataset + "' failed: " + dctx.error());
                JsonDocument lookups = parse_json(answer.empty() ? "[]" : answer, "dependents answer");
                for (const Json& l : lookups.GetArray()) {
                    const std::string property = string_or(l, "property", "");
                    const Json* values = find_member(l, "values");
                    if (property.empty() || !values || !values->IsArray() || values->Empty()) continue;
                    const std::string found = run.store.lookup(main_dataset, property, to_json(*values));
                    JsonDocument entities = parse_json(found, "lookup result");
                    if (!entities.IsArray() || entities.Empty()) continue;
                    // Reprocessed without a continuation token: the source's position is unchanged.
                    if (run.process(found, entities.Size(), nullptr) != SLUICE_OK)
                        throw std::runtime_error(run.failure);
                }
                if (changed.Size() < static_cast<rapidjson::SizeType>(kPage)) break;
            }
            offsets.RemoveMember(dataset.c_str());
            offsets.AddMember(Json(dataset.c_str(), offsets.GetAllocator()), Json(since), offsets.GetAllocator());
            changed_offsets = true;
        }
    }
    if (!changed_offsets) return;
    if (run.breaker.enabled) run.pending_deps.CopyFrom(offsets, run.pending_deps.GetAllocator());
    else run.store.state_put(state_key, offsets);
}

// Reads the sink dataset's breaker state before a run. Returns the refusal when its circuit
// breaker is tripped; discards a stage left by an interrupted run; enables staging when the
// sink sets a threshold and the dataset is populated (reference §2.9).
std::string prepare_breaker(Run& run, const PushedInput* pushed) {
    const PipeConfig& pipe = run.pipe;
    if (!pipe.sink.component->has(SLUICE_CAP_DATASET_SINK) || pipe.output_dataset.empty()) return {};
    Run::Breaker& b = run.breaker;
    b.dataset = pipe.output_dataset;
    JsonDocument cmd(rapidjson::kObjectType);
    cmd.AddMember("op", "info", cmd.GetAllocator());
    cmd.AddMember("dataset", Json(b.dataset.c_str(), cmd.GetAllocator()), cmd.GetAllocator());
    JsonDocument info = run.store.command(cmd);
    if (!info.IsObject()) info.SetObject();
    if (const Json* tripped = find_member(info, "circuit_breaker"); tripped && tripped->IsObject()) {
        return "the circuit breaker of dataset '" + b.dataset + "' is tripped (" + string_or(*tripped, "reason", "") +
               "); the pipe does not run until it is resolved with POST /api/datasets/" + b.dataset +
               " operation=commit-circuit-breaker or operation=rollback-circuit-breaker";
    }
    const bool continuing = pushed && !pushed->first;  // a later request of a staged full sync
    if (int_or(info, "staged", 0) > 0 && !continuing) {
        // Another pipe writing the same dataset may be staging right now: its stage is not ours
        // to discard (that would lose the batches whose offset it holds).
        for (const auto& [id, other] : run.config.pipes()) {
            if (id != pipe.id && other.output_dataset == b.dataset)
                return "dataset '" + b.dataset + "' holds writes staged by another pipe's run ('" + id +
                       "' also writes it); if no run of it is in progress, resolve them with POST /api/datasets/" +
                       b.dataset + " operation=commit-circuit-breaker or operation=rollback-circuit-breaker";
        }
        // Staged by a run that never finished (the node stopped mid-run): its offset was held
        // with it, so discarding it loses nothing; this run redoes the work.
        cmd.RemoveMember("op");
        cmd.AddMember("op", "stage_rollback", cmd.GetAllocator());
        run.store.command(cmd);
    }
    b.populated = bool_or(info, "populated", false);
    JsonDocument sink = parse_json(pipe.sink.config_json, "sink config");
    const Json* factor = find_member(sink, "circuit_breaker_threshold_factor");
    const Json* count = find_member(sink, "circuit_breaker_threshold_count");
    const bool has_factor = factor && factor->IsNumber(), has_count = count && count->IsInt64();
    if ((!has_factor && !has_count) || !b.populated) return {};
    // A fraction of the unique ids (deleted ones included) and/or a count: the larger applies.
    const int64_t ids = int_or(info, "count", 0) + int_or(info, "deleted", 0);
    b.limit = 0;
    if (has_factor) {
        b.limit = static_cast<int64_t>(factor->GetDouble() * static_cast<double>(ids));
        b.rule = "circuit_breaker_threshold_factor " + to_json(*factor) + " of " + std::to_string(ids) + " ids";
    }
    if (has_count && count->GetInt64() >= b.limit) {
        b.limit = count->GetInt64();
        b.rule = "circuit_breaker_threshold_count " + std::to_string(b.limit);
    }
    b.enabled = true;
    if (continuing) b.staged = int_or(info, "staged", 0);
    return {};
}

// Sesam's set_initial_offset (default if-source-populated): after a completed run the sink
// dataset is marked populated once every dataset the pipe reads is (a pipe reading no dataset
// — embedded, a receiver — counts as reading a populated source); `never` never marks it.
void mark_populated(Run& run) {
    const PipeConfig& pipe = run.pipe;
    if (run.breaker.dataset.empty() || run.breaker.populated) return;  // nothing to do: no storage call
    JsonDocument sink = parse_json(pipe.sink.config_json, "sink config");
    const std::string policy = string_or(sink, "set_initial_offset", "if-source-populated");
    if (policy == "never") return;
    auto info_of = [&](const std::string& dataset) {
        JsonDocument cmd(rapidjson::kObjectType);
        cmd.AddMember("op", "info", cmd.GetAllocator());
        cmd.AddMember("dataset", Json(dataset.c_str(), cmd.GetAllocator()), cmd.GetAllocator());
        return run.store.command(cmd);
    };
    if (policy == "if-source-populated") {
        for (const std::string& input : pipe.input_datasets) {
            JsonDocument info = info_of(input);
            if (!info.IsObject() || !bool_or(info, "populated", false)) return;
        }
    }
    JsonDocument cmd(rapidjson::kObjectType);
    cmd.AddMember("op", "set_populated", cmd.GetAllocator());
    cmd.AddMember("dataset", Json(run.breaker.dataset.c_str(), cmd.GetAllocator()), cmd.GetAllocator());
    run.store.command(cmd);
}

// Makes a run's staged writes visible (with the offset held with them) and then the dependency
// offsets held back meanwhile.
void commit_stage(Run& run) {
    JsonDocument cmd(rapidjson::kObjectType);
    cmd.AddMember("op", "stage_commit", cmd.GetAllocator());
    cmd.AddMember("dataset", Json(run.breaker.dataset.c_str(), cmd.GetAllocator()), cmd.GetAllocator());
    run.store.command(cmd);
    if (run.pending_deps.IsObject())
        run.store.state_put(PipeRunner::state_key(run.pipe.id) + ":deps", run.pending_deps);
}

void write_execution_entry(DatasetStore& store, const std::string& pipe_id, const RunResult& r, const char* event) {
    JsonDocument entry(rapidjson::kObjectType);
    auto& a = entry.GetAllocator();
    std::string id = r.run_id + ":" + event;
    entry.AddMember("_id", Json(id.c_str(), a), a);
    entry.AddMember("event", Json(event, a), a);
    entry.AddMember("pipe", Json(pipe_id.c_str(), a), a);
    entry.AddMember("run_id", Json(r.run_id.c_str(), a), a);
    entry.AddMember("sync_type", Json(r.full ? "full" : "incremental", a), a);
    entry.AddMember("started_us", r.started_us, a);
    if (std::string_view(event) != "pump-started") {
        entry.AddMember("ended_us", r.ended_us, a);
        Json metrics(rapidjson::kObjectType);
        metrics.AddMember("entities_last_run", r.entities_read, a);
        metrics.AddMember("entities_to_sink", r.entities_to_sink, a);
        metrics.AddMember("changes_last_run", r.changes, a);
        metrics.AddMember("unchanged_last_run", r.unchanged, a);
        metrics.AddMember("dead_letters_last_run", r.dead_letters, a);
        entry.AddMember("metrics", metrics, a);
        entry.AddMember("last_seen", Json(r.last_seen.c_str(), a), a);
    }
    if (!r.error.empty()) entry.AddMember("original_error_message", Json(r.error.c_str(), a), a);
    sluice::BatchBuilder batch;
    batch.add(entry);
    store.write(PipeRunner::execution_dataset(pipe_id), batch.text(), 1);
}

}  // namespace

RunResult PipeRunner::run(const PipeConfig& pipe, const NodeConfig& config, const RunOptions& options) {
    RunResult result;
    result.run_id = new_run_id();
    result.started_us = now_us();

    Run run(pipe, config, store_, secrets_, options, result);
    HostContext setup_ctx;
    setup_ctx.log_source = "pipe:" + pipe.id;
    setup_ctx.store = &store_;
    setup_ctx.secrets = secrets_;

    try {
        const PushedInput* pushed = options.pushed;
        if (!pushed && (pipe.source.component->has(SLUICE_CAP_PUSH_ONLY) ||
                        pipe.sink.component->has(SLUICE_CAP_PUBLISHER))) {
            // A receiver: entities arrive with POST /api/receivers. A pulled run has nothing to
            // read, and must not run deletion tracking over everything that was pushed. A
            // publisher renders only when pulled (GET /api/publishers): nothing to run either.
            result.ok = true;
            result.ended_us = now_us();
            return result;
        }
        if (pushed) {
            // A receiver request: no source read, no continuation token; a full sync sequence
            // shares one run id so the last request can delete what the sequence did not send.
            result.full = pushed->full;
            if (!pushed->run_id.empty()) result.run_id = pushed->run_id;
        } else {
            JsonDocument state = store_.state_get(state_key(pipe.id));
            if (!options.force_full && state.IsObject()) result.since = string_or(state, "last_seen", "");
            result.full = result.since.empty();
        }
        result.last_seen = result.since;
        if (std::string refusal = prepare_breaker(run, pushed); !refusal.empty()) {
            // No execution-log entries: the run never started (the scheduler keeps asking).
            result.error = refusal;
            result.refused = true;
            result.ended_us = now_us();
            return result;
        }
        write_execution_entry(store_, pipe.id, result, "pump-started");

        SourceContext source_ctx(run);
        source_ctx.log_source = "pipe:" + pipe.id;
        Instance source(pipe.source, pipe, config, source_ctx);
        for (const ComponentConfig& t : pipe.transforms) {
            auto& ctx = run.create_contexts.emplace_back(std::make_unique<RunContext>(run));
            ctx->log_source = "pipe:" + pipe.id;
            run.transforms.push_back(std::make_unique<Instance>(t, pipe, config, *ctx));
        }
        auto& sink_ctx = run.create_contexts.emplace_back(std::make_unique<SinkContext>(run));
        sink_ctx->log_source = "pipe:" + pipe.id;
        run.sink = std::make_unique<Instance>(pipe.sink, pipe, config, *sink_ctx);
        run.sink_is_dataset = run.sink->info().has(SLUICE_CAP_DATASET_SINK);

        const std::string run_json = std::string("{\"full\":") + (result.full ? "true" : "false") + "}";
        const sluice_sink_vtable* sink_vt = run.sink->info().sink();
        if (sink_vt->begin_run && (!pushed || pushed->first)) {
            SinkContext ctx(run);
            if (int32_t status = sink_vt->begin_run(run.sink->handle(), &ctx, run_json.c_str()); status != SLUICE_OK)
                throw std::runtime_error("sink begin_run failed: " + ctx.error());
        }

        int32_t status = SLUICE_OK;
        if (pushed) {
            // Re-batched to the pipe's batch size, like a source would emit them.
            JsonDocument entities = parse_json(pushed->batch_json, "pushed entities");
            if (!entities.IsArray()) throw std::runtime_error("pushed entities must be a JSON array");
            sluice::BatchBuilder batch;
            for (const Json& e : entities.GetArray()) {
                batch.add(e);
                if (batch.count() >= pipe.batch_size) {
                    status = run.process(batch.text(), batch.count(), nullptr);
                    batch.clear();
                    if (status != SLUICE_OK) break;
                }
            }
            if (status == SLUICE_OK && !batch.empty()) status = run.process(batch.text(), batch.count(), nullptr);
        } else {
            status = source.info().source()->read(source.handle(), &source_ctx,
                                                  result.since.empty() ? nullptr : result.since.c_str(),
                                                  pipe.batch_size);
        }
        if (status != SLUICE_OK || !run.failure.empty()) {
            std::string why = !run.failure.empty() ? run.failure
                              : source_ctx.error().empty() ? "source failed with status " + std::to_string(status)
                                                           : "source ('" + source.type() + "') failed: " + source_ctx.error();
            throw std::runtime_error(why);
        }
        if (run.has_pending_continuation) run.commit_token(run.pending_continuation);
        if (!pushed) track_dependencies(run);

        if (sink_vt->end_run && (!pushed || pushed->last)) {
            SinkContext ctx(run);
            const std::string end_json =
                std::string("{\"full\":") + (result.full ? "true" : "false") + ",\"completed\":true}";
            if (int32_t s = sink_vt->end_run(run.sink->handle(), &ctx, end_json.c_str()); s != SLUICE_OK)
                throw std::runtime_error(run.breaker.tripped ? run.failure : "sink end_run failed: " + ctx.error());
        }
        if (!pushed || pushed->last) {
            if (run.breaker.enabled) commit_stage(run);
            mark_populated(run);
        }
        result.ok = true;
    } catch (const std::exception& e) {
        result.ok = false;
        // Redacted: stored in the execution log and answered by the API.
        result.error = security::redact(run.breaker.tripped && !run.failure.empty() ? run.failure : e.what());
        if (run.sink && run.sink->info().sink()->end_run) {
            SinkContext ctx(run);
            const std::string end_json =
                std::string("{\"full\":") + (result.full ? "true" : "false") + ",\"completed\":false}";
            run.sink->info().sink()->end_run(run.sink->handle(), &ctx, end_json.c_str());
        }
        // A failed run that did not trip keeps what it staged, as an unstaged run keeps its
        // committed batches (all within the limit; the offset held with them moves too).
        if (run.breaker.enabled && !run.breaker.tripped) {
            try {
                commit_stage(run);
            } catch (const std::exception& ce) {
                result.error += std::string("; committing its staged writes failed: ") + ce.what();
            }
        }
    }
    result.ended_us = now_us();
    try {
        write_execution_entry(store_, pipe.id, result, result.ok ? "pump-completed" : "pump-failed");
    } catch (const std::exception& e) {
        setup_ctx.log(SLUICE_LOG_ERROR, std::string("cannot write the execution log: ") + e.what());
    }
    return result;
}

std::optional<Stage> parse_stage(const std::string& text) {
    if (text.empty() || text == "sink") return Stage::Sink;
    if (text == "source") return Stage::Source;
    if (text == "before-transforms" || text == "before-transform") return Stage::BeforeTransforms;
    if (text == "after-transforms" || text == "after-transform") return Stage::AfterTransforms;
    return std::nullopt;
}

namespace {

// The sink's context during a publisher pull: byte chunks go to the client.
class PublisherContext : public HostContext {
public:
    explicit PublisherContext(const std::function<bool(std::string_view)>& out) : out_(out) {}
    int32_t emit_batch(const sluice_batch& batch) override {
        if (batch.format != SLUICE_FORMAT_BYTES) {
            set_error("a publisher emits SLUICE_FORMAT_BYTES chunks");
            return SLUICE_ERROR;
        }
        if (stopped || !out_(std::string_view(batch.data, batch.size))) {
            stopped = true;
            return SLUICE_ERROR;
        }
        return SLUICE_OK;
    }
    bool stopped = false;

private:
    const std::function<bool(std::string_view)>& out_;
};

}  // namespace

void PipeRunner::publish(const PipeConfig& pipe, const NodeConfig& config, const std::string& since,
                         const std::function<bool(std::string_view)>& out) {
    PublisherContext ctx(out);
    ctx.log_source = "pipe:" + pipe.id;
    ctx.store = &store_;
    ctx.secrets = secrets_;
    Instance sink(pipe.sink, pipe, config, ctx);
    const sluice_sink_vtable* vt = sink.info().sink();
    auto check = [&](int32_t status, const char* what) {
        if (status != SLUICE_OK && !ctx.stopped)
            throw std::runtime_error(std::string("publisher ") + what + " failed: " +
                                     (ctx.error().empty() ? "status " + std::to_string(status) : ctx.error()));
        return status == SLUICE_OK;
    };
    if (vt->begin_run && !check(vt->begin_run(sink.handle(), &ctx, "{\"full\":true}"), "begin_run")) return;
    evaluate(pipe, config, Stage::Sink, since, [&](std::string_view batch_json) {
        JsonDocument doc = parse_json(batch_json, "batch");
        sluice_batch batch{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, batch_json.data(), batch_json.size(),
                           doc.IsArray() ? doc.Size() : 0, nullptr};
        return check(vt->write(sink.handle(), &ctx, &batch), "write");
    });
    if (!ctx.stopped && vt->end_run) check(vt->end_run(sink.handle(), &ctx, "{\"full\":true,\"completed\":true}"), "end_run");
}

void PipeRunner::evaluate(const PipeConfig& pipe, const NodeConfig& config, Stage stage, const std::string& since,
                          const std::function<bool(std::string_view)>& consume, const std::atomic<bool>* cancel) {
    RunResult result;
    result.run_id = new_run_id();
    RunOptions options;
    options.cancel = cancel;
    Run run(pipe, config, store_, secrets_, options, result);
    run.evaluate_consumer = &consume;
    run.evaluate_transforms =
        stage == Stage::Source || stage == Stage::BeforeTransforms ? 0 : pipe.transforms.size();
    run.evaluate_drop_filtered = stage == Stage::Sink;

    SourceContext source_ctx(run);
    source_ctx.log_source = "pipe:" + pipe.id;
    Instance source(pipe.source, pipe, config, source_ctx);
    for (size_t i = 0; i < run.evaluate_transforms; ++i) {
        auto& ctx = run.create_contexts.emplace_back(std::make_unique<RunContext>(run));
        ctx->log_source = "pipe:" + pipe.id;
        run.transforms.push_back(std::make_unique<Instance>(pipe.transforms[i], pipe, config, *ctx));
    }
    int32_t status = source.info().source()->read(source.handle(), &source_ctx, since.empty() ? nullptr : since.c_str(),
                                                  pipe.batch_size);
    if (run.stopped_by_consumer) return;
    if (status != SLUICE_OK || !run.failure.empty()) {
        throw std::runtime_error(!run.failure.empty() ? run.failure
                                 : "source ('" + source.type() + "') failed: " +
                                       (source_ctx.error().empty() ? "status " + std::to_string(status)
                                                                   : source_ctx.error()));
    }
}

}  // namespace sluice::kernel

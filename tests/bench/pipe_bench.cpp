// Pipe benchmark (issue #3): N generated entities of ~300 B through a real pipe run — the
// `bench_generator` source (tests/bench/generator) → the `dataset` sink → the postgres storage
// plugin, driven by the kernel's PipeRunner exactly as a node runs a pump — against a baseline
// measured in the same run on the same server: raw binary COPY of the same JSON text into a jsonb
// table with a unique index on the id, one transaction per batch. Then the same pipe again with
// nothing changed (the generator is a full source, so this is a full run with deletion tracking:
// every id is marked seen, then `delete_unseen` finds nothing), and the process's peak RSS.
//
//   bench_pipe [--entities N] [--batch B] [--dsn DSN] [--no-vacuum] [--check]
//              [--plugin-dir DIR] [--generator FILE] [--hash-cache N]
//
// Without --dsn it starts its own PostgreSQL (ManagedPostgres) in a temporary directory. With
// --check the exit status is 1 unless the goals are met (ratio >= 0.5, unchanged >= 1M/s with 0
// versions written, peak RSS < 200 MB); without it only the mechanics are checked (counts), as
// under ctest. SLUICE_BENCH_ENTITIES overrides the default N (1,000,000). --plugin-dir and
// --generator load the plugins from elsewhere than this build tree (A/B comparisons of copies);
// --hash-cache sets the storage's hash_cache_entries (0: off, to measure what the cache gives).
#include <sluice/kernel/config.hpp>
#include <sluice/kernel/dataset_store.hpp>
#include <sluice/kernel/host_context.hpp>
#include <sluice/kernel/managed_postgres.hpp>
#include <sluice/kernel/pipe_runner.hpp>
#include <sluice/kernel/plugin_registry.hpp>

#include "generator/bench_entity.hpp"
#include "bench_support.hpp"
#include "test_support.hpp"

#include <libpq-fe.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace sluice::bench;
using namespace sluice::kernel;

struct Options {
    long entities = 1000000;
    long batch = 1000;
    std::string dsn;
    bool vacuum = true;
    bool check = false;
    std::string plugin_dir = SLUICE_BENCH_PLUGIN_DIR;
    std::string generator = SLUICE_BENCH_GENERATOR;
    long hash_cache = -1;  // the storage's hash_cache_entries; -1: its default
};

Options parse_args(int argc, char** argv) {
    Options o;
    if (const char* env = std::getenv("SLUICE_BENCH_ENTITIES")) o.entities = std::atol(env);
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--entities") o.entities = std::stol(next());
        else if (a == "--batch") o.batch = std::stol(next());
        else if (a == "--dsn") o.dsn = next();
        else if (a == "--no-vacuum") o.vacuum = false;
        else if (a == "--check") o.check = true;
        else if (a == "--plugin-dir") o.plugin_dir = next();
        else if (a == "--generator") o.generator = next();
        else if (a == "--hash-cache") o.hash_cache = std::stol(next());
        else throw std::runtime_error("unknown argument " + a + " (see the comment at the top of pipe_bench.cpp)");
    }
    // The pipe config accepts batch_size 1..1000000.
    if (o.entities <= 0 || o.batch <= 0 || o.batch > 1000000)
        throw std::runtime_error("--entities must be positive and --batch from 1 to 1000000");
    return o;
}


// CPU seconds (user + system) of this process, all threads: the client side of the pipe.
double client_cpu() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// CPU seconds of the server: every live child of the postmaster (backends, WAL writer,
// checkpointer, ...), from /proc; processes that exit in between are not counted (approximate).
// The postmaster is the parent of the admin connection's backend; -1 when not visible here.
long parent_pid(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t close = stat.rfind(')');
    if (close == std::string::npos) return -1;
    long ppid = -1;
    char state = 0;
    std::sscanf(stat.c_str() + close + 1, " %c %ld", &state, &ppid);
    return ppid;
}

double server_cpu(long postmaster) {
    if (postmaster <= 0) return 0;
    double ticks = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream in(entry.path() / "stat");
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        size_t close = stat.rfind(')');
        if (close == std::string::npos) continue;
        char state = 0;
        long ppid = 0;
        unsigned long utime = 0, stime = 0;
        // Fields after the command: state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime.
        if (std::sscanf(stat.c_str() + close + 1, " %c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state,
                        &ppid, &utime, &stime) == 4 &&
            ppid == postmaster)
            ticks += static_cast<double>(utime + stime);
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Cpu {
    double client = 0, server = 0;
};
long g_postmaster = -1;
Cpu cpu_now() { return Cpu{client_cpu(), server_cpu(g_postmaster)}; }
std::string cpu_text(const Cpu& from, const Cpu& to) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "CPU client %.2f s, server %.2f s", to.client - from.client, to.server - from.server);
    return buf;
}



// Batch b as the generator emits it (a JSON array text), plus the ids.
std::string batch_json(const Options& o, long b, std::vector<std::string>& ids) {
    std::string out = "[";
    long from = b * o.batch, to = std::min(o.entities, from + o.batch);
    ids.clear();
    for (long i = from; i < to; ++i) {
        if (i > from) out += ',';
        sluice::bench::append_entity(out, static_cast<unsigned long>(i));
        std::string id;
        sluice::bench::append_entity_id(id, static_cast<unsigned long>(i));
        ids.push_back(std::move(id));
    }
    return out + "]";
}

// Baseline: binary COPY (id text, doc jsonb) per batch, one transaction per batch. The JSON text
// is made untimed; the timer covers splitting it into entities, building the COPY data and COPY.
double baseline_pass(const Options& o, PGconn* c) {
    create_jsonb_baseline(c);
    double spent = 0;
    const long batches = (o.entities + o.batch - 1) / o.batch;
    std::vector<std::string> ids;
    for (long b = 0; b < batches; ++b) {
        std::string json = batch_json(o, b, ids);
        auto t0 = Clock::now();
        copy_jsonb_batch(c, json, ids);
        spent += seconds(Clock::now() - t0);
    }
    return spent;
}

// The generator alone (no pipe): what the source costs per entity, for reading the figures.
double generator_pass(const Options& o) {
    auto t0 = Clock::now();
    std::string batch;
    size_t total = 0;
    for (long i = 0; i < o.entities; ++i) {
        if (i % o.batch == 0) {
            total += batch.size();
            batch.assign(1, '[');
        } else {
            batch.push_back(',');
        }
        sluice::bench::append_entity(batch, static_cast<unsigned long>(i));
    }
    total += batch.size();
    if (total == 0) std::printf("?");  // keeps the loop from being optimised away
    return seconds(Clock::now() - t0);
}

int64_t dataset_versions(DatasetStore& store) {
    sluice::JsonDocument info = store.command(R"({"op":"info","dataset":"bench"})");
    return info.IsObject() ? sluice::int_or(info, "versions", 0) : 0;
}

struct PipePass {
    RunResult result;
    std::string cpu;
    double seconds = 0;
    double tail_seconds = 0;  // after the last batch was committed: end_run (delete_unseen), the log
    int64_t versions_written = 0;
};

PipePass pipe_pass(PipeRunner& runner, const PipeConfig& pipe, const NodeConfig& config, DatasetStore& store) {
    PipePass p;
    const int64_t before = dataset_versions(store);
    Clock::time_point last_batch;
    RunOptions options;
    options.on_progress = [&](uint64_t) { last_batch = Clock::now(); };
    const Cpu cpu0 = cpu_now();
    auto t0 = Clock::now();
    last_batch = t0;
    p.result = runner.run(pipe, config, options);
    auto t1 = Clock::now();
    p.cpu = cpu_text(cpu0, cpu_now());
    p.seconds = seconds(t1 - t0);
    p.tail_seconds = seconds(t1 - last_batch);
    p.versions_written = dataset_versions(store) - before;
    if (!p.result.ok) throw std::runtime_error("the pipe run failed: " + p.result.error);
    return p;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        Options o = parse_args(argc, argv);
        std::unique_ptr<sluice::test::TempDir> tmp;
        std::unique_ptr<ManagedPostgres> pg;
        if (o.dsn.empty()) {
            tmp = std::make_unique<sluice::test::TempDir>("sluice-pipe-bench");
            pg = std::make_unique<ManagedPostgres>(tmp->path() / "pg");
            pg->start();
            o.dsn = pg->dsn();
        }
        PGconn* admin = PQconnectdb(o.dsn.c_str());
        if (PQstatus(admin) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(admin));
        PQsetNoticeProcessor(admin, [](void*, const char*) {}, nullptr);
        g_postmaster = parent_pid(PQbackendPID(admin));
        // A clean slate for the storage plugin's tables in this database.
        exec(admin, "DROP SCHEMA IF EXISTS bench CASCADE");
        exec(admin, "CREATE SCHEMA bench");
        exec(admin, "SET search_path = bench");
        const std::string dsn = o.dsn + " options='-c search_path=bench'";

        std::string sample;
        sluice::bench::append_entity(sample, 123456);
        std::printf("pipe benchmark: %ld entities of ~%zu B, batch_size %ld, bench_generator -> dataset sink -> postgres, %s\n",
                    o.entities, sample.size(), o.batch, pg ? "managed PostgreSQL in a temporary directory" : "given DSN");

        // The plugins as a node loads them: the built-in directory, plus the generator fixture.
        PluginRegistry registry(host_api());
        registry.load_directory(o.plugin_dir);
        if (std::string why = registry.load_file(o.generator); !why.empty())
            throw std::runtime_error("cannot load the generator: " + why);
        const ComponentInfo* backend = registry.find(SLUICE_KIND_STORAGE, "postgres");
        if (!backend) throw std::runtime_error("no postgres storage plugin in " + o.plugin_dir);
        sluice::JsonDocument store_config(rapidjson::kObjectType);
        store_config.AddMember("dsn", sluice::Json(dsn.c_str(), store_config.GetAllocator()), store_config.GetAllocator());
        if (o.hash_cache >= 0)
            store_config.AddMember("hash_cache_entries", static_cast<int64_t>(o.hash_cache), store_config.GetAllocator());
        DatasetStore store(*backend, sluice::to_json(store_config));

        const std::string config_text =
            R"([{"_id": "bench", "type": "pipe", "source": {"type": "bench_generator", "count": )" +
            std::to_string(o.entities) + R"(}, "sink": {"type": "dataset", "dataset": "bench"}, "batch_size": )" +
            std::to_string(o.batch) + R"(, "pump": {"mode": "manual"}}])";
        std::shared_ptr<const NodeConfig> config = NodeConfig::build(sluice::parse_json(config_text, "config"), registry);
        const PipeConfig& pipe = *config->pipe("bench");
        PipeRunner runner(store, [](const std::string&) { return std::optional<std::string>(); });

        const double t_gen = generator_pass(o);

        // Warm-up, untimed: the same volume through the baseline once, so that WAL segments
        // exist (recycled) for both timed passes; otherwise whichever runs first pays for
        // creating them and the comparison is biased.
        baseline_pass(o, admin);
        exec(admin, "DROP TABLE bench_baseline");
        exec(admin, "CHECKPOINT");

        PipePass first = pipe_pass(runner, pipe, *config, store);
        exec(admin, "CHECKPOINT");
        const Cpu base_cpu0 = cpu_now();
        const double t_base = baseline_pass(o, admin);
        const std::string base_cpu = cpu_text(base_cpu0, cpu_now());
        // Gone before the next pass, so no autovacuum of it competes with the pipe.
        exec(admin, "DROP TABLE bench_baseline");
        exec(admin, "CHECKPOINT");

        const double pipe_rate = o.entities / first.seconds, base_rate = o.entities / t_base;
        std::printf("generator alone (no pipe)       : %9.0f entities/s  (%.2f s)\n", o.entities / t_gen, t_gen);
        std::printf("first run    all new            : %9.0f entities/s  (%.2f s, of which %.2f s after the last batch;"
                    " %llu read, %llu changes, %lld versions written; %s)\n",
                    pipe_rate, first.seconds, first.tail_seconds,
                    static_cast<unsigned long long>(first.result.entities_read),
                    static_cast<unsigned long long>(first.result.changes), static_cast<long long>(first.versions_written), first.cpu.c_str());
        std::printf("baseline     raw COPY to jsonb  : %9.0f entities/s  (%.2f s; %s)\n", base_rate, t_base, base_cpu.c_str());
        const double ratio = pipe_rate / base_rate;
        std::printf("ratio pipe/baseline             : %9.2f  (goal >= 0.50)\n", ratio);
        bool ok = first.result.entities_read == static_cast<uint64_t>(o.entities) &&
                  first.result.changes == static_cast<uint64_t>(o.entities) && first.versions_written == o.entities;

        // Steady state for the re-run, as in bench_storage: autovacuum has visited the freshly
        // loaded tables (it does within minutes of a load), so tuples are hinted and pages
        // all-visible. --no-vacuum measures the re-run straight after the load instead.
        if (o.vacuum) exec(admin, "VACUUM (ANALYZE)");

        PipePass second = pipe_pass(runner, pipe, *config, store);
        const double again_rate = o.entities / second.seconds;
        std::printf("second run   nothing changed    : %9.0f entities/s  (%.2f s%s, of which %.2f s after the last batch;"
                    " %llu unchanged, %llu changes, %lld versions written; %s; goal >= 1000000/s, 0 written)\n",
                    again_rate, second.seconds, o.vacuum ? " after VACUUM" : "", second.tail_seconds,
                    static_cast<unsigned long long>(second.result.unchanged),
                    static_cast<unsigned long long>(second.result.changes), static_cast<long long>(second.versions_written), second.cpu.c_str());
        std::printf("ratio second/first run          : %9.2f\n", again_rate / pipe_rate);
        ok = ok && second.result.entities_read == static_cast<uint64_t>(o.entities) && second.result.changes == 0 &&
             second.result.unchanged == static_cast<uint64_t>(o.entities) && second.versions_written == 0;

        const long rss_mb = peak_rss_kb() / 1024;
        std::printf("peak RSS (this process)         : %9ld MB  (goal < 200 MB)\n", rss_mb);
        PQfinish(admin);

        if (!ok) {
            std::printf("FAILED: the counts are wrong\n");
            return 1;
        }
        const bool goals = ratio >= 0.5 && again_rate >= 1e6 && rss_mb < 200;
        std::printf("goals %s\n", goals ? "met" : "NOT met");
        if (o.check && !goals) return 1;
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_pipe: %s\n", e.what());
        return 2;
    }
}

// Storage benchmark: N entities of ~300 B written in batches through the postgres storage
// plugin's write path (the C contract, as the dataset sink's writes reach it), against a baseline
// measured in the same run on the same server: raw binary COPY of the same JSON into a jsonb
// table with a unique index on the id. Then the same N entities again (nothing changed: every
// write must be a no-op; after a VACUUM, the steady state autovacuum reaches minutes after a
// load), and the process's peak RSS.
//
//   bench_storage [--entities N] [--batch B] [--dsn DSN] [--check]
//
// Without --dsn it starts its own PostgreSQL (ManagedPostgres) in a temporary directory. With
// --check the exit status is 1 unless the goals are met (ratio >= 0.5, unchanged >= 1M/s,
// peak RSS < 200 MB); without it only the mechanics are checked (counts), as under ctest.
// SLUICE_BENCH_ENTITIES overrides the default N (1,000,000).
#include <sluice/kernel/managed_postgres.hpp>
#include <sluice/testing.hpp>

#include "bench_support.hpp"
#include "test_support.hpp"

#include <libpq-fe.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace {

using namespace sluice::bench;

struct Options {
    long entities = 1000000;
    long batch = 1000;
    std::string dsn;
    bool check = false;
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
        else if (a == "--check") o.check = true;
        else throw std::runtime_error("unknown argument " + a + " (see the comment at the top of storage_bench.cpp)");
    }
    if (o.entities <= 0 || o.batch <= 0) throw std::runtime_error("--entities and --batch must be positive");
    return o;
}

// Entity i as ~300 bytes of JSON (nested object, list, numbers, booleans, a typed string).
std::string entity(long i, std::string& id_out) {
    char buf[512];
    id_out = "person-" + std::to_string(i);
    int n = std::snprintf(
        buf, sizeof buf,
        "{\"_id\":\"%s\",\"name\":\"Person Number %ld\",\"email\":\"person.%ld@example.com\",\"age\":%ld,"
        "\"active\":%s,\"score\":%ld.%02ld,\"born\":\"~t19%02ld-%02ld-%02ldT00:00:00Z\","
        "\"address\":{\"street\":\"%ld Long Street Name\",\"city\":\"City %ld\",\"zip\":\"%05ld\",\"country\":\"NO\"},"
        "\"tags\":[\"tag%ld\",\"group%ld\"],\"org\":\"~:org:%ld\",\"note\":\"lorem ipsum\"}",
        id_out.c_str(), i, i, i % 90, (i % 3) ? "true" : "false", i % 1000, i % 100, 10 + i % 90, 1 + i % 12,
        1 + i % 28, i % 997, i % 500, i % 100000, i % 10, i % 7, i % 1000);
    return std::string(buf, static_cast<size_t>(n));
}

// Batch b (entities [b*B, min(N, (b+1)*B))) as a JSON array, plus the ids.
std::string batch_json(const Options& o, long b, std::vector<std::string>* ids) {
    std::string out = "[";
    long from = b * o.batch, to = std::min(o.entities, from + o.batch);
    std::string id;
    if (ids) ids->clear();
    for (long i = from; i < to; ++i) {
        if (i > from) out += ',';
        out += entity(i, id);
        if (ids) ids->push_back(id);
    }
    return out + "]";
}


int32_t append(void* user, const char* data, size_t size) {
    static_cast<std::string*>(user)->append(data, size);
    return 0;
}

// Writes every batch through the plugin; returns seconds spent in write calls.
double plugin_pass(const Options& o, const sluice_storage_vtable* vt, void* store, sluice::testing::FakeHost& host,
                   long& written, long& unchanged) {
    written = unchanged = 0;
    double spent = 0;
    const long batches = (o.entities + o.batch - 1) / o.batch;
    for (long b = 0; b < batches; ++b) {
        std::string json = batch_json(o, b, nullptr);
        sluice_batch raw = sluice::testing::Instance::make_batch(json);
        std::string out;
        auto t0 = Clock::now();
        int32_t st = vt->write(store, host.context(), "bench", &raw, "{}", &append, &out);
        spent += seconds(Clock::now() - t0);
        if (st != SLUICE_OK) throw std::runtime_error("plugin write failed: " + host.last_error());
        sluice::JsonDocument r = sluice::parse_json(out, "write result");
        written += r["written"].GetInt64();
        unchanged += r["unchanged"].GetInt64();
    }
    return spent;
}



// Baseline: binary COPY (id text, doc jsonb) per batch, one transaction per batch.
double baseline_pass(const Options& o, PGconn* c) {
    create_jsonb_baseline(c);
    double spent = 0;
    const long batches = (o.entities + o.batch - 1) / o.batch;
    std::vector<std::string> ids;
    for (long b = 0; b < batches; ++b) {
        std::string json = batch_json(o, b, &ids);
        auto t0 = Clock::now();
        copy_jsonb_batch(c, json, ids);
        spent += seconds(Clock::now() - t0);
    }
    return spent;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        Options o = parse_args(argc, argv);
        std::unique_ptr<sluice::test::TempDir> tmp;
        std::unique_ptr<sluice::kernel::ManagedPostgres> pg;
        if (o.dsn.empty()) {
            tmp = std::make_unique<sluice::test::TempDir>("sluice-bench");
            pg = std::make_unique<sluice::kernel::ManagedPostgres>(tmp->path() / "pg");
            pg->start();
            o.dsn = pg->dsn();
        }
        PGconn* admin = PQconnectdb(o.dsn.c_str());
        if (PQstatus(admin) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(admin));
        PQsetNoticeProcessor(admin, [](void*, const char*) {}, nullptr);
        // A clean slate for the plugin's tables in this database.
        exec(admin, "DROP SCHEMA IF EXISTS bench CASCADE");
        exec(admin, "CREATE SCHEMA bench");
        std::string dsn = o.dsn + " options='-c search_path=bench'";
        exec(admin, "SET search_path = bench");

        std::string entity_id;
        size_t sample = entity(123456, entity_id).size();
        std::printf("storage benchmark: %ld entities of ~%zu B, batches of %ld, %s\n", o.entities, sample, o.batch,
                    pg ? "managed PostgreSQL in a temporary directory" : "given DSN");

        sluice::testing::FakeHost host;
        sluice::testing::LoadedPlugin plugin(SLUICE_BENCH_PLUGIN_DIR "/sluice-storage-postgres.so", host);
        rapidjson::StringBuffer quoted;
        rapidjson::Writer<rapidjson::StringBuffer> writer(quoted);
        writer.String(dsn.c_str(), static_cast<rapidjson::SizeType>(dsn.size()));
        std::string config = std::string("{\"dsn\":") + quoted.GetString() + "}";
        sluice::testing::Instance store = plugin.create(SLUICE_KIND_STORAGE, "postgres", config);
        if (!store.valid()) throw std::runtime_error("storage did not open: " + host.last_error());
        auto* vt = static_cast<const sluice_storage_vtable*>(plugin.component(SLUICE_KIND_STORAGE, "postgres")->vtable);

        // Warm-up, untimed: the same volume through the baseline once, so that WAL segments
        // exist (recycled) for both timed passes; otherwise whichever runs first pays for
        // creating them and the comparison is biased.
        baseline_pass(o, admin);
        exec(admin, "DROP TABLE bench_baseline");
        exec(admin, "CHECKPOINT");

        long written = 0, unchanged = 0;
        double t_plugin = plugin_pass(o, vt, store.handle(), host, written, unchanged);
        exec(admin, "CHECKPOINT");
        double t_base = baseline_pass(o, admin);
        // Gone before the next pass, so no autovacuum of it competes with the plugin.
        exec(admin, "DROP TABLE bench_baseline");
        exec(admin, "CHECKPOINT");
        double plugin_rate = o.entities / t_plugin, base_rate = o.entities / t_base;
        std::printf("first pass   plugin write path : %9.0f entities/s  (%.2f s, %ld written, %ld unchanged)\n",
                    plugin_rate, t_plugin, written, unchanged);
        std::printf("baseline     raw COPY to jsonb : %9.0f entities/s  (%.2f s)\n", base_rate, t_base);
        double ratio = plugin_rate / base_rate;
        std::printf("ratio plugin/baseline          : %9.2f  (goal >= 0.50)\n", ratio);
        bool ok = written == o.entities && unchanged == 0;

        // Steady state for the re-run: autovacuum has visited the freshly loaded tables (as it
        // does within minutes of a load), so tuples are hinted and pages all-visible.
        exec(admin, "VACUUM (ANALYZE)");

        long written2 = 0, unchanged2 = 0;
        double t_again = plugin_pass(o, vt, store.handle(), host, written2, unchanged2);
        double again_rate = o.entities / t_again;
        std::printf("second pass  nothing changed   : %9.0f entities/s  (%.2f s after VACUUM, %ld written, %ld unchanged; goal >= 1000000/s, 0 written)\n",
                    again_rate, t_again, written2, unchanged2);
        ok = ok && written2 == 0 && unchanged2 == o.entities;

        long rss_mb = peak_rss_kb() / 1024;
        std::printf("peak RSS (this process)        : %9ld MB  (goal < 200 MB)\n", rss_mb);
        PQfinish(admin);

        if (!ok) {
            std::printf("FAILED: the counts are wrong\n");
            return 1;
        }
        bool goals = ratio >= 0.5 && again_rate >= 1e6 && rss_mb < 200;
        std::printf("goals %s\n", goals ? "met" : "NOT met");
        if (o.check && !goals) return 1;
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_storage: %s\n", e.what());
        return 2;
    }
}

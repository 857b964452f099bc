// SQL connector benchmark (plugins/sources/sql, plugins/sinks/sql), each against raw COPY of the
// same rows on the same server in the same run:
//
//   source: a table of N rows (10 columns: bigint, text ×2, numeric, float8, bool, timestamptz ×2,
//           text[], jsonb) read through the `sql` source into an in-process consumer that counts
//           the entities, vs `COPY bench_rows TO STDOUT` (binary and text; the faster is the
//           baseline) read by a client that only counts bytes. Best of three interleaved rounds.
//   sink:   the same N rows as entities (typed values: ~f, ~t, lists, objects) upserted through
//           the `sql` sink in batches into an empty table (all inserts), then again with every row
//           changed (all updates), vs a text COPY of the same rows in the same batches into an
//           empty table with the same primary key — each sink batch is followed by its COPY, so
//           both see the same moment of a shared machine's load. The inserts are a first load:
//           the sink COPYs them straight into the table (the count is printed). Beside the
//           updates, the server's own cost of an update from text: each batch COPYed into a
//           staging table, then one plain UPDATE … FROM it of a third table holding the same
//           rows — what a set-based upsert pays at least, with no JSON to read.
//
//   sql_bench [--rows N] [--batch B] [--dsn DSN] [--only source|sink] [--check] [--no-warmup]
//
// Before the sink passes, an untimed warm-up COPYs 3N rows into a scratch table and drops it
// (then CHECKPOINT), so that the WAL segments the passes need exist and are
// recycled, as on a server that has been running (bench_pipe does the same): a freshly
// initialised server otherwise creates and zero-fills every segment during the timed passes,
// and the update pass, which writes about twice the WAL, pays that twice. --no-warmup measures
// the fresh server instead.
//
// Without --dsn it starts its own PostgreSQL (ManagedPostgres) in a temporary directory. With
// --check the exit status is 1 unless both ratios reach 0.5; without it only the mechanics are
// checked (counts), as under ctest. SLUICE_BENCH_ROWS overrides the default N (1,000,000).
#include <sluice/kernel/managed_postgres.hpp>
#include <sluice/testing.hpp>

#include "bench_support.hpp"
#include "test_support.hpp"

#include <libpq-fe.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

namespace {

using namespace sluice::bench;

struct Options {
    long rows = 1000000;
    long batch = 1000;
    std::string dsn, only;
    bool check = false;
    bool warm_wal = true;
};

Options parse_args(int argc, char** argv) {
    Options o;
    if (const char* env = std::getenv("SLUICE_BENCH_ROWS")) o.rows = std::atol(env);
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--rows") o.rows = std::stol(next());
        else if (a == "--batch") o.batch = std::stol(next());
        else if (a == "--dsn") o.dsn = next();
        else if (a == "--check") o.check = true;
        else if (a == "--only") o.only = next();
        else if (a == "--no-warmup") o.warm_wal = false;
        else throw std::runtime_error("unknown argument " + a + " (see the comment at the top of sql_bench.cpp)");
    }
    if (o.rows <= 0 || o.batch <= 0) throw std::runtime_error("--rows and --batch must be positive");
    return o;
}



std::string value(PGconn* c, const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        std::string msg = PQresultErrorMessage(r);
        PQclear(r);
        throw std::runtime_error(sql + ": " + msg);
    }
    std::string out = PQntuples(r) ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    return out;
}

const char* kColumns =
    "(id bigint PRIMARY KEY, name text, email text, amount numeric(12,2), score float8, active boolean, "
    "created timestamptz, updated timestamptz, tags text[], meta jsonb)";

// ---- a host that consumes what the source emits -------------------------------------------------

struct BenchHost {
    size_t entities = 0, batches = 0, bytes = 0;
    double copied = 0;  // the sink's sql_sink_copied: rows it COPYed straight into the table
    std::string error, first_batch;
};

BenchHost& self(sluice_host_context* ctx) { return *reinterpret_cast<BenchHost*>(ctx); }

const sluice_host_api* bench_api() {
    static const sluice_host_api table{
        sizeof(sluice_host_api), SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR,
        [](sluice_host_context*, int32_t level, const char* m) {
            if (level >= SLUICE_LOG_WARNING) std::cerr << "plugin: " << m << "\n";
        },
        [](sluice_host_context* ctx, const char* m) { self(ctx).error = m ? m : ""; },
        [](sluice_host_context* ctx, const sluice_batch* b) -> int32_t {
            BenchHost& h = self(ctx);
            if (h.batches++ == 0) h.first_batch.assign(b->data, b->size);
            h.entities += b->count;
            h.bytes += b->size;
            return SLUICE_OK;
        },
        [](sluice_host_context*, const char*) {},
        [](sluice_host_context*, const char*, sluice_receive_fn, void*) -> int32_t { return SLUICE_ERROR; },
        [](sluice_host_context*, const char*, const char*, const char*, sluice_receive_fn, void*) -> int32_t {
            return SLUICE_ERROR;
        },
        [](sluice_host_context*) -> int32_t { return 0; },
        [](sluice_host_context* ctx, const char* name, double value) {
            if (std::string_view(name) == "sql_sink_copied") self(ctx).copied += value;
        },
        [](sluice_host_context*, const char*, const sluice_batch*, const char*, sluice_receive_fn, void*) -> int32_t {
            return SLUICE_ERROR;
        },
        [](sluice_host_context*, const char*, sluice_receive_fn, void*) -> int32_t { return SLUICE_ERROR; },
        [](sluice_host_context*, const char*, sluice_receive_fn, void*) -> int32_t { return SLUICE_ERROR; }};
    return &table;
}

const sluice_component* load(const std::string& name, uint32_t kind) {
    const std::string path = std::string(SLUICE_BENCH_PLUGIN_DIR) + "/" + name + ".so";
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) throw std::runtime_error(std::string("dlopen: ") + dlerror());
    auto entry = reinterpret_cast<sluice_plugin_entry_fn>(dlsym(lib, SLUICE_ENTRY_SYMBOL));
    const sluice_plugin_descriptor* d = entry ? entry(bench_api()) : nullptr;
    if (!d) throw std::runtime_error(path + ": no descriptor");
    for (size_t i = 0; i < d->component_count; ++i)
        if (d->components[i]->kind == kind) return d->components[i];
    throw std::runtime_error(path + ": no component of the wanted kind");
}

// ---- rows --------------------------------------------------------------------------------------

struct Row {
    char name[32], email[48], amount[24], score[32], created[32], updated[32];
};

// Row i of pass `pass` (pass 1 changes every row but the key).
Row make_row(long i, int pass) {
    Row r;
    std::snprintf(r.name, sizeof r.name, "Person %ld%s", i, pass ? " (changed)" : "");
    std::snprintf(r.email, sizeof r.email, "person.%ld@example.com", i);
    std::snprintf(r.amount, sizeof r.amount, "%ld.%02ld", (i * 7 + pass) % 100000, i % 100);
    std::snprintf(r.score, sizeof r.score, "%ld.25", i % 1000);
    std::snprintf(r.created, sizeof r.created, "2024-%02ld-%02ldT%02ld:%02ld:%02ldZ", 1 + i % 12, 1 + i % 28, i % 24,
                  i % 60, (i / 60) % 60);
    std::snprintf(r.updated, sizeof r.updated, "2025-01-01T00:00:%02ld.%06ldZ", (i / 1000000) % 60, (i + pass) % 1000000);
    return r;
}

std::string entities_json(long from, long to, int pass) {
    std::string out = "[";
    char buf[640];
    for (long i = from; i < to; ++i) {
        const Row r = make_row(i, pass);
        int n = std::snprintf(buf, sizeof buf,
                              "%s{\"_id\":\"%ld\",\"id\":%ld,\"name\":\"%s\",\"email\":\"%s\",\"amount\":\"~f%s\","
                              "\"score\":%s,\"active\":%s,\"created\":\"~t%s\",\"updated\":\"~t%s\","
                              "\"tags\":[\"t%ld\",\"g%ld\"],\"meta\":{\"k\":%ld,\"p\":%d}}",
                              i > from ? "," : "", i, i, r.name, r.email, r.amount, r.score, (i % 3) ? "true" : "false",
                              r.created, r.updated, i % 10, i % 7, i, pass);
        out.append(buf, static_cast<size_t>(n));
    }
    return out + "]";
}

std::string copy_text(long from, long to, int pass) {
    std::string out;
    char buf[640];
    for (long i = from; i < to; ++i) {
        const Row r = make_row(i, pass);
        int n = std::snprintf(buf, sizeof buf, "%ld\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t{t%ld,g%ld}\t{\"k\": %ld, \"p\": %d}\n", i,
                              r.name, r.email, r.amount, r.score, (i % 3) ? "t" : "f", r.created, r.updated, i % 10,
                              i % 7, i, pass);
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

// ---- source ------------------------------------------------------------------------------------

struct CopyOut {
    double seconds = 0;
    size_t bytes = 0;
};

CopyOut copy_out(PGconn* c, const char* format) {
    auto t0 = Clock::now();
    PGresult* r = PQexec(c, (std::string("COPY bench_rows TO STDOUT (FORMAT ") + format + ")").c_str());
    if (PQresultStatus(r) != PGRES_COPY_OUT) throw std::runtime_error(PQerrorMessage(c));
    PQclear(r);
    CopyOut out;
    char* buf = nullptr;
    int n;
    while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
        out.bytes += static_cast<size_t>(n);
        PQfreemem(buf);
    }
    while ((r = PQgetResult(c)) != nullptr) PQclear(r);
    out.seconds = seconds(Clock::now() - t0);
    return out;
}

// ---- sink --------------------------------------------------------------------------------------

// One batch of raw COPY into `table`; returns seconds.
double copy_in_batch(PGconn* c, const std::string& table, const std::string& data) {
    auto t0 = Clock::now();
    PGresult* r = PQexec(c, ("COPY " + table + " FROM STDIN").c_str());
    if (PQresultStatus(r) != PGRES_COPY_IN) throw std::runtime_error(PQerrorMessage(c));
    PQclear(r);
    if (PQputCopyData(c, data.data(), static_cast<int>(data.size())) != 1 || PQputCopyEnd(c, nullptr) != 1)
        throw std::runtime_error(PQerrorMessage(c));
    while ((r = PQgetResult(c)) != nullptr) {
        const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        std::string msg = PQresultErrorMessage(r);
        PQclear(r);
        if (!ok) throw std::runtime_error("baseline COPY failed: " + msg);
    }
    return seconds(Clock::now() - t0);
}

struct PassTimes {
    double sink = 0, copy = 0, update = 0;
    double copied = 0;  // rows the sink COPYed straight in
};

// The server's own cost of updating rows from text: the batch COPYed into a staging table, then
// one UPDATE … FROM it, with its commit (the TRUNCATE of the staging table before is not timed).
const char* kFloorUpdate =
    "BEGIN; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
    "UPDATE bench_floor t SET name = s.name, email = s.email, amount = s.amount, score = s.score, active = s.active, "
    "created = s.created, updated = s.updated, tags = s.tags, meta = s.meta FROM bench_stage s WHERE t.id = s.id; COMMIT";

// Every batch of pass `pass` through the sink and, right after it, the same rows by raw COPY into
// `copy_table` (when given) and, with `floor`, by a plain UPDATE of bench_floor: all see the
// same moment of a shared machine's load.
PassTimes sink_pass(const Options& o, const sluice_component* component, void* instance, BenchHost& host, int pass,
                    PGconn* c, const std::string& copy_table, bool floor = false) {
    const auto* vt = static_cast<const sluice_sink_vtable*>(component->vtable);
    PassTimes t;
    const double copied_before = host.copied;
    for (long from = 0; from < o.rows; from += o.batch) {
        const long to = std::min(o.rows, from + o.batch);
        const std::string json = entities_json(from, to, pass);
        const sluice_batch raw{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, json.data(), json.size(), 0, nullptr};
        auto t0 = Clock::now();
        const int32_t st = vt->write(instance, reinterpret_cast<sluice_host_context*>(&host), &raw);
        t.sink += seconds(Clock::now() - t0);
        if (st != SLUICE_OK) throw std::runtime_error("sink write failed: " + host.error);
        if (copy_table.empty()) continue;
        const std::string rows = copy_text(from, to, pass);
        t.copy += copy_in_batch(c, copy_table, rows);
        if (floor) {
            exec(c, "TRUNCATE bench_stage");
            auto u0 = Clock::now();
            copy_in_batch(c, "bench_stage", rows);
            exec(c, kFloorUpdate);
            t.update += seconds(Clock::now() - u0);
        }
    }
    t.copied = host.copied - copied_before;
    return t;
}

std::string rate(double rows, double secs) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%10.0f rows/s (%.2f s)", rows / secs, secs);
    return buf;
}

// The source against COPY TO STDOUT; returns the ratio.
double bench_source(const Options& o, PGconn* c, const std::string& system) {
    const double n = static_cast<double>(o.rows);
    exec(c, "DROP TABLE IF EXISTS bench_rows; CREATE TABLE bench_rows " + std::string(kColumns));
    exec(c, "INSERT INTO bench_rows SELECT i, 'Person ' || i, 'person.' || i || '@example.com', (i % 100000) + 0.25,"
            " (i % 1000) + 0.5, i % 3 <> 0, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',"
            " timestamptz '2025-01-01 00:00:00+00' + i * interval '1 microsecond', ARRAY['t' || (i % 10), 'g' || (i % 7)],"
            " jsonb_build_object('k', i, 'p', 0) FROM generate_series(1, " + std::to_string(o.rows) + ") i");
    exec(c, "VACUUM ANALYZE bench_rows");
    copy_out(c, "binary");  // warm the cache

    const sluice_component* source = load("sluice-source-sql", SLUICE_KIND_SOURCE);
    const auto* vt = static_cast<const sluice_source_vtable*>(source->vtable);
    const std::string config = R"({"type":"sql","system":"bench","table":"bench_rows"})";
    sluice_create_args args{sizeof(sluice_create_args), 0, config.c_str(), system.c_str(), "bench", nullptr};
    // Three rounds of each, interleaved, best of three: a shared machine's load moves in between.
    CopyOut binary, text;
    double source_s = 0;
    BenchHost host;
    for (int round = 0; round < 3; ++round) {
        const CopyOut b = copy_out(c, "binary"), t = copy_out(c, "text");
        if (round == 0 || b.seconds < binary.seconds) binary = b;
        if (round == 0 || t.seconds < text.seconds) text = t;
        host = BenchHost();
        auto* ctx = reinterpret_cast<sluice_host_context*>(&host);
        void* instance = vt->create(&args, ctx);
        if (!instance) throw std::runtime_error("source create: " + host.error);
        auto t0 = Clock::now();
        if (vt->read(instance, ctx, nullptr, static_cast<uint32_t>(o.batch)) != SLUICE_OK)
            throw std::runtime_error("source read: " + host.error);
        const double s = seconds(Clock::now() - t0);
        vt->destroy(instance);
        if (round == 0 || s < source_s) source_s = s;
    }
    const double copy_out_s = std::min(binary.seconds, text.seconds);
    if (host.entities != static_cast<size_t>(o.rows))
        throw std::runtime_error("source emitted " + std::to_string(host.entities) + " entities, expected " +
                                 std::to_string(o.rows));
    sluice::JsonDocument first = sluice::parse_json(host.first_batch, "first batch");
    if (!first.IsArray() || first.Size() != std::min<size_t>(static_cast<size_t>(o.batch), host.entities) ||
        !first[0].HasMember("meta") || std::string(first[0]["amount"].GetString()).rfind("~f", 0) != 0)
        throw std::runtime_error("unexpected first batch: " + host.first_batch.substr(0, 300));

    std::cout << "source  raw COPY TO STDOUT binary " << rate(n, binary.seconds) << ", " << binary.bytes / 1048576 << " MB\n"
              << "source  raw COPY TO STDOUT text   " << rate(n, text.seconds) << ", " << text.bytes / 1048576 << " MB\n"
              << "source  sql source -> consumer     " << rate(n, source_s) << ", " << host.bytes / 1048576
              << " MB of entity JSON in " << host.batches << " batches\n";
    const double ratio = copy_out_s / source_s;
    std::printf("source  ratio vs the faster COPY   %.2f (goal >= 0.50)\n", ratio);
    std::printf("source  peak RSS so far            %ld MB\n", peak_rss_kb() / 1024);
    return ratio;
}

// The sink (inserts, updates, unchanged) against batched text COPY; returns the insert ratio.
double bench_sink(const Options& o, PGconn* c, const std::string& system) {
    const double n = static_cast<double>(o.rows);
    for (const char* table : {"bench_copy", "bench_copy_updates", "bench_sink", "bench_floor"})
        exec(c, std::string("DROP TABLE IF EXISTS ") + table + "; CREATE TABLE " + table + " " + kColumns);
    const sluice_component* sink = load("sluice-sink-sql", SLUICE_KIND_SINK);
    const auto* vt = static_cast<const sluice_sink_vtable*>(sink->vtable);
    BenchHost host;
    auto* ctx = reinterpret_cast<sluice_host_context*>(&host);
    const std::string config = R"({"type":"sql","system":"bench","table":"bench_sink"})";
    sluice_create_args args{sizeof(sluice_create_args), 0, config.c_str(), system.c_str(), "bench", nullptr};
    void* instance = vt->create(&args, ctx);
    if (!instance) throw std::runtime_error("sink create: " + host.error);
    if (o.warm_wal) {
        exec(c, std::string("DROP TABLE IF EXISTS bench_warmup; CREATE TABLE bench_warmup ") + kColumns);
        for (long round = 0; round < 3; ++round)  // 3N rows: about the WAL of the timed passes
            for (long from = 0; from < o.rows; from += o.batch) {
                const long to = std::min(o.rows, from + o.batch);
                copy_in_batch(c, "bench_warmup", copy_text(from + round * o.rows, to + round * o.rows, 1));
            }
        exec(c, "DROP TABLE bench_warmup");
        exec(c, "CHECKPOINT");
    }
    // Inserts (empty table) beside COPY into an empty table; updates (every row changed) beside
    // COPY of the changed rows into another empty table; then the unchanged pass alone.
    const PassTimes inserts = sink_pass(o, sink, instance, host, 0, c, "bench_copy");
    exec(c, "INSERT INTO bench_floor SELECT * FROM bench_copy");  // the rows the floor's UPDATEs change
    // Like the sink's staging table: no key, no index.
    std::string stage_columns = kColumns;
    stage_columns.erase(stage_columns.find(" PRIMARY KEY"), std::string(" PRIMARY KEY").size());
    exec(c, "DROP TABLE IF EXISTS bench_stage; CREATE TEMPORARY TABLE bench_stage " + stage_columns);
    const PassTimes updates = sink_pass(o, sink, instance, host, 1, c, "bench_copy_updates", true);
    const PassTimes unchanged = sink_pass(o, sink, instance, host, 1, c, "");
    vt->destroy(instance);
    if (value(c, "SELECT count(*) FROM bench_sink") != std::to_string(o.rows) ||
        value(c, "SELECT count(*) FROM bench_sink WHERE name LIKE '%(changed)'") != std::to_string(o.rows))
        throw std::runtime_error("the sink table does not hold the updated rows");
    // The sink's rows equal the COPY'd ones, value for value.
    if (value(c, "SELECT count(*) FROM bench_sink s JOIN bench_copy_updates b USING (id) WHERE s.name = b.name AND "
                 "s.email = b.email AND s.amount = b.amount AND s.score = b.score AND s.active = b.active AND "
                 "s.created = b.created AND s.updated = b.updated AND s.tags = b.tags AND s.meta = b.meta") !=
        std::to_string(o.rows))
        throw std::runtime_error("the sink's values differ from the COPY'd ones");
    if (value(c, "SELECT count(*) FROM bench_floor WHERE name LIKE '%(changed)'") != std::to_string(o.rows))
        throw std::runtime_error("the floor's UPDATEs did not change every row");

    std::cout << "sink    raw text COPY (batches)    " << rate(n, inserts.copy) << "\n"
              << "sink    sql sink, inserts          " << rate(n, inserts.sink) << ", " << static_cast<long>(inserts.copied)
              << " rows COPYed straight in\n"
              << "sink    raw text COPY, 2nd table   " << rate(n, updates.copy) << "\n"
              << "sink    raw COPY + UPDATE … FROM   " << rate(n, updates.update) << "\n"
              << "sink    sql sink, updates          " << rate(n, updates.sink) << ", " << static_cast<long>(updates.copied)
              << " rows COPYed straight in\n"
              << "sink    sql sink, unchanged        " << rate(n, unchanged.sink) << "\n";
    const double ratio = inserts.copy / inserts.sink;
    std::printf("sink    ratio inserts vs COPY      %.2f (goal >= 0.50)\n", ratio);
    std::printf("sink    ratio updates vs COPY      %.2f\n", updates.copy / updates.sink);
    std::printf("sink    raw COPY + UPDATE vs COPY  %.2f (the server's own update cost)\n", updates.copy / updates.update);
    std::printf("sink    updates vs COPY + UPDATE   %.2f\n", updates.update / updates.sink);
    return ratio;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Options o = parse_args(argc, argv);
        std::unique_ptr<sluice::test::TempDir> tmp;
        std::unique_ptr<sluice::kernel::ManagedPostgres> pg;
        std::string dsn = o.dsn;
        if (dsn.empty()) {
            tmp = std::make_unique<sluice::test::TempDir>("sluice-sqlbench");
            pg = std::make_unique<sluice::kernel::ManagedPostgres>(tmp->path() / "pg");
            pg->start();
            dsn = pg->dsn();
        }
        PGconn* c = PQconnectdb(dsn.c_str());
        if (PQstatus(c) != CONNECTION_OK) throw std::runtime_error(std::string("connect: ") + PQerrorMessage(c));
        PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
        const std::string host = PQhost(c), port = PQport(c), db = PQdb(c), user = PQuser(c);
        const std::string system = "{\"_id\":\"bench\",\"type\":\"system:postgresql\",\"host\":\"" + host +
                                   "\",\"port\":\"" + port + "\",\"database\":\"" + db + "\",\"username\":\"" + user + "\"}";
        std::cout << "sql_bench: " << o.rows << " rows, batch " << o.batch << "\n";
        const double source_ratio = o.only == "sink" ? 1 : bench_source(o, c, system);
        const double sink_ratio = o.only == "source" ? 1 : bench_sink(o, c, system);
        std::printf("peak RSS                           %ld MB\n", peak_rss_kb() / 1024);
        PQfinish(c);
        if (o.check && (source_ratio < 0.5 || sink_ratio < 0.5)) {
            std::cout << "FAILED: a ratio is below 0.5\n";
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "sql_bench: " << e.what() << "\n";
        return 2;
    }
}

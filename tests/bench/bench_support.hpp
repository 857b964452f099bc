// Pieces the benchmarks share (bench_storage, bench_pipe, sql_bench): timing, peak RSS, a libpq
// statement runner, and the raw-COPY baseline the dataset write paths are measured against.
#pragma once

#include <libpq-fe.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::bench {

using Clock = std::chrono::steady_clock;

inline double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

inline long peak_rss_kb() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

// Runs `sql` (statements or a query); throws with the statement's start and the server's error.
inline void exec(PGconn* c, const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    if (!ok) throw std::runtime_error(sql.substr(0, 200) + ": " + msg);
}

inline void put_u16(std::string& out, uint16_t v) {
    out.push_back(char(v >> 8));
    out.push_back(char(v));
}
inline void put_u32(std::string& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(char(v >> s));
}

// The baseline's table: (id text, doc jsonb) with a unique index on the id, made anew.
inline void create_jsonb_baseline(PGconn* c) {
    exec(c, "DROP TABLE IF EXISTS bench_baseline");
    exec(c, "CREATE TABLE bench_baseline (id text COLLATE \"C\" NOT NULL, doc jsonb NOT NULL)");
    exec(c, "CREATE UNIQUE INDEX bench_baseline_id ON bench_baseline (id)");
}

// One batch (a JSON array text and its entities' ids, in order) into bench_baseline by binary
// COPY, in its own transaction: what a COPY client does with the same data — split the array
// into entities, build the COPY data, send it.
inline void copy_jsonb_batch(PGconn* c, const std::string& json, const std::vector<std::string>& ids) {
    std::string data("PGCOPY\n\377\r\n\0", 11);
    put_u32(data, 0);
    put_u32(data, 0);
    size_t pos = 1;
    for (const std::string& id : ids) {
        // Each entity object ends at the '}' that closes its top level ("},{" or "}]").
        size_t depth = 0, start = pos, i = pos;
        bool in_string = false;
        for (; i < json.size(); ++i) {
            char ch = json[i];
            if (in_string) {
                if (ch == '\\') ++i;
                else if (ch == '"') in_string = false;
            } else if (ch == '"') in_string = true;
            else if (ch == '{' || ch == '[') ++depth;
            else if (ch == '}' || ch == ']') {
                if (--depth == 0) break;
            }
        }
        std::string_view doc(json.data() + start, i + 1 - start);
        pos = i + 2;
        put_u16(data, 2);
        put_u32(data, static_cast<uint32_t>(id.size()));
        data += id;
        put_u32(data, static_cast<uint32_t>(doc.size() + 1));
        data.push_back(1);  // jsonb binary format version
        data.append(doc.data(), doc.size());
    }
    put_u16(data, 0xffff);
    PGresult* r = PQexec(c, "COPY bench_baseline (id, doc) FROM STDIN (FORMAT binary)");
    if (PQresultStatus(r) != PGRES_COPY_IN) throw std::runtime_error(PQerrorMessage(c));
    PQclear(r);
    if (PQputCopyData(c, data.data(), static_cast<int>(data.size())) != 1 || PQputCopyEnd(c, nullptr) != 1)
        throw std::runtime_error(PQerrorMessage(c));
    while ((r = PQgetResult(c)) != nullptr) {
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        std::string msg = PQresultErrorMessage(r);
        PQclear(r);
        if (!ok) throw std::runtime_error("baseline COPY failed: " + msg);
    }
}

}  // namespace sluice::bench

// The `sql` source on a `system:postgresql` system (reference §3.4 "sql", §2.3): a table or a
// query, streamed in libpq's single-row mode with binary columns (only the current row is held;
// the server keeps sending while rows are converted) and emitted in batches of the pipe's batch
// size. Single-row mode rather than DECLARE/FETCH: FETCH materialises each batch in a server-side
// tuplestore and measured twice as slow here (docs/connectors-sql.md).
// Rows become entities: `_id` from `primary_key`, one property per column, typed values as
// transit strings (see README.md for the type table). With `updated_column` a run reads rows
// with `updated_column >= since` in that column's order, and every batch carries the largest
// value read so far as its continuation token (chronological: an aborted run resumes there).
#include "pg_client.hpp"
#include "sql_values.hpp"

#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <cstring>
#include <map>
#include <set>

namespace {

using namespace sluice;
using namespace sluice::sql;

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// How a column's binary value is read. Types without a decoder here are cast to text (or text[])
// in the SELECT, so every column arrives in binary format with a known layout.
enum class Kind { Bool, Int2, Int4, Int8, Oid, Float4, Float8, Text, Bytea, Uuid, Date, Timestamp, Json, Jsonb,
                  Decimal, Array };

struct TypePlan {
    Kind kind;
    Kind element = Kind::Text;  // for arrays
    const char* cast = nullptr; // "text" / "text[]": converted by the server
};

std::optional<TypePlan> known_type(unsigned t) {
    switch (t) {
        case oid::kBool: return TypePlan{Kind::Bool};
        case oid::kInt2: return TypePlan{Kind::Int2};
        case oid::kInt4: return TypePlan{Kind::Int4};
        case oid::kInt8: return TypePlan{Kind::Int8};
        case oid::kOid: return TypePlan{Kind::Oid};
        case oid::kFloat4: return TypePlan{Kind::Float4};
        case oid::kFloat8: return TypePlan{Kind::Float8};
        case oid::kText: case oid::kVarchar: case oid::kBpchar: case oid::kName: return TypePlan{Kind::Text};
        case oid::kBytea: return TypePlan{Kind::Bytea};
        case oid::kUuid: return TypePlan{Kind::Uuid};
        case oid::kDate: return TypePlan{Kind::Date};
        case oid::kTimestamp: case oid::kTimestampTz: return TypePlan{Kind::Timestamp};
        case oid::kJson: return TypePlan{Kind::Json};
        case oid::kJsonb: return TypePlan{Kind::Jsonb};
        case oid::kNumeric: return TypePlan{Kind::Decimal, Kind::Text, "text"};
        case oid::kBoolArray: return TypePlan{Kind::Array, Kind::Bool};
        case oid::kInt2Array: return TypePlan{Kind::Array, Kind::Int2};
        case oid::kInt4Array: return TypePlan{Kind::Array, Kind::Int4};
        case oid::kInt8Array: return TypePlan{Kind::Array, Kind::Int8};
        case oid::kOidArray: return TypePlan{Kind::Array, Kind::Oid};
        case oid::kFloat4Array: return TypePlan{Kind::Array, Kind::Float4};
        case oid::kFloat8Array: return TypePlan{Kind::Array, Kind::Float8};
        case oid::kTextArray: case oid::kVarcharArray: case oid::kBpcharArray: case oid::kNameArray:
            return TypePlan{Kind::Array, Kind::Text};
        case oid::kByteaArray: return TypePlan{Kind::Array, Kind::Bytea};
        case oid::kUuidArray: return TypePlan{Kind::Array, Kind::Uuid};
        case oid::kDateArray: return TypePlan{Kind::Array, Kind::Date};
        case oid::kTimestampArray: case oid::kTimestampTzArray: return TypePlan{Kind::Array, Kind::Timestamp};
        case oid::kJsonArray: return TypePlan{Kind::Array, Kind::Json};
        case oid::kJsonbArray: return TypePlan{Kind::Array, Kind::Jsonb};
        case oid::kNumericArray: return TypePlan{Kind::Array, Kind::Decimal, "text[]"};
        default: return std::nullopt;
    }
}

struct Column {
    std::string name;
    unsigned type = 0;
    TypePlan plan{Kind::Text};
    bool emit = true;  // emitted as a property (whitelist / blacklist)
    std::string key;   // the property name as JSON text (quoted, escaped), written raw
};

// ---- binary values → JSON ---------------------------------------------------------------------

template <class T>
T bits_as(uint64_t bits) {
    T v;
    if constexpr (sizeof(T) == 4) {
        uint32_t b = static_cast<uint32_t>(bits);
        std::memcpy(&v, &b, 4);
    } else {
        std::memcpy(&v, &bits, 8);
    }
    return v;
}

bool is_nan_text(std::string_view t) { return t == "NaN" || t == "Infinity" || t == "-Infinity"; }

// False when the value has no entity form (NaN, ±Infinity, dates outside 0001…9999): such a value
// is written as null (or left out, like a NULL, unless preserve_null_values).
bool representable(Kind k, const char* p, int len) {
    switch (k) {
        case Kind::Float4: return std::isfinite(bits_as<float>(be32(p)));
        case Kind::Float8: return std::isfinite(bits_as<double>(be64(p)));
        case Kind::Date: return date_in_range(static_cast<int32_t>(be32(p)));
        case Kind::Timestamp: return timestamp_in_range(static_cast<int64_t>(be64(p)));
        case Kind::Decimal: return !is_nan_text(std::string_view(p, static_cast<size_t>(len)));
        default: return true;
    }
}

// A writer that copies numbers through as written (RapidJSON 1.1's Writer would quote them).
struct ExactNumberWriter : JsonWriter {
    using JsonWriter::JsonWriter;
    bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
        return RawValue(text, length, rapidjson::kNumberType);
    }
};

void write_json_text(JsonWriter& w, std::string_view text, std::string& scratch) {
    // Re-serialised through a SAX pass: whitespace normalised (so json and jsonb hash alike),
    // numbers kept exactly as written (kParseNumbersAsStringsFlag → RawNumber).
    thread_local rapidjson::StringBuffer buffer;
    buffer.Clear();
    ExactNumberWriter inner(buffer);
    rapidjson::Reader reader;
    rapidjson::MemoryStream ms(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
    if (reader.Parse<rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseStopWhenDoneFlag>(in, inner)) {
        w.RawValue(buffer.GetString(), buffer.GetSize(), rapidjson::kObjectType);
    } else {
        scratch.assign(text);
        w.String(scratch.data(), static_cast<rapidjson::SizeType>(scratch.size()));  // not JSON RapidJSON reads
    }
}

void write_value(JsonWriter& w, Kind k, Kind element, const char* p, int len, std::string& scratch);

// One dimension of a binary array (nested lists for more dimensions, row-major order).
void write_dimension(JsonWriter& w, Kind element, const std::vector<int32_t>& dims, size_t d, const char*& cur,
                     const char* end, std::string& scratch) {
    w.StartArray();
    for (int32_t i = 0; i < dims[d]; ++i) {
        if (d + 1 < dims.size()) {
            write_dimension(w, element, dims, d + 1, cur, end, scratch);
            continue;
        }
        if (cur + 4 > end) break;
        const int32_t elen = static_cast<int32_t>(be32(cur));
        cur += 4;
        if (elen < 0 || cur + elen > end || !representable(element, cur, elen)) w.Null();
        else write_value(w, element, Kind::Text, cur, elen, scratch);
        if (elen > 0) cur += elen;
    }
    w.EndArray();
}

void write_array(JsonWriter& w, Kind element, const char* p, int len, std::string& scratch) {
    const int32_t ndim = len >= 12 ? static_cast<int32_t>(be32(p)) : 0;
    if (ndim <= 0 || len < 12 + 8 * ndim) {
        w.StartArray();
        w.EndArray();
        return;
    }
    std::vector<int32_t> dims(static_cast<size_t>(ndim));
    const char* cur = p + 12;
    for (int32_t d = 0; d < ndim; ++d) {
        dims[static_cast<size_t>(d)] = static_cast<int32_t>(be32(cur));
        cur += 8;  // size + lower bound
    }
    write_dimension(w, element, dims, 0, cur, p + len, scratch);
}

// A string built by this plugin that needs no JSON escaping (typed values, decimals): written
// raw, quotes included, skipping the writer's per-character escape check.
void write_plain(JsonWriter& w, std::string& quoted) {
    quoted.push_back('"');
    w.RawValue(quoted.data(), quoted.size(), rapidjson::kStringType);
}

void write_value(JsonWriter& w, Kind k, Kind element, const char* p, int len, std::string& scratch) {
    switch (k) {
        case Kind::Bool: w.Bool(p[0] != 0); return;
        case Kind::Int2: w.Int(static_cast<int16_t>(be16(p))); return;
        case Kind::Int4: w.Int(static_cast<int32_t>(be32(p))); return;
        case Kind::Int8: w.Int64(static_cast<int64_t>(be64(p))); return;
        case Kind::Oid: w.Uint(be32(p)); return;
        case Kind::Float4:
        case Kind::Float8: {
            scratch.clear();
            const bool ok = k == Kind::Float4 ? format_float(bits_as<float>(be32(p)), scratch)
                                              : format_float(bits_as<double>(be64(p)), scratch);
            if (ok) w.RawValue(scratch.data(), scratch.size(), rapidjson::kNumberType);
            else w.Null();
            return;
        }
        case Kind::Text: w.String(p, static_cast<rapidjson::SizeType>(len)); return;
        case Kind::Bytea:
            scratch.assign("\"~b");
            base64_append(scratch, std::string_view(p, static_cast<size_t>(len)));
            write_plain(w, scratch);
            return;
        case Kind::Uuid:
            scratch.assign("\"~u");
            format_uuid(p, scratch);
            write_plain(w, scratch);
            return;
        case Kind::Date:
            scratch.assign("\"~t");
            if (format_date(static_cast<int32_t>(be32(p)), scratch)) write_plain(w, scratch);
            else w.Null();
            return;
        case Kind::Timestamp:
            scratch.assign("\"~t");
            if (format_timestamp(static_cast<int64_t>(be64(p)), scratch)) write_plain(w, scratch);
            else w.Null();
            return;
        case Kind::Json: write_json_text(w, std::string_view(p, static_cast<size_t>(len)), scratch); return;
        case Kind::Jsonb:
            // Binary jsonb: a version byte (1), then the text.
            if (len >= 1 && p[0] == 1) write_json_text(w, std::string_view(p + 1, static_cast<size_t>(len - 1)), scratch);
            else w.Null();
            return;
        case Kind::Decimal: {
            std::string_view t(p, static_cast<size_t>(len));
            if (is_nan_text(t)) {
                w.Null();
                return;
            }
            scratch.assign("\"~f");
            scratch.append(t);
            write_plain(w, scratch);
            return;
        }
        case Kind::Array: write_array(w, element, p, len, scratch); return;
    }
}

// The text of a key value inside `_id`: the value without its transit tag ("42", "abc",
// "2024-01-02T03:04:05Z", "531a…", "1.50", "true", base64 for bytes).
void key_text(const Column& c, const char* p, int len, std::string& out) {
    std::string scratch;
    switch (c.plan.kind) {
        case Kind::Bool: out.append(p[0] ? "true" : "false"); return;
        case Kind::Int2: out.append(std::to_string(static_cast<int16_t>(be16(p)))); return;
        case Kind::Int4: out.append(std::to_string(static_cast<int32_t>(be32(p)))); return;
        case Kind::Int8: out.append(std::to_string(static_cast<int64_t>(be64(p)))); return;
        case Kind::Oid: out.append(std::to_string(be32(p))); return;
        case Kind::Float4: format_float(bits_as<float>(be32(p)), out); return;
        case Kind::Float8: format_float(bits_as<double>(be64(p)), out); return;
        case Kind::Text: case Kind::Decimal: out.append(p, static_cast<size_t>(len)); return;
        case Kind::Bytea: base64_append(out, std::string_view(p, static_cast<size_t>(len))); return;
        case Kind::Uuid: format_uuid(p, out); return;
        case Kind::Date:
            if (!format_date(static_cast<int32_t>(be32(p)), out)) out.append("infinity");
            return;
        case Kind::Timestamp:
            if (!format_timestamp(static_cast<int64_t>(be64(p)), out)) out.append("infinity");
            return;
        case Kind::Json: case Kind::Jsonb: case Kind::Array: {
            rapidjson::StringBuffer buffer;
            JsonWriter w(buffer);
            write_value(w, c.plan.kind, c.plan.element, p, len, scratch);
            out.append(buffer.GetString(), buffer.GetSize());
            return;
        }
    }
}

// Replaces the `:since` placeholder of an updated_query with $1.
std::string bind_since(const std::string& query) {
    std::string out;
    for (size_t i = 0; i < query.size();) {
        if (query.compare(i, 6, ":since") == 0 && (i == 0 || query[i - 1] != ':') &&
            (i + 6 == query.size() || !(std::isalnum(static_cast<unsigned char>(query[i + 6])) || query[i + 6] == '_'))) {
            out += "$1";
            i += 6;
        } else {
            out.push_back(query[i++]);
        }
    }
    return out;
}

std::string strip_statement(std::string q) {
    while (!q.empty() && (std::isspace(static_cast<unsigned char>(q.back())) || q.back() == ';')) q.pop_back();
    return q;
}

class SqlSource : public Source {
public:
    SqlSource(const CreateArgs& args, Host&)
        : system_(SystemConfig::parse(args.system, "sql source")), pool_(Pool::for_system(system_)) {
        const std::string who = "sql source";
        table_ = string_or(args.config, "table", "");
        query_ = strip_statement(string_or(args.config, "query", ""));
        if (!table_.empty()) query_.clear();  // table wins (reference §3.4)
        if (table_.empty() && query_.empty()) throw Error(who + ": set 'table' or 'query'", SLUICE_FATAL);
        schema_ = string_or(args.config, "schema", "");
        primary_key_ = string_list(args.config, "primary_key", who);
        if (!query_.empty() && primary_key_.empty())
            throw Error(who + ": 'primary_key' is required with 'query'", SLUICE_FATAL);
        updated_column_ = string_or(args.config, "updated_column", "");
        updated_query_ = strip_statement(string_or(args.config, "updated_query", ""));
        if (!updated_query_.empty() && query_.empty())
            throw Error(who + ": 'updated_query' goes with 'query' (not 'table')", SLUICE_FATAL);
        if (!updated_query_.empty() && updated_column_.empty())
            throw Error(who + ": 'updated_query' needs 'updated_column'", SLUICE_FATAL);
        if (!updated_query_.empty() && bind_since(updated_query_) == updated_query_)
            throw Error(who + ": 'updated_query' must compare with :since (e.g. \"... WHERE updated >= :since\")",
                        SLUICE_FATAL);
        for (const std::string& c : string_list(args.config, "whitelist", who)) whitelist_.insert(c);
        for (const std::string& c : string_list(args.config, "blacklist", who)) blacklist_.insert(c);
        // fetch_size (Sesam: rows per round trip) is accepted; rows stream one at a time here.
        if (int_or(args.config, "fetch_size", 1000) < 1) throw Error(who + ": 'fetch_size' must be at least 1", SLUICE_FATAL);
        preserve_nulls_ = bool_or(args.config, "preserve_null_values", false);
        chronological_full_ = bool_or(args.config, "is_chronological_full", true);
        fail_if_empty_ = string_or(args.config, "if_source_empty", "accept") == "fail";
    }

    void read(Host& host, const char* since, uint32_t batch_size) override {
        const bool incremental = !updated_column_.empty() && since && *since;
        const bool ordered = !updated_column_.empty() && (incremental || chronological_full_);
        if (batch_size == 0) batch_size = 100;

        Pool::Lease lease = pool_->acquire();
        Connection& c = *lease;
        // The whole read is one statement streamed row by row (no FETCH round trips), so a
        // server or role statement_timeout would cut off a large table part way; like pg_dump,
        // the read lifts it for this transaction only (SET LOCAL ends with it).
        Transaction tx(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = 0");

        // The base query, its columns, and the SELECT that reads them.
        const bool use_updated_query = incremental && !updated_query_.empty();
        std::string base = !table_.empty() ? "SELECT * FROM " + resolve_table(c)
                           : use_updated_query ? bind_since(updated_query_)
                                               : query_;
        std::vector<Column> columns = describe(c, base, use_updated_query ? 1 : 0);
        std::vector<int> key_cols = key_columns(c, columns);
        int updated_col = -1;
        if (!updated_column_.empty()) {
            updated_col = find_column(columns, updated_column_);
            if (updated_col < 0)
                throw Error("system '" + system_.id + "': updated_column '" + updated_column_ + "' is not a column of " +
                            what() + " (columns: " + names(columns) + ")");
        }

        std::string select = "SELECT ";
        for (size_t i = 0; i < columns.size(); ++i) {
            const Column& col = columns[i];
            if (i) select += ", ";
            std::string ref = "q." + c.ident(col.name);
            if (col.type == oid::kTimestamp && !system_.utc())
                ref = "(" + ref + " AT TIME ZONE " + c.literal(system_.timezone) + ")";  // to UTC (reference §3.4)
            if (col.plan.cast) ref += "::" + std::string(col.plan.cast);
            select += ref;
        }
        if (updated_col >= 0) select += ", q." + c.ident(updated_column_) + "::text";
        select += " FROM (" + base + ") AS q";
        if (incremental && !use_updated_query) select += " WHERE q." + c.ident(updated_column_) + " >= $1";
        if (ordered) select += " ORDER BY q." + c.ident(updated_column_);

        Params params;
        if (incremental) params.add(since);

        // Stream the rows (libpq single-row mode: one row held at a time, the server keeps
        // sending while rows are converted); emit every batch_size entities.
        const std::string read_what = "reading " + what();
        c.stream_begin(select, params, read_what);
        struct StreamGuard {
            Connection& c;
            bool done = false;
            ~StreamGuard() {
                if (done) return;
                c.cancel();  // stopped part way (downstream failure, bad row): stop the server too
                c.abandon();
            }
        } guard{c};

        rapidjson::StringBuffer buffer;
        JsonWriter w(buffer);
        w.StartArray();
        size_t in_batch = 0, total = 0;
        std::string token, id, part, scratch;
        const int token_col = updated_col >= 0 ? static_cast<int>(columns.size()) : -1;
        auto flush = [&] {
            if (in_batch == 0) return;
            w.EndArray();
            host.emit(std::string_view(buffer.GetString(), buffer.GetSize()), in_batch,
                      ordered && !token.empty() ? token.c_str() : nullptr);
            buffer.Clear();
            w.Reset(buffer);
            w.StartArray();
            in_batch = 0;
            if (host.cancelled()) throw Error("sql source: the run was stopped");
        };

        while (Result r = c.stream_next(read_what)) {
            constexpr int row = 0;
            id.clear();
            for (size_t k = 0; k < key_cols.size(); ++k) {
                const int kc = key_cols[k];
                if (r.null(row, kc))
                    throw Error("system '" + system_.id + "': " + what() + ": a row has NULL in primary key column '" +
                                columns[static_cast<size_t>(kc)].name + "'");
                if (key_cols.size() == 1) {
                    key_text(columns[static_cast<size_t>(kc)], r.data(row, kc), r.length(row, kc), id);
                } else {
                    part.clear();
                    key_text(columns[static_cast<size_t>(kc)], r.data(row, kc), r.length(row, kc), part);
                    if (k) id.push_back(kKeySeparator);
                    append_key_part(id, part, true);
                }
            }
            w.StartObject();
            w.Key("_id", 3);
            w.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
            for (size_t i = 0; i < columns.size(); ++i) {
                const Column& col = columns[i];
                if (!col.emit) continue;
                const int ci = static_cast<int>(i);
                const bool is_null = r.null(row, ci) || !representable(col.plan.kind, r.data(row, ci), r.length(row, ci));
                if (is_null && !preserve_nulls_) continue;
                w.RawValue(col.key.data(), col.key.size(), rapidjson::kStringType);
                if (is_null) w.Null();
                else write_value(w, col.plan.kind, col.plan.element, r.data(row, ci), r.length(row, ci), scratch);
            }
            if (token_col >= 0 && !r.null(row, token_col)) {
                // Ordered by the column: the latest row holds the largest value so far.
                std::string_view t = r.text(row, token_col);
                if (ordered) token.assign(t);
                w.Key("_updated", 8);
                w.String(t.data(), static_cast<rapidjson::SizeType>(t.size()));
            }
            w.EndObject();
            ++in_batch;
            ++total;
            if (in_batch >= batch_size) flush();
        }
        guard.done = true;
        flush();

        if (!ordered && updated_col >= 0) {
            // A full run without ORDER BY (is_chronological_full: false): the largest value read,
            // from the same snapshot, becomes the token once the run completes.
            Result m = c.exec("SELECT max(q." + c.ident(updated_column_) + ")::text FROM (" + base + ") AS q", Params(),
                              false, "reading the largest " + updated_column_ + " of " + what());
            if (m.rows() == 1 && !m.null(0, 0)) host.set_continuation(std::string(m.text(0, 0)));
        }
        tx.commit();
        host.metric("sql_source_rows", static_cast<double>(total));
        if (fail_if_empty_ && !incremental && total == 0)
            throw Error("system '" + system_.id + "': " + what() + " returned no rows (if_source_empty: fail)");
    }

private:
    std::string what() const {
        return !table_.empty() ? "table '" + (schema_.empty() ? "" : schema_ + ".") + table_ + "'" : "the query";
    }

    // The table as a regclass text (quoted as needed). The exact (quoted) name first, then the
    // name as PostgreSQL would read it unquoted (case folded; "schema.table" allowed).
    std::string resolve_table(Connection& c) {
        std::vector<std::string> candidates;
        candidates.push_back((schema_.empty() ? "" : c.ident(schema_) + ".") + c.ident(table_));
        candidates.push_back((schema_.empty() ? "" : schema_ + ".") + table_);
        for (const std::string& name : candidates) {
            Result r;
            c.exec("SAVEPOINT sluice_lookup");
            try {
                r = c.exec("SELECT to_regclass($1)::oid, to_regclass($1)::text", Params().add(name), false,
                           "looking up " + what());
                c.exec("RELEASE SAVEPOINT sluice_lookup");
            } catch (const PgError& e) {
                if (transient_sqlstate(e.sqlstate())) throw;
                c.exec("ROLLBACK TO SAVEPOINT sluice_lookup");
                continue;  // not a valid name in this spelling
            }
            if (r.rows() == 1 && !r.null(0, 0)) {
                table_oid_ = std::string(r.text(0, 0));
                return std::string(r.text(0, 1));
            }
        }
        throw Error("system '" + system_.id + "': " + what() + " does not exist in database '" + system_.database + "'");
    }

    std::vector<Column> describe(Connection& c, const std::string& base, int param_count) {
        Result d = c.describe(base, param_count, "describing " + what());
        std::vector<Column> columns;
        std::set<std::string> seen;
        std::vector<unsigned> unknown;
        for (int i = 0; i < d.columns(); ++i) {
            Column col;
            col.name = PQfname(d.get(), i);
            col.type = PQftype(d.get(), i);
            if (!seen.insert(col.name).second)
                throw Error("system '" + system_.id + "': " + what() + " returns the column '" + col.name +
                            "' twice; give the columns unique names");
            if (auto plan = known_type(col.type)) col.plan = *plan;
            else unknown.push_back(col.type);
            col.emit = (whitelist_.empty() || whitelist_.count(col.name)) && !blacklist_.count(col.name);
            rapidjson::StringBuffer quoted;
            JsonWriter kw(quoted);
            kw.String(col.name.data(), static_cast<rapidjson::SizeType>(col.name.size()));
            col.key.assign(quoted.GetString(), quoted.GetSize());
            columns.push_back(std::move(col));
        }
        if (!unknown.empty()) {
            // Other types (enums, intervals, ranges, geometry, ...) arrive as text; arrays of
            // them as lists of text.
            std::string list = "{";
            for (size_t i = 0; i < unknown.size(); ++i) list += (i ? "," : "") + std::to_string(unknown[i]);
            list += "}";
            Result t = c.exec("SELECT oid::int8, typcategory = 'A' AND typelem <> 0 FROM pg_type WHERE oid = ANY($1::oid[])",
                              Params().add(list), false, "looking up column types");
            std::map<unsigned, bool> is_array;
            for (int i = 0; i < t.rows(); ++i)
                is_array[static_cast<unsigned>(std::stoul(std::string(t.text(i, 0))))] = t.text(i, 1) == "t";
            for (Column& col : columns) {
                if (known_type(col.type)) continue;
                col.plan = is_array[col.type] ? TypePlan{Kind::Array, Kind::Text, "text[]"} : TypePlan{Kind::Text, Kind::Text, "text"};
            }
        }
        return columns;
    }

    static int find_column(const std::vector<Column>& columns, const std::string& name) {
        for (size_t i = 0; i < columns.size(); ++i)
            if (columns[i].name == name) return static_cast<int>(i);
        return -1;
    }
    static std::string names(const std::vector<Column>& columns) {
        std::string out;
        for (const Column& c : columns) out += (out.empty() ? "" : ", ") + c.name;
        return out;
    }

    std::vector<int> key_columns(Connection& c, const std::vector<Column>& columns) {
        std::vector<std::string> key = primary_key_;
        if (key.empty()) key = table_primary_key(c);
        std::vector<int> out;
        for (const std::string& k : key) {
            const int i = find_column(columns, k);
            if (i < 0)
                throw Error("system '" + system_.id + "': primary_key column '" + k + "' is not a column of " + what() +
                            " (columns: " + names(columns) + ")");
            out.push_back(i);
        }
        return out;
    }

    // The table's primary key from the catalog (primary_key not configured).
    std::vector<std::string> table_primary_key(Connection& c) {
        Result r = c.exec(
            "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.n",
            Params().add(table_oid_), false, "reading the primary key of " + what());
        std::vector<std::string> key;
        for (int i = 0; i < r.rows(); ++i) key.emplace_back(r.text(i, 0));
        if (key.empty())
            throw Error("system '" + system_.id + "': " + what() + " has no primary key; set 'primary_key'");
        return key;
    }

    SystemConfig system_;
    std::shared_ptr<Pool> pool_;
    std::string table_, query_, schema_, updated_column_, updated_query_, table_oid_;
    std::vector<std::string> primary_key_;
    std::set<std::string> whitelist_, blacklist_;
    bool preserve_nulls_ = false, chronological_full_ = true, fail_if_empty_ = false;
};

}  // namespace

// SUPPORTS_SINCE and CHRONOLOGICAL describe an instance with `updated_column`; without it the
// source ignores `since` and emits no token, so every run is a full run (README.md).
SLUICE_PLUGIN("sluice-source-sql", "1.0.0", "Reads a PostgreSQL table or query (system:postgresql)", "Apache-2.0",
              sluice::source<SqlSource>("sql", SLUICE_SCHEMA_JSON,
                                        SLUICE_CAP_SUPPORTS_SINCE | SLUICE_CAP_CHRONOLOGICAL))

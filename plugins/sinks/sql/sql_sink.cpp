// The `sql` sink on a `system:postgresql` system (reference §3.6 "sql"): each batch is one
// transaction — a text COPY of the batch into a temporary staging table, then one set-based
// `MERGE` that deletes the rows of entities with `_deleted: true`, updates changed rows and
// inserts new ones (sent in the same query string as the COPY); where MERGE would not do exactly
// what ON CONFLICT does (see merge_fits), one `DELETE … USING` and one
// `INSERT … ON CONFLICT (primary key) DO UPDATE` instead. Never a statement per entity.
// Typed values are converted back to the column's type (~t → timestamptz/date, ~f → numeric,
// ~b → bytea, ~u → uuid, lists → arrays, objects → json/jsonb). See README.md.
#include "pg_client.hpp"
#include "sql_values.hpp"

#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>

namespace {

using namespace sluice;
using namespace sluice::sql;

// How entity values are written into a column.
enum class Class { Text, Bool, Int, Float, Json, Bytea, Array };

Class class_of(unsigned base_oid, char category) {
    switch (base_oid) {
        case oid::kBool: return Class::Bool;
        case oid::kInt2: case oid::kInt4: case oid::kInt8: case oid::kOid: return Class::Int;
        case oid::kFloat4: case oid::kFloat8: case oid::kNumeric: return Class::Float;
        case oid::kJson: case oid::kJsonb: return Class::Json;
        case oid::kBytea: return Class::Bytea;
        default: return category == 'A' ? Class::Array : Class::Text;
    }
}

struct Target {
    std::string name;      // column name
    std::string property;  // entity property it is read from
    std::string type;      // format_type() of the column's base type (the staging column's type)
    Class cls = Class::Text;
    Class element = Class::Text;  // for arrays
    bool comparable = true;       // has equality (json has none: compared as jsonb)
    bool is_json = false;
    bool identity = false;           // an identity column (written only with skip_identity_columns off)
    const Json* fallback = nullptr;  // schema_definition "default" for a missing property
};

// ---- COPY text ---------------------------------------------------------------------------------

void copy_escape(std::string& out, std::string_view s) {
    size_t run = 0;  // start of the current stretch that needs no escaping
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c != '\\' && c != '\n' && c != '\r' && c != '\t') continue;
        out.append(s.data() + run, i - run);
        out.push_back('\\');
        out.push_back(c == '\\' ? '\\' : c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
        run = i + 1;
    }
    out.append(s.data() + run, s.size() - run);
}

void append_hex_bytes(std::string& out, std::string_view bytes) {
    static const char digits[] = "0123456789abcdef";
    out.append("\\x");
    for (char b : bytes) {
        out.push_back(digits[static_cast<unsigned char>(b) >> 4]);
        out.push_back(digits[static_cast<unsigned char>(b) & 15]);
    }
}

// Thrown for a value the column cannot take (the message names the property).
struct BadValue : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// "~:crm:42" → "42", "~:42" → "42": a namespaced identifier's plain id (as DTL's ni-id).
std::string_view plain_id(std::string_view ni) {
    std::string_view body = ni.substr(2);
    const size_t colon = body.find(':');
    return colon == std::string_view::npos ? body : body.substr(colon + 1);
}

// The PostgreSQL input text of a scalar entity value for a column of class `cls` (not escaped).
// `plain_ni`: a namespaced identifier is written as its plain id (remove_namespaces).
void scalar_text(const Json& v, Class cls, bool plain_ni, std::string& out) {
    if (v.IsString()) {
        std::string_view s = as_view(v);
        const TypedKind kind = typed_kind(s);
        if (cls == Class::Bytea) {
            if (kind == TypedKind::Bytes) {
                std::optional<std::string> bytes = base64_decode(s.substr(2));
                if (!bytes) throw BadValue("invalid base64 in a ~b value");
                append_hex_bytes(out, *bytes);
            } else {
                append_hex_bytes(out, s);
            }
            return;
        }
        // A typed value is written as its value: "~t2015-01-02T03:04:05Z" → 2015-01-02T03:04:05Z.
        if (kind == TypedKind::NamespacedId && plain_ni) s = plain_id(s);
        else if (kind != TypedKind::None) s.remove_prefix(2);
        out.append(s);
        return;
    }
    if (v.IsBool()) {
        out.append(v.GetBool() ? "true" : "false");
        return;
    }
    if (v.IsInt64()) {
        out.append(std::to_string(v.GetInt64()));
        return;
    }
    if (v.IsUint64()) {
        out.append(std::to_string(v.GetUint64()));
        return;
    }
    if (v.IsNumber()) {
        const double d = v.GetDouble();
        if (!std::isfinite(d)) throw BadValue("not a finite number");
        if (cls == Class::Int && d == std::floor(d) && std::fabs(d) < 9.2e18) {
            out.append(std::to_string(static_cast<int64_t>(d)));
            return;
        }
        char buf[64];
        auto r = std::to_chars(buf, buf + sizeof buf, d);
        out.append(buf, static_cast<size_t>(r.ptr - buf));
        return;
    }
    out.append(to_json(v));  // an object or a list where the column wants a scalar: its JSON
}

// A PostgreSQL array literal from a JSON list (nested lists → more dimensions).
void array_literal(const Json& list, Class element, bool plain_ni, std::string& out) {
    out.push_back('{');
    bool first = true;
    std::string text;
    for (const Json& item : list.GetArray()) {
        if (!first) out.push_back(',');
        first = false;
        if (item.IsNull()) {
            out.append("NULL");
        } else if (item.IsArray()) {
            array_literal(item, element, plain_ni, out);
        } else {
            text.clear();
            if (element == Class::Json) text = to_json(item);
            else scalar_text(item, element, plain_ni, text);
            out.push_back('"');
            for (char c : text) {
                if (c == '"' || c == '\\') out.push_back('\\');
                out.push_back(c);
            }
            out.push_back('"');
        }
    }
    out.push_back('}');
}

void copy_field(const Json* v, const Target& t, bool plain_ni, std::string& out, std::string& scratch) {
    if (!v || v->IsNull()) {
        out.append("\\N");
        return;
    }
    scratch.clear();
    if (t.cls == Class::Json) scratch = to_json(*v);
    else if (t.cls == Class::Array && v->IsArray()) array_literal(*v, t.element, plain_ni, scratch);
    else scalar_text(*v, t.cls, plain_ni, scratch);
    copy_escape(out, scratch);
}

constexpr size_t kCopyPiece = 64 * 1024;  // COPY data goes out in pieces of about this size

// ---- schema_definition -------------------------------------------------------------------------

struct Definition {
    std::string source_property, name, type;
    bool primary_key = false, allow_null = true, index = false;
    int64_t max_size = 0, precision = 0, scale = -1;
    const Json* fallback = nullptr;
};

std::string sql_type(const Definition& d, const std::string& who) {
    const std::string& t = d.type;
    if (t == "string") return d.max_size > 0 ? "varchar(" + std::to_string(d.max_size) + ")" : "text";
    if (t == "integer") return "bigint";
    if (t == "decimal") {
        if (d.precision <= 0) return "numeric";
        return "numeric(" + std::to_string(d.precision) + (d.scale >= 0 ? "," + std::to_string(d.scale) : "") + ")";
    }
    if (t == "float") return "double precision";
    if (t == "binary") return "bytea";
    if (t == "datetime") return "timestamptz";
    if (t == "date") return "date";
    if (t == "time") return "time";
    if (t == "uuid") return "uuid";
    if (t == "boolean") return "boolean";
    if (t == "json") return "jsonb";
    throw Error(who + ": schema_definition: column '" + d.name + "' has unknown type '" + t +
                    "' (string, integer, decimal, float, binary, datetime, date, time, uuid, boolean, json)",
                SLUICE_FATAL);
}

class SqlSink : public Sink {
public:
    SqlSink(const CreateArgs& args, Host&)
        : system_(SystemConfig::parse(args.system, "sql sink")), pool_(Pool::for_system(system_)) {
        const std::string who = "sql sink";
        config_.CopyFrom(args.config, config_.GetAllocator());  // schema_definition defaults point into it
        table_ = string_or(config_, "table", "");
        if (table_.empty()) throw Error(who + ": 'table' is required", SLUICE_FATAL);
        schema_ = string_or(config_, "schema", "");
        primary_key_ = string_list(config_, "primary_key", who);
        create_if_missing_ = bool_or(config_, "create_table_if_missing", false);
        truncate_first_ = bool_or(config_, "truncate_table_on_first_run", false);
        recreate_first_ = bool_or(config_, "recreate_table_on_first_run", false);
        skip_identity_ = bool_or(config_, "skip_identity_columns", false);
        timestamp_column_ = string_or(config_, "timestamp", "");
        remove_namespaces_ = bool_or(config_, "remove_namespaces", false);
        if (const Json* defs = find_member(config_, "schema_definition"); defs && !defs->IsNull()) {
            if (!defs->IsArray()) throw Error(who + ": 'schema_definition' must be a list", SLUICE_FATAL);
            for (const Json& d : defs->GetArray()) {
                Definition def;
                def.source_property = string_or(d, "source_property", "");
                def.name = string_or(d, "name", def.source_property);
                if (def.source_property.empty()) def.source_property = def.name;
                if (def.name.empty())
                    throw Error(who + ": every schema_definition column needs 'name' or 'source_property'", SLUICE_FATAL);
                def.type = string_or(d, "type", "string");
                def.primary_key = bool_or(d, "primary_key", false);
                def.allow_null = bool_or(d, "allow_null", !def.primary_key);
                def.index = bool_or(d, "index", false);
                def.max_size = int_or(d, "max_size", 0);
                def.precision = int_or(d, "precision", 0);
                def.scale = int_or(d, "scale", -1);
                def.fallback = find_member(d, "default");
                sql_type(def, who);  // checks the type now
                definitions_.push_back(def);
            }
            if (primary_key_.empty())
                for (const Definition& d : definitions_)
                    if (d.primary_key) primary_key_.push_back(d.name);
        }
        if ((create_if_missing_ || recreate_first_) && definitions_.empty())
            throw Error(who + ": create_table_if_missing / recreate_table_on_first_run need a 'schema_definition'",
                        SLUICE_FATAL);
        if ((create_if_missing_ || recreate_first_) && primary_key_.empty())
            throw Error(who + ": schema_definition needs at least one column with \"primary_key\": true", SLUICE_FATAL);
    }

    void begin_run(Host&, bool full) override {
        if (!full || !(truncate_first_ || recreate_first_)) return;
        Pool::Lease lease = pool_->acquire();
        Connection& c = *lease;
        if (recreate_first_) {
            Transaction tx(c);
            c.exec("DROP TABLE IF EXISTS " + qualified(c), "dropping " + what());
            create_table(c);
            tx.commit();
            prepared_ = false;
        } else {
            prepare(c);
            c.exec("TRUNCATE " + relation_, "truncating " + what());
        }
        copy_first_backoff_ = copy_first_skip_ = 0;  // an empty table: the first load is COPYed in
    }

    void write(Host& host, const sluice_batch& raw) override {
        if (raw.count == 0 && std::string_view(raw.data, raw.size).find('{') == std::string_view::npos) return;
        if (raw.format != SLUICE_FORMAT_JSON_ARRAY) throw Error("unsupported batch format " + std::to_string(raw.format));
        Pool::Lease lease = pool_->acquire();
        Connection& c = *lease;
        if (!prepared_) prepare(c);
        const Counts n = parse(raw);
        size_t copied = 0;
        if (try_copy_first(n)) {
            try {
                write_batch(c, Statement::Copy);
                copy_first_backoff_ /= 2;
                copied = n.upserts;
            } catch (const PgError& e) {
                // A key already in the table (or twice in the batch), a rejected value, a
                // permission: the batch was rolled back, and the MERGE below writes it or names
                // the failure with the entity and column. Not tried again for a while.
                if (e.status() == SLUICE_RETRY) throw;
                copy_first_backoff_ = std::min<size_t>(std::max<size_t>(copy_first_backoff_ * 2, 8), 1024);
                copy_first_skip_ = copy_first_backoff_;
            }
        }
        if (!copied) {
            ensure_staging(c);
            if (merge_ && PQserverVersion(c.raw()) >= 150000) {
                try {
                    write_batch(c, Statement::Merge);
                } catch (const PgError& e) {
                    // MERGE, unlike ON CONFLICT, fails with a unique violation when another writer
                    // inserts one of the batch's keys after the MERGE looked for it. The batch was
                    // rolled back: write it again the ON CONFLICT way, which takes such a row as an
                    // update. (A violation of another unique index fails there too, and is reported.)
                    if (e.sqlstate() != "23505") throw;
                    write_batch(c, Statement::OnConflict);
                }
            } else {
                write_batch(c, Statement::OnConflict);
            }
        }
        host.metric("sql_sink_upserts", static_cast<double>(n.upserts));
        host.metric("sql_sink_deletes", static_cast<double>(n.deletes));
        host.metric("sql_sink_copied", static_cast<double>(copied));
    }

private:
    struct Counts {
        size_t deletes = 0, upserts = 0;
        bool repeated_ids = false;  // an _id occurs twice in the batch
    };

    // How a batch is written (one transaction each):
    //  Copy:       a COPY straight into the table — the rows of a batch whose keys are all new,
    //              as in a first load. Any conflict fails it (the key's unique index sees to
    //              that, merge_fits), and the batch is written again by Merge.
    //  Merge:      a COPY into staging, then one MERGE that deletes, updates and inserts.
    //  OnConflict: a COPY into staging, then one DELETE and one INSERT … ON CONFLICT.
    enum class Statement { Copy, Merge, OnConflict };

    // Whether to try Statement::Copy for this batch: the table takes it (copy_fits_), the batch
    // only inserts (no tombstones, no _id twice), and no Copy failed in the last few batches (a
    // batch of updates fails it at its first row; after each failure it waits twice as many
    // batches before trying again, up to 1024, so a stream of updates pays at most 1/1024 of a
    // failed attempt per batch; a success halves the wait, so a first load soon COPYs every
    // batch again while a mix of new keys and updates keeps a long one).
    bool try_copy_first(const Counts& n) {
        if (!copy_fits_ || n.deletes || n.repeated_ids || n.upserts == 0) return false;
        if (copy_first_skip_ > 0) {
            --copy_first_skip_;
            return false;
        }
        return true;
    }

    // Parses the batch in place (values point into text_; a batch written twice is parsed once)
    // and collects its ids; throws naming the entity without a string _id.
    Counts parse(const sluice_batch& raw) {
        text_.assign(raw.data, raw.size);
        doc_ = JsonDocument();
        doc_.ParseInsitu<rapidjson::kParseFullPrecisionFlag>(text_.data());
        if (doc_.HasParseError())
            throw Error("system '" + system_.id + "': " + what() + ": batch: malformed JSON at byte " +
                        std::to_string(doc_.GetErrorOffset()));
        if (!doc_.IsArray()) throw Error("system '" + system_.id + "': " + what() + ": batch: expected a JSON array");
        Counts n;
        ids_.clear();
        deleted_.clear();
        for (rapidjson::SizeType i = 0; i < doc_.Size(); ++i) {
            Entity e(doc_[i], doc_.GetAllocator());
            std::optional<std::string_view> id = e.id();
            if (!id)
                throw Error("system '" + system_.id + "': " + what() + ": entity #" + std::to_string(i + 1) +
                            " of the batch has no string _id");
            ids_.emplace_back(*id);
            deleted_.push_back(e.deleted());
            (deleted_.back() ? n.deletes : n.upserts)++;
        }
        sorted_ids_.assign(ids_.begin(), ids_.end());
        std::sort(sorted_ids_.begin(), sorted_ids_.end());
        n.repeated_ids = std::adjacent_find(sorted_ids_.begin(), sorted_ids_.end()) != sorted_ids_.end();
        return n;
    }

    // One transaction, one round trip: the rows streamed by COPY (sent in pieces while the rest
    // is built, so the server parses while the client converts), then for Merge the MERGE, sent
    // in the same query string as the COPY, for OnConflict one DELETE and one INSERT … ON
    // CONFLICT, then COMMIT.
    void write_batch(Connection& c, Statement statement) {
        const std::string copy_what = "writing the batch to " + what();
        const std::string upsert_what = "upserting into " + what();
        const bool staged = statement != Statement::Copy;
        c.copy_send(statement == Statement::Copy    ? "BEGIN; " + direct_copy_sql_ + "; COMMIT"
                    : statement == Statement::Merge ? merge_prefix_ + copy_sql_ + "; " + merge_sql_ + "; COMMIT"
                                                    : "BEGIN; " + copy_sql_,
                    copy_what);
        Transaction tx(c, "");
        c.copy_ready(copy_what);
        std::string copy, scratch;
        copy.reserve(kCopyPiece + 4096);
        bool has_upserts = false, has_deletes = false;
        for (rapidjson::SizeType i = 0; i < doc_.Size(); ++i) {
            Json& entity = doc_[i];
            const std::string_view id = ids_[i];
            const bool deleted = deleted_[i];
            (deleted ? has_deletes : has_upserts) = true;
            if (remove_namespaces_) strip_namespaces(entity);
            std::optional<std::vector<std::string>> key_from_id;
            if (staged) {
                copy.append(std::to_string(i));
                copy.append(deleted ? "\tt\t" : "\tf\t");
            }
            for (size_t col = 0; col < targets_.size(); ++col) {
                const Target& t = targets_[col];
                if (col) copy.push_back('\t');
                const Json* v = remove_namespaces_ ? stripped_[col] : find_member(entity, t.property);
                const bool is_key = key_slot_[col] >= 0;
                if (deleted && !is_key) {
                    copy.append("\\N");
                    continue;
                }
                if (is_key && (!v || v->IsNull())) {
                    // The key from `_id` (composite ids split at '|', see README.md).
                    if (!key_from_id) {
                        key_from_id = split_key(id, key_cols_.size());
                        if (!key_from_id)
                            throw Error("system '" + system_.id + "': " + what() + ": entity '" + std::string(id) +
                                        "' has no '" + t.property + "' and its _id does not split into the " +
                                        std::to_string(key_cols_.size()) + " primary key values");
                    }
                    copy_escape(copy, (*key_from_id)[static_cast<size_t>(key_slot_[col])]);
                    continue;
                }
                if (!v && t.fallback) v = t.fallback;
                try {
                    copy_field(v, t, remove_namespaces_, copy, scratch);
                } catch (const BadValue& bad) {
                    throw Error("system '" + system_.id + "': " + what() + ": entity '" + std::string(id) +
                                "', property '" + t.property + "': " + bad.what());
                }
            }
            copy.push_back('\n');
            if (copy.size() >= kCopyPiece) {
                c.copy_put(copy, copy_what);
                copy.clear();
            }
        }
        try {
            c.copy_put(copy, copy_what);
            c.copy_end(copy_what, upsert_what);
        } catch (const PgError& e) {
            throw located(e);
        }
        if (statement != Statement::OnConflict) {
            tx.committed();  // the COMMIT at the end of the query string has run
            return;
        }
        const std::string& source = dedup_source_;
        std::string statements;
        if (has_deletes) statements += delete_sql_head_ + source + delete_sql_tail_ + "; ";
        if (has_upserts) statements += insert_sql_head_ + source + insert_sql_tail_ + "; ";
        statements += "COMMIT";
        c.exec(statements, upsert_what);
        tx.committed();
    }

    // remove_namespaces: each column's value from the property of its name with any namespace
    // prefix removed ("crm:name" → "name", as DTL's strip-ns, which also decides a clash: the last
    // of the entity's properties that strip to the same name wins).
    void strip_namespaces(const Json& entity) {
        std::fill(stripped_.begin(), stripped_.end(), nullptr);
        for (auto m = entity.MemberBegin(); m != entity.MemberEnd(); ++m) {
            std::string_view name = as_view(m->name);
            if (const size_t colon = name.rfind(':'); colon != std::string_view::npos) name.remove_prefix(colon + 1);
            auto it = columns_of_.find(name);
            if (it == columns_of_.end()) continue;
            for (size_t col : it->second) stripped_[col] = &m->value;
        }
    }

    std::string what() const { return "table '" + (schema_.empty() ? "" : schema_ + ".") + table_ + "'"; }
    std::string qualified(Connection& c) const { return (schema_.empty() ? "" : c.ident(schema_) + ".") + c.ident(table_); }

    // A COPY failure names the entity (line n of the batch) and the column.
    PgError located(const PgError& e) const {
        const std::string& ctx = e.context();
        const size_t copy_at = ctx.find("COPY sluice_stage_");  // not a failure of the statements after it
        const size_t line_at = copy_at == std::string::npos ? copy_at : ctx.find(", line ", copy_at);
        if (line_at == std::string::npos || e.status() == SLUICE_RETRY) return e;
        const size_t line = std::strtoul(ctx.c_str() + line_at + 7, nullptr, 10);
        if (line == 0 || line > ids_.size()) return e;
        std::string where = "entity '" + std::string(ids_[line - 1]) + "'";
        const size_t col_at = ctx.find(", column c", line_at);
        if (col_at != std::string::npos) {
            const size_t col = std::strtoul(ctx.c_str() + col_at + 10, nullptr, 10);
            if (col < targets_.size())
                where += ", property '" + targets_[col].property + "' (column '" + targets_[col].name + "')";
        }
        return PgError("system '" + system_.id + "': " + what() + ": " + where + ": " + e.server_message() +
                           (e.sqlstate().empty() ? "" : " [" + e.sqlstate() + "]"),
                       e.sqlstate(), false, e.server_message(), ctx);
    }

    void create_table(Connection& c) {
        std::string ddl = "CREATE TABLE IF NOT EXISTS " + qualified(c) + " (";
        bool first = true;
        for (const Definition& d : definitions_) {
            if (!first) ddl += ", ";
            first = false;
            ddl += c.ident(d.name) + " " + sql_type(d, "sql sink");
            if (!d.allow_null) ddl += " NOT NULL";
            if (d.fallback && !d.fallback->IsNull()) {
                std::string text;
                scalar_text(*d.fallback, Class::Text, false, text);
                ddl += " DEFAULT " + c.literal(text);
            }
        }
        if (!timestamp_column_.empty()) ddl += ", " + c.ident(timestamp_column_) + " timestamptz";
        ddl += ", PRIMARY KEY (";
        for (size_t i = 0; i < primary_key_.size(); ++i) ddl += (i ? ", " : "") + c.ident(primary_key_[i]);
        ddl += "))";
        c.exec(ddl, "creating " + what());
        for (const Definition& d : definitions_)
            if (d.index && !d.primary_key)
                c.exec("CREATE INDEX IF NOT EXISTS " + c.ident((table_ + "_" + d.name).substr(0, 59) + "_idx") + " ON " +
                           qualified(c) + " (" + c.ident(d.name) + ")",
                       "indexing " + what());
    }

    // Finds the table (creating it if asked), reads its columns and builds the statements.
    void prepare(Connection& c) {
        std::string oid = lookup(c);
        if (oid.empty()) {
            if (!create_if_missing_)
                throw Error("system '" + system_.id + "': " + what() + " does not exist in database '" +
                            system_.database + "' (set create_table_if_missing with a schema_definition to create it)");
            Transaction tx(c);
            create_table(c);
            tx.commit();
            oid = lookup(c);
            if (oid.empty()) throw Error("system '" + system_.id + "': " + what() + " was not created");
        }
        Result cols = c.exec(
            "SELECT a.attname, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END::int8, "
            "format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, "
            "            CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END), "
            "bt.typcategory, COALESCE(et.oid, 0)::int8, a.attidentity <> '', a.attgenerated <> '', "
            "COALESCE(et.typcategory, '') "
            "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END "
            "LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A' "
            "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            Params().add(oid), false, "reading the columns of " + what());
        struct Info {
            unsigned base;
            std::string type;
            char category;
            unsigned element;
            bool identity, generated;
            char element_category;
        };
        std::map<std::string, Info> info;
        std::vector<std::string> order;
        for (int i = 0; i < cols.rows(); ++i) {
            std::string name(cols.text(i, 0));
            info[name] = Info{static_cast<unsigned>(std::stoul(std::string(cols.text(i, 1)))), std::string(cols.text(i, 2)),
                              cols.text(i, 3).empty() ? 'X' : cols.text(i, 3)[0],
                              static_cast<unsigned>(std::stoul(std::string(cols.text(i, 4)))), cols.text(i, 5) == "t",
                              cols.text(i, 6) == "t", cols.text(i, 7).empty() ? 'X' : cols.text(i, 7)[0]};
            order.push_back(name);
        }
        auto make_target = [&](const std::string& name, const std::string& property, const Json* fallback) {
            auto it = info.find(name);
            if (it == info.end())
                throw Error("system '" + system_.id + "': " + what() + " has no column '" + name + "'");
            const Info& in = it->second;
            Target t;
            t.name = name;
            t.property = property;
            t.type = in.type;
            t.cls = class_of(in.base, in.category);
            t.element = in.category == 'A' ? class_of(in.element, 'X') : Class::Text;
            t.is_json = in.base == oid::kJson;
            t.identity = in.identity;
            // json, xml and geometric types have no '=' (json is compared as jsonb; arrays by element).
            auto no_equality = [](unsigned type, char category) {
                return type == oid::kJson || type == oid::kXml || category == 'G';
            };
            t.comparable = !no_equality(in.base, in.category) &&
                           !(in.category == 'A' && no_equality(in.element, in.element_category));
            t.fallback = fallback;
            return t;
        };
        targets_.clear();
        if (!definitions_.empty()) {
            for (const Definition& d : definitions_) targets_.push_back(make_target(d.name, d.source_property, d.fallback));
        } else {
            for (const std::string& name : order) {
                const Info& in = info[name];
                if (in.generated || (in.identity && skip_identity_) || name == timestamp_column_) continue;
                targets_.push_back(make_target(name, name, nullptr));
            }
        }
        // The key: configured, from schema_definition, else the table's primary key.
        std::vector<std::string> key = primary_key_;
        if (key.empty()) {
            Result pk = c.exec(
                "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.n",
                Params().add(oid), false, "reading the primary key of " + what());
            for (int i = 0; i < pk.rows(); ++i) key.emplace_back(pk.text(i, 0));
            if (key.empty())
                throw Error("system '" + system_.id + "': " + what() + " has no primary key; set 'primary_key'");
        }
        columns_of_.clear();
        for (size_t i = 0; i < targets_.size(); ++i) columns_of_[targets_[i].property].push_back(i);
        stripped_.assign(targets_.size(), nullptr);
        key_cols_.clear();
        key_slot_.assign(targets_.size(), -1);
        for (size_t k = 0; k < key.size(); ++k) {
            size_t found = targets_.size();
            for (size_t i = 0; i < targets_.size(); ++i)
                if (targets_[i].name == key[k]) found = i;
            if (found == targets_.size())
                throw Error("system '" + system_.id + "': primary_key column '" + key[k] + "' is not a column of " + what());
            key_cols_.push_back(found);
            key_slot_[found] = static_cast<int>(k);
        }
        const bool has_timestamp = !timestamp_column_.empty() && info.count(timestamp_column_);
        relation_ = relation_text(c, oid);
        merge_ = merge_fits(c, oid, key);
        // COPY straight into the table writes a new row as MERGE's INSERT would, except that it
        // cannot set the timestamp column to now() and that it writes GENERATED ALWAYS identity
        // columns that INSERT refuses.
        copy_fits_ = merge_ && !has_timestamp &&
                     std::none_of(targets_.begin(), targets_.end(), [](const Target& t) { return t.identity; });
        build_statements(c, has_timestamp);
        prepared_ = true;
    }

    // Whether MERGE does exactly what INSERT … ON CONFLICT (key) does on this table: a plain
    // table (MERGE takes no views or foreign tables in PostgreSQL 15, and partitioned tables are
    // left to ON CONFLICT) without inheritance children (MERGE would find and update their rows,
    // where the parent's key index, which ON CONFLICT and COPY go by, does not see them), no rules, no user triggers (ON CONFLICT fires BEFORE INSERT triggers
    // for every row, MERGE only those of the action taken), and a unique index that ON CONFLICT
    // would use as the arbiter (immediate, valid, no predicate or expressions, key columns = the
    // key) — without one, ON CONFLICT fails, and MERGE must not quietly work instead.
    bool merge_fits(Connection& c, const std::string& oid, const std::vector<std::string>& key) {
        Result rel = c.exec(
            "SELECT c.relkind = 'r' AND NOT c.relhasrules AND NOT c.relhassubclass AND NOT EXISTS "
            "(SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal) FROM pg_class c WHERE c.oid = $1::oid",
            Params().add(oid), false, "inspecting " + what());
        if (rel.rows() != 1 || rel.text(0, 0) != "t") return false;
        Result idx = c.exec(
            "SELECT i.indexrelid::int8, a.attname FROM pg_index i "
            "CROSS JOIN LATERAL unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) AS k(attnum) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid AND i.indimmediate "
            "AND i.indpred IS NULL AND i.indexprs IS NULL",
            Params().add(oid), false, "reading the unique indexes of " + what());
        std::map<std::string, std::set<std::string>> indexes;
        for (int i = 0; i < idx.rows(); ++i) indexes[std::string(idx.text(i, 0))].emplace(idx.text(i, 1));
        const std::set<std::string> wanted(key.begin(), key.end());
        for (const auto& [index, columns] : indexes)
            if (columns == wanted) return true;
        return false;
    }

    // The table's oid, or "" when it does not exist. The exact (quoted) name first, then the name
    // as PostgreSQL reads it unquoted (case folded).
    std::string lookup(Connection& c) {
        for (const std::string& name : {qualified(c), (schema_.empty() ? "" : schema_ + ".") + table_}) {
            Transaction tx(c);
            try {
                Result r = c.exec("SELECT to_regclass($1)::oid", Params().add(name), false, "looking up " + what());
                if (r.rows() == 1 && !r.null(0, 0)) return std::string(r.text(0, 0));
            } catch (const PgError& e) {
                if (transient_sqlstate(e.sqlstate())) throw;
            }
        }
        return {};
    }
    static std::string relation_text(Connection& c, const std::string& oid) {
        Result r = c.exec("SELECT $1::oid::regclass::text", Params().add(oid), false, "naming the table");
        return std::string(r.text(0, 0));
    }

    void build_statements(Connection& c, bool has_timestamp) {
        // Staging: the mapped columns with the base types, all nullable; emptied at commit.
        std::string signature = relation_;
        for (const Target& t : targets_) signature += "|" + t.name + ":" + t.type;
        staging_ = "pg_temp.sluice_stage_" + std::to_string(std::hash<std::string>()(signature) % 1000000007ULL);
        staging_ddl_ = "CREATE TEMPORARY TABLE IF NOT EXISTS " + staging_ + " (s_seq int8, s_del boolean";
        std::string cols, staged, copy_cols = "s_seq, s_del";
        for (size_t i = 0; i < targets_.size(); ++i) {
            const std::string sc = "c" + std::to_string(i);
            staging_ddl_ += ", " + sc + " " + targets_[i].type;
            copy_cols += ", " + sc;
            cols += (i ? ", " : "") + c.ident(targets_[i].name);
            staged += (i ? ", s." : "s.") + sc;
        }
        staging_ddl_ += ") ON COMMIT DELETE ROWS";
        copy_sql_ = "COPY " + staging_ + " (" + copy_cols + ") FROM STDIN";
        direct_copy_sql_ = "COPY " + relation_ + " (" + cols + ") FROM STDIN";

        std::string key_cols, key_match;
        for (size_t k = 0; k < key_cols_.size(); ++k) {
            const size_t i = key_cols_[k];
            key_cols += (k ? ", " : "") + c.ident(targets_[i].name);
            key_match += std::string(k ? " AND " : "") + "t." + c.ident(targets_[i].name) + " = s.c" + std::to_string(i);
        }
        std::string staged_keys;
        for (size_t k = 0; k < key_cols_.size(); ++k) staged_keys += (k ? ", " : "") + std::string("c") + std::to_string(key_cols_[k]);
        // One row per key, the last version in the batch winning: ON CONFLICT cannot touch a row
        // twice in one statement, and two versions of an _id — or two _ids with the same key
        // values — are common in a batch. Always, not only when an _id repeats, because _ids that
        // differ can carry equal keys. A sort of one batch in memory (about 0.3 ms per 1000 rows).
        dedup_source_ = "(SELECT DISTINCT ON (" + staged_keys + ") * FROM " + staging_ + " ORDER BY " + staged_keys +
                        ", s_seq DESC)";
        delete_sql_head_ = "DELETE FROM " + relation_ + " AS t USING ";
        delete_sql_tail_ = " AS s WHERE s.s_del AND " + key_match;

        insert_sql_head_ = "INSERT INTO " + relation_ + " AS t (" + cols +
                           (has_timestamp ? ", " + c.ident(timestamp_column_) : "") + ") SELECT " + staged +
                           (has_timestamp ? ", now()" : "") + " FROM ";
        std::string updates, old_values, new_values;
        bool comparable = true;
        for (size_t i = 0; i < targets_.size(); ++i) {
            if (key_slot_[i] >= 0) continue;
            const std::string col = c.ident(targets_[i].name);
            updates += (updates.empty() ? "" : ", ") + col + " = EXCLUDED." + col;
            const std::string cast = targets_[i].is_json ? "::jsonb" : "";
            old_values += (old_values.empty() ? "" : ", ") + ("t." + col + cast);
            new_values += (new_values.empty() ? "" : ", ") + ("EXCLUDED." + col + cast);
            if (!targets_[i].comparable && !targets_[i].is_json) comparable = false;
        }
        // The same as one MERGE, for the tables where it fits (merge_fits): a MERGE finds the
        // rows by a join and updates or deletes them directly, where ON CONFLICT first locks each
        // conflicting row (a WAL record per row, even for an unchanged one) and the separate
        // DELETE reads the batch again. Nested loops over the key index are forced: the staging
        // table has no statistics, and a hash or merge join would read the whole target.
        merge_prefix_ = "BEGIN; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; ";
        std::string merge_set, merge_old, merge_new, merge_values;
        for (size_t i = 0; i < targets_.size(); ++i) {
            const std::string sc = "s.c" + std::to_string(i);
            merge_values += (i ? ", " : "") + sc;
            if (key_slot_[i] >= 0) continue;
            const std::string col = c.ident(targets_[i].name);
            const std::string cast = targets_[i].is_json ? "::jsonb" : "";
            merge_set += (merge_set.empty() ? "" : ", ") + col + " = " + sc;
            merge_old += (merge_old.empty() ? "" : ", ") + ("t." + col + cast);
            merge_new += (merge_new.empty() ? "" : ", ") + (sc + cast);
        }
        const std::string now_value = has_timestamp ? ", now()" : "";
        merge_sql_ = "MERGE INTO " + relation_ + " AS t USING " + dedup_source_ + " AS s ON " + key_match +
                     " WHEN MATCHED AND s.s_del THEN DELETE";
        if (!merge_set.empty()) {
            merge_sql_ += " WHEN MATCHED";
            if (comparable)
                merge_sql_ += " AND (" + merge_old + ", NULL::int) IS DISTINCT FROM (" + merge_new + ", NULL::int)";
            merge_sql_ += " THEN UPDATE SET " + merge_set +
                          (has_timestamp ? ", " + c.ident(timestamp_column_) + " = now()" : "");
        }
        merge_sql_ += " WHEN NOT MATCHED AND NOT s.s_del THEN INSERT (" + cols +
                      (has_timestamp ? ", " + c.ident(timestamp_column_) : "") + ") VALUES (" + merge_values +
                      now_value + ")";

        insert_sql_tail_ = " AS s WHERE NOT s.s_del ON CONFLICT (" + key_cols + ") DO ";
        if (updates.empty()) {
            insert_sql_tail_ += "NOTHING";
        } else {
            if (has_timestamp) updates += ", " + c.ident(timestamp_column_) + " = EXCLUDED." + c.ident(timestamp_column_);
            insert_sql_tail_ += "UPDATE SET " + updates;
            // Rows whose values did not change are not rewritten (no dead tuples, no WAL).
            if (comparable) insert_sql_tail_ += " WHERE (" + old_values + ", NULL::int) IS DISTINCT FROM (" + new_values + ", NULL::int)";
        }
    }

    void ensure_staging(Connection& c) {
        if (c.memo().count(staging_ddl_)) return;
        c.exec(staging_ddl_, "creating the staging table for " + what());
        c.memo().insert(staging_ddl_);
    }

    JsonDocument config_;
    SystemConfig system_;
    std::shared_ptr<Pool> pool_;
    std::string table_, schema_, timestamp_column_;
    std::vector<std::string> primary_key_;
    std::vector<Definition> definitions_;
    bool create_if_missing_ = false, truncate_first_ = false, recreate_first_ = false, skip_identity_ = false;
    bool remove_namespaces_ = false;

    bool prepared_ = false;
    std::string relation_;
    std::vector<Target> targets_;
    std::vector<size_t> key_cols_;  // indexes into targets_, in key order
    std::vector<int> key_slot_;     // per target: position in the key, or -1
    std::map<std::string, std::vector<size_t>, std::less<>> columns_of_;  // property → targets_ it fills
    std::vector<const Json*> stripped_;  // per target: its value in the current entity (remove_namespaces)
    std::string staging_, staging_ddl_, copy_sql_, dedup_source_;
    std::string delete_sql_head_, delete_sql_tail_, insert_sql_head_, insert_sql_tail_;
    bool merge_ = false;  // MERGE does what ON CONFLICT does on this table (merge_fits)
    std::string merge_prefix_, merge_sql_;
    bool copy_fits_ = false;  // new rows may be COPYed straight in (try_copy_first)
    std::string direct_copy_sql_;
    size_t copy_first_backoff_ = 0, copy_first_skip_ = 0;  // see try_copy_first
    std::string text_;                   // the current batch's text, parsed in place
    JsonDocument doc_;                   // the current batch, parsed in place (its strings point into text_)
    std::vector<std::string_view> ids_;  // the current batch's ids (into text_), to name a rejected row
    std::vector<std::string_view> sorted_ids_;  // the same, sorted (to find an _id that repeats)
    std::vector<char> deleted_;          // per entity of the current batch: _deleted is true
};

}  // namespace

SLUICE_PLUGIN("sluice-sink-sql", "1.0.0", "Upserts and deletes rows of a PostgreSQL table (system:postgresql)",
              "Apache-2.0", sluice::sink<SqlSink>("sql", SLUICE_SCHEMA_JSON, SLUICE_CAP_SIDE_EFFECTS))

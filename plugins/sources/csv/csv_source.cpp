// The `csv` source (reference §3.4): rows of a CSV file — a local `path` or a `url` on a
// `system:url` — become entities. Streaming: the input is read in 64 KB chunks, decoded to UTF-8
// (utf-8, latin-1, cp1252, utf-16 with BOM, …), parsed (Python csv / RFC 4180 rules: quotes,
// doubled quotes, delimiters and newlines inside quotes) and emitted in batches, so memory stays
// bounded by one record. `_id` comes from `primary_key` (several columns are joined like the sql
// source does, "a|b"), else from a column named `_id`, else the row number. `types` converts
// columns to numbers, booleans, decimals or datetimes. Not incremental: every run reads it all.
#include <sluice/calendar.hpp>
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <sluice_http/csv.hpp>
#include <sluice_http/http.hpp>
#include <sluice_http/text.hpp>

#include <rapidjson/writer.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

namespace {

using sluice::Error;
using sluice::Json;
using namespace sluice::http;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

enum class ColumnType { String, Integer, Float, Decimal, Boolean, Datetime, Date, Json };

ColumnType parse_type(const std::string& t) {
    if (t == "string" || t == "str") return ColumnType::String;
    if (t == "integer" || t == "int") return ColumnType::Integer;
    if (t == "float" || t == "double") return ColumnType::Float;
    if (t == "decimal") return ColumnType::Decimal;
    if (t == "boolean" || t == "bool") return ColumnType::Boolean;
    if (t == "datetime") return ColumnType::Datetime;
    if (t == "date") return ColumnType::Date;
    if (t == "json") return ColumnType::Json;
    throw Error("csv source: unknown type '" + t +
                    "' (string, integer, float, decimal, boolean, datetime, date, json)",
                SLUICE_FATAL);
}

using sluice::civil_from_days;
using sluice::days_from_civil;

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
        if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

// "2024-01-31", "2024-01-31T10:20[:30[.123456]][Z|+01:00|+0100]" (or ' ' for 'T') → the
// transit datetime in UTC ("~t2024-01-31T09:20:30.123456Z"); `date_only` → "~t2024-01-31".
bool to_transit_datetime(std::string_view s, bool date_only, std::string& out) {
    int y, mo, d;
    if (s.size() < 10 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || mo < 1 || mo > 12 || d < 1 || d > 31)
        return false;
    if (date_only) {
        if (s.size() != 10) return false;
        out = "~t" + std::string(s);
        return true;
    }
    int h = 0, mi = 0, sec = 0;
    std::string fraction;
    int offset_minutes = 0;
    size_t p = 10;
    if (p < s.size()) {
        if (s[p] != 'T' && s[p] != ' ') return false;
        ++p;
        if (!digits(s, p, 2, h) || p + 2 >= s.size() || s[p + 2] != ':' || !digits(s, p + 3, 2, mi)) return false;
        p += 5;
        if (p < s.size() && s[p] == ':') {
            if (!digits(s, p + 1, 2, sec)) return false;
            p += 3;
            if (p < s.size() && (s[p] == '.' || s[p] == ',')) {
                ++p;
                while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p]))) fraction.push_back(s[p++]);
                if (fraction.empty() || fraction.size() > 9) return false;
            }
        }
        if (p < s.size()) {
            if (s[p] == 'Z' || s[p] == 'z') {
                ++p;
            } else if (s[p] == '+' || s[p] == '-') {
                const int sign = s[p] == '-' ? -1 : 1;
                int oh, om;
                if (!digits(s, p + 1, 2, oh)) return false;
                size_t q = p + 3;
                if (q < s.size() && s[q] == ':') ++q;
                if (!digits(s, q, 2, om)) return false;
                offset_minutes = sign * (oh * 60 + om);
                p = q + 2;
            } else {
                return false;
            }
        }
        if (p != s.size() || h > 23 || mi > 59 || sec > 60) return false;
    }
    int64_t total = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 + mi * 60 +
                    sec - offset_minutes * 60;
    int64_t days = total >= 0 ? total / 86400 : -((-total + 86399) / 86400);
    int64_t rem = total - days * 86400;
    int64_t yy;
    unsigned mm, dd;
    civil_from_days(days, yy, mm, dd);
    char buf[64];
    std::snprintf(buf, sizeof buf, "~t%04lld-%02u-%02uT%02d:%02d:%02d", static_cast<long long>(yy), mm, dd,
                  static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60));
    out = buf;
    if (!fraction.empty()) out += "." + fraction;
    out += "Z";
    return true;
}

// Writes `cell` converted to `type`; false when it does not convert.
bool write_typed(JsonWriter& w, ColumnType type, const std::string& cell) {
    switch (type) {
        case ColumnType::String: return w.String(cell.data(), static_cast<rapidjson::SizeType>(cell.size()));
        case ColumnType::Integer: {
            std::string_view s = cell;
            while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
            while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
            std::string text;
            if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
                if (s.front() == '-') text.push_back('-');
                s.remove_prefix(1);
            }
            if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
                return false;
            while (s.size() > 1 && s.front() == '0') s.remove_prefix(1);
            if (s == "0") text.clear();
            text.append(s);
            return w.RawValue(text.data(), text.size(), rapidjson::kNumberType);
        }
        case ColumnType::Float: {
            errno = 0;
            char* end = nullptr;
            double d = std::strtod(cell.c_str(), &end);
            while (end && *end == ' ') ++end;
            if (cell.empty() || !end || *end || !std::isfinite(d)) return false;
            return w.Double(d);
        }
        case ColumnType::Decimal: {
            std::string_view s = cell;
            size_t i = 0;
            if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
            size_t int_digits = 0, frac_digits = 0;
            while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++int_digits;
            if (i < s.size() && s[i] == '.') {
                ++i;
                while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac_digits;
            }
            if (i != s.size() || int_digits + frac_digits == 0) return false;
            std::string text = "~f" + std::string(s.front() == '+' ? s.substr(1) : s);
            return w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
        }
        case ColumnType::Boolean: {
            std::string l;
            for (char c : cell) l.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
            if (l == "true" || l == "t" || l == "yes" || l == "y" || l == "1") return w.Bool(true);
            if (l == "false" || l == "f" || l == "no" || l == "n" || l == "0") return w.Bool(false);
            return false;
        }
        case ColumnType::Datetime:
        case ColumnType::Date: {
            std::string text;
            if (!to_transit_datetime(cell, type == ColumnType::Date, text)) return false;
            return w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
        }
        case ColumnType::Json: {
            // A number RapidJSON cannot parse safely would come out as garbage: not valid here.
            if (!sluice::find_unsafe_json_number(cell).empty()) return false;
            sluice::JsonDocument doc;
            doc.Parse<rapidjson::kParseFullPrecisionFlag>(cell.data(), cell.size());
            if (doc.HasParseError()) return false;
            return doc.Accept(w);
        }
    }
    return false;
}

// For a json cell refused for its number: which number and why (else "").
std::string unsupported_number(ColumnType type, const std::string& cell) {
    if (type != ColumnType::Json) return {};
    const std::string_view bad = sluice::find_unsafe_json_number(cell);
    return bad.empty() ? std::string() : ": unsupported number " + sluice::unsafe_json_number_reason(bad);
}

std::vector<std::string> string_list(const Json& cfg, const char* key) {
    std::vector<std::string> out;
    const Json* v = sluice::find_member(cfg, key);
    if (!v || v->IsNull()) return out;
    if (v->IsString()) {
        out.emplace_back(sluice::as_view(*v));
        return out;
    }
    if (!v->IsArray()) throw Error(std::string("csv source: ") + key + " must be a string or a list of strings", SLUICE_FATAL);
    for (const Json& s : v->GetArray()) {
        if (!s.IsString()) throw Error(std::string("csv source: ") + key + " must hold strings", SLUICE_FATAL);
        out.emplace_back(sluice::as_view(s));
    }
    return out;
}

class CsvSource : public sluice::Source {
public:
    CsvSource(const sluice::CreateArgs& args, sluice::Host&) {
        try {
            configure(args);
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw Error(std::string("csv source: ") + e.what(), SLUICE_FATAL);
        }
    }

    void read(sluice::Host& host, const char*, uint32_t batch_size) override {
        if (batch_size == 0) batch_size = 1000;
        Run run(*this, host, batch_size);
        if (!path_.empty()) {
            std::ifstream in(path_, std::ios::binary);
            if (!in) throw Error("csv source: cannot open '" + path_ + "': " + std::strerror(errno));
            run.consume(in, path_);
        } else {
            Client client(system_);
            client.cancelled = [&host] { return host.cancelled(); };
            client.on_retry = [&host](int attempt, const Failure& f, double delay) {
                host.warn(f.message + "; retrying in " + std::to_string(delay) + " s (attempt " + std::to_string(attempt) + ")");
            };
            Request request;
            request.url = system_.resolve(url_);
            std::optional<Failure> failure;
            try {
                failure = client.send(request, [&](const ResponseHead&, std::istream& in) { run.consume(in, request.url); });
            } catch (const TransportError& e) {
                throw Error(std::string("csv source: ") + e.what());
            }
            if (failure) throw Error("csv source: " + failure->message);
        }
        run.finish();
    }

private:
    // One read: decoding, parsing and batching state.
    class Run {
    public:
        Run(const CsvSource& s, sluice::Host& host, uint32_t batch_size)
            : s_(s), host_(host), batch_size_(batch_size), decoder_(s.encoding_), dialect_(s.dialect_),
              parser_(dialect_, s.max_record_bytes_,
                      [this](std::vector<std::string>& fields, size_t line) { return record(fields, line); }) {}

        void consume(std::istream& in, const std::string& what) {
            what_ = what;
            std::vector<char> buffer(64 * 1024);
            std::string text;
            while (in) {
                in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
                const size_t n = static_cast<size_t>(in.gcount());
                if (n == 0) break;
                text.clear();
                try {
                    decoder_.decode(std::string_view(buffer.data(), n), text);
                } catch (const Error& e) {
                    throw Error("csv source: " + what + ": " + e.what());
                }
                if (!sniffed_) {
                    sniffed_ = true;
                    if (s_.auto_dialect_) {
                        dialect_.delimiter = sniff_delimiter(text, dialect_.quotechar);
                        parser_ = CsvParser(dialect_, s_.max_record_bytes_,
                                            [this](std::vector<std::string>& f, size_t l) { return record(f, l); });
                    }
                }
                if (!feed(text)) return;
                if (host_.cancelled()) throw Error("csv source: the run was stopped");
            }
            if (in.bad()) throw Error("csv source: reading " + what + " failed");
            try {
                decoder_.finish();
            } catch (const Error& e) {
                throw Error("csv source: " + what + ": " + e.what());
            }
        }

        void finish() {
            try {
                parser_.finish();
            } catch (const Error& e) {
                throw Error("csv source: " + what_ + ": " + e.what());
            }
            flush();
            host_.log(SLUICE_LOG_DEBUG, "csv source: " + std::to_string(rows_) + " rows from " + what_);
        }

    private:
        bool feed(std::string_view text) {
            try {
                return parser_.feed(text);
            } catch (const sluice::Error& e) {
                if (e.status() != SLUICE_ERROR) throw;
                const std::string msg = e.what();
                if (msg.rfind("csv source", 0) == 0) throw;
                throw Error("csv source: " + what_ + ": " + msg);
            }
        }

        bool record(std::vector<std::string>& fields, size_t line) {
            if (header_.empty()) {
                if (!s_.field_names_.empty()) {
                    header_ = s_.field_names_;
                } else if (s_.has_header_) {
                    header_ = fields;
                } else {
                    for (size_t i = 0; i < fields.size(); ++i) header_.push_back("column" + std::to_string(i + 1));
                }
                prepare_columns();
                if (s_.has_header_) return true;  // the header row is not data
            }
            ++rows_;
            buffer_.Clear();
            writer_.Reset(buffer_);
            writer_.StartObject();
            writer_.Key("_id", 3);
            std::string id;
            if (!key_columns_.empty()) {
                for (size_t k = 0; k < key_columns_.size(); ++k) {
                    const size_t c = key_columns_[k];
                    if (c >= fields.size() || fields[c].empty())
                        throw Error("csv source: " + what_ + ": the row on line " + std::to_string(line) +
                                    " has no value in primary key column '" + header_[c] + "'");
                    if (key_columns_.size() == 1) {
                        id = fields[c];
                    } else {
                        if (k) id.push_back('|');
                        for (char ch : fields[c]) {
                            if (ch == '%') id.append("%25");
                            else if (ch == '|') id.append("%7C");
                            else id.push_back(ch);
                        }
                    }
                }
            } else if (id_column_ >= 0 && static_cast<size_t>(id_column_) < fields.size() && !fields[static_cast<size_t>(id_column_)].empty()) {
                id = fields[static_cast<size_t>(id_column_)];
            } else {
                id = std::to_string(rows_);
            }
            writer_.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
            if (fields.size() > header_.size() && !warned_extra_) {
                warned_extra_ = true;
                host_.warn("csv source: " + what_ + ": the row on line " + std::to_string(line) + " has " +
                           std::to_string(fields.size()) + " fields, the header " + std::to_string(header_.size()) +
                           "; extra fields are ignored");
            }
            for (size_t c = 0; c < header_.size() && c < fields.size(); ++c) {
                if (!emit_column_[c]) continue;
                const std::string& cell = fields[c];
                if (cell.empty() && !s_.preserve_empty_strings_) continue;
                const std::string& name = header_[c];
                writer_.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
                const ColumnType type = types_[c];
                if (type == ColumnType::String || (cell.empty() && s_.preserve_empty_strings_)) {
                    writer_.String(cell.data(), static_cast<rapidjson::SizeType>(cell.size()));
                    continue;
                }
                // Try the conversion on the side so a failure leaves the writer untouched.
                rapidjson::StringBuffer value;
                JsonWriter vw(value);
                if (write_typed(vw, type, cell)) {
                    writer_.RawValue(value.GetString(), value.GetSize(), rapidjson::kStringType);
                } else if (s_.conversion_errors_ == "keep") {
                    writer_.String(cell.data(), static_cast<rapidjson::SizeType>(cell.size()));
                } else if (s_.conversion_errors_ == "null") {
                    writer_.Null();
                } else {
                    throw Error("csv source: " + what_ + ": line " + std::to_string(line) + ", column '" + name +
                                "': '" + cell.substr(0, 80) + "' is not a valid " + s_.type_names_.at(name) +
                                unsupported_number(type, cell) +
                                " (set conversion_errors to \"keep\" or \"null\" to accept it)");
                }
            }
            writer_.EndObject();
            batch_.add_raw(std::string_view(buffer_.GetString(), buffer_.GetSize()));
            if (batch_.count() >= batch_size_) flush();
            return true;
        }

        void prepare_columns() {
            std::map<std::string, size_t> last;
            for (size_t i = 0; i < header_.size(); ++i) last[header_[i]] = i;
            emit_column_.assign(header_.size(), true);
            types_.assign(header_.size(), ColumnType::String);
            for (size_t i = 0; i < header_.size(); ++i) {
                // a repeated column name: the last one wins (as Python's DictReader); `_id` is written first
                if (last[header_[i]] != i || header_[i] == "_id") emit_column_[i] = false;
                auto t = s_.types_.find(header_[i]);
                if (t != s_.types_.end()) types_[i] = t->second;
            }
            for (const std::string& k : s_.primary_key_) {
                auto it = last.find(k);
                if (it == last.end())
                    throw Error("csv source: " + what_ + ": primary_key column '" + k + "' is not in the header", SLUICE_FATAL);
                key_columns_.push_back(it->second);
            }
            if (auto it = last.find("_id"); it != last.end()) id_column_ = static_cast<long>(it->second);
        }

        void flush() {
            if (batch_.empty()) return;
            host_.emit(batch_);
            batch_.clear();
        }

        const CsvSource& s_;
        sluice::Host& host_;
        uint32_t batch_size_;
        Decoder decoder_;
        CsvDialect dialect_;
        CsvParser parser_;
        bool sniffed_ = false;
        std::string what_;
        std::vector<std::string> header_;
        std::vector<bool> emit_column_;
        std::vector<ColumnType> types_;
        std::vector<size_t> key_columns_;
        long id_column_ = -1;
        size_t rows_ = 0;
        bool warned_extra_ = false;
        rapidjson::StringBuffer buffer_;
        JsonWriter writer_{buffer_};
        sluice::BatchBuilder batch_;
    };

    void configure(const sluice::CreateArgs& args) {
        const Json& cfg = args.config;
        path_ = sluice::string_or(cfg, "path", "");
        url_ = sluice::string_or(cfg, "url", "");
        if (url_.rfind("file://", 0) == 0) {
            path_ = url_.substr(7);
            url_.clear();
        }
        if (path_.empty() == url_.empty())
            throw Error("csv source: set exactly one of 'path' (a local file) and 'url'", SLUICE_FATAL);
        if (!url_.empty()) {
            system_ = UrlSystem::parse(args.system.IsObject() ? &args.system : nullptr, &cfg);
            if (url_.find("://") == std::string::npos && system_.url_pattern.empty())
                throw Error("csv source: 'url' must be absolute unless 'system' is a system:url with url_pattern",
                            SLUICE_FATAL);
        }
        encoding_ = parse_encoding(sluice::string_or(cfg, "encoding", "utf-8"));

        const std::string dialect = sluice::string_or(cfg, "dialect", "excel");
        if (dialect == "excel-tab") {
            dialect_.delimiter = '\t';
        } else if (dialect != "excel" && dialect != "unix") {
            throw Error("csv source: dialect must be \"excel\", \"excel-tab\" or \"unix\"", SLUICE_FATAL);
        }
        const bool explicit_delimiter = sluice::find_member(cfg, "delimiter") != nullptr;
        dialect_.delimiter = single_char_option(cfg, "delimiter", dialect_.delimiter);
        dialect_.quotechar = single_char_option(cfg, "quotechar", '"');
        dialect_.escapechar = single_char_option(cfg, "escapechar", 0, true);
        dialect_.doublequote = sluice::bool_or(cfg, "doublequote", true);
        dialect_.skipinitialspace = sluice::bool_or(cfg, "skipinitialspace", false);
        dialect_.quoting = parse_quoting(sluice::find_member(cfg, "quoting")) != CsvQuoting::None;
        if (dialect_.delimiter == dialect_.quotechar)
            throw Error("csv source: delimiter and quotechar must differ", SLUICE_FATAL);
        auto_dialect_ = sluice::bool_or(cfg, "auto_dialect", false) && !explicit_delimiter;

        has_header_ = sluice::bool_or(cfg, "has_header", true);
        field_names_ = string_list(cfg, "field_names");
        primary_key_ = string_list(cfg, "primary_key");
        preserve_empty_strings_ = sluice::bool_or(cfg, "preserve_empty_strings", false);
        max_record_bytes_ = static_cast<size_t>(sluice::int_or(cfg, "max_record_bytes", 16 << 20));
        conversion_errors_ = sluice::string_or(cfg, "conversion_errors", "fail");
        if (conversion_errors_ != "fail" && conversion_errors_ != "keep" && conversion_errors_ != "null")
            throw Error("csv source: conversion_errors must be \"fail\", \"keep\" or \"null\"", SLUICE_FATAL);
        if (const Json* types = sluice::find_member(cfg, "types"); types && !types->IsNull()) {
            if (!types->IsObject()) throw Error("csv source: types must be an object {column: type}", SLUICE_FATAL);
            for (auto it = types->MemberBegin(); it != types->MemberEnd(); ++it) {
                if (!it->value.IsString()) throw Error("csv source: types values must be type names", SLUICE_FATAL);
                const std::string name(sluice::as_view(it->name));
                types_[name] = parse_type(std::string(sluice::as_view(it->value)));
                type_names_[name] = std::string(sluice::as_view(it->value));
            }
        }
    }

    std::string path_;
    std::string url_;
    UrlSystem system_;
    Encoding encoding_ = Encoding::Utf8;
    CsvDialect dialect_;
    bool auto_dialect_ = false;
    bool has_header_ = true;
    std::vector<std::string> field_names_;
    std::vector<std::string> primary_key_;
    bool preserve_empty_strings_ = false;
    size_t max_record_bytes_ = 16 << 20;
    std::string conversion_errors_;
    std::map<std::string, ColumnType> types_;
    std::map<std::string, std::string> type_names_;
};

}  // namespace

SLUICE_PLUGIN("sluice-source-csv", "1.0.0", "Reads CSV files (local or over HTTP) as entities", "Apache-2.0",
              sluice::source<CsvSource>("csv", SLUICE_SCHEMA_JSON, 0))

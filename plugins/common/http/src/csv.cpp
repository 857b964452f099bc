#include <sluice_http/csv.hpp>

#include <sluice/sdk.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>

namespace sluice::http {

// ---- reading ------------------------------------------------------------------------------

bool CsvParser::end_field() {
    fields_.push_back(std::move(field_));
    field_.clear();
    return true;
}

bool CsvParser::end_record() {
    bool keep_going = true;
    if (!fields_.empty()) keep_going = on_record_(fields_, record_line_);
    fields_.clear();
    field_.clear();
    record_bytes_ = 0;
    state_ = State::StartRecord;
    return keep_going;
}

bool CsvParser::feed(std::string_view text) {
    for (char c : text) {
        if (skip_lf_) {
            skip_lf_ = false;
            if (c == '\n') {
                if (state_ == State::InQuoted) field_.push_back(c);
                continue;
            }
        }
        const bool newline = c == '\n' || c == '\r';
        if (newline) {
            ++line_;
            if (c == '\r') skip_lf_ = true;
        }
        if (max_record_bytes_ && ++record_bytes_ > max_record_bytes_) {
            throw Error("the CSV record starting on line " + std::to_string(record_line_) +
                        " is larger than max_record_bytes (" + std::to_string(max_record_bytes_) +
                        " bytes); is a quote left open?");
        }
        switch (state_) {
            case State::StartRecord:
                if (newline) {  // a blank line
                    record_bytes_ = 0;
                    continue;
                }
                record_line_ = line_;
                state_ = State::StartField;
                [[fallthrough]];
            case State::StartField:
                if (d_.quoting && c == d_.quotechar) {
                    state_ = State::InQuoted;
                } else if (d_.escapechar && c == d_.escapechar) {
                    state_ = State::Escape;
                } else if (c == ' ' && d_.skipinitialspace) {
                    // skipped
                } else if (c == d_.delimiter) {
                    end_field();
                } else if (newline) {
                    end_field();
                    if (!end_record()) return false;
                } else {
                    field_.push_back(c);
                    state_ = State::InField;
                }
                break;
            case State::InField:
                if (c == d_.delimiter) {
                    end_field();
                    state_ = State::StartField;
                } else if (newline) {
                    end_field();
                    if (!end_record()) return false;
                } else if (d_.escapechar && c == d_.escapechar) {
                    state_ = State::Escape;
                } else {
                    field_.push_back(c);
                }
                break;
            case State::Escape:
                field_.push_back(c);
                state_ = State::InField;
                break;
            case State::InQuoted:
                if (d_.escapechar && c == d_.escapechar && c != d_.quotechar) {
                    state_ = State::EscapeInQuoted;
                } else if (c == d_.quotechar) {
                    state_ = d_.doublequote ? State::QuoteInQuoted : State::InField;
                } else {
                    field_.push_back(c);
                }
                break;
            case State::EscapeInQuoted:
                field_.push_back(c);
                state_ = State::InQuoted;
                break;
            case State::QuoteInQuoted:
                if (c == d_.quotechar) {
                    field_.push_back(c);
                    state_ = State::InQuoted;
                } else if (c == d_.delimiter) {
                    end_field();
                    state_ = State::StartField;
                } else if (newline) {
                    end_field();
                    if (!end_record()) return false;
                } else {
                    field_.push_back(c);  // lenient, like Python's non-strict reader
                    state_ = State::InField;
                }
                break;
        }
    }
    return true;
}

bool CsvParser::finish() {
    switch (state_) {
        case State::StartRecord: return true;
        case State::InQuoted:
        case State::EscapeInQuoted:
            throw Error("unterminated quoted field in the CSV record starting on line " + std::to_string(record_line_));
        default:
            end_field();
            return end_record();
    }
}

char sniff_delimiter(std::string_view sample, char quotechar) {
    const std::array<char, 4> candidates{',', ';', '\t', '|'};
    std::array<size_t, 4> counts{};
    bool quoted = false;
    for (char c : sample) {
        if (c == quotechar) quoted = !quoted;
        if (quoted) continue;
        if (c == '\n' || c == '\r') break;
        for (size_t i = 0; i < candidates.size(); ++i) {
            if (c == candidates[i]) ++counts[i];
        }
    }
    size_t best = 0;
    for (size_t i = 1; i < candidates.size(); ++i) {
        if (counts[i] > counts[best]) best = i;
    }
    return counts[best] ? candidates[best] : ',';
}

// ---- writing ------------------------------------------------------------------------------

CsvQuoting parse_quoting(const Json* v) {
    if (!v || v->IsNull()) return CsvQuoting::Minimal;
    if (v->IsInt()) {
        switch (v->GetInt()) {  // Python's csv.QUOTE_* constants
            case 0: return CsvQuoting::Minimal;
            case 1: return CsvQuoting::All;
            case 2: return CsvQuoting::NonNumeric;
            case 3: return CsvQuoting::None;
            default: break;
        }
    } else if (v->IsString()) {
        std::string s(as_view(*v));
        std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (s.rfind("quote_", 0) == 0) s = s.substr(6);
        if (s == "minimal") return CsvQuoting::Minimal;
        if (s == "all") return CsvQuoting::All;
        if (s == "nonnumeric" || s == "non_numeric" || s == "non-numeric") return CsvQuoting::NonNumeric;
        if (s == "none") return CsvQuoting::None;
    }
    throw std::invalid_argument("quoting must be one of \"minimal\", \"all\", \"nonnumeric\", \"none\"");
}

void write_csv_row(std::string& out, const std::vector<std::string>& cells, const std::vector<bool>& numeric,
                   const CsvWriteOptions& o) {
    for (size_t i = 0; i < cells.size(); ++i) {
        if (i) out.push_back(o.delimiter);
        const std::string& cell = cells[i];
        const bool is_numeric = i < numeric.size() && numeric[i];
        const bool special = cell.find_first_of(std::string{o.delimiter, o.quotechar, '\r', '\n'}) != std::string::npos ||
                             (o.escapechar && cell.find(o.escapechar) != std::string::npos);
        bool quote = false;
        switch (o.quoting) {
            case CsvQuoting::All: quote = true; break;
            case CsvQuoting::NonNumeric: quote = !is_numeric; break;
            case CsvQuoting::Minimal: quote = special || (cells.size() == 1 && cell.empty()); break;
            case CsvQuoting::None: quote = false; break;
        }
        if (quote) {
            out.push_back(o.quotechar);
            for (char c : cell) {
                if (c == o.quotechar) {
                    if (o.doublequote) {
                        out.push_back(o.quotechar);
                    } else if (o.escapechar) {
                        out.push_back(o.escapechar);
                    } else {
                        throw Error("a value contains the quote character, and doublequote is off with no escapechar");
                    }
                } else if (o.escapechar && c == o.escapechar) {
                    out.push_back(o.escapechar);
                }
                out.push_back(c);
            }
            out.push_back(o.quotechar);
        } else if (special) {
            if (!o.escapechar)
                throw Error("quoting \"none\" needs an escapechar for the value '" + cell.substr(0, 60) + "'");
            for (char c : cell) {
                if (c == o.delimiter || c == o.quotechar || c == '\r' || c == '\n' || c == o.escapechar)
                    out.push_back(o.escapechar);
                out.push_back(c);
            }
        } else {
            out.append(cell);
        }
    }
    out.append(o.lineterminator);
}

std::string csv_cell(const Json* v, bool& numeric) {
    numeric = false;
    if (!v || v->IsNull()) return {};
    if (v->IsBool()) {
        numeric = true;
        return v->GetBool() ? "True" : "False";
    }
    if (v->IsNumber()) {
        numeric = true;
        return to_json(*v);
    }
    if (v->IsString()) {
        std::string_view s = as_view(*v);
        if (typed_kind(s) != TypedKind::None) s.remove_prefix(2);
        return std::string(s);
    }
    return to_json(*v);
}

char single_char_option(const Json& config, const char* key, char fallback, bool allow_empty) {
    const Json* v = find_member(config, key);
    if (!v || v->IsNull()) return fallback;
    if (!v->IsString()) throw std::invalid_argument(std::string(key) + " must be a one-character string");
    std::string_view s = as_view(*v);
    if (s.empty() && allow_empty) return 0;
    if (s == "\\t") return '\t';
    if (s.size() != 1 || static_cast<unsigned char>(s[0]) >= 0x80)
        throw std::invalid_argument(std::string(key) + " must be a single ASCII character, got \"" + std::string(s) + "\"");
    return s[0];
}

CsvWriteOptions parse_csv_write_options(const Json& config) {
    CsvWriteOptions o;
    o.delimiter = single_char_option(config, "delimiter", ',');
    o.quotechar = single_char_option(config, "quotechar", '"');
    o.escapechar = single_char_option(config, "escapechar", 0, true);
    o.doublequote = bool_or(config, "doublequote", true);
    o.quoting = parse_quoting(find_member(config, "quoting"));
    if (const Json* lt = find_member(config, "lineterminator"); lt && lt->IsString()) {
        o.lineterminator = std::string(as_view(*lt));
        if (o.lineterminator.empty()) throw std::invalid_argument("lineterminator must not be empty");
    }
    if (o.delimiter == o.quotechar) throw std::invalid_argument("delimiter and quotechar must differ");
    return o;
}

// ---- entities as CSV -------------------------------------------------------------------------

CsvEntityWriter::CsvEntityWriter(const Json& config) : options_(parse_csv_write_options(config)) {
    encoding_ = parse_encoding(string_or(config, "encoding", "utf-8"));
    include_header_ = bool_or(config, "include_header", true);
    skip_deleted_ = bool_or(config, "skip-deleted-entities", bool_or(config, "skip_deleted_entities", true));
    if (const Json* cols = find_member(config, "columns"); cols && !cols->IsNull()) {
        if (!cols->IsArray()) throw std::invalid_argument("columns must be a list of property names");
        for (const Json& c : cols->GetArray()) {
            if (!c.IsString()) throw std::invalid_argument("columns must be a list of property names");
            configured_columns_.emplace_back(as_view(c));
        }
    }
    columns_ = configured_columns_;
}

void CsvEntityWriter::reset() {
    columns_ = configured_columns_;
    started_ = false;
    header_done_ = false;
}

void CsvEntityWriter::resume(std::vector<std::string> columns) {
    if (configured_columns_.empty()) columns_ = std::move(columns);
    started_ = true;
    header_done_ = true;
}

void CsvEntityWriter::append_encoded(std::string& out, const std::string& utf8) {
    if (encoding_ == Encoding::Utf8 || encoding_ == Encoding::Utf8Sig) {
        out.append(utf8);
    } else {
        out.append(encode_from_utf8(utf8, encoding_));
    }
}

void CsvEntityWriter::start(std::string& out) {
    if (started_) return;
    started_ = true;
    out.append(byte_order_mark(encoding_));
}

size_t CsvEntityWriter::write(std::string_view batch_json, std::string& out) {
    JsonDocument doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(batch_json.data(), batch_json.size());
    if (doc.HasParseError() || !doc.IsArray()) throw Error("csv: the batch is not a JSON array of entities");
    size_t rows = 0;
    std::vector<std::string> cells;
    std::vector<bool> numeric;
    for (const Json& entity : doc.GetArray()) {
        if (!entity.IsObject()) continue;
        if (skip_deleted_) {
            const Json* deleted = find_member(entity, "_deleted");
            if (deleted && deleted->IsBool() && deleted->GetBool()) continue;
        }
        if (columns_.empty()) {
            if (find_member(entity, "_id")) columns_.emplace_back("_id");
            for (auto it = entity.MemberBegin(); it != entity.MemberEnd(); ++it) {
                std::string_view key = as_view(it->name);
                if (!is_reserved_key(key)) columns_.emplace_back(key);
            }
        }
        start(out);
        if (!header_done_) {
            header_done_ = true;
            if (include_header_) {
                row_.clear();
                write_csv_row(row_, columns_, {}, options_);
                append_encoded(out, row_);
            }
        }
        cells.clear();
        numeric.assign(columns_.size(), false);
        for (size_t i = 0; i < columns_.size(); ++i) {
            bool n = false;
            cells.push_back(csv_cell(find_member(entity, columns_[i]), n));
            numeric[i] = n;
        }
        row_.clear();
        write_csv_row(row_, cells, numeric, options_);
        append_encoded(out, row_);
        ++rows;
    }
    return rows;
}

void CsvEntityWriter::finish(std::string& out) {
    if (header_done_ || columns_.empty()) return;
    start(out);
    header_done_ = true;
    if (include_header_) {
        row_.clear();
        write_csv_row(row_, columns_, {}, options_);
        append_encoded(out, row_);
    }
}

}  // namespace sluice::http

// sluice_http/csv.hpp — streaming CSV reading (Python csv module semantics, RFC 4180) and
// writing (RFC 4180: CRLF, minimal quoting by default), shared by the csv source, the file sink
// and the csv_endpoint publisher.
#pragma once

#include <sluice/entity.hpp>
#include <sluice_http/text.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

struct CsvDialect {
    char delimiter = ',';
    char quotechar = '"';
    bool doublequote = true;   // "" inside a quoted field is one quote
    char escapechar = 0;       // 0: none
    bool skipinitialspace = false;
    bool quoting = true;       // false: quotes are ordinary characters (QUOTE_NONE)
};

// Reads UTF-8 text fed in chunks; calls `on_record(fields, line)` for each record (`line` is the
// 1-based line the record starts on). Blank lines are skipped. Quoted fields may span lines.
class CsvParser {
public:
    using RecordFn = std::function<bool(std::vector<std::string>& fields, size_t line)>;
    CsvParser(CsvDialect dialect, size_t max_record_bytes, RecordFn on_record)
        : d_(dialect), max_record_bytes_(max_record_bytes), on_record_(std::move(on_record)) {}

    // Returns false once `on_record` asked to stop. Throws sluice::Error when a record grows past
    // max_record_bytes (typically an unterminated quote).
    bool feed(std::string_view text);
    // At the end of the input: emits the last record; fails inside an unterminated quote.
    bool finish();

private:
    enum class State { StartRecord, StartField, InField, Escape, InQuoted, EscapeInQuoted, QuoteInQuoted };
    bool end_field();
    bool end_record();

    CsvDialect d_;
    size_t max_record_bytes_;
    RecordFn on_record_;
    State state_ = State::StartRecord;
    std::vector<std::string> fields_;
    std::string field_;
    size_t record_bytes_ = 0;
    size_t line_ = 1;
    size_t record_line_ = 1;
    bool skip_lf_ = false;
};

// Guesses the delimiter from a sample (the first line): the most frequent of , ; TAB | outside
// quotes, else ','.
char sniff_delimiter(std::string_view sample, char quotechar = '"');

enum class CsvQuoting { Minimal, All, NonNumeric, None };
CsvQuoting parse_quoting(const Json* value);  // "minimal"|"all"|"nonnumeric"|"none" or 0..3

struct CsvWriteOptions {
    char delimiter = ',';
    char quotechar = '"';
    bool doublequote = true;
    char escapechar = 0;
    CsvQuoting quoting = CsvQuoting::Minimal;
    std::string lineterminator = "\r\n";
};

// Appends one row. `numeric[i]` marks numeric cells (QUOTE_NONNUMERIC leaves them bare).
void write_csv_row(std::string& out, const std::vector<std::string>& cells, const std::vector<bool>& numeric,
                   const CsvWriteOptions& options);

// The CSV text of an entity value (missing/null → ""; booleans "True"/"False" and numbers as
// Python's str() would print them; typed strings lose their "~x" prefix; lists and objects as
// JSON). `numeric` is set for numbers and booleans.
std::string csv_cell(const Json* value, bool& numeric);

// Reads the CSV writer keys of a component config: delimiter, quotechar, doublequote,
// escapechar, quoting, lineterminator. Throws std::invalid_argument.
CsvWriteOptions parse_csv_write_options(const Json& config);

// Renders entities as a CSV document (the file sink's csv format and the csv_endpoint
// publisher). Config keys: columns (else the first entity's keys, `_id` plus its non-`_`
// properties), include_header (true), skip-deleted-entities / skip_deleted_entities (true),
// encoding (utf-8), and the writer keys above. Output is encoded bytes; the first output of a
// document starts with the encoding's byte-order mark, if it has one.
class CsvEntityWriter {
public:
    explicit CsvEntityWriter(const Json& config);  // throws std::invalid_argument

    // Appends the rows of a JSON array of entities to `out`, the header before the first row.
    // Returns the number of rows written.
    size_t write(std::string_view batch_json, std::string& out);
    // At the end of a document: the header alone when no row was written and columns are known.
    void finish(std::string& out);
    // Starts a new document.
    void reset();
    // Continuing an existing document (appending to a file): no BOM, no header; `columns` are
    // those of the existing header when none are configured.
    void resume(std::vector<std::string> columns);

    const std::vector<std::string>& columns() const { return columns_; }
    bool skip_deleted() const { return skip_deleted_; }

private:
    void start(std::string& out);
    void append_encoded(std::string& out, const std::string& utf8);

    CsvWriteOptions options_;
    Encoding encoding_;
    std::vector<std::string> configured_columns_;
    std::vector<std::string> columns_;
    bool include_header_ = true;
    bool skip_deleted_ = true;
    bool started_ = false;
    bool header_done_ = false;
    std::string row_;
};

// A one-character option ("," or "\t"); `fallback` when absent. Throws std::invalid_argument.
char single_char_option(const Json& config, const char* key, char fallback, bool allow_empty = false);

}  // namespace sluice::http

// The `sluice` client subcommands (upload, download, status, run, test): Sesam's `sesam` CLI
// (reference §6) rebuilt inside the `sluice` binary, talking to a node over its REST API.
//
// The pieces that need no node — connection settings, the working-directory layout, test specs,
// the normalisation and comparison of pipe output, JSON formatting and diffs — are plain
// functions declared here so they can be unit-tested; the commands themselves are run_client().
#pragma once

#include <sluice/entity.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sluice::kernel::client {

namespace fs = std::filesystem;

// A bad command line; the caller prints it with the usage text and exits 2.
struct UsageError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// ---- commands -----------------------------------------------------------------------------

// upload, download, status, run, test.
bool is_client_command(const std::string& command);
// Runs one client subcommand; returns the exit status (0 ok, 1 failed). Throws UsageError on a
// bad command line and std::runtime_error when the node cannot be reached.
int run_client(const std::string& command, const std::vector<std::string>& args);

// ---- connection ---------------------------------------------------------------------------

constexpr const char* kDefaultNode = "http://127.0.0.1:9042";

struct SyncConfig {
    std::optional<std::string> node;  // NODE=
    std::optional<std::string> jwt;   // JWT=
    fs::path file;                    // where it was read from
};

// Parses Sesam's .syncconfig text: NAME=value lines, values optionally in single or double
// quotes, `#` comments and blank lines ignored.
SyncConfig parse_syncconfig(const std::string& text);
// The nearest .syncconfig in `start` or one of its parents.
std::optional<SyncConfig> find_syncconfig(const fs::path& start);

struct Connection {
    std::string base_url;  // scheme://host[:port][/prefix], no trailing slash and no /api
    std::string token;     // sent as `Authorization: Bearer <token>` when not empty
};

// "host:port" (no scheme) becomes http:// for loopback hosts and https:// otherwise, as Sesam's
// client does for cloud nodes; a trailing "/" or "/api" is dropped.
std::string normalise_node_url(const std::string& node);

// --node, else $SLUICE_NODE, else NODE in .syncconfig (searched upwards from `cwd`), else the
// default; the token likewise from --token, $SLUICE_TOKEN, JWT.
// Where `sluice login` keeps tokens: $SLUICE_CREDENTIALS, else $XDG_CONFIG_HOME/sluice/credentials,
// else ~/.config/sluice/credentials. One "<node-url> <token>" line per node, mode 0600.
fs::path credentials_file(const std::function<std::optional<std::string>(const char*)>& getenv);
std::optional<std::string> stored_token(const fs::path& file, const std::string& base_url);
void store_token(const fs::path& file, const std::string& base_url, const std::string& token);

// The token is --token, else $SLUICE_TOKEN, else JWT= in .syncconfig, else the one stored by
// `sluice login` for that node.
Connection resolve_connection(const std::optional<std::string>& node_arg,
                              const std::optional<std::string>& token_arg, const fs::path& cwd,
                              const std::function<std::optional<std::string>(const char*)>& getenv);

// ---- HTTP ---------------------------------------------------------------------------------

struct HttpResult {
    int status = 0;
    std::string body;
    std::string content_type;
    bool ok() const { return status >= 200 && status < 300; }
};

class NodeClient {
public:
    explicit NodeClient(Connection connection) : connection_(std::move(connection)) {}
    // `path` starts with /api/... and carries any query string. Throws std::runtime_error naming
    // the node when it cannot be reached.
    HttpResult request(const std::string& method, const std::string& path, const std::string& body = {},
                       const std::string& content_type = {}, int timeout_seconds = 120,
                       const std::string& accept = "application/json") const;
    const std::string& base_url() const { return connection_.base_url; }

private:
    Connection connection_;
};

// Percent-encoding for one path segment or query value.
std::string url_encode(const std::string& text);
// A short message for a failed request: the node's {"error","detail"} or the body's start.
std::string describe_failure(const std::string& method, const std::string& path, const HttpResult& r);

// ---- JSON text ----------------------------------------------------------------------------

// Formats like Python's json.dumps(ensure_ascii=False), the formatter Sesam's client writes and
// compares with: indent < 0 is the one-line form (", " and ": " separators), indent >= 0 puts
// each member on its own line; sort_keys orders object members by key; floats use Python's
// repr (1.0, 1e-05, 1e+16). html_escape writes <, > and & as \u003c, \u003e, \u0026.
struct DumpOptions {
    int indent = -1;
    bool sort_keys = true;
    bool html_escape = false;
};
std::string dump_json(const Json& value, const DumpOptions& options = {});
// Python's repr() of a float.
std::string python_float_repr(double value);

// Parses JSON text (a UTF-8 byte order mark is skipped); on error throws std::invalid_argument
// "<what>: malformed JSON at line L, column C: <reason>".
JsonDocument parse_json_text(const std::string& text, const std::string& what);

// Python difflib.unified_diff-style text: ---/+++ headers and @@ hunks with `context` lines;
// "" when the texts are equal.
std::string unified_diff(const std::string& a, const std::string& b, const std::string& a_name,
                         const std::string& b_name, int context = 3);

// ---- test specs and output comparison (reference §6.4) ------------------------------------

struct TestSpec {
    std::string spec_file;   // "expected/<name>.test.json"
    std::string name;        // <name>
    std::string id;          // `_id`, default <name>
    std::string pipe;        // default <name>
    std::string file;        // "expected/<file>", default "expected/<name>.json"
    std::string endpoint = "json";
    std::string stage = "sink";  // sent as ?stage= ("before-transform" becomes "before-transforms")
    bool ignore = false;
    bool ignore_deletes = true;
    std::vector<std::string> blacklist;
    std::vector<std::pair<std::string, std::string>> parameters;  // query parameters for publishers
    std::vector<std::string> fields_to_sort_by{"_id"};
};

// The spec in `spec_file` ("expected/x.test.json") from its parsed content; throws
// std::invalid_argument naming the file when a field has the wrong type.
TestSpec parse_test_spec(const std::string& spec_file, const Json& spec);

// Whether a property path is blacklisted. `path` holds one element per object key; list levels
// appear as "[]" elements. A pattern is a dotted path ("foo.bar"); "\." is a literal dot; each
// segment is a glob (`*`, `?`) over one key; list levels match a `*` or `[]` segment or are
// skipped, so "foos.bar" and "foos.*.bar" both reach `bar` inside a list of objects.
bool is_blacklisted(const std::vector<std::string>& path, const std::vector<std::string>& blacklist);

// Sesam's filter_entity: drops every `_`-prefixed property at any depth except `_id` and
// `_deleted: true`, and every blacklisted property.
JsonDocument filter_entity(const Json& entity, const std::vector<std::string>& blacklist);

// Sesam's fix for current output: floats that print as N.0 become integers; integers longer
// than 16 characters are rounded through a double (its historical "large int" behaviour).
void fix_numbers(Json& value);

// Sorts entities by the spec's fields_to_sort_by, then by their one-line sorted JSON.
void sort_entities(Json& entities, const std::vector<std::string>& fields_to_sort_by);

struct Comparison {
    bool equal = false;
    std::string message;        // why not equal ("" when equal)
    std::string diff;           // unified diff, expected → current
    std::string expected_text;  // the JSON texts compared
    std::string current_text;
};

// The verify step for JSON output: `expected` is the expected file's array as written,
// `current` the pipe's entities as the node returned them. Filters, fixes and sorts `current`
// (dropping deletes the expected file does not list when ignore_deletes), sorts `expected`, and
// compares the counts and then the pretty JSON (indent 2, sorted keys).
Comparison compare_entities(const Json& expected, const Json& current, const TestSpec& spec);

// The verify step for other output (CSV and the like): byte for byte, with a diff when both
// are text.
Comparison compare_bytes(const std::string& expected, const std::string& current, const TestSpec& spec);

// What `test --update` writes for JSON output: the filtered, fixed, sorted entities (deletes
// dropped when ignore_deletes) as JSON with indent 2 and sorted keys, <, > and & escaped, and a
// final newline.
std::string expected_file_text(const Json& current, const TestSpec& spec);

// Sesam's pipe classes, from a pipe's effective configuration: "input" (embedded source),
// "endpoint" (sink type *_endpoint), "internal" (dataset to dataset, or any dataset sink),
// "output" (no dataset sink). Output and endpoint pipes need a test spec.
std::string pipe_class(const Json& effective_config);

// ---- the working directory (reference §6.2) -----------------------------------------------

struct LocalEntity {
    std::string file;  // relative, e.g. "pipes/p.conf.json"
    std::string id;
    std::string kind;  // "pipe" | "system" | "metadata"
};

struct LocalProject {
    JsonDocument entities{rapidjson::kArrayType};  // metadata, then systems, then pipes
    std::vector<LocalEntity> index;                // parallel to `entities`
    std::vector<std::string> errors;               // each starts with the file name
    std::vector<std::string> warnings;
    std::optional<JsonDocument> env;  // <profile>-env.json
    std::string env_file;             // its name, when present
    // The file an entity id came from, or "".
    std::string file_of(const std::string& id) const;
};

// Reads node-metadata.conf.json, pipes/*.conf.json, systems/*.conf.json and <profile>-env.json
// from `dir`, checking that each is JSON of the right shape (object or array of objects with a
// string `_id` and the type its folder implies) and that no `_id` repeats.
LocalProject read_project(const fs::path& dir, const std::string& profile);

// Where a config entity lives in the layout ("pipes/<id>.conf.json", "systems/<id>.conf.json",
// "node-metadata.conf.json"), or "" for an entity of no known kind or an id that cannot be a
// file name.
std::string config_path(const Json& entity);
// A config file's text as download writes it: indent 2, sorted keys, final newline.
std::string config_file_text(const Json& entity);

struct StatusEntry {
    std::string file;
    std::string state;  // "differs" | "only-on-node" | "only-local"
    std::string local_text;
    std::string node_text;
};
// Compares the node's configuration (a JSON array) with the local project entity by entity
// (values, not formatting); empty when they are in sync.
std::vector<StatusEntry> compare_config(const LocalProject& local, const Json& node_entities);

}  // namespace sluice::kernel::client

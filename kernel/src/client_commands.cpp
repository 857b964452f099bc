// The client subcommands: upload, download, status, run and test (reference §6.3), each a thin
// layer of HTTP calls over the pure helpers in client_*.cpp.
#include <sluice/kernel/client.hpp>

#include <Poco/DateTimeFormatter.h>
#include <Poco/Timestamp.h>

#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace sluice::kernel::client {

namespace {

using Clock = std::chrono::steady_clock;

// ---- output -------------------------------------------------------------------------------

void say(const std::string& line) { std::cout << line << "\n" << std::flush; }
void complain(const std::string& line) {
    std::cout << std::flush;
    std::cerr << line << "\n" << std::flush;
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string fixed(double value, int decimals = 1) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    return buffer;
}

std::string plural(size_t n, const std::string& word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// ---- command lines ------------------------------------------------------------------------

struct Args {
    std::vector<std::string> positional;
    std::map<std::string, std::string> values;
    std::set<std::string> flags;

    std::optional<std::string> value(const std::string& name) const {
        auto it = values.find(name);
        return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
    }
    bool flag(const std::string& name) const { return flags.count(name) > 0; }
    fs::path dir() const { return positional.empty() ? fs::path(".") : fs::path(positional[0]); }
    std::string profile() const { return value("profile").value_or("test"); }
};

Args parse_args(const std::string& command, const std::vector<std::string>& args, std::vector<std::string> value_options,
                const std::vector<std::string>& flag_options, size_t max_positional) {
    value_options.push_back("node");
    value_options.push_back("token");
    auto known = [](const std::vector<std::string>& list, const std::string& name) {
        return std::find(list.begin(), list.end(), name) != list.end();
    };
    Args out;
    bool options_done = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (!options_done && arg == "--") {
            options_done = true;
            continue;
        }
        if (options_done || arg.rfind("--", 0) != 0) {
            out.positional.push_back(arg);
            continue;
        }
        std::string name = arg.substr(2), value;
        bool has_value = false;
        if (size_t eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        if (known(flag_options, name)) {
            if (has_value) throw UsageError("option --" + name + " takes no value");
            out.flags.insert(name);
        } else if (known(value_options, name)) {
            if (!has_value) {
                if (i + 1 >= args.size()) throw UsageError("option --" + name + " needs a value");
                value = args[++i];
            }
            out.values[name] = value;
        } else {
            throw UsageError("unknown option --" + name + " for 'sluice " + command + "'");
        }
    }
    if (out.positional.size() > max_positional)
        throw UsageError("unexpected argument '" + out.positional[max_positional] + "' for 'sluice " + command + "'");
    return out;
}

double number_option(const Args& args, const std::string& name, double fallback, double minimum = 0) {
    auto text = args.value(name);
    if (!text) return fallback;
    try {
        size_t used = 0;
        double v = std::stod(*text, &used);
        if (used != text->size() || v < minimum) throw std::invalid_argument("range");
        return v;
    } catch (const std::exception&) {
        throw UsageError("option --" + name + " needs a number >= " + fixed(minimum, 0) + ", got '" + *text + "'");
    }
}

NodeClient connect(const Args& args) {
    auto env = [](const char* name) -> std::optional<std::string> {
        const char* v = std::getenv(name);
        return v ? std::optional<std::string>(v) : std::nullopt;
    };
    std::error_code ec;
    fs::path cwd = fs::current_path(ec);
    return NodeClient(resolve_connection(args.value("node"), args.value("token"), ec ? fs::path(".") : cwd, env));
}

// ---- files --------------------------------------------------------------------------------

std::optional<std::string> read_file(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void write_file(const fs::path& file, const std::string& text) {
    if (file.has_parent_path()) fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + file.string());
    out << text;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + file.string());
}

// Regular files directly in `dir` whose names end with `suffix`, sorted.
std::vector<std::string> files_ending(const fs::path& dir, const std::string& suffix) {
    std::vector<std::string> names;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return names;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file(ec) && name.size() > suffix.size() &&
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

JsonDocument parse_body(const HttpResult& r, const std::string& what) { return parse_json_text(r.body, what); }

std::string pipe_path(const std::string& pipe) { return "/api/pipes/" + url_encode(pipe); }

// ---- upload -------------------------------------------------------------------------------

void print_validation_errors(const HttpResult& r, const LocalProject& project) {
    JsonDocument doc;
    doc.Parse(r.body.data(), r.body.size());
    const Json* errors = !doc.HasParseError() ? find_member(doc, "validation_errors") : nullptr;
    if (!errors || !errors->IsArray() || errors->Empty()) {
        complain("error: the node refused the configuration: " + describe_failure("PUT", "/api/config", r));
        return;
    }
    complain("error: the node refused the configuration (" + plural(errors->Size(), "problem") + "):");
    for (const Json& item : errors->GetArray()) {
        std::string entity = string_or(item, "entity", "");
        if (entity.empty()) {
            if (const Json* posted = find_member(item, "posted-config")) entity = string_or(*posted, "_id", "");
        }
        const std::string file = project.file_of(entity);
        std::string where = file.empty() ? "" : file + ": ";
        if (!entity.empty()) where += "'" + entity + "'";
        if (const Json* message = find_member(item, "message"); message && message->IsString()) {
            const std::string pointer = string_or(item, "pointer", "");
            complain("  " + where + (pointer.empty() ? "" : " at " + pointer) + ": " + std::string(as_view(*message)));
        } else if (const Json* list = find_member(item, "config-errors"); list && list->IsArray()) {
            for (const Json& ce : list->GetArray()) {
                const std::string level = string_or(ce, "level", "error");
                if (level != "error") continue;
                complain("  " + where + ": " + string_or(ce, "msg", dump_json(ce)));
            }
        } else {
            complain("  " + where + ": " + dump_json(item));
        }
    }
}

bool post_testdata(const NodeClient& node, const fs::path& dir) {
    for (const std::string& name : files_ending(dir / "testdata", ".json")) {
        const std::string rel = "testdata/" + name;
        const std::string pipe = name.substr(0, name.size() - 5);
        std::optional<std::string> text = read_file(dir / "testdata" / name);
        if (!text) {
            complain("error: cannot read " + rel);
            return false;
        }
        size_t count = 1;
        try {
            JsonDocument doc = parse_json_text(*text, rel);
            if (!doc.IsArray() && !doc.IsObject()) throw std::invalid_argument(rel + ": expected an entity or a list of entities");
            if (doc.IsArray()) count = doc.Size();
        } catch (const std::exception& e) {
            complain(std::string("error: ") + e.what());
            return false;
        }
        const std::string path = "/api/receivers/" + url_encode(pipe) + "/entities";
        const auto deadline = Clock::now() + std::chrono::seconds(60);
        HttpResult r;
        while (true) {
            r = node.request("POST", path, *text, "application/json");
            // 503: the pipe is still deploying; 429: slow down. Sesam's client retries both.
            if ((r.status == 503 || r.status == 429) && Clock::now() < deadline) {
                std::this_thread::sleep_for(std::chrono::seconds(1));
                continue;
            }
            break;
        }
        if (!r.ok()) {
            complain("error: " + rel + ": " + describe_failure("POST", path, r));
            return false;
        }
        say("Posted " + rel + " (" + std::to_string(count) + (count == 1 ? " entity" : " entities") + ") to pipe '" + pipe + "'");
    }
    return true;
}

bool upload(const NodeClient& node, const fs::path& dir, const std::string& profile) {
    LocalProject project = read_project(dir, profile);
    for (const std::string& w : project.warnings) say("warning: " + w);
    if (!project.errors.empty()) {
        complain("error: " + plural(project.errors.size(), "problem") + " in the configuration in " + dir.string() + ":");
        for (const std::string& e : project.errors) complain("  " + e);
        return false;
    }
    if (project.env) {
        HttpResult r = node.request("PUT", "/api/env", to_json(*project.env), "application/json");
        if (!r.ok()) {
            complain("error: " + project.env_file + ": " + describe_failure("PUT", "/api/env", r));
            return false;
        }
        say("Uploaded " + project.env_file + " (" + plural(project.env->MemberCount(), "variable") + ")");
    }
    HttpResult r = node.request("PUT", "/api/config", to_json(project.entities), "application/json");
    if (r.status == 400) {
        print_validation_errors(r, project);
        return false;
    }
    if (!r.ok()) {
        complain("error: " + describe_failure("PUT", "/api/config", r));
        return false;
    }
    size_t pipes = 0, systems = 0, metadata = 0;
    for (const LocalEntity& e : project.index) (e.kind == "pipe" ? pipes : e.kind == "system" ? systems : metadata)++;
    say("Uploaded " + plural(pipes, "pipe") + " and " + plural(systems, "system") +
        (metadata ? " and the node metadata" : "") + " to " + node.base_url());
    return post_testdata(node, dir);
}

int cmd_upload(const std::vector<std::string>& argv) {
    Args args = parse_args("upload", argv, {"profile"}, {}, 1);
    NodeClient node = connect(args);
    return upload(node, args.dir(), args.profile()) ? 0 : 1;
}

// ---- download / status --------------------------------------------------------------------

std::optional<JsonDocument> fetch_config(const NodeClient& node) {
    HttpResult r = node.request("GET", "/api/config");
    if (!r.ok()) {
        complain("error: " + describe_failure("GET", "/api/config", r));
        return std::nullopt;
    }
    JsonDocument doc = parse_body(r, "GET /api/config");
    if (!doc.IsArray()) {
        complain("error: GET /api/config did not answer a JSON array");
        return std::nullopt;
    }
    return doc;
}

int cmd_download(const std::vector<std::string>& argv) {
    Args args = parse_args("download", argv, {}, {}, 1);
    NodeClient node = connect(args);
    const fs::path dir = args.dir();
    std::optional<JsonDocument> config = fetch_config(node);
    if (!config) return 1;
    fs::create_directories(dir);
    std::set<std::string> written;
    size_t pipes = 0, systems = 0;
    for (const Json& e : config->GetArray()) {
        const std::string rel = config_path(e);
        if (rel.empty()) {
            say("warning: skipped an entity the layout has no place for: " + dump_json(e).substr(0, 120));
            continue;
        }
        const std::string text = config_file_text(e);
        std::optional<std::string> existing = read_file(dir / rel);
        if (!existing || *existing != text) {
            write_file(dir / rel, text);
            say(std::string(existing ? "  updated " : "  created ") + rel);
        }
        written.insert(rel);
        if (rel.rfind("pipes/", 0) == 0) ++pipes;
        else if (rel.rfind("systems/", 0) == 0) ++systems;
    }
    for (const char* folder : {"pipes", "systems"}) {
        for (const std::string& name : files_ending(dir / folder, ".conf.json")) {
            const std::string rel = std::string(folder) + "/" + name;
            if (written.count(rel)) continue;
            fs::remove(dir / rel);
            say("  removed " + rel);
        }
    }
    std::error_code ec;
    if (!written.count("node-metadata.conf.json") && fs::is_regular_file(dir / "node-metadata.conf.json", ec)) {
        fs::remove(dir / "node-metadata.conf.json");
        say("  removed node-metadata.conf.json");
    }
    say("Downloaded " + plural(pipes, "pipe") + " and " + plural(systems, "system") +
        (written.count("node-metadata.conf.json") ? " and the node metadata" : "") + " from " + node.base_url() +
        " into " + dir.string());
    return 0;
}

int cmd_status(const std::vector<std::string>& argv) {
    Args args = parse_args("status", argv, {"profile"}, {"diff"}, 1);
    NodeClient node = connect(args);
    LocalProject project = read_project(args.dir(), args.profile());
    if (!project.errors.empty()) {
        complain("error: " + plural(project.errors.size(), "problem") + " in the configuration in " + args.dir().string() + ":");
        for (const std::string& e : project.errors) complain("  " + e);
        return 1;
    }
    std::optional<JsonDocument> config = fetch_config(node);
    if (!config) return 1;
    std::vector<StatusEntry> entries = compare_config(project, *config);
    for (const StatusEntry& e : entries) {
        if (e.state == "differs") say(e.file + ": differs from the node");
        else if (e.state == "only-on-node") say(e.file + ": only on the node");
        else say(e.file + ": not on the node");
        if (args.flag("diff")) {
            std::cout << unified_diff(e.local_text, e.node_text, "local/" + e.file, "node/" + e.file) << std::flush;
        }
    }
    if (entries.empty()) {
        say("The node's configuration is in sync with " + args.dir().string());
        return 0;
    }
    say("The node's configuration is NOT in sync with " + args.dir().string() + " (" + plural(entries.size(), "difference") + ")");
    return 1;
}

// ---- run ----------------------------------------------------------------------------------

std::string timestamp_text(const Json& ts) {
    if (ts.IsString()) return std::string(as_view(ts));
    if (ts.IsNumber()) {
        double v = ts.GetDouble();
        int64_t us = v > 1e14 ? static_cast<int64_t>(v) : v > 1e11 ? static_cast<int64_t>(v * 1000) : static_cast<int64_t>(v * 1e6);
        return Poco::DateTimeFormatter::format(Poco::Timestamp(us), "%Y-%m-%dT%H:%M:%S.%iZ");
    }
    return dump_json(ts);
}

// One log line of a run job: Sesam's {timestamp, loglevel, logdata}, or plain text.
std::string log_line_text(const Json& line) {
    if (line.IsString()) return std::string(as_view(line));
    if (!line.IsObject()) return dump_json(line);
    std::string out;
    if (const Json* ts = find_member(line, "timestamp")) out += timestamp_text(*ts) + " - ";
    std::string level = string_or(line, "loglevel", string_or(line, "level", ""));
    if (!level.empty()) out += level + " - ";
    const Json* data = find_member(line, "logdata");
    if (!data) data = find_member(line, "text");
    if (!data) data = find_member(line, "message");
    out += data ? (data->IsString() ? std::string(as_view(*data)) : dump_json(*data)) : dump_json(line);
    return out;
}

// A one-line progress display: rewritten in place on a terminal, plain lines otherwise.
class Progress {
public:
    explicit Progress(std::string label) : label_(std::move(label)), tty_(::isatty(STDOUT_FILENO) == 1) {}
    void update(const std::string& state, int64_t processed) {
        const double elapsed = seconds_since(start_);
        const std::string text = label_ + ": " + state + ", " + std::to_string(processed) + " processed, " +
                                 fixed(elapsed) + " s";
        if (tty_) {
            std::cout << "\r\x1b[K" << text << std::flush;
            shown_ = true;
        } else if (!printed_once_ || (processed != last_processed_ && seconds_since(last_print_) >= 2.0)) {
            say(text);
            printed_once_ = true;
            last_print_ = Clock::now();
            last_processed_ = processed;
        }
    }
    void clear() {
        if (tty_ && shown_) std::cout << "\r\x1b[K" << std::flush;
        shown_ = false;
    }
    double elapsed() const { return seconds_since(start_); }

private:
    std::string label_;
    bool tty_;
    bool shown_ = false;
    bool printed_once_ = false;
    int64_t last_processed_ = -1;
    Clock::time_point start_ = Clock::now();
    Clock::time_point last_print_ = Clock::now();
};

struct PumpView {
    bool running = false;
    int64_t runs = -1;  // -1: the node does not report it
    int64_t processed = 0;
    std::string last_run_id;
    std::string last_status;
    std::string last_error;
    std::string summary;
};

PumpView pump_view(const Json& pump) {
    PumpView v;
    const Json* runtime = find_member(pump, "runtime");
    if (!runtime) return v;
    v.running = bool_or(*runtime, "is-running", false);
    if (const Json* runs = find_member(*runtime, "runs"); runs && runs->IsInt64()) v.runs = runs->GetInt64();
    if (const Json* progress = find_member(*runtime, "progress"))
        v.processed = int_or(*progress, "processed", 0);
    if (const Json* last = find_member(*runtime, "last-run"); last && last->IsObject()) {
        v.last_run_id = string_or(*last, "run_id", "");
        v.last_status = string_or(*last, "status", "");
        v.last_error = string_or(*last, "error", "");
        const int64_t started = int_or(*last, "started_us", 0), ended = int_or(*last, "ended_us", 0);
        std::string s = string_or(*last, "sync_type", "");
        s = s.empty() ? "" : s + " run";
        if (ended > started && started > 0) s += (s.empty() ? "" : " ") + std::string("in ") + fixed((ended - started) / 1e6, 2) + " s";
        if (const Json* n = find_member(*last, "entities"); n && n->IsInt64())
            s += (s.empty() ? "" : ", ") + std::to_string(n->GetInt64()) + " read";
        if (const Json* n = find_member(*last, "changes"); n && n->IsInt64())
            s += (s.empty() ? "" : ", ") + std::to_string(n->GetInt64()) + " changed";
        v.summary = s;
    }
    if (v.last_error.empty()) v.last_error = string_or(*runtime, "last-message", "");
    return v;
}

std::optional<PumpView> get_pump(const NodeClient& node, const std::string& pipe, bool report) {
    const std::string path = pipe_path(pipe) + "/pump";
    HttpResult r = node.request("GET", path);
    if (!r.ok()) {
        if (report) {
            if (r.status == 404) complain("error: pipe '" + pipe + "' is not on the node at " + node.base_url());
            else complain("error: " + describe_failure("GET", path, r));
        }
        return std::nullopt;
    }
    return pump_view(parse_body(r, "GET " + path));
}

int run_pipe(const NodeClient& node, const std::string& pipe, bool full, double timeout) {
    std::optional<PumpView> before = get_pump(node, pipe, true);
    if (!before) return 1;
    const std::string path = pipe_path(pipe) + "/pump";
    HttpResult r = node.request("POST", path, std::string("operation=") + (full ? "start-rescan" : "start"),
                                "application/x-www-form-urlencoded");
    if (r.status == 409) {
        complain("error: pipe '" + pipe + "' is already running");
        return 1;
    }
    if (!r.ok()) {
        complain("error: " + describe_failure("POST", path, r));
        return 1;
    }
    Progress progress(pipe);
    bool seen_running = false;
    const auto started = Clock::now();
    PumpView now;
    while (true) {
        std::optional<PumpView> v = get_pump(node, pipe, true);
        if (!v) {
            progress.clear();
            return 1;
        }
        now = *v;
        seen_running = seen_running || now.running;
        bool done = false;
        if (!now.running) {
            if (before->runs >= 0 && now.runs >= 0) done = now.runs > before->runs;
            else if (!now.last_run_id.empty()) done = now.last_run_id != before->last_run_id;
            else done = seen_running || seconds_since(started) > 5;
        }
        if (done) break;
        progress.update(now.running ? "running" : "queued", now.processed);
        if (timeout > 0 && seconds_since(started) > timeout) {
            progress.clear();
            complain("error: pipe '" + pipe + "' did not finish within " + fixed(timeout, 0) + " s (it keeps running)");
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    progress.clear();
    if (now.last_status == "failed") {
        complain("error: pipe '" + pipe + "' failed: " + (now.last_error.empty() ? "(no message)" : now.last_error));
        return 1;
    }
    say(pipe + ": " + (now.last_status.empty() ? "finished" : now.last_status) +
        (now.summary.empty() ? "" : " (" + now.summary + ")") + ", " + fixed(progress.elapsed()) + " s");
    return 0;
}

int run_tree(const NodeClient& node, const std::string& pipe, bool full, double timeout) {
    if (!get_pump(node, pipe, true)) return 1;
    const std::string path = pipe_path(pipe) + "/run-tree";
    const std::string flag = full ? "true" : "false";
    HttpResult r = node.request("POST", path + "?full=" + flag, "full=" + flag, "application/x-www-form-urlencoded");
    if (r.status == 409) {
        complain("error: pipe '" + pipe + "' (or a run tree for it) is already running");
        return 1;
    }
    if (!r.ok()) {
        complain("error: " + describe_failure("POST", path, r));
        return 1;
    }
    Progress progress(pipe + " with upstream");
    size_t printed = 0;
    const auto started = Clock::now();
    std::string state = "running", error;
    while (true) {
        HttpResult t = node.request("GET", path);
        if (!t.ok()) {
            progress.clear();
            complain("error: " + describe_failure("GET", path, t));
            return 1;
        }
        JsonDocument doc = parse_body(t, "GET " + path);
        state = string_or(doc, "state", "running");
        error = string_or(doc, "error", "");
        if (const Json* log = find_member(doc, "log"); log && log->IsArray()) {
            if (log->Size() > printed) progress.clear();
            for (rapidjson::SizeType i = static_cast<rapidjson::SizeType>(printed); i < log->Size(); ++i)
                say("  " + log_line_text((*log)[i]));
            printed = std::max<size_t>(printed, log->Size());
        }
        if (state != "running") break;
        std::optional<PumpView> v = get_pump(node, pipe, false);
        progress.update("running", v ? v->processed : 0);
        if (timeout > 0 && seconds_since(started) > timeout) {
            progress.clear();
            complain("error: the run tree for '" + pipe + "' did not finish within " + fixed(timeout, 0) + " s");
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    progress.clear();
    if (state != "completed" && state != "success") {
        complain("error: the run tree for '" + pipe + "' " + state + (error.empty() ? "" : ": " + error));
        return 1;
    }
    say(pipe + " and its upstream pipes: completed, " + fixed(progress.elapsed()) + " s");
    return 0;
}

struct RunAllSettings {
    int zero_runs = 2;
    double max_run_time = 900;
    int max_runs = 100;
    bool sync = false;
    bool delete_input_datasets = true;
    bool reset = true;
    bool print_log = true;
};

// Prints the run-all log lines not printed yet. The node's `since` is the number of lines
// already read (Sesam's client sends the last timestamp instead; see docs/cli.md).
class RunAllLog {
public:
    RunAllLog(const NodeClient& node, std::string token) : node_(node), token_(std::move(token)) {}
    void print_new() {
        std::string path = "/api/pipes/get-run-all-pipes-log?token=" + url_encode(token_);
        if (seen_ > 0) path += "&since=" + std::to_string(seen_);
        HttpResult r = node_.request("GET", path);
        if (!r.ok()) return;  // the log is a courtesy; the status decides
        JsonDocument doc;
        doc.Parse(r.body.data(), r.body.size());
        if (doc.HasParseError() || !doc.IsArray()) return;
        for (const Json& line : doc.GetArray()) say("  " + log_line_text(line));
        seen_ += doc.Size();
    }

private:
    const NodeClient& node_;
    std::string token_;
    size_t seen_ = 0;
};

bool run_all(const NodeClient& node, const RunAllSettings& s) {
    HttpResult stop = node.request("POST", "/api/pipes/stop-run-all-pipes?terminate_timeout=30", "", "application/json");
    if (!stop.ok()) {
        complain("error: " + describe_failure("POST", "/api/pipes/stop-run-all-pipes", stop));
        return false;
    }
    std::string query = "?extra_zero_runs=" + std::to_string(s.zero_runs) + "&max_run_time=" + fixed(s.max_run_time, 0) +
                        "&max_runs=" + std::to_string(s.max_runs) + "&request_mode=" + (s.sync ? "sync" : "async");
    if (!s.delete_input_datasets) query += "&delete_input_datasets=False";
    if (!s.reset) query += "&reset_pipes_and_delete_sink_datasets=False";
    const auto started = Clock::now();
    say("Running all pipes until stable on " + node.base_url() + " ...");
    HttpResult r = node.request("POST", "/api/pipes/run-all-pipes" + query, "", "application/json",
                                static_cast<int>(s.max_run_time) + 120);
    if (!r.ok()) {
        complain("error: " + describe_failure("POST", "/api/pipes/run-all-pipes", r));
        return false;
    }
    JsonDocument answer = parse_body(r, "POST /api/pipes/run-all-pipes");
    std::string status, info = string_or(answer, "additional_info", "");
    const std::string token = string_or(answer, "token", "");
    RunAllLog log(node, token);
    if (const Json* st = find_member(answer, "status"); st && st->IsString()) {
        status = std::string(as_view(*st));  // sync, or a node that answered synchronously
        if (s.print_log || status != "success") log.print_new();
    } else {
        if (token.empty()) {
            complain("error: run-all-pipes answered neither a token nor a status: " + r.body.substr(0, 300));
            return false;
        }
        const std::string status_path = "/api/pipes/get-pipe-runner-status?token=" + url_encode(token);
        while (true) {
            if (s.print_log) log.print_new();
            HttpResult st = node.request("GET", status_path);
            if (!st.ok()) {
                complain("error: " + describe_failure("GET", "/api/pipes/get-pipe-runner-status", st));
                return false;
            }
            JsonDocument doc = parse_body(st, "GET /api/pipes/get-pipe-runner-status");
            status = string_or(doc, "status", "");
            if (info.empty()) info = string_or(doc, "additional_info", "");
            // running, then success | failed | stopped | not-running.
            if (status != "running" && !status.empty()) break;
            if (seconds_since(started) > s.max_run_time + 120) {
                complain("error: all pipes did not finish within " + fixed(s.max_run_time + 120, 0) + " s");
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
        if (s.print_log || status != "success") log.print_new();
    }
    if (status != "success") {
        complain("error: running all pipes " +
                 (status == "not-running" ? std::string("stopped: the pipe runner is not running") : status) +
                 (info.empty() ? "" : ": " + info));
        return false;
    }
    say("Ran all pipes to completion in " + fixed(seconds_since(started)) + " s");
    if (!info.empty()) say(info);
    return true;
}

RunAllSettings run_all_settings(const Args& args, const fs::path& dir) {
    RunAllSettings s;
    s.zero_runs = static_cast<int>(number_option(args, "zero-runs", s.zero_runs));
    s.max_run_time = number_option(args, "max-run-time", s.max_run_time, 1);
    s.max_runs = static_cast<int>(number_option(args, "max-runs", s.max_runs, 1));
    s.sync = args.flag("sync");
    s.reset = !args.flag("no-reset");
    std::error_code ec;
    // Input datasets fed from testdata/ through receivers must survive the run (as in Sesam).
    s.delete_input_datasets = !fs::is_directory(dir / "testdata", ec);
    return s;
}

int cmd_run(const std::vector<std::string>& argv) {
    Args args = parse_args("run", argv, {"timeout", "zero-runs", "max-run-time", "max-runs"},
                           {"with-upstream", "full", "sync", "no-reset"}, 1);
    NodeClient node = connect(args);
    const double timeout = number_option(args, "timeout", 0);
    if (args.positional.empty()) {
        if (args.flag("with-upstream") || args.flag("full"))
            throw UsageError("--with-upstream and --full need a pipe: sluice run PIPE");
        return run_all(node, run_all_settings(args, ".")) ? 0 : 1;
    }
    const std::string& pipe = args.positional[0];
    if (args.flag("with-upstream")) return run_tree(node, pipe, args.flag("full"), timeout);
    return run_pipe(node, pipe, args.flag("full"), timeout);
}

// ---- test ---------------------------------------------------------------------------------

struct NodePipe {
    std::string cls;
    bool valid = true;
};

std::optional<std::map<std::string, NodePipe>> fetch_pipes(const NodeClient& node) {
    HttpResult r = node.request("GET", "/api/pipes");
    if (!r.ok()) {
        complain("error: " + describe_failure("GET", "/api/pipes", r));
        return std::nullopt;
    }
    JsonDocument doc = parse_body(r, "GET /api/pipes");
    std::map<std::string, NodePipe> pipes;
    if (!doc.IsArray()) return pipes;
    for (const Json& p : doc.GetArray()) {
        NodePipe np;
        const Json* config = find_member(p, "config");
        const Json* effective = config ? find_member(*config, "effective") : nullptr;
        if (!effective && config) effective = find_member(*config, "original");
        np.cls = effective ? pipe_class(*effective) : "internal";
        if (const Json* runtime = find_member(p, "runtime")) np.valid = bool_or(*runtime, "is-valid-config", true);
        pipes[string_or(p, "_id", "")] = np;
    }
    return pipes;
}

// The pipe's output as the spec asks for it: entities (JSON) or a publisher's document.
std::optional<HttpResult> fetch_output(const NodeClient& node, const TestSpec& spec, std::string& failure) {
    std::string path;
    std::string accept = "application/json";
    if (spec.endpoint == "json" || spec.endpoint == "excel") {
        path = pipe_path(spec.pipe) + "/entities?stage=" + url_encode(spec.stage);
    } else {
        path = "/api/publishers/" + url_encode(spec.pipe) + "/" + url_encode(spec.endpoint);
        accept = "*/*";
        char sep = '?';
        for (const auto& [k, v] : spec.parameters) {
            path += sep + url_encode(k) + "=" + url_encode(v);
            sep = '&';
        }
    }
    HttpResult r = node.request("GET", path, "", "", 600, accept);
    if (!r.ok()) {
        failure = describe_failure("GET", path, r);
        return std::nullopt;
    }
    return r;
}

int cmd_test(const std::vector<std::string>& argv) {
    Args args = parse_args("test", argv, {"profile", "runs", "zero-runs", "max-run-time", "max-runs"},
                           {"no-upload", "update", "sync", "no-reset", "print-log"}, 1);
    NodeClient node = connect(args);
    const fs::path dir = args.dir();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        complain("error: " + dir.string() + " is not a directory");
        return 1;
    }
    const bool update = args.flag("update");
    if (!args.flag("no-upload") && !upload(node, dir, args.profile())) return 1;
    RunAllSettings settings = run_all_settings(args, dir);
    settings.print_log = args.flag("print-log");
    const int runs = static_cast<int>(number_option(args, "runs", 1, 1));
    for (int i = 0; i < runs; ++i) {
        if (!run_all(node, settings)) return 1;
    }

    std::optional<std::map<std::string, NodePipe>> pipes = fetch_pipes(node);
    if (!pipes) return 1;
    std::vector<std::string> spec_names = files_ending(dir / "expected", ".test.json");
    std::set<std::string> covered;
    // Output and endpoint pipes need a spec (Sesam's verify fails without one; update adds `{}`).
    for (const std::string& name : spec_names) {
        auto text = read_file(dir / "expected" / name);
        try {
            if (text) covered.insert(parse_test_spec("expected/" + name, parse_json_text(*text, "expected/" + name)).pipe);
        } catch (const std::exception&) {
        }
    }
    std::vector<std::string> uncovered;
    for (const auto& [id, p] : *pipes) {
        if ((p.cls == "output" || p.cls == "endpoint") && !covered.count(id)) uncovered.push_back(id);
    }
    if (update) {
        for (const std::string& id : uncovered) {
            write_file(dir / "expected" / (id + ".test.json"), "{}\n");
            say("created expected/" + id + ".test.json");
            spec_names.push_back(id + ".test.json");
        }
        uncovered.clear();
        std::sort(spec_names.begin(), spec_names.end());
    }
    if (spec_names.empty() && uncovered.empty()) {
        if (update) {
            complain("error: found no tests (expected/*.test.json) to update");
            return 1;
        }
        say("warning: found no tests (expected/*.test.json) to run");
        return 0;
    }

    std::vector<std::string> failed;
    size_t passed = 0, skipped = 0, updated = 0;
    for (const std::string& name : spec_names) {
        const std::string spec_file = "expected/" + name;
        TestSpec spec;
        try {
            auto text = read_file(dir / spec_file);
            if (!text) throw std::runtime_error("cannot read " + spec_file);
            spec = parse_test_spec(spec_file, parse_json_text(*text, spec_file));
        } catch (const std::exception& e) {
            complain("FAIL " + spec_file + ": " + e.what());
            failed.push_back(spec_file);
            continue;
        }
        if (spec.ignore) {
            say("SKIP " + spec_file + " (ignore)");
            ++skipped;
            continue;
        }
        auto pipe = pipes->find(spec.pipe);
        if (pipe == pipes->end()) {
            if (update) {
                fs::remove(dir / spec_file, ec);
                say("removed " + spec_file + ": pipe '" + spec.pipe + "' is not on the node");
                continue;
            }
            complain("FAIL " + spec_file + ": it tests pipe '" + spec.pipe + "', which is not on the node");
            failed.push_back(spec_file);
            continue;
        }
        if (!pipe->second.valid) {
            complain("FAIL " + spec_file + ": pipe '" + spec.pipe + "' has an invalid configuration");
            failed.push_back(spec_file);
            continue;
        }
        std::string failure;
        std::optional<HttpResult> output = fetch_output(node, spec, failure);
        if (!output) {
            complain("FAIL " + spec_file + ": " + failure);
            failed.push_back(spec_file);
            continue;
        }
        const bool json = spec.endpoint == "json" || spec.endpoint == "excel";
        std::optional<JsonDocument> current;
        if (json) {
            try {
                current = parse_json_text(output->body, "the output of pipe '" + spec.pipe + "'");
            } catch (const std::exception& e) {
                complain("FAIL " + spec_file + ": " + e.what());
                failed.push_back(spec_file);
                continue;
            }
        }
        if (update) {
            const std::string text = json ? expected_file_text(*current, spec) : output->body;
            std::optional<std::string> old = read_file(dir / spec.file);
            if (!old || *old != text) {
                write_file(dir / spec.file, text);
                say("updated " + spec.file);
                ++updated;
            } else {
                say("unchanged " + spec.file);
            }
            continue;
        }
        std::optional<std::string> expected_text = read_file(dir / spec.file);
        if (!expected_text) {
            complain("FAIL " + spec_file + ": the expected output " + spec.file +
                     " is missing (sluice test --update writes it)");
            failed.push_back(spec_file);
            continue;
        }
        Comparison c;
        if (json) {
            JsonDocument expected;
            try {
                expected = parse_json_text(*expected_text, spec.file);
            } catch (const std::exception& e) {
                complain("FAIL " + spec_file + ": " + e.what());
                failed.push_back(spec_file);
                continue;
            }
            c = compare_entities(expected, *current, spec);
        } else {
            c = compare_bytes(*expected_text, output->body, spec);
        }
        if (c.equal) {
            say("PASS " + spec_file);
            ++passed;
        } else {
            complain("FAIL " + spec_file + ": " + c.message);
            if (!c.diff.empty()) std::cout << c.diff << std::flush;
            failed.push_back(spec_file);
        }
    }
    for (const std::string& id : uncovered) {
        complain("FAIL no test spec covers output pipe '" + id + "' (add expected/" + id + ".test.json, or run sluice test --update)");
        failed.push_back("(pipe " + id + ")");
    }
    if (update) {
        say("Updated " + plural(updated, "expected file") + (failed.empty() ? "" : "; " + std::to_string(failed.size()) + " failed"));
        return failed.empty() ? 0 : 1;
    }
    const size_t total = passed + failed.size();
    if (failed.empty()) {
        say("All " + plural(total, "test") + " passed" + (skipped ? " (" + std::to_string(skipped) + " skipped)" : ""));
        return 0;
    }
    std::string list;
    for (const std::string& f : failed) list += (list.empty() ? "" : ", ") + f;
    complain(std::to_string(failed.size()) + " of " + plural(total, "test") + " failed: " + list);
    return 1;
}

// ---- login --------------------------------------------------------------------------------

// Reads the password without echo when stdin is a terminal.
std::string read_password() {
    const bool tty = ::isatty(0);
    termios saved{};
    if (tty) {
        std::cerr << "Password: " << std::flush;
        ::tcgetattr(0, &saved);
        termios quiet = saved;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(0, TCSANOW, &quiet);
    }
    std::string password;
    std::getline(std::cin, password);
    if (tty) {
        ::tcsetattr(0, TCSANOW, &saved);
        std::cerr << "\n";
    }
    return password;
}

int cmd_login(const std::vector<std::string>& argv) {
    Args args = parse_args("login", argv, {"user", "expires-in"}, {"print"}, 0);
    NodeClient node = connect(args);
    const std::string user = args.value("user").value_or("admin");
    const char* env_password = std::getenv("SLUICE_PASSWORD");
    const std::string password = env_password ? std::string(env_password) : read_password();
    JsonDocument body(rapidjson::kObjectType);
    auto& a = body.GetAllocator();
    body.AddMember("username", Json(user.c_str(), a), a);
    body.AddMember("password", Json(password.c_str(), a), a);
    if (auto ttl = args.value("expires-in")) body.AddMember("expires_in", Json(ttl->c_str(), a), a);
    HttpResult r = node.request("POST", "/api/auth/token", to_json(body), "application/json");
    if (!r.ok()) {
        complain("error: " + describe_failure("POST", "/api/auth/token", r));
        return 1;
    }
    JsonDocument answer = parse_body(r, "POST /api/auth/token");
    const std::string token = string_or(answer, "access_token", "");
    if (token.empty()) {
        complain("error: the node answered no access_token");
        return 1;
    }
    if (args.flag("print")) {
        std::cout << token << "\n";
        return 0;
    }
    auto env = [](const char* name) -> std::optional<std::string> {
        const char* v = std::getenv(name);
        return v ? std::optional<std::string>(v) : std::nullopt;
    };
    const fs::path file = credentials_file(env);
    store_token(file, node.base_url(), token);
    say("Logged in to " + node.base_url() + " as " + user + " (" + string_or(answer, "role", "?") +
        "); token stored in " + file.string());
    return 0;
}

}  // namespace

bool is_client_command(const std::string& command) {
    return command == "login" || command == "upload" || command == "download" || command == "status" || command == "run" || command == "test";
}

int run_client(const std::string& command, const std::vector<std::string>& args) {
    if (command == "login") return cmd_login(args);
    if (command == "upload") return cmd_upload(args);
    if (command == "download") return cmd_download(args);
    if (command == "status") return cmd_status(args);
    if (command == "run") return cmd_run(args);
    if (command == "test") return cmd_test(args);
    throw UsageError("unknown command '" + command + "'");
}

}  // namespace sluice::kernel::client

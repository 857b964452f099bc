// The `file` sink: writes the pipe's entities to a local file as NDJSON (one entity per line), a
// JSON array, or CSV (the csv_endpoint options). Atomic: a run writes a temporary file beside the
// target and renames it over the target only when the run completed; a failed run removes the
// temporary file and leaves the old file as it was. A full run replaces the file; an incremental
// run starts from a copy of the old file and appends (still atomically).
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <sluice_http/csv.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;
using sluice::Error;

enum class Format { Ndjson, Json, Csv };

std::string errno_text() { return std::strerror(errno); }

class FileSink : public sluice::Sink {
public:
    FileSink(const sluice::CreateArgs& args, sluice::Host&) {
        const sluice::Json& cfg = args.config;
        path_ = sluice::string_or(cfg, "path", "");
        if (path_.empty()) throw Error("file sink: 'path' is required", SLUICE_FATAL);
        if (fs::is_directory(path_)) throw Error("file sink: '" + path_ + "' is a directory", SLUICE_FATAL);
        std::string format = sluice::string_or(cfg, "format", "");
        if (format.empty()) {
            const std::string ext = fs::path(path_).extension().string();
            format = ext == ".csv" ? "csv" : ext == ".json" ? "json" : "ndjson";
        }
        if (format == "ndjson" || format == "jsonl") {
            format_ = Format::Ndjson;
        } else if (format == "json") {
            format_ = Format::Json;
        } else if (format == "csv") {
            format_ = Format::Csv;
        } else {
            throw Error("file sink: format must be \"ndjson\", \"json\" or \"csv\"", SLUICE_FATAL);
        }
        skip_deleted_ = sluice::bool_or(cfg, "skip-deleted-entities", sluice::bool_or(cfg, "skip_deleted_entities", true));
        try {
            csv_ = std::make_unique<sluice::http::CsvEntityWriter>(cfg);
        } catch (const std::exception& e) {
            throw Error(std::string("file sink: ") + e.what(), SLUICE_FATAL);
        }
    }

    ~FileSink() override { abandon(); }

    void begin_run(sluice::Host& host, bool full) override {
        abandon();
        open_temp(host, full);
    }

    void write(sluice::Host& host, const sluice_batch& batch) override {
        if (fd_ < 0) open_temp(host, true);
        if (batch.format != SLUICE_FORMAT_JSON_ARRAY) throw Error("file sink: expected a JSON batch");
        std::string out;
        const std::string_view text(batch.data, batch.size);
        if (format_ == Format::Csv) {
            rows_ += csv_->write(text, out);
        } else {
            sluice::JsonDocument doc = sluice::parse_json(text, "batch");
            if (!doc.IsArray()) throw Error("file sink: the batch is not a JSON array");
            for (const sluice::Json& e : doc.GetArray()) {
                if (skip_deleted_) {
                    const sluice::Json* d = sluice::find_member(e, "_deleted");
                    if (d && d->IsBool() && d->GetBool()) continue;
                }
                if (format_ == Format::Json) out.append(json_items_ ? ",\n" : "\n");
                out.append(sluice::to_json(e));
                if (format_ == Format::Ndjson) out.push_back('\n');
                ++json_items_;
                ++rows_;
            }
        }
        append(out);
    }

    void end_run(sluice::Host& host, bool, bool completed) override {
        if (fd_ < 0) {
            if (!completed) return;
            open_temp(host, true);  // a completed run that wrote nothing still produces the file
        }
        if (!completed) {
            abandon();
            host.warn("file sink: the run did not complete; '" + path_ + "' was left unchanged");
            return;
        }
        std::string tail;
        if (format_ == Format::Csv) csv_->finish(tail);
        if (format_ == Format::Json) tail = json_items_ ? "\n]\n" : "]\n";
        append(tail);
        if (::fsync(fd_) != 0) throw Error("file sink: fsync of '" + temp_ + "' failed: " + errno_text());
        if (::close(fd_) != 0) {
            fd_ = -1;
            throw Error("file sink: closing '" + temp_ + "' failed: " + errno_text());
        }
        fd_ = -1;
        if (::rename(temp_.c_str(), path_.c_str()) != 0) {
            const std::string why = errno_text();
            ::unlink(temp_.c_str());
            temp_.clear();
            throw Error("file sink: renaming the temporary file over '" + path_ + "' failed: " + why);
        }
        temp_.clear();
        // Make the rename itself durable.
        const std::string dir = fs::path(path_).parent_path().empty() ? "." : fs::path(path_).parent_path().string();
        int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
        host.log(SLUICE_LOG_DEBUG, "file sink: wrote " + std::to_string(rows_) + " entities to " + path_);
    }

private:
    void open_temp(sluice::Host& host, bool full) {
        static std::atomic<unsigned> counter{0};
        const fs::path target(path_);
        const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
        std::error_code ec;
        fs::create_directories(dir, ec);
        remove_stale_temps(dir, "." + target.filename().string() + ".tmp-", host);
        temp_ = (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                        std::to_string(counter++)))
                    .string();
        fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd_ < 0) {
            const std::string why = errno_text();
            temp_.clear();
            throw Error("file sink: cannot create a temporary file in '" + dir.string() + "': " + why);
        }
        rows_ = 0;
        json_items_ = 0;
        csv_->reset();
        std::string head;
        if (!full && fs::exists(target)) {
            copy_existing(host, head);
        } else if (format_ == Format::Json) {
            head = "[";
        }
        append(head);
    }

    // Temporary files of a process that died mid-run (its pid no longer exists).
    static void remove_stale_temps(const fs::path& dir, const std::string& prefix, sluice::Host& host) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
            const std::string name = entry.path().filename().string();
            if (name.compare(0, prefix.size(), prefix) != 0) continue;
            const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
            if (pid <= 0 || pid == ::getpid()) continue;
            if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
            std::error_code rm;
            if (fs::remove(entry.path(), rm)) host.info("file sink: removed " + entry.path().string() + " left by a run that died");
        }
    }

    // An incremental run continues the existing file: copy it (for JSON without its closing ']').
    void copy_existing(sluice::Host& host, std::string& head) {
        std::ifstream in(path_, std::ios::binary);
        if (!in) throw Error("file sink: cannot read '" + path_ + "': " + errno_text());
        std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (format_ == Format::Json) {
            const size_t close = content.rfind(']');
            const size_t open = content.find('[');
            if (open == std::string::npos || close == std::string::npos || close < open)
                throw Error("file sink: '" + path_ + "' is not a JSON array; run a full run to rewrite it");
            const bool has_items = content.find_first_not_of(" \t\r\n", open + 1) < close;
            content.resize(close);
            while (!content.empty() && (content.back() == '\n' || content.back() == ' ')) content.pop_back();
            json_items_ = has_items ? 1 : 0;
        } else if (format_ == Format::Csv && !content.empty()) {
            // The existing header names the columns the appended rows must follow.
            std::vector<std::string> header;
            sluice::http::CsvParser parser({}, 0, [&](std::vector<std::string>& fields, size_t) {
                header = fields;
                return false;
            });
            std::string first = content.substr(0, content.find_first_of("\r\n"));
            if (first.compare(0, 3, "\xEF\xBB\xBF") == 0) first = first.substr(3);
            parser.feed(first);
            parser.finish();
            csv_->resume(header);
        }
        if (format_ == Format::Ndjson && !content.empty() && content.back() != '\n') content.push_back('\n');
        head = std::move(content);
        host.log(SLUICE_LOG_DEBUG, "file sink: incremental run, appending to a copy of " + path_);
    }

    void append(const std::string& bytes) {
        size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw Error("file sink: writing '" + temp_ + "' failed: " + errno_text());
            }
            done += static_cast<size_t>(n);
        }
    }

    void abandon() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        if (!temp_.empty()) ::unlink(temp_.c_str());
        temp_.clear();
    }

    std::string path_;
    Format format_ = Format::Ndjson;
    bool skip_deleted_ = true;
    std::unique_ptr<sluice::http::CsvEntityWriter> csv_;
    int fd_ = -1;
    std::string temp_;
    size_t rows_ = 0;
    size_t json_items_ = 0;
};

}  // namespace

SLUICE_PLUGIN("sluice-sink-file", "1.0.0", "Writes entities to a local file (NDJSON, JSON or CSV), atomically",
              "Apache-2.0", sluice::sink<FileSink>("file", SLUICE_SCHEMA_JSON, SLUICE_CAP_SIDE_EFFECTS))

#include <sluice_http/json_stream.hpp>

#include <sluice/sdk.hpp>

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <istream>

namespace sluice::http {

namespace {

// A RapidJSON input stream over std::istream, read in 64 KB chunks, counting bytes and
// enforcing the response size limit.
class CountingStream {
public:
    typedef char Ch;
    CountingStream(std::istream& in, size_t limit) : in_(in), limit_(limit), buffer_(64 * 1024) {}

    Ch Peek() {
        if (pos_ == end_) fill();
        return pos_ < end_ ? buffer_[pos_] : '\0';
    }
    Ch Take() {
        Ch c = Peek();
        if (pos_ < end_) {
            ++pos_;
            ++count_;
        }
        return c;
    }
    size_t Tell() const { return count_; }
    Ch* PutBegin() { return nullptr; }
    void Put(Ch) {}
    void Flush() {}
    size_t PutEnd(Ch*) { return 0; }

    size_t total_read() const { return total_; }

private:
    void fill() {
        if (eof_) return;
        in_.read(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
        end_ = static_cast<size_t>(in_.gcount());
        pos_ = 0;
        total_ += end_;
        if (end_ == 0) eof_ = true;
        if (limit_ && total_ > limit_)
            throw Error("the response is larger than max_response_bytes (" + std::to_string(limit_) + " bytes)");
    }

    std::istream& in_;
    size_t limit_;
    std::vector<char> buffer_;
    size_t pos_ = 0, end_ = 0, count_ = 0, total_ = 0;
    bool eof_ = false;
};

// Memory input with the same shape as CountingStream.
class TextStream : public rapidjson::MemoryStream {
public:
    explicit TextStream(std::string_view text) : rapidjson::MemoryStream(text.data(), text.size()), size_(text.size()) {}
    size_t total_read() const { return size_; }

private:
    size_t size_;
};

struct Frame {
    bool object = false;
    bool list = false;
    std::string key;
};

class Handler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Handler> {
public:
    Handler(const EntityStreamOptions& options, const std::function<bool(const StreamedEntity&)>& on_entity)
        : o_(options), on_entity_(on_entity), ew_(ebuf_), vw_(vbuf_) {}

    // ---- SAX events ----
    bool Null() {
        switch (begin_value("null", false, false)) {
            case Target::Fail: return false;
            case Target::Skip: return true;
            case Target::Elem: return check(ew_.Null());
            case Target::Env: return check(vw_.Null());
        }
        return false;
    }
    bool Bool(bool b) {
        switch (begin_value("boolean", false, false)) {
            case Target::Fail: return false;
            case Target::Skip: return true;
            case Target::Elem: record_scalar(b ? "true" : "false", false, false); return check(ew_.Bool(b));
            case Target::Env: return check(vw_.Bool(b));
        }
        return false;
    }
    bool RawNumber(const char* str, rapidjson::SizeType len, bool) {
        if (skip_next_value_) orig_id_ = RawScalar{std::string(str, len), false, true};
        switch (begin_value("number", false, false)) {
            case Target::Fail: return false;
            case Target::Skip: return true;
            case Target::Elem:
                record_scalar(std::string_view(str, len), false, true);
                return check(ew_.RawValue(str, len, rapidjson::kNumberType));
            case Target::Env: return check(vw_.RawValue(str, len, rapidjson::kNumberType));
        }
        return false;
    }
    bool String(const char* str, rapidjson::SizeType len, bool) {
        if (skip_next_value_) orig_id_ = RawScalar{std::string(str, len), true, false};
        switch (begin_value("string", false, false)) {
            case Target::Fail: return false;
            case Target::Skip: return true;
            case Target::Elem: record_scalar(std::string_view(str, len), true, false); return check(ew_.String(str, len));
            case Target::Env: return check(vw_.String(str, len));
        }
        return false;
    }
    bool StartObject() {
        Target t = begin_value("object", true, false);
        if (t == Target::Fail) return false;
        frames_.push_back(Frame{true, false, {}});
        if (t == Target::Skip) return true;
        return check(t == Target::Elem ? ew_.StartObject() : vw_.StartObject());
    }
    bool Key(const char* str, rapidjson::SizeType len, bool) {
        frames_.back().key.assign(str, len);
        if (skipping_) return true;
        if (capture_ >= 0) {
            if (frames_.size() == static_cast<size_t>(capture_) + 1 && !o_.id_property.empty() &&
                std::string_view(str, len) == "_id") {
                skip_next_value_ = true;  // replaced by the id property's value
                return true;
            }
            return check(ew_.Key(str, len));
        }
        return check(vw_.Key(str, len));
    }
    bool EndObject(rapidjson::SizeType) {
        frames_.pop_back();
        if (skipping_) {
            if (frames_.size() == skip_depth_) skipping_ = false;
            return true;
        }
        if (capture_ >= 0) {
            if (!check(ew_.EndObject())) return false;
            if (frames_.size() == static_cast<size_t>(capture_)) return finish_entity();
            return true;
        }
        return check(vw_.EndObject());
    }
    bool StartArray() {
        Target t = begin_value("array", false, true);
        if (t == Target::Fail) return false;
        if (t == Target::Env) {
            bool list = false;
            if (frames_.empty()) {
                list = true;  // a root array is the list, with or without payload_path
            } else if (!found_list && !o_.payload_path.empty() && frames_.size() == o_.payload_path.size()) {
                list = true;
                for (size_t i = 0; i < frames_.size(); ++i) {
                    if (!frames_[i].object || frames_[i].key != o_.payload_path[i]) {
                        list = false;
                        break;
                    }
                }
            }
            if (list) found_list = true;
            frames_.push_back(Frame{false, list, {}});
            return check(vw_.StartArray());
        }
        frames_.push_back(Frame{false, false, {}});
        if (t == Target::Skip) return true;
        return check(ew_.StartArray());
    }
    bool EndArray(rapidjson::SizeType) {
        frames_.pop_back();
        if (skipping_) {
            if (frames_.size() == skip_depth_) skipping_ = false;
            return true;
        }
        if (capture_ >= 0) return check(ew_.EndArray());
        return check(vw_.EndArray());
    }

    std::string error;
    bool stopped = false;
    bool found_list = false;
    size_t entities = 0;
    std::string envelope_text() const { return std::string(vbuf_.GetString(), vbuf_.GetSize()); }

private:
    enum class Target { Env, Elem, Skip, Fail };

    // Decides where a value that starts now goes (frames_ describe its parent).
    Target begin_value(const char* type, bool is_object, bool is_array) {
        if (skipping_) return Target::Skip;
        if (capture_ >= 0) {
            if (skip_next_value_) {
                skip_next_value_ = false;
                if (is_object || is_array) {
                    skipping_ = true;
                    skip_depth_ = frames_.size();
                }
                return Target::Skip;
            }
            return Target::Elem;
        }
        const Frame* parent = frames_.empty() ? nullptr : &frames_.back();
        const bool element = (parent && parent->list) || (!parent && o_.payload_path.empty() && is_object);
        if (!element) return Target::Env;
        if (!is_object) {
            error = std::string("the entity list holds a ") + type + ", not entity objects";
            return Target::Fail;
        }
        capture_ = static_cast<long>(frames_.size());
        ebuf_.Clear();
        ew_.Reset(ebuf_);
        id_.reset();
        orig_id_.reset();
        updated_.reset();
        return Target::Elem;
    }

    void record_scalar(std::string_view text, bool is_string, bool is_number) {
        if (capture_ < 0 || frames_.size() != static_cast<size_t>(capture_) + 1 || !frames_.back().object) return;
        const std::string& key = frames_.back().key;
        if (!o_.id_property.empty() && key == o_.id_property) id_ = RawScalar{std::string(text), is_string, is_number};
        if (!o_.updated_property.empty() && key == o_.updated_property)
            updated_ = RawScalar{std::string(text), is_string, is_number};
    }

    bool check(bool ok) {
        if (!ok) {
            error = "cannot re-encode the JSON";
            return false;
        }
        if (capture_ >= 0 && o_.max_entity_bytes && ebuf_.GetSize() > o_.max_entity_bytes) {
            error = "entity " + std::to_string(entities + 1) + " is larger than max_entity_bytes (" +
                    std::to_string(o_.max_entity_bytes) + " bytes)";
            return false;
        }
        if (o_.max_envelope_bytes && vbuf_.GetSize() > o_.max_envelope_bytes) {
            error = "the response outside the entity list is larger than " + std::to_string(o_.max_envelope_bytes) +
                    " bytes (is payload_property set right?)";
            return false;
        }
        return true;
    }

    bool finish_entity() {
        capture_ = -1;
        ++entities;
        std::string_view text(ebuf_.GetString(), ebuf_.GetSize());
        std::string with_id;
        // The id property's value, else the entity's own `_id` (set aside while streaming).
        const std::optional<RawScalar>& new_id = id_ ? id_ : orig_id_;
        if (!o_.id_property.empty() && new_id) {
            rapidjson::StringBuffer idbuf;
            rapidjson::Writer<rapidjson::StringBuffer> w(idbuf);
            w.String(new_id->text.data(), static_cast<rapidjson::SizeType>(new_id->text.size()));
            with_id.reserve(text.size() + idbuf.GetSize() + 8);
            with_id.append("{\"_id\":").append(idbuf.GetString(), idbuf.GetSize());
            if (text.size() > 2) with_id.push_back(',');
            with_id.append(text.substr(1));
            text = with_id;
        }
        StreamedEntity e{text, id_, updated_};
        if (!on_entity_(e)) {
            stopped = true;
            return false;
        }
        return true;
    }

    const EntityStreamOptions& o_;
    const std::function<bool(const StreamedEntity&)>& on_entity_;
    std::vector<Frame> frames_;
    long capture_ = -1;
    bool skip_next_value_ = false;
    bool skipping_ = false;
    size_t skip_depth_ = 0;
    std::optional<RawScalar> id_, orig_id_, updated_;
    rapidjson::StringBuffer ebuf_;
    rapidjson::Writer<rapidjson::StringBuffer> ew_;
    rapidjson::StringBuffer vbuf_;
    rapidjson::Writer<rapidjson::StringBuffer> vw_;
};

}  // namespace

EntityStreamParser::EntityStreamParser(EntityStreamOptions options, std::function<bool(const StreamedEntity&)> on_entity)
    : options_(std::move(options)), on_entity_(std::move(on_entity)) {
    if (options_.id_property == "_id") options_.id_property.clear();
}

template <class Stream>
bool EntityStreamParser::run(Stream& stream, const std::string& what) {
    // An empty body (e.g. 204) holds no entities.
    while (stream.Peek() == ' ' || stream.Peek() == '\n' || stream.Peek() == '\r' || stream.Peek() == '\t') stream.Take();
    if (stream.Peek() == '\0') {
        bytes_read_ = stream.total_read();
        return true;
    }
    Handler handler(options_, on_entity_);
    rapidjson::Reader reader;
    constexpr unsigned kFlags =
        rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;
    rapidjson::ParseResult ok;
    try {
        ok = reader.Parse<kFlags>(stream, handler);
    } catch (const Error& e) {
        throw Error(what + ": " + e.what(), e.status());
    }
    bytes_read_ = stream.total_read();
    entities_ = handler.entities;
    found_list_ = handler.found_list;
    if (!ok) {
        if (handler.stopped) return false;
        std::string why = !handler.error.empty() ? handler.error : rapidjson::GetParseError_En(ok.Code());
        throw Error(what + ": " + why + " (at byte " + std::to_string(ok.Offset()) + " of the response)");
    }
    const std::string envelope = handler.envelope_text();
    if (!envelope.empty()) {
        // The envelope (paging links, tokens, counts) is parsed for its values; a number RapidJSON
        // cannot parse safely would come out as garbage, so the response is refused instead.
        if (const std::string_view bad = find_unsafe_json_number(envelope); !bad.empty())
            throw Error(what + ": unsupported number in the response outside the entity list (" +
                        unsafe_json_number_reason(bad) + ")");
        envelope_.Parse<rapidjson::kParseFullPrecisionFlag>(envelope.data(), envelope.size());
    }
    return true;
}

bool EntityStreamParser::parse(std::istream& in, const std::string& what) {
    CountingStream stream(in, options_.max_response_bytes);
    return run(stream, what);
}

bool EntityStreamParser::parse(std::string_view text, const std::string& what) {
    if (options_.max_response_bytes && text.size() > options_.max_response_bytes)
        throw Error(what + ": the response is larger than max_response_bytes (" +
                    std::to_string(options_.max_response_bytes) + " bytes)");
    TextStream stream(text);
    return run(stream, what);
}

}  // namespace sluice::http

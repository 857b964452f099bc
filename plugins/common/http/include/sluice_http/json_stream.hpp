// sluice_http/json_stream.hpp — streams the entities out of a JSON response without building it.
//
// The response is a JSON array of entity objects, an object holding such an array at a dotted
// `payload_path` (e.g. "results", "data.items"), or a single object (one entity). It is read
// through RapidJSON's SAX reader: each entity's text is rebuilt (numbers keep their exact text)
// and handed to a callback, so memory stays bounded by the largest entity, not the response.
// Everything outside the list (paging links, counts) is kept as the "envelope" — the response
// with the list emptied — for next-page lookups.
#pragma once

#include <sluice/entity.hpp>

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

// A scalar as it appeared in the JSON text.
struct RawScalar {
    std::string text;  // the string's value, or the number's exact text, or "true"/"false"
    bool is_string = false;
    bool is_number = false;
};

struct StreamedEntity {
    std::string_view json;           // the entity object's text (valid during the callback)
    std::optional<RawScalar> id;     // value of the id property, when configured and present
    std::optional<RawScalar> updated;  // value of the updated property, when present
};

struct EntityStreamOptions {
    std::vector<std::string> payload_path;  // empty: the root array (or root object = one entity)
    std::string id_property;       // top-level property giving `_id` (replaces any `_id`); "" = none
    std::string updated_property = "_updated";  // top-level property whose value is remembered
    size_t max_entity_bytes = 100u << 20;       // one entity's text larger than this fails
    size_t max_envelope_bytes = 16u << 20;      // the response outside the list
    size_t max_response_bytes = 0;              // 0: unlimited
};

class EntityStreamParser {
public:
    // `on_entity` returns false to stop reading (parse() then returns false).
    EntityStreamParser(EntityStreamOptions options, std::function<bool(const StreamedEntity&)> on_entity);

    // Reads the whole response. Throws sluice::Error with the byte offset and reason when the
    // JSON is malformed, a limit is exceeded or the list holds something other than objects.
    // `what` names the response in messages (e.g. "GET http://…").
    bool parse(std::istream& in, const std::string& what);
    bool parse(std::string_view text, const std::string& what);

    size_t entities() const { return entities_; }
    size_t bytes_read() const { return bytes_read_; }
    bool found_list() const { return found_list_; }
    // The response without the streamed list's elements (null before parse()).
    const JsonDocument& envelope() const { return envelope_; }

private:
    template <class Stream>
    bool run(Stream& stream, const std::string& what);

    EntityStreamOptions options_;
    std::function<bool(const StreamedEntity&)> on_entity_;
    size_t entities_ = 0;
    size_t bytes_read_ = 0;
    bool found_list_ = false;
    JsonDocument envelope_;
};

}  // namespace sluice::http

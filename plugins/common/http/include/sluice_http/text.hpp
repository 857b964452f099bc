// sluice_http/text.hpp — character encodings for CSV input and output (streaming).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::http {

// utf-8 (a leading BOM is dropped), utf-8-sig, latin-1 / iso-8859-1, windows-1252 / cp1252,
// utf-16 (byte order from the BOM; little-endian without one), utf-16-le, utf-16-be, ascii.
enum class Encoding { Utf8, Utf8Sig, Latin1, Cp1252, Utf16, Utf16LE, Utf16BE, Ascii };

// Accepts the usual spellings ("UTF8", "latin1", "ISO-8859-1", "cp1252", "utf_16"). Throws
// std::invalid_argument listing the supported ones.
Encoding parse_encoding(std::string_view name);

// Decodes a byte stream chunk by chunk into UTF-8. A sequence split across chunks is completed by
// the next call. Invalid input throws sluice::Error naming the byte offset.
class Decoder {
public:
    explicit Decoder(Encoding encoding) : encoding_(encoding) {}
    void decode(std::string_view bytes, std::string& out);
    // Call at the end of the input: fails if it stopped in the middle of a character.
    void finish();
    uint64_t offset() const { return offset_; }

private:
    void decode_utf8(std::string_view bytes, std::string& out);
    void decode_utf16(std::string_view bytes, std::string& out);

    Encoding encoding_;
    bool started_ = false;
    bool big_endian_ = false;
    std::string pending_;       // bytes of an incomplete character
    uint32_t high_surrogate_ = 0;
    uint64_t offset_ = 0;       // bytes consumed so far
};

void append_utf8(std::string& out, uint32_t code_point);

// Encodes UTF-8 text for output in `encoding` (utf-8/utf-8-sig unchanged; latin-1, cp1252 and
// ascii fail with sluice::Error on characters they cannot represent; utf-16 variants encode).
std::string encode_from_utf8(std::string_view utf8, Encoding encoding);
// The byte-order mark to start an output file with ("" for most encodings).
std::string byte_order_mark(Encoding encoding);

}  // namespace sluice::http

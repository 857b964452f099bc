#include <sluice_http/text.hpp>

#include <sluice/sdk.hpp>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace sluice::http {

namespace {

// windows-1252 0x80..0x9F (0 = undefined).
constexpr uint16_t kCp1252[32] = {0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
                                  0x2039, 0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
                                  0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178};

std::string normalize(std::string_view name) {
    std::string out;
    for (char c : name) {
        if (c == '_' || c == ' ') c = '-';
        out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return out;
}

}  // namespace

Encoding parse_encoding(std::string_view name) {
    const std::string n = normalize(name);
    if (n.empty() || n == "utf-8" || n == "utf8") return Encoding::Utf8;
    if (n == "utf-8-sig" || n == "utf8-sig") return Encoding::Utf8Sig;
    if (n == "latin-1" || n == "latin1" || n == "iso-8859-1" || n == "iso8859-1" || n == "l1") return Encoding::Latin1;
    if (n == "cp1252" || n == "windows-1252") return Encoding::Cp1252;
    if (n == "utf-16" || n == "utf16") return Encoding::Utf16;
    if (n == "utf-16-le" || n == "utf-16le") return Encoding::Utf16LE;
    if (n == "utf-16-be" || n == "utf-16be") return Encoding::Utf16BE;
    if (n == "ascii" || n == "us-ascii") return Encoding::Ascii;
    throw std::invalid_argument("unsupported encoding '" + std::string(name) +
                                "' (supported: utf-8, utf-8-sig, latin-1/iso-8859-1, cp1252, utf-16, utf-16-le, "
                                "utf-16-be, ascii)");
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

void Decoder::decode(std::string_view bytes, std::string& out) {
    switch (encoding_) {
        case Encoding::Utf8:
        case Encoding::Utf8Sig:
        case Encoding::Ascii: decode_utf8(bytes, out); break;
        case Encoding::Latin1:
            for (char c : bytes) append_utf8(out, static_cast<unsigned char>(c));
            offset_ += bytes.size();
            break;
        case Encoding::Cp1252:
            for (char c : bytes) {
                unsigned char b = static_cast<unsigned char>(c);
                if (b >= 0x80 && b < 0xA0) {
                    if (!kCp1252[b - 0x80])
                        throw Error("byte 0x" + std::string(1, "0123456789ABCDEF"[b >> 4]) +
                                    std::string(1, "0123456789ABCDEF"[b & 15]) + " at offset " +
                                    std::to_string(offset_) + " is undefined in windows-1252");
                    append_utf8(out, kCp1252[b - 0x80]);
                } else {
                    append_utf8(out, b);
                }
                ++offset_;
            }
            break;
        case Encoding::Utf16:
        case Encoding::Utf16LE:
        case Encoding::Utf16BE: decode_utf16(bytes, out); break;
    }
}

void Decoder::decode_utf8(std::string_view bytes, std::string& in_out) {
    std::string data = pending_ + std::string(bytes);
    pending_.clear();
    size_t i = 0;
    if (!started_) {
        if (data.size() < 3 && std::string_view("\xEF\xBB\xBF").substr(0, data.size()) == data) {
            pending_ = data;  // maybe a BOM split across chunks
            return;
        }
        started_ = true;
        if (data.compare(0, 3, "\xEF\xBB\xBF") == 0) {
            i = 3;
            offset_ += 3;
        }
    }
    const size_t n = data.size();
    size_t run_start = i;
    while (i < n) {
        unsigned char c = static_cast<unsigned char>(data[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        if (encoding_ == Encoding::Ascii)
            throw Error("byte at offset " + std::to_string(offset_ + (i - run_start)) + " is not ASCII; set 'encoding'");
        size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
        if (len == 0 || (c >= 0xF5))
            throw Error("the input is not valid UTF-8 at byte offset " + std::to_string(offset_ + (i - run_start)) +
                        "; set 'encoding' (e.g. \"latin-1\" or \"utf-16\")");
        if (i + len > n) break;  // incomplete at the chunk's end
        for (size_t k = 1; k < len; ++k) {
            if ((static_cast<unsigned char>(data[i + k]) & 0xC0) != 0x80)
                throw Error("the input is not valid UTF-8 at byte offset " + std::to_string(offset_ + (i - run_start)) +
                            "; set 'encoding' (e.g. \"latin-1\" or \"utf-16\")");
        }
        i += len;
    }
    in_out.append(data, run_start, i - run_start);
    offset_ += i - run_start;
    pending_ = data.substr(i);
}

void Decoder::decode_utf16(std::string_view bytes, std::string& out) {
    std::string data = pending_ + std::string(bytes);
    pending_.clear();
    size_t i = 0;
    if (!started_) {
        if (data.size() < 2) {
            pending_ = data;
            return;
        }
        started_ = true;
        const unsigned char b0 = static_cast<unsigned char>(data[0]), b1 = static_cast<unsigned char>(data[1]);
        if (encoding_ == Encoding::Utf16BE) {
            big_endian_ = true;
        } else if (encoding_ == Encoding::Utf16LE) {
            big_endian_ = false;
        } else if (b0 == 0xFE && b1 == 0xFF) {
            big_endian_ = true;
            i = 2;
        } else if (b0 == 0xFF && b1 == 0xFE) {
            big_endian_ = false;
            i = 2;
        }
        // A BOM under an explicit byte order is dropped too (U+FEFF at the start).
        if (i == 0 && ((big_endian_ && b0 == 0xFE && b1 == 0xFF) || (!big_endian_ && b0 == 0xFF && b1 == 0xFE))) i = 2;
        offset_ += i;
    }
    for (; i + 1 < data.size(); i += 2) {
        const unsigned char a = static_cast<unsigned char>(data[i]), b = static_cast<unsigned char>(data[i + 1]);
        uint32_t unit = big_endian_ ? (a << 8 | b) : (b << 8 | a);
        if (high_surrogate_) {
            if (unit < 0xDC00 || unit > 0xDFFF)
                throw Error("invalid UTF-16 surrogate pair at byte offset " + std::to_string(offset_));
            append_utf8(out, 0x10000 + ((high_surrogate_ - 0xD800) << 10) + (unit - 0xDC00));
            high_surrogate_ = 0;
        } else if (unit >= 0xD800 && unit <= 0xDBFF) {
            high_surrogate_ = unit;
        } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
            throw Error("invalid UTF-16 (lone low surrogate) at byte offset " + std::to_string(offset_));
        } else {
            append_utf8(out, unit);
        }
        offset_ += 2;
    }
    pending_ = data.substr(i);
}

void Decoder::finish() {
    if (!pending_.empty())
        throw Error("the input ends in the middle of a character (byte offset " + std::to_string(offset_) + ")");
    if (high_surrogate_) throw Error("the input ends inside a UTF-16 surrogate pair");
}

std::string byte_order_mark(Encoding encoding) {
    switch (encoding) {
        case Encoding::Utf8Sig: return "\xEF\xBB\xBF";
        case Encoding::Utf16: return "\xFF\xFE";
        default: return {};
    }
}

std::string encode_from_utf8(std::string_view utf8, Encoding encoding) {
    if (encoding == Encoding::Utf8 || encoding == Encoding::Utf8Sig) return std::string(utf8);
    std::string out;
    out.reserve(utf8.size());
    size_t i = 0;
    while (i < utf8.size()) {
        unsigned char c = static_cast<unsigned char>(utf8[i]);
        uint32_t cp;
        size_t len;
        if (c < 0x80) {
            cp = c;
            len = 1;
        } else if (c < 0xE0) {
            cp = c & 0x1F;
            len = 2;
        } else if (c < 0xF0) {
            cp = c & 0x0F;
            len = 3;
        } else {
            cp = c & 0x07;
            len = 4;
        }
        for (size_t k = 1; k < len && i + k < utf8.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
        i += len;
        switch (encoding) {
            case Encoding::Ascii:
            case Encoding::Latin1: {
                const uint32_t limit = encoding == Encoding::Ascii ? 0x80 : 0x100;
                if (cp >= limit) throw Error("character U+" + std::to_string(cp) + " cannot be encoded in the output encoding");
                out.push_back(static_cast<char>(cp));
                break;
            }
            case Encoding::Cp1252: {
                if (cp < 0x80 || (cp >= 0xA0 && cp < 0x100)) {
                    out.push_back(static_cast<char>(cp));
                    break;
                }
                const uint16_t* hit = std::find(std::begin(kCp1252), std::end(kCp1252), static_cast<uint16_t>(cp));
                if (cp == 0 || hit == std::end(kCp1252))
                    throw Error("character U+" + std::to_string(cp) + " cannot be encoded in windows-1252");
                out.push_back(static_cast<char>(0x80 + (hit - std::begin(kCp1252))));
                break;
            }
            default: {  // UTF-16
                const bool be = encoding == Encoding::Utf16BE;
                auto unit = [&](uint32_t u) {
                    char hi = static_cast<char>(u >> 8), lo = static_cast<char>(u & 0xFF);
                    if (be) {
                        out.push_back(hi);
                        out.push_back(lo);
                    } else {
                        out.push_back(lo);
                        out.push_back(hi);
                    }
                };
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    unit(0xD800 + (cp >> 10));
                    unit(0xDC00 + (cp & 0x3FF));
                } else {
                    unit(cp);
                }
            }
        }
    }
    return out;
}

}  // namespace sluice::http

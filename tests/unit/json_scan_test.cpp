// The SDK's block scanner (sluice/json_scan.hpp) and the number check built on it
// (find_unsafe_json_number), against byte-at-a-time references, on random JSON: strings with
// escapes, quotes, backslash runs and brackets inside them, strings and numbers across 64-byte
// block boundaries, and numbers of every shape the check has to judge.
#include <sluice/entity.hpp>
#include <sluice/json_scan.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <random>
#include <string>
#include <vector>

namespace {

// What the masks must say, one byte at a time with the JSON string state machine.
std::vector<sluice::detail::JsonBlockMasks> reference_masks(const std::string& text) {
    std::vector<sluice::detail::JsonBlockMasks> out((text.size() + 63) / 64);
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const uint64_t bit = uint64_t(1) << (i % 64);
        auto& m = out[i / 64];
        if (c == '\\') m.backslashes |= bit;
        if (escaped) {
            escaped = false;
            continue;
        }
        if (c == '\\') {
            escaped = true;
            continue;
        }
        if (c == '"') {
            m.quotes |= bit;
            in_string = !in_string;
            continue;
        }
        if (in_string) continue;
        if (c == '{' || c == '}' || c == '[' || c == ']' || c == ',') m.structural |= bit;
        if (c == '-' || (c >= '0' && c <= '9')) m.number |= bit;
    }
    return out;
}

// The number check as it was before the block scanner (byte at a time; strings skipped by
// their closing quote): the new one must find exactly the same number in valid JSON.
std::string_view reference_unsafe_number(std::string_view text) {
    const char* p = text.data();
    const char* const end = p + text.size();
    while (p < end) {
        const char c = *p;
        if (c == '"') {
            ++p;
            while (p < end && *p != '"') p += *p == '\\' ? 2 : 1;
            if (p >= end) return {};
            ++p;
            continue;
        }
        if (c != '-' && (c < '0' || c > '9')) {
            ++p;
            continue;
        }
        bool unsafe = false;
        const char* stop = sluice::detail::json_number_end(p, end, unsafe);
        if (unsafe) return std::string_view(p, static_cast<size_t>(stop - p));
        p = stop;
    }
    return {};
}

class RandomJson {
public:
    explicit RandomJson(uint32_t seed) : rng_(seed) {}

    std::string document() {
        std::string out;
        value(out, 0);
        return out;
    }

    std::string number() {
        static const char* const shapes[] = {"0", "-0", "7", "-12", "3.25", "1e5", "-2.5E-3", "0.0", "1e308", "9e309",
                                             "1e-306", "1e-330", "0e5", "0.000000000000000000000", "12345678901234567890123",
                                             "0.00000000000000000000000000000001", "-1E+400", "5e-5"};
        std::string n = shapes[pick(sizeof shapes / sizeof *shapes)];
        if (pick(4) == 0) {  // long digit runs that cross block boundaries
            std::string digits(1 + pick(90), '0');
            for (char& d : digits) d = static_cast<char>('0' + pick(10));
            n = (pick(2) ? "-" : "") + std::string(pick(2) ? "0." : "") + digits + (pick(3) == 0 ? "e-" + std::to_string(pick(400)) : "");
        }
        return n;
    }

private:
    size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

    void space(std::string& out) {
        static const char* const spaces[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
        out += spaces[pick(7)];
    }

    void string(std::string& out) {
        out.push_back('"');
        const size_t length = pick(6) == 0 ? pick(200) : pick(12);
        for (size_t i = 0; i < length; ++i) {
            switch (pick(14)) {
                case 0: out += "\\\""; break;
                case 1: out += "\\\\"; break;
                case 2: out += "\\\\\\\""; break;  // \\\" : an escaped backslash, then an escaped quote
                case 3: out += "\\u00e9"; break;
                case 4: out += "{[,]}:"; break;
                case 5: out += "-12.5e3"; break;
                case 6: out += "\xc3\xa6"; break;
                default: out.push_back(static_cast<char>('a' + pick(26)));
            }
        }
        out.push_back('"');
    }

    void value(std::string& out, int depth) {
        const size_t kind = depth > 4 ? 3 + pick(4) : pick(7);
        space(out);
        switch (kind) {
            case 0:
            case 1: {
                out.push_back('{');
                const size_t n = pick(6);
                for (size_t i = 0; i < n; ++i) {
                    if (i) out.push_back(',');
                    space(out);
                    string(out);
                    space(out);
                    out.push_back(':');
                    value(out, depth + 1);
                }
                space(out);
                out.push_back('}');
                break;
            }
            case 2: {
                out.push_back('[');
                const size_t n = pick(6);
                for (size_t i = 0; i < n; ++i) {
                    if (i) out.push_back(',');
                    value(out, depth + 1);
                }
                space(out);
                out.push_back(']');
                break;
            }
            case 3: string(out); break;
            case 4: out += number(); break;
            case 5: out += pick(2) ? "true" : "false"; break;
            default: out += "null";
        }
        space(out);
    }

    std::mt19937 rng_;
};

}  // namespace

class JsonScanTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(JsonScanTest);
    CPPUNIT_TEST(testMasksMatchTheStateMachine);
    CPPUNIT_TEST(testEscapesAcrossBlocks);
    CPPUNIT_TEST(testNumberCheckMatchesTheByteScan);
    CPPUNIT_TEST(testNumberCheckFindsNumbersEverywhere);
    CPPUNIT_TEST_SUITE_END();

public:
    void testMasksMatchTheStateMachine() {
        RandomJson random(20261123);
        for (int round = 0; round < 3000; ++round) {
            const std::string text = random.document();
            const auto expected = reference_masks(text);
            sluice::detail::JsonBlockScanner scanner;
            for (size_t b = 0; b < expected.size(); ++b) {
                const auto got = scanner.next(text.data() + 64 * b, std::min<size_t>(64, text.size() - 64 * b));
                const std::string where = "round " + std::to_string(round) + " block " + std::to_string(b) + ": " + text;
                CPPUNIT_ASSERT_EQUAL_MESSAGE(where, expected[b].quotes, got.quotes);
                CPPUNIT_ASSERT_EQUAL_MESSAGE(where, expected[b].structural, got.structural);
                CPPUNIT_ASSERT_EQUAL_MESSAGE(where, expected[b].number, got.number);
                CPPUNIT_ASSERT_EQUAL_MESSAGE(where, expected[b].backslashes, got.backslashes);
            }
        }
    }

    // A backslash run ending exactly at a block boundary escapes the first byte of the next.
    void testEscapesAcrossBlocks() {
        for (size_t pad = 55; pad < 66; ++pad) {
            for (const char* tail : {"\\\"\",1]", "\\\\\",2]", "\\\\\\\"\",3]"}) {
                const std::string text = "[\"" + std::string(pad, 'x') + tail;
                const auto expected = reference_masks(text);
                sluice::detail::JsonBlockScanner scanner;
                for (size_t b = 0; b < expected.size(); ++b) {
                    const auto got = scanner.next(text.data() + 64 * b, std::min<size_t>(64, text.size() - 64 * b));
                    CPPUNIT_ASSERT_EQUAL_MESSAGE(text, expected[b].quotes, got.quotes);
                    CPPUNIT_ASSERT_EQUAL_MESSAGE(text, expected[b].structural, got.structural);
                    CPPUNIT_ASSERT_EQUAL_MESSAGE(text, expected[b].number, got.number);
                }
            }
        }
    }

    void testNumberCheckMatchesTheByteScan() {
        RandomJson random(7);
        size_t unsafe = 0;
        for (int round = 0; round < 5000; ++round) {
            const std::string text = random.document();
            const std::string_view expected = reference_unsafe_number(text);
            const std::string_view got = sluice::find_unsafe_json_number(text);
            unsafe += !expected.empty();
            CPPUNIT_ASSERT_EQUAL_MESSAGE(text, expected.data() - text.data(), got.data() - text.data());
            CPPUNIT_ASSERT_EQUAL_MESSAGE(text, expected.size(), got.size());
        }
        CPPUNIT_ASSERT_MESSAGE("the random documents hold unsafe numbers", unsafe > 100);
    }

    // Every position modulo the block size, and numbers that follow numbers (malformed, but
    // read by a parser up to there).
    void testNumberCheckFindsNumbersEverywhere() {
        for (size_t pad = 0; pad < 130; ++pad) {
            const std::string prefix = "[\"" + std::string(pad, 'y') + "\",";
            for (const char* bad : {"1e-330", "0e5", "-9e400", "0.0000000000000000000000001e-310"}) {
                const std::string text = prefix + bad + "]";
                const std::string_view found = sluice::find_unsafe_json_number(text);
                CPPUNIT_ASSERT_EQUAL_MESSAGE(text, std::string(bad), std::string(found));
            }
            const std::string fine = prefix + "1.5,-2,0,1e300]";
            CPPUNIT_ASSERT_MESSAGE(fine, sluice::find_unsafe_json_number(fine).empty());
            const std::string chained = prefix + "1-1e-400]";
            CPPUNIT_ASSERT_EQUAL_MESSAGE(chained, std::string("-1e-400"), std::string(sluice::find_unsafe_json_number(chained)));
        }
        // Inside strings nothing counts, however it is escaped.
        CPPUNIT_ASSERT(sluice::find_unsafe_json_number(R"(["1e-400", "\"1e-400", "\\\"1e-400"])").empty());
        CPPUNIT_ASSERT_EQUAL(std::string("1e-400"), std::string(sluice::find_unsafe_json_number(R"(["\\", 1e-400])")));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(JsonScanTest);

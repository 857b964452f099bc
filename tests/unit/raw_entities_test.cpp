// The storage backends' raw view of a write batch (plugins/storage/common/raw_entities.hpp):
// SipHash against the reference vectors, and the split of a batch into its entities' bytes and
// `_id`s against RapidJSON's parse of the same text, on hand-written shapes and random batches.
#include "raw_entities.hpp"

#include <sluice/sdk.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <random>
#include <string>
#include <vector>

using sluice::store::RawEntity;
using sluice::store::split_raw_entities;

namespace {

// The views point into `text`: keep it alive.
std::vector<RawEntity> split(const std::string& text, bool& ok) {
    std::vector<RawEntity> out;
    ok = split_raw_entities(text, out);
    return out;
}

// Random entities with nested values, `_id` anywhere among the members, decoys (`_id` keys in
// nested objects, "_id" as a value, escaped quotes and brackets in strings) and random spacing.
class RandomBatch {
public:
    explicit RandomBatch(uint32_t seed) : rng_(seed) {}

    std::string batch(size_t entities) {
        std::string out = space() + "[";
        for (size_t i = 0; i < entities; ++i) {
            if (i) out += space() + ",";
            out += space() + entity(i);
        }
        return out + space() + "]" + space();
    }

private:
    size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
    std::string space() {
        static const char* const spaces[] = {"", "", " ", "\n", " \t"};
        return spaces[pick(5)];
    }
    std::string text() {
        static const char* const pieces[] = {"a", "b", "\\\"", "\\\\", "{", "}", "[", "]", ",", "_id", "\\u0041", " "};
        std::string s = "\"";
        for (size_t i = 0, n = pick(10); i < n; ++i) s += pieces[pick(12)];
        return s + "\"";
    }
    std::string value(int depth) {
        switch (depth > 2 ? 3 + pick(3) : pick(6)) {
            case 0: return "{" + space() + "\"_id\"" + space() + ":" + text() + "," + text() + ":" + value(depth + 1) + "}";
            case 1: return "[" + value(depth + 1) + "," + space() + value(depth + 1) + "]";
            case 2: return "{}";
            case 3: return text();
            case 4: return std::to_string(pick(100000)) + ".5";
            default: return pick(2) ? "true" : "null";
        }
    }
    std::string entity(size_t i) {
        std::vector<std::string> members;
        for (size_t m = 0, n = pick(5); m < n; ++m)
            members.push_back(space() + "\"k" + std::to_string(m) + "\"" + space() + ":" + space() + value(0) + space());
        const std::string id = pick(4) ? "\"id-" + std::to_string(i) + "\"" : "\"id \\\"" + std::to_string(i) + "\\\"\"";
        members.insert(members.begin() + static_cast<long>(pick(members.size() + 1)), space() + "\"_id\"" + space() + ":" + space() + id + space());
        std::string out = "{";
        for (size_t m = 0; m < members.size(); ++m) out += (m ? "," : "") + members[m];
        return out + "}";
    }
    std::mt19937 rng_;
};

}  // namespace

class RawEntitiesTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(RawEntitiesTest);
    CPPUNIT_TEST(testSipHashReferenceVectors);
    CPPUNIT_TEST(testFingerprintsDifferForDifferentBytes);
    CPPUNIT_TEST(testSplitsPlainBatches);
    CPPUNIT_TEST(testGivesUpOnShapesItDoesNotHandle);
    CPPUNIT_TEST(testRandomBatchesAgreeWithTheParser);
    CPPUNIT_TEST_SUITE_END();

public:
    // The SipHash-2-4 paper's vectors (key 00..0f, message 00..len-1): the same code with 1-3
    // rounds is the fingerprint.
    void testSipHashReferenceVectors() {
        uint64_t k0 = 0, k1 = 0;
        for (int i = 0; i < 8; ++i) {
            k0 |= uint64_t(i) << (8 * i);
            k1 |= uint64_t(i + 8) << (8 * i);
        }
        const sluice::store::SipHash<2, 4> siphash(k0, k1);
        unsigned char message[16];
        for (int i = 0; i < 16; ++i) message[i] = static_cast<unsigned char>(i);
        CPPUNIT_ASSERT_EQUAL(uint64_t(0x726fdb47dd0e0e31ULL), siphash(message, 0));
        CPPUNIT_ASSERT_EQUAL(uint64_t(0x74f839c593dc67fdULL), siphash(message, 1));
        CPPUNIT_ASSERT_EQUAL(uint64_t(0xa129ca6149be45e5ULL), siphash(message, 15));
    }

    void testFingerprintsDifferForDifferentBytes() {
        const std::string a = R"({"_id":"a","v":1})", b = R"({"_id":"a","v":2})", c = R"({"v":1,"_id":"a"})";
        CPPUNIT_ASSERT_EQUAL(sluice::store::raw_fingerprint(a), sluice::store::raw_fingerprint(std::string(a)));
        CPPUNIT_ASSERT(sluice::store::raw_fingerprint(a) != sluice::store::raw_fingerprint(b));
        CPPUNIT_ASSERT(sluice::store::raw_fingerprint(a) != sluice::store::raw_fingerprint(c));
        CPPUNIT_ASSERT(sluice::store::raw_fingerprint("") != 0);
    }

    void testSplitsPlainBatches() {
        bool ok = false;
        const std::string text = " [ {\"_id\":\"a\",\"x\":{\"_id\":\"nested\"},\"y\":\"_id\"} ,\n{\"v\":[1,{\"_id\":2}],\"_id\" : \"b\\\"q\"}]\n";
        auto out = split(text, ok);  // views into `text`
        CPPUNIT_ASSERT(ok);
        CPPUNIT_ASSERT_EQUAL(size_t(2), out.size());
        CPPUNIT_ASSERT_EQUAL(std::string("a"), std::string(out[0].id));
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"_id":"a","x":{"_id":"nested"},"y":"_id"})"), std::string(out[0].text));
        CPPUNIT_ASSERT_EQUAL(std::string("b\\\"q"), std::string(out[1].id));  // raw: the caller compares with the parse
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"v":[1,{"_id":2}],"_id" : "b\"q"})"), std::string(out[1].text));
        out = split("[]", ok);
        CPPUNIT_ASSERT(ok);
        CPPUNIT_ASSERT(out.empty());
    }

    void testGivesUpOnShapesItDoesNotHandle() {
        for (const char* text : {
                 "",                                       // nothing
                 "{\"_id\":\"a\"}",                        // not an array
                 "[{\"x\":1}]",                            // no _id
                 "[{\"_id\":1}]",                          // _id not a string
                 "[{\"_id\":\"a\",\"_id\":\"b\"}]",        // two _id
                 "[{\"_id\":\"a\"}{\"_id\":\"b\"}]",       // no comma
                 "[{\"_id\":\"a\"},]",                     // trailing comma
                 "[,{\"_id\":\"a\"}]",                     // leading comma
                 "[{\"_id\":\"a\"}] x",                    // text after the array
                 "x [{\"_id\":\"a\"}]",                    // text before it
                 "[{\"_id\":\"a\"}, 5]",                   // not an object
                 "[{\"_id\":\"a\"}",                       // never closed
                 "[{\"_id\":\"a\"]]",                      // closed by the wrong bracket
                 "[{\"_id\":\"a}]",                        // unterminated string
                 "[{\"_id\":\"a\"}]]",                     // extra bracket
             }) {
            bool ok = true;
            split(text, ok);
            CPPUNIT_ASSERT_MESSAGE(text, !ok);
        }
    }

    // Whenever the split succeeds on text RapidJSON parses, it finds the same entities: each
    // entity's bytes parse to the same element, and its `_id` is the parser's wherever the id
    // has no escapes (with escapes the raw id differs, and the storage then never trusts it).
    void testRandomBatchesAgreeWithTheParser() {
        RandomBatch random(4242);
        size_t agreed = 0;
        for (int round = 0; round < 2000; ++round) {
            const std::string text = random.batch(static_cast<size_t>(round % 7));
            sluice::JsonDocument doc;
            doc.Parse(text.data(), text.size());
            CPPUNIT_ASSERT_MESSAGE(text, !doc.HasParseError());
            bool ok = false;
            auto out = split(text, ok);
            CPPUNIT_ASSERT_MESSAGE(text, ok);
            CPPUNIT_ASSERT_EQUAL_MESSAGE(text, static_cast<size_t>(doc.Size()), out.size());
            for (size_t i = 0; i < out.size(); ++i) {
                sluice::JsonDocument one;
                one.Parse(out[i].text.data(), out[i].text.size());
                // Compared as written out (operator== is ambiguous with duplicate member names).
                CPPUNIT_ASSERT_MESSAGE(std::string(out[i].text), !one.HasParseError());
                CPPUNIT_ASSERT_EQUAL(sluice::to_json(doc[static_cast<rapidjson::SizeType>(i)]), sluice::to_json(one));
                const sluice::Json* id = sluice::find_member(one, "_id");
                CPPUNIT_ASSERT(id && id->IsString());
                if (out[i].id.find('\\') == std::string_view::npos) {
                    CPPUNIT_ASSERT_EQUAL_MESSAGE(text, std::string(sluice::as_view(*id)), std::string(out[i].id));
                    ++agreed;
                }
            }
        }
        CPPUNIT_ASSERT(agreed > 3000);
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(RawEntitiesTest);

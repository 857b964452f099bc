// The SDK's entity helpers: change-detection hash, typed strings, the Entity view.
#include <sluice/entity.hpp>
#include <sluice/sdk.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

using sluice::entity_hash;
using sluice::parse_json;

namespace {
// The canonical text as the RapidJSON Writer writes it: the reference the SDK's hand-written
// text writers (detail::append_*) must reproduce byte for byte, or stored hashes would change.
std::string reference_canonical(const sluice::Json& entity) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    std::vector<const sluice::Json::Member*> members;
    for (auto it = entity.MemberBegin(); it != entity.MemberEnd(); ++it) {
        const std::string_view key(it->name.GetString(), it->name.GetStringLength());
        if (!sluice::is_reserved_key(key) || key == "_id") members.push_back(&*it);
    }
    const sluice::Json* deleted = sluice::find_member(entity, "_deleted");
    sluice::JsonDocument deleted_true;
    deleted_true.Parse(R"({"_deleted":true})");
    if (deleted && deleted->IsBool() && deleted->GetBool()) members.push_back(&*deleted_true.MemberBegin());
    std::sort(members.begin(), members.end(), [](const sluice::Json::Member* a, const sluice::Json::Member* b) {
        return std::string_view(a->name.GetString(), a->name.GetStringLength()) <
               std::string_view(b->name.GetString(), b->name.GetStringLength());
    });
    writer.StartObject();
    for (const sluice::Json::Member* m : members) {
        writer.Key(m->name.GetString(), m->name.GetStringLength());
        sluice::detail::write_canonical(m->value, writer);
    }
    writer.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::string hash_of(const char* json) {
    sluice::JsonDocument doc = parse_json(json);
    return entity_hash(doc);
}
}  // namespace

class EntityTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(EntityTest);
    CPPUNIT_TEST(testHashIgnoresKeyOrderAtEveryLevel);
    CPPUNIT_TEST(testHashIgnoresReservedFieldsButNotIdOrDeleted);
    CPPUNIT_TEST(testHashSeesValueAndTypeChanges);
    CPPUNIT_TEST(testMurmurKnownVector);
    CPPUNIT_TEST(testTypedKinds);
    CPPUNIT_TEST(testEntityView);
    CPPUNIT_TEST(testFastTextMatchesRapidJsonWriter);
    CPPUNIT_TEST(testUnsafeNumbersRefusedBeforeParsing);
    CPPUNIT_TEST(testNumbersLetThroughParseRight);
    CPPUNIT_TEST_SUITE_END();

public:
    void testHashIgnoresKeyOrderAtEveryLevel() {
        CPPUNIT_ASSERT_EQUAL(hash_of(R"({"_id":"1","a":1,"b":{"x":1,"y":[{"p":1,"q":2}]}})"),
                             hash_of(R"({"b":{"y":[{"q":2,"p":1}],"x":1},"a":1,"_id":"1"})"));
        CPPUNIT_ASSERT_EQUAL(size_t(32), hash_of(R"({"_id":"1"})").size());
    }

    void testHashIgnoresReservedFieldsButNotIdOrDeleted() {
        const std::string base = hash_of(R"({"_id":"1","a":1})");
        CPPUNIT_ASSERT_EQUAL(base, hash_of(R"({"_id":"1","a":1,"_updated":7,"_ts":99,"_hash":"x","_previous":3})"));
        CPPUNIT_ASSERT_EQUAL(base, hash_of(R"({"_id":"1","a":1,"_deleted":false})"));
        CPPUNIT_ASSERT(base != hash_of(R"({"_id":"1","a":1,"_deleted":true})"));
        CPPUNIT_ASSERT(base != hash_of(R"({"_id":"2","a":1})"));
        // _deleted sorts between upper-case and lower-case keys: both sides must still agree.
        CPPUNIT_ASSERT_EQUAL(hash_of(R"({"A":1,"_id":"1","z":2,"_deleted":true})"),
                             hash_of(R"({"_deleted":true,"z":2,"_id":"1","A":1})"));
    }

    void testHashSeesValueAndTypeChanges() {
        const std::string base = hash_of(R"({"_id":"1","a":1})");
        CPPUNIT_ASSERT(base != hash_of(R"({"_id":"1","a":2})"));
        CPPUNIT_ASSERT(base != hash_of(R"({"_id":"1","a":"1"})"));
        CPPUNIT_ASSERT(base != hash_of(R"({"_id":"1","a":1.0})"));  // Integer vs Float
        CPPUNIT_ASSERT(base != hash_of(R"({"_id":"1","a":[1]})"));
        CPPUNIT_ASSERT(base != hash_of(R"({"_id":"1","a":1,"b":null})"));
    }

    void testMurmurKnownVector() {
        // MurmurHash3_x64_128, seed 0: the empty input hashes to zero; "hello" to h1||h2 as
        // computed by an independent implementation of the reference algorithm.
        CPPUNIT_ASSERT_EQUAL(std::string(32, '0'), sluice::murmur3_128("", 0).hex());
        CPPUNIT_ASSERT_EQUAL(std::string("cbd8a7b341bd9b025b1e906a48ae1d19"), sluice::murmur3_128("hello", 5).hex());
    }

    void testTypedKinds() {
        using sluice::TypedKind;
        CPPUNIT_ASSERT(sluice::typed_kind("~t2020-01-01T00:00:00Z") == TypedKind::Datetime);
        CPPUNIT_ASSERT(sluice::typed_kind("~f1.5") == TypedKind::Decimal);
        CPPUNIT_ASSERT(sluice::typed_kind("~:crm:1") == TypedKind::NamespacedId);
        CPPUNIT_ASSERT(sluice::typed_kind("~rhttp://x") == TypedKind::Uri);
        CPPUNIT_ASSERT(sluice::typed_kind("~bAAE=") == TypedKind::Bytes);
        CPPUNIT_ASSERT(sluice::typed_kind("~u6ba7b810-9dad-11d1-80b4-00c04fd430c8") == TypedKind::Uuid);
        CPPUNIT_ASSERT(sluice::typed_kind("~x") == TypedKind::None);
        CPPUNIT_ASSERT(sluice::typed_kind("plain") == TypedKind::None);
        CPPUNIT_ASSERT_EQUAL(std::string("~:crm:42"), sluice::make_ni("crm", "42"));
        CPPUNIT_ASSERT_EQUAL(std::string("~:42"), sluice::make_ni("", "42"));
    }

    void testEntityView() {
        sluice::JsonDocument doc = parse_json(R"({"_id":"a","_deleted":"yes","_updated":12})");
        sluice::Entity e(doc, doc.GetAllocator());
        CPPUNIT_ASSERT(e.id() && *e.id() == "a");
        CPPUNIT_ASSERT(!e.deleted());  // only `true` deletes
        CPPUNIT_ASSERT_EQUAL(std::string("12"), e.updated());
        e.set_string("name", "x");
        e.set("_deleted", sluice::Json(true));
        CPPUNIT_ASSERT(e.deleted());
        CPPUNIT_ASSERT(e.remove("name"));
        CPPUNIT_ASSERT(!e.get("name"));
        sluice::JsonDocument bad = parse_json(R"({"_id":5})");
        CPPUNIT_ASSERT(!sluice::Entity(bad, bad.GetAllocator()).id());
    }

    void testFastTextMatchesRapidJsonWriter() {
        sluice::JsonDocument doc(rapidjson::kObjectType);
        auto& a = doc.GetAllocator();
        // Every byte value in a string and in a key (control characters, '"', '\\', UTF-8 bytes).
        std::string all_bytes;
        for (int c = 1; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
        doc.AddMember("_id", sluice::Json("id\"\\\x01", a), a);
        doc.AddMember(sluice::Json(all_bytes.c_str(), a), sluice::Json(all_bytes.c_str(), a), a);
        doc.AddMember("_deleted", true, a);
        doc.AddMember("_updated", 3, a);  // reserved: not in the canonical text
        doc.AddMember("Upper", sluice::Json(rapidjson::kArrayType), a);
        const double doubles[] = {0.0, -0.0, 1.5, 1e-300, 1.7976931348623157e308, 0.1, 123456789.125, -2.5e-7};
        for (double d : doubles) doc["Upper"].PushBack(d, a);
        doc["Upper"].PushBack(int64_t(-9223372036854775807LL - 1), a).PushBack(uint64_t(18446744073709551615ULL), a);
        doc["Upper"].PushBack(sluice::Json(rapidjson::kObjectType), a).PushBack(sluice::Json(rapidjson::kArrayType), a);
        doc["Upper"].PushBack(sluice::Json(), a).PushBack(false, a).PushBack(true, a);
        sluice::JsonDocument nested = parse_json(R"({"z":{"b":[{"y":1,"x":[2,{"d":1,"c":2}]}],"a":"\u0000x"},"a0":-1})");
        doc.AddMember("nested", sluice::Json(nested, a), a);

        CPPUNIT_ASSERT_EQUAL(reference_canonical(doc), sluice::canonical_content(doc));
        sluice::detail::TextBuffer text;
        sluice::detail::append_json(text, doc);
        CPPUNIT_ASSERT_EQUAL(sluice::to_json(doc), std::string(text.view()));
        // A tombstone whose `_deleted` must sort after an upper-case key and before `_id`.
        sluice::JsonDocument tomb = parse_json(R"({"_id":"t","B":1,"_deleted":true,"a":2})");
        CPPUNIT_ASSERT_EQUAL(reference_canonical(tomb), sluice::canonical_content(tomb));
        CPPUNIT_ASSERT_EQUAL(sluice::murmur3_128(reference_canonical(tomb).data(), reference_canonical(tomb).size()).hex(),
                             sluice::entity_hash(tomb));
    }

    // RapidJSON 1.1.0 crashes (reads far outside a table) on 0.<400 zeros>18446744073709551615,
    // found by fuzz_batch; parse_json and Batch refuse such numbers before parsing.
    // What the check lets through, RapidJSON parses right (at full precision, as strtod does):
    // random numbers of the shapes that break it (long significands, UINT64_MAX's digits,
    // leading and trailing zeros, exponents), 200 000 of them.
    void testNumbersLetThroughParseRight() {
        std::mt19937 rng(99);
        auto pick = [&](unsigned n) { return static_cast<unsigned>(rng() % n); };
        size_t checked = 0;
        for (int i = 0; i < 200000; ++i) {
            std::string digits;
            switch (pick(4)) {
                case 0: digits = "18446744073709551615"; break;
                case 1: digits = "1844674407370955161" + std::to_string(pick(10)); break;
                case 2: digits = std::string(1 + pick(25), '0'); break;
                default: digits = std::to_string(1 + pick(9));
            }
            for (unsigned k = 0, n = pick(30); k < n; ++k) digits.push_back(static_cast<char>('0' + pick(10)));
            std::string number = pick(2) ? "-" : "";
            switch (pick(3)) {
                case 0: number += digits[0] == '0' ? "0" : digits; break;
                case 1: number += "0." + std::string(pick(40), '0') + digits; break;
                default: {
                    const size_t point = 1 + pick(static_cast<unsigned>(digits.size()));
                    number += digits.substr(0, point) + (point < digits.size() ? "." + digits.substr(point) : "");
                }
            }
            if (pick(3) == 0) number += "e" + std::to_string(static_cast<int>(pick(80)) - 40);
            const std::string text = "[" + number + "]";
            if (!sluice::find_unsafe_json_number(text).empty()) continue;
            sluice::JsonDocument doc;
            doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.c_str());
            if (doc.HasParseError()) continue;  // not JSON (leading zeros): refused by the parse anyway
            if (!doc[0].IsDouble()) continue;     // integers are exact either way
            const double want = std::strtod(number.c_str(), nullptr), got = doc[0].GetDouble();
            CPPUNIT_ASSERT_MESSAGE(text + " parsed as " + std::to_string(got),
                                   got == want || std::fabs(got - want) <= std::fabs(want) * 4e-16);
            ++checked;
        }
        CPPUNIT_ASSERT(checked > 100000);
    }

    void testUnsafeNumbersRefusedBeforeParsing() {
        using sluice::find_unsafe_json_number;
        const std::string tiny = "0." + std::string(400, '0') + "18446744073709551615";
        CPPUNIT_ASSERT_EQUAL(tiny, std::string(find_unsafe_json_number("[{\"a\":" + tiny + "}]")));
        CPPUNIT_ASSERT_EQUAL(std::string("1e-330"), std::string(find_unsafe_json_number("[1e-330]")));
        CPPUNIT_ASSERT_EQUAL(std::string("-0.1844e-324"), std::string(find_unsafe_json_number("[-0.1844e-324]")));
        CPPUNIT_ASSERT_EQUAL(std::string("0e188"), std::string(find_unsafe_json_number("{\"x\": 0e188}")));
        CPPUNIT_ASSERT_EQUAL(std::string("1e309"), std::string(find_unsafe_json_number("[1e309]")));
        // A zero with many digits: garbage from 22 digits (0.<21 zeros>0 → -8.8e-75), a crash later.
        const std::string long_zero = "0." + std::string(400, '0');
        CPPUNIT_ASSERT_EQUAL(long_zero, std::string(find_unsafe_json_number("[" + long_zero + "]")));
        CPPUNIT_ASSERT_EQUAL(std::string("0.000000000000000000000"), std::string(find_unsafe_json_number("[0.000000000000000000000]")));
        CPPUNIT_ASSERT(find_unsafe_json_number("[0.0000000000000000000]").empty());  // 20 digits
        const std::string huge = "1" + std::string(320, '0');
        CPPUNIT_ASSERT_EQUAL(huge, std::string(find_unsafe_json_number("[" + huge + "]")));
        // Fine: ordinary numbers, the edges kept, zeros without exponent, long mantissas in range.
        for (const char* ok : {"[0, 0.0, -0, 1.5, -2e10, 1e300, 1e-306, 0.5e-3, 123456789012345678901234567890]",
                               "[1.7976931348623157e308, 2.2250738585072014e-306]"})
            CPPUNIT_ASSERT_MESSAGE(ok, find_unsafe_json_number(ok).empty());
        CPPUNIT_ASSERT(find_unsafe_json_number("[1." + std::string(2000, '5') + "]").empty());
        // A significand starting with UINT64_MAX's digits and going on: garbage (found by
        // fuzz_batch: 0.<40 zeros>184467440737095516159… parsed to 2.4e-125, or -7e190 in clang).
        for (const char* bad : {"184467440737095516150", "0.00018446744073709551615123", "-1844674407.37095516159e3",
                                "0.00000000000000000000000000000000000000001844674407370955161590000000000000009551615"}) {
            const std::string text = std::string("[") + bad + "]";
            CPPUNIT_ASSERT_EQUAL_MESSAGE(text, std::string(bad), std::string(find_unsafe_json_number(text)));
        }
        for (const char* ok : {"[18446744073709551615]", "[1844674407370955161.5]", "[18446744073709551614123]",
                               "[28446744073709551615123]"})
            CPPUNIT_ASSERT_MESSAGE(ok, find_unsafe_json_number(ok).empty());
        // Inside strings (escaped quotes included) nothing is a number.
        CPPUNIT_ASSERT(find_unsafe_json_number(R"(["0e188", "a\"1e-999", {"1e999": "\\"}])").empty());
        CPPUNIT_ASSERT_EQUAL(std::string("1e-999"), std::string(find_unsafe_json_number(R"(["a\\", 1e-999])")));
        // parse_json and the SDK's Batch refuse them with the place.
        CPPUNIT_ASSERT_THROW(parse_json("[" + tiny + "]"), std::invalid_argument);
        const std::string text = "[{\"_id\":\"a\",\"v\":" + tiny + "}]";
        const sluice_batch raw{sizeof(sluice_batch), SLUICE_FORMAT_JSON_ARRAY, text.data(), text.size(), 1, nullptr};
        try {
            sluice::Batch batch(raw);
            CPPUNIT_FAIL("a batch with an unsafe number was parsed");
        } catch (const sluice::Error& e) {
            CPPUNIT_ASSERT_MESSAGE(e.what(), std::string(e.what()).find("unsupported number at byte 16") != std::string::npos);
        }
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(EntityTest);


// The client's logic without a node: Python-compatible JSON, diffs, test specs, Sesam's
// normalisation and comparison of pipe output, connection settings and the working directory.
// Expected texts come from Python (json.dumps / difflib), which Sesam's client uses.
#include <sluice/kernel/client.hpp>

#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>

using namespace sluice::kernel::client;
using sluice::Json;
using sluice::JsonDocument;
using sluice::test::TempDir;
using sluice::test::write_text;

namespace {

JsonDocument json(const std::string& text) { return parse_json_text(text, "test"); }

TestSpec spec_of(const std::string& file, const std::string& text) { return parse_test_spec(file, json(text)); }

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

class ClientUnitTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(ClientUnitTest);
    CPPUNIT_TEST(testPythonFloatRepr);
    CPPUNIT_TEST(testDumpJsonMatchesPython);
    CPPUNIT_TEST(testParseErrorsAreLocated);
    CPPUNIT_TEST(testUnifiedDiffMatchesDifflib);
    CPPUNIT_TEST(testTestSpecDefaultsAndFields);
    CPPUNIT_TEST(testTestSpecRejectsWrongTypes);
    CPPUNIT_TEST(testBlacklistPaths);
    CPPUNIT_TEST(testFilterEntity);
    CPPUNIT_TEST(testFixNumbers);
    CPPUNIT_TEST(testSortEntities);
    CPPUNIT_TEST(testCompareEqualAfterNormalisation);
    CPPUNIT_TEST(testCompareMismatchGivesDiff);
    CPPUNIT_TEST(testCompareLengthMismatch);
    CPPUNIT_TEST(testIgnoreDeletes);
    CPPUNIT_TEST(testCompareBytes);
    CPPUNIT_TEST(testExpectedFileText);
    CPPUNIT_TEST(testPipeClass);
    CPPUNIT_TEST(testSyncConfigAndConnection);
    CPPUNIT_TEST(testNormaliseNodeUrl);
    CPPUNIT_TEST(testReadProject);
    CPPUNIT_TEST(testReadProjectErrorsNameTheFile);
    CPPUNIT_TEST(testConfigPathsAndStatus);
    CPPUNIT_TEST_SUITE_END();

public:
    void testPythonFloatRepr() {
        const std::pair<double, const char*> cases[] = {
            {1.0, "1.0"},       {0.1, "0.1"},         {1e-05, "1e-05"},   {1e16, "1e+16"},
            {1234567890123456.0, "1234567890123456.0"}, {-0.0, "-0.0"},   {1.5e300, "1.5e+300"},
            {0.0001, "0.0001"}, {123.456, "123.456"}, {2.5e-7, "2.5e-07"}, {1e22, "1e+22"},
            {100.0, "100.0"},   {9007199254740993.0, "9007199254740992.0"}};
        for (const auto& [value, text] : cases) CPPUNIT_ASSERT_EQUAL(std::string(text), python_float_repr(value));
    }

    void testDumpJsonMatchesPython() {
        JsonDocument d = json(R"([{"b": [1, {"z": null, "a": true}], "a": "x\u00e6<&>\n\t\u0001\"\\", "_id": "1",
                                   "e": [], "o": {}, "f": 1.5}])");
        DumpOptions pretty;
        pretty.indent = 2;
        const std::string expected_pretty =
            "[\n  {\n    \"_id\": \"1\",\n    \"a\": \"x\xC3\xA6<&>\\n\\t\\u0001\\\"\\\\\",\n    \"b\": [\n      1,\n"
            "      {\n        \"a\": true,\n        \"z\": null\n      }\n    ],\n    \"e\": [],\n    \"f\": 1.5,\n"
            "    \"o\": {}\n  }\n]";
        CPPUNIT_ASSERT_EQUAL(expected_pretty, dump_json(d, pretty));
        CPPUNIT_ASSERT_EQUAL(std::string("[{\"_id\": \"1\", \"a\": \"x\xC3\xA6<&>\\n\\t\\u0001\\\"\\\\\", \"b\": [1, "
                                         "{\"a\": true, \"z\": null}], \"e\": [], \"f\": 1.5, \"o\": {}}]"),
                             dump_json(d));
        DumpOptions unsorted;
        unsorted.sort_keys = false;
        CPPUNIT_ASSERT_EQUAL(std::string("{\"b\": 1, \"a\": 2}"), dump_json(json(R"({"b":1,"a":2})"), unsorted));
        DumpOptions escaped = pretty;
        escaped.html_escape = true;
        CPPUNIT_ASSERT_EQUAL(std::string("\"\\u003ca\\u003e \\u0026\""), dump_json(json(R"("<a> &")"), escaped));
        // Large integers stay exact.
        CPPUNIT_ASSERT_EQUAL(std::string("[18446744073709551615, -9223372036854775808]"),
                             dump_json(json("[18446744073709551615, -9223372036854775808]")));
    }

    void testParseErrorsAreLocated() {
        try {
            parse_json_text("{\n  \"a\": 1,\n  \"b\" 2\n}", "pipes/p.conf.json");
            CPPUNIT_FAIL("no error");
        } catch (const std::invalid_argument& e) {
            const std::string m = e.what();
            CPPUNIT_ASSERT_MESSAGE(m, contains(m, "pipes/p.conf.json: malformed JSON at line 3, column"));
        }
        // A byte order mark is allowed.
        CPPUNIT_ASSERT(parse_json_text("\xEF\xBB\xBF[1]", "x").IsArray());
    }

    void testUnifiedDiffMatchesDifflib() {
        const std::string a =
            "[\n  {\n    \"_id\": \"a\",\n    \"n\": 1\n  },\n  {\n    \"_id\": \"b\",\n    \"n\": 2\n  },\n  {\n"
            "    \"_id\": \"c\",\n    \"n\": 3\n  }\n]\n";
        const std::string b =
            "[\n  {\n    \"_id\": \"a\",\n    \"n\": 1\n  },\n  {\n    \"_id\": \"b\",\n    \"n\": 20\n  },\n  {\n"
            "    \"_id\": \"c\",\n    \"n\": 3\n  },\n  {\n    \"_id\": \"d\"\n  }\n]\n";
        const std::string expected =
            "--- expected/x.json\n+++ current-output.json\n@@ -5,10 +5,13 @@\n   },\n   {\n     \"_id\": \"b\",\n"
            "-    \"n\": 2\n+    \"n\": 20\n   },\n   {\n     \"_id\": \"c\",\n     \"n\": 3\n+  },\n+  {\n"
            "+    \"_id\": \"d\"\n   }\n ]\n";
        CPPUNIT_ASSERT_EQUAL(expected, unified_diff(a, b, "expected/x.json", "current-output.json"));

        std::string a2, b2;
        for (int i = 1; i <= 20; ++i) {
            a2 += std::to_string(i) + "\n";
            if (i == 2) b2 += "two\n";
            else if (i == 18) b2 += "eighteen\n";
            else if (i != 10) b2 += std::to_string(i) + "\n";
        }
        const std::string expected2 =
            "--- a\n+++ b\n@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n@@ -7,7 +7,6 @@\n 7\n 8\n 9\n-10\n 11\n 12\n"
            " 13\n@@ -15,6 +14,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n";
        CPPUNIT_ASSERT_EQUAL(expected2, unified_diff(a2, b2, "a", "b"));
        CPPUNIT_ASSERT_EQUAL(std::string("--- a\n+++ b\n@@ -1 +0,0 @@\n-x\n"), unified_diff("x\n", "", "a", "b"));
        CPPUNIT_ASSERT_EQUAL(std::string("--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n"), unified_diff("", "x\n", "a", "b"));
        CPPUNIT_ASSERT_EQUAL(std::string(), unified_diff(a, a, "a", "b"));
    }

    void testTestSpecDefaultsAndFields() {
        TestSpec d = spec_of("expected/out.test.json", "{}");
        CPPUNIT_ASSERT_EQUAL(std::string("expected/out.test.json"), d.spec_file);
        CPPUNIT_ASSERT_EQUAL(std::string("out"), d.pipe);
        CPPUNIT_ASSERT_EQUAL(std::string("out"), d.id);
        CPPUNIT_ASSERT_EQUAL(std::string("expected/out.json"), d.file);
        CPPUNIT_ASSERT_EQUAL(std::string("json"), d.endpoint);
        CPPUNIT_ASSERT_EQUAL(std::string("sink"), d.stage);
        CPPUNIT_ASSERT(!d.ignore);
        CPPUNIT_ASSERT(d.ignore_deletes);
        CPPUNIT_ASSERT(d.blacklist.empty());
        CPPUNIT_ASSERT(d.fields_to_sort_by == std::vector<std::string>{"_id"});

        TestSpec s = spec_of("out-csv.test.json", R"({"pipe": "out", "file": "out.csv", "endpoint": "csv",
            "stage": "before-transform", "ignore": "yes", "ignore_deletes": false, "blacklist": ["a.b"],
            "parameters": {"limit": 5, "flag": true, "tags": ["x", "y"], "q": "z"}, "fields_to_sort_by": ["n"]})");
        CPPUNIT_ASSERT_EQUAL(std::string("expected/out-csv.test.json"), s.spec_file);
        CPPUNIT_ASSERT_EQUAL(std::string("out"), s.pipe);
        CPPUNIT_ASSERT_EQUAL(std::string("out-csv"), s.id);
        CPPUNIT_ASSERT_EQUAL(std::string("expected/out.csv"), s.file);
        CPPUNIT_ASSERT_EQUAL(std::string("csv"), s.endpoint);
        CPPUNIT_ASSERT_EQUAL(std::string("before-transforms"), s.stage);
        CPPUNIT_ASSERT(!s.ignore);  // only the literal true counts, as in Sesam's client
        CPPUNIT_ASSERT(!s.ignore_deletes);
        CPPUNIT_ASSERT(s.blacklist == std::vector<std::string>{"a.b"});
        CPPUNIT_ASSERT(s.fields_to_sort_by == std::vector<std::string>{"n"});
        std::vector<std::pair<std::string, std::string>> params{
            {"limit", "5"}, {"flag", "True"}, {"tags", "x"}, {"tags", "y"}, {"q", "z"}};
        CPPUNIT_ASSERT(s.parameters == params);
        CPPUNIT_ASSERT(spec_of("expected/x.test.json", R"({"ignore": true})").ignore);
        CPPUNIT_ASSERT_EQUAL(std::string("expected/sub/y.json"),
                             spec_of("expected/x.test.json", R"({"file": "expected/sub/y.json"})").file);
    }

    void testTestSpecRejectsWrongTypes() {
        for (const char* bad : {"[]", R"({"pipe": 3})", R"({"blacklist": "a"})", R"({"blacklist": [1]})",
                                R"({"parameters": []})", R"({"pipe": ""})"}) {
            try {
                spec_of("expected/bad.test.json", bad);
                CPPUNIT_FAIL(std::string("accepted ") + bad);
            } catch (const std::invalid_argument& e) {
                CPPUNIT_ASSERT_MESSAGE(e.what(), contains(e.what(), "expected/bad.test.json"));
            }
        }
    }

    void testBlacklistPaths() {
        using P = std::vector<std::string>;
        CPPUNIT_ASSERT(is_blacklisted(P{"foo", "bar"}, {"foo.bar"}));
        CPPUNIT_ASSERT(!is_blacklisted(P{"foo"}, {"foo.bar"}));
        CPPUNIT_ASSERT(!is_blacklisted(P{"foo", "baz"}, {"foo.bar"}));
        CPPUNIT_ASSERT(!is_blacklisted(P{"x", "foo", "bar"}, {"foo.bar"}));
        // Lists: `*` (or Sesam's `[]`) matches the list level, which may also be left out.
        CPPUNIT_ASSERT(is_blacklisted(P{"foos", "[]", "bar"}, {"foos.*.bar"}));
        CPPUNIT_ASSERT(is_blacklisted(P{"foos", "[]", "bar"}, {"foos[].bar"}));
        CPPUNIT_ASSERT(is_blacklisted(P{"foos", "[]", "bar"}, {"foos.bar"}));
        CPPUNIT_ASSERT(!is_blacklisted(P{"foos", "[]", "baz"}, {"foos.*.bar"}));
        // `*` also matches any one key.
        CPPUNIT_ASSERT(is_blacklisted(P{"foos", "k", "bar"}, {"foos.*.bar"}));
        CPPUNIT_ASSERT(is_blacklisted(P{"ns1:updated"}, {"ns1:*"}));
        CPPUNIT_ASSERT(!is_blacklisted(P{"ns2:updated"}, {"ns1:*"}));
        // "\." is a literal dot in a key.
        CPPUNIT_ASSERT(is_blacklisted(P{"a.b"}, {"a\\.b"}));
        CPPUNIT_ASSERT(!is_blacklisted(P{"a", "b"}, {"a\\.b"}));
        CPPUNIT_ASSERT(!is_blacklisted(P{"a.b"}, {"a.b"}));
    }

    void testFilterEntity() {
        JsonDocument e = json(R"({"_id": "1", "_updated": 3, "_deleted": false, "_hash": "h", "name": "n",
            "nested": {"_ts": 1, "_id": "inner", "keep": 1, "secret": 2},
            "items": [{"_x": 1, "secret": 1, "v": 2}], "a.b": 1, "gone": {"x": 1}})");
        JsonDocument f = filter_entity(e, {"nested.secret", "items.*.secret", "a\\.b", "gone"});
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"_id": "1", "items": [{"v": 2}], "name": "n", "nested": {"_id": "inner", "keep": 1}})"),
                             dump_json(f));
        JsonDocument deleted = filter_entity(json(R"({"_id": "1", "_deleted": true, "_previous": 4})"), {});
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"_deleted": true, "_id": "1"})"), dump_json(deleted));
    }

    void testFixNumbers() {
        JsonDocument d = json(R"([1.0, 1.5, 1e16, 100.0, -2.0, 12345678901234567, -12345678901234567,
                                  9223372036854775807, 9007199254740991, {"x": [3.0]}])");
        fix_numbers(d);
        CPPUNIT_ASSERT_EQUAL(std::string("[1, 1.5, 1e+16, 100, -2, 12345678901234568, -12345678901234568, "
                                         "9223372036854776000, 9007199254740991, {\"x\": [3]}]"),
                             dump_json(d));
    }

    void testSortEntities() {
        JsonDocument d = json(R"([{"_id": "b", "n": 1}, {"_id": "a", "n": 2}, {"_id": "a", "n": 1}, {"n": 0}])");
        sort_entities(d, {"_id"});
        CPPUNIT_ASSERT_EQUAL(std::string(R"([{"n": 0}, {"_id": "a", "n": 1}, {"_id": "a", "n": 2}, {"_id": "b", "n": 1}])"),
                             dump_json(d));
        sort_entities(d, {"n"});
        CPPUNIT_ASSERT_EQUAL(std::string(R"([{"n": 0}, {"_id": "a", "n": 1}, {"_id": "b", "n": 1}, {"_id": "a", "n": 2}])"),
                             dump_json(d));
    }

    void testCompareEqualAfterNormalisation() {
        TestSpec spec = spec_of("expected/out.test.json", R"({"blacklist": ["stamp"]})");
        JsonDocument expected = json(R"([{"_id": "b", "n": 2}, {"_id": "a", "n": 1, "x": {"y": 1}}])");
        JsonDocument current = json(R"([
            {"_id": "a", "_updated": 0, "_ts": 5, "_hash": "h", "_deleted": false, "n": 1.0, "x": {"y": 1.0}, "stamp": 9},
            {"_id": "b", "_updated": 1, "n": 2, "stamp": 10}])");
        Comparison c = compare_entities(expected, current, spec);
        CPPUNIT_ASSERT_MESSAGE(c.message + "\n" + c.diff, c.equal);
        CPPUNIT_ASSERT(c.diff.empty());
    }

    void testCompareMismatchGivesDiff() {
        TestSpec spec = spec_of("expected/out.test.json", "{}");
        JsonDocument expected = json(R"([{"_id": "a", "n": 1}, {"_id": "b", "n": 2}])");
        JsonDocument current = json(R"([{"_id": "b", "n": 3, "_updated": 1}, {"_id": "a", "n": 1, "_updated": 0}])");
        Comparison c = compare_entities(expected, current, spec);
        CPPUNIT_ASSERT(!c.equal);
        CPPUNIT_ASSERT_MESSAGE(c.message, contains(c.message, "content mismatch") && contains(c.message, "expected/out.test.json"));
        CPPUNIT_ASSERT_MESSAGE(c.diff, contains(c.diff, "--- expected/out.json\n+++ current-output.json\n"));
        CPPUNIT_ASSERT_MESSAGE(c.diff, contains(c.diff, "\n-    \"n\": 2\n+    \"n\": 3\n"));
        // 1 and 1.0 in the expected file are different values: only the current output is fixed.
        JsonDocument expected_float = json(R"([{"_id": "a", "n": 1.0}])");
        JsonDocument current_float = json(R"([{"_id": "a", "n": 1.0}])");
        CPPUNIT_ASSERT(!compare_entities(expected_float, current_float, spec).equal);
        CPPUNIT_ASSERT(!compare_entities(json(R"({"_id": "a"})"), current_float, spec).equal);
    }

    void testCompareLengthMismatch() {
        TestSpec spec = spec_of("expected/out.test.json", "{}");
        Comparison c = compare_entities(json(R"([{"_id": "a"}])"), json(R"([{"_id": "a"}, {"_id": "b"}])"), spec);
        CPPUNIT_ASSERT(!c.equal);
        CPPUNIT_ASSERT_MESSAGE(c.message, contains(c.message, "length mismatch") && contains(c.message, "expected 1 entities, got 2"));
        CPPUNIT_ASSERT_MESSAGE(c.diff, contains(c.diff, "+    \"_id\": \"b\""));
    }

    void testIgnoreDeletes() {
        TestSpec spec = spec_of("expected/out.test.json", "{}");
        JsonDocument current = json(R"([{"_id": "a", "n": 1}, {"_id": "gone", "_deleted": true, "n": 2}])");
        // An unexpected delete is ignored...
        CPPUNIT_ASSERT(compare_entities(json(R"([{"_id": "a", "n": 1}])"), current, spec).equal);
        // ...but one the expected file lists is compared.
        CPPUNIT_ASSERT(compare_entities(json(R"([{"_id": "a", "n": 1}, {"_id": "gone", "_deleted": true, "n": 2}])"),
                                        current, spec).equal);
        CPPUNIT_ASSERT(!compare_entities(json(R"([{"_id": "a", "n": 1}, {"_id": "gone", "_deleted": true, "n": 3}])"),
                                         current, spec).equal);
        TestSpec strict = spec_of("expected/out.test.json", R"({"ignore_deletes": false})");
        CPPUNIT_ASSERT(!compare_entities(json(R"([{"_id": "a", "n": 1}])"), current, strict).equal);
    }

    void testCompareBytes() {
        TestSpec spec = spec_of("expected/out-csv.test.json", R"({"endpoint": "csv", "file": "out.csv"})");
        CPPUNIT_ASSERT(compare_bytes("_id,name\r\na,1\r\n", "_id,name\r\na,1\r\n", spec).equal);
        Comparison c = compare_bytes("_id,name\r\na,1\r\n", "_id,name\na,1\n", spec);
        CPPUNIT_ASSERT(!c.equal);
        CPPUNIT_ASSERT_MESSAGE(c.message, contains(c.message, "expected/out-csv.test.json"));
        CPPUNIT_ASSERT_MESSAGE(c.diff, contains(c.diff, "-_id,name\\r\n-a,1\\r\n+_id,name\n+a,1\n"));
    }

    void testExpectedFileText() {
        TestSpec spec = spec_of("expected/out.test.json", R"({"blacklist": ["skip"]})");
        JsonDocument current = json(R"([{"_id": "b", "html": "<b>&</b>", "_updated": 1, "n": 2.0, "skip": 1},
                                        {"_id": "gone", "_deleted": true}, {"_id": "a", "\u00e6": "\u00f8"}])");
        CPPUNIT_ASSERT_EQUAL(std::string("[\n  {\n    \"_id\": \"a\",\n    \"\xC3\xA6\": \"\xC3\xB8\"\n  },\n  {\n"
                                         "    \"_id\": \"b\",\n    \"html\": \"\\u003cb\\u003e\\u0026\\u003c/b\\u003e\",\n"
                                         "    \"n\": 2\n  }\n]\n"),
                             expected_file_text(current, spec));
        // What update writes, verify accepts.
        JsonDocument written = json(expected_file_text(current, spec));
        CPPUNIT_ASSERT(compare_entities(written, current, spec).equal);
        CPPUNIT_ASSERT_EQUAL(std::string("[]\n"), expected_file_text(json("[]"), spec));
    }

    void testPipeClass() {
        CPPUNIT_ASSERT_EQUAL(std::string("input"), pipe_class(json(R"({"source": {"type": "embedded"},
            "sink": {"type": "dataset", "dataset": "x"}})")));
        CPPUNIT_ASSERT_EQUAL(std::string("internal"), pipe_class(json(R"({"source": {"type": "dataset", "dataset": "a"},
            "sink": {"type": "dataset", "dataset": "b"}})")));
        CPPUNIT_ASSERT_EQUAL(std::string("endpoint"), pipe_class(json(R"({"source": {"type": "dataset", "dataset": "a"},
            "sink": {"type": "http_endpoint"}})")));
        CPPUNIT_ASSERT_EQUAL(std::string("output"), pipe_class(json(R"({"source": {"type": "dataset", "dataset": "a"},
            "sink": {"type": "sql", "table": "t"}})")));
        CPPUNIT_ASSERT_EQUAL(std::string("internal"), pipe_class(json(R"({"source": {"type": "dataset", "dataset": "a"}})")));
    }

    void testSyncConfigAndConnection() {
        SyncConfig c = parse_syncconfig("# comment\nNODE=\"node.example.com\"\n  JWT = 'abc.def.ghi' \nOTHER=1\n");
        CPPUNIT_ASSERT_EQUAL(std::string("node.example.com"), c.node.value_or(""));
        CPPUNIT_ASSERT_EQUAL(std::string("abc.def.ghi"), c.jwt.value_or(""));

        TempDir dir;
        write_text(dir / ".syncconfig", "NODE=http://sync-node:1234\nJWT=sync-token\n");
        std::filesystem::create_directories(dir / "a" / "b");
        std::map<std::string, std::string> env;
        auto getenv = [&](const char* name) -> std::optional<std::string> {
            auto it = env.find(name);
            return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
        };
        auto found = find_syncconfig(dir / "a" / "b");
        CPPUNIT_ASSERT(found);
        CPPUNIT_ASSERT_EQUAL((dir / ".syncconfig").string(), found->file.string());

        Connection fromfile = resolve_connection(std::nullopt, std::nullopt, dir / "a" / "b", getenv);
        CPPUNIT_ASSERT_EQUAL(std::string("http://sync-node:1234"), fromfile.base_url);
        CPPUNIT_ASSERT_EQUAL(std::string("sync-token"), fromfile.token);

        env["SLUICE_NODE"] = "http://env-node:1";
        env["SLUICE_TOKEN"] = "env-token";
        Connection fromenv = resolve_connection(std::nullopt, std::nullopt, dir / "a", getenv);
        CPPUNIT_ASSERT_EQUAL(std::string("http://env-node:1"), fromenv.base_url);
        CPPUNIT_ASSERT_EQUAL(std::string("env-token"), fromenv.token);

        Connection fromargs = resolve_connection(std::string("http://arg-node:2/api/"), std::string("arg-token"), dir.path(), getenv);
        CPPUNIT_ASSERT_EQUAL(std::string("http://arg-node:2"), fromargs.base_url);
        CPPUNIT_ASSERT_EQUAL(std::string("arg-token"), fromargs.token);

        TempDir lonely;  // may still find a .syncconfig above $TMPDIR; only check the env-free default when none
        env.clear();
        if (!find_syncconfig(lonely.path())) {
            Connection fallback = resolve_connection(std::nullopt, std::nullopt, lonely.path(), getenv);
            CPPUNIT_ASSERT_EQUAL(std::string(kDefaultNode), fallback.base_url);
            CPPUNIT_ASSERT_EQUAL(std::string(), fallback.token);
        }
    }

    void testNormaliseNodeUrl() {
        CPPUNIT_ASSERT_EQUAL(std::string("http://localhost:9042"), normalise_node_url("localhost:9042"));
        CPPUNIT_ASSERT_EQUAL(std::string("http://127.0.0.1:9042"), normalise_node_url("127.0.0.1:9042/api"));
        CPPUNIT_ASSERT_EQUAL(std::string("https://datahub-x.sesam.cloud"), normalise_node_url("datahub-x.sesam.cloud"));
        CPPUNIT_ASSERT_EQUAL(std::string("http://host:1/prefix"), normalise_node_url(" http://host:1/prefix/api/ "));
    }

    void testReadProject() {
        TempDir dir;
        write_text(dir / "node-metadata.conf.json", R"({"_id": "node", "type": "metadata"})");
        write_text(dir / "pipes" / "b.conf.json", R"({"_id": "b", "type": "pipe"})");
        write_text(dir / "pipes" / "a.conf.json", "\xEF\xBB\xBF{\"_id\": \"a\", \"type\": \"pipe\"}");
        write_text(dir / "pipes" / "notes.txt", "not config");
        write_text(dir / "systems" / "s.conf.json", R"([{"_id": "s", "type": "system:url", "url_pattern": "x"}])");
        write_text(dir / "prod-env.json", R"({"k": "v"})");
        LocalProject p = read_project(dir.path(), "prod");
        CPPUNIT_ASSERT_MESSAGE(p.errors.empty() ? "" : p.errors[0], p.errors.empty());
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(4), p.entities.Size());
        const char* order[] = {"node", "s", "a", "b"};
        for (rapidjson::SizeType i = 0; i < 4; ++i)
            CPPUNIT_ASSERT_EQUAL(std::string(order[i]), sluice::string_or(p.entities[i], "_id", ""));
        CPPUNIT_ASSERT_EQUAL(std::string("pipes/a.conf.json"), p.file_of("a"));
        CPPUNIT_ASSERT_EQUAL(std::string("systems/s.conf.json"), p.file_of("s"));
        CPPUNIT_ASSERT(p.env && p.env->IsObject());
        CPPUNIT_ASSERT_EQUAL(std::string("prod-env.json"), p.env_file);
        CPPUNIT_ASSERT(!read_project(dir.path(), "test").env);
    }

    void testReadProjectErrorsNameTheFile() {
        TempDir dir;
        write_text(dir / "pipes" / "broken.conf.json", "{\"_id\": \"broken\",\n \"type\": \"pipe\"");
        write_text(dir / "pipes" / "wrong.conf.json", R"({"_id": "wrong", "type": "system:url"})");
        write_text(dir / "pipes" / "noid.conf.json", R"({"type": "pipe"})");
        write_text(dir / "pipes" / "dup1.conf.json", R"({"_id": "dup", "type": "pipe"})");
        write_text(dir / "pipes" / "dup2.conf.json", R"({"_id": "dup", "type": "pipe"})");
        write_text(dir / "pipes" / "slash.conf.json", R"({"_id": "a/b", "type": "pipe"})");
        write_text(dir / "systems" / "sys.conf.json", R"({"_id": "sys", "type": "pipe"})");
        write_text(dir / "node-metadata.conf.json", R"({"_id": "other", "type": "metadata"})");
        write_text(dir / "test-env.json", "[1]");
        LocalProject p = read_project(dir.path(), "test");
        std::string all;
        for (const std::string& e : p.errors) all += e + "\n";
        for (const char* fragment : {"pipes/broken.conf.json: malformed JSON at line 2",
                                     "pipes/wrong.conf.json: /type: a pipe's type must be \"pipe\"",
                                     "pipes/noid.conf.json: /_id: must be a non-empty string",
                                     "pipes/dup2.conf.json: /_id: 'dup' is also defined in pipes/dup1.conf.json",
                                     "pipes/slash.conf.json: /_id: 'a/b' cannot be used as a file name",
                                     "systems/sys.conf.json: /type: a system's type must be",
                                     "node-metadata.conf.json: /_id:", "test-env.json: expected a JSON object"})
            CPPUNIT_ASSERT_MESSAGE(all + "missing: " + fragment, contains(all, fragment));
        CPPUNIT_ASSERT_EQUAL_MESSAGE(all, size_t(8), p.errors.size());
    }

    void testConfigPathsAndStatus() {
        CPPUNIT_ASSERT_EQUAL(std::string("pipes/p.conf.json"), config_path(json(R"({"_id": "p", "type": "pipe"})")));
        CPPUNIT_ASSERT_EQUAL(std::string("systems/s.conf.json"), config_path(json(R"({"_id": "s", "type": "system:url"})")));
        CPPUNIT_ASSERT_EQUAL(std::string("node-metadata.conf.json"), config_path(json(R"({"_id": "node", "type": "metadata"})")));
        CPPUNIT_ASSERT_EQUAL(std::string(), config_path(json(R"({"_id": "../x", "type": "pipe"})")));
        CPPUNIT_ASSERT_EQUAL(std::string(), config_path(json(R"({"_id": "x", "type": "other"})")));
        CPPUNIT_ASSERT_EQUAL(std::string("{\n  \"_id\": \"p\",\n  \"b\": 1,\n  \"type\": \"pipe\"\n}\n"),
                             config_file_text(json(R"({"type": "pipe", "_id": "p", "b": 1})")));

        TempDir dir;
        write_text(dir / "pipes" / "same.conf.json", R"({"type": "pipe", "_id": "same", "x": [1, 2]})");
        write_text(dir / "pipes" / "changed.conf.json", R"({"_id": "changed", "type": "pipe", "x": 1})");
        write_text(dir / "pipes" / "local-only.conf.json", R"({"_id": "local-only", "type": "pipe"})");
        LocalProject local = read_project(dir.path(), "test");
        JsonDocument node = json(R"([{"_id": "same", "type": "pipe", "x": [1, 2]},
                                     {"_id": "changed", "type": "pipe", "x": 2},
                                     {"_id": "node-only", "type": "pipe"}])");
        std::vector<StatusEntry> entries = compare_config(local, node);
        CPPUNIT_ASSERT_EQUAL(size_t(3), entries.size());
        CPPUNIT_ASSERT_EQUAL(std::string("pipes/changed.conf.json"), entries[0].file);
        CPPUNIT_ASSERT_EQUAL(std::string("differs"), entries[0].state);
        CPPUNIT_ASSERT(contains(entries[0].local_text, "\"x\": 1") && contains(entries[0].node_text, "\"x\": 2"));
        CPPUNIT_ASSERT_EQUAL(std::string("pipes/local-only.conf.json"), entries[1].file);
        CPPUNIT_ASSERT_EQUAL(std::string("only-local"), entries[1].state);
        CPPUNIT_ASSERT_EQUAL(std::string("pipes/node-only.conf.json"), entries[2].file);
        CPPUNIT_ASSERT_EQUAL(std::string("only-on-node"), entries[2].state);

        JsonDocument in_sync = json(R"([{"_id": "same", "type": "pipe", "x": [1, 2]},
            {"_id": "changed", "type": "pipe", "x": 1}, {"_id": "local-only", "type": "pipe"}])");
        CPPUNIT_ASSERT(compare_config(local, in_sync).empty());
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ClientUnitTest);

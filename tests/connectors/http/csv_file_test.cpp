// The `csv` source against real files (quoting, embedded newlines and delimiters, latin-1, utf-16
// with BOM, utf-8 BOM, typed columns, primary keys) and over HTTP; the `csv_endpoint` publisher's
// bytes through a host that accepts SLUICE_FORMAT_BYTES; the `file` sink's atomic replacement.
#include "connector_test_util.hpp"
#include "test_server.hpp"
#include "test_support.hpp"

#include <cppunit/extensions/HelperMacros.h>

#include <fstream>

#include <sys/wait.h>
#include <unistd.h>

using namespace sluice::test;
using sluice::Json;
using sluice::JsonDocument;
using sluice::testing::FakeHost;
using sluice::testing::LoadedPlugin;

namespace {

void write_bytes(const fs::path& file, const std::string& bytes) {
    std::ofstream out(file, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string str(const Json& v) { return v.IsString() ? v.GetString() : sluice::to_json(v); }

// UTF-16 bytes of an ASCII/Latin-1/BMP UTF-8 string.
std::string utf16(const std::string& utf8, bool big_endian, bool bom) {
    std::string out;
    auto unit = [&](uint32_t u) {
        char hi = static_cast<char>(u >> 8), lo = static_cast<char>(u & 0xFF);
        out.push_back(big_endian ? hi : lo);
        out.push_back(big_endian ? lo : hi);
    };
    if (bom) unit(0xFEFF);
    for (size_t i = 0; i < utf8.size();) {
        unsigned char c = static_cast<unsigned char>(utf8[i]);
        uint32_t cp;
        if (c < 0x80) {
            cp = c;
            i += 1;
        } else if (c < 0xE0) {
            cp = ((c & 0x1F) << 6) | (utf8[i + 1] & 0x3F);
            i += 2;
        } else {
            cp = ((c & 0x0F) << 12) | ((utf8[i + 1] & 0x3F) << 6) | (utf8[i + 2] & 0x3F);
            i += 3;
        }
        unit(cp);
    }
    return out;
}

}  // namespace

class CsvFileTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(CsvFileTest);
    CPPUNIT_TEST(testQuotingNewlinesAndDelimiters);
    CPPUNIT_TEST(testEncodings);
    CPPUNIT_TEST(testDialectOptions);
    CPPUNIT_TEST(testPrimaryKeysAndIds);
    CPPUNIT_TEST(testTypedColumns);
    CPPUNIT_TEST(testErrors);
    CPPUNIT_TEST(testStreamsInBatches);
    CPPUNIT_TEST(testCsvOverHttp);
    CPPUNIT_TEST(testCsvEndpointBytes);
    CPPUNIT_TEST(testCsvEndpointScheduledRunIsNoOp);
    CPPUNIT_TEST(testFileSinkAtomicReplace);
    CPPUNIT_TEST(testFileSinkFormatsAndAppend);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override {
        dir_ = std::make_unique<TempDir>("sluice-csv");
        host_ = std::make_unique<FakeHost>();
        csv_ = std::make_unique<LoadedPlugin>(plugin_path("sluice-source-csv"), *host_);
    }
    void tearDown() override {
        csv_.reset();
        host_.reset();
        dir_.reset();
    }

    // Reads `bytes` written to a file with the extra config keys; returns the status.
    int32_t read_csv(const std::string& bytes, const std::string& extra = "", uint32_t batch_size = 100) {
        const fs::path file = (*dir_) / "in.csv";
        write_bytes(file, bytes);
        host_->clear();
        auto source = csv_->create(SLUICE_KIND_SOURCE, "csv",
                                   R"({"type":"csv","path":")" + file.string() + "\"" + extra + "}");
        if (!source.valid()) return -1;
        return source.read(nullptr, batch_size);
    }
    const Json& row(size_t i) { return host_->emitted()[static_cast<rapidjson::SizeType>(i)]; }

    void testQuotingNewlinesAndDelimiters() {
        const std::string text =
            "id,name,note\r\n"
            "1,\"Smith, John\",\"said \"\"hi\"\"\"\r\n"
            "2,Ann,\"line one\r\nline two\nline three\"\r\n"
            "\r\n"
            "3,,\"\"\r\n"
            "4,\"tail\"x,last";  // no final newline; text after a closing quote is kept (as Python does)
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, read_csv(text));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(4), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(std::string("Smith, John"), str(row(0)["name"]));
        CPPUNIT_ASSERT_EQUAL(std::string("said \"hi\""), str(row(0)["note"]));
        CPPUNIT_ASSERT_EQUAL(std::string("line one\r\nline two\nline three"), str(row(1)["note"]));
        CPPUNIT_ASSERT(!row(2).HasMember("name"));  // empty cells are dropped by default
        CPPUNIT_ASSERT(!row(2).HasMember("note"));
        CPPUNIT_ASSERT_EQUAL(std::string("tailx"), str(row(3)["name"]));
        CPPUNIT_ASSERT_EQUAL(std::string("last"), str(row(3)["note"]));
        CPPUNIT_ASSERT_EQUAL(std::string("1"), str(row(0)["_id"]));  // row numbers without primary_key
        CPPUNIT_ASSERT_EQUAL(std::string("4"), str(row(3)["_id"]));

        CPPUNIT_ASSERT_EQUAL(kOk, read_csv(text, R"(,"preserve_empty_strings":true)"));
        CPPUNIT_ASSERT_EQUAL(std::string(""), str(row(2)["name"]));
    }

    void testEncodings() {
        const std::string utf8 = "id,name\n1,Bjørn Ærlig\n2,Zoë\n";
        std::string latin1 = "id,name\n1,Bj\xF8rn \xC6rlig\n2,Zo\xEB\n";
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, read_csv(latin1, R"(,"encoding":"latin-1")"));
        CPPUNIT_ASSERT_EQUAL(std::string("Bjørn Ærlig"), str(row(0)["name"]));
        CPPUNIT_ASSERT_EQUAL(std::string("Zoë"), str(row(1)["name"]));
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv(latin1, R"(,"encoding":"ISO-8859-1")"));
        CPPUNIT_ASSERT_EQUAL(std::string("Zoë"), str(row(1)["name"]));
        // Latin-1 read as UTF-8: a clear error, not mojibake
        CPPUNIT_ASSERT_EQUAL(kError, read_csv(latin1));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("not valid UTF-8") != std::string::npos);

        for (bool big_endian : {false, true}) {
            CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk,
                                         read_csv(utf16(utf8, big_endian, true), R"(,"encoding":"utf-16")"));
            CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), host_->emitted().Size());
            CPPUNIT_ASSERT_EQUAL(std::string("Bjørn Ærlig"), str(row(0)["name"]));
            CPPUNIT_ASSERT(row(0).HasMember("id"));  // the BOM is not part of the first column's name
        }
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv(utf16(utf8, true, false), R"(,"encoding":"utf-16-be")"));
        CPPUNIT_ASSERT_EQUAL(std::string("Zoë"), str(row(1)["name"]));

        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("\xEF\xBB\xBF" + utf8));  // UTF-8 BOM dropped
        CPPUNIT_ASSERT(row(0).HasMember("id"));
        CPPUNIT_ASSERT_EQUAL(std::string("Bjørn Ærlig"), str(row(0)["name"]));

        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("id,price\n1,\x80" "5\n", R"(,"encoding":"cp1252")"));
        CPPUNIT_ASSERT_EQUAL(std::string("€5"), str(row(0)["price"]));
        CPPUNIT_ASSERT_EQUAL(-1, read_csv(utf8, R"(,"encoding":"ebcdic")"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("unsupported encoding") != std::string::npos);
    }

    void testDialectOptions() {
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("a;b\n1;\"x;y\"\n", R"(,"delimiter":";")"));
        CPPUNIT_ASSERT_EQUAL(std::string("x;y"), str(row(0)["b"]));
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("a;b\n1;2\n", R"(,"auto_dialect":true)"));
        CPPUNIT_ASSERT_EQUAL(std::string("2"), str(row(0)["b"]));
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("a\tb\n1\t2\n", R"(,"dialect":"excel-tab")"));
        CPPUNIT_ASSERT_EQUAL(std::string("2"), str(row(0)["b"]));
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("a|b\n'1|2'|3\n", R"(,"delimiter":"|","quotechar":"'")"));
        CPPUNIT_ASSERT_EQUAL(std::string("1|2"), str(row(0)["a"]));
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("a,b\n1, x\n", R"(,"skipinitialspace":true)"));
        CPPUNIT_ASSERT_EQUAL(std::string("x"), str(row(0)["b"]));
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("a,b\n\"q\"\\,x,2\n", R"(,"quoting":"none","escapechar":"\\")"));
        CPPUNIT_ASSERT_EQUAL(std::string("\"q\",x"), str(row(0)["a"]));
        // no header row: field_names, or column1..n
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("1,2\n3,4\n", R"(,"has_header":false,"field_names":["x","y"])"));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(std::string("4"), str(row(1)["y"]));
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("1,2\n", R"(,"has_header":false)"));
        CPPUNIT_ASSERT_EQUAL(std::string("2"), str(row(0)["column2"]));
    }

    void testPrimaryKeysAndIds() {
        const std::string text = "code,year,name\nNO,2024,Norway\nSE|X,2024,Sweden\n";
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv(text, R"(,"primary_key":"code")"));
        CPPUNIT_ASSERT_EQUAL(std::string("NO"), str(row(0)["_id"]));
        CPPUNIT_ASSERT_EQUAL(std::string("NO"), str(row(0)["code"]));  // the key column stays a property
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv(text, R"(,"primary_key":["code","year"])"));
        CPPUNIT_ASSERT_EQUAL(std::string("NO|2024"), str(row(0)["_id"]));
        CPPUNIT_ASSERT_EQUAL(std::string("SE%7CX|2024"), str(row(1)["_id"]));  // as the sql source escapes
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv("_id,v\nabc,1\n"));
        CPPUNIT_ASSERT_EQUAL(std::string("abc"), str(row(0)["_id"]));
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_FATAL), read_csv(text, R"(,"primary_key":"nope")"));  // a config error
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("'nope' is not in the header") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(kError, read_csv("code,v\n,1\n", R"(,"primary_key":"code")"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("line 2") != std::string::npos);
    }

    void testTypedColumns() {
        const std::string text =
            "id,n,f,d,b,t,day,j,s\n"
            "1,007,2.5,12345678901234567890.50,yes,2024-03-01 10:20:30+02:00,2024-03-01,\"{\"\"a\"\":[1]}\",0042\n"
            "2,-12345678901234567890123,1e3,-1,False,2024-03-01T23:59:59.123Z,1999-12-31,null,x\n";
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk,
                                     read_csv(text, R"(,"types":{"n":"integer","f":"float","d":"decimal","b":"boolean",
                                                       "t":"datetime","day":"date","j":"json"})"));
        CPPUNIT_ASSERT_EQUAL(7, row(0)["n"].GetInt());
        CPPUNIT_ASSERT_EQUAL(2.5, row(0)["f"].GetDouble());
        CPPUNIT_ASSERT_EQUAL(std::string("~f12345678901234567890.50"), str(row(0)["d"]));
        CPPUNIT_ASSERT(row(0)["b"].IsBool() && row(0)["b"].GetBool());
        CPPUNIT_ASSERT_EQUAL(std::string("~t2024-03-01T08:20:30Z"), str(row(0)["t"]));
        CPPUNIT_ASSERT_EQUAL(std::string("~t2024-03-01"), str(row(0)["day"]));
        CPPUNIT_ASSERT_EQUAL(1, row(0)["j"]["a"][0].GetInt());
        CPPUNIT_ASSERT_EQUAL(std::string("0042"), str(row(0)["s"]));  // untyped columns stay strings
        CPPUNIT_ASSERT_EQUAL(1000.0, row(1)["f"].GetDouble());
        CPPUNIT_ASSERT(!row(1)["b"].GetBool());
        CPPUNIT_ASSERT_EQUAL(std::string("~t2024-03-01T23:59:59.123Z"), str(row(1)["t"]));
        CPPUNIT_ASSERT(row(1)["j"].IsNull());

        // a value that does not convert: an error naming line and column, or kept / null on request
        const std::string bad = "id,n\n1,12\n2,twelve\n";
        CPPUNIT_ASSERT_EQUAL(kError, read_csv(bad, R"(,"types":{"n":"integer"})"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("line 3, column 'n'") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv(bad, R"(,"types":{"n":"integer"},"conversion_errors":"keep")"));
        CPPUNIT_ASSERT_EQUAL(std::string("twelve"), str(row(1)["n"]));
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv(bad, R"(,"types":{"n":"int"},"conversion_errors":"null")"));
        CPPUNIT_ASSERT(row(1)["n"].IsNull());
        // A json cell with a number RapidJSON would turn into garbage (UINT64_MAX's digits and
        // more) is not valid json here: an error saying which number, or null on request.
        const std::string huge = "id,j\n1,\"{\"\"n\"\": 184467440737095516151e-60}\"\n2,\"{\"\"n\"\": 1.5}\"\n";
        CPPUNIT_ASSERT_EQUAL(kError, read_csv(huge, R"(,"types":{"j":"json"})"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("line 2, column 'j'") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(),
                               host_->last_error().find("unsupported number '184467440737095516151e-60'") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv(huge, R"(,"types":{"j":"json"},"conversion_errors":"null")"));
        CPPUNIT_ASSERT(row(0)["j"].IsNull());
        CPPUNIT_ASSERT_EQUAL(1.5, row(1)["j"]["n"].GetDouble());
    }

    void testErrors() {
        CPPUNIT_ASSERT_EQUAL(kError, read_csv("a,b\n1,\"open\n2,3\n"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("unterminated quoted field") != std::string::npos);
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("line 2") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(kError, read_csv("a,b\n1,\"" + std::string(5000, 'x'), R"(,"max_record_bytes":1000)"));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("max_record_bytes") != std::string::npos);

        host_->clear();
        auto missing = csv_->create(SLUICE_KIND_SOURCE, "csv", R"({"type":"csv","path":"/nonexistent/x.csv"})");
        CPPUNIT_ASSERT(missing.valid());
        CPPUNIT_ASSERT_EQUAL(kError, missing.read(nullptr, 10));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("/nonexistent/x.csv") != std::string::npos);
        auto both = csv_->create(SLUICE_KIND_SOURCE, "csv", R"({"type":"csv","path":"a","url":"http://x/"})");
        CPPUNIT_ASSERT(!both.valid());
    }

    void testStreamsInBatches() {
        // ~3 MB through 64 KB reads, emitted in batches of the pipe's size
        std::string text = "id,payload\n";
        const std::string payload(300, 'p');
        for (int i = 0; i < 10000; ++i) text += std::to_string(i) + ",\"" + payload + "\"\n";
        CPPUNIT_ASSERT_EQUAL(kOk, read_csv(text, R"(,"primary_key":"id")", 1000));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(10000), host_->emitted().Size());
        CPPUNIT_ASSERT_EQUAL(size_t(10), host_->emitted_batches());
        CPPUNIT_ASSERT_EQUAL(std::string("9999"), str(row(9999)["_id"]));
    }

    void testCsvOverHttp() {
        TestServer server;
        server.on([](const RecordedRequest& r) {
            if (r.header("authorization") != "Basic dTpw") return Reply{401, ""};
            Reply reply{200, "id,name\r\n1,\"a,b\"\r\n2,c\r\n"};
            reply.content_type = "text/csv";
            return reply;
        });
        auto source = csv_->create(SLUICE_KIND_SOURCE, "csv", R"({"type":"csv","system":"files","url":"export.csv","primary_key":"id"})",
                                   (R"({"type":"system:url","base_url":")" + server.url("/files") +
                                    R"(","authentication":"basic","username":"u","password":"p"})").c_str());
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), source.valid());
        CPPUNIT_ASSERT_EQUAL_MESSAGE(host_->last_error(), kOk, source.read(nullptr, 100));
        CPPUNIT_ASSERT_EQUAL(std::string("/files/export.csv"), server.requests()[0].path);
        CPPUNIT_ASSERT_EQUAL(std::string("a,b"), str(row(0)["name"]));
        CPPUNIT_ASSERT_EQUAL(std::string("2"), str(row(1)["_id"]));

        server.on([](const RecordedRequest&) { return Reply{403, "forbidden"}; });
        CPPUNIT_ASSERT_EQUAL(kError, source.read(nullptr, 100));
        CPPUNIT_ASSERT_MESSAGE(host_->last_error(), host_->last_error().find("403") != std::string::npos);
    }

    void testCsvEndpointBytes() {
        BytesHost host;
        // the reference's example (§6.4): header from the entities' keys, CRLF
        {
            BytesSink sink(plugin_path("sluice-sink-csv-endpoint"), "csv_endpoint", R"({"type":"csv_endpoint"})", host);
            CPPUNIT_ASSERT(sink.valid());
            CPPUNIT_ASSERT(sink.capabilities() & SLUICE_CAP_PUBLISHER);
            CPPUNIT_ASSERT_EQUAL(kOk, sink.begin_run(host));
            CPPUNIT_ASSERT_EQUAL(kOk, sink.write(host, R"([{"_id":"test1","name":"test1","_updated":0,"_ts":1}])"));
            CPPUNIT_ASSERT_EQUAL(kOk, sink.write(host, R"([{"_id":"test2","name":"test2","_updated":1}])"));
            CPPUNIT_ASSERT_EQUAL(kOk, sink.end_run(host));
            CPPUNIT_ASSERT_EQUAL(std::string("_id,name\r\ntest1,test1\r\ntest2,test2\r\n"), host.bytes);
            CPPUNIT_ASSERT_EQUAL(size_t(2), host.chunks.size());  // streamed per batch
            CPPUNIT_ASSERT_EQUAL(size_t(0), host.json_emits);
        }
        // columns, RFC 4180 quoting, values as Python's csv writes them, deleted entities skipped
        host.bytes.clear();
        {
            BytesSink sink(plugin_path("sluice-sink-csv-endpoint"), "csv_endpoint",
                           R"({"type":"csv_endpoint","columns":["_id","text","n","ok","when","missing"]})", host);
            CPPUNIT_ASSERT_EQUAL(kOk, sink.begin_run(host));
            CPPUNIT_ASSERT_EQUAL(kOk, sink.write(host, R"([
                {"_id":"a","text":"x, \"y\"\nz","n":1.5,"ok":true,"when":"~t2024-01-01T00:00:00Z"},
                {"_id":"b","_deleted":true,"text":"gone"},
                {"_id":"c","text":"","n":10,"ok":false,"missing":null}])"));
            CPPUNIT_ASSERT_EQUAL(kOk, sink.end_run(host));
            CPPUNIT_ASSERT_EQUAL(std::string("_id,text,n,ok,when,missing\r\n"
                                             "a,\"x, \"\"y\"\"\nz\",1.5,True,2024-01-01T00:00:00Z,\r\n"
                                             "c,,10,False,,\r\n"),
                                 host.bytes);
        }
        // no entities: the header alone when columns are known
        host.bytes.clear();
        {
            BytesSink sink(plugin_path("sluice-sink-csv-endpoint"), "csv_endpoint",
                           R"({"type":"csv_endpoint","columns":["_id","name"],"delimiter":";","quoting":"all"})", host);
            CPPUNIT_ASSERT_EQUAL(kOk, sink.begin_run(host));
            CPPUNIT_ASSERT_EQUAL(kOk, sink.end_run(host));
            CPPUNIT_ASSERT_EQUAL(std::string("\"_id\";\"name\"\r\n"), host.bytes);
        }
        // a client that stops reading stops the sink
        host.bytes.clear();
        {
            BytesSink sink(plugin_path("sluice-sink-csv-endpoint"), "csv_endpoint", R"({"type":"csv_endpoint"})", host);
            CPPUNIT_ASSERT_EQUAL(kOk, sink.begin_run(host));
            host.refuse = true;
            CPPUNIT_ASSERT(sink.write(host, R"([{"_id":"a"}])") != SLUICE_OK);
            host.refuse = false;
        }
    }

    void testCsvEndpointScheduledRunIsNoOp() {
        BytesHost host;
        BytesSink sink(plugin_path("sluice-sink-csv-endpoint"), "csv_endpoint", R"({"type":"csv_endpoint"})", host);
        host.refuse = true;  // a scheduled run's context has no client to emit to
        CPPUNIT_ASSERT_EQUAL(kOk, sink.begin_run(host));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(host, R"([{"_id":"a"}])"));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.end_run(host));
        CPPUNIT_ASSERT(host.bytes.empty());
        // the next pull renders a fresh document
        host.refuse = false;
        CPPUNIT_ASSERT_EQUAL(kOk, sink.begin_run(host));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(host, R"([{"_id":"a","v":1}])"));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.end_run(host));
        CPPUNIT_ASSERT_EQUAL(std::string("_id,v\r\na,1\r\n"), host.bytes);
    }

    void testFileSinkAtomicReplace() {
        FakeHost host;
        LoadedPlugin plugin(plugin_path("sluice-sink-file"), host);
        const fs::path out = (*dir_) / "out" / "people.ndjson";
        fs::create_directories(out.parent_path());
        write_text(out, "old content\n");
        auto sink = plugin.create(SLUICE_KIND_SINK, "file", R"({"type":"file","path":")" + out.string() + "\"}");
        CPPUNIT_ASSERT_MESSAGE(host.last_error(), sink.valid());

        // a failed run leaves the old file and no temporary file
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(plugin, "file", sink, host, true));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(R"([{"_id":"1"}])"));
        CPPUNIT_ASSERT_EQUAL(std::string("old content\n"), read_text(out));  // nothing visible mid-run
        CPPUNIT_ASSERT_EQUAL(size_t(2), count_files(out.parent_path()));     // the file + one temp file
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(plugin, "file", sink, host, true, false));
        CPPUNIT_ASSERT_EQUAL(std::string("old content\n"), read_text(out));
        CPPUNIT_ASSERT_EQUAL(size_t(1), count_files(out.parent_path()));

        // a completed run replaces it
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(plugin, "file", sink, host, true));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(R"([{"_id":"1","n":1},{"_id":"2","_deleted":true}])"));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(R"([{"_id":"3","n":3}])"));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(plugin, "file", sink, host, true, true));
        CPPUNIT_ASSERT_EQUAL(std::string("{\"_id\":\"1\",\"n\":1}\n{\"_id\":\"3\",\"n\":3}\n"), read_text(out));
        CPPUNIT_ASSERT_EQUAL(size_t(1), count_files(out.parent_path()));

        // an instance destroyed mid-run (crash of the run) leaves the file and cleans up
        {
            auto other = plugin.create(SLUICE_KIND_SINK, "file", R"({"type":"file","path":")" + out.string() + "\"}");
            CPPUNIT_ASSERT_EQUAL(kOk, begin_run(plugin, "file", other, host, true));
            CPPUNIT_ASSERT_EQUAL(kOk, other.write(R"([{"_id":"x"}])"));
        }
        CPPUNIT_ASSERT_EQUAL(std::string("{\"_id\":\"1\",\"n\":1}\n{\"_id\":\"3\",\"n\":3}\n"), read_text(out));
        CPPUNIT_ASSERT_EQUAL(size_t(1), count_files(out.parent_path()));

        // a temporary file left by a process that died mid-run is removed by the next run
        pid_t child = ::fork();
        if (child == 0) ::_exit(0);
        ::waitpid(child, nullptr, 0);
        const fs::path stale = out.parent_path() / (".people.ndjson.tmp-" + std::to_string(child) + "-0");
        write_text(stale, "{\"_id\":\"half");
        const fs::path unrelated = out.parent_path() / ".other.tmp-1-0";
        write_text(unrelated, "keep");
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(plugin, "file", sink, host, true));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(plugin, "file", sink, host, true, true));
        CPPUNIT_ASSERT(!fs::exists(stale));
        CPPUNIT_ASSERT(fs::exists(unrelated));
        CPPUNIT_ASSERT_EQUAL(std::string(""), read_text(out));  // an empty full run: an empty file
    }

    void testFileSinkFormatsAndAppend() {
        FakeHost host;
        LoadedPlugin plugin(plugin_path("sluice-sink-file"), host);
        const fs::path csv = (*dir_) / "people.csv";
        auto sink = plugin.create(SLUICE_KIND_SINK, "file",
                                  R"({"type":"file","path":")" + csv.string() + R"(","columns":["_id","name"]})");
        CPPUNIT_ASSERT_MESSAGE(host.last_error(), sink.valid());
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(plugin, "file", sink, host, true));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(R"([{"_id":"1","name":"A, B"}])"));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(plugin, "file", sink, host, true, true));
        CPPUNIT_ASSERT_EQUAL(std::string("_id,name\r\n1,\"A, B\"\r\n"), read_text(csv));
        // an incremental run appends (atomically, still) without a second header
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(plugin, "file", sink, host, false));
        CPPUNIT_ASSERT_EQUAL(kOk, sink.write(R"([{"_id":"2","name":"C"}])"));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(plugin, "file", sink, host, false, true));
        CPPUNIT_ASSERT_EQUAL(std::string("_id,name\r\n1,\"A, B\"\r\n2,C\r\n"), read_text(csv));

        const fs::path json = (*dir_) / "people.json";
        auto array = plugin.create(SLUICE_KIND_SINK, "file", R"({"type":"file","path":")" + json.string() + "\"}");
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(plugin, "file", array, host, true));
        CPPUNIT_ASSERT_EQUAL(kOk, array.write(R"([{"_id":"1"},{"_id":"2"}])"));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(plugin, "file", array, host, true, true));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), sluice::parse_json(read_text(json)).Size());
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(plugin, "file", array, host, false));
        CPPUNIT_ASSERT_EQUAL(kOk, array.write(R"([{"_id":"3"}])"));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(plugin, "file", array, host, false, true));
        JsonDocument all = sluice::parse_json(read_text(json));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), all.Size());
        CPPUNIT_ASSERT_EQUAL(std::string("3"), str(all[2]["_id"]));

        // an empty completed full run still writes a valid (empty) document
        CPPUNIT_ASSERT_EQUAL(kOk, begin_run(plugin, "file", array, host, true));
        CPPUNIT_ASSERT_EQUAL(kOk, end_run(plugin, "file", array, host, true, true));
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), sluice::parse_json(read_text(json)).Size());

        auto bad = plugin.create(SLUICE_KIND_SINK, "file", R"({"type":"file","path":")" + dir_->path().string() + "\"}");
        CPPUNIT_ASSERT(!bad.valid());
        CPPUNIT_ASSERT_MESSAGE(host.last_error(), host.last_error().find("directory") != std::string::npos);
    }

private:
    static size_t count_files(const fs::path& dir) {
        size_t n = 0;
        for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file();
        return n;
    }

    std::unique_ptr<TempDir> dir_;
    std::unique_ptr<FakeHost> host_;
    std::unique_ptr<LoadedPlugin> csv_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(CsvFileTest);

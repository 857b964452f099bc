#include "conformance_suite.hpp"

#include <algorithm>
#include <set>
#include <thread>

namespace sluice::conformance {

namespace {

int32_t append_chunk(void* user, const char* data, size_t size) {
    static_cast<std::string*>(user)->append(data, size);
    return 0;
}

struct ChunkSink {
    std::vector<std::string>* chunks;
    size_t stop_after;
    static int32_t receive(void* user, const char* data, size_t size) {
        auto* self = static_cast<ChunkSink*>(user);
        self->chunks->emplace_back(data, size);
        return (self->stop_after && self->chunks->size() >= self->stop_after) ? 1 : 0;
    }
};

JsonDocument parse(const std::string& text) {
    JsonDocument doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
    CPPUNIT_ASSERT_MESSAGE("not JSON: " + text, !doc.HasParseError());
    return doc;
}

int64_t num(const Json& object, const char* name) {
    const Json* v = find_member(object, name);
    CPPUNIT_ASSERT_MESSAGE(std::string("missing integer ") + name + " in " + to_json(object), v && v->IsInt64());
    return v->GetInt64();
}

std::string str(const Json& object, const char* name) {
    const Json* v = find_member(object, name);
    CPPUNIT_ASSERT_MESSAGE(std::string("missing string ") + name + " in " + to_json(object), v && v->IsString());
    return std::string(as_view(*v));
}

bool isNull(const Json& object, const char* name) {
    const Json* v = find_member(object, name);
    return v && v->IsNull();
}

std::vector<int64_t> offsets(const JsonDocument& array) {
    std::vector<int64_t> out;
    for (const Json& e : array.GetArray()) out.push_back(num(e, "_updated"));
    return out;
}

std::vector<std::string> ids(const JsonDocument& array) {
    std::vector<std::string> out;
    for (const Json& e : array.GetArray()) out.push_back(str(e, "_id"));
    return out;
}

std::vector<std::string> sortedIds(const JsonDocument& array) {
    std::vector<std::string> out = ids(array);
    std::sort(out.begin(), out.end());
    return out;
}

std::string json_escape_for_test(const std::string& text) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    return std::string(buffer.GetString(), buffer.GetSize());
}

using Ids = std::vector<std::string>;
using Offsets = std::vector<int64_t>;

std::string entities(int from, int to, const std::string& prefix = "e", const std::string& extra = "") {
    std::string out = "[";
    for (int i = from; i < to; ++i) {
        if (i > from) out += ',';
        out += "{\"_id\":\"" + prefix + std::to_string(i) + "\",\"n\":" + std::to_string(i) + extra + "}";
    }
    return out + "]";
}

}  // namespace

// ---- StoreClient ------------------------------------------------------------------------------

StoreClient::StoreClient(testing::LoadedPlugin& plugin, testing::FakeHost& host, const std::string& type,
                         const std::string& config)
    : host_(&host),
      instance_(plugin.create(SLUICE_KIND_STORAGE, type, config)),
      vtable_(static_cast<const sluice_storage_vtable*>(plugin.component(SLUICE_KIND_STORAGE, type)->vtable)) {}

int32_t StoreClient::writeRaw(const std::string& dataset, const std::string& batch, const std::string& options,
                              std::string& out) {
    sluice_batch raw = testing::Instance::make_batch(batch);
    return vtable_->write(instance_.handle(), host_->context(), dataset.c_str(), &raw, options.c_str(),
                          &append_chunk, &out);
}

int32_t StoreClient::readRaw(const std::string& query, std::vector<std::string>& chunks, size_t stop_after) {
    ChunkSink sink{&chunks, stop_after};
    return vtable_->read(instance_.handle(), host_->context(), query.c_str(), &ChunkSink::receive, &sink);
}

int32_t StoreClient::readWith(const std::string& query, sluice_receive_fn receive, void* user) {
    return vtable_->read(instance_.handle(), host_->context(), query.c_str(), receive, user);
}

int32_t StoreClient::commandRaw(const std::string& command, std::string& out) {
    return vtable_->command(instance_.handle(), host_->context(), command.c_str(), &append_chunk, &out);
}

JsonDocument StoreClient::write(const std::string& dataset, const std::string& batch, const std::string& options) {
    std::string out;
    int32_t status = writeRaw(dataset, batch, options, out);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("write failed: " + host_->last_error(), int32_t(SLUICE_OK), status);
    return parse(out);
}

JsonDocument StoreClient::read(const std::string& query) {
    std::vector<std::string> chunks;
    int32_t status = readRaw(query, chunks);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("read failed: " + host_->last_error(), int32_t(SLUICE_OK), status);
    CPPUNIT_ASSERT_MESSAGE("a read delivers at least one chunk", !chunks.empty());
    JsonDocument all;
    all.SetArray();
    for (const std::string& chunk : chunks) {
        JsonDocument doc = parse(chunk);
        CPPUNIT_ASSERT(doc.IsArray());
        CPPUNIT_ASSERT_MESSAGE("chunk too large", doc.Size() <= 1000);
        for (Json& e : doc.GetArray()) all.PushBack(Json(e, all.GetAllocator()), all.GetAllocator());
    }
    return all;
}

JsonDocument StoreClient::lookup(const std::string& dataset, const std::string& property, const std::string& values) {
    std::string out;
    int32_t status = vtable_->lookup(instance_.handle(), host_->context(), dataset.c_str(), property.c_str(),
                                     values.c_str(), &append_chunk, &out);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("lookup failed: " + host_->last_error(), int32_t(SLUICE_OK), status);
    JsonDocument doc = parse(out);
    CPPUNIT_ASSERT(doc.IsArray());
    return doc;
}

JsonDocument StoreClient::command(const std::string& command) {
    std::string out;
    int32_t status = commandRaw(command, out);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("command " + command + " failed: " + host_->last_error(), int32_t(SLUICE_OK),
                                 status);
    return parse(out);
}

// ---- fixture ------------------------------------------------------------------------------------

void StorageConformance::setUp() {
    host_ = std::make_unique<testing::FakeHost>();
    store_ = openStore();
    CPPUNIT_ASSERT_MESSAGE("store did not open: " + host_->last_error(), store_ && store_->valid());
}

void StorageConformance::tearDown() {
    store_.reset();
    host_.reset();
}

// The JSON-push example of the reference (§1.5): a=0 b=1; a=2 (prev 0) c=3 d=4; a back=5 (prev 2);
// b re-posted unchanged consumes nothing; c deleted=6 (prev 3).
void StorageConformance::testWriteRuleSequence() {
    StoreClient& s = *store_;
    JsonDocument r = s.write("people", R"([{"_id":"a","v":1},{"_id":"b","v":1}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(r, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "unchanged"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "last_offset"));

    r = s.write("people", R"([{"_id":"a","v":2},{"_id":"b","v":1},{"_id":"c","v":1},{"_id":"d","v":1}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(r, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "unchanged"));
    CPPUNIT_ASSERT_EQUAL(int64_t(4), num(r, "last_offset"));

    r = s.write("people", R"([{"_id":"a","v":1},{"_id":"b","v":1}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "unchanged"));

    r = s.write("people", R"([{"_id":"c","v":1,"_deleted":true}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(6), num(r, "last_offset"));

    JsonDocument all = s.read(R"({"dataset":"people"})");
    CPPUNIT_ASSERT(Offsets({0, 1, 2, 3, 4, 5, 6}) == offsets(all));
    CPPUNIT_ASSERT(Ids({"a", "b", "a", "c", "d", "a", "c"}) == ids(all));
    CPPUNIT_ASSERT(isNull(all[0], "_previous"));
    CPPUNIT_ASSERT(isNull(all[1], "_previous"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(all[2], "_previous"));
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(all[5], "_previous"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(all[6], "_previous"));
    CPPUNIT_ASSERT(all[6]["_deleted"].IsTrue());
    CPPUNIT_ASSERT(all[0]["_deleted"].IsFalse());
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(all[2], "v"));

    // _hash is sluice::entity_hash of the content; _ts is "now" in microseconds.
    for (const Json& e : all.GetArray()) {
        CPPUNIT_ASSERT_EQUAL(entity_hash(e), str(e, "_hash"));
        int64_t ts = num(e, "_ts");
        CPPUNIT_ASSERT(ts > 1600000000000000LL && ts < 4000000000000000LL);
    }
    // The same content gives the same hash whichever version holds it (a=0 and a=5).
    CPPUNIT_ASSERT_EQUAL(str(all[0], "_hash"), str(all[5], "_hash"));
}

void StorageConformance::testKeyOrderAndReservedFieldsIgnored() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"x","a":1,"b":{"p":1,"q":[1,2]}}])");
    JsonDocument r = s.write("d", R"([{"b":{"q":[1,2],"p":1},"a":1,"_id":"x"}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "unchanged"));
    // Reserved root fields other than _id/_deleted change nothing and are not stored as given.
    r = s.write("d", R"([{"_id":"x","a":1,"b":{"p":1,"q":[1,2]},"_updated":99,"_ts":5,"_hash":"zz",
                          "_previous":7,"_custom":"ignored","_deleted":false}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "written"));
    // List order is content: a different order is a change.
    r = s.write("d", R"([{"_id":"x","a":1,"b":{"p":1,"q":[2,1]},"_custom":"dropped"}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "written"));
    JsonDocument all = s.read(R"({"dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), all.Size());
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(all[1], "_updated"));
    CPPUNIT_ASSERT(find_member(all[1], "_custom") == nullptr);
    // A nested "_" key is ordinary content.
    r = s.write("d", R"([{"_id":"x","a":1,"b":{"p":1,"q":[2,1],"_nested":true}}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "written"));
    JsonDocument got = s.command(R"({"op":"get","dataset":"d","id":"x"})");
    CPPUNIT_ASSERT(got["b"]["_nested"].IsTrue());
    // 1 and 1.0 are different values (Integer vs Float).
    r = s.write("d", R"([{"_id":"y","n":1}])");
    r = s.write("d", R"([{"_id":"y","n":1.0}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "written"));
}

void StorageConformance::testDeletedToggles() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"x","a":1}])");
    JsonDocument r = s.write("d", R"([{"_id":"x","a":1,"_deleted":true}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "written"));
    r = s.write("d", R"([{"_id":"x","a":1,"_deleted":true}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "written"));
    r = s.write("d", R"([{"_id":"x","a":1,"_deleted":false}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "written"));
    // Only `true` counts as deleted.
    r = s.write("d", R"([{"_id":"x","a":1,"_deleted":"yes"}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "written"));
    JsonDocument info = s.command(R"({"op":"info","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(info, "count"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(info, "deleted"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(info, "versions"));
}

void StorageConformance::testSameIdTwiceInOneBatch() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","v":0}])");
    JsonDocument r = s.write("d", R"([{"_id":"a","v":0},{"_id":"a","v":1},{"_id":"a","v":1},{"_id":"a","v":2}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(r, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(r, "unchanged"));
    JsonDocument all = s.read(R"({"dataset":"d"})");
    CPPUNIT_ASSERT(Offsets({0, 1, 2}) == offsets(all));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(all[1], "_previous"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(all[2], "_previous"));
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(all[2], "v"));
    // A new id twice in one batch.
    r = s.write("d", R"([{"_id":"n","v":0},{"_id":"n","v":1}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(r, "written"));
    JsonDocument n = s.command(R"({"op":"get","dataset":"d","id":"n"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(4), num(n, "_updated"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(n, "_previous"));
}

void StorageConformance::testForce() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","v":0}])");
    JsonDocument r = s.write("d", R"([{"_id":"a","v":0}])", R"({"force":true})");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "last_offset"));
    r = s.write("d", R"([{"_id":"a","v":0}])", R"({"force":false})");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "written"));
}

void StorageConformance::testInvalidBatchWritesNothing() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","v":0}])");
    std::string out;
    int32_t status = s.writeRaw("d", R"([{"_id":"b"},{"_id":"a","v":9},{"v":1}])", "{}", out);
    CPPUNIT_ASSERT(status != SLUICE_OK);
    CPPUNIT_ASSERT_MESSAGE(s.host().last_error(), s.host().last_error().find("batch index 2") != std::string::npos);
    status = s.writeRaw("d", R"([{"_id":5}])", "{}", out);
    CPPUNIT_ASSERT(status != SLUICE_OK);
    CPPUNIT_ASSERT(s.host().last_error().find("batch index 0") != std::string::npos);
    status = s.writeRaw("d", R"({"_id":"x"})", "{}", out);
    CPPUNIT_ASSERT(status != SLUICE_OK);
    JsonDocument all = s.read(R"({"dataset":"d"})");
    CPPUNIT_ASSERT(Ids({"a"}) == ids(all));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(all[0], "v"));
    // A failed first write creates no dataset.
    status = s.writeRaw("fresh", R"([{"nope":1}])", "{}", out);
    CPPUNIT_ASSERT(status != SLUICE_OK);
    CPPUNIT_ASSERT(s.command(R"({"op":"info","dataset":"fresh"})").IsNull());
    // The next successful write continues at offset 1.
    JsonDocument r = s.write("d", R"([{"_id":"b"}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "last_offset"));
}

void StorageConformance::testReadSinceAndLimit() {
    StoreClient& s = *store_;
    s.write("d", entities(0, 10));
    JsonDocument r = s.read(R"({"dataset":"d","since":3})");
    CPPUNIT_ASSERT(Offsets({4, 5, 6, 7, 8, 9}) == offsets(r));
    r = s.read(R"({"dataset":"d","since":3,"limit":2})");
    CPPUNIT_ASSERT(Offsets({4, 5}) == offsets(r));
    r = s.read(R"({"dataset":"d","since":"7"})");  // continuation tokens arrive as strings
    CPPUNIT_ASSERT(Offsets({8, 9}) == offsets(r));
    r = s.read(R"({"dataset":"d","since":null,"limit":3})");
    CPPUNIT_ASSERT(Offsets({0, 1, 2}) == offsets(r));
    r = s.read(R"({"dataset":"d","since":9})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), r.Size());
    r = s.read(R"({"dataset":"d","since":-1,"limit":0})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), r.Size());
    // Paging by the last _updated seen reproduces the whole log exactly once.
    std::vector<int64_t> seen;
    std::string since = "null";
    for (int guard = 0; guard < 20; ++guard) {
        JsonDocument page = s.read(R"({"dataset":"d","limit":3,"since":)" + since + "}");
        if (page.Size() == 0) break;
        for (int64_t o : offsets(page)) seen.push_back(o);
        since = std::to_string(seen.back());
    }
    CPPUNIT_ASSERT(Offsets({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) == seen);
}

void StorageConformance::testReadChunksAndEarlyStop() {
    StoreClient& s = *store_;
    std::string big = entities(0, 2500);
    JsonDocument w = s.write("big", big);
    CPPUNIT_ASSERT_EQUAL(int64_t(2500), num(w, "written"));
    std::vector<std::string> chunks;
    CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), s.readRaw(R"({"dataset":"big"})", chunks));
    CPPUNIT_ASSERT(chunks.size() >= 3);
    int64_t expect = 0;
    for (const std::string& c : chunks) {
        JsonDocument doc = parse(c);
        CPPUNIT_ASSERT(doc.Size() <= 1000);
        for (const Json& e : doc.GetArray()) CPPUNIT_ASSERT_EQUAL(expect++, num(e, "_updated"));
    }
    CPPUNIT_ASSERT_EQUAL(int64_t(2500), expect);
    // The reader stops after the first chunk: no more are delivered.
    chunks.clear();
    CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), s.readRaw(R"({"dataset":"big"})", chunks, 1));
    CPPUNIT_ASSERT_EQUAL(size_t(1), chunks.size());
    // A limit spanning chunks.
    JsonDocument r = s.read(R"({"dataset":"big","since":100,"limit":1500})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1500), r.Size());
    CPPUNIT_ASSERT_EQUAL(int64_t(101), num(r[0], "_updated"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1600), num(r[1499], "_updated"));
    // history=false over many chunks where most versions are superseded.
    s.write("big", entities(0, 2400, "e", ",\"changed\":true"));
    r = s.read(R"({"dataset":"big","history":false})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2500), r.Size());
    CPPUNIT_ASSERT_EQUAL(int64_t(2400), num(r[0], "_updated"));  // e2400 is the oldest latest version
    CPPUNIT_ASSERT_EQUAL(int64_t(4899), num(r[2499], "_updated"));
}

void StorageConformance::testReadHistoryDeletedReverse() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","v":0},{"_id":"b","v":0},{"_id":"c","v":0}])");
    s.write("d", R"([{"_id":"a","v":1},{"_id":"b","_deleted":true}])");  // 3, 4
    JsonDocument r = s.read(R"({"dataset":"d","history":false})");
    CPPUNIT_ASSERT(Offsets({2, 3, 4}) == offsets(r));
    r = s.read(R"({"dataset":"d","history":false,"deleted":false})");
    CPPUNIT_ASSERT(Offsets({2, 3}) == offsets(r));
    r = s.read(R"({"dataset":"d","deleted":false})");
    CPPUNIT_ASSERT(Offsets({0, 1, 2, 3}) == offsets(r));  // old live version of b is still history
    r = s.read(R"({"dataset":"d","reverse":true})");
    CPPUNIT_ASSERT(Offsets({4, 3, 2, 1, 0}) == offsets(r));
    r = s.read(R"({"dataset":"d","reverse":true,"limit":2})");
    CPPUNIT_ASSERT(Offsets({4, 3}) == offsets(r));
    r = s.read(R"({"dataset":"d","reverse":true,"since":3})");  // reverse: offsets below `since`
    CPPUNIT_ASSERT(Offsets({2, 1, 0}) == offsets(r));
    r = s.read(R"({"dataset":"d","reverse":true,"history":false,"deleted":false})");
    CPPUNIT_ASSERT(Offsets({3, 2}) == offsets(r));
    r = s.read(R"({"dataset":"d","history":false,"since":2})");
    CPPUNIT_ASSERT(Offsets({3, 4}) == offsets(r));
}

void StorageConformance::testUnknownDataset() {
    StoreClient& s = *store_;
    std::vector<std::string> chunks;
    CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), s.readRaw(R"({"dataset":"nope"})", chunks));
    CPPUNIT_ASSERT_EQUAL(size_t(1), chunks.size());
    CPPUNIT_ASSERT_EQUAL(std::string("[]"), chunks[0]);
    CPPUNIT_ASSERT(s.command(R"({"op":"info","dataset":"nope"})").IsNull());
    CPPUNIT_ASSERT(s.command(R"({"op":"get","dataset":"nope","id":"a"})").IsNull());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.lookup("nope", "_id", R"(["a"])").Size());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.lookup("nope", "x", R"([1])").Size());
    JsonDocument d = s.command(R"({"op":"delete","dataset":"nope"})");
    CPPUNIT_ASSERT(d["deleted"].IsFalse());
    // A read query without a dataset is an error.
    chunks.clear();
    CPPUNIT_ASSERT(s.readRaw(R"({"since":1})", chunks) != SLUICE_OK);
}

void StorageConformance::testLookupById() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","v":0},{"_id":"b","v":0},{"_id":"c","v":0}])");
    s.write("d", R"([{"_id":"a","v":1},{"_id":"c","_deleted":true}])");
    JsonDocument r = s.lookup("d", "_id", R"(["a","c","zz",null,5])");
    CPPUNIT_ASSERT(Ids({"a"}) == ids(r));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r[0], "v"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(r[0], "_updated"));
    r = s.lookup("d", "_id", "[]");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), r.Size());
}

void StorageConformance::testLookupByProperty() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","k":"x","n":1},{"_id":"b","k":"y","n":2},{"_id":"c","k":"x","n":3},
                     {"_id":"d","k":"z","n":1.0},{"_id":"e","k":true},{"_id":"f","k":{"o":1,"p":2}}])");
    CPPUNIT_ASSERT(Ids({"a", "c"}) == sortedIds(s.lookup("d", "k", R"(["x"])")));
    CPPUNIT_ASSERT(Ids({"a", "b", "c"}) == sortedIds(s.lookup("d", "k", R"(["x","y","missing"])")));
    CPPUNIT_ASSERT(Ids({"a", "d"}) == sortedIds(s.lookup("d", "n", R"([1])")));  // numbers by value
    CPPUNIT_ASSERT(Ids({"e"}) == sortedIds(s.lookup("d", "k", R"([true])")));
    CPPUNIT_ASSERT(Ids({"f"}) == sortedIds(s.lookup("d", "k", R"([{"p":2,"o":1}])")));
    CPPUNIT_ASSERT(Ids({}) == sortedIds(s.lookup("d", "k", R"([{"o":1}])")));  // equality, not containment
    CPPUNIT_ASSERT(Ids({}) == sortedIds(s.lookup("d", "k", R"(["X"])")));
    // The index follows later writes.
    s.write("d", R"([{"_id":"g","k":"x"},{"_id":"a","k":"w"}])");
    CPPUNIT_ASSERT(Ids({"c", "g"}) == sortedIds(s.lookup("d", "k", R"(["x"])")));
    CPPUNIT_ASSERT(Ids({"a"}) == sortedIds(s.lookup("d", "k", R"(["w"])")));
    // Results are whole stored versions.
    JsonDocument r = s.lookup("d", "k", R"(["w"])");
    CPPUNIT_ASSERT_EQUAL(entity_hash(r[0]), str(r[0], "_hash"));
}

void StorageConformance::testLookupListOverlapDottedAndNulls() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","tags":["x","y"],"ref":{"id":"r1"}},
                     {"_id":"b","tags":["y","z"],"ref":{"id":"r2"}},
                     {"_id":"c","tags":[],"ref":null},
                     {"_id":"d","tags":null,"ref":{"id":null}},
                     {"_id":"e","tags":"x"},
                     {"_id":"f","$ids":["~:crm:1","~:erp:9"]}])");
    CPPUNIT_ASSERT(Ids({"a", "e"}) == sortedIds(s.lookup("d", "tags", R"(["x"])")));
    CPPUNIT_ASSERT(Ids({"a", "b"}) == sortedIds(s.lookup("d", "tags", R"(["y"])")));
    CPPUNIT_ASSERT(Ids({"a", "b", "e"}) == sortedIds(s.lookup("d", "tags", R"(["x","z"])")));
    CPPUNIT_ASSERT(Ids({"a", "b", "e"}) == sortedIds(s.lookup("d", "tags", R"([["x","z"]])")));  // a list value
    CPPUNIT_ASSERT(Ids({"a"}) == sortedIds(s.lookup("d", "ref.id", R"(["r1"])")));
    CPPUNIT_ASSERT(Ids({}) == sortedIds(s.lookup("d", "ref.id", R"([null])")));
    CPPUNIT_ASSERT(Ids({}) == sortedIds(s.lookup("d", "tags", R"([null])")));
    CPPUNIT_ASSERT(Ids({}) == sortedIds(s.lookup("d", "ref", R"([null])")));
    CPPUNIT_ASSERT(Ids({"f"}) == sortedIds(s.lookup("d", "$ids", R"(["~:erp:9"])")));
}

void StorageConformance::testLookupSeesOnlyLatestLiveVersions() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","k":"old"},{"_id":"b","k":"old"}])");
    CPPUNIT_ASSERT(Ids({"a", "b"}) == sortedIds(s.lookup("d", "k", R"(["old"])")));  // index built now
    s.write("d", R"([{"_id":"a","k":"new"},{"_id":"b","k":"old","_deleted":true}])");
    CPPUNIT_ASSERT(Ids({}) == sortedIds(s.lookup("d", "k", R"(["old"])")));
    CPPUNIT_ASSERT(Ids({"a"}) == sortedIds(s.lookup("d", "k", R"(["new"])")));
    CPPUNIT_ASSERT(Ids({"a"}) == sortedIds(s.lookup("d", "_id", R"(["a","b"])")));
    s.write("d", R"([{"_id":"b","k":"old"}])");  // resurrected
    CPPUNIT_ASSERT(Ids({"b"}) == sortedIds(s.lookup("d", "k", R"(["old"])")));
    // Lookups in another dataset never see this one.
    s.write("other", R"([{"_id":"z","k":"old"}])");
    CPPUNIT_ASSERT(Ids({"b"}) == sortedIds(s.lookup("d", "k", R"(["old"])")));
}

void StorageConformance::testListInfoGet() {
    StoreClient& s = *store_;
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.command(R"({"op":"list"})").Size());
    s.write("one", R"([{"_id":"a"},{"_id":"b"},{"_id":"c","_deleted":true}])");
    s.write("one", R"([{"_id":"a","v":2}])");
    s.write("two", R"([{"_id":"x"}])");
    JsonDocument list = s.command(R"({"op":"list"})");
    CPPUNIT_ASSERT(Ids({"one", "two"}) == sortedIds(list));
    JsonDocument info = s.command(R"({"op":"info","dataset":"one"})");
    CPPUNIT_ASSERT_EQUAL(std::string("one"), str(info, "_id"));
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(info, "count"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(info, "deleted"));
    CPPUNIT_ASSERT_EQUAL(int64_t(4), num(info, "versions"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(info, "last_offset"));
    CPPUNIT_ASSERT_EQUAL(size_t(36), str(info, "generation").size());
    CPPUNIT_ASSERT(info["populated"].IsFalse());
    JsonDocument got = s.command(R"({"op":"get","dataset":"one","id":"a"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(got, "_updated"));
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(got, "v"));
    got = s.command(R"({"op":"get","dataset":"one","id":"c"})");  // deleted included
    CPPUNIT_ASSERT(got["_deleted"].IsTrue());
    CPPUNIT_ASSERT(s.command(R"({"op":"get","dataset":"one","id":"zz"})").IsNull());
}

void StorageConformance::testDeleteAndRecreate() {
    StoreClient& s = *store_;
    s.write("d", entities(0, 5));
    s.write("d", R"([{"_id":"e1","k":"x"}])");
    s.lookup("d", "k", R"(["x"])");
    std::string generation = str(s.command(R"({"op":"info","dataset":"d"})"), "generation");
    JsonDocument info = s.command(R"({"op":"recreate","dataset":"d"})");
    CPPUNIT_ASSERT(info.IsObject());
    info = s.command(R"({"op":"info","dataset":"d"})");
    CPPUNIT_ASSERT(!info.IsNull());
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(info, "count"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(info, "versions"));
    CPPUNIT_ASSERT(isNull(info, "last_offset"));
    CPPUNIT_ASSERT(generation != str(info, "generation"));
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.read(R"({"dataset":"d"})").Size());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.lookup("d", "k", R"(["x"])").Size());
    JsonDocument r = s.write("d", R"([{"_id":"e1","n":1}])");  // was there before: new again
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "last_offset"));
    CPPUNIT_ASSERT(isNull(s.command(R"({"op":"get","dataset":"d","id":"e1"})"), "_previous"));

    JsonDocument del = s.command(R"({"op":"delete","dataset":"d"})");
    CPPUNIT_ASSERT(del["deleted"].IsTrue());
    CPPUNIT_ASSERT(s.command(R"({"op":"info","dataset":"d"})").IsNull());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.read(R"({"dataset":"d"})").Size());
    r = s.write("d", R"([{"_id":"e1","n":1}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "last_offset"));
}

void StorageConformance::testPopulated() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a"}])");
    s.command(R"({"op":"set_populated","dataset":"d","value":true})");
    CPPUNIT_ASSERT(s.command(R"({"op":"info","dataset":"d"})")["populated"].IsTrue());
    s.command(R"({"op":"set_populated","dataset":"d","value":false})");
    CPPUNIT_ASSERT(s.command(R"({"op":"info","dataset":"d"})")["populated"].IsFalse());
}

void StorageConformance::testCompactionKeepVersions() {
    StoreClient& s = *store_;
    for (int v = 0; v < 5; ++v)
        s.write("d", R"([{"_id":"a","v":)" + std::to_string(v) + R"(},{"_id":"b","v":)" + std::to_string(v / 3) + "}]");
    s.write("d", R"([{"_id":"c"}])");
    // a: 0,2,3,4,6  b: 1,5  c: 7
    CPPUNIT_ASSERT_EQUAL(int64_t(8), num(s.command(R"({"op":"info","dataset":"d"})"), "versions"));
    JsonDocument r = s.command(R"({"op":"compact","dataset":"d","keep_versions":2})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(r, "removed"));
    JsonDocument all = s.read(R"({"dataset":"d"})");
    CPPUNIT_ASSERT(Ids({"b", "a", "b", "a", "c"}) == ids(all));
    CPPUNIT_ASSERT(Offsets({1, 4, 5, 6, 7}) == offsets(all));
    JsonDocument a = s.lookup("d", "_id", R"(["a"])");
    CPPUNIT_ASSERT_EQUAL(int64_t(4), num(a[0], "v"));
    // keep_versions 1 keeps only the latest; 0 never removes a latest version.
    r = s.command(R"({"op":"compact","dataset":"d","keep_versions":0})");
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(r, "removed"));
    all = s.read(R"({"dataset":"d"})");
    CPPUNIT_ASSERT(Ids({"a", "b", "c"}) == sortedIds(all));
    // Offsets are not reused after compaction.
    JsonDocument w = s.write("d", R"([{"_id":"a","v":99}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(8), num(w, "last_offset"));
    CPPUNIT_ASSERT_EQUAL(int64_t(6), num(s.command(R"({"op":"get","dataset":"d","id":"a"})"), "_previous"));
    CPPUNIT_ASSERT_EQUAL(int64_t(4), num(s.command(R"({"op":"info","dataset":"d"})"), "versions"));
}

void StorageConformance::testCompactionOlderThan() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","v":0}])");
    s.write("d", R"([{"_id":"a","v":1}])");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int64_t cut = num(s.command(R"({"op":"get","dataset":"d","id":"a"})"), "_ts") + 10000;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    s.write("d", R"([{"_id":"a","v":2}])");
    s.write("d", R"([{"_id":"a","v":3}])");
    // Only non-latest versions older than the cut go: 0 and 1.
    JsonDocument r = s.command(R"({"op":"compact","dataset":"d","older_than_us":)" + std::to_string(cut) + "}");
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(r, "removed"));
    CPPUNIT_ASSERT(Offsets({2, 3}) == offsets(s.read(R"({"dataset":"d"})")));
    // Everything is older than "far future" but the latest version stays.
    r = s.command(R"({"op":"compact","dataset":"d","older_than_us":9000000000000000})");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "removed"));
    CPPUNIT_ASSERT(Offsets({3}) == offsets(s.read(R"({"dataset":"d"})")));
    // keep_versions and older_than_us together: beyond the last N *and* old enough.
    s.write("d", R"([{"_id":"a","v":4}])");
    s.write("d", R"([{"_id":"a","v":5}])");
    r = s.command(R"({"op":"compact","dataset":"d","keep_versions":2,"older_than_us":1})");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "removed"));
    r = s.command(R"({"op":"compact","dataset":"d","keep_versions":2,"older_than_us":9000000000000000})");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "removed"));
    CPPUNIT_ASSERT(Offsets({4, 5}) == offsets(s.read(R"({"dataset":"d"})")));
}

void StorageConformance::testDeleteUnseen() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","v":1},{"_id":"b","v":1},{"_id":"c","v":1},{"_id":"gone","_deleted":true}])");
    // A full run sees a (unchanged) and b (changed) and writes a new id e, in two batches.
    s.write("d", R"([{"_id":"a","v":1}])", R"({"run":"r1"})");
    s.write("d", R"([{"_id":"b","v":2},{"_id":"e","v":1}])", R"({"run":"r1"})");
    // Another run's marks do not count for r1.
    s.write("d", R"([{"_id":"c","v":1}])", R"({"run":"r2"})");
    JsonDocument r = s.command(R"({"op":"delete_unseen","dataset":"d","run":"r1"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(r, "deleted"));
    JsonDocument c = s.command(R"({"op":"get","dataset":"d","id":"c"})");
    CPPUNIT_ASSERT(c["_deleted"].IsTrue());
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(c, "v"));  // the tombstone keeps the content
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(c, "_previous"));
    CPPUNIT_ASSERT_EQUAL(entity_hash(c), str(c, "_hash"));
    JsonDocument gone = s.command(R"({"op":"get","dataset":"d","id":"gone"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(gone, "_updated"));  // already deleted: untouched
    JsonDocument live = s.read(R"({"dataset":"d","history":false,"deleted":false})");
    CPPUNIT_ASSERT(Ids({"a", "b", "e"}) == sortedIds(live));
    // r1 is forgotten: running it again deletes everything not seen (nothing was seen).
    r = s.command(R"({"op":"delete_unseen","dataset":"d","run":"r1"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(r, "deleted"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(s.command(R"({"op":"info","dataset":"d"})"), "count"));
    // Writing a tombstone that equals the current one is unchanged.
    JsonDocument w = s.write("d", R"([{"_id":"c","v":1,"_deleted":true}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(w, "written"));
}

// Circuit breakers: staged writes are invisible (read, lookup, get, info counts, offsets) until
// stage_commit appends them in staged order with the held state; the write rule sees them.
void StorageConformance::testStageCommit() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","v":1},{"_id":"b","v":1}])");
    JsonDocument w = s.write("d", R"([{"_id":"a","v":2},{"_id":"b","v":1},{"_id":"c","v":1},{"_id":"a","v":3}])",
                             R"({"stage":true,"state":{"key":"pipe:p","value":"9"}})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(w, "written"));  // a:2, c:1, a:3 (b unchanged)
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(w, "unchanged"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(w, "staged"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(w, "last_offset"));  // the committed log did not move
    // Compared with the newest staged version: a:3 again is unchanged, a:2 is a change.
    w = s.write("d", R"([{"_id":"a","v":3}])", R"({"stage":true})");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(w, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(w, "staged"));
    // Invisible: reads, lookups, get, counts, and the held state.
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), s.read(R"({"dataset":"d"})").Size());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.lookup("d", "_id", R"(["c"])").Size());
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(s.command(R"({"op":"get","dataset":"d","id":"a"})"), "v"));
    JsonDocument info = s.command(R"({"op":"info","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(info, "count"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(info, "staged"));
    CPPUNIT_ASSERT(info["circuit_breaker"].IsNull());
    CPPUNIT_ASSERT(s.command(R"({"op":"state_get","key":"pipe:p"})").IsNull());
    // An uncommitted read shows them after the log, numbered as a commit will number them.
    JsonDocument all = s.read(R"({"dataset":"d","uncommitted":true})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(5), all.Size());
    CPPUNIT_ASSERT_EQUAL(int64_t(4), num(all[4], "_updated"));
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(all[4], "_previous"));
    JsonDocument latest = s.read(R"({"dataset":"d","uncommitted":true,"history":false,"since":2})");
    CPPUNIT_ASSERT(Ids({"a", "c"}) == sortedIds(latest));
    // Commit: offsets 2.., _previous chains, counts, state.
    JsonDocument c = s.command(R"({"op":"stage_commit","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(c, "committed"));
    JsonDocument log = s.read(R"({"dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(5), log.Size());
    CPPUNIT_ASSERT_EQUAL(std::string("a"), str(log[2], "_id"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(log[2], "_previous"));
    CPPUNIT_ASSERT(log[3]["_previous"].IsNull());
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(log[4], "_previous"));
    CPPUNIT_ASSERT_EQUAL(entity_hash(log[4]), str(log[4], "_hash"));
    JsonDocument a = s.command(R"({"op":"get","dataset":"d","id":"a"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(a, "v"));
    CPPUNIT_ASSERT_EQUAL(int64_t(4), num(a, "_updated"));
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), s.lookup("d", "_id", R"(["c"])").Size());
    info = s.command(R"({"op":"info","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(info, "count"));
    CPPUNIT_ASSERT_EQUAL(int64_t(5), num(info, "versions"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(info, "staged"));
    CPPUNIT_ASSERT_EQUAL(std::string("9"), std::string(s.command(R"({"op":"state_get","key":"pipe:p"})").GetString()));
    // The stage is empty again: the next staged write starts after the new end.
    s.write("d", R"([{"_id":"b","_deleted":true}])", R"({"stage":true})");
    s.command(R"({"op":"stage_commit","dataset":"d"})");
    info = s.command(R"({"op":"info","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(info, "count"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(info, "deleted"));
    CPPUNIT_ASSERT_EQUAL(int64_t(5), num(info, "last_offset"));
}

void StorageConformance::testStageTripAndRollback() {
    StoreClient& s = *store_;
    s.write("d", R"([{"_id":"a","v":1},{"_id":"b","v":1},{"_id":"c","v":1}])", R"({"state":{"key":"pipe:p","value":"1"}})");
    // A staged full run: sees a (changed), then deletion tracking stages tombstones for b and c.
    s.write("d", R"([{"_id":"a","v":2}])", R"({"stage":true,"run":"r1","state":{"key":"pipe:p","value":"2"}})");
    JsonDocument d = s.command(R"({"op":"delete_unseen","dataset":"d","run":"r1","stage":true})");
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(d, "deleted"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(d, "staged"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(s.command(R"({"op":"info","dataset":"d"})"), "count"));
    JsonDocument t = s.command(R"({"op":"stage_trip","dataset":"d","info":{"pipe":"p","reason":"too many"}})");
    CPPUNIT_ASSERT_EQUAL(std::string("too many"), str(t["circuit_breaker"], "reason"));
    std::string out;
    CPPUNIT_ASSERT(store_->commandRaw(R"({"op":"stage_trip","dataset":"d"})", out) != SLUICE_OK);
    if (auto again = reopenStore()) store_ = std::move(again);  // a restart keeps the stage and the trip
    StoreClient& s2 = *store_;
    JsonDocument info = s2.command(R"({"op":"info","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(info, "staged"));
    CPPUNIT_ASSERT_EQUAL(std::string("p"), str(info["circuit_breaker"], "pipe"));
    JsonDocument r = s2.command(R"({"op":"stage_rollback","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(r, "discarded"));
    info = s2.command(R"({"op":"info","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(info, "staged"));
    CPPUNIT_ASSERT(info["circuit_breaker"].IsNull());
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(info, "count"));
    CPPUNIT_ASSERT_EQUAL(int64_t(2), num(info, "last_offset"));
    CPPUNIT_ASSERT_EQUAL(std::string("1"), std::string(s2.command(R"({"op":"state_get","key":"pipe:p"})").GetString()));
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), s2.read(R"({"dataset":"d","uncommitted":true})").Size());
    // Unknown datasets: nothing to commit or discard.
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(s2.command(R"({"op":"stage_commit","dataset":"nope"})"), "committed"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(s2.command(R"({"op":"stage_rollback","dataset":"nope"})"), "discarded"));
    // recreate empties the stage and clears the trip.
    s2.write("d", R"([{"_id":"z"}])", R"({"stage":true})");
    s2.command(R"({"op":"stage_trip","dataset":"d","info":{"reason":"x"}})");
    info = s2.command(R"({"op":"recreate","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(info, "staged"));
    CPPUNIT_ASSERT(info["circuit_breaker"].IsNull());
}

void StorageConformance::testStateCommittedWithBatch() {
    StoreClient& s = *store_;
    JsonDocument w = s.write("d", entities(0, 3), R"({"state":{"key":"pipe:p1:offset","value":"3"}})");
    CPPUNIT_ASSERT_EQUAL(int64_t(3), num(w, "written"));
    JsonDocument v = s.command(R"({"op":"state_get","key":"pipe:p1:offset"})");
    CPPUNIT_ASSERT_EQUAL(std::string("3"), std::string(v.GetString()));
    // An all-unchanged batch still commits the state.
    s.write("d", entities(0, 3), R"({"state":{"key":"pipe:p1:offset","value":{"since":6,"n":[1]}}})");
    v = s.command(R"({"op":"state_get","key":"pipe:p1:offset"})");
    CPPUNIT_ASSERT(v.IsObject());
    CPPUNIT_ASSERT_EQUAL(int64_t(6), num(v, "since"));
    // An empty batch commits state too.
    s.write("d", "[]", R"({"state":{"key":"pipe:p1:offset","value":7}})");
    CPPUNIT_ASSERT_EQUAL(7, s.command(R"({"op":"state_get","key":"pipe:p1:offset"})").GetInt());
}

void StorageConformance::testFailedBatchLeavesStateUnchanged() {
    StoreClient& s = *store_;
    s.write("d", entities(0, 2), R"({"state":{"key":"pipe:p:offset","value":"2"}})");
    std::string out;
    int32_t status = s.writeRaw("d", R"([{"_id":"new1"},{"bad":true}])",
                                R"({"state":{"key":"pipe:p:offset","value":"4"}})", out);
    CPPUNIT_ASSERT(status != SLUICE_OK);
    CPPUNIT_ASSERT_EQUAL(std::string("2"), std::string(s.command(R"({"op":"state_get","key":"pipe:p:offset"})").GetString()));
    CPPUNIT_ASSERT(s.command(R"({"op":"get","dataset":"d","id":"new1"})").IsNull());
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(s.command(R"({"op":"info","dataset":"d"})"), "last_offset"));
    // A malformed state option also fails the whole write.
    status = s.writeRaw("d", R"([{"_id":"new2"}])", R"({"state":{"value":"9"}})", out);
    CPPUNIT_ASSERT(status != SLUICE_OK);
    CPPUNIT_ASSERT(s.command(R"({"op":"get","dataset":"d","id":"new2"})").IsNull());
}

void StorageConformance::testStateOperations() {
    StoreClient& s = *store_;
    CPPUNIT_ASSERT(s.command(R"({"op":"state_get","key":"k"})").IsNull());
    s.command(R"({"op":"state_put","key":"pipe:a:offset","value":"12"})");
    s.command(R"({"op":"state_put","key":"pipe:b:offset","value":{"x":[1,2]}})");
    s.command(R"({"op":"state_put","key":"config:node","value":null})");
    s.command(R"({"op":"state_put","key":"pipe:a:offset","value":"13"})");
    CPPUNIT_ASSERT_EQUAL(std::string("13"), std::string(s.command(R"({"op":"state_get","key":"pipe:a:offset"})").GetString()));
    JsonDocument list = s.command(R"({"op":"state_list","prefix":"pipe:"})");
    CPPUNIT_ASSERT(list.IsObject());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), list.MemberCount());
    CPPUNIT_ASSERT_EQUAL(std::string("13"), std::string(list["pipe:a:offset"].GetString()));
    CPPUNIT_ASSERT_EQUAL(2, list["pipe:b:offset"]["x"][1].GetInt());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), s.command(R"({"op":"state_list","prefix":""})").MemberCount());
    // Prefixes are literal (no LIKE wildcards).
    s.command(R"({"op":"state_put","key":"a%b","value":1})");
    s.command(R"({"op":"state_put","key":"aXb","value":2})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), s.command(R"({"op":"state_list","prefix":"a%"})").MemberCount());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.command(R"({"op":"state_list","prefix":"a_"})").MemberCount());
    s.command(R"({"op":"state_delete","key":"pipe:a:offset"})");
    CPPUNIT_ASSERT(s.command(R"({"op":"state_get","key":"pipe:a:offset"})").IsNull());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), s.command(R"({"op":"state_list","prefix":"pipe:"})").MemberCount());
}

void StorageConformance::testStateHistory() {
    StoreClient& s = *store_;
    s.command(R"({"op":"state_put_history","key":"config:p1","value":{"v":1}})");
    s.command(R"({"op":"state_put_history","key":"config:p2","value":{"v":10}})");
    s.command(R"({"op":"state_put_history","key":"config:p1","value":{"v":2}})");
    s.command(R"({"op":"state_put_history","key":"config:p1","value":{"v":3}})");
    CPPUNIT_ASSERT_EQUAL(3, s.command(R"({"op":"state_get","key":"config:p1"})")["v"].GetInt());
    JsonDocument h = s.command(R"({"op":"state_history","key":"config:p1"})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), h.Size());
    for (rapidjson::SizeType i = 0; i < 3; ++i) CPPUNIT_ASSERT_EQUAL(int(i) + 1, h[i]["value"]["v"].GetInt());
    CPPUNIT_ASSERT(num(h[0], "offset") < num(h[1], "offset") && num(h[1], "offset") < num(h[2], "offset"));
    CPPUNIT_ASSERT(num(h[0], "ts") <= num(h[2], "ts"));
    JsonDocument since = s.command(R"({"op":"state_history","key":"config:p1","since":)" +
                                   std::to_string(num(h[0], "offset")) + R"(,"limit":1})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), since.Size());
    CPPUNIT_ASSERT_EQUAL(2, since[0]["value"]["v"].GetInt());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.command(R"({"op":"state_history","key":"none"})").Size());
    // A plain state_put leaves no history.
    s.command(R"({"op":"state_put","key":"config:p1","value":{"v":4}})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(3), s.command(R"({"op":"state_history","key":"config:p1"})").Size());
}

void StorageConformance::testUnknownOp() {
    StoreClient& s = *store_;
    std::string out;
    CPPUNIT_ASSERT(s.commandRaw(R"({"op":"frobnicate"})", out) != SLUICE_OK);
    CPPUNIT_ASSERT_EQUAL(std::string("unknown storage op 'frobnicate'"), s.host().last_error());
}

void StorageConformance::testConcurrentWritersGetDenseOffsets() {
    StoreClient& s = *store_;
    const int threads = 4, batches = 10, per_batch = 50;
    std::vector<std::thread> workers;
    std::vector<int32_t> statuses(threads, SLUICE_OK);
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int b = 0; b < batches; ++b) {
                std::string out;
                int base = (t * batches + b) * per_batch;
                int32_t st = s.writeRaw("shared", entities(base, base + per_batch, "t"), "{}", out);
                if (st != SLUICE_OK) statuses[t] = st;
                // And a concurrent read of a different dataset shape.
                std::vector<std::string> chunks;
                if (s.readRaw(R"({"dataset":"shared","limit":10})", chunks) != SLUICE_OK) statuses[t] = SLUICE_ERROR;
            }
        });
    }
    for (auto& w : workers) w.join();
    for (int32_t st : statuses) CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), st);
    JsonDocument all = s.read(R"({"dataset":"shared"})");
    const int total = threads * batches * per_batch;
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(total), all.Size());
    std::vector<int64_t> o = offsets(all);
    for (int i = 0; i < total; ++i) CPPUNIT_ASSERT_EQUAL(int64_t(i), o[i]);
    std::set<std::string> unique;
    for (const std::string& id : ids(all)) unique.insert(id);
    CPPUNIT_ASSERT_EQUAL(size_t(total), unique.size());
}

void StorageConformance::testDatasetIdsAreData() {
    StoreClient& s = *store_;
    const std::string nasty = R"(system:pump_execution:p1'; DROP TABLE x; --"\)";
    std::string escaped = json_escape_for_test(nasty);
    s.write(nasty, R"([{"_id":"a'b\"c"}])");
    JsonDocument info = s.command(R"({"op":"info","dataset":)" + escaped + "}");
    CPPUNIT_ASSERT_EQUAL(nasty, str(info, "_id"));
    JsonDocument r = s.read(R"({"dataset":)" + escaped + "}");
    CPPUNIT_ASSERT_EQUAL(std::string("a'b\"c"), str(r[0], "_id"));
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), s.lookup(nasty, "_id", R"(["a'b\"c"])").Size());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.read(R"({"dataset":"system:pump_execution:p1"})").Size());
    // Unicode ids and values survive.
    s.write("ü", R"([{"_id":"ø\u0001","v":"日本"}])");
    JsonDocument u = s.read(R"({"dataset":"ü"})");
    CPPUNIT_ASSERT_EQUAL(std::string("ø\x01"), str(u[0], "_id"));
    CPPUNIT_ASSERT_EQUAL(std::string("日本"), str(u[0], "v"));
}

void StorageConformance::testEmptyWriteCreatesDataset() {
    StoreClient& s = *store_;
    JsonDocument r = s.write("empty", "[]");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "written"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "unchanged"));
    CPPUNIT_ASSERT(isNull(r, "last_offset"));
    // A successful write, even of nothing, creates the dataset (a sink's first, empty run).
    JsonDocument info = s.command(R"({"op":"info","dataset":"empty"})");
    CPPUNIT_ASSERT(info.IsObject());
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(info, "count"));
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(info, "versions"));
    CPPUNIT_ASSERT(isNull(info, "last_offset"));
    CPPUNIT_ASSERT(Ids({"empty"}) == ids(s.command(R"({"op":"list"})")));
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.read(R"({"dataset":"empty"})").Size());
    r = s.write("empty", R"([{"_id":"a"}])");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(r, "last_offset"));
}

void StorageConformance::testLookupManyValues() {
    StoreClient& s = *store_;
    std::string batch = "[";
    for (int i = 0; i < 3000; ++i) {
        if (i) batch += ',';
        batch += "{\"_id\":\"e" + std::to_string(i) + "\",\"k\":\"v" + std::to_string(i % 1500) +
                 "\",\"n\":" + std::to_string(i) + "}";
    }
    s.write("d", batch + "]");
    // One call with 2000 values (1000 present, each held by two entities), never one per value.
    std::string values = "[";
    for (int i = 0; i < 2000; ++i) values += (i ? ",\"v" : "\"v") + std::to_string(i < 1000 ? i : 100000 + i) + "\"";
    JsonDocument r = s.lookup("d", "k", values + "]");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2000), r.Size());
    std::set<std::string> got;
    for (const std::string& id : ids(r)) got.insert(id);
    CPPUNIT_ASSERT_EQUAL(size_t(2000), got.size());
    CPPUNIT_ASSERT(got.count("e999") && got.count("e2499") && !got.count("e1000") && !got.count("e2500"));
    // Many ids.
    std::string wanted_ids = "[";
    for (int i = 0; i < 2500; ++i) wanted_ids += (i ? ",\"e" : "\"e") + std::to_string(i * 2) + "\"";
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1500), s.lookup("d", "_id", wanted_ids + "]").Size());
    // Numbers match numbers by value, never strings.
    CPPUNIT_ASSERT(Ids({"e5"}) == ids(s.lookup("d", "n", R"([5.0,"5","e5"])")));
    CPPUNIT_ASSERT(Ids({"e5", "e7"}) == sortedIds(s.lookup("d", "n", R"([7,5])")));
}

void StorageConformance::testValuesRoundTripExactly() {
    StoreClient& s = *store_;
    std::string big(300000, 'x');
    for (size_t i = 0; i < big.size(); i += 97) big[i] = 'y';
    const std::string entity = R"({"_id":"exact","big":")" + big +
        R"(","int":9007199254740993,"neg":-42,"float":0.1,"huge":1.5e300,"tiny":-2.5e-12,"zero":0,"t":true,
            "f":false,"nul":null,"str":"quote\" backslash\\ tab\t nl\n é 😀 \u0001","empty":"","":"empty key",
            "a.b":"dot key","nested":{"_x":[1,[2,[3,{"deep":{"deeper":"yes"}}]]],"o":{}},"list":[],
            "typed":["~t2015-01-02T03:04:05.123456789Z","~:crm:1","~f1.50","~bAAEC","~u531a379e-31bb-4ce1-8690-158dceb64be6"]})";
    JsonDocument w = s.write("d", "[" + entity + "]");
    CPPUNIT_ASSERT_EQUAL(int64_t(1), num(w, "written"));
    JsonDocument written = parse(entity);
    JsonDocument all = s.read(R"({"dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), all.Size());
    const Json& got = all[0];
    for (auto it = written.MemberBegin(); it != written.MemberEnd(); ++it) {
        std::string key(as_view(it->name));
        const Json* v = find_member(got, key);
        CPPUNIT_ASSERT_MESSAGE("lost property '" + key + "'", v != nullptr);
        CPPUNIT_ASSERT_MESSAGE("property '" + key + "' changed: " + to_json(*v).substr(0, 200), *v == it->value);
    }
    CPPUNIT_ASSERT_EQUAL(entity_hash(written), str(got, "_hash"));
    CPPUNIT_ASSERT_EQUAL(entity_hash(got), str(got, "_hash"));
    // Re-posting what was read back (generated fields included) is unchanged.
    w = s.write("d", "[" + to_json(got) + "]");
    CPPUNIT_ASSERT_EQUAL(int64_t(0), num(w, "written"));
    JsonDocument one = s.command(R"({"op":"get","dataset":"d","id":"exact"})");
    CPPUNIT_ASSERT(one["big"] == written["big"]);
    // A dotted property is a path through nested objects, never a key containing a dot.
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(0), s.lookup("d", "a.b", R"(["dot key"])").Size());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), s.lookup("d", "nested.o", R"([{}])").Size());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), s.lookup("d", "huge", R"([1.5e300])").Size());
}

void StorageConformance::testDeleteUnseenSpansChunks() {
    StoreClient& s = *store_;
    s.write("d", entities(0, 2500));
    // A full run that sees the first 1000 and the last 500 ids, in batches.
    s.write("d", entities(0, 1000), R"({"run":"full"})");
    s.write("d", entities(2000, 2500), R"({"run":"full"})");
    JsonDocument r = s.command(R"({"op":"delete_unseen","dataset":"d","run":"full"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(1000), num(r, "deleted"));
    JsonDocument tombstones = s.read(R"({"dataset":"d","since":2499})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1000), tombstones.Size());
    // In log order of the versions they replace: e1000 first, e1999 last.
    for (rapidjson::SizeType i = 0; i < tombstones.Size(); ++i) {
        const Json& t = tombstones[i];
        CPPUNIT_ASSERT(t["_deleted"].IsTrue());
        CPPUNIT_ASSERT_EQUAL("e" + std::to_string(1000 + i), str(t, "_id"));
        CPPUNIT_ASSERT_EQUAL(int64_t(2500 + i), num(t, "_updated"));
        CPPUNIT_ASSERT_EQUAL(int64_t(1000 + i), num(t, "_previous"));
    }
    JsonDocument info = s.command(R"({"op":"info","dataset":"d"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(1500), num(info, "count"));
    CPPUNIT_ASSERT_EQUAL(int64_t(1000), num(info, "deleted"));
    CPPUNIT_ASSERT_EQUAL(int64_t(3500), num(info, "versions"));
}

void StorageConformance::testReopenKeepsEverything() {
    StoreClient& s = *store_;
    s.write("d", entities(0, 1500), R"({"state":{"key":"pipe:p:offset","value":"9"}})");
    s.write("d", entities(0, 10, "e", ",\"changed\":1"), R"({"run":"r"})");
    s.write("d", R"([{"_id":"e20","k":"x"}])", R"({"run":"r"})");
    s.command(R"({"op":"set_populated","dataset":"d","value":true})");
    s.command(R"({"op":"state_put_history","key":"config:p","value":{"v":1}})");
    s.command(R"({"op":"state_put_history","key":"config:p","value":{"v":2}})");
    s.command(R"({"op":"compact","dataset":"d","keep_versions":1})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), s.lookup("d", "k", R"(["x"])").Size());
    JsonDocument info = s.command(R"({"op":"info","dataset":"d"})");
    std::string before = to_json(s.read(R"({"dataset":"d"})"));

    store_.reset();
    store_ = reopenStore();
    CPPUNIT_ASSERT_MESSAGE("backend is not persistent: reopenStore() gave nothing", store_ != nullptr);
    CPPUNIT_ASSERT_MESSAGE("store did not reopen: " + host_->last_error(), store_->valid());
    StoreClient& again = *store_;
    CPPUNIT_ASSERT_EQUAL(to_json(info), to_json(again.command(R"({"op":"info","dataset":"d"})")));
    CPPUNIT_ASSERT_EQUAL(before, to_json(again.read(R"({"dataset":"d"})")));
    CPPUNIT_ASSERT_EQUAL(std::string("9"), std::string(again.command(R"({"op":"state_get","key":"pipe:p:offset"})").GetString()));
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), again.command(R"({"op":"state_history","key":"config:p"})").Size());
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(1), again.lookup("d", "k", R"(["x"])").Size());
    // Offsets continue; the run marks made before the restart still count.
    JsonDocument w = again.write("d", R"([{"_id":"new"}])", R"({"run":"r"})");
    CPPUNIT_ASSERT_EQUAL(num(info, "last_offset") + 1, num(w, "last_offset"));
    JsonDocument r = again.command(R"({"op":"delete_unseen","dataset":"d","run":"r"})");
    CPPUNIT_ASSERT_EQUAL(int64_t(1500 - 11), num(r, "deleted"));
    CPPUNIT_ASSERT_EQUAL(int64_t(12), num(again.command(R"({"op":"info","dataset":"d"})"), "count"));
}

// A dataset source feeding a dataset sink: the reader's callback writes to the same store while
// the read is in progress (must neither deadlock nor disturb the read).
void StorageConformance::testWriteFromReadCallback() {
    StoreClient& s = *store_;
    s.write("src", entities(0, 2500));
    struct Copier {
        StoreClient* store;
        int32_t status = SLUICE_OK;
        size_t chunks = 0;
        static int32_t receive(void* user, const char* data, size_t size) {
            auto* self = static_cast<Copier*>(user);
            ++self->chunks;
            std::string out;
            int32_t st = self->store->writeRaw("dst", std::string(data, size), "{}", out);
            if (st != SLUICE_OK) self->status = st;
            // And into the dataset being read: lands after the read's end, never re-read.
            if (self->chunks == 1) self->store->writeRaw("src", R"([{"_id":"late"}])", "{}", out);
            return 0;
        }
    } copier{&s};
    CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), s.readWith(R"({"dataset":"src","limit":2500})", &Copier::receive, &copier));
    CPPUNIT_ASSERT_EQUAL_MESSAGE(s.host().last_error(), int32_t(SLUICE_OK), copier.status);
    CPPUNIT_ASSERT(copier.chunks >= 3);
    JsonDocument dst = s.read(R"({"dataset":"dst"})");
    CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2500), dst.Size());
    CPPUNIT_ASSERT_EQUAL(std::string("e2499"), str(dst[2499], "_id"));
    CPPUNIT_ASSERT_EQUAL(int64_t(2500), num(s.command(R"({"op":"info","dataset":"src"})"), "last_offset"));
}

}  // namespace sluice::conformance

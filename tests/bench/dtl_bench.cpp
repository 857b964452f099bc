// DTL benchmark (in-process, one thread = one core):
//   1. N entities through a transform of five common functions (copy, add+concat, rename, lower,
//      filter): the plugin's own path per batch — parse the batch text in place, run, serialize.
//   2. N entities through a hops join against an indexed lookup dataset of M entities, served by
//      a hash map standing in for the store (it answers each batched lookup with JSON text, as
//      the host does).
// Prints entities/s for each. Usage: dtl_bench [--entities N] [--lookup-entities M] [--batch B]
#include <sluice/dtl/dtl.hpp>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace dtl = sluice::dtl;

namespace {

using Clock = std::chrono::steady_clock;

// CPU time of this thread: entities per second per core, whatever else runs on the machine.
double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The store stand-in: entity JSON text indexed by `_id`.
class HashLookups : public dtl::LookupProvider {
public:
    std::unordered_map<std::string, std::string> by_id;
    size_t calls = 0, keys = 0;
    double seconds = 0;  // CPU time spent answering (the store's share of the hops figure)
    void lookup(const std::string&, const std::string& property, const dtl::Json& values,
                rapidjson::Document& out) override {
        double start = thread_cpu_seconds();
        ++calls;
        std::string text = "[";
        for (const auto& v : values.GetArray()) {
            ++keys;
            if (property != "_id" || !v.IsString()) continue;
            auto it = by_id.find(std::string(v.GetString(), v.GetStringLength()));
            if (it == by_id.end()) continue;
            if (text.size() > 1) text.push_back(',');
            text += it->second;
        }
        text.push_back(']');
        dtl::parse_json(text, out);
        seconds += thread_cpu_seconds() - start;
    }
};

std::vector<std::string> make_batches(size_t entities, size_t batch, size_t lookup_entities, std::mt19937& rng) {
    static const char* first[] = {"Ann", "Bob", "Cecilie", "Dag", "Eva", "Frode", "Gro", "Hans"};
    static const char* last[] = {"Lee", "Hansen", "Johansen", "Olsen", "Larsen", "Andersen"};
    std::vector<std::string> out;
    std::string text;
    char buf[512];
    for (size_t i = 0; i < entities; ++i) {
        if (i % batch == 0) {
            if (!text.empty()) out.push_back(text + "]");
            text = "[";
        } else {
            text.push_back(',');
        }
        const char* f = first[rng() % 8];
        const char* l = last[rng() % 6];
        std::snprintf(buf, sizeof buf,
                      R"({"_id":"person-%zu","first":"%s","last":"%s","email":"%s.%s@Example.COM","age":%u,)"
                      R"("city":"Oslo","score":%u.5,"cust_id":"cust-%zu"})",
                      i, f, l, f, l, static_cast<unsigned>(rng() % 90), static_cast<unsigned>(rng() % 100),
                      static_cast<size_t>(rng() % (lookup_entities ? lookup_entities : 1)));
        text += buf;
    }
    if (text.size() > 1) out.push_back(text + "]");
    return out;
}

struct Result {
    double seconds = 0, cpu = 0;
    size_t in = 0, out = 0, bytes = 0;
};

// `count` batches taken round-robin from `batches` (distinct texts, generated up front).
Result run(const std::string& transform, const std::vector<std::string>& batches, size_t count,
           dtl::LookupProvider* lookups) {
    rapidjson::Document config;
    dtl::parse_json(transform, config);
    auto program = dtl::compile_transform(config);  // once per pipe config
    dtl::Runner runner(program, lookups);
    Result r;
    dtl::BatchInput parser;  // as the plugin: copy the borrowed batch, parse it in place
    auto start = Clock::now();
    double cpu_start = thread_cpu_seconds();
    for (size_t i = 0; i < count; ++i) {
        const dtl::Json& input = parser.parse(batches[i % batches.size()]);
        size_t count = 0;
        std::string_view out = runner.run(input, count);  // the text the plugin emits
        r.out += count;
        r.in += input.Size();
        r.bytes += out.size();
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.cpu = thread_cpu_seconds() - cpu_start;
    return r;
}

void report(const char* name, const Result& r) {
    std::printf("%-52s %8zu in %8zu out  wall %7.3f s  cpu %7.3f s  %10.0f entities/s/core (%.0f/s wall)\n", name,
                r.in, r.out, r.seconds, r.cpu, r.in / (r.cpu > 0 ? r.cpu : 1e-9), r.in / (r.seconds > 0 ? r.seconds : 1e-9));
}

}  // namespace

int main(int argc, char** argv) {
    size_t entities = 1000000, lookup_entities = 100000, batch = 1000;
    bool hops_part = true;
    for (int i = 1; i < argc; ++i)
        if (!std::strcmp(argv[i], "--no-hops")) hops_part = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--entities")) entities = std::strtoull(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--lookup-entities")) lookup_entities = std::strtoull(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--batch")) batch = std::strtoull(argv[i + 1], nullptr, 10);
    }
    std::mt19937 rng(42);
    std::printf("dtl_bench: %zu entities, batches of %zu, lookup dataset of %zu entities, 1 thread\n", entities, batch,
                lookup_entities);
    // At most 200 distinct batches (40 MB of text), cycled: keeps the setup out of the way.
    size_t batch_count = (entities + batch - 1) / batch;
    std::vector<std::string> batches =
        make_batches(std::min(entities, 200 * batch), batch, lookup_entities, rng);

    const std::string five = R"({"type":"dtl","rules":{"default":[
        ["copy","*"],
        ["add","name",["concat","_S.first"," ","_S.last"]],
        ["rename","age","years"],
        ["add","email",["lower","_S.email"]],
        ["filter",["gte","_S.age",18]]]}})";
    Result r1 = run(five, batches, batch_count, nullptr);
    report("five functions (copy/add+concat/rename/lower/filter)", r1);

    if (!hops_part) return 0;
    HashLookups store;
    char buf[256];
    for (size_t i = 0; i < lookup_entities; ++i) {
        std::snprintf(buf, sizeof buf, R"({"_id":"cust-%zu","name":"Customer %zu","segment":"s%zu","country":"NO"})", i, i,
                      i % 7);
        store.by_id.emplace("cust-" + std::to_string(i), buf);
    }
    const std::string hops = R"({"type":"dtl","rules":{"default":[
        ["copy","_id"],["copy","cust_id"],
        ["add","customer",["first",["hops",{"datasets":["customers c"],"where":[["eq","_S.cust_id","c._id"]],
                                            "return":{"name":"c.name","segment":"c.segment"}}]]]]}})";
    Result r2 = run(hops, batches, batch_count, &store);
    report("hops join (indexed 100k-entity lookup)", r2);
    std::printf("hops: %zu lookup calls for %zu batches, %zu keys; the store stand-in took %.3f s cpu of it "
                "(DTL alone: %.0f entities/s/core)\n",
                store.calls, batch_count, store.keys, store.seconds, r2.in / std::max(1e-9, r2.cpu - store.seconds));

    bool ok = r1.in == entities && r2.in == entities && r2.out == entities && r1.out > 0 && store.calls == batch_count;
    std::printf("goal >= 1000000 entities/s/core (five functions): %s\n", r1.in / r1.cpu >= 1e6 ? "met" : "NOT met");
    std::printf("%s\n", ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
    return ok ? 0 : 1;
}

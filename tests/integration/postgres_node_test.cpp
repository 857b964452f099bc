// The node on PostgreSQL (the managed local cluster, started by the node itself): config and
// datasets survive a restart, and SIGKILL at random moments neither loses nor duplicates a
// version — the batch and the pipe's offset commit in one transaction.
#include "postgres_support.hpp"
#include "test_support.hpp"

#include <sluice/kernel/node.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

using namespace sluice::test;
using sluice::Json;
using sluice::JsonDocument;

namespace {

const char* kForm = "application/x-www-form-urlencoded";

int64_t dataset_count(const NodeProcess& node, const std::string& dataset) {
    HttpResponse r = node.get("/api/datasets/" + dataset);
    if (r.status != 200) return -1;
    return r.json()["runtime"]["count-index-exists"].GetInt64();
}

// Every version of `dataset`: offsets must be dense from 0 and every _id appear exactly once.
void check_log_exactly_once(const NodeProcess& node, const std::string& dataset, int64_t expected) {
    HttpResponse r = node.get("/api/datasets/" + dataset + "/entities?history=true");
    CPPUNIT_ASSERT_EQUAL(200, r.status);
    JsonDocument all = r.json();
    CPPUNIT_ASSERT_EQUAL_MESSAGE(dataset + ": versions", expected, static_cast<int64_t>(all.Size()));
    std::set<std::string> ids;
    for (rapidjson::SizeType i = 0; i < all.Size(); ++i) {
        CPPUNIT_ASSERT_EQUAL_MESSAGE(dataset + ": offsets must be dense", static_cast<int64_t>(i),
                                     all[i]["_updated"].GetInt64());
        ids.insert(all[i]["_id"].GetString());
    }
    CPPUNIT_ASSERT_EQUAL_MESSAGE(dataset + ": duplicate versions", static_cast<size_t>(expected), ids.size());
}

// Polls for up to 10 s (nodes sharing storage read each other's changes every 2 s).
bool eventually(const std::function<bool()>& check) {
    for (int i = 0; i < 100; ++i) {
        if (check()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return check();
}

bool pump_disabled(const NodeProcess& node, const std::string& pipe) {
    HttpResponse r = node.get("/api/pipes/" + pipe + "/pump");
    return r.status == 200 && r.json()["runtime"]["is-disabled"].GetBool();
}

// A node joining another's storage gets its key files, as docs/deployment.md tells.
void copy_node_keys(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::filesystem::create_directories(to);
    for (const char* key : {"jwt.key", "secrets.key"}) {
        std::filesystem::copy_file(from / key, to / key);
        std::filesystem::permissions(to / key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                     std::filesystem::perm_options::replace);
    }
}

}  // namespace

class PostgresNodeTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(PostgresNodeTest);
    CPPUNIT_TEST(testConfigAndDatasetsSurviveRestart);
    CPPUNIT_TEST(testCrashesNeitherLoseNorDuplicate);
    CPPUNIT_TEST(testNodesSharingStorageRunAPipeOneAtATime);
    CPPUNIT_TEST(testNodesSharingStorageTakeEachOthersChanges);
    CPPUNIT_TEST(testNodeThatCannotOpenWhatOthersStoredChangesNothing);
    CPPUNIT_TEST_SUITE_END();

public:
    void testConfigAndDatasetsSurviveRestart() {
        TempDir dir;
        write_text(dir / "config.json", R"([{"_id": "p", "type": "pipe",
            "source": {"type": "embedded", "entities": [{"_id": "a", "n": 1}, {"_id": "b", "n": 2}]}}])");
        {
            NodeProcess node(dir / "data", {"--config", (dir / "config.json").string()});
            node.start();
            node.wait_for_pipe_runs("p");
            CPPUNIT_ASSERT_EQUAL(int64_t(2), dataset_count(node, "p"));
            CPPUNIT_ASSERT(node.get("/api/health").body.find("managed") != std::string::npos);
            CPPUNIT_ASSERT_EQUAL(200, node.put("/api/env", R"({"x": "1"})").status);
            CPPUNIT_ASSERT_EQUAL(200, node.post("/api/pipes/p/pump", "operation=disable", kForm).status);
            CPPUNIT_ASSERT_EQUAL(0, node.stop());
        }
        NodeProcess again(dir / "data");  // no --config: the stored one comes back
        again.start();
        CPPUNIT_ASSERT_EQUAL(200, again.get("/api/pipes/p").status);
        // An operator's disable outlives the restart; enabling it is stored the same way.
        CPPUNIT_ASSERT(again.get("/api/pipes/p/pump").json()["runtime"]["is-disabled"].GetBool());
        CPPUNIT_ASSERT_EQUAL(200, again.post("/api/pipes/p/pump", "operation=enable", kForm).status);
        CPPUNIT_ASSERT(!again.get("/api/pipes/p/pump").json()["runtime"]["is-disabled"].GetBool());
        CPPUNIT_ASSERT_EQUAL(std::string("1"), std::string(again.get("/api/env").json()["x"].GetString()));
        JsonDocument entities = again.get("/api/datasets/p/entities").json();
        CPPUNIT_ASSERT_EQUAL(rapidjson::SizeType(2), entities.Size());
        CPPUNIT_ASSERT_EQUAL(int64_t(1), entities[1]["_updated"].GetInt64());
        CPPUNIT_ASSERT_EQUAL(0, again.stop());
    }

    void testCrashesNeitherLoseNorDuplicate() {
        const int64_t kEntities = 200000;
        TempDir dir("sluice-crash");
        // gen: a generated full source → dataset; copy: an incremental dataset → dataset pipe
        // whose continuation token commits with each batch.
        write_text(dir / "config.json", R"([
          {"_id": "gen", "type": "pipe", "batch_size": 1000,
           "source": {"type": "fixture_counter", "count": )" + std::to_string(kEntities) + R"(}},
          {"_id": "copy", "type": "pipe", "batch_size": 500, "source": {"type": "dataset", "dataset": "gen"}}])");
        const std::vector<std::string> args = {"--plugin-dir", SLUICE_TEST_FIXTURE_DIR, "--config",
                                               (dir / "config.json").string()};
        // Kills are placed by progress, not by time, so they land mid-run on a fast machine and
        // a slow one alike: kill k waits until gen + copy together hold about k/11 of the
        // 2 x 200k versions (polled every few ms), then a random 0..40 ms more so the kill hits
        // every phase of a batch (reading, transforming, COPY, commit).
        std::mt19937 random(20261123);
        std::uniform_int_distribution<int> jitter_ms(0, 40);
        int mid_run_kills = 0;
        for (int kill = 0; kill < 10; ++kill) {
            NodeProcess node(dir / "data", args);
            node.start();
            const int64_t target = (kill + 1) * 2 * kEntities / 11;
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
            while (std::chrono::steady_clock::now() < give_up &&
                   std::max<int64_t>(0, dataset_count(node, "gen")) + std::max<int64_t>(0, dataset_count(node, "copy")) <
                       target) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(jitter_ms(random)));
            const int64_t gen = dataset_count(node, "gen"), copy = dataset_count(node, "copy");
            node.kill();  // SIGKILL: no shutdown, mid-batch if it happens to be writing
            std::cout << "kill " << kill + 1 << " (target " << target << "): gen " << gen << ", copy " << copy
                      << std::endl;
            if (gen < kEntities || copy < kEntities) ++mid_run_kills;
        }
        // The test means something only if the kills landed while data was moving.
        CPPUNIT_ASSERT_MESSAGE("too few kills landed mid-run", mid_run_kills >= 8);
        // The last start runs to completion.
        NodeProcess node(dir / "data", {"--plugin-dir", SLUICE_TEST_FIXTURE_DIR});
        node.start();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
        while (std::chrono::steady_clock::now() < deadline &&
               !(dataset_count(node, "gen") == kEntities && dataset_count(node, "copy") == kEntities)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
        CPPUNIT_ASSERT_EQUAL_MESSAGE(node.log(), kEntities, dataset_count(node, "gen"));
        CPPUNIT_ASSERT_EQUAL_MESSAGE(node.log(), kEntities, dataset_count(node, "copy"));
        CPPUNIT_ASSERT_EQUAL(200, node.post("/api/pipes/copy/pump", "operation=disable", kForm).status);
        node.wait_for_pipe_runs("copy", 0);
        check_log_exactly_once(node, "gen", kEntities);
        check_log_exactly_once(node, "copy", kEntities);
        // The copy pipe's committed offset is the last offset of its input.
        JsonDocument pump = node.get("/api/pipes/copy/pump").json();
        CPPUNIT_ASSERT_EQUAL(std::to_string(kEntities - 1), std::string(pump["runtime"]["last-seen"].GetString()));
        CPPUNIT_ASSERT_EQUAL(0, node.stop());
    }

    // Two nodes on one PostgreSQL, the same pipe scheduled on both every second: its runs never
    // overlap (the storage's run lock), and the data is exactly the source's.
    void testNodesSharingStorageRunAPipeOneAtATime() {
        const int64_t kEntities = 100000;
        TempDir dir("sluice-shared");
        const std::string dsn = sluice::test::fresh_postgres_database("shared_runs");
        write_text(dir / "config.json", R"([{"_id": "gen", "type": "pipe", "batch_size": 1000,
            "pump": {"interval_seconds": 1}, "source": {"type": "fixture_counter", "count": )" +
                                                std::to_string(kEntities) + R"(}}])");
        NodeProcess first(dir / "a", {"--postgres", dsn, "--plugin-dir", SLUICE_TEST_FIXTURE_DIR, "--config",
                                      (dir / "config.json").string()});
        first.start();
        // The second node gets the configuration from the shared storage, and schedules the
        // pipe at once too, while the first node's run is under way.
        NodeProcess second(dir / "b", {"--postgres", dsn, "--plugin-dir", SLUICE_TEST_FIXTURE_DIR});
        second.start();
        std::this_thread::sleep_for(std::chrono::seconds(6));
        CPPUNIT_ASSERT_EQUAL(0, second.stop());
        CPPUNIT_ASSERT_EQUAL(0, first.stop());

        NodeProcess reader(dir / "a", {"--postgres", dsn, "--plugin-dir", SLUICE_TEST_FIXTURE_DIR});
        reader.start();
        CPPUNIT_ASSERT_EQUAL(200, reader.post("/api/pipes/gen/pump", "operation=disable", kForm).status);
        reader.wait_for_pipe_runs("gen", 0);
        JsonDocument log = reader.get("/api/pipes/gen/log").json();
        std::map<std::string, std::pair<int64_t, int64_t>> runs;  // run_id -> (started, ended)
        for (const Json& entry : log.GetArray()) {
            const std::string event = entry["event"].GetString();
            if (event == "pump-started") continue;
            runs[entry["run_id"].GetString()] = {entry["started_us"].GetInt64(), entry["ended_us"].GetInt64()};
        }
        CPPUNIT_ASSERT_MESSAGE(std::to_string(runs.size()) + " runs", runs.size() >= 2);
        std::vector<std::pair<int64_t, int64_t>> spans;
        for (const auto& [id, span] : runs) spans.push_back(span);
        std::sort(spans.begin(), spans.end());
        for (size_t i = 1; i < spans.size(); ++i)
            CPPUNIT_ASSERT_MESSAGE("two runs of the pipe overlapped", spans[i].first >= spans[i - 1].second);
        check_log_exactly_once(reader, "gen", kEntities);
        CPPUNIT_ASSERT_EQUAL(0, reader.stop());
    }

    // Two nodes on one PostgreSQL, sharing jwt.key and secrets.key (docs/deployment.md): the
    // configuration, a variable, a secret and a pump's disable flag changed on one are taken by
    // the other within Node::kSyncMicros, and an edit on one starts from what the other stored
    // (no lost update).
    void testNodesSharingStorageTakeEachOthersChanges() {
        TempDir dir("sluice-shared");
        const std::string dsn = sluice::test::fresh_postgres_database("shared_config");
        NodeProcess first(dir / "a", {"--postgres", dsn, "--plugin-dir", SLUICE_TEST_FIXTURE_DIR});
        first.start();
        copy_node_keys(dir / "a", dir / "b");
        NodeProcess second(dir / "b", {"--postgres", dsn, "--plugin-dir", SLUICE_TEST_FIXTURE_DIR});
        second.start();
        auto effective_count = [](const NodeProcess& node, const std::string& pipe) -> int64_t {
            HttpResponse r = node.get("/api/pipes/" + pipe);
            if (r.status != 200) return -1;
            JsonDocument d = r.json();
            return d["config"]["effective"]["source"]["count"].GetInt64();
        };

        // Configuration and variables: a pipe whose count is a variable, set on the first node.
        CPPUNIT_ASSERT_EQUAL(200, first.put("/api/env", R"({"n": 5})").status);
        HttpResponse put = first.put("/api/config", R"J([{"_id": "p1", "type": "pipe", "pump": {"mode": "manual"},
                                                           "source": {"type": "fixture_counter", "count": "$ENV(n)"}}])J");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(put.body, 200, put.status);
        CPPUNIT_ASSERT(eventually([&] { return effective_count(second, "p1") == 5; }));
        CPPUNIT_ASSERT_EQUAL(200, second.put("/api/env", R"({"n": 7})").status);  // changed on the second
        CPPUNIT_ASSERT(eventually([&] { return effective_count(first, "p1") == 7; }));

        // A secret set on one node is there on the other.
        CPPUNIT_ASSERT_EQUAL(200, first.put("/api/secrets", R"({"token": "s3cret-value-1"})").status);
        CPPUNIT_ASSERT(eventually([&] { return second.get("/api/secrets").body.find("\"token\"") != std::string::npos; }));
        CPPUNIT_ASSERT_EQUAL(200, second.put("/api/secrets", R"({"other": "s3cret-value-2"})").status);
        // The second node's merge kept the first node's secret.
        CPPUNIT_ASSERT_MESSAGE(first.get("/api/secrets").body, eventually([&] {
            const std::string names = first.get("/api/secrets").body;
            return names.find("\"token\"") != std::string::npos && names.find("\"other\"") != std::string::npos;
        }));

        // A pump disabled on the first node is disabled on the second.
        CPPUNIT_ASSERT_EQUAL(200, first.post("/api/pipes/p1/pump", "operation=disable", kForm).status);
        CPPUNIT_ASSERT(eventually([&] { return pump_disabled(second, "p1"); }));

        // No lost update: a pipe added on the first node, and at once another pipe edited on the
        // second (before its periodic read): the second's edit starts from the stored config.
        HttpResponse added = first.post("/api/pipes", R"([{"_id": "p2", "type": "pipe", "pump": {"mode": "manual"},
                                                           "source": {"type": "fixture_counter", "count": 2}}])");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(added.body, 201, added.status);
        HttpResponse edited = second.put("/api/pipes/p1/config", R"({"_id": "p1", "type": "pipe", "pump": {"mode": "manual"},
                                                                     "source": {"type": "fixture_counter", "count": 9}})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(edited.body, 200, edited.status);
        for (const NodeProcess* node : {&first, &second}) {
            CPPUNIT_ASSERT(eventually([&] { return effective_count(*node, "p1") == 9 && effective_count(*node, "p2") == 2; }));
        }
        CPPUNIT_ASSERT_EQUAL(0, second.stop());
        CPPUNIT_ASSERT_EQUAL(0, first.stop());
    }

    // A node lacking a plugin the stored configuration uses runs no pipe (and says so), never
    // writes its older copy back, and leaves the shared pump flags alone; a node whose secrets
    // key another node rotated refuses secret changes (409) and leaves its key files as they were.
    void testNodeThatCannotOpenWhatOthersStoredChangesNothing() {
        TempDir dir("sluice-shared-conflict");
        const std::string dsn = sluice::test::fresh_postgres_database("shared_conflict");
        NodeProcess full(dir / "a", {"--postgres", dsn, "--plugin-dir", SLUICE_TEST_FIXTURE_DIR});
        full.start();
        copy_node_keys(dir / "a", dir / "c");
        NodeProcess lacking(dir / "c", {"--postgres", dsn});  // no fixture plugins
        lacking.start();
        auto has = [](const HttpResponse& r, const std::string& text) { return r.body.find(text) != std::string::npos; };

        // Both run p0 (built-in plugins); an operator disables it.
        const std::string p0 = R"({"_id": "p0", "type": "pipe", "pump": {"mode": "manual"},
                                   "source": {"type": "embedded", "entities": [{"_id": "x"}]}})";
        CPPUNIT_ASSERT_EQUAL(200, full.put("/api/env", R"({"n": 5})").status);
        CPPUNIT_ASSERT_EQUAL(200, full.put("/api/secrets", R"({"token": "s3cret-value-3"})").status);
        CPPUNIT_ASSERT_EQUAL(200, full.put("/api/config", "[" + p0 + "]").status);
        CPPUNIT_ASSERT(eventually([&] { return lacking.get("/api/pipes/p0").status == 200; }));
        CPPUNIT_ASSERT_EQUAL(200, full.post("/api/pipes/p0/pump", "operation=disable", kForm).status);
        CPPUNIT_ASSERT(eventually([&] { return pump_disabled(lacking, "p0"); }));

        // p1 needs a plugin the second node lacks: it runs no pipe and leaves the rotation.
        const std::string p1 = R"J({"_id": "p1", "type": "pipe", "pump": {"mode": "manual"},
                                    "source": {"type": "fixture_counter", "count": "$ENV(n)"}})J";
        CPPUNIT_ASSERT_EQUAL(200, full.put("/api/config", "[" + p0 + "," + p1 + "]").status);
        const std::string config_before = full.get("/api/config").body;
        CPPUNIT_ASSERT(eventually([&] { return lacking.get("/api/health").status == 503; }));
        CPPUNIT_ASSERT_EQUAL(404, lacking.get("/api/pipes/p0").status);
        HttpResponse status = lacking.get("/api/status");
        CPPUNIT_ASSERT_MESSAGE(status.body, has(status, "fixture_counter"));
        CPPUNIT_ASSERT_MESSAGE("/api/health needs no token: no detail", !has(lacking.get("/api/health"), "fixture_counter"));
        CPPUNIT_ASSERT_EQUAL(200, full.get("/api/health").status);
        // It answers the stored configuration, not an empty one a client could upload back.
        CPPUNIT_ASSERT_EQUAL(config_before, lacking.get("/api/config").body);

        // Edits there start from the stored configuration and must build there.
        const std::string p9 = R"({"_id": "p9", "type": "pipe", "pump": {"mode": "manual"},
                                   "source": {"type": "embedded", "entities": []}})";
        HttpResponse edit = lacking.put("/api/pipes/p9/config", p9);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(edit.body, 400, edit.status);
        CPPUNIT_ASSERT_MESSAGE(edit.body, has(edit, "fixture_counter"));
        CPPUNIT_ASSERT_EQUAL(400, lacking.put("/api/env", R"({"n": 6})").status);

        // Another node rotates the secrets key: this one's no longer opens the stored secrets.
        HttpResponse rotated = full.post("/api/secrets/rotate-key", "");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(rotated.body, 200, rotated.status);
        HttpResponse secret = lacking.put("/api/secrets", R"({"other": "s3cret-value-4"})");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(secret.body, 409, secret.status);
        CPPUNIT_ASSERT_EQUAL(409, lacking.del("/api/secrets/token").status);
        HttpResponse rotate = lacking.post("/api/secrets/rotate-key", "");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(rotate.body, 409, rotate.status);
        CPPUNIT_ASSERT(!std::filesystem::exists(dir / "c" / "secrets.key.next"));

        // After a few sync rounds what the full node stored is untouched, p0's flag included.
        std::this_thread::sleep_for(std::chrono::microseconds(2 * sluice::kernel::Node::kSyncMicros + 500'000));
        CPPUNIT_ASSERT_EQUAL(config_before, full.get("/api/config").body);
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"n":5})"), full.get("/api/env").body);
        CPPUNIT_ASSERT_EQUAL(std::string(R"(["token"])"), full.get("/api/secrets").body);
        CPPUNIT_ASSERT_MESSAGE("the flag of a pipe the others run must stay", pump_disabled(full, "p0"));
        CPPUNIT_ASSERT_EQUAL(200, full.post("/api/pipes/p1/pump", "operation=start", kForm).status);
        full.wait_for_pipe_runs("p1");
        CPPUNIT_ASSERT_EQUAL(static_cast<int64_t>(5), dataset_count(full, "p1"));
        const std::string log = lacking.log();
        size_t warnings = 0;
        for (size_t at = log.find("keeping the secrets read before"); at != std::string::npos;
             at = log.find("keeping the secrets read before", at + 1))
            ++warnings;
        CPPUNIT_ASSERT_EQUAL_MESSAGE("one warning per cause, not one per sync", static_cast<size_t>(1), warnings);

        // An edit there that builds there is stored, from the stored configuration: removing p1
        // keeps p0 (and its flag) on every node, and the node runs its pipes again.
        HttpResponse removed = lacking.del("/api/pipes/p1");
        CPPUNIT_ASSERT_EQUAL_MESSAGE(removed.body, 200, removed.status);
        CPPUNIT_ASSERT_EQUAL(200, lacking.get("/api/health").status);
        CPPUNIT_ASSERT(pump_disabled(lacking, "p0"));
        CPPUNIT_ASSERT(eventually([&] { return full.get("/api/pipes/p1").status == 404; }));
        CPPUNIT_ASSERT(pump_disabled(full, "p0"));

        // The stored configuration changed by another node to one that builds here: back in.
        CPPUNIT_ASSERT_EQUAL(200, full.put("/api/config", "[" + p0 + "," + p1 + "]").status);
        CPPUNIT_ASSERT(eventually([&] { return lacking.get("/api/health").status == 503; }));
        CPPUNIT_ASSERT_EQUAL(200, full.put("/api/config", "[" + p9 + "]").status);
        CPPUNIT_ASSERT(eventually([&] { return lacking.get("/api/health").status == 200; }));
        CPPUNIT_ASSERT_EQUAL(200, lacking.get("/api/pipes/p9").status);
        CPPUNIT_ASSERT_EQUAL(0, lacking.stop());
        CPPUNIT_ASSERT_EQUAL(0, full.stop());
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(PostgresNodeTest);

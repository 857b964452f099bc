// The storage conformance suite: one set of behaviour checks (docs/storage.md) driven through
// the C contract (dlopen + sluice_storage_vtable), run against every storage backend. A backend
// suite derives from StorageConformance, implements openStore() and lists SLUICE_CONFORMANCE_TESTS.
#pragma once

#include <sluice/testing.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <memory>
#include <string>
#include <vector>

namespace sluice::conformance {

// One open store, called through its vtable exactly as the kernel does.
class StoreClient {
public:
    StoreClient(testing::LoadedPlugin& plugin, testing::FakeHost& host, const std::string& type,
                const std::string& config);
    bool valid() const { return instance_.valid(); }

    // Raw calls: status + the text received.
    int32_t writeRaw(const std::string& dataset, const std::string& batch, const std::string& options,
                     std::string& out);
    int32_t readRaw(const std::string& query, std::vector<std::string>& chunks, size_t stop_after = 0);
    int32_t commandRaw(const std::string& command, std::string& out);
    // A read whose chunks go to `receive` (which may call back into this store).
    int32_t readWith(const std::string& query, sluice_receive_fn receive, void* user);

    // Checked calls (assert SLUICE_OK).
    JsonDocument write(const std::string& dataset, const std::string& batch, const std::string& options = "{}");
    JsonDocument read(const std::string& query);  // all chunks concatenated into one array
    JsonDocument lookup(const std::string& dataset, const std::string& property, const std::string& values);
    JsonDocument command(const std::string& command);

    testing::FakeHost& host() { return *host_; }

private:
    testing::FakeHost* host_;
    testing::Instance instance_;
    const sluice_storage_vtable* vtable_;
};

class StorageConformance : public CppUnit::TestFixture {
public:
    void setUp() override;
    void tearDown() override;

    void testWriteRuleSequence();
    void testKeyOrderAndReservedFieldsIgnored();
    void testDeletedToggles();
    void testSameIdTwiceInOneBatch();
    void testForce();
    void testInvalidBatchWritesNothing();
    void testReadSinceAndLimit();
    void testReadChunksAndEarlyStop();
    void testReadHistoryDeletedReverse();
    void testUnknownDataset();
    void testLookupById();
    void testLookupByProperty();
    void testLookupListOverlapDottedAndNulls();
    void testLookupSeesOnlyLatestLiveVersions();
    void testListInfoGet();
    void testDeleteAndRecreate();
    void testPopulated();
    void testCompactionKeepVersions();
    void testCompactionOlderThan();
    void testDeleteUnseen();
    void testStateCommittedWithBatch();
    void testFailedBatchLeavesStateUnchanged();
    void testStateOperations();
    void testStateHistory();
    void testUnknownOp();
    void testConcurrentWritersGetDenseOffsets();
    void testDatasetIdsAreData();
    void testEmptyWriteCreatesDataset();
    void testLookupManyValues();
    void testValuesRoundTripExactly();
    void testDeleteUnseenSpansChunks();
    void testWriteFromReadCallback();
    void testStageCommit();
    void testStageTripAndRollback();
    // Persistent backends only (SLUICE_CONFORMANCE_PERSISTENCE_TESTS).
    void testReopenKeepsEverything();

protected:
    // A fresh, empty store of the backend under test.
    virtual std::unique_ptr<StoreClient> openStore() = 0;
    // The same store opened again (a restart): persistent backends return a new client on the
    // data openStore() created; the default (nothing persists) returns nullptr.
    virtual std::unique_ptr<StoreClient> reopenStore() { return nullptr; }

    std::unique_ptr<testing::FakeHost> host_;
    std::unique_ptr<StoreClient> store_;
};

}  // namespace sluice::conformance

#define SLUICE_CONFORMANCE_TESTS(Fixture)                          \
    CPPUNIT_TEST(testWriteRuleSequence);                           \
    CPPUNIT_TEST(testKeyOrderAndReservedFieldsIgnored);            \
    CPPUNIT_TEST(testDeletedToggles);                              \
    CPPUNIT_TEST(testSameIdTwiceInOneBatch);                       \
    CPPUNIT_TEST(testForce);                                       \
    CPPUNIT_TEST(testInvalidBatchWritesNothing);                   \
    CPPUNIT_TEST(testReadSinceAndLimit);                           \
    CPPUNIT_TEST(testReadChunksAndEarlyStop);                      \
    CPPUNIT_TEST(testReadHistoryDeletedReverse);                   \
    CPPUNIT_TEST(testUnknownDataset);                              \
    CPPUNIT_TEST(testLookupById);                                  \
    CPPUNIT_TEST(testLookupByProperty);                            \
    CPPUNIT_TEST(testLookupListOverlapDottedAndNulls);             \
    CPPUNIT_TEST(testLookupSeesOnlyLatestLiveVersions);            \
    CPPUNIT_TEST(testListInfoGet);                                 \
    CPPUNIT_TEST(testDeleteAndRecreate);                           \
    CPPUNIT_TEST(testPopulated);                                   \
    CPPUNIT_TEST(testCompactionKeepVersions);                      \
    CPPUNIT_TEST(testCompactionOlderThan);                         \
    CPPUNIT_TEST(testDeleteUnseen);                                \
    CPPUNIT_TEST(testStateCommittedWithBatch);                     \
    CPPUNIT_TEST(testFailedBatchLeavesStateUnchanged);             \
    CPPUNIT_TEST(testStateOperations);                             \
    CPPUNIT_TEST(testStateHistory);                                \
    CPPUNIT_TEST(testUnknownOp);                                   \
    CPPUNIT_TEST(testConcurrentWritersGetDenseOffsets);            \
    CPPUNIT_TEST(testDatasetIdsAreData);                           \
    CPPUNIT_TEST(testEmptyWriteCreatesDataset);                    \
    CPPUNIT_TEST(testLookupManyValues);                            \
    CPPUNIT_TEST(testValuesRoundTripExactly);                      \
    CPPUNIT_TEST(testDeleteUnseenSpansChunks);                     \
    CPPUNIT_TEST(testWriteFromReadCallback);                       \
    CPPUNIT_TEST(testStageCommit);                                 \
    CPPUNIT_TEST(testStageTripAndRollback)

// Added by backends whose data survives a close/open (reopenStore()).
#define SLUICE_CONFORMANCE_PERSISTENCE_TESTS(Fixture) CPPUNIT_TEST(testReopenKeepsEverything)

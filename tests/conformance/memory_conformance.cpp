// The storage conformance suite against the memory backend (sluice-storage-memory.so).
#include "conformance_suite.hpp"

namespace sluice::conformance {

class MemoryConformance : public StorageConformance {
    CPPUNIT_TEST_SUITE(MemoryConformance);
    SLUICE_CONFORMANCE_TESTS(MemoryConformance);
    CPPUNIT_TEST_SUITE_END();

protected:
    std::unique_ptr<StoreClient> openStore() override {
        static testing::FakeHost loader_host;
        static testing::LoadedPlugin plugin(SLUICE_TEST_PLUGIN_DIR "/sluice-storage-memory.so", loader_host);
        return std::make_unique<StoreClient>(plugin, *host_, "memory", "{}");
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(MemoryConformance);

}  // namespace sluice::conformance

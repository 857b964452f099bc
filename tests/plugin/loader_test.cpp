// The plugin loader: every way a library can be unfit is refused with a clear reason, nothing of
// a refused plugin is registered, and good plugins load with their components.
#include <sluice/kernel/host_context.hpp>
#include <sluice/kernel/plugin_registry.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <filesystem>

using namespace sluice::kernel;

namespace {

std::string fixture(const std::string& name) {
    return std::string(SLUICE_TEST_FIXTURE_DIR) + "/fixture_" + name + ".so";
}

bool contains(const std::string& text, const std::string& fragment) { return text.find(fragment) != std::string::npos; }

}  // namespace

class LoaderTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(LoaderTest);
    CPPUNIT_TEST(testLoadsGoodPlugin);
    CPPUNIT_TEST(testRefusesMissingEntrySymbol);
    CPPUNIT_TEST(testRefusesOtherAbiMajor);
    CPPUNIT_TEST(testRefusesNewerAbiMinor);
    CPPUNIT_TEST(testRefusesTooSmallDescriptor);
    CPPUNIT_TEST(testRefusesDuplicateTypeName);
    CPPUNIT_TEST(testRefusesDecliningEntry);
    CPPUNIT_TEST(testRefusesMissingAndNonLibraryFiles);
    CPPUNIT_TEST(testSamePluginTwiceIsRefused);
    CPPUNIT_TEST(testDirectoryLoadKeepsGoingPastRefusals);
    CPPUNIT_TEST_SUITE_END();

public:
    void setUp() override { registry_ = std::make_unique<PluginRegistry>(host_api()); }
    void tearDown() override { registry_.reset(); }

    void testLoadsGoodPlugin() {
        CPPUNIT_ASSERT_EQUAL(std::string(), registry_->load_file(fixture("good_fixture")));
        auto plugins = registry_->plugins();
        CPPUNIT_ASSERT_EQUAL(size_t(1), plugins.size());
        CPPUNIT_ASSERT_EQUAL(std::string("fixture-good"), plugins[0]->name);
        CPPUNIT_ASSERT_EQUAL(std::string("2.3.4"), plugins[0]->version);
        CPPUNIT_ASSERT_EQUAL(size_t(5), plugins[0]->components.size());
        const ComponentInfo* counter = registry_->find(SLUICE_KIND_SOURCE, "fixture_counter");
        CPPUNIT_ASSERT(counter);
        CPPUNIT_ASSERT(counter->schema);  // compiled
        CPPUNIT_ASSERT(registry_->find(SLUICE_KIND_TRANSFORM, "fixture_touch"));
        CPPUNIT_ASSERT(!registry_->find(SLUICE_KIND_SINK, "fixture_counter"));  // kinds are separate
    }

    void testRefusesMissingEntrySymbol() {
        expect_refused("no_entry_symbol", "no entry symbol 'sluice_plugin_entry'");
    }
    void testRefusesOtherAbiMajor() { expect_refused("abi_major_mismatch", "built for plugin ABI 2."); }
    void testRefusesNewerAbiMinor() { expect_refused("abi_minor_newer", "newer than this node's ABI"); }
    void testRefusesTooSmallDescriptor() { expect_refused("descriptor_too_small", "struct_size"); }
    void testRefusesDecliningEntry() { expect_refused("entry_declines", "returned no descriptor"); }

    void testRefusesDuplicateTypeName() {
        CPPUNIT_ASSERT_EQUAL(std::string(),
                             registry_->load_file(std::string(SLUICE_TEST_PLUGIN_DIR) + "/sluice-source-embedded.so"));
        expect_refused("duplicate_type", "source type 'embedded'");
        // The original registration is untouched.
        CPPUNIT_ASSERT_EQUAL(std::string("sluice-source-embedded"),
                             registry_->find(SLUICE_KIND_SOURCE, "embedded")->plugin->name);
    }

    void testRefusesMissingAndNonLibraryFiles() {
        std::string reason = registry_->load_file("/nonexistent/plugin.so");
        CPPUNIT_ASSERT_MESSAGE(reason, contains(reason, "cannot load"));
        reason = registry_->load_file(std::string(SLUICE_TEST_SOURCE_DIR) + "/README.md");
        CPPUNIT_ASSERT_MESSAGE(reason, contains(reason, "cannot load"));
        CPPUNIT_ASSERT_EQUAL(size_t(2), registry_->refusals().size());
    }

    void testSamePluginTwiceIsRefused() {
        CPPUNIT_ASSERT_EQUAL(std::string(), registry_->load_file(fixture("good_fixture")));
        std::string reason = registry_->load_file(fixture("good_fixture"));
        CPPUNIT_ASSERT_MESSAGE(reason, contains(reason, "already loaded"));
        CPPUNIT_ASSERT_EQUAL(size_t(1), registry_->plugins().size());
    }

    void testDirectoryLoadKeepsGoingPastRefusals() {
        size_t loaded = registry_->load_directory(SLUICE_TEST_FIXTURE_DIR);
        // good_fixture, create_fails, throws_in_write, throws_in_read and duplicate_type load
        // (nothing else declares `embedded` here); the rest are refused.
        CPPUNIT_ASSERT_EQUAL(size_t(5), loaded);
        CPPUNIT_ASSERT_EQUAL(size_t(5), registry_->refusals().size());
        for (const PluginRefusal& r : registry_->refusals()) CPPUNIT_ASSERT(!r.reason.empty());
    }

private:
    void expect_refused(const std::string& name, const std::string& fragment) {
        const size_t components_before = registry_->components(SLUICE_KIND_SOURCE).size();
        std::string reason = registry_->load_file(fixture(name));
        CPPUNIT_ASSERT_MESSAGE("expected a refusal for " + name, !reason.empty());
        CPPUNIT_ASSERT_MESSAGE(reason, contains(reason, fragment));
        auto refusals = registry_->refusals();
        CPPUNIT_ASSERT(!refusals.empty());
        CPPUNIT_ASSERT(contains(refusals.back().path, name));
        CPPUNIT_ASSERT_EQUAL(components_before, registry_->components(SLUICE_KIND_SOURCE).size());
    }

    std::unique_ptr<PluginRegistry> registry_;
};

CPPUNIT_TEST_SUITE_REGISTRATION(LoaderTest);

// Pins the C contract's layout: a change here is an ABI break that must bump SLUICE_ABI_MAJOR.
// The static_asserts fail the build; the runtime checks document the same facts in the report.
#include <sluice/plugin.h>
#include <sluice/sdk.hpp>
#include <sluice/testing.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <cstddef>

// x86-64 / aarch64 LP64 layout of ABI 1.0. Appending members is allowed (minor bump); moving
// or resizing any member listed here is not.
static_assert(SLUICE_ABI_MAJOR == 1, "ABI major changed: update the layout pins deliberately");
static_assert(sizeof(void*) == 8, "layout pins assume an LP64 platform");

static_assert(offsetof(sluice_batch, struct_size) == 0);
static_assert(offsetof(sluice_batch, format) == 4);
static_assert(offsetof(sluice_batch, data) == 8);
static_assert(offsetof(sluice_batch, size) == 16);
static_assert(offsetof(sluice_batch, count) == 24);
static_assert(offsetof(sluice_batch, continuation) == 32);

static_assert(offsetof(sluice_create_args, struct_size) == 0);
static_assert(offsetof(sluice_create_args, config_json) == 8);
static_assert(offsetof(sluice_create_args, system_json) == 16);
static_assert(offsetof(sluice_create_args, pipe_id) == 24);
static_assert(offsetof(sluice_create_args, node_json) == 32);

static_assert(offsetof(sluice_host_api, struct_size) == 0);
static_assert(offsetof(sluice_host_api, abi_major) == 4);
static_assert(offsetof(sluice_host_api, abi_minor) == 6);
static_assert(offsetof(sluice_host_api, log) == 8);
static_assert(offsetof(sluice_host_api, set_error) == 16);
static_assert(offsetof(sluice_host_api, emit_batch) == 24);
static_assert(offsetof(sluice_host_api, set_continuation) == 32);
static_assert(offsetof(sluice_host_api, get_secret) == 40);
static_assert(offsetof(sluice_host_api, lookup) == 48);
static_assert(offsetof(sluice_host_api, is_cancelled) == 56);
static_assert(offsetof(sluice_host_api, metric) == 64);
static_assert(offsetof(sluice_host_api, write_dataset) == 72);
static_assert(offsetof(sluice_host_api, read_dataset) == 80);
static_assert(offsetof(sluice_host_api, dataset_command) == 88);

static_assert(offsetof(sluice_source_vtable, create) == 8);
static_assert(offsetof(sluice_source_vtable, destroy) == 16);
static_assert(offsetof(sluice_source_vtable, read) == 24);
static_assert(offsetof(sluice_transform_vtable, transform) == 24);
static_assert(offsetof(sluice_transform_vtable, describe) == 32);
static_assert(offsetof(sluice_transform_vtable, dependents) == 40);
static_assert(offsetof(sluice_sink_vtable, write) == 24);
static_assert(offsetof(sluice_sink_vtable, begin_run) == 32);
static_assert(offsetof(sluice_sink_vtable, end_run) == 40);
static_assert(offsetof(sluice_storage_vtable, open) == 8);
static_assert(offsetof(sluice_storage_vtable, close) == 16);
static_assert(offsetof(sluice_storage_vtable, write) == 24);
static_assert(offsetof(sluice_storage_vtable, read) == 32);
static_assert(offsetof(sluice_storage_vtable, lookup) == 40);
static_assert(offsetof(sluice_storage_vtable, command) == 48);

static_assert(offsetof(sluice_component, struct_size) == 0);
static_assert(offsetof(sluice_component, kind) == 4);
static_assert(offsetof(sluice_component, type_name) == 8);
static_assert(offsetof(sluice_component, config_schema) == 16);
static_assert(offsetof(sluice_component, capabilities) == 24);
static_assert(offsetof(sluice_component, vtable) == 32);

static_assert(offsetof(sluice_plugin_descriptor, struct_size) == 0);
static_assert(offsetof(sluice_plugin_descriptor, abi_major) == 4);
static_assert(offsetof(sluice_plugin_descriptor, abi_minor) == 6);
static_assert(offsetof(sluice_plugin_descriptor, name) == 8);
static_assert(offsetof(sluice_plugin_descriptor, components) == 40);
static_assert(offsetof(sluice_plugin_descriptor, component_count) == 48);

static_assert(SLUICE_OK == 0 && SLUICE_RETRY == 1 && SLUICE_ERROR == 2 && SLUICE_FATAL == 3);
static_assert(SLUICE_KIND_SOURCE == 1 && SLUICE_KIND_SINK == 2 && SLUICE_KIND_TRANSFORM == 3 &&
              SLUICE_KIND_STORAGE == 4);

namespace {

// A tiny source used to check what the SDK's generated trampolines do with exceptions.
struct Thrower : sluice::Source {
    Thrower(const sluice::CreateArgs& args, sluice::Host&) {
        if (sluice::bool_or(args.config, "fail_create", false)) throw sluice::Error("no config for you", SLUICE_FATAL);
    }
    void read(sluice::Host&, const char* since, uint32_t) override {
        if (since && std::string(since) == "retry") throw sluice::RetryError("try later");
        if (since && std::string(since) == "std") throw std::runtime_error("plain exception");
        throw 7;
    }
};

}  // namespace

class SdkAbiTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(SdkAbiTest);
    CPPUNIT_TEST(testStructSizesArePlausible);
    CPPUNIT_TEST(testTrampolinesTurnExceptionsIntoStatuses);
    CPPUNIT_TEST_SUITE_END();

public:
    void testStructSizesArePlausible() {
        CPPUNIT_ASSERT_EQUAL(size_t(40), sizeof(sluice_batch));
        CPPUNIT_ASSERT_EQUAL(size_t(40), sizeof(sluice_component));
        CPPUNIT_ASSERT_EQUAL(size_t(56), sizeof(sluice_plugin_descriptor));
    }

    void testTrampolinesTurnExceptionsIntoStatuses() {
        sluice::detail::g_host_api = sluice::testing::FakeHost::api();
        const sluice_component* component = sluice::source<Thrower>("thrower", "{}", 0);
        auto* vtable = static_cast<const sluice_source_vtable*>(component->vtable);
        sluice::testing::FakeHost host;
        sluice_create_args args{sizeof(sluice_create_args), 0, "{\"fail_create\": true}", nullptr, "p", nullptr};
        CPPUNIT_ASSERT(vtable->create(&args, host.context()) == nullptr);
        CPPUNIT_ASSERT(host.last_error().find("no config for you") != std::string::npos);

        sluice_create_args ok_args{sizeof(sluice_create_args), 0, "{}", nullptr, "p", nullptr};
        void* instance = vtable->create(&ok_args, host.context());
        CPPUNIT_ASSERT(instance != nullptr);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_RETRY), vtable->read(instance, host.context(), "retry", 10));
        CPPUNIT_ASSERT(host.last_error().find("try later") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), vtable->read(instance, host.context(), "std", 10));
        CPPUNIT_ASSERT(host.last_error().find("plain exception") != std::string::npos);
        // Something that is not even a std::exception: the plugin's state is unknown, so FATAL.
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_FATAL), vtable->read(instance, host.context(), nullptr, 10));
        CPPUNIT_ASSERT(!host.last_error().empty());
        vtable->destroy(instance);
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(SdkAbiTest);

// The `dtl` transform plugin through the C contract (sluice-dtl.so loaded by sluice::testing):
// config errors with JSON pointers, rules, expression mode, exact big numbers, hops served by the
// fake host, describe/dependents, fail!.
#include <sluice/testing.hpp>

#include <cppunit/extensions/HelperMacros.h>

#include <dlfcn.h>

#include <string>

namespace {

using sluice::testing::FakeHost;
using sluice::testing::LoadedPlugin;

const std::string kPlugin = std::string(SLUICE_TEST_PLUGIN_DIR) + "/sluice-dtl.so";

std::string emitted_text(FakeHost& host) { return sluice::to_json(host.emitted()); }

const sluice_transform_vtable* vtable(const LoadedPlugin& plugin) {
    return static_cast<const sluice_transform_vtable*>(plugin.component(SLUICE_KIND_TRANSFORM, "dtl")->vtable);
}

// Raw batches as emitted (the fake host re-parses them with doubles; big numbers need the text).
std::string g_raw;
int32_t raw_emit(sluice_host_context* ctx, const sluice_batch* batch) {
    g_raw.assign(batch->data, batch->size);
    return FakeHost::api()->emit_batch(ctx, batch);
}

}  // namespace

class DtlPluginTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(DtlPluginTest);
    CPPUNIT_TEST(testDescriptor);
    CPPUNIT_TEST(testBadConfigReportsPointer);
    CPPUNIT_TEST(testTransformsBatch);
    CPPUNIT_TEST(testExpressionMode);
    CPPUNIT_TEST(testBigNumbersStayExact);
    CPPUNIT_TEST(testHopsThroughHostLookups);
    CPPUNIT_TEST(testDescribe);
    CPPUNIT_TEST(testDependents);
    CPPUNIT_TEST(testFailReportsError);
    CPPUNIT_TEST(testMalformedBatch);
    CPPUNIT_TEST(testNodeNamespaces);
    CPPUNIT_TEST_SUITE_END();

public:
    void testDescriptor() {
        FakeHost host;
        LoadedPlugin plugin(kPlugin, host);
        CPPUNIT_ASSERT_EQUAL(std::string("sluice-dtl"), std::string(plugin.descriptor().name));
        const sluice_component* c = plugin.component(SLUICE_KIND_TRANSFORM, "dtl");
        CPPUNIT_ASSERT(std::string(c->config_schema).find("\"expression\"") != std::string::npos);
        CPPUNIT_ASSERT(vtable(plugin)->describe != nullptr);
        CPPUNIT_ASSERT(vtable(plugin)->dependents != nullptr);
    }
    void testBadConfigReportsPointer() {
        FakeHost host;
        LoadedPlugin plugin(kPlugin, host);
        auto t = plugin.create(SLUICE_KIND_TRANSFORM, "dtl",
                               R"({"type":"dtl","rules":{"default":[["copy","_id"],["add","x",["concatt","a"]]]}})");
        CPPUNIT_ASSERT(!t.valid());
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/default/1/2: unknown function \"concatt\" (did you mean \"concat\"?)"),
                             host.last_error());
        auto t2 = plugin.create(SLUICE_KIND_TRANSFORM, "dtl", R"({"type":"dtl","rules":{"default":[["add","x"]]}})");
        CPPUNIT_ASSERT(!t2.valid());
        CPPUNIT_ASSERT(host.last_error().rfind("/rules/default/0: ", 0) == 0);
    }
    void testTransformsBatch() {
        FakeHost host;
        LoadedPlugin plugin(kPlugin, host);
        auto t = plugin.create(SLUICE_KIND_TRANSFORM, "dtl", R"({"type":"dtl","rules":{"default":[
            ["copy","*"],["add","name",["concat","_S.first"," ","_S.last"]],["rename","age","years"],
            ["add","email",["lower","_S.email"]],["filter",["gte","_S.age",18]]]}})");
        CPPUNIT_ASSERT(t.valid());
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK),
                             t.transform(R"([{"_id":"1","first":"Ann","last":"Lee","age":30,"email":"A@X.NO"},
                                             {"_id":"2","first":"Bo","last":"Ek","age":12,"email":"B@X.SE"}])"));
        CPPUNIT_ASSERT_EQUAL(size_t(1), host.emitted_batches());
        CPPUNIT_ASSERT_EQUAL(
            std::string(R"([{"_id":"1","first":"Ann","last":"Lee","age":30,"email":"a@x.no","name":"Ann Lee","years":30},)"
                        R"({"_id":"2","first":"Bo","last":"Ek","age":12,"email":"b@x.se","name":"Bo Ek","years":12,"_filtered":true}])"),
            emitted_text(host));
    }
    void testExpressionMode() {
        FakeHost host;
        LoadedPlugin plugin(kPlugin, host);
        auto t = plugin.create(SLUICE_KIND_TRANSFORM, "dtl", R"({"type":"dtl","expression":["+","_S.n",1]})");
        CPPUNIT_ASSERT(t.valid());
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), t.transform(R"([{"_id":"a","n":1},{"n":2.5},{"_id":"c"}])"));
        CPPUNIT_ASSERT_EQUAL(std::string(R"([{"_id":"a","value":2},{"_id":"0","value":3.5},{"_id":"c","value":null}])"),
                             emitted_text(host));
        auto bad = plugin.create(SLUICE_KIND_TRANSFORM, "dtl", R"({"type":"dtl","expression":["+","_S.n"]})");
        CPPUNIT_ASSERT(!bad.valid());
        CPPUNIT_ASSERT_EQUAL(std::string("/expression: function \"+\" takes 2 arguments, got 1"), host.last_error());
    }
    void testBigNumbersStayExact() {
        FakeHost host;
        LoadedPlugin plugin(kPlugin, host);
        // Re-enter the plugin with a host table whose emit keeps the raw text.
        static sluice_host_api table = *FakeHost::api();
        table.emit_batch = &raw_emit;
        void* handle = dlopen(kPlugin.c_str(), RTLD_NOW | RTLD_LOCAL);
        auto entry = reinterpret_cast<sluice_plugin_entry_fn>(dlsym(handle, SLUICE_ENTRY_SYMBOL));
        entry(&table);
        auto t = plugin.create(SLUICE_KIND_TRANSFORM, "dtl", R"({"type":"dtl","rules":{"default":[["copy","*"],
            ["add","next",["+","_S.n",1]],["add","dec",["+","_S.d","~f0.000000000000000000001"]],
            ["add","sum",["sum","_S.list"]]]}})");
        int32_t status = t.transform(R"([{"_id":"a","n":123456789012345678901234567890,"d":"~f1.5",
                                          "list":[18446744073709551615,1]}])");
        entry(FakeHost::api());
        dlclose(handle);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), status);
        CPPUNIT_ASSERT_EQUAL(std::string(R"([{"_id":"a","n":123456789012345678901234567890,"d":"~f1.5",)"
                                         R"("list":[18446744073709551615,1],"next":123456789012345678901234567891,)"
                                         R"("dec":"~f1.500000000000000000001","sum":18446744073709551616}])"),
                             g_raw);
    }
    void testHopsThroughHostLookups() {
        FakeHost host;
        host.dataset("Address").push_back(R"({"_id":"a1","city":"Oslo"})");
        host.dataset("Address").push_back(R"({"_id":"a2","city":"Bergen"})");
        LoadedPlugin plugin(kPlugin, host);
        auto t = plugin.create(SLUICE_KIND_TRANSFORM, "dtl", R"({"type":"dtl","rules":{"default":[["copy","_id"],
            ["add","city",["first",["hops",{"datasets":["Address a"],"where":[["eq","_S.addr","a._id"]],
                                            "return":["list","a.city"]}]]]]}})");
        CPPUNIT_ASSERT(t.valid());
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK),
                             t.transform(R"([{"_id":"p1","addr":"a2"},{"_id":"p2","addr":"a1"},{"_id":"p3","addr":"zz"}])"));
        CPPUNIT_ASSERT_EQUAL(std::string(R"([{"_id":"p1","city":["Bergen"]},{"_id":"p2","city":["Oslo"]},{"_id":"p3","city":null}])"),
                             emitted_text(host));
        CPPUNIT_ASSERT_EQUAL(1.0, host.metrics().at("dtl_lookups"));  // one lookup for the batch
    }
    void testDescribe() {
        FakeHost host;
        LoadedPlugin plugin(kPlugin, host);
        auto t = plugin.create(SLUICE_KIND_TRANSFORM, "dtl", R"({"type":"dtl","rules":{"default":[["copy","_id"],
            ["add","o",["apply-hops","order",{"datasets":["orders o"],"where":[["eq","_S._id","o.cust_id"]]}]]],
            "order":[["copy","*"]]}})");
        std::string out;
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), vtable(plugin)->describe(t.handle(), host.context(),
                                                                           &sluice::detail::append_to_string, &out));
        CPPUNIT_ASSERT_EQUAL(std::string(R"({"dependencies":[{"dataset":"orders"}],"joins":[{"dataset":"orders","property":"cust_id"}]})"),
                             out);
    }
    void testDependents() {
        FakeHost host;
        host.dataset("Address").push_back(R"({"_id":"a1","country":"NO"})");
        host.dataset("Address").push_back(R"({"_id":"a2","country":"SE"})");
        LoadedPlugin plugin(kPlugin, host);
        auto t = plugin.create(SLUICE_KIND_TRANSFORM, "dtl", R"({"type":"dtl","rules":{"default":[["copy","_id"],
            ["add","c",["hops",{"datasets":["Address a","Country c"],
                                "where":[["eq","_S.address","a._id"],["eq","a.country","c._id"]]}]]]}})");
        std::string changed = R"([{"_id":"NO","name":"Norway"}])", out;
        sluice_batch batch = sluice::testing::Instance::make_batch(changed);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK),
                             vtable(plugin)->dependents(t.handle(), host.context(), "Country", &batch,
                                                        &sluice::detail::append_to_string, &out));
        CPPUNIT_ASSERT_EQUAL(std::string(R"([{"property":"address","values":["a1"]}])"), out);
        out.clear();
        std::string changed_addr = R"([{"_id":"a2","country":"SE"}])";
        batch = sluice::testing::Instance::make_batch(changed_addr);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK),
                             vtable(plugin)->dependents(t.handle(), host.context(), "Address", &batch,
                                                        &sluice::detail::append_to_string, &out));
        CPPUNIT_ASSERT_EQUAL(std::string(R"([{"property":"address","values":["a2"]}])"), out);
    }
    void testFailReportsError() {
        FakeHost host;
        LoadedPlugin plugin(kPlugin, host);
        auto t = plugin.create(SLUICE_KIND_TRANSFORM, "dtl",
                               R"({"type":"dtl","rules":{"default":[["fail!",["concat","no good: ","_S._id"]]]}})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), t.transform(R"([{"_id":"x"}])"));
        CPPUNIT_ASSERT_EQUAL(std::string("fail!: no good: x"), host.last_error());
        CPPUNIT_ASSERT_EQUAL(size_t(0), host.emitted_batches());
    }
    void testNodeNamespaces() {
        // `ni` collapses URIs with the namespaces of the node metadata handed to `create`
        FakeHost host;
        LoadedPlugin plugin(kPlugin, host);
        const sluice_transform_vtable* vt = vtable(plugin);
        std::string config = R"({"type":"dtl","expression":["ni","_S.u"]})";
        std::string node = R"({"_id":"node","type":"metadata","namespaces":{"default":{"crm":"http://crm.test/"}}})";
        sluice_create_args args{sizeof(sluice_create_args), 0, config.c_str(), nullptr, "p", node.c_str()};
        void* handle = vt->create(&args, host.context());
        CPPUNIT_ASSERT(handle != nullptr);
        std::string in = R"([{"_id":"a","u":"~rhttp://crm.test/7"}])";
        sluice_batch batch = sluice::testing::Instance::make_batch(in);
        int32_t status = vt->transform(handle, host.context(), &batch);
        vt->destroy(handle);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), status);
        CPPUNIT_ASSERT_EQUAL(std::string(R"([{"_id":"a","value":"~:crm:7"}])"), emitted_text(host));
    }
    void testMalformedBatch() {
        FakeHost host;
        LoadedPlugin plugin(kPlugin, host);
        auto t = plugin.create(SLUICE_KIND_TRANSFORM, "dtl", R"({"type":"dtl","rules":{"default":[["copy","*"]]}})");
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_ERROR), t.transform("[{\"_id\":"));
        CPPUNIT_ASSERT(host.last_error().find("malformed JSON") != std::string::npos);
        CPPUNIT_ASSERT_EQUAL(int32_t(SLUICE_OK), t.transform("[]"));
        CPPUNIT_ASSERT_EQUAL(size_t(0), host.emitted_batches());
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DtlPluginTest);

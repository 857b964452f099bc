// DTL engine: hops, apply-hops, lookup-entity and dependency tracking (reference §4.4, §4.5, §2.6),
// with lookups served by an in-memory provider that counts its calls.
#include "dtl_test_util.hpp"

using dtltest::MapLookups;
using dtltest::run;

namespace {

void fill(MapLookups& db) {
    db.add("Address", R"([{"_id":"a1","street":"Main 1","type":"SHIPPING","country":"NO"},
                          {"_id":"a2","street":"Side 2","type":"BILLING","country":"SE"},
                          {"_id":"a3","street":"Back 3","type":"OTHER","country":"NO"},
                          {"_id":"a4","street":"Gone","type":"SHIPPING","country":"NO","_deleted":true}])");
    db.add("Country", R"([{"_id":"NO","name":"Norway"},{"_id":"SE","name":"Sweden"}])");
    db.add("orders", R"([{"_id":"o2","cust_id":"p1","amount":30},{"_id":"o1","cust_id":"p1","amount":20},
                         {"_id":"o3","cust_id":"p2","amount":5}])");
    db.add("tree", R"([{"_id":"t1","parent":"t2"},{"_id":"t2","parent":"t3"},{"_id":"t3","parent":"t1"}])");
}

std::string dependents_of(const std::string& rules, const std::string& dataset, const std::string& changed,
                          MapLookups* db, std::vector<std::string>* warnings = nullptr) {
    rapidjson::Document cfg, ch;
    sluice::dtl::parse_json("{\"type\":\"dtl\",\"rules\":" + rules + "}", cfg);
    sluice::dtl::parse_json(changed, ch);
    auto program = sluice::dtl::compile_transform(cfg);
    std::string out;
    sluice::dtl::dependents(*program, dataset, ch, db, out, warnings);
    return dtltest::norm(out);
}

}  // namespace

class DtlHopsTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(DtlHopsTest);
    CPPUNIT_TEST(testSimpleJoinOneLookupPerBatch);
    CPPUNIT_TEST(testTwoAliasesAndFilters);
    CPPUNIT_TEST(testOverlapJoinOnLists);
    CPPUNIT_TEST(testReturnTemplateAndAliasList);
    CPPUNIT_TEST(testApplyHopsWorkedExample);
    CPPUNIT_TEST(testChainedSpecs);
    CPPUNIT_TEST(testJoinOnTargetValue);
    CPPUNIT_TEST(testRecurse);
    CPPUNIT_TEST(testSubsets);
    CPPUNIT_TEST(testLookupEntity);
    CPPUNIT_TEST(testDecisionsWaitForJoins);
    CPPUNIT_TEST(testCompileErrors);
    CPPUNIT_TEST(testDescribeJoins);
    CPPUNIT_TEST(testDependentsOneHop);
    CPPUNIT_TEST(testDependentsMultiHop);
    CPPUNIT_TEST(testDependentsNotTracked);
    CPPUNIT_TEST_SUITE_END();

public:
    void testSimpleJoinOneLookupPerBatch() {
        MapLookups db;
        fill(db);
        std::string rules = R"({"default":[["copy","_id"],
            ["add","addr",["hops",{"datasets":["Address a"],"where":["eq","_S.address","a._id"]}]]]})";
        DTL_EQ(R"([{"_id":"p1","addr":[{"_id":"a1","street":"Main 1","type":"SHIPPING","country":"NO"}]},
                   {"_id":"p2","addr":[]},{"_id":"p3","addr":[]},
                   {"_id":"p4","addr":[{"_id":"a2","street":"Side 2","type":"BILLING","country":"SE"}]}])",
               run(rules, R"([{"_id":"p1","address":"a1"},{"_id":"p2","address":"nope"},{"_id":"p3"},
                             {"_id":"p4","address":"a2"}])", &db));
        CPPUNIT_ASSERT_EQUAL(1, db.calls);  // the whole batch in one lookup
        // deleted joined entities are never returned
        db.calls = 0;
        DTL_EQ(R"([{"_id":"p5","addr":[]}])", run(rules, R"([{"_id":"p5","address":"a4"}])", &db));
    }
    void testTwoAliasesAndFilters() {
        MapLookups db;
        fill(db);
        std::string rules = R"({"default":[["copy","_id"],
            ["add","countries",["hops",{"datasets":["Address a","Country c"],
               "where":[["eq","_S.address","a._id"],["eq","c._id","a.country"],
                        ["or",["eq","a.type","SHIPPING"],["eq","a.type","BILLING"]]],
               "return":"c"}]]]})";
        DTL_EQ(R"([{"_id":"p1","countries":[{"_id":"NO","name":"Norway"},{"_id":"SE","name":"Sweden"}]},
                   {"_id":"p2","countries":[]}])",
               run(rules, R"([{"_id":"p1","address":["a2","a1","a3"]},{"_id":"p2","address":"a3"}])", &db));
        CPPUNIT_ASSERT_EQUAL(2, db.calls);  // one per join step, for the whole batch
    }
    void testOverlapJoinOnLists() {
        MapLookups db;
        db.add("tags", R"([{"_id":"t1","names":["x","y"]},{"_id":"t2","names":["z"]},{"_id":"t3","names":"y"}])");
        std::string rules = R"({"default":[["copy","_id"],
            ["add","ids",["hops",{"datasets":["tags t"],"where":[["eq","_S.want","t.names"]],
                                  "return":["list","t._id"]}]]]})";
        DTL_EQ(R"([{"_id":"s","ids":[["t1"],["t3"]]}])", run(rules, R"([{"_id":"s","want":["y","q"]}])", &db));
    }
    void testReturnTemplateAndAliasList() {
        MapLookups db;
        fill(db);
        std::string spec = R"({"datasets":["Address a","Country c"],
               "where":[["eq","_S.address","a._id"],["eq","a.country","c._id"]]})";
        std::string with_template = spec.substr(0, spec.size() - 1) + R"(,"return":{"street":"a.street","country":"c.name"}})";
        DTL_EQ(R"([{"_id":"p","x":[{"street":"Main 1","country":"Norway"}]}])",
               run(R"({"default":[["copy","_id"],["add","x",["hops",)" + with_template + "]]]}",
                   R"([{"_id":"p","address":"a1"}])", &db));
        std::string with_list = spec.substr(0, spec.size() - 1) + R"(,"return":"c,a"})";
        DTL_EQ(R"([{"_id":"p","x":["NO","a1"]}])",
               run(R"({"default":[["copy","_id"],["add","x",["hops",)" + with_list + R"(]],["add","x","_T.x._id"]]})",
                   R"([{"_id":"p","address":"a1"}])", &db));
    }
    void testApplyHopsWorkedExample() {
        MapLookups db;
        fill(db);
        // reference §4.6
        std::string rules = R"({"default":[["copy","_id"],["add","type","customer"],["add","name",["upper","_S.name"]],
             ["add","orders",["sorted","_.amount",["apply-hops","order",{"datasets":["orders o"],
                                                     "where":[["eq","_S._id","o.cust_id"]]}]]],
             ["add","order_count",["count","_T.orders"]],["filter",["gt","_T.order_count",1]]],
             "order":[["copy","_id"],["add","amount","_S.amount"]]})";
        DTL_EQ(R"([{"_id":"p1","type":"customer","name":"ANN","orders":[{"_id":"o1","amount":20},{"_id":"o2","amount":30}],"order_count":2},
                   {"_id":"p2","type":"customer","name":"BOB","orders":[{"_id":"o3","amount":5}],"order_count":1,"_filtered":true}])",
               run(rules, R"([{"_id":"p1","name":"ann"},{"_id":"p2","name":"bob"}])", &db));
    }
    void testChainedSpecs() {
        MapLookups db;
        fill(db);
        std::string rules = R"({"default":[["copy","_id"],["add","c",["hops",
            {"datasets":["Address a"],"where":["eq","_S.address","a._id"]},
            {"datasets":["Country c"],"where":["eq","_S.country","c._id"]}]]]})";
        DTL_EQ(R"([{"_id":"p","c":[{"_id":"NO","name":"Norway"},{"_id":"SE","name":"Sweden"}]}])",
               run(rules, R"([{"_id":"p","address":["a1","a2"]}])", &db));
    }
    void testJoinOnTargetValue() {
        MapLookups db;
        fill(db);
        // the bound side may read _T (what earlier transforms wrote), not only _S
        std::string rules = R"({"default":[["copy","_id"],["add","key",["upper","_S.c"]],
            ["add","n",["hops",{"datasets":["Country c"],"where":["eq","_T.key","c._id"],"return":["list","c.name"]}]]]})";
        DTL_EQ(R"([{"_id":"p","key":"SE","n":[["Sweden"]]}])", run(rules, R"([{"_id":"p","c":"se"}])", &db));
    }
    void testRecurse() {
        MapLookups db;
        fill(db);
        std::string rules = R"({"default":[["copy","_id"],["add","up",["hops",
            {"datasets":["tree t"],"where":["eq","_S.parent","t._id"],"recurse":true}]],["add","up","_T.up._id"]]})";
        // t1 → t2 → t3 → t1 (a cycle): each entity once
        DTL_EQ(R"([{"_id":"t1","up":["t2","t3","t1"]}])", run(rules, R"([{"_id":"t1","parent":"t2"}])", &db));
        std::string excl = R"({"default":[["copy","_id"],["add","up",["hops",
            {"datasets":["tree t"],"where":["eq","_S.parent","t._id"],"recurse":true,"exclude_root":true,"max_depth":5}]],
            ["add","up","_T.up._id"]]})";
        DTL_EQ(R"([{"_id":"t1","up":["t2","t3"]}])", run(excl, R"([{"_id":"t1","parent":"t2"}])", &db));
        std::string shallow = R"({"default":[["copy","_id"],["add","up",["hops",
            {"datasets":["tree t"],"where":["eq","_S.parent","t._id"],"recurse":true,"max_depth":1}]],["add","up","_T.up._id"]]})";
        DTL_EQ(R"([{"_id":"t1","up":["t2"]}])", run(shallow, R"([{"_id":"t1","parent":"t2"}])", &db));
    }
    void testSubsets() {
        MapLookups db;
        fill(db);
        std::string rules = R"({"default":[["copy","_id"],["add","a",["hops",
            {"datasets":["Address a"],"where":["eq","_S.address","a._id"],"subsets":{"a":["eq","_S.country","NO"]},
             "return":["list","a._id"]}]]]})";
        DTL_EQ(R"([{"_id":"p","a":[["a1"],["a3"]]}])", run(rules, R"([{"_id":"p","address":["a1","a2","a3"]}])", &db));
    }
    void testLookupEntity() {
        MapLookups db;
        fill(db);
        DTL_EQ(R"([{"_id":"p","c":{"_id":"SE","name":"Sweden"},"none":null,"many":[{"_id":"NO","name":"Norway"},null]}])",
               run(R"({"default":[["copy","_id"],["add","c",["lookup-entity","Country","_S.country"]],
                                 ["add","none",["lookup-entity","Country","XX"]],
                                 ["add","many",["lookup-entity","Country",["list","NO","XX"]]]]})",
                   R"([{"_id":"p","country":"SE"}])", &db));
    }
    void testDecisionsWaitForJoins() {
        // fail! and filter decided on joined data run only once the data is fetched
        MapLookups db;
        fill(db);
        std::string rules = R"({"default":[["copy","_id"],
            ["if",["is-empty",["hops",{"datasets":["Country c"],"where":["eq","_S.c","c._id"]}]],["fail!","no country"]],
            ["add","n",["hops",{"datasets":["Country c"],"where":["eq","_S.c","c._id"],"return":["list","c.name"]}]]]})";
        DTL_EQ(R"([{"_id":"p","n":[["Norway"]]}])", run(rules, R"([{"_id":"p","c":"NO"}])", &db));
        CPPUNIT_ASSERT_THROW(run(rules, R"([{"_id":"p","c":"XX"}])", &db), sluice::dtl::RuntimeError);
    }
    void testCompileErrors() {
        std::string err = dtltest::compile_error(R"({"type":"dtl","rules":{"default":[["add","x",["hops",
            {"datasets":["A a","B b"],"where":[["eq","_S.x","a._id"],["eq","b.y","literal"]]}]]]}})");
        CPPUNIT_ASSERT(err.find("/rules/default/0/2/1/where: alias \"b\" is not reachable from _S") == 0);
        err = dtltest::compile_error(R"({"type":"dtl","rules":{"default":[["add","x",["hops",{"where":[]}]]]}})");
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/default/0/2/1: the hops spec has no \"datasets\""), err);
        err = dtltest::compile_error(R"({"type":"dtl","rules":{"default":[["add","x",["hops",
            {"datasets":["A a"],"where":[["eq","_S.x",["upperr","a._id"]]]}]]]}})");
        CPPUNIT_ASSERT(err.find("/rules/default/0/2/1/where/0/2: unknown function \"upperr\"") == 0);
        err = dtltest::compile_error(R"({"type":"dtl","rules":{"default":[["add","x",["apply-hops","nope",
            {"datasets":["A a"],"where":[["eq","_S.x","a._id"]]}]]]}})");
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/default/0/2/1: unknown rule \"nope\""), err);
    }
    void testDescribeJoins() {
        rapidjson::Document cfg;
        sluice::dtl::parse_json(R"({"type":"dtl","rules":{"default":[
            ["add","a",["hops",{"datasets":["Address a","Country c"],"where":[["eq","_S.address","a._id"],["eq","c._id","a.country"]]}]],
            ["add","b",["hops",{"datasets":["orders o"],"where":[["eq","_S._id","o.cust_id"]],"track-dependencies":false}]],
            ["add","c",["apply","sub","_S.x"]]],
            "sub":[["add","d",["hops",{"datasets":["other x"],"where":[["eq","_S.k","x._id"]]}]]]}})", cfg);
        auto program = sluice::dtl::compile_transform(cfg);
        std::vector<std::string> tracked = sluice::dtl::tracked_datasets(*program);
        CPPUNIT_ASSERT_EQUAL(size_t(2), tracked.size());
        CPPUNIT_ASSERT_EQUAL(std::string("Address"), tracked[0]);
        CPPUNIT_ASSERT_EQUAL(std::string("Country"), tracked[1]);
        CPPUNIT_ASSERT_EQUAL(size_t(4), sluice::dtl::joined_properties(*program).size());
    }
    void testDependentsOneHop() {
        std::string rules = R"({"default":[["copy","_id"],["add","o",["apply-hops","order",
            {"datasets":["orders o"],"where":[["eq","_S._id","o.cust_id"]]}]]],"order":[["copy","*"]]})";
        DTL_EQ(R"([{"property":"_id","values":["p1","p2"]}])",
               dependents_of(rules, "orders", R"([{"_id":"o1","cust_id":"p1"},{"_id":"o9","cust_id":["p2","p1"]},{"_id":"o8"}])",
                             nullptr));
        DTL_EQ("[]", dependents_of(rules, "other", R"([{"_id":"o1","cust_id":"p1"}])", nullptr));
    }
    void testDependentsMultiHop() {
        MapLookups db;
        fill(db);
        std::string rules = R"({"default":[["copy","_id"],["add","c",["hops",
            {"datasets":["Address a","Country c"],"where":[["eq","_S.addr.id","a._id"],["eq","c._id","a.country"]]}]]]})";
        // Address changed: main entities whose addr.id is the address id
        DTL_EQ(R"([{"property":"addr.id","values":["a2"]}])",
               dependents_of(rules, "Address", R"([{"_id":"a2","country":"SE"}])", &db));
        // Country changed: walk back through Address (one lookup), then to the main source
        DTL_EQ(R"([{"property":"addr.id","values":["a1","a3"]}])",
               dependents_of(rules, "Country", R"([{"_id":"NO","name":"Noreg"}])", &db));
        CPPUNIT_ASSERT_EQUAL(1, db.calls);
        // a chain of specs: _S of the second spec is the first spec's result
        std::string chain = R"({"default":[["copy","_id"],["add","c",["hops",
            {"datasets":["Address a"],"where":["eq","_S.address","a._id"]},
            {"datasets":["Country c"],"where":["eq","_S.country","c._id"]}]]]})";
        DTL_EQ(R"([{"property":"address","values":["a2"]}])",
               dependents_of(chain, "Country", R"([{"_id":"SE"}])", &db));
    }
    void testDependentsNotTracked() {
        std::vector<std::string> warnings;
        std::string rules = R"({"default":[["copy","_id"],["add","o",["hops",
            {"datasets":["orders o"],"where":[["eq",["lower","_S.key"],"o.cust_id"]]}]]]})";
        DTL_EQ("[]", dependents_of(rules, "orders", R"([{"_id":"o1","cust_id":"p1"}])", nullptr, &warnings));
        CPPUNIT_ASSERT_EQUAL(size_t(1), warnings.size());
        std::string off = R"({"default":[["copy","_id"],["add","o",["hops",
            {"datasets":["orders o"],"where":[["eq","_S._id","o.cust_id"]],"track-dependencies":false}]]]})";
        DTL_EQ("[]", dependents_of(off, "orders", R"([{"_id":"o1","cust_id":"p1"}])", nullptr));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DtlHopsTest);

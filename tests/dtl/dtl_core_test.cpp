// DTL engine: paths, variables, compile errors, logic, comparisons, conditionals, nulls, type
// tests and every transform function (reference §4.1, §4.2, §4.3 "Boolean logic" … "Nulls").
#include "dtl_test_util.hpp"

using dtltest::eval;
using dtltest::run;

class DtlCoreTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(DtlCoreTest);
    CPPUNIT_TEST(testPaths);
    CPPUNIT_TEST(testQuotedPathElements);
    CPPUNIT_TEST(testPathMapsOverLists);
    CPPUNIT_TEST(testDynamicIds);
    CPPUNIT_TEST(testLiteralsAndStrings);
    CPPUNIT_TEST(testCompileErrorPointers);
    CPPUNIT_TEST(testCompileErrorArityAndPaths);
    CPPUNIT_TEST(testCompileErrorUnknownRule);
    CPPUNIT_TEST(testLogic);
    CPPUNIT_TEST(testAllAny);
    CPPUNIT_TEST(testEqIsListEquality);
    CPPUNIT_TEST(testOrderingComparisons);
    CPPUNIT_TEST(testConditionalExpressions);
    CPPUNIT_TEST(testNulls);
    CPPUNIT_TEST(testTypeTests);
    CPPUNIT_TEST(testBoolean);
    CPPUNIT_TEST(testAddAndTargetReads);
    CPPUNIT_TEST(testAddIfAndDefault);
    CPPUNIT_TEST(testCopyWildcards);
    CPPUNIT_TEST(testRenameRemove);
    CPPUNIT_TEST(testMakeNi);
    CPPUNIT_TEST(testMergeAndMergeUnion);
    CPPUNIT_TEST(testIfCaseTransforms);
    CPPUNIT_TEST(testFilterAndDiscard);
    CPPUNIT_TEST(testCreateAndCreateChild);
    CPPUNIT_TEST(testFailAndTrip);
    CPPUNIT_TEST(testIdRequired);
    CPPUNIT_TEST(testDeletedPropagates);
    CPPUNIT_TEST(testApplyWithParentAndRoot);
    CPPUNIT_TEST(testApplyRecursion);
    CPPUNIT_TEST(testCommentIsNotEvaluated);
    CPPUNIT_TEST(testTriggerOn);
    CPPUNIT_TEST(testExpressionMode);
    CPPUNIT_TEST(testWorkedExampleFromDocs);
    CPPUNIT_TEST_SUITE_END();

public:
    void testPaths() {
        std::string s = R"({"_id":"1","a":{"b":{"c":5}},"n":null,"l":[1,2]})";
        DTL_EQ("5", eval(R"("_S.a.b.c")", s));
        DTL_EQ("null", eval(R"("_S.a.x.c")", s));
        DTL_EQ("null", eval(R"("_S.n.x")", s));
        DTL_EQ(s, eval(R"("_S.")", s));
        DTL_EQ(s, eval(R"("_S")", s));
        DTL_EQ("[1,2]", eval(R"("_S.l")", s));
        // `_.` inside function expressions
        DTL_EQ("[2,3]", eval(R"(["map", ["+", "_.", 1], "_S.l"])", s));
    }
    void testQuotedPathElements() {
        std::string s = R"({"_id":"1","foo":{"john.doe's":{"bar":7}}})";
        DTL_EQ("7", eval(R"("_S.foo.'john.doe''s'.bar")", s));
    }
    void testPathMapsOverLists() {
        std::string s = R"({"_id":"1","orders":[{"amount":1},{"amount":null},{"x":1},{"amount":[3,4]}]})";
        DTL_EQ("[1,3,4]", eval(R"("_S.orders.amount")", s));
    }
    void testDynamicIds() {
        DTL_EQ(R"(["~:a1"])", eval(R"("_S.$ids")", R"({"_id":"a1"})"));
        DTL_EQ(R"(["~:x:1"])", eval(R"("_S.$ids")", R"({"_id":"a1","$ids":["~:x:1"]})"));
    }
    void testLiteralsAndStrings() {
        DTL_EQ(R"("hello")", eval(R"("hello")"));
        DTL_EQ(R"({"a":1})", eval(R"({"a":1})"));
        DTL_EQ(R"(["_S.x", ["upper", "a"]])", eval(R"(["literal", ["_S.x", ["upper", "a"]]])"));
        DTL_EQ("[]", eval(R"(["list"])"));
        DTL_EQ(R"([1,"a",null])", eval(R"(["list", 1, "a", null])"));
    }
    void testCompileErrorPointers() {
        std::string err = dtltest::compile_error(
            R"({"type":"dtl","rules":{"default":[["copy","*"],["add","a","b"],["add","x",["concatt","_S.a"]]]}})");
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/default/2/2: unknown function \"concatt\" (did you mean \"concat\"?)"), err);
        err = dtltest::compile_error(R"({"type":"dtl","rules":{"default":[["ad","a","b"]]}})");
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/default/0: unknown transform function \"ad\" (did you mean \"add\"?)"), err);
        // nested in an if branch and in another rule; '/' in a rule name is escaped
        err = dtltest::compile_error(
            R"({"type":"dtl","rules":{"default":[["copy","_id"]],"a/b":[["if",true,[["add","x",1],["add","y",["nope"]]]]]}})");
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/a~1b/0/2/1/2: unknown function \"nope\""), err);
        CPPUNIT_ASSERT(dtltest::compile_error(R"({"type":"dtl","rules":{"x":[]}})").find("no \"default\" rule") !=
                       std::string::npos);
        CPPUNIT_ASSERT_EQUAL(std::string(""), dtltest::compile_error(R"({"type":"dtl","rules":{"default":[]}})"));
    }
    void testCompileErrorArityAndPaths() {
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/default/0/2: function \"upper\" takes 1 argument, got 2"),
                             dtltest::expr_error(R"(["upper","a","b"])"));
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/default/0: transform \"add\" takes 2 arguments, got 1"),
                             dtltest::compile_error(R"({"type":"dtl","rules":{"default":[["add","x"]]}})"));
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/default/0/2/1: bad path \"_S.a..b\": empty path element"),
                             dtltest::expr_error(R"(["upper","_S.a..b"])"));
        CPPUNIT_ASSERT(dtltest::expr_error(R"(["add","a","b"])").find("is a transform function") != std::string::npos);
        CPPUNIT_ASSERT(dtltest::compile_error(R"({"type":"dtl","rules":{"default":[["upper","a"]]}})")
                           .find("is an expression function") != std::string::npos);
        CPPUNIT_ASSERT(dtltest::expr_error(R"(["encrypt-pgp","k","v"])").find("not supported") != std::string::npos);
    }
    void testCompileErrorUnknownRule() {
        CPPUNIT_ASSERT_EQUAL(std::string("/rules/default/0/2/1: unknown rule \"ordr\" (did you mean \"order\"?)"),
                             dtltest::compile_error(
                                 R"({"type":"dtl","rules":{"default":[["add","o",["apply","ordr","_S.o"]]],"order":[]}})"));
    }
    void testLogic() {
        DTL_EQ("true", eval(R"(["and", true, 1, "x"])"));
        DTL_EQ("false", eval(R"(["and", true, []])"));
        DTL_EQ("true", eval(R"(["or", null, false, ["list", 0]])"));
        DTL_EQ("false", eval(R"(["or", null, false, []])"));
        DTL_EQ("true", eval(R"(["not", null])"));
        DTL_EQ("false", eval(R"(["not", true, 1])"));
        DTL_EQ("true", eval(R"(["not", true, false])"));
    }
    void testAllAny() {
        DTL_EQ("true", eval(R"(["all", ["list", 1, true, "a"]])"));
        DTL_EQ("false", eval(R"(["all", ["list", 1, null]])"));
        DTL_EQ("false", eval(R"(["all", ["list"]])"));
        DTL_EQ("true", eval(R"(["any", ["gt", "_.", 2], ["list", 1, 3]])"));
        DTL_EQ("false", eval(R"(["any", ["gt", "_.", 5], ["list", 1, 3]])"));
    }
    void testEqIsListEquality() {
        DTL_EQ("true", eval(R"(["eq", 1, ["list", 1]])"));
        DTL_EQ("false", eval(R"(["eq", ["list", 1, 2], ["list", 2, 1]])"));
        DTL_EQ("true", eval(R"(["eq", 1, 1.0])"));
        DTL_EQ("true", eval(R"(["eq", "~f1.50", 1.5])"));
        DTL_EQ("false", eval(R"(["eq", "1", 1])"));
        DTL_EQ("true", eval(R"(["eq", "_S.missing", null])"));
        DTL_EQ("true", eval(R"(["neq", "a", "b"])"));
        DTL_EQ("true", eval(R"(["eq", {"a":[1,{"b":2}]}, {"a":[1,{"b":2}]}])"));
        DTL_EQ("true", eval(R"(["eq", "~t2015-01-01T00:00:00Z", "~t2015-01-01T00:00:00.000Z"])"));
    }
    void testOrderingComparisons() {
        DTL_EQ("true", eval(R"(["gt", 2, 1.5])"));
        DTL_EQ("true", eval(R"(["gte", ["list", 2, 0], 2])"));
        DTL_EQ("false", eval(R"(["lt", null, 1])"));
        DTL_EQ("false", eval(R"(["gt", "_S.none", 1])"));
        DTL_EQ("true", eval(R"(["lt", "a", "b"])"));
        DTL_EQ("true", eval(R"(["lte", "~t2015-01-01", "~t2015-01-02T00:00:00Z"])"));
        DTL_EQ("true", eval(R"(["gt", "a", 1])"));  // mixed types: by type rank (string > number)
        DTL_EQ("true", eval(R"(["lt", 10, "~f10.000000000000000000001"])"));
    }
    void testConditionalExpressions() {
        DTL_EQ(R"("y")", eval(R"(["if", ["eq", 1, 1], "y", "n"])"));
        DTL_EQ("null", eval(R"(["if", false, "y"])"));
        DTL_EQ(R"("b")", eval(R"(["case", false, "a", true, "b", "c"])"));
        DTL_EQ(R"("c")", eval(R"(["case", false, "a", null, "b", "c"])"));
        DTL_EQ("null", eval(R"(["case", false, "a"])"));
        DTL_EQ(R"("two")", eval(R"(["case-eq", "_S.n", 1, "one", 2, "two", "many"])", R"({"_id":"x","n":2})"));
        DTL_EQ(R"("many")", eval(R"(["case-eq", "_S.n", 1, "one", 2, "two", "many"])", R"({"_id":"x","n":7})"));
        DTL_EQ("null", eval(R"(["case-eq", 3, 1, "one"])"));
    }
    void testNulls() {
        DTL_EQ("2", eval(R"(["coalesce", ["list", null, 2, 3]])"));
        DTL_EQ("3", eval(R"(["coalesce", ["gt", "_.", 2], ["list", 1, 2, 3]])"));
        DTL_EQ("null", eval(R"(["coalesce", ["list"]])"));
        DTL_EQ(R"("b")", eval(R"(["coalesce-args", "_S.none", ["list"], "b", ["upper", "c"]])"));
        DTL_EQ(R"("fb")", eval(R"(["if-null", "_S.none", "fb"])"));
        DTL_EQ("0", eval(R"(["if-null", 0, "fb"])"));
        DTL_EQ("true", eval(R"(["is-null", ["list", null, 1]])"));
        DTL_EQ("true", eval(R"(["is-null", ["list"]])"));
        DTL_EQ("false", eval(R"(["is-null", ["list", 1, null]])"));
        DTL_EQ("true", eval(R"(["is-not-null", 0])"));
    }
    void testTypeTests() {
        DTL_EQ("true", eval(R"(["is-integer", 1])"));
        DTL_EQ("true", eval(R"(["is-integer", 123456789012345678901234567890])"));
        DTL_EQ("false", eval(R"(["is-integer", 1.0])"));
        DTL_EQ("true", eval(R"(["is-float", 1.0])"));
        DTL_EQ("true", eval(R"(["is-decimal", "~f1.0"])"));
        DTL_EQ("true", eval(R"(["is-string", ["list", "a", 1]])"));  // the first element
        DTL_EQ("false", eval(R"(["is-string", "~:a:b"])"));
        DTL_EQ("true", eval(R"(["is-ni", "~:a:b"])"));
        DTL_EQ("true", eval(R"(["is-uri", "~rhttp://x/"])"));
        DTL_EQ("true", eval(R"(["is-uuid", "~u531a379e-31bb-4ce1-8690-158dceb64be6"])"));
        DTL_EQ("true", eval(R"(["is-bytes", "~bAAEC"])"));
        DTL_EQ("true", eval(R"(["is-datetime", "~t2015-12-31"])"));
        DTL_EQ("false", eval(R"(["is-datetime", "~tnot a date"])"));
        DTL_EQ("true", eval(R"(["is-dict", {"a":1}])"));
        DTL_EQ("true", eval(R"(["is-list", ["list"]])"));
        DTL_EQ("false", eval(R"(["is-list", 1])"));
        DTL_EQ("true", eval(R"(["is-boolean", false])"));
        DTL_EQ("true", eval(R"(["is-empty", null])"));
        DTL_EQ("true", eval(R"(["is-empty", ["list"]])"));
        DTL_EQ("false", eval(R"(["is-empty", ["list", null]])"));
        DTL_EQ("true", eval(R"(["is-not-empty", "x"])"));
    }
    void testBoolean() {
        DTL_EQ("[true,false,true]", eval(R"(["boolean", ["list", "TRUE", "false", 1, "maybe", null]])"));
        DTL_EQ("[true,false]", eval(R"(["boolean", false, ["list", "True", "maybe"]])"));
        DTL_EQ("null", eval(R"(["boolean", "maybe"])"));
    }
    void testAddAndTargetReads() {
        DTL_EQ(R"([{"_id":"1","a":"x","b":"x","c":{"d":[1,2]}}])",
               run(R"({"default":[["copy","_id"],["add","a","_S.v"],["add","b","_T.a"],
                                 ["add","c",["dict","d",["list",1,2]]]]})",
                   R"([{"_id":"1","v":"x"}])"));
        // the property name may be an expression; adding again replaces
        DTL_EQ(R"([{"_id":"1","k-x":2}])",
               run(R"({"default":[["copy","_id"],["add",["concat","k-","_S.v"],1],["add","k-x",2]]})",
                   R"([{"_id":"1","v":"x"}])"));
    }
    void testAddIfAndDefault() {
        DTL_EQ(R"([{"_id":"1","b":[],"c":[null],"d":5}])",
               run(R"({"default":[["copy","_id"],["add-if","a","_S.none"],["add-if","b",["list"]],
                                 ["add-if","c",["list",null]],["add-if","d",["gt","_.",3],5],["add-if","e",["gt","_.",3],1]]})",
                   R"([{"_id":"1"}])"));
        DTL_EQ(R"([{"_id":"1","a":1,"b":2}])",
               run(R"({"default":[["copy","_id"],["add","a",1],["default","a",9],["default","b",2]]})",
                   R"([{"_id":"1"}])"));
    }
    void testCopyWildcards() {
        std::string in = R"([{"_id":"1","_updated":5,"a":1,"ab":2,"abc":3,"b":4,"ax":5}])";
        DTL_EQ(R"([{"_id":"1","a":1,"ab":2,"abc":3,"b":4,"ax":5}])", run(R"({"default":[["copy","*"]]})", in));
        DTL_EQ(R"([{"_id":"1","a":1,"ax":5}])", run(R"({"default":[["copy","_id"],["copy","a*","ab*"]]})", in));
        DTL_EQ(R"([{"_id":"1","ab":2,"ax":5}])", run(R"({"default":[["copy",["list","_id","a?"]]]})", in));
        DTL_EQ(R"([{"_id":"1","_updated":5}])", run(R"({"default":[["copy",["list","_id","_updated"]]]})", in));
    }
    void testRenameRemove() {
        DTL_EQ(R"([{"_id":"1","b":1}])",
               run(R"({"default":[["copy","*"],["rename","a","b"],["remove","a*"],["rename","missing","z"]]})",
                   R"([{"_id":"1","a":1,"ab":2}])"));
        DTL_EQ(R"([{"_id":"1"}])", run(R"({"default":[["copy","*"],["remove",["list","x","y?"]]]})",
                                       R"([{"_id":"1","x":1,"yz":2}])"));
    }
    void testMakeNi() {
        DTL_EQ(R"([{"_id":"1","org-ni":"~:crm-org:42","tags-ni":["~:t:a","~:t:b"],"n-ni":"~:x:7"}])",
               run(R"({"default":[["copy","_id"],["make-ni","crm-org","org"],["make-ni","t","tags"],
                                 ["make-ni","x","n"],["make-ni","x","none"],["make-ni","x","bad"]]})",
                   R"([{"_id":"1","org":"42","tags":["a","b",1.5],"n":7,"bad":[true]}])"));
        DTL_EQ(R"([{"_id":"1","link":"~:crm:9"}])",
               run(R"({"default":[["copy","_id"],["make-ni","crm","org","link"]]})", R"([{"_id":"1","org":"9"}])"));
    }
    void testMergeAndMergeUnion() {
        DTL_EQ(R"([{"_id":"1","a":2,"b":3}])",
               run(R"({"default":[["copy","_id"],["merge",["list",{"a":1,"_id":"z"},{"a":2,"b":3},5]]]})",
                   R"([{"_id":"1"}])"));
        DTL_EQ(R"([{"_id":"1","a":[1,2,3],"b":3,"c":4}])",
               run(R"({"default":[["copy","_id"],["add","a",1],["add","c",4],["merge-union",["list",{"a":[2,1],"b":3},{"a":3,"c":4}]]]})",
                   R"([{"_id":"1"}])"));
    }
    void testIfCaseTransforms() {
        std::string rules = R"({"default":[["copy","_id"],
            ["if",["gt","_S.n",5],["add","size","big"],[["add","size","small"],["add","tiny",true]]],
            ["case",["eq","_S.n",1],["add","word","one"],["eq","_S.n",9],["add","word","nine"],["add","word","other"]],
            ["case-eq","_S.n",1,["add","w2","one"],9,[["add","w2","nine"]]]]})";
        DTL_EQ(R"([{"_id":"a","size":"small","tiny":true,"word":"one","w2":"one"},{"_id":"b","size":"big","word":"nine","w2":"nine"},
                   {"_id":"c","size":"small","tiny":true,"word":"other"}])",
               run(rules, R"([{"_id":"a","n":1},{"_id":"b","n":9},{"_id":"c","n":2}])"));
    }
    void testFilterAndDiscard() {
        std::string rules = R"({"default":[["copy","*"],["filter",["gt","_S.n",1]],["discard",["lt","_S.n",5]],["add","kept",true]]})";
        DTL_EQ(R"([{"_id":"a","n":0,"_filtered":true},{"_id":"b","n":3,"kept":true}])",
               run(rules, R"([{"_id":"a","n":0},{"_id":"b","n":3},{"_id":"c","n":9}])"));
        // filter without a condition stops unconditionally; the source _id is kept
        DTL_EQ(R"([{"_id":"a","_filtered":true}])", run(R"({"default":[["filter"],["add","x",1]]})", R"([{"_id":"a"}])"));
        DTL_EQ("[]", run(R"({"default":[["discard"]]})", R"([{"_id":"a"}])"));
    }
    void testCreateAndCreateChild() {
        std::string rules = R"({"default":[["copy","_id"],
            ["create",["list",{"_id":["concat","_S._id","-x"]},{"_id":"c2","v":1},"not-a-dict"]],
            ["create-child",["list",{"_id":"k1"},{"_id":"k1"}]],["create-child",{"_id":"k2"}],["discard"]]})";
        // discard drops the main entity, created ones are still emitted; dict literals are literal
        DTL_EQ(R"([{"_id":["concat","_S._id","-x"]},{"_id":"c2","v":1}])",
               dtltest::norm(sluice::dtl::run_text(R"({"type":"dtl","id_required":false,"rules":)" + rules + "}",
                                                   R"([{"_id":"a"}])")));
        DTL_EQ(R"([{"_id":"a","$children":[{"_id":"k1"},{"_id":"k2"}]},{"_id":"a-x"}])",
               run(R"({"default":[["copy","_id"],["create",["dict","_id",["concat","_S._id","-x"]]],
                                 ["create-child",["list",{"_id":"k1"},{"_id":"k1"}]],["create-child",{"_id":"k2"}]]})",
                   R"([{"_id":"a"}])"));
    }
    void testFailAndTrip() {
        try {
            run(R"({"default":[["copy","_id"],["if",["eq","_S._id","b"],["fail!",["concat","bad: ","_S._id"]]]]})",
                R"([{"_id":"a"},{"_id":"b"}])");
            CPPUNIT_FAIL("fail! did not throw");
        } catch (const sluice::dtl::RuntimeError& e) {
            CPPUNIT_ASSERT_EQUAL(std::string("fail!: bad: b"), std::string(e.what()));
            CPPUNIT_ASSERT(!e.trip());
        }
        try {
            run(R"({"default":[["trip!","stop"]]})", R"([{"_id":"a"}])");
            CPPUNIT_FAIL("trip! did not throw");
        } catch (const sluice::dtl::RuntimeError& e) {
            CPPUNIT_ASSERT(e.trip());
        }
    }
    void testIdRequired() {
        CPPUNIT_ASSERT_THROW(run(R"({"default":[["add","x",1]]})", R"([{"_id":"a"}])"), sluice::dtl::RuntimeError);
        DTL_EQ(R"([{"x":1}])", dtltest::norm(sluice::dtl::run_text(
                                   R"({"type":"dtl","id_required":false,"rules":{"default":[["add","x",1]]}})",
                                   R"([{"_id":"a"}])")));
    }
    void testDeletedPropagates() {
        DTL_EQ(R"([{"_id":"a","_deleted":true},{"_id":"b"}])",
               run(R"({"default":[["copy","_id"]]})", R"([{"_id":"a","_deleted":true},{"_id":"b","_deleted":false}])"));
    }
    void testApplyWithParentAndRoot() {
        std::string rules = R"({"default":[["copy","_id"],["add","items",["apply","item","_S.items"]],
                                            ["add","one",["apply","item","_S.single"]]],
            "item":[["add","name",["upper","_S.name"]],["add","parent","_P._S._id"],["add","root","_R._S._id"],
                    ["add","ptarget","_P._T._id"],["filter",["neq","_S.name","skip"]]]})";
        DTL_EQ(R"([{"_id":"o","items":[{"name":"A","parent":"o","root":"o","ptarget":"o"}],
                    "one":{"name":"S","parent":"o","root":"o","ptarget":"o"}}])",
               run(rules, R"([{"_id":"o","items":[{"name":"a"},{"name":"skip"}],"single":{"name":"s"}}])"));
    }
    void testApplyRecursion() {
        // a tree walked by a rule applying itself; a rule applying itself forever is an error, not a crash
        DTL_EQ(R"([{"_id":"r","n":"R","kids":[{"n":"A","kids":[{"n":"B","kids":null}]}]}])",
               run(R"({"default":[["copy","_id"],["add","n",["upper","_S.n"]],["add","kids",["apply","node","_S.kids"]]],
                       "node":[["add","n",["upper","_S.n"]],["add","kids",["apply","node","_S.kids"]]]})",
                   R"([{"_id":"r","n":"r","kids":[{"n":"a","kids":[{"n":"b"}]}]}])"));
        CPPUNIT_ASSERT_THROW(run(R"({"default":[["copy","_id"],["add","x",["apply","loop","_S."]]],
                                    "loop":[["add","x",["apply","loop","_S."]]]})",
                                 R"([{"_id":"a"}])"),
                             sluice::dtl::RuntimeError);
    }
    void testCommentIsNotEvaluated() {
        DTL_EQ(R"([{"_id":"a"}])", run(R"({"default":[["comment","anything",["nope"],["fail!","x"]],["copy","_id"]]})",
                                       R"([{"_id":"a"}])"));
    }
    void testTriggerOn() {
        DTL_EQ(R"([{"_id":"a","t":"x1","done":true},{"_id":"b","t":"y"}])",
               dtltest::norm(sluice::dtl::run_text(
                   R"({"type":"dtl","trigger_on":{"key":"t","value":"x*"},"rules":{"default":[["copy","*"],["add","done",true]]}})",
                   R"([{"_id":"a","t":"x1"},{"_id":"b","t":"y"}])")));
    }
    void testExpressionMode() {
        DTL_EQ(R"([{"_id":"a","value":"A"},{"_id":"0","value":null}])",
               dtltest::norm(sluice::dtl::run_text(R"({"type":"dtl","expression":["upper","_S.n"]})",
                                                   R"([{"_id":"a","n":"a"},{"n":1}])")));
        CPPUNIT_ASSERT_EQUAL(std::string("/expression/1: unknown function \"uper\" (did you mean \"upper\"?)"),
                             dtltest::compile_error(R"({"type":"dtl","expression":["lower",["uper","x"]]})"));
        CPPUNIT_ASSERT_EQUAL(std::string("/expression: unknown function \"nope\""),
                             dtltest::compile_error(R"({"type":"dtl","expression":["nope"]})"));
    }
    void testWorkedExampleFromDocs() {
        // §4.6 without the hops (covered in the hops suite): rules, apply, sorted, count, filter
        std::string rules = R"({"default":[["copy","_id"],["add","type","customer"],["add","name",["upper","_S.name"]],
            ["add","orders",["sorted","_.amount",["apply","order","_S.orders"]]],
            ["add","order_count",["count","_T.orders"]],["filter",["gt","_T.order_count",1]]],
            "order":[["copy","_id"],["add","amount","_S.amount"]]})";
        DTL_EQ(R"([{"_id":"p1","type":"customer","name":"ANN","orders":[{"_id":"o2","amount":5},{"_id":"o1","amount":10}],"order_count":2},
                   {"_id":"p2","type":"customer","name":"BOB","orders":[{"_id":"o3","amount":1}],"order_count":1,"_filtered":true}])",
               run(rules, R"([{"_id":"p1","name":"ann","orders":[{"_id":"o1","amount":10},{"_id":"o2","amount":5}]},
                              {"_id":"p2","name":"bob","orders":[{"_id":"o3","amount":1}]}])"));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DtlCoreTest);

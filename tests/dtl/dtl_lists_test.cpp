// DTL engine: list, set, ordering and aggregation functions (reference §4.3 "Lists", "Sets",
// §1.4 mixed-type ordering).
#include "dtl_test_util.hpp"

using dtltest::eval;

class DtlListsTest : public CppUnit::TestFixture {
    CPPUNIT_TEST_SUITE(DtlListsTest);
    CPPUNIT_TEST(testBuilding);
    CPPUNIT_TEST(testInsertRangeEnumerate);
    CPPUNIT_TEST(testPicking);
    CPPUNIT_TEST(testSlice);
    CPPUNIT_TEST(testMapFilter);
    CPPUNIT_TEST(testMapDictAndValues);
    CPPUNIT_TEST(testGroup);
    CPPUNIT_TEST(testGroupBy);
    CPPUNIT_TEST(testMixedTypeOrdering);
    CPPUNIT_TEST(testSortedWithFunction);
    CPPUNIT_TEST(testReversedDistinct);
    CPPUNIT_TEST(testCountSumMinMax);
    CPPUNIT_TEST(testIn);
    CPPUNIT_TEST(testSets);
    CPPUNIT_TEST(testTuples);
    CPPUNIT_TEST_SUITE_END();

public:
    void testBuilding() {
        DTL_EQ("[1,[2,3],null]", eval(R"(["list", 1, ["list", 2, 3], null])"));
        DTL_EQ("[1,2,3,4]", eval(R"(["combine", 1, ["list", 2, 3], null, ["list", null, 4]])"));
        DTL_EQ("[]", eval(R"(["combine"])"));
        DTL_EQ("[1,2,3,[4]]", eval(R"(["flatten", ["list", ["list", 1, 2], 3, ["list", ["list", 4]], null]])"));
    }
    void testInsertRangeEnumerate() {
        DTL_EQ("[1,9,2]", eval(R"(["insert", 1, ["list", 1, 2], 9])"));
        DTL_EQ("[1,2,9]", eval(R"(["insert", 10, ["list", 1, 2], 9])"));
        DTL_EQ("[1,9,2]", eval(R"(["insert", -1, ["list", 1, 2], 9])"));
        DTL_EQ("[0,1,2]", eval(R"(["range", 3])"));
        DTL_EQ("[2,4,6]", eval(R"(["range", 2, 8, 2])"));
        DTL_EQ("[5,4]", eval(R"(["range", 5, 3, -1])"));
        DTL_EQ("[]", eval(R"(["range", 3, 1])"));
        DTL_EQ("null", eval(R"(["range", 0, 3, 0])"));
        DTL_EQ(R"([{"key":0,"value":"a"},{"key":1,"value":"b"}])", eval(R"(["enumerate", ["list", "a", "b"]])"));
        DTL_EQ(R"([{"key":5,"value":"a"}])", eval(R"(["enumerate", 5, "a"])"));
    }
    void testPicking() {
        DTL_EQ("1", eval(R"(["first", ["list", 1, 2]])"));
        DTL_EQ("null", eval(R"(["first", ["list"]])"));
        DTL_EQ(R"("x")", eval(R"(["first", "x"])"));
        DTL_EQ("2", eval(R"(["last", ["list", 1, 2]])"));
        DTL_EQ("null", eval(R"(["last", ["list"]])"));
        DTL_EQ("2", eval(R"(["nth", 1, ["list", 1, 2, 3]])"));
        DTL_EQ("3", eval(R"(["nth", -1, ["list", 1, 2, 3]])"));
        DTL_EQ("null", eval(R"(["nth", 5, ["list", 1, 2, 3]])"));
        DTL_EQ("null", eval(R"(["nth", "x", ["list", 1]])"));
    }
    void testSlice() {
        DTL_EQ("[2,3]", eval(R"(["slice", 1, ["list", 1, 2, 3]])"));
        DTL_EQ("[2]", eval(R"(["slice", 1, 2, ["list", 1, 2, 3]])"));
        DTL_EQ("[1,3,5]", eval(R"(["slice", 0, null, 2, ["list", 1, 2, 3, 4, 5]])"));
        DTL_EQ("[4,5]", eval(R"(["slice", -2, ["list", 1, 2, 3, 4, 5]])"));
        DTL_EQ("[5,4,3,2,1]", eval(R"(["slice", null, null, -1, ["list", 1, 2, 3, 4, 5]])"));
        DTL_EQ(R"("ell")", eval(R"(["slice", 1, 4, "hello"])"));
    }
    void testMapFilter() {
        DTL_EQ("[2,4]", eval(R"(["map", ["*", "_.", 2], ["list", 1, 2]])"));
        DTL_EQ("[2]", eval(R"(["map", ["*", "_.", 2], 1])"));
        DTL_EQ("[]", eval(R"(["map", ["*", "_.", 2], null])"));
        DTL_EQ("[3,4]", eval(R"(["filter", ["gt", "_.", 2], ["list", 1, 3, 2, 4]])"));
        DTL_EQ(R"([{"a":1}])", eval(R"(["filter", "_.a", ["list", {"a":1}, {"a":null}, {"b":2}, 7]])"));
        // the function expression sees the outer source too
        DTL_EQ("[11,12]", eval(R"(["map", ["+", "_.", "_S.base"], ["list", 1, 2]])", R"({"_id":"x","base":10})"));
    }
    void testMapDictAndValues() {
        DTL_EQ(R"({"A":2,"B":3})", eval(R"(["map-dict", ["upper", "_."], ["+", "_.", 1], {"a":1,"b":2}])"));
        DTL_EQ(R"([{"x-a":1}])", eval(R"(["map-dict", ["concat", "x-", "_."], "_.", ["list", {"a":1}, 5]])"));
        DTL_EQ("[2,3,11]", eval(R"(["map-values", ["+", "_.", 1], ["list", {"a":1,"b":2}, {"c":10}]])"));
    }
    void testGroup() {
        DTL_EQ(R"([["a",[1,3]],["b",[2]]])",
               eval(R"(["group", "_.k", "_.v", ["list", {"k":"a","v":1}, {"k":"b","v":2}, {"k":"a","v":3}]])"));
        DTL_EQ(R"([[1,[1,1.0]],[2,[2]]])", eval(R"(["group", "_.", "_.", ["list", 1, 2, 1.0]])"));
    }
    void testGroupBy() {
        DTL_EQ(R"({"a":[{"k":"a","v":1},{"k":"a","v":3}],"b":[{"k":"b","v":2}]})",
               eval(R"(["group-by", "_.k", ["list", {"k":"a","v":1}, {"k":"b","v":2}, {"k":"a","v":3}]])"));
        DTL_EQ(R"({"1":[1],"2":[2]})", eval(R"(["group-by", ["list", 1, 2]])"));
        DTL_EQ(R"({"k-1":[1,1]})", eval(R"(["group-by", "_.", ["concat", "k-", ["string", "_."]], ["list", 1, 1]])"));
    }
    void testMixedTypeOrdering() {
        // the reference's own example (§1.4)
        DTL_EQ(R"([1,1.5,2,"a","b"])", eval(R"(["sorted", ["list", 1.5, "b", 1, "a", 2]])"));
        // null < bool < numbers < datetimes < uuid < NI < URI < string < dict < list < bytes
        DTL_EQ(R"([null,false,true,-1,"~f0.5",2,"~t2015-01-01","~u00000000-0000-0000-0000-000000000000","~:a","~rhttp://x",
                   "s",{"a":1},[1],"~bAA=="])",
               eval(R"(["sorted", ["list", "~bAA==", ["list", 1], {"a":1}, "s", "~rhttp://x", "~:a",
                        "~u00000000-0000-0000-0000-000000000000", "~t2015-01-01", 2, "~f0.5", -1, true, false, null]])"));
        DTL_EQ(R"([{"a":1},{"a":2},{"b":0}])", eval(R"(["sorted", ["list", {"b":0}, {"a":2}, {"a":1}]])"));
        DTL_EQ("[[1],[1,0],[2]]", eval(R"(["sorted", ["list", ["list", 2], ["list", 1, 0], ["list", 1]]])"));
        DTL_EQ(R"(["~t2015-01-01T00:00:00.5Z","~t2015-01-01T00:00:00.25Z"])",
               eval(R"(["sorted-descending", ["list", "~t2015-01-01T00:00:00.25Z", "~t2015-01-01T00:00:00.5Z"]])"));
        // big integers and decimals compare exactly with floats
        DTL_EQ(R"([1e20,100000000000000000001,"~f100000000000000000001.5"])",
               eval(R"(["sorted", ["list", "~f100000000000000000001.5", 100000000000000000001, 1e20]])"));
    }
    void testSortedWithFunction() {
        // a missing key is null: the lowest rank
        DTL_EQ(R"([{"x":0},{"n":1},{"n":2}])", eval(R"(["sorted", "_.n", ["list", {"n":2}, {"x":0}, {"n":1}]])"));
        DTL_EQ(R"([{"n":2},{"n":1},{"x":0}])", eval(R"(["sorted-descending", "_.n", ["list", {"n":1}, {"x":0}, {"n":2}]])"));
        // stable for equal keys
        DTL_EQ(R"([{"n":1,"i":1},{"n":1,"i":2}])", eval(R"(["sorted", "_.n", ["list", {"n":1,"i":1}, {"n":1,"i":2}]])"));
    }
    void testReversedDistinct() {
        DTL_EQ("[3,2,1]", eval(R"(["reversed", ["list", 1, 2, 3]])"));
        DTL_EQ("[]", eval(R"(["reversed", null])"));
        DTL_EQ(R"([1,"1",2])", eval(R"(["distinct", ["list", 1, "1", 1.0, 2, 1]])"));
        DTL_EQ(R"([{"k":1,"i":1},{"k":2,"i":2}])", eval(R"(["distinct", "_.k", ["list", {"k":1,"i":1}, {"k":2,"i":2}, {"k":1,"i":3}]])"));
    }
    void testCountSumMinMax() {
        DTL_EQ("0", eval(R"(["count", null])"));
        DTL_EQ("1", eval(R"(["count", "x"])"));
        DTL_EQ("3", eval(R"(["count", ["list", 1, null, 2]])"));
        DTL_EQ("6", eval(R"(["sum", ["list", 1, 2, 3, "x", null]])"));
        DTL_EQ("6.5", eval(R"(["sum", ["list", 1, 2, 3.5]])"));
        DTL_EQ(R"("~f6.25")", eval(R"(["sum", ["list", 1, "~f2.25", 3]])"));
        DTL_EQ("0", eval(R"(["sum", ["list"]])"));
        DTL_EQ("18446744073709551616", eval(R"(["sum", ["list", 18446744073709551615, 1]])"));
        DTL_EQ("3", eval(R"(["max", ["list", 1, 3, 2, null]])"));
        DTL_EQ("1", eval(R"(["min", ["list", null, 3, 1]])"));
        DTL_EQ(R"("a")", eval(R"(["max", ["list", 1, "a"]])"));
        DTL_EQ("null", eval(R"(["max", ["list"]])"));
        DTL_EQ(R"({"n":5})", eval(R"(["max", "_.n", ["list", {"n":1}, {"n":5}, {"x":9}]])"));
    }
    void testIn() {
        DTL_EQ("true", eval(R"(["in", 1, ["list", 1, 2]])"));
        DTL_EQ("true", eval(R"(["in", ["list", 1, 2], ["list", 2, 3, 1]])"));
        DTL_EQ("false", eval(R"(["in", ["list", 1, 4], ["list", 1, 2]])"));
        DTL_EQ("false", eval(R"(["in", ["list"], ["list", 1]])"));
        DTL_EQ("true", eval(R"(["in", "a", "a"])"));
    }
    void testSets() {
        DTL_EQ("[1,2,3,4]", eval(R"(["union", ["list", 1, 2], ["list", 2, 3], 4])"));
        DTL_EQ("[2,3]", eval(R"(["intersection", ["list", 1, 2, 3, 2], ["list", 3, 2, 5]])"));
        DTL_EQ("[1]", eval(R"(["difference", ["list", 1, 2, 3, 1], ["list", 2], 3])"));
        DTL_EQ("true", eval(R"(["intersects", ["list", 1, 2], ["list", 3, 2]])"));
        DTL_EQ("false", eval(R"(["intersects", ["list", 1, 2], ["list"]])"));
    }
    void testTuples() {
        DTL_EQ(R"([[1,"x"],[2,"x"]])", eval(R"(["tuples", ["list", 1, 2], "x"])"));
        DTL_EQ(R"([[1,"a"],[1,"b"]])", eval(R"(["tuples", ["list", 1, null], ["list", "a", "b"]])"));
        DTL_EQ("[]", eval(R"(["tuples", ["list", 1], null])"));
    }
};

CPPUNIT_TEST_SUITE_REGISTRATION(DtlListsTest);

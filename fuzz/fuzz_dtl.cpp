// The DTL compiler: any JSON as a transform config or an expression either compiles or throws
// CompileError; what compiles runs over one entity without crashing.
#include <sluice/dtl/dtl.hpp>

#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace {
// The node refuses request bodies nested deeper than 128 levels (api limits); the compiler
// recurses per level, so the fuzzer stays within what can reach it.
bool too_deep(const uint8_t* data, size_t size) {
    size_t depth = 0;
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == '[' || data[i] == '{') {
            if (++depth > 128) return true;
        } else if ((data[i] == ']' || data[i] == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (too_deep(data, size)) return 0;
    rapidjson::Document doc;
    doc.Parse(reinterpret_cast<const char*>(data), size);
    if (doc.HasParseError()) return 0;
    try {
        std::shared_ptr<const sluice::dtl::Program> program;
        if (doc.IsObject()) program = sluice::dtl::compile_transform(doc);
        else (void)sluice::dtl::compile_expression(doc);
        if (program) {
            sluice::dtl::Runner runner(program);
            rapidjson::Document input;
            input.Parse(R"([{"_id": "1", "name": "x", "n": 2, "list": [1, "a", null]}])");
            std::string out;
            runner.run(input, out);
        }
    } catch (const std::exception&) {
    }
    return 0;
}

// `bench_generator`: a source for bench_pipe (tests/bench/pipe_bench.cpp). Emits `count`
// deterministic entities (bench_entity.hpp) in batches of the pipe's batch_size, without a
// continuation token: a full source, so every run is a full run (with deletion tracking).
// `revision` (default 0) changes every entity's content. Built into the fixtures tree, never
// installed.
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include "bench_entity.hpp"

namespace {

class GeneratorSource : public sluice::Source {
public:
    GeneratorSource(const sluice::CreateArgs& args, sluice::Host&)
        : count_(sluice::int_or(args.config, "count", 0)), revision_(sluice::int_or(args.config, "revision", 0)) {
        if (count_ < 0 || revision_ < 0) throw sluice::Error("bench_generator: count and revision must be >= 0", SLUICE_FATAL);
    }

    void read(sluice::Host& host, const char*, uint32_t batch_size) override {
        const uint32_t per_batch = batch_size ? batch_size : 1000;
        std::string batch;
        batch.reserve(static_cast<size_t>(per_batch) * 340 + 2);
        size_t in_batch = 0;
        for (int64_t i = 0; i < count_; ++i) {
            batch.push_back(in_batch ? ',' : '[');
            sluice::bench::append_entity(batch, static_cast<unsigned long>(i), static_cast<unsigned long>(revision_));
            if (++in_batch == per_batch) {
                batch.push_back(']');
                host.emit(batch, in_batch);
                batch.clear();
                in_batch = 0;
            }
        }
        if (in_batch) {
            batch.push_back(']');
            host.emit(batch, in_batch);
        }
    }

private:
    int64_t count_;
    int64_t revision_;
};

}  // namespace

SLUICE_PLUGIN("sluice-bench-generator", "1.0.0", "Benchmark fixture: deterministic generated entities", "Apache-2.0",
              sluice::source<GeneratorSource>("bench_generator", SLUICE_SCHEMA_JSON, 0))

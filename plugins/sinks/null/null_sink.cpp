// The `null` sink (reference §3.6): accepts every batch and discards it. Useful for pipes run
// for their side effects (transforms) or to measure a source.
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

namespace {

class NullSink : public sluice::Sink {
public:
    NullSink(const sluice::CreateArgs&, sluice::Host&) {}
    void write(sluice::Host& host, const sluice_batch& batch) override {
        if (batch.count) host.metric("null_sink_entities", static_cast<double>(batch.count));
    }
};

}  // namespace

SLUICE_PLUGIN("sluice-sink-null", "1.0.0", "Discards everything", "Apache-2.0",
              sluice::sink<NullSink>("null", SLUICE_SCHEMA_JSON, 0))

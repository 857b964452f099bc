// The `http_endpoint` sink: a JSON publisher. GET /api/publishers/<pipe>/entities runs the
// pipe's source and transforms when a client pulls (with `since` and `limit`), so a scheduled run
// has nothing to write here.
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

namespace {

class HttpEndpointSink : public sluice::Sink {
public:
    HttpEndpointSink(const sluice::CreateArgs&, sluice::Host&) {}
    void write(sluice::Host&, const sluice_batch&) override {}
};

}  // namespace

SLUICE_PLUGIN("sluice-sink-http-endpoint", "1.0.0", "Publishes entities for pulling (GET /api/publishers)",
              "Apache-2.0", sluice::sink<HttpEndpointSink>("http_endpoint", SLUICE_SCHEMA_JSON, 0))

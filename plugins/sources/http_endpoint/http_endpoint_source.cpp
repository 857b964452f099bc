// The `http_endpoint` source: a receiver. Entities arrive by POST /api/receivers/<pipe>/entities
// and the kernel hands them straight to the pipe's transforms and sink, so a scheduled run of
// this source has nothing to read.
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

namespace {

class HttpEndpointSource : public sluice::Source {
public:
    HttpEndpointSource(const sluice::CreateArgs&, sluice::Host&) {}
    void read(sluice::Host&, const char*, uint32_t) override {}
};

}  // namespace

SLUICE_PLUGIN("sluice-source-http-endpoint", "1.0.0", "Receives pushed entities (POST /api/receivers)",
              "Apache-2.0", sluice::source<HttpEndpointSource>("http_endpoint", SLUICE_SCHEMA_JSON,
                                                                  SLUICE_CAP_PUSH_ONLY))

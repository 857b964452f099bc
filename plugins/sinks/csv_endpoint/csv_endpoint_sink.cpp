// The `csv_endpoint` sink (reference §3.6, §5.6): a CSV publisher. When a client pulls
// GET /api/publishers/<pipe>/csv, the kernel runs the pipe's source and transforms and calls
// begin_run, write (each batch) and end_run on this sink with a context that accepts
// SLUICE_FORMAT_BYTES chunks; every chunk goes to the client in order. The document: a header
// row from `columns` (else the first entity's keys), one row per entity, RFC 4180 quoting, CRLF
// line endings — byte for byte what Sesam's client compares (§6.4).
//
// A scheduled run has no client: begin_run probes the context with an empty chunk, and when it is
// refused the run is not a pull, so write/end_run do nothing.
#include <sluice/sdk.hpp>
#include <sluice_schema.h>

#include <sluice_http/csv.hpp>

namespace {

class CsvEndpointSink : public sluice::Sink {
public:
    CsvEndpointSink(const sluice::CreateArgs& args, sluice::Host&) : csv_(make_writer(args.config)) {}

    void begin_run(sluice::Host& host, bool) override {
        csv_.reset();
        publishing_ = emit_bytes(host, {}) == SLUICE_OK;
    }

    void write(sluice::Host& host, const sluice_batch& batch) override {
        if (!publishing_) return;  // a scheduled run: nothing to render
        if (batch.format != SLUICE_FORMAT_JSON_ARRAY) throw sluice::Error("csv_endpoint: expected a JSON batch");
        std::string out;
        csv_.write(std::string_view(batch.data, batch.size), out);
        send(host, out);
    }

    void end_run(sluice::Host& host, bool, bool completed) override {
        if (!publishing_) return;
        publishing_ = false;
        if (!completed) return;
        std::string out;
        csv_.finish(out);
        send(host, out);
    }

private:
    static sluice::http::CsvEntityWriter make_writer(const sluice::Json& config) {
        try {
            return sluice::http::CsvEntityWriter(config);
        } catch (const std::exception& e) {
            throw sluice::Error(std::string("csv_endpoint: ") + e.what(), SLUICE_FATAL);
        }
    }

    static int32_t emit_bytes(sluice::Host& host, std::string_view bytes) {
        sluice_batch raw{sizeof(sluice_batch), SLUICE_FORMAT_BYTES, bytes.data(), bytes.size(), 0, nullptr};
        return host.api()->emit_batch(host.context(), &raw);
    }

    void send(sluice::Host& host, const std::string& bytes) {
        if (bytes.empty()) return;
        if (int32_t status = emit_bytes(host, bytes); status != SLUICE_OK) {
            publishing_ = false;
            throw sluice::Error("csv_endpoint: the client stopped reading", status);
        }
    }

    sluice::http::CsvEntityWriter csv_;
    bool publishing_ = false;
};

}  // namespace

SLUICE_PLUGIN("sluice-sink-csv-endpoint", "1.0.0", "Publishes the pipe's output as CSV (GET /api/publishers/<pipe>/csv)",
              "Apache-2.0", sluice::sink<CsvEndpointSink>("csv_endpoint", SLUICE_SCHEMA_JSON, SLUICE_CAP_PUBLISHER))

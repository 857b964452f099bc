// Runs one transform component over a batch outside any pipe, through the C contract exactly as
// a pipe does: `sluice dtl eval|run` and POST /api/dtl/preview use it, so the kernel never links
// the DTL engine.
#pragma once

#include <sluice/kernel/pipe_runner.hpp>
#include <sluice/kernel/plugin_registry.hpp>

#include <stdexcept>
#include <string>

namespace sluice::kernel {

class DatasetStore;

// The transform could not be created (e.g. DTL that does not compile): where and why.
class TransformConfigError : public std::runtime_error {
public:
    TransformConfigError(std::string pointer, std::string message)
        : std::runtime_error((pointer.empty() ? "" : pointer + ": ") + message),
          pointer_(std::move(pointer)), message_(std::move(message)) {}
    const std::string& pointer() const { return pointer_; }  // into the transform config
    const std::string& message() const { return message_; }

private:
    std::string pointer_;
    std::string message_;
};

// Creates the transform from `config_json`, runs `batch_json` (a JSON array) through it and
// returns what it emitted (a JSON array text). `store` serves hops lookups (null: none).
// Throws TransformConfigError when creation fails, std::runtime_error when the run fails.
std::string run_transform_once(const ComponentInfo& transform, const std::string& config_json,
                               const std::string& batch_json, DatasetStore* store,
                               const SecretResolver& secrets = {});

// `sluice dtl eval|run ...` (args after "dtl"); returns the exit status.
int run_dtl_command(const std::vector<std::string>& args);

}  // namespace sluice::kernel

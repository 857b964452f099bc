// The `sluice` command line: `sluice serve …` and the client subcommands.
#pragma once

namespace sluice::kernel {

// Runs the command line; returns the process exit status.
int run_cli(int argc, char** argv);

}  // namespace sluice::kernel

// sluice — the node executable. All logic lives in the kernel library (kernel/src).
#include <sluice/kernel/cli.hpp>

int main(int argc, char** argv) { return sluice::kernel::run_cli(argc, argv); }

// sempre: the command line of the sempre process manager.
#include "commands.hpp"

int main(int argc, char** argv) { return sempre::cli::run_cli(argc, argv); }

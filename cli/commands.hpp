// The command table of `sempre`: every command is one row of data (name,
// usage, summary, whether it may start the daemon, how to declare its
// options and run it). Help text and the man page check are generated from it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace sempre::cli {

// Exit codes (DESIGN "Conventions"), part of the interface.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;    // the request failed
inline constexpr int kExitUsage = 2;     // bad command line
inline constexpr int kExitNoDaemon = 3;  // the daemon cannot be reached or started

// What the command line holds beyond what CLI11 parses: the arguments after
// the first "--", which belong to the program being started.
struct Invocation {
  bool has_dashes = false;
  std::vector<std::string> after_dashes;
};

struct Command {
  std::string name;
  std::string usage;    // after "sempre NAME "
  std::string summary;  // one line
  bool starts_daemon;
  // Declares the command's options on `app`; returns what runs it once the
  // command line has been parsed.
  std::function<std::function<int()>(CLI::App& app, const Invocation& invocation)> define;
};

const std::vector<Command>& commands();

// The whole command line: parses argv, runs the command, returns the exit code.
int run_cli(int argc, char** argv);

// Declares `sempre run` (cli/run_command.cpp).
std::function<int()> define_run(CLI::App& app, const Invocation& invocation);

}  // namespace sempre::cli

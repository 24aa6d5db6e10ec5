// The command table of `sempre`: every command is one row of data (name,
// usage, summary, whether it may start the daemon, how to declare its
// options and run it, which protocol commands it sends). Help text, the man
// page check and the e2e tests' list of commands are generated from it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "protocol.hpp"
#include "sempre/result.hpp"

namespace sempre::cli {

// Exit codes, part of the interface (sempre(1), EXIT STATUS).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;    // the request failed
inline constexpr int kExitUsage = 2;     // bad command line
inline constexpr int kExitNoDaemon = 3;  // the daemon cannot be reached or started

// The exit code of a failure of kind `kind`, the one mapping (man/sempre.1
// EXIT STATUS): kExitUsage for something invalid or malformed (the daemon's
// bad_request and invalid), kExitNoDaemon when the daemon cannot be reached,
// started, or speaks another version, kExitFailed for every other kind.
int exit_code_for(ErrorKind kind);

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
  // Other names people type from habit (ls for list).
  std::vector<std::string> aliases = {};
  // The protocol commands it may send to the daemon.
  std::vector<protocol::Command> requests = {};
};

// The row named `name` or one of its aliases; nullptr when none is.
const Command* find_command(std::string_view name);

const std::vector<Command>& commands();

// "unknown option "--nmae"; did you mean "--name"?" for an option `app` does
// not have, or "unexpected argument "x"" for a word that is no option.
std::string unknown_argument_message(const std::string& word, const CLI::App* app);

// The whole command line: parses argv, runs the command, returns the exit code.
int run_cli(int argc, char** argv);

// Declares `sempre run` (cli/run_command.cpp).
std::function<int()> define_run(CLI::App& app, const Invocation& invocation);

// Declare the commands that talk to the daemon (cli/daemon_commands.cpp).
// `starts_daemon` is the flag of the command's row: whether the command
// starts a daemon when none runs.
using DaemonCommandDefine = std::function<int()> (*)(CLI::App& app, const Invocation& invocation,
                                                     bool starts_daemon);
std::function<int()> define_start(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_stop(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_restart(CLI::App& app, const Invocation& invocation,
                                    bool starts_daemon);
std::function<int()> define_delete(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_list(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_info(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_logs(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_signal(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_events(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_flush(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_cleanlogs(CLI::App& app, const Invocation& invocation,
                                      bool starts_daemon);
std::function<int()> define_daemon(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_reload(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_save(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_resurrect(CLI::App& app, const Invocation& invocation,
                                      bool starts_daemon);
std::function<int()> define_kill(CLI::App& app, const Invocation& invocation, bool starts_daemon);
std::function<int()> define_stopall(CLI::App& app, const Invocation& invocation,
                                    bool starts_daemon);
std::function<int()> define_restartall(CLI::App& app, const Invocation& invocation,
                                       bool starts_daemon);

}  // namespace sempre::cli

// The start options shared by `sempre run` and `sempre start`: the rows of
// the option schema and the keys it leaves to the command line, declared once
// on a CLI11 command and converted to the AppSpec of one app.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "app_spec.hpp"
#include "commands.hpp"
#include "sempre/options.hpp"
#include "sempre/result.hpp"

namespace sempre::cli {

// The options as typed, before validation. The rows of the option schema
// (common/option_schema.hpp) keep their text by row index; the keys the
// schema leaves to each reader have their own members.
struct StartArgs {
  StartArgs();

  std::string name;
  std::string cwd;
  std::vector<std::string> env;  // K=V
  std::string out;
  std::string err;
  std::string log;
  std::string env_file;
  bool no_env_inherit = false;
  std::vector<std::string> watch;  // -w / --watch (".": the working directory) and --watch=PATH
  std::vector<std::string> watch_path;
  std::vector<std::string> command;  // PROGRAM [ARGS...]

  // By row of option_rows(): the text of a single-valued option, the items
  // of a list, and whether the command line gave it at all.
  std::vector<std::string> row_text;
  std::vector<std::vector<std::string>> row_items;
  std::vector<bool> row_given;

  // Found while parsing: the message for a mistyped option before PROGRAM
  // (it would otherwise be taken for the program), and the words after
  // PROGRAM that are sempre's own start options (they go to the program).
  std::string unknown_option;
  std::vector<std::string> late_options;
  // Which start options the command line gave (their long names), for
  // `start FILE.toml`, which takes none of them.
  std::vector<std::string> given;
};

// The warning for options written after PROGRAM, or "" when there are none:
//   sempre: warning: "--name" comes after PROGRAM, so server.js gets it; ...
std::string late_options_warning(const StartArgs& args, const std::string& command);

// Which command the options are declared on: a few exist on `start` only.
enum class StartCommand { kRun, kStart };

// Declares every start option on `app`, and PROGRAM [ARGS...] as what
// follows them (parsing stops at PROGRAM or after `--`).
void add_start_options(CLI::App& app, StartArgs& args, const Invocation& invocation,
                       StartCommand command);

// One app, resolved: its name and how to run it.
using AppOptions = AppSpec;

// Checks and converts the typed options. `env` is the caller's environment,
// which the child gets plus --env; relative paths resolve against `cwd`.
// What the command line leaves unsaid comes from `defaults` when given (the
// [defaults] of SEMPRE_HOME/config.toml; its env, when set, replaces `env`),
// else from MonitorOptions' own defaults.
// Errors (kInvalidArgument) name the option, e.g.
// `--kill-timeout: invalid duration "5x": ...`.
Result<AppOptions> to_app_options(const StartArgs& args, const std::vector<std::string>& env,
                                  const std::string& cwd, const MonitorOptions* defaults = nullptr);

}  // namespace sempre::cli

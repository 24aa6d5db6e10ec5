#include "commands.hpp"

#include <algorithm>
#include <iostream>

namespace sempre::cli {

namespace {

// A row whose command talks to the daemon: its definition gets the row's
// starts_daemon flag, so that the table alone decides it.
Command daemon_row(std::string name, std::string usage, std::string summary, bool starts_daemon,
                   DaemonCommandDefine define) {
  return Command{std::move(name), std::move(usage), std::move(summary), starts_daemon,
                 [define, starts_daemon](CLI::App& app, const Invocation& invocation) {
                   return define(app, invocation, starts_daemon);
                 }};
}

}  // namespace

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      daemon_row("start", "[OPTIONS] [--] PROGRAM [ARGS...] | FILE.toml [--only NAME[,NAME]]",
                 "Start and supervise PROGRAM under the daemon (prints its name, id and pid)", true,
                 define_start),
      daemon_row("stop", "TARGET...", "Stop apps (they stay in the list, status stopped)", true,
                 define_stop),
      daemon_row("restart", "TARGET...", "Stop apps, then start them again", true, define_restart),
      daemon_row("delete", "TARGET...", "Stop apps and forget them", true, define_delete),
      daemon_row("list", "[--json]",
                 "List the apps: id, name, pid, status, uptime, restarts, cpu, mem", true,
                 define_list),
      daemon_row("info", "TARGET [--json]",
                 "Everything known of an app: spec, state, last exit, log paths, environment", true,
                 define_info),
      daemon_row("logs", "[TARGET] [-f] [-n N]",
                 "Print the last lines of the apps' logs, and follow them", true, define_logs),
      daemon_row("signal", "SIGNAL TARGET...", "Send a signal to the process group of apps", true,
                 define_signal),
      daemon_row("events", "[TARGET] [--json]", "Stream lifecycle events as they happen", true,
                 define_events),
      daemon_row("reload", "FILE.toml",
                 "Apply a changed config file: start new apps, restart changed ones, delete removed ones",
                 true, define_reload),
      daemon_row("save", "[FILE.toml]", "Write every app as a config file (default SEMPRE_HOME/apps.toml)",
                 true, define_save),
      daemon_row("resurrect", "[FILE.toml]", "Start the apps that sempre save wrote", true,
                 define_resurrect),
      daemon_row("cleanlogs", "", "Remove the apps' rotated log files", true, define_cleanlogs),
      {"run", "[OPTIONS] [--] PROGRAM [ARGS...]",
       "Supervise PROGRAM in the foreground, without a daemon (containers, scripts)", false,
       define_run},
      daemon_row("daemon", "status|stop|start", "Show, stop or start the daemon itself", false,
                 define_daemon),
      daemon_row("kill", "", "Stop every app and the daemon", false, define_kill),
      daemon_row("stopall", "", "Stop every app (stop all)", true, define_stopall),
      daemon_row("restartall", "", "Restart every app (restart all)", true, define_restartall),
  };
  return table;
}

namespace {

std::string overview() {
  std::string text =
      "sempre keeps servers running: it starts a program, restarts it when it dies,\n"
      "stops it cleanly and keeps its logs.\n\nCommands:\n";
  std::size_t width = 0;
  for (const auto& c : commands()) width = std::max(width, c.name.size());
  for (const auto& c : commands()) {
    text += "  " + c.name + std::string(width - c.name.size() + 2, ' ') + c.summary + "\n";
  }
  text += "\nRun 'sempre COMMAND --help' for the options of a command.";
  return text;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{overview(), "sempre"};
  app.set_version_flag("-V,--version", std::string("sempre ") + SEMPRE_VERSION);
  app.require_subcommand(1);
  if (argc > 1 && argv[1][0] != '-' &&
      std::none_of(commands().begin(), commands().end(),
                   [&](const Command& c) { return c.name == argv[1]; })) {
    std::cerr << "sempre: unknown command \"" << argv[1] << "\"\nRun 'sempre --help' for the commands.\n";
    return kExitUsage;
  }

  // CLI11 stops at PROGRAM (prefix_command) but would hand a "--" that comes
  // before PROGRAM back to the top level; cut it off here instead.
  Invocation invocation;
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) args.emplace_back(argv[i]);  // CLI11 wants them reversed
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) != "--") continue;
    invocation.has_dashes = true;
    invocation.after_dashes.assign(argv + i + 1, argv + argc);
    args.erase(args.begin(), args.begin() + (argc - i));
    break;
  }

  std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
  for (const auto& c : commands()) {
    CLI::App* sub = app.add_subcommand(
        c.name, c.summary + "\nUsage: sempre " + c.name + (c.usage.empty() ? "" : " " + c.usage));
    sub->group("");  // listed once, by overview(), rather than again by CLI11
    runners.emplace_back(sub, c.define(*sub, invocation));
  }

  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // CLI11 reports from the top level; point at the help of the command at fault.
    std::string where = "sempre";
    for (const auto& [sub, run] : runners) {
      if (sub->parsed()) where += " " + sub->get_name();
    }
    std::cerr << "sempre: " << e.what() << "\nRun '" << where << " --help' for usage.\n";
    return kExitUsage;
  }
  for (auto& [sub, run] : runners) {
    if (sub->parsed()) return run();
  }
  return kExitUsage;
}

}  // namespace sempre::cli

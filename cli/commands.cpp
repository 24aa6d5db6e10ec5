#include "commands.hpp"

#include <iostream>

namespace sempre::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"run", "[OPTIONS] [--] PROGRAM [ARGS...]",
       "Supervise PROGRAM in the foreground, without a daemon (containers, scripts)", false,
       define_run},
  };
  return table;
}

namespace {

std::string overview() {
  std::string text =
      "sempre keeps servers running: it starts a program, restarts it when it dies,\n"
      "stops it cleanly and keeps its logs.\n\nCommands:\n";
  for (const auto& c : commands()) {
    text += "  " + c.name + std::string(c.name.size() < 10 ? 10 - c.name.size() : 1, ' ') +
            c.summary + "\n";
  }
  text += "\nRun 'sempre COMMAND --help' for the options of a command.";
  return text;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{overview(), "sempre"};
  app.set_version_flag("-V,--version", std::string("sempre ") + SEMPRE_VERSION);
  app.require_subcommand(1);
  app.failure_message([](const CLI::App* failed, const CLI::Error& e) {
    std::string where = failed->get_name() == "sempre" ? "sempre" : "sempre " + failed->get_name();
    return "sempre: " + std::string(e.what()) + "\nRun '" + where + " --help' for usage.\n";
  });

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
    CLI::App* sub = app.add_subcommand(c.name, c.summary + "\nUsage: sempre " + c.name + " " + c.usage);
    runners.emplace_back(sub, c.define(*sub, invocation));
  }

  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    app.exit(e, std::cout, std::cerr);
    return kExitUsage;
  }
  for (auto& [sub, run] : runners) {
    if (sub->parsed()) return run();
  }
  return kExitUsage;
}

}  // namespace sempre::cli

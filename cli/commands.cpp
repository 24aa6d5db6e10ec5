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

  std::function<int()> selected;
  std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
  for (const auto& c : commands()) {
    CLI::App* sub = app.add_subcommand(c.name, c.summary);
    runners.emplace_back(sub, c.define(*sub));
  }

  try {
    app.parse(argc, argv);
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

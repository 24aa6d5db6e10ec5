#include "commands.hpp"

#include <algorithm>
#include <cctype>
#include <iostream>
#include <memory>
#include <regex>

#include "app_config.hpp"
#include "sempre/units.hpp"

namespace sempre::cli {

namespace {

// A row whose command talks to the daemon: its definition gets the row's
// starts_daemon flag, so that the table alone decides it.
Command daemon_row(std::string name, std::string usage, std::string summary, bool starts_daemon,
                   DaemonCommandDefine define, std::vector<protocol::Command> requests,
                   std::vector<std::string> aliases = {}) {
  return Command{std::move(name),
                 std::move(usage),
                 std::move(summary),
                 starts_daemon,
                 [define, starts_daemon](CLI::App& app, const Invocation& invocation) {
                   return define(app, invocation, starts_daemon);
                 },
                 std::move(aliases),
                 std::move(requests)};
}

using P = protocol::Command;

}  // namespace

int exit_code_for(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
    case ErrorKind::kMalformed:
      return kExitUsage;
    case ErrorKind::kVersionMismatch:
    case ErrorKind::kUnavailable:
      return kExitNoDaemon;
    case ErrorKind::kNotFound:
    case ErrorKind::kExists:
    case ErrorKind::kPermission:
    case ErrorKind::kSpawnFailed:
    case ErrorKind::kIo:
    case ErrorKind::kTransient:
    case ErrorKind::kInternal:
      return kExitFailed;
  }
  return kExitFailed;
}

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      daemon_row("start", "[OPTIONS] [--] PROGRAM [ARGS...] | FILE.toml [--only NAME[,NAME]]",
                 "Start and supervise PROGRAM under the daemon (prints its name, id and pid)", true,
                 define_start, {P::kStart, P::kApply, P::kInfo, P::kRestart, P::kList, P::kLogs}),
      daemon_row("stop", "TARGET...", "Stop apps (they stay in the list, status stopped)", true,
                 define_stop, {P::kStop}),
      daemon_row("restart", "TARGET...", "Stop apps, then start them again", true, define_restart,
                 {P::kRestart, P::kLogs}),
      daemon_row("delete", "TARGET...", "Stop apps and forget them", true, define_delete,
                 {P::kDelete}, {"rm", "del"}),
      daemon_row("list", "[--json] [-o COLUMNS] [--sort FIELD]",
                 "List the apps: id, name, pid, status, uptime, restarts, cpu, mem", true,
                 define_list, {P::kList}, {"ls", "ps", "status"}),
      daemon_row("info", "TARGET... [--json]",
                 "Everything known of an app: spec, state, last exit, log paths, environment", true,
                 define_info, {P::kInfo}, {"describe", "show"}),
      daemon_row("logs", "[TARGET...] [-f] [-n N] [--out|--err]",
                 "Print the last lines of the apps' logs, and follow them", true, define_logs,
                 {P::kLogs}, {"log"}),
      daemon_row("flush", "[TARGET...]", "Empty the apps' current log files", true, define_flush,
                 {P::kFlush}),
      daemon_row("signal", "SIGNAL TARGET...", "Send a signal to the process group of apps", true,
                 define_signal, {P::kSignal}),
      daemon_row("events", "[TARGET] [--json]", "Stream lifecycle events as they happen", true,
                 define_events, {P::kEvents}),
      daemon_row(
          "reload", "FILE.toml",
          "Apply a changed config file: start new apps, restart changed ones, delete removed ones",
          true, define_reload, {P::kApply}),
      daemon_row("save", "[FILE.toml]",
                 "Write every app as a config file (default SEMPRE_HOME/apps.toml)", true,
                 define_save, {P::kDump}),
      daemon_row("resurrect", "[FILE.toml]", "Start the apps that sempre save wrote", true,
                 define_resurrect, {P::kApply, P::kList}),
      daemon_row("cleanlogs", "", "Remove the apps' rotated log files", true, define_cleanlogs,
                 {P::kCleanlogs}),
      {"run", "[OPTIONS] [--] PROGRAM [ARGS...]",
       "Supervise PROGRAM in the foreground, without a daemon (containers, scripts)", false,
       define_run},
      daemon_row("daemon", "status|stop|start|restart|upgrade",
                 "Show, stop, start or restart the daemon itself (restart keeps the apps running)",
                 false, define_daemon, {P::kPing, P::kShutdown, P::kReexec}),
      daemon_row("kill", "", "Stop every app and the daemon", false, define_kill, {P::kKill}),
      daemon_row("stopall", "", "Stop every app (stop all)", true, define_stopall, {P::kStop}),
      daemon_row("restartall", "", "Restart every app (restart all)", true, define_restartall,
                 {P::kRestart, P::kLogs}),
  };
  return table;
}

const Command* find_command(std::string_view name) {
  for (const auto& c : commands()) {
    if (c.name == name || std::find(c.aliases.begin(), c.aliases.end(), name) != c.aliases.end()) {
      return &c;
    }
  }
  return nullptr;
}

namespace {

std::string overview() {
  std::string text =
      "sempre keeps servers running: it starts a program, restarts it when it dies,\n"
      "stops it cleanly and keeps its logs.\n\nUsage: sempre COMMAND [OPTIONS] [ARGS...]\n\n"
      "Commands:\n";
  std::size_t width = 0;
  for (const auto& c : commands()) width = std::max(width, c.name.size());
  for (const auto& c : commands()) {
    text += "  " + c.name + std::string(width - c.name.size() + 2, ' ') + c.summary;
    if (!c.aliases.empty()) {
      text += " (also:";
      for (const auto& alias : c.aliases) text += " " + alias;
      text += ")";
    }
    text += "\n";
  }
  text +=
      "\nRun 'sempre help COMMAND' or 'sempre COMMAND --help' for the options of a command;\n"
      "'sempre version' (-V, -v, --version) prints the version.";
  return text;
}

// The words a command line may name a command by, for "did you mean".
std::vector<std::string_view> command_words() {
  std::vector<std::string_view> words = {"help", "version"};
  for (const auto& c : commands()) {
    words.emplace_back(c.name);
    for (const auto& alias : c.aliases) words.emplace_back(alias);
  }
  return words;
}

// The spellings of every option of `app`: "-n", "--name", ...
std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& n : o->get_snames()) names.push_back("-" + n);
    for (const auto& n : o->get_lnames()) names.push_back("--" + n);
  }
  return names;
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

// CLI11's messages, said the way sempre says everything:
//   --max-restarts: "abc" is not a number
//   unknown option "--nmae"; did you mean "--name"?
std::string parse_error_message(const CLI::ParseError& e, const CLI::App* sub) {
  std::string what = e.what();
  std::smatch m;
  if (dynamic_cast<const CLI::ConversionError*>(&e) != nullptr &&
      std::regex_match(what, m, std::regex(R"(Could not convert: (\S+) = (.*))"))) {
    const CLI::Option* option = sub != nullptr ? sub->get_option_no_throw(m[1].str()) : nullptr;
    const bool number = option != nullptr && option->get_type_name() == "N";
    return m[1].str() + ": " + in_quotes(m[2].str()) +
           (number ? " is not a number" : " is not valid");
  }
  if (dynamic_cast<const CLI::ConversionError*>(&e) != nullptr &&
      std::regex_match(what, m,
                       std::regex(R"(The value (.*) is not an allowed value for (\S+))"))) {
    return m[2].str() + ": " + in_quotes(m[1].str()) + " is not valid";
  }
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr &&
      std::regex_match(what, m, std::regex(R"((\S+): \d+ required (\S+) missing)"))) {
    return m[1].str() + " needs a value (" + m[2].str() + ")";
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr &&
      std::regex_match(
          what, m, std::regex(R"(The following arguments? (?:was|were) not expected: (\S+).*)"))) {
    return unknown_argument_message(m[1].str(), sub);
  }
  if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr &&
      what.find("subcommand") != std::string::npos) {
    return "a command is required";
  }
  if (!what.empty()) what[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(what[0])));
  return what;
}

// Help with one usage line per command, the command table's own; the
// overview says the top level's.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* app, std::string) const override {
    const Command* c = app->get_parent() != nullptr ? find_command(app->get_name()) : nullptr;
    if (c == nullptr) return "";
    return "\nUsage: sempre " + c->name + (c->usage.empty() ? "" : " " + c->usage) + "\n";
  }
};

// `sempre signal -HUP app`: kill(1)'s spelling of a signal would read as an
// option; it is the SIGNAL argument.
bool reads_as_signal(std::string_view word) {
  if (word.size() < 2 || word[0] != '-' || word[1] == '-') return false;
  return parse_signal(word.substr(1)).ok();
}

}  // namespace

std::string unknown_argument_message(const std::string& word, const CLI::App* app) {
  if (word.empty() || word[0] != '-') return "unexpected argument " + in_quotes(word);
  const std::string name = word.substr(0, word.find('='));
  std::string message = "unknown option " + in_quotes(name);
  if (app != nullptr) {
    const std::vector<std::string> names = option_names(*app);
    const std::vector<std::string_view> known(names.begin(), names.end());
    if (const auto best = closest_word(name, known))
      message += "; did you mean " + in_quotes(*best) + "?";
  }
  return message;
}

int run_cli(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  // Habits: `sempre help [COMMAND]`, `sempre version`, and the aliases.
  if (!words.empty() && words[0] == "help") {
    words.erase(words.begin());
    words.emplace_back("--help");
  } else if (!words.empty() && words[0] == "version") {
    words[0] = "--version";
  }
  if (!words.empty() && !words[0].empty() && words[0].front() != '-') {
    const Command* command = find_command(words[0]);
    if (command == nullptr) {
      std::string message = "unknown command " + in_quotes(words[0]);
      if (const auto best = closest_word(words[0], command_words())) {
        message += "; did you mean " + in_quotes(*best) + "?";
      }
      std::cerr << "sempre: " << message << "\nRun 'sempre --help' for the commands.\n";
      return kExitUsage;
    }
    words[0] = command->name;
    if (command->name == "signal" && words.size() > 1 && reads_as_signal(words[1]) &&
        std::find(words.begin(), words.end(), "--") == words.end()) {
      words.insert(words.begin() + 1, "--");
    }
  }

  CLI::App app{overview(), "sempre"};
  app.formatter(std::make_shared<HelpFormatter>());
  app.set_version_flag("-V,-v,--version", std::string("sempre ") + SEMPRE_VERSION);
  app.require_subcommand(1);

  // CLI11 stops at PROGRAM (prefix_command) but would hand a "--" that comes
  // before PROGRAM back to the top level; cut it off here instead.
  Invocation invocation;
  const auto dashes = std::find(words.begin(), words.end(), "--");
  if (dashes != words.end()) {
    invocation.has_dashes = true;
    invocation.after_dashes.assign(dashes + 1, words.end());
    words.erase(dashes, words.end());
  }
  std::vector<std::string> args(words.rbegin(), words.rend());  // CLI11 wants them reversed

  std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
  for (const auto& c : commands()) {
    CLI::App* sub = app.add_subcommand(c.name, c.summary);
    sub->group("");  // listed once, by overview(), rather than again by CLI11
    runners.emplace_back(sub, c.define(*sub, invocation));
    // Metavars say what a value is: a positional's name is enough, and
    // CLI11's "TEXT" and "INT" say nothing.
    for (CLI::Option* o : sub->get_options()) {
      if (o->get_positional()) {
        o->type_name("");
      } else if (o->get_type_name() == "TEXT") {
        o->type_name("VALUE");
      } else if (o->get_type_name() == "INT") {
        o->type_name("N");
      }
    }
  }

  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // CLI11 reports from the top level; point at the help of the command at fault.
    std::string where = "sempre";
    const CLI::App* at = nullptr;
    for (const auto& [sub, run] : runners) {
      if (sub->parsed()) {
        where += " " + sub->get_name();
        at = sub;
      }
    }
    std::cerr << "sempre: " << parse_error_message(e, at) << "\nRun '" << where
              << " --help' for usage.\n";
    return kExitUsage;
  }
  for (auto& [sub, run] : runners) {
    if (sub->parsed()) return run();
  }
  return kExitUsage;
}

}  // namespace sempre::cli

// The commands that talk to sempred: each sends one request (client.hpp)
// and prints the answer (format.hpp) or the error, with the exit codes of
// commands.hpp.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "app_config.hpp"
#include "client.hpp"
#include "commands.hpp"
#include "format.hpp"
#include "sempre/program.hpp"
#include "start_options.hpp"

namespace sempre::cli {

// The protocol's commands; Command is a row of the CLI's own table.
using Cmd = protocol::Command;

namespace {

namespace json = boost::json;

constexpr const char* kTargetHelp = "TARGET is an app's name, id or pid, or all.";

// Prints why a command failed and returns the exit code its kind means.
int report(const Error& error) {
  std::cout.flush();
  std::cerr << "sempre: " << error.message << '\n';
  return exit_code_for(error.kind);
}

int usage_error(const std::string& command, const std::string& message) {
  std::cerr << "sempre: " << message << "\nRun 'sempre " << command << " --help' for usage.\n";
  return kExitUsage;
}

HomePaths home() { return home_paths(resolve_home()); }

// Asks for the list of apps, and prints on stderr what the daemon could not
// restore when it started: it tells only the first list, so whoever asks
// first says it, whatever the command.
Result<protocol::ListReply> list_apps(Client& client) {
  auto listed = client.call<Cmd::kList>({}, kRequestTimeout);
  if (listed && !listed->warnings.empty()) {
    std::cout.flush();
    for (const std::string& warning : listed->warnings) {
      std::cerr << "sempre: warning: " << warning << '\n';
    }
  }
  return listed;
}

// SEMPRE_HOME/config.toml, whose [defaults] apply to every app started.
std::string home_config() { return home().home + "/config.toml"; }

// Prints the errors of a config file in the compiler's form.
void print_config_errors(const std::string& what, const std::vector<ConfigError>& errors) {
  std::cout.flush();
  std::cerr << "sempre: " << what << " has " << errors.size() << " error"
            << (errors.size() == 1 ? "" : "s") << "; nothing was changed\n";
  std::vector<ConfigError> sorted = errors;
  std::stable_sort(sorted.begin(), sorted.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
  });
  for (const ConfigError& e : sorted) std::cerr << e.str() << '\n';
}

// Connects to the daemon (starting it when `starts_daemon` and none runs)
// and runs `body` with the connection.
int with_daemon(bool starts_daemon, const std::function<int(Client&)>& body) {
  auto client = Client::connect(home(), starts_daemon);
  if (!client) return report(client.error());
  return body(*client);
}

// The positional arguments and, when there was one, what followed "--".
std::vector<std::string> with_dashes(std::vector<std::string> args, const Invocation& invocation) {
  args.insert(args.end(), invocation.after_dashes.begin(), invocation.after_dashes.end());
  return args;
}

// An optional TARGET: the one given, or the one after "--"; empty when
// none; nullopt when more than one.
std::optional<std::string> optional_target(const std::string& given, const Invocation& invocation) {
  auto all = with_dashes(
      given.empty() ? std::vector<std::string>{} : std::vector<std::string>{given}, invocation);
  if (all.size() > 1) return std::nullopt;
  return all.empty() ? std::string() : all.front();
}

void add_targets(CLI::App& app, std::vector<std::string>& targets) {
  app.add_option("TARGET", targets, "Apps to act on: a name, an id, a pid, or all");
  app.footer(kTargetHelp);
}

// Sends C (stop, delete or signal) for `targets` with the rest of its args
// in `args`, and prints "VERB APP (id N[, pid P])" for every app the daemon
// acted on.
template <Cmd C>
int act_on(bool starts_daemon, const std::string& command, const std::vector<std::string>& targets,
           protocol::ArgsOf<C> args, const std::string& verb, bool with_pid) {
  if (targets.empty()) return usage_error(command, "TARGET is required");
  args.targets = targets;
  return with_daemon(starts_daemon, [&](Client& client) {
    auto result = client.call<C>(args, kStopTimeout);
    if (!result) return report(result.error());
    if (result->apps.empty()) std::cout << "no apps\n";
    for (const protocol::AppOutcome& app : result->apps) {
      std::cout << verb << ' ' << app_label(app.app, with_pid) << '\n';
    }
    return kExitOk;
  });
}

// A command of the form `NAME TARGET...` that sends C.
template <Cmd C>
std::function<int()> define_target_command(CLI::App& app, const Invocation& invocation,
                                           bool starts_daemon, std::string verb, bool with_pid) {
  auto targets = std::make_shared<std::vector<std::string>>();
  add_targets(app, *targets);
  return [targets, &invocation, starts_daemon, verb, with_pid] {
    return act_on<C>(starts_daemon, protocol::command_name(C), with_dashes(*targets, invocation),
                     {}, verb, with_pid);
  };
}

std::vector<std::string> current_env() { return current_environment(); }

int daemon_status() {
  return with_daemon(false, [](Client& client) {
    auto ping = client.call<Cmd::kPing>({}, kRequestTimeout);
    if (!ping) return report(ping.error());
    std::cout << format_daemon_status(*ping);
    return kExitOk;
  });
}

int daemon_start() {
  const HomePaths paths = home();
  const bool was_running = running_daemon_pid(paths).has_value();
  auto client = Client::connect(paths, true);
  if (!client) return report(client.error());
  auto ping = client->call<Cmd::kPing>({}, kRequestTimeout);
  if (!ping) return report(ping.error());
  const std::string pid = std::to_string(ping->pid);
  std::cout << (was_running ? "the daemon is already running (pid " + pid + ")"
                            : "started the daemon (pid " + pid + ")")
            << '\n';
  return kExitOk;
}

// Sends `command`, kill or shutdown, which stops every app and then the
// daemon, and waits until the daemon has exited. A shutdown the daemon does
// not understand (it speaks another protocol version) becomes a SIGTERM,
// which does the same.
int stop_daemon(Cmd command) {
  const HomePaths paths = home();
  const auto pid = running_daemon_pid(paths);
  const bool pid_known = pid && *pid > 0;
  auto client = Client::connect(paths, false);
  if (!client && !pid) {
    std::cout << no_daemon_message(paths) << '\n';
    return kExitOk;
  }
  std::optional<std::int64_t> stopped;
  Error failure = client ? Error{} : client.error();
  if (client) {
    auto result = command == Cmd::kKill ? client->call<Cmd::kKill>({}, kStopTimeout)
                                        : client->call<Cmd::kShutdown>({}, kStopTimeout);
    if (result) {
      stopped = static_cast<std::int64_t>(result->stopped);
    } else {
      failure = result.error();
    }
  }
  const std::string label = pid_known ? " (pid " + std::to_string(*pid) + ")" : "";
  if (!stopped) {
    if (!pid_known) return report(failure);
    if (command == Cmd::kShutdown) {
      if (::kill(*pid, SIGTERM) != 0 && errno != ESRCH) {
        return report(Error{ErrorKind::kIo,
                            "cannot signal the daemon" + label + ": " + std::strerror(errno),
                            errno});
      }
    } else if (!wait_for_exit(*pid, std::chrono::seconds(1))) {
      return report(failure);
    }
  }
  if (pid_known && !wait_for_exit(*pid, stopped ? kDaemonStartTimeout : kStopTimeout)) {
    return report(Error{ErrorKind::kInternal, "the daemon" + label + " did not exit", 0});
  }
  const std::int64_t n = stopped.value_or(0);
  if (command == Cmd::kKill) {
    const std::string apps = std::to_string(n) + (n == 1 ? " app" : " apps");
    std::cout << "stopped " << (stopped ? apps + " and " : "") << "the daemon" << label << '\n';
  } else if (n > 0) {
    std::cout << "stopped the daemon" << label
              << "; the apps it ran start again with the next daemon\n";
  } else {
    std::cout << "stopped the daemon" << label << '\n';
  }
  return kExitOk;
}

// Replaces the daemon's worker by a new one, run from the binary installed
// now, which takes every app over: nothing restarts. A daemon that cannot
// (no keeper, or too old to know reexec) is stopped and started instead,
// and its apps restart with it.
int reexec_daemon() {
  const HomePaths paths = home();
  if (!running_daemon_pid(paths)) return daemon_start();
  auto client = Client::connect(paths, false);
  if (!client) return report(client.error());
  auto reply = client->call<Cmd::kReexec>({}, kRequestTimeout);
  // Only a daemon that cannot hand over (no keeper, or too old to know
  // reexec) is stopped and started; any other failure is reported as it
  // is, never at the cost of the apps.
  const bool cannot =
      !reply && (reply.error().message.find("without a keeper") != std::string::npos ||
                 reply.error().message.find("unknown command") != std::string::npos ||
                 reply.error().kind == ErrorKind::kVersionMismatch);
  if (!reply && !cannot) return report(reply.error());
  if (!reply) {
    std::cerr << "sempre: the daemon cannot be replaced in place (" << reply.error().message
              << "); stopping and starting it: its apps restart\n";
    if (const int code = stop_daemon(Cmd::kShutdown); code != kExitOk) return code;
    return daemon_start();
  }
  // The next worker answers from the same socket once it has taken over.
  const auto deadline = std::chrono::steady_clock::now() + kDaemonStartTimeout;
  Error last{ErrorKind::kUnavailable, "the new worker did not answer", 0};
  while (std::chrono::steady_clock::now() < deadline) {
    auto next = Client::connect(paths, false);
    if (next) {
      // A socket nobody serves yet still connects: the wait is what is left.
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      auto ping = next->call<Cmd::kPing>({}, std::max(left, std::chrono::milliseconds(1)));
      if (ping && ping->worker != reply->worker) {
        const std::size_t n = reply->apps;
        std::cout << "restarted the daemon (pid " << ping->pid << ", worker " << ping->worker
                  << "); " << n << (n == 1 ? " app" : " apps") << " kept running\n";
        return kExitOk;
      }
      if (!ping) last = ping.error();
    } else {
      last = next.error();
    }
    // The old worker is still on its way out.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return report(Error{ErrorKind::kUnavailable,
                      "no new worker answered within " +
                          std::to_string(kDaemonStartTimeout.count()) + "s (" + last.message +
                          "); the apps keep running, held by the daemon's keeper, which tries "
                          "again; see " +
                          paths.log,
                      0});
}

bool is_config_file(const std::string& arg) { return arg.size() > 5 && arg.ends_with(".toml"); }

// Parses a config file, printing every error in the compiler's form.
std::optional<AppsFile> read_config(const std::string& path) {
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
  AppsFile file = load_apps_file(absolute, current_env(), home_config());
  if (file.ok()) return file;
  print_config_errors(absolute, file.errors);
  return std::nullopt;
}

// What `apply` may be asked beyond the file.
struct ApplyFlags {
  std::vector<std::string> only;
  bool watch = false;
  bool dry_run = false;
  bool update_env = false;
};

// Sends `apply` for the apps of `file` and prints what the daemon did (or,
// with dry_run, would do): "restarted web (cmd, env.PORT changed)".
int apply_config(bool starts_daemon, const AppsFile& file, protocol::ApplyMode mode,
                 const ApplyFlags& flags) {
  protocol::ApplyArgs args{file.path,   mode,          file.apps,        current_env(),
                           flags.watch, flags.dry_run, flags.update_env, flags.only};
  return with_daemon(starts_daemon, [&](Client& client) {
    auto result = client.call<Cmd::kApply>(args, kStopTimeout);
    if (!result) return report(result.error());
    bool any = false;
    const bool dry = flags.dry_run;
    const auto why_restarted = [&](const std::string& name) {
      std::string why;
      for (const auto& [app, keys] : result->changes) {
        if (app != name) continue;
        for (const std::string& key : keys) why += (why.empty() ? "" : ", ") + key;
      }
      return why;
    };
    for (const auto& [names, verb, restarted] :
         {std::tuple{&result->started, dry ? "would start" : "started", false},
          {&result->added, dry ? "would add (stopped)" : "added (stopped)", false},
          {&result->restarted, dry ? "would restart" : "restarted", true},
          {&result->deleted, dry ? "would delete" : "deleted", false},
          {&result->unchanged, "unchanged", false}}) {
      for (const std::string& name : *names) {
        std::cout << verb << ' ' << name;
        if (restarted) {
          if (const std::string why = why_restarted(name); !why.empty()) {
            std::cout << " (" << why << " changed)";
          }
        }
        std::cout << '\n';
        any = true;
      }
    }
    int code = kExitOk;
    for (const protocol::ApplyFailure& f : result->failed) {
      std::cout.flush();
      std::cerr << "sempre: " << f.name << ": " << (f.error.empty() ? "failed" : f.error) << '\n';
      code = kExitFailed;
      any = true;
    }
    if (!any) std::cout << "no apps\n";
    if (flags.watch && !dry) std::cout << "watching " << file.path << " for changes\n";
    // Ids and pids of what runs now, as `start PROGRAM` prints them.
    if (!dry && mode == protocol::ApplyMode::kStart && code == kExitOk) {
      if (auto listed = list_apps(client)) {
        for (const protocol::AppInfo& app : listed->apps) {
          if (std::any_of(file.apps.begin(), file.apps.end(),
                          [&](const AppSpec& a) { return a.name == app.name; })) {
            std::cout << "  " << app_label(app, true) << '\n';
          }
        }
      }
    }
    return code;
  });
}

// `sempre start FILE.toml [--only NAME[,NAME]] [--watch-config]`: the words
// after the file are read here, since everything after PROGRAM is PROGRAM's.
int start_config(bool starts_daemon, const std::vector<std::string>& words) {
  ApplyFlags flags;
  std::vector<std::string>& only = flags.only;
  bool& watch = flags.watch;
  for (std::size_t i = 1; i < words.size(); ++i) {
    const std::string& w = words[i];
    std::string list;
    if (w == "--watch-config") {
      watch = true;
      continue;
    }
    if (w == "--update-env") {
      flags.update_env = true;
      continue;
    }
    if (w == "--only" && i + 1 < words.size()) {
      list = words[++i];
    } else if (w.rfind("--only=", 0) == 0) {
      list = w.substr(7);
    } else {
      return usage_error("start", "unexpected \"" + w + "\" after " + words[0] +
                                      " (expected --only NAME[,NAME], --watch-config or "
                                      "--update-env)");
    }
    for (std::size_t at = 0; at <= list.size();) {
      const auto comma = std::min(list.find(',', at), list.size());
      if (comma > at) only.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
  }
  auto file = read_config(words[0]);
  if (!file) return kExitUsage;
  return apply_config(starts_daemon, *file, protocol::ApplyMode::kStart, flags);
}

std::string saved_file(const std::string& given) {
  return given.empty() ? home().home + "/apps.toml" : given;
}

// The last lines an app wrote, for the report of a start that crashed.
void print_last_lines(Client& client, const std::string& name, int lines) {
  std::vector<LogLine> tail;
  protocol::LogsArgs args;
  args.targets = {name};
  args.lines = static_cast<std::size_t>(lines);
  auto result = client.call<Cmd::kLogs>(args, kRequestTimeout, [&](const protocol::LogsItem& item) {
    if (const auto* line = std::get_if<protocol::LogLine>(&item)) tail.push_back(*line);
  });
  if (!result || tail.empty()) return;
  std::cerr << "its last lines:\n" << format_log_tail(tail, false, false);
}

// Prints the outcome of one app of start or restart --wait: "VERB LABEL",
// or the reason it is not running and its last lines. Returns whether it
// came up.
bool report_outcome(Client& client, const protocol::AppOutcome& outcome, const std::string& verb) {
  if (outcome.error.empty()) {
    std::cout << verb << ' ' << app_label(outcome.app, true) << '\n';
    return true;
  }
  std::cout.flush();
  const std::string& name = outcome.app.name;
  std::cerr << "sempre: " << name << ' ' << outcome.error << '\n';
  print_last_lines(client, name, 10);
  return false;
}

}  // namespace

std::function<int()> define_start(CLI::App& app, const Invocation& invocation, bool starts_daemon) {
  auto args = std::make_shared<StartArgs>();
  auto wait = std::make_shared<bool>(false);
  add_start_options(app, *args, invocation, StartCommand::kStart);
  app.add_flag("--wait", *wait,
               "Answer once the app is running (its --ready check passed, or it lasted "
               "--min-uptime); exit 1 with its last lines if it ended first");
  app.footer(
      "sempre start answers once the program was spawned, or with the reason it could not be.\n"
      "The program gets sempre's environment plus --env. Its stdout goes to\n"
      "SEMPRE_HOME/logs/NAME.out.log and its stderr to NAME.err.log; --out, --err and --log send\n"
      "a stream elsewhere, and a stream without a file of its own keeps its default.\n"
      "Everything after PROGRAM is PROGRAM's: options go before it.\n"
      "\n"
      "sempre start NAME starts the app NAME again when it exists (it was stopped).\n"
      "\n"
      "sempre start FILE.toml [--only NAME[,NAME]] [--watch-config] [--update-env] starts the\n"
      "apps of a config file (sempre.toml(5)); apps already running with the same spec are left\n"
      "alone. With --watch-config the daemon applies every saved change of the file, as sempre\n"
      "reload does. The file's apps keep the environment of its first start unless\n"
      "--update-env takes the current one.");
  return [args, wait, &invocation, starts_daemon] {
    const std::vector<std::string>& words = args->command;
    if (!args->unknown_option.empty()) return usage_error("start", args->unknown_option);
    if (!words.empty() && is_config_file(words[0])) {
      std::vector<std::string> given = args->given;
      if (*wait) given.emplace_back("--wait");
      if (!given.empty()) {
        std::string names;
        for (const auto& g : given) names += (names.empty() ? "" : ", ") + g;
        return usage_error("start", names + (given.size() == 1 ? " does" : " do") +
                                        " not apply to a config file: its apps take their "
                                        "options from " +
                                        words[0]);
      }
      return start_config(starts_daemon, words);
    }
    // A PM2 or foreman habit: their config files are JSON, YAML or JS.
    if (words.size() == 1 && !invocation.has_dashes &&
        (words[0].ends_with(".json") || words[0].ends_with(".yaml") || words[0].ends_with(".yml") ||
         words[0].ends_with(".config.js"))) {
      return usage_error("start", words[0] +
                                      ": config files are TOML (sempre start FILE.toml, "
                                      "see sempre.toml(5)); to run it as a program, write "
                                      "sempre start -- " +
                                      words[0]);
    }
    if (const std::string warning = late_options_warning(*args, "start"); !warning.empty()) {
      std::cerr << "sempre: " << warning << '\n';
    }
    // `sempre start NAME`, NAME an app of the daemon: start it again, as
    // `pm2 start NAME` does.
    if (words.size() == 1 && args->given.empty()) {
      auto client = Client::connect(home(), starts_daemon);
      if (!client) return report(client.error());
      auto info = client->call<Cmd::kInfo>({words[0], {}}, kRequestTimeout);
      if (info && info->app && info->app->app.name == words[0]) {
        const protocol::AppInfo& existing = info->app->app;
        const State state = existing.status.state;
        if (state == State::kRunning || state == State::kStarting || state == State::kBackoff) {
          std::cout << words[0] << " is already " << state_name(state) << ": "
                    << app_label(existing, true) << '\n';
          return kExitOk;
        }
        auto result = client->call<Cmd::kRestart>({{words[0]}, *wait}, kStopTimeout);
        if (!result) return report(result.error());
        bool ok = true;
        for (const protocol::AppOutcome& a : result->apps) {
          ok = report_outcome(*client, a, "started") && ok;
        }
        return ok ? kExitOk : kExitFailed;
      }
    }
    std::error_code ec;
    const std::string cwd = std::filesystem::current_path(ec).string();
    const AppDefaults defaults = load_app_defaults(home_config(), current_env());
    if (!defaults.errors.empty()) {
      print_config_errors(home_config(), defaults.errors);
      return kExitUsage;
    }
    auto options = to_app_options(*args, current_env(), cwd, &defaults.options);
    if (!options) return usage_error("start", options.error().message);
    const AppSpec& spec = *options;
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = client.call<Cmd::kStart>({spec, *wait}, *wait ? kStopTimeout : kRequestTimeout);
      if (!result) return report(result.error());
      const protocol::AppOutcome& started = result->app;
      if (!spec.autostart) {
        std::cout << "added " << app_label(started.app, false) << ", stopped\n";
        return kExitOk;
      }
      return report_outcome(client, started, "started") ? kExitOk : kExitFailed;
    });
  };
}

std::function<int()> define_stop(CLI::App& app, const Invocation& invocation, bool starts_daemon) {
  return define_target_command<Cmd::kStop>(app, invocation, starts_daemon, "stopped", false);
}

// `restart TARGET... [--wait]`: each app's outcome on a line of its own;
// exit 1 when any could not be restarted (the program is gone) or, with
// --wait, did not come up.
int restart_apps(bool starts_daemon, const std::string& command,
                 const std::vector<std::string>& targets, bool wait) {
  if (targets.empty()) return usage_error(command, "TARGET is required");
  return with_daemon(starts_daemon, [&](Client& client) {
    auto result = client.call<Cmd::kRestart>({targets, wait}, kStopTimeout);
    if (!result) return report(result.error());
    if (result->apps.empty()) std::cout << "no apps\n";
    bool ok = true;
    for (const protocol::AppOutcome& a : result->apps)
      ok = report_outcome(client, a, "restarted") && ok;
    return ok ? kExitOk : kExitFailed;
  });
}

std::function<int()> define_restart(CLI::App& app, const Invocation& invocation,
                                    bool starts_daemon) {
  auto targets = std::make_shared<std::vector<std::string>>();
  auto wait = std::make_shared<bool>(false);
  add_targets(app, *targets);
  app.add_flag(
      "--wait", *wait,
      "Answer once each app is running again; exit 1 with its last lines if it ended first");
  return [targets, wait, &invocation, starts_daemon] {
    return restart_apps(starts_daemon, "restart", with_dashes(*targets, invocation), *wait);
  };
}

std::function<int()> define_delete(CLI::App& app, const Invocation& invocation,
                                   bool starts_daemon) {
  return define_target_command<Cmd::kDelete>(app, invocation, starts_daemon, "deleted", false);
}

std::function<int()> define_stopall(CLI::App&, const Invocation&, bool starts_daemon) {
  return [starts_daemon] {
    return act_on<Cmd::kStop>(starts_daemon, "stopall", {"all"}, {}, "stopped", false);
  };
}

std::function<int()> define_restartall(CLI::App& app, const Invocation&, bool starts_daemon) {
  auto wait = std::make_shared<bool>(false);
  app.add_flag("--wait", *wait, "Answer once every app is running again");
  return
      [wait, starts_daemon] { return restart_apps(starts_daemon, "restartall", {"all"}, *wait); };
}

std::function<int()> define_signal(CLI::App& app, const Invocation& invocation,
                                   bool starts_daemon) {
  auto signal = std::make_shared<std::string>();
  auto targets = std::make_shared<std::vector<std::string>>();
  app.add_option("SIGNAL", *signal, "The signal: a name (TERM, SIGHUP, -HUP) or a number (9, -9)");
  add_targets(app, *targets);
  return [signal, targets, &invocation, starts_daemon] {
    std::vector<std::string> words = with_dashes(*targets, invocation);
    if (!signal->empty()) words.insert(words.begin(), *signal);
    if (words.empty()) return usage_error("signal", "SIGNAL is required");
    const std::string& name = words.front();
    // kill(1)'s spelling, "-9" or "-HUP", is accepted too.
    auto sig = parse_signal(name.size() > 1 && name.front() == '-' ? name.substr(1) : name);
    if (!sig) return usage_error("signal", sig.error().message);
    words.erase(words.begin());
    return act_on<Cmd::kSignal>(starts_daemon, "signal", words, {*sig, {}},
                                "sent " + signal_name(*sig) + " to", true);
  };
}

std::function<int()> define_list(CLI::App& app, const Invocation&, bool starts_daemon) {
  struct Args {
    bool json = false;
    std::string columns;
    std::string sort;
  };
  auto a = std::make_shared<Args>();
  app.add_flag("--json", a->json, "Print the apps as a JSON array (its schema is in sempre(1))");
  app.add_option(
         "-o,--columns", a->columns,
         "The columns, comma-separated: " +
             [] {
               std::string all;
               for (const auto& n : list_column_names()) all += (all.empty() ? "" : ",") + n;
               return all;
             }())
      ->type_name("COLUMNS");
  app.add_option("--sort", a->sort, "Order the apps by a column or JSON field (-FIELD: descending)")
      ->type_name("FIELD");
  app.footer(
      "Defaults for -o and --sort come from SEMPRE_HOME/config.toml:\n"
      "  [list]\n  columns = \"id,name,pid,status,uptime,restarts,cpu,mem\"\n  sort = \"name\"");
  return [a, starts_daemon] {
    const DaemonSettings settings = load_daemon_settings(home_config());
    if (!settings.errors.empty()) {
      print_config_errors(home_config(), settings.errors);
      return kExitUsage;
    }
    std::vector<std::string> columns;
    if (const std::string text = !a->columns.empty() ? a->columns : settings.list_columns;
        !text.empty()) {
      auto parsed = parse_list_columns(text);
      if (!parsed) {
        return usage_error("list", (a->columns.empty() ? home_config() + ": [list] columns"
                                                       : std::string("--columns")) +
                                       ": " + parsed.error().message);
      }
      columns = std::move(*parsed);
    }
    const std::string sort = !a->sort.empty() ? a->sort : settings.list_sort;
    if (!sort.empty()) {
      std::vector<protocol::AppInfo> probe;
      if (auto st = sort_apps(probe, sort); !st) {
        return usage_error("list",
                           "--sort: " + st.error().message + " (columns: id,name,... as -o)");
      }
    }
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = list_apps(client);
      if (!result) return report(result.error());
      std::vector<protocol::AppInfo>& apps = result->apps;
      if (!sort.empty()) (void)sort_apps(apps, sort);
      if (a->json) {
        json::array shown;
        for (const protocol::AppInfo& one : apps) shown.push_back(protocol::to_json(one));
        std::cout << json_text(shown) << '\n';
      } else {
        std::cout << format_list(apps, colour_enabled(STDOUT_FILENO), columns);
      }
      return kExitOk;
    });
  };
}

std::function<int()> define_info(CLI::App& app, const Invocation& invocation, bool starts_daemon) {
  auto targets = std::make_shared<std::vector<std::string>>();
  auto as_json = std::make_shared<bool>(false);
  app.add_option("TARGET", *targets, "The apps: names, ids, pids, or all");
  app.add_flag("--json", *as_json,
               "Print each app and its spec as one JSON object (several: a JSON array)");
  app.footer(std::string(kTargetHelp) + " Several apps are shown one after the other.");
  return [targets, as_json, &invocation, starts_daemon] {
    const auto words = with_dashes(*targets, invocation);
    if (words.empty()) return usage_error("info", "TARGET is required");
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = client.call<Cmd::kInfo>({std::nullopt, words}, kRequestTimeout);
      if (!result) return report(result.error());
      const std::vector<protocol::AppDetails>& apps = result->apps;
      if (*as_json) {
        const bool one = words.size() == 1 && words[0] != "all" && apps.size() == 1;
        json::array shown;
        for (const protocol::AppDetails& details : apps)
          shown.push_back(protocol::to_json(details));
        std::cout << json_text(one ? shown.front() : json::value(shown)) << '\n';
        return kExitOk;
      }
      if (apps.empty()) std::cout << "no apps\n";
      bool first = true;
      for (const protocol::AppDetails& details : apps) {
        if (!first) std::cout << '\n';
        first = false;
        std::cout << format_info(details.app, details.spec, colour_enabled(STDOUT_FILENO),
                                 details.source);
      }
      return kExitOk;
    });
  };
}

std::function<int()> define_logs(CLI::App& app, const Invocation& invocation, bool starts_daemon) {
  struct Args {
    std::vector<std::string> targets;
    int lines = 15;
    bool follow = false;
    bool out = false;
    bool err = false;
    bool raw = false;
  };
  auto a = std::make_shared<Args>();
  app.add_option("TARGET", a->targets, "Whose logs: names, ids, pids, or all (the default)");
  app.add_option("-n,--lines", a->lines, "How many of the last lines of each log to print")
      ->type_name("N")
      ->capture_default_str();
  app.add_flag("-f,--follow", a->follow,
               "Keep printing lines as they are written, until interrupted");
  app.add_flag("--out", a->out, "Only standard output");
  app.add_flag("--err", a->err, "Only standard error");
  app.add_flag("--raw", a->raw, "Print the lines alone, without app and stream");
  app.footer(
      "Each line starts with its stream (out, err; log for a file that holds both) and, when\n"
      "several apps are shown, the app's name: \"api out | line\". Without -f the files are\n"
      "merged into one timeline when their lines carry --log-timestamps; otherwise each file\n"
      "is printed whole under \"==> PATH <==\". Lines are printed as the program wrote them,\n"
      "byte for byte.");
  return [a, &invocation, starts_daemon] {
    if (a->lines < 0) return usage_error("logs", "--lines: must be 0 or more");
    const std::vector<std::string> targets = with_dashes(a->targets, invocation);
    const bool colour = colour_enabled(STDOUT_FILENO);
    protocol::LogsArgs args;
    args.targets = targets;
    args.lines = static_cast<std::size_t>(a->lines);
    args.follow = a->follow;
    if (a->out != a->err) {
      args.out = a->out;
      args.err = a->err;
    }
    return with_daemon(starts_daemon, [&](Client& client) {
      bool show_app = targets.empty() || targets.size() > 1 ||
                      std::find(targets.begin(), targets.end(), "all") != targets.end();
      std::optional<std::size_t> apps;
      std::size_t name_width = 0;
      bool live = false;
      std::vector<LogLine> tail;
      auto print_line = [&](std::string_view name, std::string_view stream, std::string_view line) {
        std::string text = a->raw
                               ? std::string(line)
                               : format_log_line(name, name_width, stream, line, show_app, colour);
        text += '\n';
        std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
      };
      auto flush_tail = [&] {
        if (a->raw) {
          for (const LogLine& l : tail) print_line(l.app, l.stream, l.text);
        } else {
          const std::string text = format_log_tail(tail, show_app, colour);
          std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
        }
        tail.clear();
      };
      auto result = client.call<Cmd::kLogs>(
          args,
          a->follow ? std::nullopt : std::optional<std::chrono::milliseconds>(kRequestTimeout),
          [&](const protocol::LogsItem& item) {
            if (const auto* names = std::get_if<protocol::LogsApps>(&item)) {
              apps = names->apps.size();
              show_app = show_app || *apps > 1;
              for (const std::string& n : names->apps)
                name_width = std::max(name_width, display_width(n));
              if (*apps == 0) std::cout << "no apps\n";
              return;
            }
            if (std::holds_alternative<protocol::LogsFollowing>(item)) {
              flush_tail();
              live = true;
              std::cout.flush();
              return;
            }
            const auto& line = std::get<protocol::LogLine>(item);
            if (live) {
              name_width = std::max(name_width, display_width(line.app));
              print_line(line.app, line.stream, line.text);
              std::cout.flush();
            } else {
              tail.push_back(line);
            }
          });
      if (!tail.empty()) flush_tail();
      if (!result) return report(result.error());
      return kExitOk;
    });
  };
}

std::function<int()> define_flush(CLI::App& app, const Invocation& invocation, bool starts_daemon) {
  auto targets = std::make_shared<std::vector<std::string>>();
  app.add_option("TARGET", *targets, "Whose logs: names, ids, pids, or all (the default)");
  app.footer(
      "Empties the current log files of the apps (NAME.out.log, NAME.err.log or their own\n"
      "files); rotated files stay (sempre cleanlogs removes them). Running apps keep writing.");
  return [targets, &invocation, starts_daemon] {
    const std::vector<std::string> words = with_dashes(*targets, invocation);
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = client.call<Cmd::kFlush>({words}, kRequestTimeout);
      if (!result) return report(result.error());
      if (result->apps.empty()) std::cout << "no apps\n";
      for (const std::string& name : result->apps)
        std::cout << "flushed the logs of " << name << '\n';
      return kExitOk;
    });
  };
}

std::function<int()> define_events(CLI::App& app, const Invocation& invocation,
                                   bool starts_daemon) {
  auto target = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  app.add_option("TARGET", *target, "Whose events: a name, an id, a pid, or all (the default)");
  app.add_flag("--json", *as_json,
               "Print each event as one JSON object per line: {\"app\":NAME, \"event\":{...}}");
  app.footer("Streams until interrupted. " + std::string(kTargetHelp));
  return [target, as_json, &invocation, starts_daemon] {
    const auto t = optional_target(*target, invocation);
    if (!t) return usage_error("events", "expected at most one TARGET");
    protocol::EventsArgs args;
    if (!t->empty()) args.targets = {*t};
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result =
          client.call<Cmd::kEvents>(args, std::nullopt, [&](const protocol::EventItem& item) {
            if (*as_json) {
              std::cout << json_text(protocol::to_json(item)) << '\n';
            } else {
              std::cout << format_event(item.app, item.event) << '\n';
            }
            std::cout.flush();
          });
      if (!result) return report(result.error());
      return kExitOk;
    });
  };
}

std::function<int()> define_cleanlogs(CLI::App& app, const Invocation&, bool starts_daemon) {
  app.footer("Removes NAME.out.log.1 ... and NAME.err.log.1 ...; the live logs stay.");
  return [starts_daemon] {
    return with_daemon(starts_daemon, [](Client& client) {
      auto result = client.call<Cmd::kCleanlogs>({}, kRequestTimeout);
      if (!result) return report(result.error());
      const int removed = result->removed;
      std::cout << "removed " << removed << " rotated log file" << (removed == 1 ? "" : "s")
                << '\n';
      return kExitOk;
    });
  };
}

std::function<int()> define_daemon(CLI::App& app, const Invocation&, bool) {
  auto action = std::make_shared<std::string>();
  app.add_option("ACTION", *action, "status, stop, start, restart or upgrade")->required();
  app.footer(
      "status:  print the daemon's pid, home, uptime and number of apps (exit 3 when none runs).\n"
      "stop:    stop the daemon and its apps; they start again with the next daemon.\n"
      "start:   start the daemon unless it runs (any other command starts it too).\n"
      "restart: replace the daemon by the sempred installed now, keeping every app running\n"
      "         (same pids, no line of output lost); upgrade is the same.");
  return [action] {
    if (*action == "status") return daemon_status();
    if (*action == "stop") return stop_daemon(Cmd::kShutdown);
    if (*action == "start") return daemon_start();
    if (*action == "restart" || *action == "upgrade") return reexec_daemon();
    std::string message = "unknown action \"" + *action + "\"";
    if (auto best = closest_word(*action, {"status", "stop", "start", "restart", "upgrade"})) {
      message += "; did you mean \"" + *best + "\"?";
    } else {
      message += "; expected status, stop, start, restart or upgrade";
    }
    return usage_error("daemon", message);
  };
}

std::function<int()> define_kill(CLI::App& app, const Invocation&, bool) {
  app.footer("Stops every app, as stop all does, then the daemon.");
  return [] { return stop_daemon(Cmd::kKill); };
}

}  // namespace sempre::cli

namespace sempre::cli {

std::function<int()> define_reload(CLI::App& app, const Invocation&, bool starts_daemon) {
  auto path = std::make_shared<std::string>();
  auto flags = std::make_shared<ApplyFlags>();
  app.add_option("FILE", *path, "The config file (FILE.toml)")->required()->type_name("FILE");
  app.add_flag("--dry-run", flags->dry_run, "Print what would be done, and do nothing");
  app.add_flag(
      "--update-env", flags->update_env,
      "Give the apps this shell's environment instead of the one of the file's first start");
  app.footer(
      "Compares FILE with what runs: starts its new apps, restarts the changed ones (only\n"
      "those, saying what changed), stops and deletes the ones no longer in it, and leaves the\n"
      "rest alone. The apps keep the environment the file was first started with, so a shell\n"
      "with another PWD changes nothing; --update-env takes this shell's. A file with any\n"
      "error changes nothing.");
  return [path, flags, starts_daemon] {
    if (!is_config_file(*path)) {
      std::error_code ec;
      if (!std::filesystem::exists(*path, ec)) {
        return usage_error("reload",
                           "\"" + *path +
                               "\" is not a config file (FILE.toml); to restart an app, use "
                               "sempre restart " +
                               *path);
      }
    }
    auto file = read_config(*path);
    if (!file) return kExitUsage;
    return apply_config(starts_daemon, *file, protocol::ApplyMode::kReload, *flags);
  };
}

std::function<int()> define_save(CLI::App& app, const Invocation&, bool starts_daemon) {
  auto path = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  app.add_option("FILE", *path, "Where to write (default SEMPRE_HOME/apps.toml)")
      ->type_name("FILE");
  app.add_flag("--force", *force, "Write even an empty list over a file that holds apps");
  app.footer(
      "Writes every app, with its full spec and environment, as a config file that\n"
      "sempre start (or sempre resurrect) reads back to the same apps; a stopped app is\n"
      "written with autostart = false and comes back stopped. The file is mode 0600 (it\n"
      "holds environments). An empty list never replaces a file with apps without --force.");
  return [path, force, starts_daemon] {
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = client.call<Cmd::kDump>({}, kRequestTimeout);
      if (!result) return report(result.error());
      std::vector<AppSpec> specs;
      for (protocol::DumpedApp& entry : result->apps) {
        entry.spec.autostart = entry.wanted_up;
        specs.push_back(std::move(entry.spec));
      }
      const std::string target = saved_file(*path);
      std::error_code ec;
      if (specs.empty() && !*force && std::filesystem::exists(target, ec)) {
        const AppsFile old = load_apps_file(target, {});
        if (!old.ok() || !old.apps.empty()) {
          return report(Error{ErrorKind::kExists,
                              "no apps to save, and " + target + " holds " +
                                  std::to_string(old.apps.size()) +
                                  " app(s); nothing was written (--force empties it)",
                              0});
        }
      }
      if (auto st = write_private_file(target, to_toml(specs)); !st) {
        return report(Error{ErrorKind::kIo, st.error().message, st.error().os_error});
      }
      std::cout << "saved " << specs.size() << " app" << (specs.size() == 1 ? "" : "s") << " to "
                << target << '\n';
      return kExitOk;
    });
  };
}

std::function<int()> define_resurrect(CLI::App& app, const Invocation&, bool starts_daemon) {
  auto path = std::make_shared<std::string>();
  app.add_option("FILE", *path, "What sempre save wrote (default SEMPRE_HOME/apps.toml)");
  app.footer("Starts the apps of a file written by sempre save, as sempre start FILE does.");
  return [path, starts_daemon] {
    const std::string file = saved_file(*path);
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) {
      return report(
          Error{ErrorKind::kNotFound,
                "nothing to resurrect: " + file + " does not exist (sempre save writes it)", 0});
    }
    return start_config(starts_daemon, {file});
  };
}

}  // namespace sempre::cli

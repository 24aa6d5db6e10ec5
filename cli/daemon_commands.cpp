// The commands that talk to sempred: each sends one request (client.hpp)
// and prints the answer (format.hpp) or the error, with the exit code of
// DESIGN "Conventions".
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "app_config.hpp"
#include "client.hpp"
#include "commands.hpp"
#include "format.hpp"
#include "sempre/program.hpp"
#include "start_options.hpp"


namespace sempre::cli {
namespace {

namespace json = boost::json;

constexpr const char* kTargetHelp = "TARGET is an app's name, id or pid, or all.";

int report(const Failure& failure) {
  std::cout.flush();
  std::cerr << "sempre: " << failure.message << '\n';
  return failure.exit_code;
}

int usage_error(const std::string& command, const std::string& message) {
  std::cerr << "sempre: " << message << "\nRun 'sempre " << command << " --help' for usage.\n";
  return kExitUsage;
}

HomePaths home() { return home_paths(resolve_home()); }

// SEMPRE_HOME/config.toml, whose [defaults] apply to every app started.
std::string home_config() { return home().home + "/config.toml"; }

// Prints the errors of a config file in the compiler's form.
void print_config_errors(const std::string& what, const std::vector<ConfigError>& errors) {
  std::cout.flush();
  std::cerr << "sempre: " << what << " has " << errors.size() << " error"
            << (errors.size() == 1 ? "" : "s") << "; nothing was changed\n";
  for (const ConfigError& e : errors) std::cerr << e.str() << '\n';
}

// Connects to the daemon (starting it when `starts_daemon` and none runs)
// and runs `body` with the connection.
int with_daemon(bool starts_daemon, const std::function<int(Client&)>& body) {
  auto client = Client::connect(home(), starts_daemon);
  if (!client) return report(client.failure());
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

json::array to_array(const std::vector<std::string>& items) {
  json::array out;
  for (const auto& item : items) out.emplace_back(item);
  return out;
}

const json::object& object_at(const json::object& object, std::string_view key) {
  static const json::object kEmpty;
  const json::value* v = object.if_contains(key);
  return v != nullptr && v->is_object() ? v->get_object() : kEmpty;
}

const json::array& array_at(const json::object& object, std::string_view key) {
  static const json::array kEmpty;
  const json::value* v = object.if_contains(key);
  return v != nullptr && v->is_array() ? v->get_array() : kEmpty;
}

void add_targets(CLI::App& app, std::vector<std::string>& targets) {
  app.add_option("TARGET", targets, "Apps to act on: a name, an id, a pid, or all");
  app.footer(kTargetHelp);
}

// Sends `cmd` for `targets` and prints "VERB APP (id N[, pid P])" for
// every app the daemon acted on.
int act_on(bool starts_daemon, const std::string& command, std::string_view cmd,
           const std::vector<std::string>& targets, json::object args, const std::string& verb,
           bool with_pid) {
  if (targets.empty()) return usage_error(command, "TARGET is required");
  args["targets"] = to_array(targets);
  return with_daemon(starts_daemon, [&](Client& client) {
    auto result = client.request(cmd, std::move(args), kStopTimeout);
    if (!result) return report(result.failure());
    const json::array& apps = array_at(*result, "apps");
    if (apps.empty()) std::cout << "no apps\n";
    for (const json::value& app : apps) {
      if (app.is_object()) {
        std::cout << verb << ' ' << app_label(app.get_object(), with_pid) << '\n';
      }
    }
    return kExitOk;
  });
}

// A command of the form `NAME TARGET...`.
std::function<int()> define_target_command(CLI::App& app, const Invocation& invocation,
                                           bool starts_daemon, std::string command,
                                           std::string verb, bool with_pid) {
  auto targets = std::make_shared<std::vector<std::string>>();
  add_targets(app, *targets);
  return [targets, &invocation, starts_daemon, command, verb, with_pid] {
    return act_on(starts_daemon, command, command, with_dashes(*targets, invocation), {}, verb,
                  with_pid);
  };
}

std::vector<std::string> current_env() { return current_environment(); }

int daemon_status() {
  return with_daemon(false, [](Client& client) {
    auto ping = client.request("ping", {}, kRequestTimeout);
    if (!ping) return report(ping.failure());
    std::cout << format_daemon_status(*ping);
    return kExitOk;
  });
}

int daemon_start() {
  const HomePaths paths = home();
  const bool was_running = running_daemon_pid(paths).has_value();
  auto client = Client::connect(paths, true);
  if (!client) return report(client.failure());
  auto ping = client->request("ping", {}, kRequestTimeout);
  if (!ping) return report(ping.failure());
  const std::string pid = std::to_string(field_int(*ping, "pid").value_or(0));
  std::cout << (was_running ? "the daemon is already running (pid " + pid + ")"
                            : "started the daemon (pid " + pid + ")")
            << '\n';
  return kExitOk;
}

// Sends `cmd`, kill or shutdown, which stops every app and then the daemon,
// and waits until the daemon has exited. A shutdown the daemon does not
// understand (it speaks another protocol version) becomes a SIGTERM, which
// does the same.
int stop_daemon(const std::string& cmd) {
  const HomePaths paths = home();
  const auto pid = running_daemon_pid(paths);
  const bool pid_known = pid && *pid > 0;
  auto client = Client::connect(paths, false);
  if (!client && !pid) {
    std::cout << no_daemon_message(paths) << '\n';
    return kExitOk;
  }
  std::optional<std::int64_t> stopped;
  Failure failure = client ? Failure{} : client.failure();
  if (client) {
    auto result = client->request(cmd, {}, kStopTimeout);
    if (result) {
      stopped = field_int(*result, "stopped").value_or(0);
    } else {
      failure = result.failure();
    }
  }
  const std::string label = pid_known ? " (pid " + std::to_string(*pid) + ")" : "";
  if (!stopped) {
    if (!pid_known) return report(failure);
    if (cmd == "shutdown") {
      if (::kill(*pid, SIGTERM) != 0 && errno != ESRCH) {
        return report(
            {kExitFailed, "cannot signal the daemon" + label + ": " + std::strerror(errno)});
      }
    } else if (!wait_for_exit(*pid, std::chrono::seconds(1))) {
      return report(failure);
    }
  }
  if (pid_known && !wait_for_exit(*pid, stopped ? kDaemonStartTimeout : kStopTimeout)) {
    return report({kExitFailed, "the daemon" + label + " did not exit"});
  }
  const std::int64_t n = stopped.value_or(0);
  if (cmd == "kill") {
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


bool is_config_file(const std::string& arg) {
  return arg.size() > 5 && arg.compare(arg.size() - 5, 5, ".toml") == 0;
}

// Parses a config file, printing every error in the compiler's form.
std::optional<AppsFile> read_config(const std::string& path) {
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
  AppsFile file = load_apps_file(absolute, current_env(), home_config());
  if (file.ok()) return file;
  print_config_errors(absolute, file.errors);
  return std::nullopt;
}

// Sends `apply` for the apps of `file` and prints what the daemon did.
int apply_config(bool starts_daemon, const AppsFile& file, const std::string& mode,
                 const std::vector<std::string>& only, bool watch) {
  json::array specs;
  for (const AppSpec& spec : file.apps) specs.push_back(protocol::to_json(spec));
  json::object args{{"file", file.path}, {"mode", mode}, {"specs", std::move(specs)},
                    {"env", to_array(current_env())}, {"watch", watch}};
  if (!only.empty()) args["only"] = to_array(only);
  return with_daemon(starts_daemon, [&](Client& client) {
    auto result = client.request("apply", std::move(args), kStopTimeout);
    if (!result) return report(result.failure());
    bool any = false;
    for (const auto& [key, verb] : {std::pair{"started", "started"}, {"restarted", "restarted"},
                                    {"deleted", "deleted"}, {"unchanged", "unchanged"}}) {
      for (const json::value& name : array_at(*result, key)) {
        if (!name.is_string()) continue;
        std::cout << verb << ' ' << name.get_string().c_str() << '\n';
        any = true;
      }
    }
    int code = kExitOk;
    for (const json::value& failed : array_at(*result, "failed")) {
      if (!failed.is_object()) continue;
      const json::object& f = failed.get_object();
      const json::value* name = f.if_contains("name");
      const json::value* error = f.if_contains("error");
      std::cerr << "sempre: " << (name && name->is_string() ? name->get_string().c_str() : "?")
                << ": " << (error && error->is_string() ? error->get_string().c_str() : "failed")
                << '\n';
      code = kExitFailed;
      any = true;
    }
    if (!any) std::cout << "no apps\n";
    if (watch) std::cout << "watching " << file.path << " for changes\n";
    return code;
  });
}

// `sempre start FILE.toml [--only NAME[,NAME]] [--watch-config]`: the words
// after the file are read here, since everything after PROGRAM is PROGRAM's.
int start_config(bool starts_daemon, const std::vector<std::string>& words) {
  std::vector<std::string> only;
  bool watch = false;
  for (std::size_t i = 1; i < words.size(); ++i) {
    const std::string& w = words[i];
    std::string list;
    if (w == "--watch-config") {
      watch = true;
      continue;
    }
    if (w == "--only" && i + 1 < words.size()) {
      list = words[++i];
    } else if (w.rfind("--only=", 0) == 0) {
      list = w.substr(7);
    } else {
      return usage_error("start", "unexpected \"" + w + "\" after " + words[0] +
                                      " (expected --only NAME[,NAME] or --watch-config)");
    }
    for (std::size_t at = 0; at <= list.size();) {
      const auto comma = std::min(list.find(',', at), list.size());
      if (comma > at) only.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
  }
  auto file = read_config(words[0]);
  if (!file) return kExitUsage;
  return apply_config(starts_daemon, *file, "start", only, watch);
}

std::string saved_file(const std::string& given) {
  return given.empty() ? home().home + "/apps.toml" : given;
}

}  // namespace

std::function<int()> define_start(CLI::App& app, const Invocation& invocation, bool starts_daemon) {
  auto args = std::make_shared<StartArgs>();
  add_start_options(app, *args, invocation);
  app.footer(
      "sempre start answers once the program was spawned, or with the reason it could not be.\n"
      "The program gets sempre's environment plus --env. Its output goes to\n"
      "SEMPRE_HOME/logs/NAME.out.log and NAME.err.log unless --out, --err or --log say otherwise.\n"
      "\n"
      "sempre start FILE.toml [--only NAME[,NAME]] [--watch-config] starts the apps of a config\n"
      "file (sempre.toml(5)); apps already running with the same spec are left alone. With\n"
      "--watch-config the daemon applies every saved change of the file, as sempre reload does.");
  return [args, starts_daemon] {
    if (!args->command.empty() && is_config_file(args->command[0])) {
      return start_config(starts_daemon, args->command);
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
    const AppSpec spec{options->name, options->monitor};
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = client.request("start", {{"spec", protocol::to_json(spec)}}, kRequestTimeout);
      if (!result) return report(result.failure());
      std::cout << "started " << app_label(object_at(*result, "app"), true) << '\n';
      return kExitOk;
    });
  };
}

std::function<int()> define_stop(CLI::App& app, const Invocation& invocation, bool starts_daemon) {
  return define_target_command(app, invocation, starts_daemon, "stop", "stopped", false);
}

std::function<int()> define_restart(CLI::App& app, const Invocation& invocation,
                                    bool starts_daemon) {
  return define_target_command(app, invocation, starts_daemon, "restart", "restarted", true);
}

std::function<int()> define_delete(CLI::App& app, const Invocation& invocation,
                                   bool starts_daemon) {
  return define_target_command(app, invocation, starts_daemon, "delete", "deleted", false);
}

std::function<int()> define_stopall(CLI::App&, const Invocation&, bool starts_daemon) {
  return [starts_daemon] {
    return act_on(starts_daemon, "stopall", "stop", {"all"}, {}, "stopped", false);
  };
}

std::function<int()> define_restartall(CLI::App&, const Invocation&, bool starts_daemon) {
  return [starts_daemon] {
    return act_on(starts_daemon, "restartall", "restart", {"all"}, {}, "restarted", true);
  };
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
    return act_on(starts_daemon, "signal", "signal", words, {{"signal", *sig}},
                  "sent " + signal_name(*sig) + " to", true);
  };
}

std::function<int()> define_list(CLI::App& app, const Invocation&, bool starts_daemon) {
  auto as_json = std::make_shared<bool>(false);
  app.add_flag("--json", *as_json, "Print the apps as a JSON array (its schema is in sempre(1))");
  return [as_json, starts_daemon] {
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = client.request("list", {}, kRequestTimeout);
      if (!result) return report(result.failure());
      const json::array& apps = array_at(*result, "apps");
      if (*as_json) {
        std::cout << json::serialize(apps) << '\n';
      } else {
        std::cout << format_list(apps, colour_enabled(STDOUT_FILENO));
      }
      return kExitOk;
    });
  };
}

std::function<int()> define_info(CLI::App& app, const Invocation& invocation, bool starts_daemon) {
  auto target = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  app.add_option("TARGET", *target, "The app: a name, an id or a pid");
  app.add_flag("--json", *as_json, "Print the app and its spec as one JSON object");
  app.footer(kTargetHelp);
  return [target, as_json, &invocation, starts_daemon] {
    const auto targets = with_dashes(
        target->empty() ? std::vector<std::string>{} : std::vector<std::string>{*target},
        invocation);
    if (targets.size() != 1) return usage_error("info", "expected one TARGET");
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = client.request("info", {{"target", targets[0]}}, kRequestTimeout);
      if (!result) return report(result.failure());
      const json::object& info = object_at(*result, "app");
      if (*as_json) {
        std::cout << json::serialize(info) << '\n';
        return kExitOk;
      }
      std::optional<AppSpec> spec;
      if (info.contains("spec")) {
        if (auto parsed = protocol::app_spec_from_json(object_at(info, "spec"))) spec = *parsed;
      }
      std::cout << format_info(info, spec, colour_enabled(STDOUT_FILENO));
      return kExitOk;
    });
  };
}

std::function<int()> define_logs(CLI::App& app, const Invocation& invocation, bool starts_daemon) {
  struct Args {
    std::string target;
    int lines = 15;
    bool follow = false;
  };
  auto a = std::make_shared<Args>();
  app.add_option("TARGET", a->target, "Whose logs: a name, an id, a pid, or all (the default)");
  app.add_option("-n,--lines", a->lines, "How many of the last lines of each log to print")
      ->capture_default_str();
  app.add_flag("-f,--follow", a->follow,
               "Keep printing lines as they are written, until interrupted");
  app.footer(
      "Prints the last lines of the standard output and standard error logs. When several apps\n"
      "are shown (no TARGET, or all), each line starts with the app's name: \"api | line\".");
  return [a, &invocation, starts_daemon] {
    if (a->lines < 0) return usage_error("logs", "--lines: must be 0 or more");
    const auto target = optional_target(a->target, invocation);
    if (!target) return usage_error("logs", "expected at most one TARGET");
    const bool prefixed = target->empty() || *target == "all";
    const bool colour = colour_enabled(STDOUT_FILENO);
    json::object args{{"lines", a->lines}, {"follow", a->follow}};
    args["target"] = target->empty() ? json::value(nullptr) : json::value(*target);
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = client.request(
          "logs", std::move(args),
          a->follow ? std::nullopt : std::optional<std::chrono::milliseconds>(kRequestTimeout),
          [&](const json::object& item) {
            std::cout << format_log_line(field_string(item, "app"), field_string(item, "stream"),
                                         field_string(item, "line"), prefixed, colour)
                      << '\n';
            if (a->follow) std::cout.flush();
          });
      if (!result) return report(result.failure());
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
    json::object args;
    args["target"] = t->empty() ? json::value(nullptr) : json::value(*t);
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result =
          client.request("events", std::move(args), std::nullopt, [&](const json::object& item) {
            if (*as_json) {
              std::cout << json::serialize(item) << '\n';
            } else {
              std::cout << format_event(field_string(item, "app"), object_at(item, "event"))
                        << '\n';
            }
            std::cout.flush();
          });
      if (!result) return report(result.failure());
      return kExitOk;
    });
  };
}

std::function<int()> define_cleanlogs(CLI::App& app, const Invocation&, bool starts_daemon) {
  app.footer("Removes NAME.out.log.1 ... and NAME.err.log.1 ...; the live logs stay.");
  return [starts_daemon] {
    return with_daemon(starts_daemon, [](Client& client) {
      auto result = client.request("cleanlogs", {}, kRequestTimeout);
      if (!result) return report(result.failure());
      const auto removed = field_int(*result, "removed").value_or(0);
      std::cout << "removed " << removed << " rotated log file" << (removed == 1 ? "" : "s")
                << '\n';
      return kExitOk;
    });
  };
}

std::function<int()> define_daemon(CLI::App& app, const Invocation&, bool) {
  auto action = std::make_shared<std::string>();
  app.add_option("ACTION", *action, "status, stop or start")
      ->required()
      ->check(CLI::IsMember({"status", "stop", "start"}));
  app.footer(
      "status: print the daemon's pid, home, uptime and number of apps (exit 3 when none runs).\n"
      "stop:   stop the daemon and its apps; they start again with the next daemon.\n"
      "start:  start the daemon unless it runs (any other command starts it too).");
  return [action] {
    if (*action == "status") return daemon_status();
    if (*action == "stop") return stop_daemon("shutdown");
    return daemon_start();
  };
}

std::function<int()> define_kill(CLI::App& app, const Invocation&, bool) {
  app.footer("Stops every app, as stop all does, then the daemon.");
  return [] { return stop_daemon("kill"); };
}

}  // namespace sempre::cli

namespace sempre::cli {

std::function<int()> define_reload(CLI::App& app, const Invocation&, bool starts_daemon) {
  auto path = std::make_shared<std::string>();
  app.add_option("FILE", *path, "The config file (FILE.toml)")->required();
  app.footer(
      "Compares FILE with what runs: starts its new apps, restarts the changed ones (only\n"
      "those), stops and deletes the ones no longer in it, and leaves the rest alone.\n"
      "A file with any error changes nothing.");
  return [path, starts_daemon] {
    auto file = read_config(*path);
    if (!file) return kExitUsage;
    return apply_config(starts_daemon, *file, "reload", {}, false);
  };
}

std::function<int()> define_save(CLI::App& app, const Invocation&, bool starts_daemon) {
  auto path = std::make_shared<std::string>();
  app.add_option("FILE", *path, "Where to write (default SEMPRE_HOME/apps.toml)");
  app.footer("Writes every app, with its full spec and environment, as a config file that\n"
             "sempre start (or sempre resurrect) reads back to the same apps.");
  return [path, starts_daemon] {
    return with_daemon(starts_daemon, [&](Client& client) {
      auto result = client.request("dump", {}, kRequestTimeout);
      if (!result) return report(result.failure());
      std::vector<AppSpec> specs;
      for (const json::value& entry : array_at(*result, "apps")) {
        if (!entry.is_object()) continue;
        auto spec = protocol::app_spec_from_json(object_at(entry.get_object(), "spec"));
        if (!spec) return report(Failure{kExitFailed, spec.error().message});
        specs.push_back(std::move(*spec));
      }
      const std::string target = saved_file(*path);
      const std::string tmp = target + ".tmp";
      {
        std::ofstream out(tmp, std::ios::trunc);
        out << to_toml(specs);
        if (!out.flush()) {
          return report(Failure{kExitFailed, "cannot write " + tmp + ": " + std::strerror(errno)});
        }
      }
      if (std::rename(tmp.c_str(), target.c_str()) != 0) {
        return report(Failure{kExitFailed, "cannot write " + target + ": " + std::strerror(errno)});
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
      return report(Failure{kExitFailed, "nothing to resurrect: " + file + " does not exist (sempre save writes it)"});
    }
    return start_config(starts_daemon, {file});
  };
}

}  // namespace sempre::cli

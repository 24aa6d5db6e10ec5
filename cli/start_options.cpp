#include "start_options.hpp"

#include <algorithm>
#include <filesystem>

#include "app_config.hpp"

namespace sempre::cli {
namespace {

namespace fs = std::filesystem;

Error invalid(const std::string& option, const std::string& message) {
  return Error{ErrorKind::kInvalidArgument, option + ": " + message};
}

// Applies a parsed duration to `out` unless the text is empty (not given).
Status set_duration(const std::string& option, const std::string& text, Millis& out) {
  if (text.empty()) return {};
  auto d = parse_duration(text);
  if (!d) return invalid(option, d.error().message);
  out = *d;
  return {};
}

std::string absolute(const std::string& path, const std::string& base) {
  if (path.empty()) return path;
  fs::path p(path);
  if (p.is_relative()) p = fs::path(base) / p;
  return p.lexically_normal().string();
}

}  // namespace

void add_start_options(CLI::App& app, StartArgs& a, const Invocation& invocation) {
  app.add_option("-n,--name", a.name, "Name of the app (default: the program's base name)")
      ->type_name("NAME");
  app.add_option("--cwd", a.cwd, "Working directory of the child (default: the current one)")
      ->type_name("DIR");
  app.add_option("--env", a.env, "Set an environment variable K=V for the child (repeatable)")
      ->type_name("K=V")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--env-file", a.env_file,
                 "Read KEY=VALUE lines from FILE into the child's environment (before --env)")
      ->type_name("FILE");
  app.add_flag("--no-env-inherit", a.no_env_inherit,
               "Start the child with only --env-file and --env, not sempre's environment");
  app.add_option("--user", a.user, "Run as this user (name or uid; needs root)")->type_name("USER");
  app.add_option("--group", a.group, "Run with this group (name or gid; needs root)")
      ->type_name("GROUP");
  app.add_option("--umask", a.umask, "File mode creation mask of the child, in octal (e.g. 027)")
      ->type_name("MODE");
  app.add_option("--restart", a.restart,
                 "When to restart: always, on-failure or never (default always)")
      ->type_name("WHEN");
  app.add_option("-m,--max-restarts", a.max_restarts,
                 "Give up (status failed) after N consecutive crash-loop restarts (default: unlimited)")
      ->type_name("N");
  app.add_option("--min-uptime", a.min_uptime,
                 "A run shorter than this is a crash loop (default 1s)")
      ->type_name("DUR");
  app.add_option("--restart-delay", a.restart_delay,
                 "Wait before restarting a run that lasted (default 0)")
      ->type_name("DUR");
  app.add_option("--backoff-max", a.backoff_max,
                 "Longest wait between crash-loop restarts (default 30s)")
      ->type_name("DUR");
  app.add_option("--kill-signal", a.kill_signal, "Signal that asks the app to stop (default TERM)")
      ->type_name("SIG");
  app.add_option("--kill-timeout", a.kill_timeout,
                 "Wait this long after the kill signal, then SIGKILL (default 5s)")
      ->type_name("DUR");
  app.add_option("-o,--out", a.out,
                 "Write the child's stdout to FILE instead of its default log (stderr keeps its own)")
      ->type_name("FILE");
  app.add_option("-e,--err", a.err,
                 "Write the child's stderr to FILE instead of its default log (/dev/null: discard)")
      ->type_name("FILE");
  app.add_option("-l,--log", a.log, "Write both stdout and stderr to FILE, lines interleaved")
      ->type_name("FILE");
  app.add_flag("-a,--append", a.append, "Append to the log files instead of truncating them");
  app.add_option("--log-max-size", a.log_max_size,
                 "Rotate a log file when it would pass SIZE (default 10M; 0: never)")
      ->type_name("SIZE");
  app.add_option("--log-keep", a.log_keep, "Rotated log files to keep (default 5)")->type_name("N");
  app.add_flag("--log-timestamps", a.log_timestamps,
               "Prefix each log line with its time (ISO 8601, milliseconds)");
  // A flag: `-w server.js` watches and runs server.js. A path comes with
  // --watch=PATH or --watch-path PATH.
  app.add_flag("-w{.},--watch{.}", a.watch,
               "Restart when files under the working directory change (--watch=PATH: under PATH)");
  app.add_option("--watch-path", a.watch_path, "Restart when files under PATH change (repeatable)")
      ->type_name("PATH")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--watch-ignore", a.watch_ignore, "Ignore changes to paths matching GLOB (repeatable)")
      ->type_name("GLOB")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--watch-debounce", a.watch_debounce,
                 "Wait until files have been quiet this long before restarting (default 200ms)")
      ->type_name("DUR");
  app.add_option("--pid-file", a.pid_file, "Write the child's pid to FILE while it runs")
      ->type_name("FILE");
  app.add_option("--ready", a.ready,
                 "When the app is up: notify (it sends READY=1 to $NOTIFY_SOCKET), tcp:PORT "
                 "(127.0.0.1:PORT accepts) or exec:CMD (sh -c CMD exits 0); default: once it "
                 "has lasted --min-uptime")
      ->type_name("CHECK");
  app.add_option("-c,--interpreter", a.interpreter,
                 "Run the program with this interpreter (e.g. node, \"python3 -u\")")
      ->type_name("CMD");
  // Everything from PROGRAM on belongs to the child, options included: CLI11
  // stops at the first argument it does not know and leaves the rest.
  app.prefix_command();
  app.parse_complete_callback([&a, &app, &invocation] {
    a.command = app.remaining();
    a.given.clear();
    for (const CLI::Option* o : app.get_options()) {
      if (o->count() > 0 && !o->get_lnames().empty() && o->get_lnames()[0] != "help") {
        a.given.push_back("--" + o->get_lnames()[0]);
      }
    }
    // A mistyped option is the first word left over; it must not be taken
    // for the program.
    if (!a.command.empty() && a.command[0].size() > 1 && a.command[0][0] == '-') {
      a.unknown_option = unknown_argument_message(a.command[0], &app);
    }
    // Without "--", a word after PROGRAM that is one of sempre's options was
    // most likely meant for sempre.
    if (!invocation.has_dashes) {
      for (std::size_t i = 1; i < a.command.size(); ++i) {
        const std::string& w = a.command[i];
        if (w.size() < 2 || w[0] != '-' || w == "-h" || w == "--help") continue;
        const std::string name = w.substr(0, w.find('='));
        for (const CLI::Option* o : app.get_options()) {
          if (o->check_name(name)) {
            a.late_options.push_back(name);
            break;
          }
        }
      }
    }
    if (invocation.has_dashes) {
      // A "--" after PROGRAM is one of its arguments.
      if (!a.command.empty()) a.command.emplace_back("--");
      a.command.insert(a.command.end(), invocation.after_dashes.begin(),
                       invocation.after_dashes.end());
    }
  });
}

std::string late_options_warning(const StartArgs& a, const std::string& command) {
  if (a.late_options.empty() || a.command.empty()) return {};
  std::string names;
  for (const auto& n : a.late_options) names += (names.empty() ? "\"" : ", \"") + n + "\"";
  const bool one = a.late_options.size() == 1;
  return "warning: " + names + (one ? " comes" : " come") + " after PROGRAM, so " +
         a.command[0] + " gets " + (one ? "it" : "them") + ", not sempre; write sempre " + command +
         " [OPTIONS] PROGRAM [ARGS...] to give " + (one ? "it" : "them") +
         " to sempre, or put -- before PROGRAM to say it is meant";
}

Result<AppOptions> to_app_options(const StartArgs& a, const std::vector<std::string>& env,
                                  const std::string& cwd, const MonitorOptions* defaults) {
  AppOptions app;
  MonitorOptions& m = app.monitor;
  // What the command line does not say comes from `defaults`.
  if (defaults != nullptr) m = *defaults;
  if (!a.unknown_option.empty()) return Error{ErrorKind::kInvalidArgument, a.unknown_option};
  if (a.command.empty()) return invalid("PROGRAM", "no program to run");
  m.argv = a.command;
  const bool named = std::find(a.given.begin(), a.given.end(), "--name") != a.given.end();
  if (named && a.name.empty()) return invalid("--name", "the name must not be empty");
  app.name = a.name.empty() ? default_app_name(a.command[0]) : a.name;
  if (app.name.empty()) return invalid("--name", "the name must not be empty");

  m.cwd = absolute(!a.cwd.empty() ? a.cwd : !m.cwd.empty() ? m.cwd : cwd, cwd);
  if (m.env.empty()) m.env = env;
  if (a.no_env_inherit) m.env.clear();
  if (!a.env_file.empty()) {
    std::vector<ConfigError> errors;
    const std::vector<std::string> vars = load_env_file(absolute(a.env_file, cwd), errors);
    if (!errors.empty()) return invalid("--env-file", errors.front().str());
    for (const auto& kv : vars) {
      const std::string prefix = kv.substr(0, kv.find('=') + 1);
      std::erase_if(m.env, [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
      m.env.push_back(kv);
    }
  }
  for (const auto& kv : a.env) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return invalid("--env", "expected K=V, got \"" + kv + "\"");
    }
    const std::string prefix = kv.substr(0, eq + 1);
    std::erase_if(m.env, [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
    m.env.push_back(kv);
  }
  if (!a.user.empty()) m.user = a.user;
  if (!a.group.empty()) m.group = a.group;
  if (!a.umask.empty()) {
    std::size_t used = 0;
    unsigned long mask = 0;
    try {
      mask = std::stoul(a.umask, &used, 8);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != a.umask.size() || mask > 0777) {
      return invalid("--umask", "expected an octal mode such as 022, got \"" + a.umask + "\"");
    }
    m.umask = static_cast<mode_t>(mask);
  }

  if (!a.restart.empty()) {
    auto mode = parse_restart_mode(a.restart);
    if (!mode) return invalid("--restart", mode.error().message);
    m.restart = *mode;
  }
  if (a.max_restarts) {
    if (*a.max_restarts < 0) return invalid("--max-restarts", "must be 0 or more");
    m.max_restarts = a.max_restarts;
  }
  if (auto st = set_duration("--min-uptime", a.min_uptime, m.min_uptime); !st) return st.error();
  if (auto st = set_duration("--restart-delay", a.restart_delay, m.restart_delay); !st) return st.error();
  if (auto st = set_duration("--backoff-max", a.backoff_max, m.backoff_max); !st) return st.error();
  if (auto st = set_duration("--kill-timeout", a.kill_timeout, m.kill_timeout); !st) return st.error();
  if (m.kill_timeout.count() <= 0) return invalid("--kill-timeout", "must be longer than 0");
  if (m.backoff_max.count() <= 0) return invalid("--backoff-max", "must be longer than 0");
  if (!a.kill_signal.empty()) {
    auto sig = parse_signal(a.kill_signal);
    if (!sig) return invalid("--kill-signal", sig.error().message);
    m.kill_signal = *sig;
  }

  if (!a.log.empty() && (!a.out.empty() || !a.err.empty())) {
    return invalid("--log", "cannot be combined with --out or --err");
  }
  if (!a.log.empty() || !a.out.empty() || !a.err.empty()) {
    m.logs.out_path = absolute(a.log.empty() ? a.out : a.log, cwd);
    m.logs.err_path = absolute(a.log.empty() ? a.err : a.log, cwd);
  }
  if (a.append) m.logs.append = true;
  if (!a.log_max_size.empty()) {
    auto size = parse_size(a.log_max_size);
    if (!size) return invalid("--log-max-size", size.error().message);
    m.logs.max_size = *size;
  }
  if (a.log_keep) {
    if (*a.log_keep < 0) return invalid("--log-keep", "must be 0 or more");
    m.logs.keep = *a.log_keep;
  }
  if (a.log_timestamps) m.logs.timestamps = true;

  if (!a.watch.empty() || !a.watch_path.empty()) {
    m.watch.clear();
    for (const auto* list : {&a.watch, &a.watch_path}) {
      for (const auto& w : *list) {
        if (w.empty()) return invalid("--watch", "expected --watch=PATH, got an empty PATH");
        const std::string path = w == "." ? m.cwd : absolute(w, m.cwd);
        if (std::find(m.watch.begin(), m.watch.end(), path) == m.watch.end()) m.watch.push_back(path);
      }
    }
  }
  if (!a.watch_ignore.empty()) m.watch_ignore = a.watch_ignore;
  if (auto st = set_duration("--watch-debounce", a.watch_debounce, m.watch_debounce); !st) {
    return st.error();
  }
  if (!a.pid_file.empty()) m.pid_file = absolute(a.pid_file, cwd);
  if (!a.interpreter.empty()) m.interpreter = a.interpreter;
  if (!a.ready.empty()) m.ready = a.ready;

  if (auto st = validate(m); !st) return st.error();
  return app;
}

}  // namespace sempre::cli

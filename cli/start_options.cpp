#include "start_options.hpp"

#include <algorithm>
#include <filesystem>

#include "app_config.hpp"
#include "option_schema.hpp"

namespace sempre::cli {
namespace {

namespace fs = std::filesystem;

Error invalid(const std::string& option, const std::string& message) {
  return Error{ErrorKind::kInvalidArgument, option + ": " + message};
}

std::string absolute(const std::string& path, const std::string& base) {
  if (path.empty()) return path;
  fs::path p(path);
  if (p.is_relative()) p = fs::path(base) / p;
  return p.lexically_normal().string();
}

}  // namespace

StartArgs::StartArgs()
    : row_text(option_rows().size()),
      row_items(option_rows().size()),
      row_given(option_rows().size(), false) {}

void add_start_options(CLI::App& app, StartArgs& a, const Invocation& invocation,
                       StartCommand command) {
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
  app.add_option(
         "-o,--out", a.out,
         "Write the child's stdout to FILE instead of its default log (stderr keeps its own)")
      ->type_name("FILE");
  app.add_option("-e,--err", a.err,
                 "Write the child's stderr to FILE instead of its default log (/dev/null: discard)")
      ->type_name("FILE");
  app.add_option("-l,--log", a.log, "Write both stdout and stderr to FILE, lines interleaved")
      ->type_name("FILE");
  // A flag: `-w server.js` watches and runs server.js. A path comes with
  // --watch=PATH or --watch-path PATH.
  app.add_flag("-w{.},--watch{.}", a.watch,
               "Restart when files under the working directory change (--watch=PATH: under PATH)");
  app.add_option("--watch-path", a.watch_path, "Restart when files under PATH change (repeatable)")
      ->type_name("PATH")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  // Every row of the option schema.
  std::vector<std::pair<std::size_t, const CLI::Option*>> rows;
  const auto schema = option_rows();
  for (std::size_t i = 0; i < schema.size(); ++i) {
    const OptionRow& row = schema[i];
    if (row.flags.empty() || (row.start_only && command != StartCommand::kStart)) continue;
    const std::string flags(row.flags);
    const std::string help(row.help);
    CLI::Option* option = nullptr;
    if (row.kind == OptionKind::kFlag) {
      option = app.add_flag(flags, help);
    } else if (row.kind == OptionKind::kList) {
      option = app.add_option(flags, a.row_items[i], help)
                   ->expected(1)
                   ->allow_extra_args(false)
                   ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    } else {
      option = app.add_option(flags, a.row_text[i], help);
    }
    if (!row.metavar.empty()) option->type_name(std::string(row.metavar));
    rows.emplace_back(i, option);
  }
  // Everything from PROGRAM on belongs to the child, options included: CLI11
  // stops at the first argument it does not know and leaves the rest.
  app.prefix_command();
  app.parse_complete_callback([&a, &app, &invocation, rows] {
    for (const auto& [i, option] : rows) a.row_given[i] = option->count() > 0;
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
  return "warning: " + names + (one ? " comes" : " come") + " after PROGRAM, so " + a.command[0] +
         " gets " + (one ? "it" : "them") + ", not sempre; write sempre " + command +
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
  const auto schema = option_rows();
  for (std::size_t i = 0; i < schema.size(); ++i) {
    if (!a.row_given[i]) continue;
    const OptionRow& row = schema[i];
    // An empty value says nothing: what [defaults] gives stays.
    if (row.kind != OptionKind::kFlag && row.kind != OptionKind::kList && a.row_text[i].empty()) {
      continue;
    }
    const std::string option = "--" + std::string(long_flag(row));
    if (row.kind == OptionKind::kList) {
      field_of<std::vector<std::string>>(row, app).clear();
      for (const auto& item : a.row_items[i]) {
        if (auto st = set_from_text(row, item, app, cwd); !st) {
          return invalid(option, st.error().message);
        }
      }
    } else if (auto st = set_from_text(row, a.row_text[i], app, cwd); !st) {
      return invalid(option, st.error().message);
    }
  }
  for (const OptionRow& row : schema) {
    if (auto st = check_value(row, app); !st) {
      return invalid("--" + std::string(long_flag(row)), st.error().message);
    }
  }

  if (!a.log.empty() && (!a.out.empty() || !a.err.empty())) {
    return invalid("--log", "cannot be combined with --out or --err");
  }
  if (!a.log.empty() || !a.out.empty() || !a.err.empty()) {
    m.logs.out_path = absolute(a.log.empty() ? a.out : a.log, cwd);
    m.logs.err_path = absolute(a.log.empty() ? a.err : a.log, cwd);
  }
  if (!a.watch.empty() || !a.watch_path.empty()) {
    m.watch.clear();
    for (const auto* list : {&a.watch, &a.watch_path}) {
      for (const auto& w : *list) {
        if (w.empty()) return invalid("--watch", "expected --watch=PATH, got an empty PATH");
        const std::string path = w == "." ? m.cwd : absolute(w, m.cwd);
        if (std::find(m.watch.begin(), m.watch.end(), path) == m.watch.end())
          m.watch.push_back(path);
      }
    }
  }
  if (auto st = validate(m); !st) return st.error();
  return app;
}

}  // namespace sempre::cli

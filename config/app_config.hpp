// Config files: `apps.toml` (a fleet of apps, man/sempre.toml.5) and the
// daemon's `SEMPRE_HOME/config.toml`, parsed with toml++ into the same
// AppSpec the command line builds. Every error names FILE:LINE:COLUMN.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app_spec.hpp"
#include "sempre/units.hpp"

namespace sempre {

// The entry of `known` close enough to `word` (a few edits away) to be the
// one meant, for "did you mean" hints; nullopt when none is.
std::optional<std::string> closest_word(std::string_view word,
                                        const std::vector<std::string_view>& known);

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error is about the whole file
  int column = 0;  // 1-based
  std::string message;

  // "FILE:LINE:COLUMN: message" (the compiler's form); "FILE: message" without a position.
  std::string str() const;
};

// The outcome of parsing: the apps when `errors` is empty, nothing otherwise
// (a file with any error starts nothing).
struct AppsFile {
  std::string path;  // absolute
  std::vector<AppSpec> apps;
  std::vector<ConfigError> errors;

  bool ok() const { return errors.empty(); }
};

// Parses an apps file. `base_env` ("K=V") is the environment every app
// inherits (the caller's), before `env_file` and the `env` table; an app with
// `env_inherit = false` gets only its own. The file's [defaults] table
// applies to every app; an app's own keys win. `home_config` names
// SEMPRE_HOME/config.toml, whose own [defaults] table lies beneath the file's
// (errors in it are reported too); empty: none. Relative paths (cwd, out, err, log, pid_file,
// env_file, watch) resolve against the file's directory.
AppsFile load_apps_file(const std::string& path, const std::vector<std::string>& base_env,
                        const std::string& home_config = {});
AppsFile parse_apps(std::string_view text, const std::string& path,
                    const std::vector<std::string>& base_env, const std::string& home_config = {});

// Reads an env file (KEY=VALUE lines, '#' comments, an optional `export `,
// quoted values), as the env_file key and --env-file do. Problems are added
// to `errors`, naming the file's lines.
std::vector<std::string> load_env_file(const std::string& path, std::vector<ConfigError>& errors);

// A config file that `parse_apps` reads back to exactly `apps` (their full
// environment, with env_inherit = false).
std::string to_toml(const std::vector<AppSpec>& apps);

// SEMPRE_HOME/config.toml: settings of the daemon itself, and defaults for
// every app started in that home.
//   [daemon]    log_max_size = "10M", log_keep = 3 (sempred.log), max_clients = 256,
//               cgroups = true
//   [defaults]  any app key but name and cmd, as in an apps file
//   [list]      columns = "id,name,pid,status,cmd", sort = "name"   (sempre list)
struct DaemonSettings {
  std::uint64_t log_max_size = 10 * 1024 * 1024;
  int log_keep = 3;
  // Clients served at once ([daemon] max_clients, at least 1); one more is
  // told the daemon is busy.
  std::size_t max_clients = 256;
  // Each app run in a cgroup v2 of its own where one can be made ([daemon]
  // cgroups); false: their process trees are tracked instead.
  bool cgroups = true;
  std::string list_columns;  // empty: the default columns
  std::string list_sort;     // empty: by id
  std::vector<ConfigError> errors;
};
// A missing file gives the defaults.
DaemonSettings load_daemon_settings(const std::string& path);

// The options config.toml's [defaults] give an app started from the command
// line: MonitorOptions' own defaults where it says nothing, argv empty, and
// cwd empty unless it sets one. A missing file gives MonitorOptions{} with
// `base_env` as its environment.
struct AppDefaults {
  MonitorOptions options;
  std::vector<ConfigError> errors;
};
AppDefaults load_app_defaults(const std::string& home_config,
                              const std::vector<std::string>& base_env);

}  // namespace sempre

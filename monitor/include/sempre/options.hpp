// What a Monitor needs to run and supervise one child. The daemon's app spec
// and the config file build one of these; an embedder fills it in directly.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sempre/export.hpp"
#include "sempre/units.hpp"

namespace sempre {

enum class RestartMode { kAlways, kOnFailure, kNever };

SEMPRE_EXPORT const char* restart_mode_name(RestartMode mode);  // "always", ...
SEMPRE_EXPORT Result<RestartMode> parse_restart_mode(std::string_view text);

// Where the child's stdout and stderr go. Both paths empty: output only
// reaches the Monitor's line callbacks. out_path == err_path: one combined
// file, lines of both streams interleaved whole.
struct LogOptions {
  std::string out_path;
  std::string err_path;
  bool append = false;                        // else truncate at the first start
  std::uint64_t max_size = 10 * 1024 * 1024;  // rotate past this; 0 = never
  int keep = 5;                               // rotated files kept: NAME.1 ... NAME.keep
  bool timestamps = false;                    // prefix each line with ISO 8601 local time, ms

  bool operator==(const LogOptions&) const = default;
};

struct MonitorOptions {
  // argv[0] is looked up in PATH (the child's) unless it holds a '/'. A script
  // that is not executable runs with the interpreter its extension names, or
  // with `interpreter` when that is set.
  std::vector<std::string> argv;
  std::string interpreter;
  std::string cwd;               // empty: the caller's
  std::vector<std::string> env;  // the child's whole environment, "K=V"; empty: the caller's
  std::string user;              // name or uid; only when running as root
  std::string group;             // name or gid
  std::optional<mode_t> umask;   // empty: inherited
  // The child's niceness, -20 (most favoured) to 19, set before exec; empty:
  // inherited. Below the supervisor's own it needs privilege (CAP_SYS_NICE
  // or RLIMIT_NICE): without it the spawn fails with kPermission.
  std::optional<int> nice;
  // The child's limit of open descriptors (RLIMIT_NOFILE), soft and hard
  // both set to it before exec; empty: inherited. Above the supervisor's hard
  // limit it needs privilege (CAP_SYS_RESOURCE): without it the spawn fails
  // with kPermission. Lowering it is always allowed.
  std::optional<std::uint64_t> limit_nofile;

  RestartMode restart = RestartMode::kAlways;
  std::optional<int> max_restarts;  // consecutive crash-loop restarts; empty = unlimited
  Millis min_uptime{1000};          // a shorter run is a crash loop
  Millis restart_delay{0};          // after a run that lasted
  Millis backoff_max{30000};        // cap of the crash-loop backoff

  int kill_signal = SIGTERM;
  Millis kill_timeout{5000};

  LogOptions logs;

  std::vector<std::string> watch;         // paths; a directory is watched recursively
  std::vector<std::string> watch_ignore;  // globs, matched against the path relative to
                                          // its watch root and against the base name
  Millis watch_debounce{200};

  std::string pid_file;  // written on every start, removed when the child is gone

  // How the app tells it is up: "" (it is once it has lasted min-uptime),
  // "notify" (it sends READY=1 to $NOTIFY_SOCKET), "tcp:PORT" (127.0.0.1:PORT
  // accepts a connection) or "exec:CMD" (`sh -c CMD` exits 0).
  std::string ready;

  bool operator==(const MonitorOptions&) const = default;
};

// Checks what can be checked without the OS: a non-empty argv, positive
// timeouts, a known signal, a niceness in -20..19, a positive descriptor
// limit. Returns the first problem found.
SEMPRE_EXPORT Status validate(const MonitorOptions& options);

}  // namespace sempre

// state.json: every app of the daemon, whether it is wanted up, and the pid
// and start time of its running child. Written atomically on every change.
//
// {"version":1, "next_id":N, "apps":[{"id":N, "wanted_up":bool, "pid":N|null,
//   "pid_start_time":N|null, "source":PATH, "spec":AppSpec}],
//  "sources":[{"path":PATH, "env":["K=V"...], "watch":bool}]}
// ("source" and "sources" may be missing: no config file.) AppSpec here is
// state.json's own codec of the spec, with the keys of version 1 (which were
// the wire's then); it does not follow the protocol. BUMP kStateVersion when
// a key changes meaning or goes, and keep reading the versions before.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "app_spec.hpp"
#include "sempre/result.hpp"

namespace sempre {

inline constexpr int kStateVersion = 1;

struct SavedApp {
  std::uint64_t id = 0;
  AppSpec spec;
  bool wanted_up = false;
  std::optional<pid_t> pid;                     // the child running when saved
  std::optional<std::uint64_t> pid_start_time;  // its start time, /proc/PID/stat field 22
  std::string source;                           // the config file it came from, if any
  int restarts = 0;                             // restarts so far, kept across daemons
  std::uint64_t out_dropped = 0;                // bytes of output the logs lost, so far
  std::uint64_t err_dropped = 0;
};

// A config file the daemon remembers: reloaded on SIGHUP, and on every
// change when watched. `env` is the environment of the CLI that started it.
struct SavedSource {
  std::string path;
  std::vector<std::string> env;
  bool watch = false;
};

struct SavedState {
  std::uint64_t next_id = 1;  // ids are never reused
  std::vector<SavedApp> apps;
  std::vector<SavedSource> sources;
};

// Writes `state` to a temporary file beside `path`, fsyncs it, renames it
// over `path` and fsyncs the directory.
Status save_state(const std::string& path, const SavedState& state);

struct LoadedState {
  SavedState state;
  // What could not be restored, and why, one sentence each for the user:
  // the file set aside, or an app left out. Empty when all was well.
  std::vector<std::string> warnings;
};

// A missing file is an empty state. A file that is unusable as a whole
// (unreadable, not JSON, of an unknown version, not a regular file) is
// renamed to PATH.bad-<unix time> and said in `warnings`, with an empty
// state. An app (or config file) entry that is unusable is left out and
// said, the others are kept, and a copy of the file as it was is written to
// PATH.bad-<unix time>. A directory at `path` is left where it is, and said:
// saving fails until it is moved. Fails only when an unusable file cannot be
// set aside (the Error says both), since the next save would replace it.
Result<LoadedState> load_state(const std::string& path);

// The start time of process `pid` (field 22 of /proc/PID/stat, clock ticks
// since boot), or nullopt when there is no such process.
std::optional<std::uint64_t> process_start_time(pid_t pid);

}  // namespace sempre

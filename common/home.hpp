// SEMPRE_HOME: where one daemon keeps its socket, lock, log, state and the
// apps' logs (sempred(8), FILES). Shared by sempre and sempred.
#pragma once

#include <string>
#include <string_view>

#include "sempre/result.hpp"

namespace sempre {

struct HomePaths {
  std::string home;        // SEMPRE_HOME
  std::string socket;      // sempre.sock
  std::string lock;        // sempred.lock: flock'd by the running daemon
  std::string start_lock;  // start.lock: serialises CLIs that start a daemon
  std::string log;         // sempred.log
  std::string state;       // state.json
  std::string logs_dir;    // logs/
};

// $SEMPRE_HOME, or ~/.sempre ($HOME, else the passwd entry). Made absolute.
std::string resolve_home();
HomePaths home_paths(const std::string& home);

// Creates the home (mode 0700, parents as needed) and its logs/ directory.
// Refuses with kPermission, naming the problem, when the home is owned by
// another user or is group or world writable.
Status prepare_home(const HomePaths& paths);

// Takes the daemon lock (flock, non-blocking) and writes our pid into the
// file. Returns the open (CLOEXEC) descriptor, to keep for the daemon's
// life. When another process holds it, fails with kExists (os_error EEXIST)
// ("a daemon is already running for HOME (pid N)").
Result<int> take_daemon_lock(const HomePaths& paths);

// Writes the caller's pid into the lock file held as `lock_fd`: a daemon's
// pid changes when it detaches, after it took the lock.
Status record_daemon_pid(int lock_fd);

// Binds and listens on the control socket: mode 0600 (bound under umask
// 0177), CLOEXEC. A stale socket file (nobody listening) is replaced; a live
// one is an error (kIo, os_error EADDRINUSE); a file there that is not a
// socket is kInvalidArgument. A path too long for sockaddr_un is
// kInvalidArgument with a message saying so. Returns the listening descriptor.
Result<int> bind_control_socket(const std::string& path);

// Writes `text` to `path` atomically with mode 0600 (it may hold
// environments): a temporary file beside it, fsync, rename over `path`,
// fsync of the directory. On failure `path` is as it was.
Status write_private_file(const std::string& path, std::string_view text);

}  // namespace sempre

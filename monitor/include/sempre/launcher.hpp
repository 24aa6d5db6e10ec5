// The process seam: how a Monitor starts a child and learns that it ended.
// The real launcher (make_posix_launcher) forks and execs with the fixes
// Boost.Process v2 1.81 lacks; tests substitute a fake one.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sempre/events.hpp"
#include "sempre/export.hpp"
#include "sempre/result.hpp"

namespace sempre {

// One spawn, fully resolved: argv[0] is the path to exec.
struct LaunchRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // the whole environment, "K=V"
  std::string cwd;               // empty: the caller's
  std::optional<uid_t> uid;      // set both ids (and supplementary groups) when root
  std::optional<gid_t> gid;
  std::vector<gid_t> groups;  // supplementary groups applied with uid
  std::optional<mode_t> umask;
  std::optional<int> nice;                    // setpriority before exec
  std::optional<std::uint64_t> limit_nofile;  // RLIMIT_NOFILE soft = hard, before exec
  int stdout_fd = -1;                         // dup2'd to 1; -1: /dev/null
  int stderr_fd = -1;                         // dup2'd to 2; -1: /dev/null
  // A cgroup v2 directory that this process may create cgroups in and move
  // processes into: the child is placed, before exec, in a new cgroup
  // CGROUP_PARENT/PID of its own. Empty, or when that fails (no permission,
  // no cgroup v2): its process tree is tracked instead (ProcessSet).
  std::string cgroup_parent;
};

// A spawned child: the leader of its own session and process group
// (pgid == pid), with SEMPRE_GROUP=PID in its environment. Its "group" below
// is its process set (sempre/proc_stats.hpp): its own cgroup when it has
// one, otherwise its process group, its session, their descendants and
// their marked orphans. Non-copyable. Destroying it while the main process is
// unreaped kills the whole group with SIGKILL and reaps the main process,
// waiting at most 2 s for it to end; one that outlives that (stuck in the
// kernel) is left a zombie, for reap_orphans() (sempre/reaper.hpp) to reap
// once it ends. The real launcher's children are library_children() until
// they are reaped.
class SEMPRE_EXPORT ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  virtual ~ChildProcess() = default;

  virtual pid_t pid() const = 0;
  // Calls `done` once, from the executor, when the main process has exited
  // and been reaped. Call at most once.
  virtual void async_wait(std::function<void(ExitStatus)> done) = 0;
  // Sends `sig` to every process of the group. Returns false when the group
  // has no process left.
  virtual bool signal_group(int sig) = 0;
  // Calls `done` once, from the executor, when no live process is left in
  // the group (zombies do not count). REQUIRES: the main process was reaped.
  virtual void async_wait_group_empty(std::function<void()> done) = 0;
  // Lets the process be: no callback runs any more, and destroying this
  // object neither kills nor reaps it (a successor takes it over). The
  // default does nothing.
  virtual void release() {}
  // The cgroup v2 directory the group lives in; empty: none, the process
  // tree is tracked. The default has none.
  virtual std::string cgroup() const { return {}; }
};

// How the end of an adopted process (Launcher::adopt) is learned: only its
// parent can reap it and read its status, and the caller is not its parent.
// Called once the process is gone, with `pid` and a callback the source must
// call exactly once, from the executor: with the status, or with nullopt
// when it cannot be known (the status is then reported as {false, -1}).
using ExitStatusSource =
    std::function<void(pid_t pid, std::function<void(std::optional<ExitStatus>)> done)>;

class SEMPRE_EXPORT Launcher {
 public:
  Launcher() = default;
  Launcher(const Launcher&) = delete;
  Launcher& operator=(const Launcher&) = delete;
  virtual ~Launcher() = default;

  // Starts the child and returns once it has exec'd or failed to. On
  // failure no process is left behind and the Error carries the OS error of
  // the step that failed (the exec's ENOENT or EACCES, setpriority's or
  // setrlimit's EPERM, ...), kind kTransient when fork itself failed for
  // lack of resources.
  virtual Result<std::unique_ptr<ChildProcess>> launch(const LaunchRequest& request) = 0;

  // Takes over `pid`, the leader of its own process group, started by an
  // earlier supervisor (typically this program's previous incarnation) and
  // not a child of this process. `start_time` (field 22 of /proc/PID/stat)
  // tells it from a later process that got the same pid: when the pid is
  // gone or is another process now, the ChildProcess reports at once that
  // its main process has ended. Its status comes from `exit_status`. When it
  // was launched with `cgroup_parent` and is still in its cgroup there, the
  // group is that cgroup again. The default refuses (kInvalidArgument): a
  // launcher that cannot adopt.
  virtual Result<std::unique_ptr<ChildProcess>> adopt(pid_t pid, std::uint64_t start_time,
                                                      ExitStatusSource exit_status,
                                                      const std::string& cgroup_parent);
};

// The real launcher. The child gets its own session, default signal
// dispositions, an empty signal mask, stdin on /dev/null, and no descriptor
// but 0, 1 and 2. REQUIRES: `executor` runs on one thread.
SEMPRE_EXPORT std::unique_ptr<Launcher> make_posix_launcher(boost::asio::any_io_executor executor);

}  // namespace sempre

// The real launcher: fork, exec and exit detection done here. Boost.Process
// v2's launchers are not used because of their 1.81 bugs: leaked
// descriptors, exit() instead of _exit() after a failed exec, zombies of
// failed spawns, inherited signal mask and dispositions, notify_fork in the
// child. Nor is its process handle: its async_wait calls a blocking waitpid
// whenever the pidfd looks readable, and a stale reactor event can make it
// look so while the child runs, which hangs the whole thread.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "child_registry.hpp"
#include "os.hpp"
#include "sempre/launcher.hpp"
#include "sempre/proc_stats.hpp"

namespace sempre {
namespace {

namespace asio = boost::asio;

// What the child reports through the error pipe when a step before exec, or
// exec itself, fails.
enum class Step : int {
  kSession,
  kStdio,
  kNice,
  kLimitNofile,
  kGroups,
  kGid,
  kUid,
  kCwd,
  kDescriptors,
  kExec,
  kCgroup  // not fatal: the child goes on without a cgroup of its own
};

struct ChildFailure {
  Step step = Step::kExec;
  int err = 0;
};

// Everything the child needs, prepared before fork: between fork and exec
// only async-signal-safe calls are allowed, so nothing may allocate there.
struct ChildPlan {
  std::vector<char*> argv;
  std::vector<char*> envp;
  const char* cwd = nullptr;
  int stdio[3] = {-1, -1, -1};
  int error_fd = -1;
  bool set_umask = false;
  mode_t umask = 0;
  bool set_nice = false;
  int nice = 0;
  bool set_limit_nofile = false;
  rlim_t limit_nofile = 0;
  bool set_groups = false;
  const gid_t* groups = nullptr;
  std::size_t group_count = 0;
  bool set_gid = false;
  gid_t gid = 0;
  bool set_uid = false;
  uid_t uid = 0;
  int max_fd = 1024;  // for marking descriptors CLOEXEC when close_range is missing
  // "SEMPRE_GROUP=" followed by room for the pid, which the child writes in;
  // envp points at it.
  char* marker = nullptr;
  std::size_t marker_prefix = 0;
  // CGROUP_PARENT/ followed by room for the pid and "/cgroup.procs"; null:
  // no cgroup.
  char* cgroup_path = nullptr;
  std::size_t cgroup_prefix = 0;
};

// Room for a pid's digits and "/cgroup.procs" after a prefix.
constexpr std::size_t kPidRoom = 24;
constexpr std::string_view kProcsFile = "/cgroup.procs";

// Writes the digits of `value` at `out` and a NUL after them; returns how
// many digits. Async-signal-safe.
std::size_t write_decimal(char* out, pid_t value) {
  char digits[16];
  std::size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0 && n < sizeof digits);
  for (std::size_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  out[n] = '\0';
  return n;
}

// Writes `value` to the control file `name` of `cgroup`.
bool write_cgroup_file(const std::string& cgroup, const char* name, std::string_view value) {
  os::UniqueFd fd(::open((cgroup + "/" + name).c_str(), O_WRONLY | O_CLOEXEC));
  return fd && os::write_all(fd.get(), value).ok();
}

// Sends a record of a failed step without ending the child.
void report(int error_fd, Step step, int err) {
  ChildFailure failure;
  failure.step = step;
  failure.err = err;
  ssize_t n;
  do {
    n = ::write(error_fd, &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
}

// Moves the calling child into a new cgroup CGROUP_PARENT/PID. Returns the
// errno of the step that failed, 0 on success. Async-signal-safe.
int join_own_cgroup(const ChildPlan& plan, pid_t self) {
  char* path = plan.cgroup_path;
  std::size_t end = plan.cgroup_prefix + write_decimal(path + plan.cgroup_prefix, self);
  if (::mkdir(path, 0755) < 0 && errno != EEXIST) return errno;
  for (char c : kProcsFile) path[end++] = c;
  path[end] = '\0';
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n;
  do {
    n = ::write(fd, "0", 1);  // "0": the writer itself
  } while (n < 0 && errno == EINTR);
  const int err = n == 1 ? 0 : (n < 0 ? errno : EIO);
  ::close(fd);
  return err;
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

[[noreturn]] void report_and_exit(int error_fd, Step step, int err) {
  report(error_fd, step, err);
  ::_exit(127);
}

// Runs in the forked child. Never returns: it execs or reports the failing
// step and errno through the error pipe and calls _exit, so no atexit handler
// or stdio buffer of the parent runs here.
[[noreturn]] void exec_child(const ChildPlan& plan) {
  int error_fd = plan.error_fd;
  // Keep the error pipe clear of 0..2, which are about to be replaced.
  if (error_fd < 3) {
    int moved = ::fcntl(error_fd, F_DUPFD_CLOEXEC, 3);
    if (moved >= 0) error_fd = moved;
  }

  if (::setsid() < 0) report_and_exit(error_fd, Step::kSession, errno);
  const pid_t self = ::getpid();
  write_decimal(plan.marker + plan.marker_prefix, self);

  // A daemon that ignores SIGPIPE or blocks signals must not pass that on.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ::sigemptyset(&default_action.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &default_action, nullptr);  // fails harmlessly for libc's own signals
  }
  sigset_t empty;
  ::sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);

  // A source already in 0..2 but bound for another slot is moved out of the
  // way first, so that no dup2 overwrites a source still to be used.
  int source[3] = {plan.stdio[0], plan.stdio[1], plan.stdio[2]};
  for (int target = 0; target < 3; ++target) {
    if (source[target] < 3 && source[target] != target) {
      source[target] = ::fcntl(source[target], F_DUPFD_CLOEXEC, 3);
      if (source[target] < 0) report_and_exit(error_fd, Step::kStdio, errno);
    }
  }
  for (int target = 0; target < 3; ++target) {
    if (source[target] == target) {
      // dup2 onto itself would keep a CLOEXEC flag.
      int flags = ::fcntl(target, F_GETFD);
      if (flags < 0 || ::fcntl(target, F_SETFD, flags & ~FD_CLOEXEC) < 0) {
        report_and_exit(error_fd, Step::kStdio, errno);
      }
    } else if (::dup2(source[target], target) < 0) {
      report_and_exit(error_fd, Step::kStdio, errno);
    }
  }

  // After the output is in place, so that a successor that finds this child
  // before its exec knows it by its pipes (moving into a cgroup may take a
  // while); before the identity changes, as the cgroup is this supervisor's
  // to give.
  if (plan.cgroup_path != nullptr) {
    if (int err = join_own_cgroup(plan, self); err != 0) report(error_fd, Step::kCgroup, err);
  }

  if (plan.set_umask) ::umask(plan.umask);
  // Before the identity changes: a root supervisor may raise the priority or
  // the limit for an app it runs as another user.
  if (plan.set_nice && ::setpriority(PRIO_PROCESS, 0, plan.nice) < 0) {
    report_and_exit(error_fd, Step::kNice, errno);
  }
  if (plan.set_limit_nofile) {
    const struct rlimit limit = {plan.limit_nofile, plan.limit_nofile};
    if (::setrlimit(RLIMIT_NOFILE, &limit) < 0)
      report_and_exit(error_fd, Step::kLimitNofile, errno);
  }
  // Groups before the gid, the gid before the uid: each step needs the
  // privilege the next one drops.
  if (plan.set_groups && ::setgroups(plan.group_count, plan.groups) < 0) {
    report_and_exit(error_fd, Step::kGroups, errno);
  }
  if (plan.set_gid && ::setgid(plan.gid) < 0) report_and_exit(error_fd, Step::kGid, errno);
  if (plan.set_uid && ::setuid(plan.uid) < 0) report_and_exit(error_fd, Step::kUid, errno);
  if (plan.cwd != nullptr && ::chdir(plan.cwd) < 0) report_and_exit(error_fd, Step::kCwd, errno);

  // Every descriptor above 2 closes at exec; the error pipe too, which is how
  // the parent learns that exec succeeded.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    if (errno != ENOSYS && errno != EINVAL) report_and_exit(error_fd, Step::kDescriptors, errno);
    for (int fd = 3; fd < plan.max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }

  ::execve(plan.argv[0], plan.argv.data(), plan.envp.data());
  report_and_exit(error_fd, Step::kExec, errno);
}

// Waits up to `limit` for the process behind `pidfd` to end; returns early
// when poll fails, since the caller's look afterwards does not block anyway.
void await_end(int pidfd, std::chrono::milliseconds limit) {
  using std::chrono::milliseconds;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{pidfd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::max<milliseconds::rep>(left.count(), 0)));
    if (n >= 0 || errno != EINTR) return;
  }
}

// The hard RLIMIT_NOFILE the child inherited (this process's), for a message.
std::string hard_nofile_limit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return "?";
  if (limit.rlim_max == RLIM_INFINITY) return "unlimited";
  return std::to_string(limit.rlim_max);
}

Error launch_error(const ChildFailure& failure, const LaunchRequest& request) {
  const std::string& program = request.argv[0];
  std::string what = program;
  switch (failure.step) {
    case Step::kExec:
      break;
    case Step::kSession:
      what += ": setsid";
      break;
    case Step::kStdio:
      what += ": redirecting stdio";
      break;
    case Step::kNice:
      what += ": setpriority " + std::to_string(request.nice.value_or(0));
      if (failure.err == EPERM || failure.err == EACCES) {
        what += " (a niceness below the current one needs privilege)";
      }
      break;
    case Step::kLimitNofile:
      what += ": setrlimit RLIMIT_NOFILE " + std::to_string(request.limit_nofile.value_or(0));
      if (failure.err == EPERM) {
        what += " (above the hard limit " + hard_nofile_limit() +
                ", which needs privilege, or above fs.nr_open)";
      }
      break;
    case Step::kGroups:
      what += ": setgroups";
      break;
    case Step::kGid:
      what += ": setgid " + std::to_string(request.gid.value_or(0));
      break;
    case Step::kUid:
      what += ": setuid " + std::to_string(request.uid.value_or(0));
      break;
    case Step::kCgroup:
      what += ": joining cgroup " + request.cgroup_parent;
      break;
    case Step::kCwd:
      what += ": chdir " + request.cwd;
      break;
    case Step::kDescriptors:
      what += ": close_range";
      break;
  }
  Error error = os_error(failure.err, what);
  if (error.kind == ErrorKind::kIo) error.kind = ErrorKind::kSpawnFailed;
  return error;
}

// A launched child. Its state lives in a shared block that every pending
// handler holds, so a handler that completes after the PosixChild is gone
// (cancelled, or already queued) touches valid memory and sees `closed`.
class PosixChild final : public ChildProcess {
 public:
  // REQUIRES: `pidfd` is the open pidfd of `pid`, an unreaped child of ours.
  // `cgroup`: the cgroup its group lives in; empty: none.
  PosixChild(asio::any_io_executor executor, pid_t pid, asio::posix::stream_descriptor pidfd,
             std::string cgroup)
      : state_(std::make_shared<State>(std::move(executor), pid, std::move(pidfd),
                                       std::move(cgroup))) {}

  // An adopted process, not ours to reap: its end is seen on `pidfd` (not
  // open when it is gone already) and its status asked of `source`.
  PosixChild(asio::any_io_executor executor, pid_t pid, asio::posix::stream_descriptor pidfd,
             std::string cgroup, ExitStatusSource source)
      : state_(std::make_shared<State>(std::move(executor), pid, std::move(pidfd),
                                       std::move(cgroup))) {
    state_->source = std::move(source);
  }

  ~PosixChild() override {
    State& s = *state_;
    silence(s);
    if (s.released) return;  // a successor's now; release() closed the pidfd
    if (s.source) {
      // Someone else reaps it: kill the group while its leader still runs
      // (its pidfd not readable yet), so the pgid is still its own.
      if (!s.reaped && s.pidfd.is_open()) {
        pollfd p{s.pidfd.native_handle(), POLLIN, 0};
        if (::poll(&p, 1, 0) == 0) ::kill(-s.pid, SIGKILL);
      }
      s.reaped = true;
      kill_outside_group(s);
    }
    if (!s.reaped) {
      const int fd = s.pidfd.native_handle();
      // Only an unreaped leader (running or zombie) keeps the pgid reserved,
      // so the group is killed only while the leader is still ours.
      if (registered_unreaped(fd, s.pid)) {
        ::kill(-s.pid, SIGKILL);
        kill_outside_group(s);
        // A SIGKILLed process ends within milliseconds unless it is stuck in
        // an uninterruptible sleep (a dead NFS server or FUSE daemon), where
        // it may stay for good. Rather than hang the caller's thread with
        // it, such a child is handed over to reap_orphans(), which the host
        // (a subreaper, or PID 1) calls on SIGCHLD.
        await_end(fd, kReapAfterKill);
        if (!reap_registered_if_exited(fd, s.pid)) release_registered(s.pid);
      } else {
        release_registered(s.pid);
        kill_outside_group(s);
      }
      s.reaped = true;
    }
    if (!s.set.cgroup.empty()) ::rmdir(s.set.cgroup.c_str());  // fails while not empty
    // Aborts a pending wait, whose handler then sees `closed`.
    boost::system::error_code ignored;
    s.pidfd.close(ignored);
  }

  pid_t pid() const override { return state_->pid; }

  void async_wait(std::function<void(ExitStatus)> done) override {
    state_->on_exit = std::move(done);
    if (state_->source) {
      if (state_->pidfd.is_open()) return wait_exit(state_);
      return ask_status(state_);
    }
    // The child may have exited before anyone waited: its pidfd's edge is
    // gone by now, so look before waiting for one.
    if (std::optional<ExitStatus> status =
            reap_registered_if_exited(state_->pidfd.native_handle(), state_->pid)) {
      state_->reaped = true;
      asio::post(state_->executor,
                 [state = state_, status = *status] { deliver_exit(state, status); });
      return;
    }
    wait_exit(state_);
  }

  bool signal_group(int sig) override {
    State& s = *state_;
    if (s.group_gone) return false;
    if (!s.set.cgroup.empty()) return signal_cgroup(s, sig);
    // Once the leader is reaped and the last member of its group gone, the
    // pgid number is free for reuse (our next child would become its
    // leader): the group is signalled as such only while the leader is
    // unreaped, and the members found otherwise one by one.
    std::optional<std::vector<pid_t>> members = try_members(s.set);
    bool anyone = false;
    if (!s.reaped) {
      if (::kill(-s.pid, sig) == 0 || errno == EPERM) anyone = true;
    }
    if (!members) return true;  // a scan that failed proves nothing
    for (pid_t member : *members) {
      if (!s.reaped) {
        // Signalled with the group already: never twice (a second SIGTERM
        // means "now" to many servers).
        Result<os::ProcStat> stat = os::read_proc_stat(member);
        if (stat && stat->pgrp == s.pid) continue;
      }
      if (::kill(member, sig) == 0 || errno == EPERM) anyone = true;
    }
    if (!anyone && members->empty()) s.group_gone = true;
    return anyone;
  }

  std::string cgroup() const override { return state_->set.cgroup; }

  void async_wait_group_empty(std::function<void()> done) override {
    state_->group_done = std::move(done);
    if (!state_->set.cgroup.empty()) return watch_cgroup(state_);
    watch_group(state_);
  }

  void release() override {
    State& s = *state_;
    silence(s);
    s.released = true;
    if (!s.reaped && !s.source) release_registered(s.pid);
    s.reaped = true;
    boost::system::error_code ignored;
    s.pidfd.close(ignored);
  }

 private:
  struct State {
    State(asio::any_io_executor ex, pid_t p, asio::posix::stream_descriptor fd, std::string cgroup)
        : executor(std::move(ex)), pid(p), pidfd(std::move(fd)) {
      set.leader = p;
      set.cgroup = std::move(cgroup);
    }

    asio::any_io_executor executor;
    pid_t pid;
    ProcessSet set;                        // where the group's processes are
    asio::posix::stream_descriptor pidfd;  // closed once the child is reaped
    std::function<void(ExitStatus)> on_exit;
    ExitStatusSource source;  // set for an adopted process
    bool reaped = false;      // adopted: known to have ended
    bool group_gone = false;
    bool closed = false;    // the PosixChild is gone: no callback may run
    bool released = false;  // left running for a successor (release())
    // The pidfds of the group's members in the current round, and how many
    // have not become readable yet.
    std::vector<std::unique_ptr<asio::posix::stream_descriptor>> members;
    std::size_t members_pending = 0;
    std::unique_ptr<asio::steady_timer> retry;
    std::function<void()> group_done;
    // With a cgroup: an inotify descriptor watching its cgroup.events.
    std::unique_ptr<asio::posix::stream_descriptor> events;
  };

  // No callback runs from here on, and no wait is pending but the pidfd's.
  static void silence(State& s) {
    s.closed = true;
    s.on_exit = nullptr;
    s.group_done = nullptr;
    s.members.clear();
    if (s.retry) s.retry->cancel();
    s.events.reset();
  }

  // SIGKILL to what the group's SIGKILL did not reach: the whole cgroup, or
  // the members outside the process group. For the destructor.
  static void kill_outside_group(State& s) {
    if (!s.set.cgroup.empty()) {
      if (!write_cgroup_file(s.set.cgroup, "cgroup.kill", "1")) signal_cgroup(s, SIGKILL);
      return;
    }
    if (s.group_gone) return;
    for (pid_t member : try_members(s.set).value_or(std::vector<pid_t>{})) {
      ::kill(member, SIGKILL);
    }
  }

  // signal_group() for a child in its own cgroup.
  static bool signal_cgroup(State& s, int sig) {
    std::optional<std::vector<pid_t>> members = try_members(s.set);
    if (!members) {
      // Not listed (out of descriptors): the group at least, while it is ours.
      if (!s.reaped) ::kill(-s.pid, sig);
      if (sig == SIGKILL) write_cgroup_file(s.set.cgroup, "cgroup.kill", "1");
      return true;
    }
    if (members->empty()) {
      if (s.reaped) s.group_gone = true;
      return false;
    }
    // cgroup.kill (Linux 5.14) also reaches what forks meanwhile.
    if (sig == SIGKILL && write_cgroup_file(s.set.cgroup, "cgroup.kill", "1")) return true;
    for (pid_t member : *members) ::kill(member, sig);
    return true;
  }

  // Whether the cgroup still holds a live process: the "populated" line of
  // its cgroup.events. nullopt when it could not be read.
  static std::optional<bool> cgroup_populated(const std::string& cgroup) {
    os::UniqueFd fd(::open((cgroup + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) return false;  // removed: empty
      return std::nullopt;
    }
    char buf[256];
    ssize_t n;
    do {
      n = ::read(fd.get(), buf, sizeof buf - 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return std::nullopt;
    std::string_view text(buf, static_cast<std::size_t>(n));
    const std::size_t at = text.find("populated ");
    if (at == std::string_view::npos || at + 10 >= text.size()) return std::nullopt;
    return text[at + 10] != '0';
  }

  // async_wait_group_empty() with a cgroup: the kernel tells when the
  // cgroup.events file changes, and "populated 0" is the end. Falls back to
  // watching the members when inotify is not to be had.
  static void watch_cgroup(const std::shared_ptr<State>& state) {
    State& s = *state;
    if (!s.events) {
      os::UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
      const std::string events = s.set.cgroup + "/cgroup.events";
      if (!fd || ::inotify_add_watch(fd.get(), events.c_str(), IN_MODIFY) < 0) {
        if (errno == ENOENT) return finish_group_wait(state);  // the cgroup is gone
        return watch_group(state);
      }
      auto watched = std::make_unique<asio::posix::stream_descriptor>(s.executor);
      boost::system::error_code ec;
      watched->assign(fd.get(), ec);
      if (ec) return watch_group(state);
      fd.release();
      s.events = std::move(watched);
    }
    // Looked at after the watch is set, so no change is missed.
    std::optional<bool> populated = cgroup_populated(s.set.cgroup);
    if (!populated) {
      s.events.reset();
      return watch_group(state);
    }
    if (!*populated) {
      s.events.reset();
      ::rmdir(s.set.cgroup.c_str());
      return finish_group_wait(state);
    }
    s.events->async_wait(asio::posix::stream_descriptor::wait_read,
                         [state](const boost::system::error_code& ec) {
                           if (ec == asio::error::operation_aborted || state->closed) return;
                           if (!state->events) return;
                           char buf[4096];
                           while (::read(state->events->native_handle(), buf, sizeof buf) > 0) {
                           }
                           watch_cgroup(state);
                         });
  }

  // Out of descriptors for pidfds: look again after this long.
  static constexpr auto kRetryAfter = std::chrono::milliseconds(100);
  // How long the destructor waits for a SIGKILLed child to end.
  static constexpr auto kReapAfterKill = std::chrono::seconds(2);
  // Rounds in which every member vanished before it could be watched.
  static constexpr int kMaxQuickRescans = 64;

  // Waits for the pidfd to become readable, then reaps the child if it has
  // exited and waits again if it has not.
  static void wait_exit(const std::shared_ptr<State>& state) {
    state->pidfd.async_wait(
        asio::posix::stream_descriptor::wait_read, [state](const boost::system::error_code& ec) {
          if (ec == asio::error::operation_aborted || state->closed) return;
          if (state->source) return ask_status(state);
          std::optional<ExitStatus> status =
              reap_registered_if_exited(state->pidfd.native_handle(), state->pid);
          if (!status) return wait_exit(state);  // a spurious wake-up
          state->reaped = true;
          deliver_exit(state, *status);
        });
  }

  // An adopted process is gone: its parent has (or will have) its status.
  static void ask_status(const std::shared_ptr<State>& state) {
    state->reaped = true;
    boost::system::error_code ignored;
    state->pidfd.close(ignored);
    state->source(state->pid, [state](std::optional<ExitStatus> status) {
      deliver_exit(state, status.value_or(ExitStatus{false, -1}));
    });
  }

  static void deliver_exit(const std::shared_ptr<State>& state, ExitStatus status) {
    if (state->closed) return;
    // Reaped, the child has nothing more to tell: its descriptor goes now.
    boost::system::error_code ignored;
    state->pidfd.close(ignored);
    std::function<void(ExitStatus)> done = std::exchange(state->on_exit, nullptr);
    if (done) done(status);
  }

  static void finish_group_wait(const std::shared_ptr<State>& state) {
    state->group_gone = true;
    asio::post(state->executor, [state] {
      if (state->closed) return;
      std::function<void()> done = std::exchange(state->group_done, nullptr);
      if (done) done();
    });
  }

  // One round: list the members, open a pidfd for each, and when all of
  // them have become readable (exited), start the next round, since a member
  // may have forked meanwhile. Ends when a scan finds nobody.
  static void watch_group(const std::shared_ptr<State>& state) {
    State& s = *state;
    s.members.clear();
    s.members_pending = 0;
    bool starved = false;  // some process could not be looked at or watched
    for (int round = 0; round < kMaxQuickRescans; ++round) {
      if (s.group_gone) return finish_group_wait(state);
      std::optional<std::vector<pid_t>> listed = try_members(s.set);
      if (!listed) {
        starved = true;
        break;
      }
      if (listed->empty()) return finish_group_wait(state);

      std::vector<std::pair<pid_t, os::UniqueFd>> opened;
      for (pid_t pid : *listed) {
        Result<os::UniqueFd> fd = os::open_pidfd(pid);
        if (fd) {
          opened.emplace_back(pid, std::move(*fd));
        } else if (fd.error().os_error != ESRCH) {  // ESRCH: gone already
          starved = true;
        }
      }
      // A listed pid may have exited and been recycled before pidfd_open; a
      // pidfd is kept only if its process is still a member after the open.
      std::optional<std::vector<pid_t>> still = try_members(s.set);
      if (!still) {
        starved = true;
        break;
      }
      for (auto& [pid, fd] : opened) {
        if (std::find(still->begin(), still->end(), pid) == still->end()) continue;
        try {
          s.members.push_back(
              std::make_unique<asio::posix::stream_descriptor>(s.executor, fd.get()));
          fd.release();
        } catch (const boost::system::system_error&) {
          starved = true;  // not adopted when registering failed: fd closes it
        }
      }
      if (!s.members.empty() || starved) break;
    }

    if (s.members.empty()) {
      // No member could be watched (no descriptors left, or a group that
      // churns faster than it can be listed): look again shortly.
      if (!s.retry) s.retry = std::make_unique<asio::steady_timer>(s.executor);
      s.retry->expires_after(kRetryAfter);
      s.retry->async_wait([state](const boost::system::error_code& ec) {
        if (ec || state->closed) return;
        watch_group(state);
      });
      return;
    }

    s.members_pending = s.members.size();
    for (auto& member : s.members) {
      member->async_wait(asio::posix::stream_descriptor::wait_read,
                         [state](const boost::system::error_code& ec) {
                           if (ec == asio::error::operation_aborted || state->closed) return;
                           if (--state->members_pending == 0) watch_group(state);
                         });
    }
  }

  std::shared_ptr<State> state_;
};

class PosixLauncher final : public Launcher {
 public:
  explicit PosixLauncher(asio::any_io_executor executor) : executor_(std::move(executor)) {}

  Result<std::unique_ptr<ChildProcess>> launch(const LaunchRequest& request) override {
    if (request.argv.empty() || request.argv[0].empty()) {
      return Error{ErrorKind::kInvalidArgument, "no program given", 0};
    }
    const std::string& program = request.argv[0];

    ChildPlan plan;
    plan.argv = c_strings(request.argv);
    // The environment without any SEMPRE_GROUP of its own (a sempre run by
    // an app of another), and the marker, whose pid the child fills in.
    std::string marker = std::string(kGroupMarker) + "=";
    plan.marker_prefix = marker.size();
    marker.resize(marker.size() + kPidRoom, '\0');
    plan.marker = marker.data();
    for (const std::string& entry : request.env) {
      if (entry.starts_with(std::string_view(marker.data(), plan.marker_prefix))) continue;
      plan.envp.push_back(const_cast<char*>(entry.c_str()));
    }
    plan.envp.push_back(plan.marker);
    plan.envp.push_back(nullptr);
    std::string cgroup_path;
    if (!request.cgroup_parent.empty()) {
      // Made by the caller in the usual case; made here when it is gone.
      ::mkdir(request.cgroup_parent.c_str(), 0755);
      cgroup_path = request.cgroup_parent + "/";
      plan.cgroup_prefix = cgroup_path.size();
      cgroup_path.resize(cgroup_path.size() + kPidRoom + kProcsFile.size(), '\0');
      plan.cgroup_path = cgroup_path.data();
    }
    if (!request.cwd.empty()) plan.cwd = request.cwd.c_str();
    if (request.umask) {
      plan.set_umask = true;
      plan.umask = *request.umask;
    }
    if (request.nice) {
      plan.set_nice = true;
      plan.nice = *request.nice;
    }
    if (request.limit_nofile) {
      plan.set_limit_nofile = true;
      plan.limit_nofile = static_cast<rlim_t>(*request.limit_nofile);
    }
    if (request.uid) {
      plan.set_groups = true;
      plan.groups = request.groups.data();
      plan.group_count = request.groups.size();
      plan.set_uid = true;
      plan.uid = *request.uid;
    }
    if (request.gid) {
      plan.set_gid = true;
      plan.gid = *request.gid;
    }
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
      plan.max_fd = static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1 << 20));
    }

    os::UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!devnull) return os_error(errno, "/dev/null");
    auto error_pipe = os::make_pipe();
    if (!error_pipe) return os_error(error_pipe.error().os_error, program + ": pipe");
    plan.stdio[0] = devnull.get();
    plan.stdio[1] = request.stdout_fd >= 0 ? request.stdout_fd : devnull.get();
    plan.stdio[2] = request.stderr_fd >= 0 ? request.stderr_fd : devnull.get();
    plan.error_fd = error_pipe->write.get();

    // No notify_fork: the child never touches the io_context before exec.
    pid_t pid = fork_registered([&plan] { exec_child(plan); });
    int fork_errno = errno;
    error_pipe->write.reset();
    devnull.reset();
    if (pid < 0) {
      Error error = os_error(fork_errno, program + ": fork");
      error.kind = ErrorKind::kTransient;
      return error;
    }

    // Records until the pipe closes at exec: a fatal one ends the child, a
    // failed cgroup move does not.
    bool in_cgroup = plan.cgroup_path != nullptr;
    for (;;) {
      ChildFailure failure;
      ssize_t n;
      do {
        n = ::read(error_pipe->read.get(), &failure, sizeof failure);
      } while (n < 0 && errno == EINTR);
      if (n != static_cast<ssize_t>(sizeof failure)) break;
      if (failure.step == Step::kCgroup) {
        in_cgroup = false;
        continue;
      }
      error_pipe->read.reset();
      reap_registered(pid);
      return launch_error(failure, request);
    }
    error_pipe->read.reset();
    std::string cgroup;
    if (in_cgroup) cgroup = request.cgroup_parent + "/" + std::to_string(pid);

    Result<os::UniqueFd> pidfd = os::open_pidfd(pid);
    if (!pidfd) {
      abandon(pid, cgroup);
      Error error = os_error(pidfd.error().os_error, program + ": pidfd_open");
      if (error.kind == ErrorKind::kIo) error.kind = ErrorKind::kSpawnFailed;
      return error;
    }
    asio::posix::stream_descriptor watched(executor_);
    boost::system::error_code ec;
    watched.assign(pidfd->get(), ec);
    if (ec) {
      // Not adopted when registering failed: pidfd still closes it.
      abandon(pid, cgroup);
      Error error = os_error(ec.value(), program + ": watching the process");
      if (error.kind == ErrorKind::kIo) error.kind = ErrorKind::kSpawnFailed;
      return error;
    }
    pidfd->release();
    return std::unique_ptr<ChildProcess>(
        std::make_unique<PosixChild>(executor_, pid, std::move(watched), std::move(cgroup)));
  }

  Result<std::unique_ptr<ChildProcess>> adopt(pid_t pid, std::uint64_t start_time,
                                              ExitStatusSource exit_status,
                                              const std::string& cgroup_parent) override {
    if (pid <= 0 || !exit_status) {
      return Error{ErrorKind::kInvalidArgument, "adopt: no pid or no exit status source", 0};
    }
    asio::posix::stream_descriptor watched(executor_);
    Result<os::UniqueFd> pidfd = os::open_pidfd(pid);
    if (!pidfd && pidfd.error().os_error != ESRCH) {
      return os_error(pidfd.error().os_error, "pid " + std::to_string(pid) + ": pidfd_open");
    }
    // Looked at after the pidfd is open: a pid recycled before the open
    // shows another start time, one recycled after cannot be (the pidfd
    // holds it).
    Result<os::ProcStat> stat = os::read_proc_stat(pid);
    std::string cgroup;
    if (pidfd && stat && stat->starttime == start_time) {
      boost::system::error_code ec;
      watched.assign(pidfd->get(), ec);
      if (ec) return os_error(ec.value(), "pid " + std::to_string(pid) + ": watching the process");
      pidfd->release();
      // Its cgroup is its own only if it is the one it was launched into.
      const std::string own = cgroup_parent + "/" + std::to_string(pid);
      if (!cgroup_parent.empty() && cgroup_of(pid) == own) cgroup = own;
    } else if (!stat && !cgroup_parent.empty()) {
      // Gone already (its successor learns its status elsewhere): what it
      // left is still held by its cgroup, if it had one.
      const std::string own = cgroup_parent + "/" + std::to_string(pid);
      struct stat dir {};
      if (::stat(own.c_str(), &dir) == 0 && S_ISDIR(dir.st_mode)) cgroup = own;
    }
    return std::unique_ptr<ChildProcess>(std::make_unique<PosixChild>(
        executor_, pid, std::move(watched), std::move(cgroup), std::move(exit_status)));
  }

 private:
  // A child that runs but cannot be watched is killed, group and all, and
  // reaped, so that a failed launch leaves nothing behind.
  static void abandon(pid_t pid, const std::string& cgroup) {
    ::kill(-pid, SIGKILL);
    reap_registered(pid);
    if (!cgroup.empty()) {
      write_cgroup_file(cgroup, "cgroup.kill", "1");
      ::rmdir(cgroup.c_str());  // fails until the kernel has emptied it
    }
  }

  asio::any_io_executor executor_;
};

}  // namespace

Result<std::unique_ptr<ChildProcess>> Launcher::adopt(pid_t, std::uint64_t, ExitStatusSource,
                                                      const std::string&) {
  return Error{ErrorKind::kInvalidArgument, "this launcher cannot adopt a process", 0};
}

std::unique_ptr<Launcher> make_posix_launcher(boost::asio::any_io_executor executor) {
  return std::make_unique<PosixLauncher>(std::move(executor));
}

}  // namespace sempre

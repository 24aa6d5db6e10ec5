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
  kExec
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
};

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

[[noreturn]] void report_and_exit(int error_fd, Step step, int err) {
  ChildFailure failure;
  failure.step = step;
  failure.err = err;
  ssize_t n;
  do {
    n = ::write(error_fd, &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
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
  PosixChild(asio::any_io_executor executor, pid_t pid, asio::posix::stream_descriptor pidfd)
      : state_(std::make_shared<State>(std::move(executor), pid, std::move(pidfd))) {}

  // An adopted process, not ours to reap: its end is seen on `pidfd` (not
  // open when it is gone already) and its status asked of `source`.
  PosixChild(asio::any_io_executor executor, pid_t pid, asio::posix::stream_descriptor pidfd,
             ExitStatusSource source)
      : state_(std::make_shared<State>(std::move(executor), pid, std::move(pidfd))) {
    state_->source = std::move(source);
  }

  ~PosixChild() override {
    State& s = *state_;
    silence(s);
    if (s.source) {
      // Someone else reaps it: kill the group while its leader still runs
      // (its pidfd not readable yet), so the pgid is still its own.
      if (!s.reaped && s.pidfd.is_open()) {
        pollfd p{s.pidfd.native_handle(), POLLIN, 0};
        if (::poll(&p, 1, 0) == 0) ::kill(-s.pid, SIGKILL);
      }
      s.reaped = true;
    }
    if (!s.reaped) {
      const int fd = s.pidfd.native_handle();
      // Only an unreaped leader (running or zombie) keeps the pgid reserved,
      // so the group is killed only while the leader is still ours.
      if (registered_unreaped(fd, s.pid)) {
        ::kill(-s.pid, SIGKILL);
        // A SIGKILLed process ends within milliseconds unless it is stuck in
        // an uninterruptible sleep (a dead NFS server or FUSE daemon), where
        // it may stay for good. Rather than hang the caller's thread with
        // it, such a child is handed over to reap_orphans(), which the host
        // (a subreaper, or PID 1) calls on SIGCHLD.
        await_end(fd, kReapAfterKill);
        if (!reap_registered_if_exited(fd, s.pid)) release_registered(s.pid);
      } else {
        release_registered(s.pid);
      }
      s.reaped = true;
    }
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
    // Once the leader is reaped and the last member gone, the pgid number is
    // free for reuse (our next child would become its leader): look first.
    // A scan that failed proves nothing, so the signal goes out then.
    if (s.reaped) {
      std::optional<std::vector<pid_t>> members = try_group_members(s.pid);
      if (members && members->empty()) {
        s.group_gone = true;
        return false;
      }
    }
    if (::kill(-s.pid, sig) == 0) return true;
    if (errno == ESRCH) {
      s.group_gone = true;
      return false;
    }
    return true;  // EPERM: members exist, though some may not be ours to signal
  }

  void async_wait_group_empty(std::function<void()> done) override {
    state_->group_done = std::move(done);
    watch_group(state_);
  }

  void release() override {
    State& s = *state_;
    silence(s);
    if (!s.reaped && !s.source) release_registered(s.pid);
    s.reaped = true;
    boost::system::error_code ignored;
    s.pidfd.close(ignored);
  }

 private:
  struct State {
    State(asio::any_io_executor ex, pid_t p, asio::posix::stream_descriptor fd)
        : executor(std::move(ex)), pid(p), pidfd(std::move(fd)) {}

    asio::any_io_executor executor;
    pid_t pid;
    asio::posix::stream_descriptor pidfd;  // closed once the child is reaped
    std::function<void(ExitStatus)> on_exit;
    ExitStatusSource source;  // set for an adopted process
    bool reaped = false;      // adopted: known to have ended
    bool group_gone = false;
    bool closed = false;  // the PosixChild is gone: no callback may run
    // The pidfds of the group's members in the current round, and how many
    // have not become readable yet.
    std::vector<std::unique_ptr<asio::posix::stream_descriptor>> members;
    std::size_t members_pending = 0;
    std::unique_ptr<asio::steady_timer> retry;
    std::function<void()> group_done;
  };

  // No callback runs from here on, and no wait is pending but the pidfd's.
  static void silence(State& s) {
    s.closed = true;
    s.on_exit = nullptr;
    s.group_done = nullptr;
    s.members.clear();
    if (s.retry) s.retry->cancel();
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
      std::optional<std::vector<pid_t>> listed = try_group_members(s.pid);
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
      std::optional<std::vector<pid_t>> still = try_group_members(s.pid);
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
    plan.envp = c_strings(request.env);
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

    ChildFailure failure;
    ssize_t n;
    do {
      n = ::read(error_pipe->read.get(), &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    error_pipe->read.reset();
    if (n == static_cast<ssize_t>(sizeof failure)) {
      reap_registered(pid);
      return launch_error(failure, request);
    }

    Result<os::UniqueFd> pidfd = os::open_pidfd(pid);
    if (!pidfd) {
      abandon(pid);
      Error error = os_error(pidfd.error().os_error, program + ": pidfd_open");
      if (error.kind == ErrorKind::kIo) error.kind = ErrorKind::kSpawnFailed;
      return error;
    }
    asio::posix::stream_descriptor watched(executor_);
    boost::system::error_code ec;
    watched.assign(pidfd->get(), ec);
    if (ec) {
      // Not adopted when registering failed: pidfd still closes it.
      abandon(pid);
      Error error = os_error(ec.value(), program + ": watching the process");
      if (error.kind == ErrorKind::kIo) error.kind = ErrorKind::kSpawnFailed;
      return error;
    }
    pidfd->release();
    return std::unique_ptr<ChildProcess>(
        std::make_unique<PosixChild>(executor_, pid, std::move(watched)));
  }

  Result<std::unique_ptr<ChildProcess>> adopt(pid_t pid, std::uint64_t start_time,
                                              ExitStatusSource exit_status) override {
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
    if (pidfd && stat && stat->starttime == start_time) {
      boost::system::error_code ec;
      watched.assign(pidfd->get(), ec);
      if (ec) return os_error(ec.value(), "pid " + std::to_string(pid) + ": watching the process");
      pidfd->release();
    }
    return std::unique_ptr<ChildProcess>(
        std::make_unique<PosixChild>(executor_, pid, std::move(watched), std::move(exit_status)));
  }

 private:
  // A child that runs but cannot be watched is killed, group and all, and
  // reaped, so that a failed launch leaves nothing behind.
  static void abandon(pid_t pid) {
    ::kill(-pid, SIGKILL);
    reap_registered(pid);
  }

  asio::any_io_executor executor_;
};

}  // namespace

Result<std::unique_ptr<ChildProcess>> Launcher::adopt(pid_t, std::uint64_t, ExitStatusSource) {
  return Error{ErrorKind::kInvalidArgument, "this launcher cannot adopt a process", 0};
}

std::unique_ptr<Launcher> make_posix_launcher(boost::asio::any_io_executor executor) {
  return std::make_unique<PosixLauncher>(std::move(executor));
}

}  // namespace sempre

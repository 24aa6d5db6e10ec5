#include "child_registry.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <unordered_set>

#include "sempre/proc_stats.hpp"
#include "sempre/reaper.hpp"

namespace sempre {
namespace {

// The one piece of process-wide state of the library (see sempre/reaper.hpp
// for why it cannot be per executor). Never destroyed, so that a Monitor
// destroyed during static destruction still finds it.
struct Registry {
  std::mutex mutex;
  std::unordered_set<pid_t> pids;
};

Registry& registry() {
  static Registry* const instance = new Registry;
  return *instance;
}

// P_PIDFD (Linux 5.4), spelled out because older glibc lacks it in idtype_t.
constexpr idtype_t kByPidfd = static_cast<idtype_t>(3);

// waitid on our child `pid`, through its pidfd when it is >= 0, retried on
// EINTR. Kernels before 5.4 refuse P_PIDFD with EINVAL and are asked by pid
// instead, which is sound while the child is unreaped: its pid cannot be
// reused until then.
int wait_child(int pidfd, pid_t pid, int options, siginfo_t& info) {
  for (;;) {
    info = siginfo_t{};
    int rc = -1;
    errno = EINVAL;
    if (pidfd >= 0) rc = ::waitid(kByPidfd, static_cast<id_t>(pidfd), &info, options);
    if (rc < 0 && errno == EINVAL) rc = ::waitid(P_PID, static_cast<id_t>(pid), &info, options);
    if (rc == 0 || errno != EINTR) return rc;
  }
}

ExitStatus exit_status_of(const siginfo_t& info) {
  ExitStatus status;
  // The raw status keeps a death by SIGKILL apart from exit(9).
  status.signaled = info.si_code != CLD_EXITED;  // CLD_KILLED or CLD_DUMPED
  status.code = info.si_status;
  return status;
}

}  // namespace

pid_t fork_registered(const std::function<void()>& in_child) {
  Registry& r = registry();
  // Reserved before the fork: an insertion that allocates must not fail
  // once the child exists.
  std::unique_lock lock(r.mutex);
  r.pids.reserve(r.pids.size() + 1);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // The child's copy of the lock is never released nor used again.
    lock.release();
    in_child();
    ::_exit(127);
  }
  const int fork_errno = errno;
  if (pid > 0) r.pids.insert(pid);
  errno = fork_errno;
  return pid;
}

std::optional<ExitStatus> reap_registered_if_exited(int pidfd, pid_t pid) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  siginfo_t info;
  if (wait_child(pidfd, pid, WEXITED | WNOHANG, info) < 0) {
    r.pids.erase(pid);
    return ExitStatus{false, -1};
  }
  if (info.si_pid == 0) return std::nullopt;
  r.pids.erase(pid);
  return exit_status_of(info);
}

bool registered_unreaped(int pidfd, pid_t pid) {
  siginfo_t info;
  return wait_child(pidfd, pid, WEXITED | WNOHANG | WNOWAIT, info) == 0;
}

void reap_registered(pid_t pid) {
  // Waiting without the lock (and without reaping, WNOWAIT) keeps
  // reap_orphans() from blocking meanwhile; the reap itself is then quick.
  siginfo_t info;
  (void)wait_child(-1, pid, WEXITED | WNOWAIT, info);
  (void)reap_registered_if_exited(-1, pid);
}

void release_registered(pid_t pid) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.pids.erase(pid);
}

std::vector<pid_t> library_children() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  return {r.pids.begin(), r.pids.end()};
}

bool is_library_child(pid_t pid) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  return r.pids.contains(pid);
}

std::vector<ReapedChild> reap_orphans() {
  std::vector<ReapedChild> reaped;
  Registry& r = registry();
  // Held throughout, so no library fork happens between the listing and the
  // reaps: a child not registered now is not the library's.
  std::lock_guard lock(r.mutex);
  for (pid_t pid : children_of(::getpid())) {
    if (r.pids.contains(pid)) continue;
    siginfo_t info;
    if (wait_child(-1, pid, WEXITED | WNOHANG, info) == 0 && info.si_pid == pid) {
      reaped.push_back(ReapedChild{pid, exit_status_of(info)});
    }
  }
  return reaped;
}

}  // namespace sempre

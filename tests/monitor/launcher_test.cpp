// The posix launcher against real children (tests/helpers/test_child.cpp).
#include "sempre/launcher.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sempre/proc_stats.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

using test::run_until;

// The environment of this process as "K=V" entries.
std::vector<std::string> own_environment() {
  std::vector<std::string> env;
  for (char** e = ::environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

// True when one of this process's children is a zombie. Peeks without
// reaping (WNOWAIT), so it cannot steal another test's child.
bool has_zombie_child() {
  siginfo_t info{};
  if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;  // ECHILD
  return info.si_pid != 0;
}

// A live process: /proc/PID exists and it is not a zombie (an orphan may
// wait as a zombie for an init that is slow to reap it).
bool is_alive(pid_t pid) {
  std::string stat = test::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  std::size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

// Waits until `pid` (a child of ours) has exited, without reaping it.
bool wait_until_exited(pid_t pid) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, 15000);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  return n == 1;
}

// SIGKILLs its target unless disarmed in time: a test whose code under test
// blocks on a live child then ends, and fails, instead of hanging.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::milliseconds limit)
      : thread_([this, limit] {
          std::unique_lock lock(mutex_);
          if (wake_.wait_for(lock, limit, [this] { return disarmed_; })) return;
          if (const pid_t pid = target_.load(); pid > 0) ::kill(pid, SIGKILL);
          fired_ = true;
        }) {}
  ~Watchdog() { disarm(); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void aim_at(pid_t pid) { target_ = pid; }
  // Returns whether it fired.
  bool disarm() {
    {
      std::lock_guard lock(mutex_);
      disarmed_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  std::atomic<pid_t> target_{0};
  std::atomic<bool> fired_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool disarmed_ = false;
  std::thread thread_;
};

// The read end of a child's stdout, collected until EOF.
class Capture {
 public:
  explicit Capture(boost::asio::io_context& io) : pipe_(io) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2";
    pipe_.assign(fds[0]);
    write_fd_ = fds[1];
    read();
  }
  ~Capture() { close_write_end(); }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  int write_fd() const { return write_fd_; }
  // Called once the child holds its copy.
  void close_write_end() {
    if (write_fd_ >= 0) ::close(write_fd_);
    write_fd_ = -1;
  }
  const std::string& text() const { return text_; }
  bool eof() const { return eof_; }

 private:
  void read() {
    pipe_.async_read_some(boost::asio::buffer(buffer_),
                          [this](const boost::system::error_code& ec, std::size_t n) {
                            text_.append(buffer_, n);
                            if (ec) {
                              eof_ = true;
                              return;
                            }
                            read();
                          });
  }

  boost::asio::posix::stream_descriptor pipe_;
  int write_fd_ = -1;
  char buffer_[4096];
  std::string text_;
  bool eof_ = false;
};

class PosixLauncher : public ::testing::Test {
 protected:
  LaunchRequest child_request(std::vector<std::string> args) {
    LaunchRequest request;
    request.argv = {SEMPRE_TEST_CHILD};
    request.argv.insert(request.argv.end(), args.begin(), args.end());
    request.env = own_environment();
    return request;
  }

  std::unique_ptr<ChildProcess> launch(const LaunchRequest& request) {
    auto child = launcher_->launch(request);
    if (!child.ok()) {
      ADD_FAILURE() << child.error().message;
      return nullptr;
    }
    return std::move(child.value());
  }

  // Runs the child to its end; returns its stdout and exit status.
  std::pair<std::string, std::optional<ExitStatus>> run(LaunchRequest request) {
    Capture out(io_);
    request.stdout_fd = out.write_fd();
    auto child = launch(request);
    out.close_write_end();
    if (!child) return {};
    std::optional<ExitStatus> status;
    child->async_wait([&](ExitStatus s) { status = s; });
    EXPECT_TRUE(run_until(io_, [&] { return status && out.eof(); }));
    return {out.text(), status};
  }

  std::optional<ExitStatus> wait_exit(ChildProcess& child) {
    std::optional<ExitStatus> status;
    child.async_wait([&](ExitStatus s) { status = s; });
    EXPECT_TRUE(run_until(io_, [&] { return status.has_value(); }));
    return status;
  }

  boost::asio::io_context io_;
  // Keeps io_ from stopping when it runs out of work between two waits.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::unique_ptr<Launcher> launcher_ = make_posix_launcher(io_.get_executor());
};

TEST_F(PosixLauncher, ReportsExitCode) {
  auto [out, status] = run(child_request({"exit", "3"}));
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, (ExitStatus{false, 3}));
}

TEST_F(PosixLauncher, ReportsSignalDeathApartFromExitCode) {
  auto child = launch(child_request({"sleep", "forever"}));
  ASSERT_TRUE(child);
  EXPECT_TRUE(child->signal_group(SIGKILL));
  auto killed = wait_exit(*child);
  ASSERT_TRUE(killed);
  EXPECT_EQ(*killed, (ExitStatus{true, SIGKILL}));

  auto [out, exited] = run(child_request({"exit", "9"}));
  ASSERT_TRUE(exited);
  EXPECT_EQ(*exited, (ExitStatus{false, 9}));
  EXPECT_NE(*killed, *exited);
}

TEST_F(PosixLauncher, ReportsCodesAboveTheSignalRangeAsExitCodes) {
  auto [out, status] = run(child_request({"exit", "200"}));
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, (ExitStatus{false, 200}));
}

// A core dump ends the child with CLD_DUMPED rather than CLD_KILLED; it is a
// death by signal all the same.
TEST_F(PosixLauncher, ReportsADeathWithACoreDumpAsASignal) {
  test::TempDir dir;  // where a "core" pattern puts the dump
  LaunchRequest request = child_request({"sleep", "forever"});
  request.cwd = dir.path().string();
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_CORE, &saved), 0);
  struct rlimit dump = saved;
  dump.rlim_cur = dump.rlim_max;
  ::setrlimit(RLIMIT_CORE, &dump);
  auto child = launch(request);
  ::setrlimit(RLIMIT_CORE, &saved);
  ASSERT_TRUE(child);
  ASSERT_EQ(::kill(child->pid(), SIGQUIT), 0);
  auto status = wait_exit(*child);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, (ExitStatus{true, SIGQUIT}));
}

// The pidfd's edge came and went while nobody waited; the wait must not
// depend on it.
TEST_F(PosixLauncher, ReportsAnExitThatHappenedBeforeTheWait) {
  auto child = launch(child_request({"exit", "4"}));
  ASSERT_TRUE(child);
  ASSERT_TRUE(wait_until_exited(child->pid()));
  io_.poll();  // the reactor sees the edge now, with no wait pending
  std::optional<ExitStatus> status;
  child->async_wait([&](ExitStatus s) { status = s; });
  EXPECT_FALSE(status);  // posted, never called from inside
  ASSERT_TRUE(run_until(io_, [&] { return status.has_value(); }));
  EXPECT_EQ(*status, (ExitStatus{false, 4}));
  EXPECT_FALSE(has_zombie_child());
}

// Regression: a descriptor closed while its readiness event was still queued
// left that event to the reactor state reused by the next child's pidfd. The
// wait took it for the child's exit and blocked in waitpid on a live child,
// and with it the whole daemon. Readiness alone must prove nothing.
TEST_F(PosixLauncher, StaleReadinessNeitherBlocksNorReportsAnExit) {
  // Two sockets whose peers are gone are readable at once, so that one
  // epoll_wait reports both and queues both events.
  int a[2];
  int b[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
  ::close(a[1]);
  ::close(b[1]);
  boost::asio::posix::stream_descriptor first(io_, a[0]);
  boost::asio::posix::stream_descriptor second(io_, b[0]);

  // Whichever is handled first closes the other, whose event is still
  // queued, and launches a child, whose pidfd gets the freed state.
  Watchdog watchdog(std::chrono::seconds(5));
  std::unique_ptr<ChildProcess> child;
  std::optional<ExitStatus> status;
  const auto on_ready = [&](boost::asio::posix::stream_descriptor& other) {
    return [&](const boost::system::error_code& ec) {
      if (ec || child) return;
      other.close();
      child = launch(child_request({"sleep", "forever"}));
      if (!child) return;
      watchdog.aim_at(child->pid());
      child->async_wait([&](ExitStatus s) { status = s; });
    };
  };
  first.async_wait(boost::asio::posix::stream_descriptor::wait_read, on_ready(second));
  second.async_wait(boost::asio::posix::stream_descriptor::wait_read, on_ready(first));

  EXPECT_FALSE(run_until(
      io_, [&] { return status.has_value(); }, std::chrono::milliseconds(300)))
      << "an exit was reported for a live child";
  EXPECT_FALSE(watchdog.disarm()) << "the wait blocked on a live child";
  ASSERT_TRUE(child);
  EXPECT_TRUE(is_alive(child->pid()));

  // The wait is still armed and reports the real exit.
  ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);
  ASSERT_TRUE(run_until(io_, [&] { return status.has_value(); }));
  EXPECT_EQ(*status, (ExitStatus{true, SIGKILL}));
}

// With SIGCHLD ignored the kernel reaps children itself and the status is
// lost; the exit is still reported, with code -1.
TEST_F(PosixLauncher, ReportsExitWhoseStatusWasLost) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_chld {};
  ASSERT_EQ(::sigaction(SIGCHLD, &ignore, &old_chld), 0);
  // Alive until killed, so that it is still there to be attached to.
  auto child = launch(child_request({"sleep", "forever"}));
  std::optional<ExitStatus> status;
  if (child) {
    ::kill(child->pid(), SIGKILL);
    status = wait_exit(*child);
  }
  ::sigaction(SIGCHLD, &old_chld, nullptr);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, (ExitStatus{false, -1}));
}

TEST_F(PosixLauncher, FailsAtOnceWhenProgramIsMissing) {
  test::TempDir dir;
  LaunchRequest request;
  request.argv = {dir.file("missing"), "arg"};
  auto child = launcher_->launch(request);
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(child.error().os_error, ENOENT);
  EXPECT_EQ(child.error().message, dir.file("missing") + ": No such file or directory");
  EXPECT_FALSE(has_zombie_child());
}

TEST_F(PosixLauncher, FailsWithPermissionDeniedForNonExecutableFile) {
  test::TempDir dir;
  test::write_file(dir.file("data"), "not a program\n");
  ::chmod(dir.file("data").c_str(), 0644);
  LaunchRequest request;
  request.argv = {dir.file("data")};
  auto child = launcher_->launch(request);
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.error().kind, ErrorKind::kPermission);
  EXPECT_EQ(child.error().os_error, EACCES);
  EXPECT_EQ(child.error().message, dir.file("data") + ": Permission denied");
  EXPECT_FALSE(has_zombie_child());
}

TEST_F(PosixLauncher, FailsWhenWorkingDirectoryIsMissing) {
  test::TempDir dir;
  LaunchRequest request = child_request({"cwd"});
  request.cwd = dir.file("nowhere");
  auto child = launcher_->launch(request);
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.error().os_error, ENOENT);
  EXPECT_EQ(child.error().message, std::string(SEMPRE_TEST_CHILD) + ": chdir " +
                                       dir.file("nowhere") + ": No such file or directory");
  EXPECT_FALSE(has_zombie_child());
}

// Boost.Process 1.81 called exit() after a failed exec, flushing a copy of
// the parent's stdio buffers once per failed spawn.
TEST_F(PosixLauncher, FailedExecDoesNotRepeatParentStdioBuffer) {
  test::TempDir dir;
  FILE* file = std::fopen(dir.file("buffered").c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fputs("buffered line\n", file);  // stays in the FILE's buffer
  LaunchRequest request;
  request.argv = {dir.file("missing")};
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(launcher_->launch(request).ok());
  std::fclose(file);
  EXPECT_EQ(test::read_file(dir.file("buffered")), "buffered line\n");
}

TEST_F(PosixLauncher, PassesEnvironmentAndWorkingDirectory) {
  LaunchRequest env_request = child_request({"env", "SEMPRE_GREETING"});
  env_request.env = {"SEMPRE_GREETING=hello there", "PATH=/usr/bin:/bin"};
  EXPECT_EQ(run(env_request).first, "hello there\n");

  LaunchRequest unset_request = child_request({"env", "SEMPRE_GREETING"});
  unset_request.env = {};
  EXPECT_EQ(run(unset_request).first, "<unset>\n");

  test::TempDir dir;
  LaunchRequest cwd_request = child_request({"cwd"});
  cwd_request.cwd = dir.path().string();
  EXPECT_EQ(run(cwd_request).first, std::filesystem::canonical(dir.path()).string() + "\n");
}

TEST_F(PosixLauncher, ChildHasOnlyStandardDescriptors) {
  // Descriptors without CLOEXEC, as asio and careless libraries create them.
  int null_fd = ::open("/dev/null", O_RDONLY);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  int dup_fd = ::dup(1);
  ASSERT_GE(null_fd, 0);
  ASSERT_GE(dup_fd, 0);

  auto [out, status] = run(child_request({"fds"}));
  EXPECT_EQ(test::split_lines(out), (std::vector<std::string>{"0", "1", "2"}));
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success());

  for (int fd : {null_fd, pipe_fds[0], pipe_fds[1], dup_fd}) ::close(fd);
}

TEST_F(PosixLauncher, ChildLeadsItsOwnSession) {
  Capture out(io_);
  LaunchRequest request = child_request({"session"});
  request.stdout_fd = out.write_fd();
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  pid_t pid = child->pid();
  ASSERT_TRUE(wait_exit(*child));
  ASSERT_TRUE(run_until(io_, [&] { return out.eof(); }));
  std::string id = std::to_string(pid);
  EXPECT_EQ(out.text(), id + " " + id + " " + id + "\n");
}

TEST_F(PosixLauncher, ChildStartsWithEmptySignalMaskAndNoIgnoredSignals) {
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigset_t old_mask;
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_pipe {};
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old_pipe), 0);

  auto [out, status] = run(child_request({"sigstate"}));

  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  EXPECT_EQ(test::split_lines(out),
            (std::vector<std::string>{"SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"}));
}

TEST_F(PosixLauncher, AppliesUmask) {
  LaunchRequest request = child_request({"umask"});
  request.umask = 027;
  EXPECT_EQ(run(request).first, "027\n");
}

// This process's niceness, and its RLIMIT_NOFILE hard limit.
int own_niceness() {
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, 0);
  EXPECT_EQ(errno, 0);
  return nice;
}

rlim_t own_hard_nofile() {
  struct rlimit limit {};
  EXPECT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  return limit.rlim_max;
}

TEST_F(PosixLauncher, AppliesNicenessAndDescriptorLimit) {
  // Raising the niceness and lowering the limit need no privilege.
  const int nice = std::min(own_niceness() + 3, 19);
  const rlim_t nofile = std::min<rlim_t>(own_hard_nofile(), 64);
  LaunchRequest request = child_request({"limits"});
  request.nice = nice;
  request.limit_nofile = nofile;
  EXPECT_EQ(run(request).first, "nice " + std::to_string(nice) + " nofile " +
                                    std::to_string(nofile) + " " + std::to_string(nofile) + "\n");
}

TEST_F(PosixLauncher, WithoutEitherTheChildInheritsNicenessAndDescriptorLimit) {
  struct rlimit limit {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(run(child_request({"limits"})).first, "nice " + std::to_string(own_niceness()) +
                                                      " nofile " + std::to_string(limit.rlim_cur) +
                                                      " " + std::to_string(limit.rlim_max) + "\n");
}

TEST_F(PosixLauncher, LoweringTheNicenessWithoutPrivilegeFailsTheSpawn) {
  if (::geteuid() == 0) GTEST_SKIP() << "root may lower its niceness";
  const int nice = own_niceness();
  if (nice == -20) GTEST_SKIP() << "already at the lowest niceness";
  LaunchRequest request = child_request({"limits"});
  request.nice = nice - 1;
  auto child = launcher_->launch(request);
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.error().kind, ErrorKind::kPermission);
  EXPECT_EQ(child.error().message, std::string(SEMPRE_TEST_CHILD) + ": setpriority " +
                                       std::to_string(nice - 1) +
                                       " (a niceness below the current one needs privilege): " +
                                       std::strerror(child.error().os_error));
  EXPECT_FALSE(has_zombie_child());
}

TEST_F(PosixLauncher, RootMayLowerTheNiceness) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const int nice = std::max(own_niceness() - 1, -20);
  LaunchRequest request = child_request({"limits"});
  request.nice = nice;
  EXPECT_EQ(run(request).first.rfind("nice " + std::to_string(nice) + " ", 0), 0u);
}

// Above fs.nr_open no one may raise the limit; above the hard limit only a
// privileged process may.
TEST_F(PosixLauncher, DescriptorLimitBeyondWhatIsAllowedFailsTheSpawn) {
  const std::string nr_open = test::read_file("/proc/sys/fs/nr_open");
  ASSERT_FALSE(nr_open.empty());
  const std::uint64_t too_many = std::stoull(nr_open) + 1;
  LaunchRequest request = child_request({"limits"});
  request.limit_nofile = too_many;
  auto child = launcher_->launch(request);
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.error().kind, ErrorKind::kPermission);
  EXPECT_EQ(child.error().os_error, EPERM);
  const std::string hard =
      own_hard_nofile() == RLIM_INFINITY ? "unlimited" : std::to_string(own_hard_nofile());
  EXPECT_EQ(child.error().message,
            std::string(SEMPRE_TEST_CHILD) + ": setrlimit RLIMIT_NOFILE " +
                std::to_string(too_many) + " (above the hard limit " + hard +
                ", which needs privilege, or above fs.nr_open): " + "Operation not permitted");
  EXPECT_FALSE(has_zombie_child());
}

TEST_F(PosixLauncher, StdoutAndStderrGoToDevNullByDefault) {
  auto child = launch(child_request({"print", "into the void"}));
  ASSERT_TRUE(child);
  auto status = wait_exit(*child);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success());
}

TEST_F(PosixLauncher, DropsToAnotherUserWhenRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  test::TempDir dir;
  LaunchRequest request = child_request({"ids"});
  request.argv[0] = test::world_executable_copy(SEMPRE_TEST_CHILD, dir);
  request.uid = 65534;
  request.gid = 65534;
  request.groups = {65534};
  EXPECT_EQ(run(request).first, "65534 65534\n");
}

TEST_F(PosixLauncher, GroupKillReachesGrandchild) {
  test::TempDir dir;
  Capture out(io_);
  LaunchRequest request = child_request({"grandchild", dir.file("grandchild.pid")});
  request.stdout_fd = out.write_fd();
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  ASSERT_TRUE(run_until(io_, [&] { return out.text() == "ready\n"; }));
  pid_t grandchild = std::stoi(test::read_file(dir.file("grandchild.pid")));
  ASSERT_TRUE(is_alive(grandchild));
  EXPECT_EQ(group_members(child->pid()).size(), 2u);

  EXPECT_TRUE(child->signal_group(SIGKILL));
  auto status = wait_exit(*child);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, (ExitStatus{true, SIGKILL}));

  bool empty = false;
  child->async_wait_group_empty([&] { empty = true; });
  ASSERT_TRUE(run_until(io_, [&] { return empty; }));
  EXPECT_FALSE(is_alive(grandchild));
  EXPECT_TRUE(group_members(child->pid()).empty());
  EXPECT_FALSE(child->signal_group(SIGTERM));
}

TEST_F(PosixLauncher, GroupEmptyWaitsForSurvivingGrandchild) {
  test::TempDir dir;
  Capture out(io_);
  LaunchRequest request = child_request({"grandchild", dir.file("grandchild.pid")});
  request.stdout_fd = out.write_fd();
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  ASSERT_TRUE(run_until(io_, [&] { return out.text() == "ready\n"; }));
  pid_t grandchild = std::stoi(test::read_file(dir.file("grandchild.pid")));

  // Only the main process dies; the grandchild keeps the group alive.
  ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);
  ASSERT_TRUE(wait_exit(*child));
  bool empty = false;
  child->async_wait_group_empty([&] { empty = true; });
  EXPECT_FALSE(run_until(
      io_, [&] { return empty; }, std::chrono::milliseconds(200)));
  EXPECT_TRUE(is_alive(grandchild));

  EXPECT_TRUE(child->signal_group(SIGKILL));
  ASSERT_TRUE(run_until(io_, [&] { return empty; }));
  EXPECT_FALSE(is_alive(grandchild));
}

// A process that forked twice and called setsid has left the group and the
// session, and its parent is gone: its SEMPRE_GROUP mark still ties it to
// the child, so a stop reaches it and the group is not empty while it lives.
TEST_F(PosixLauncher, GroupReachesADoubleForkedSetsidEscapee) {
  test::TempDir dir;
  Capture out(io_);
  LaunchRequest request = child_request({"escape", dir.file("escapee.pid"), "stay"});
  request.stdout_fd = out.write_fd();
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  ASSERT_TRUE(run_until(io_, [&] { return out.text() == "ready\n"; }));
  const pid_t escapee = std::stoi(test::read_file(dir.file("escapee.pid")));
  ASSERT_TRUE(is_alive(escapee));
  EXPECT_TRUE(child->cgroup().empty());
  EXPECT_NE(test::read_file("/proc/" + std::to_string(escapee) + "/environ")
                .find("SEMPRE_GROUP=" + std::to_string(child->pid())),
            std::string::npos);

  auto contains = [](const std::optional<std::vector<pid_t>>& pids, pid_t pid) {
    return pids && std::find(pids->begin(), pids->end(), pid) != pids->end();
  };
  // Neither its group nor its session holds it: only the mark does.
  EXPECT_FALSE(contains(try_members(ProcessSet{child->pid(), "", false}), escapee));
  EXPECT_TRUE(contains(try_members(ProcessSet{child->pid(), "", true}), escapee));

  ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);
  ASSERT_TRUE(wait_exit(*child));
  bool empty = false;
  child->async_wait_group_empty([&] { empty = true; });
  EXPECT_FALSE(run_until(
      io_, [&] { return empty; }, std::chrono::milliseconds(200)));
  EXPECT_TRUE(is_alive(escapee));

  EXPECT_TRUE(child->signal_group(SIGTERM));
  ASSERT_TRUE(run_until(io_, [&] { return empty; }));
  EXPECT_FALSE(is_alive(escapee));
  EXPECT_FALSE(child->signal_group(SIGTERM));
}

TEST_F(PosixLauncher, ChildGetsItsOwnGroupMarkOverAnInheritedOne) {
  LaunchRequest request = child_request({"env", "SEMPRE_GROUP"});
  request.env.emplace_back("SEMPRE_GROUP=1");
  Capture out(io_);
  request.stdout_fd = out.write_fd();
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  const pid_t pid = child->pid();
  ASSERT_TRUE(wait_exit(*child));
  ASSERT_TRUE(run_until(io_, [&] { return out.eof(); }));
  EXPECT_EQ(out.text(), std::to_string(pid) + "\n");
}

// Where this process may make cgroups (root, or a delegated subtree), a
// child lives in one of its own, and everything it forks stays there.
TEST_F(PosixLauncher, ChildInItsOwnCgroupTakesItsEscapeesAlong) {
  Result<std::string> parent = make_cgroup_parent("sempre-test-" + std::to_string(::getpid()));
  if (!parent) GTEST_SKIP() << "no cgroup v2 to write: " << parent.error().message;
  test::TempDir dir;
  Capture out(io_);
  LaunchRequest request = child_request({"escape", dir.file("escapee.pid"), "stay"});
  request.stdout_fd = out.write_fd();
  request.cgroup_parent = *parent;
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  ASSERT_TRUE(run_until(io_, [&] { return out.text() == "ready\n"; }));
  const pid_t escapee = std::stoi(test::read_file(dir.file("escapee.pid")));
  const std::string own = *parent + "/" + std::to_string(child->pid());
  EXPECT_EQ(child->cgroup(), own);
  EXPECT_EQ(cgroup_of(child->pid()), own);
  EXPECT_EQ(cgroup_of(escapee), own);
  std::optional<std::vector<pid_t>> members = try_members(ProcessSet{child->pid(), own});
  ASSERT_TRUE(members);
  std::sort(members->begin(), members->end());
  std::vector<pid_t> expected{child->pid(), escapee};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*members, expected);

  ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);
  ASSERT_TRUE(wait_exit(*child));
  bool empty = false;
  child->async_wait_group_empty([&] { empty = true; });
  EXPECT_FALSE(run_until(
      io_, [&] { return empty; }, std::chrono::milliseconds(200)));
  EXPECT_TRUE(child->signal_group(SIGKILL));
  ASSERT_TRUE(run_until(io_, [&] { return empty; }));
  EXPECT_FALSE(is_alive(escapee));
  // An empty cgroup is removed with its run.
  EXPECT_FALSE(std::filesystem::exists(own));
  child.reset();
  EXPECT_EQ(::rmdir(parent->c_str()), 0) << std::strerror(errno);
}

// A cgroup parent that is no cgroup (a plain directory): the child runs all
// the same, held by its process tree.
TEST_F(PosixLauncher, ChildRunsWithoutACgroupWhenItCannotJoinOne) {
  test::TempDir dir;
  LaunchRequest request = child_request({"sleep", "forever"});
  request.cgroup_parent = dir.path().string();
  auto child = launch(request);
  ASSERT_TRUE(child);
  EXPECT_TRUE(child->cgroup().empty());
  EXPECT_TRUE(child->signal_group(SIGKILL));
  ASSERT_TRUE(wait_exit(*child));
}

TEST_F(PosixLauncher, GroupEmptyFiresAtOnceForLoneProcess) {
  auto child = launch(child_request({"exit", "0"}));
  ASSERT_TRUE(child);
  ASSERT_TRUE(wait_exit(*child));
  bool empty = false;
  child->async_wait_group_empty([&] { empty = true; });
  EXPECT_FALSE(empty);  // posted, never called from inside
  ASSERT_TRUE(run_until(io_, [&] { return empty; }));
}

// Out of descriptors, no pidfd can be opened; the wait falls back to looking
// again later instead of giving up or reporting an empty group.
TEST_F(PosixLauncher, GroupEmptyWaitSurvivesRunningOutOfDescriptors) {
  test::TempDir dir;
  Capture out(io_);
  LaunchRequest request = child_request({"grandchild", dir.file("grandchild.pid")});
  request.stdout_fd = out.write_fd();
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  ASSERT_TRUE(run_until(io_, [&] { return out.text() == "ready\n"; }));
  pid_t pgid = child->pid();
  ASSERT_EQ(::kill(pgid, SIGKILL), 0);
  ASSERT_TRUE(wait_exit(*child));

  // UBSan's vptr check probes memory through a pipe, so the timer service
  // is created while descriptors are still to be had.
  { boost::asio::steady_timer warm_up(io_); }
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  int lowest_free = ::dup(0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  struct rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  bool empty = false;
  child->async_wait_group_empty([&] { empty = true; });
  bool fired_early = run_until(
      io_, [&] { return empty; }, std::chrono::milliseconds(250));
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_FALSE(fired_early);

  EXPECT_TRUE(child->signal_group(SIGKILL));
  EXPECT_TRUE(run_until(io_, [&] { return empty; }));
}

// The command name comes from the file exec'd and may hold ") " and spaces,
// which must not derail reading /proc/PID/stat.
TEST_F(PosixLauncher, GroupMembersAndUsageOfOddlyNamedProcess) {
  test::TempDir dir;
  std::string odd = dir.file("a) b (c");
  ASSERT_EQ(::symlink(SEMPRE_TEST_CHILD, odd.c_str()), 0);
  Capture out(io_);
  LaunchRequest request = child_request({"ignore-term"});
  request.argv[0] = odd;
  request.stdout_fd = out.write_fd();
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  ASSERT_TRUE(run_until(io_, [&] { return out.text() == "ready\n"; }));
  ASSERT_NE(test::read_file("/proc/" + std::to_string(child->pid()) + "/stat").find("(a) b (c)"),
            std::string::npos);

  EXPECT_EQ(group_members(child->pid()), std::vector<pid_t>{child->pid()});
  GroupUsage usage = group_usage(child->pid());
  EXPECT_EQ(usage.processes, 1);
  EXPECT_GT(usage.rss_bytes, 0u);
  EXPECT_TRUE(group_members(-1).empty());
}

TEST_F(PosixLauncher, GroupUsageSumsLiveMembers) {
  test::TempDir dir;
  Capture out(io_);
  LaunchRequest request = child_request({"grandchild", dir.file("grandchild.pid")});
  request.stdout_fd = out.write_fd();
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  ASSERT_TRUE(run_until(io_, [&] { return out.text() == "ready\n"; }));
  GroupUsage both = group_usage(child->pid());
  EXPECT_EQ(both.processes, 2);
  ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);
  ASSERT_TRUE(wait_exit(*child));
  GroupUsage orphan = group_usage(child->pid());
  EXPECT_EQ(orphan.processes, 1);
  EXPECT_GT(orphan.rss_bytes, 0u);
  EXPECT_LT(orphan.rss_bytes, both.rss_bytes);
  EXPECT_TRUE(child->signal_group(SIGKILL));
}

TEST_F(PosixLauncher, ReportsFailedIdentityChange) {
  if (::geteuid() == 0) GTEST_SKIP() << "root may take any identity";
  LaunchRequest request = child_request({"ids"});
  request.uid = 0;
  request.gid = 0;
  auto child = launcher_->launch(request);
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.error().kind, ErrorKind::kPermission);
  EXPECT_EQ(child.error().message,
            std::string(SEMPRE_TEST_CHILD) + ": setgroups: Operation not permitted");
  EXPECT_FALSE(has_zombie_child());
}

TEST_F(PosixLauncher, DestroyingRunningChildKillsAndReapsIt) {
  auto child = launch(child_request({"sleep", "forever"}));
  ASSERT_TRUE(child);
  pid_t pid = child->pid();
  bool called = false;
  child->async_wait([&](ExitStatus) { called = true; });
  child.reset();
  // Reaped synchronously: no zombie, no process.
  EXPECT_FALSE(has_zombie_child());
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid)));
  // The aborted wait completes without calling back into a freed object.
  io_.poll();
  EXPECT_FALSE(called);
}

TEST_F(PosixLauncher, DestroyingStoppedChildKillsAndReapsIt) {
  auto child = launch(child_request({"sleep", "forever"}));
  ASSERT_TRUE(child);
  pid_t pid = child->pid();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  child.reset();
  EXPECT_FALSE(has_zombie_child());
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(pid)));
}

TEST_F(PosixLauncher, DestroyingChildCancelsGroupWait) {
  test::TempDir dir;
  Capture out(io_);
  LaunchRequest request = child_request({"grandchild", dir.file("grandchild.pid")});
  request.stdout_fd = out.write_fd();
  auto child = launch(request);
  out.close_write_end();
  ASSERT_TRUE(child);
  ASSERT_TRUE(run_until(io_, [&] { return out.text() == "ready\n"; }));
  pid_t pgid = child->pid();
  ASSERT_EQ(::kill(pgid, SIGKILL), 0);
  ASSERT_TRUE(wait_exit(*child));
  bool empty = false;
  child->async_wait_group_empty([&] { empty = true; });
  io_.poll();
  child.reset();
  // What is left of the group is the caller's to kill; the wait must just end quietly.
  ASSERT_EQ(::kill(-pgid, SIGKILL), 0);
  io_.poll();
  EXPECT_FALSE(empty);
}

TEST_F(PosixLauncher, ManyConcurrentChildrenAreAllReaped) {
  constexpr int kChildren = 20;
  std::vector<std::unique_ptr<ChildProcess>> children;
  std::vector<std::optional<ExitStatus>> statuses(kChildren);
  for (int i = 0; i < kChildren; ++i) {
    children.push_back(launch(child_request({"exit", std::to_string(i)})));
    ASSERT_TRUE(children.back());
    children.back()->async_wait([&statuses, i](ExitStatus s) { statuses[i] = s; });
  }
  ASSERT_TRUE(run_until(io_, [&] {
    for (auto& s : statuses) {
      if (!s) return false;
    }
    return true;
  }));
  for (int i = 0; i < kChildren; ++i) EXPECT_EQ(*statuses[i], (ExitStatus{false, i}));
  EXPECT_FALSE(has_zombie_child());
}

}  // namespace
}  // namespace sempre

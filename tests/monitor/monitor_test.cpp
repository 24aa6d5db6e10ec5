// sempre::Monitor against real processes: each test waits on events with a
// deadline, never on a sleep.
#include "sempre/monitor.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <filesystem>
#include <set>

#include "os.hpp"
#include "sempre/reaper.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

using namespace std::chrono_literals;
using test::read_file;
using test::run_until;
using test::split_lines;
using test::TempDir;
using test::write_file;

const std::string kChild = SEMPRE_TEST_CHILD;

bool process_alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  // A zombie is dead: it only waits for its parent (or init) to reap it.
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

class MonitorTest : public ::testing::Test {
 protected:
  MonitorOptions options(std::vector<std::string> args) {
    MonitorOptions o;
    o.argv = {kChild};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.min_uptime = 0ms;
    return o;
  }

  Monitor& make(MonitorOptions o) {
    monitor_ = std::make_unique<Monitor>(io_.get_executor(), std::move(o));
    monitor_->on_event([this](const Event& e) { events_.push_back(e); });
    monitor_->on_output([this](OutputStream s, std::string_view line) {
      (s == OutputStream::kStdout ? out_ : err_).emplace_back(line);
    });
    return *monitor_;
  }

  bool wait(const std::function<bool()>& done, std::chrono::milliseconds limit = 15s) {
    return run_until(io_, done, limit);
  }
  bool wait_state(State s) {
    return wait([&] { return monitor_->status().state == s; });
  }
  int count(EventType t) const {
    return static_cast<int>(
        std::count_if(events_.begin(), events_.end(), [t](const Event& e) { return e.type == t; }));
  }
  const Event* last(EventType t) const {
    for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
      if (it->type == t) return &*it;
    }
    return nullptr;
  }
  bool stop_and_wait() {
    bool done = false;
    monitor_->stop([&] { done = true; });
    return wait([&] { return done; });
  }

  boost::asio::io_context io_;
  TempDir dir_;
  std::unique_ptr<Monitor> monitor_;
  std::vector<Event> events_;
  std::vector<std::string> out_;
  std::vector<std::string> err_;
};

// A RunKeeper that holds copies of the pipes, as sempred's keeper does.
class HoldingKeeper final : public RunKeeper {
 public:
  void keep_pipes(int out, int err) override {
    close_all();
    out_ = ::fcntl(out, F_DUPFD_CLOEXEC, 0);
    err_ = ::fcntl(err, F_DUPFD_CLOEXEC, 0);
  }
  void keep_pid(pid_t pid) override { pid_ = pid; }
  void forget_run() override {
    forgotten_ = true;
    close_all();
  }
  ~HoldingKeeper() override { close_all(); }

  int take_out() { return std::exchange(out_, -1); }
  int take_err() { return std::exchange(err_, -1); }
  pid_t pid() const { return pid_; }
  bool forgotten() const { return forgotten_; }

 private:
  void close_all() {
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
    out_ = err_ = -1;
  }
  int out_ = -1;
  int err_ = -1;
  pid_t pid_ = 0;
  bool forgotten_ = false;
};

// The status of our own child `pid`, reaped without waiting.
ExitStatusSource reap_own_child() {
  return [](pid_t pid, std::function<void(std::optional<ExitStatus>)> done) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) != pid) return done(std::nullopt);
    if (WIFSIGNALED(status)) return done(ExitStatus{true, WTERMSIG(status)});
    done(ExitStatus{false, WEXITSTATUS(status)});
  };
}

TEST_F(MonitorTest, ARunReleasedByOneMonitorIsAdoptedByTheNextWithoutALostLine) {
  // What sempred does across its own restarts: the first Monitor lets its
  // run go, the second takes it over (same process, same pipes), and the
  // run's output goes on into the same log, every line once, in order.
  const std::string log = dir_.path().string() + "/tick.log";
  MonitorOptions o = options({"tick", "1"});
  o.logs.out_path = log;
  o.logs.append = true;
  HoldingKeeper keeper;
  Monitor::Seams seams;
  seams.keeper = &keeper;
  auto first = std::make_unique<Monitor>(io_.get_executor(), o, seams);
  ASSERT_TRUE(first->start().ok());
  const pid_t pid = first->status().pid;
  ASSERT_EQ(keeper.pid(), pid);
  ASSERT_TRUE(wait([&] { return split_lines(read_file(log)).size() >= 20; }));
  first->release();
  first.reset();
  EXPECT_FALSE(keeper.forgotten()) << "a released run stays kept";
  ASSERT_TRUE(process_alive(pid)) << "release and destruction leave the child running";

  Adoption adoption;
  adoption.pid = pid;
  adoption.start_time = os::read_proc_stat(pid)->starttime;
  adoption.stdout_fd = keeper.take_out();
  adoption.stderr_fd = keeper.take_err();
  adoption.uptime = 1s;
  adoption.exit_status = reap_own_child();
  Monitor& second = make(o);
  ASSERT_TRUE(second.adopt(std::move(adoption)).ok());
  EXPECT_EQ(second.status().state, State::kRunning);
  EXPECT_TRUE(second.status().wanted_up);
  EXPECT_EQ(second.status().pid, pid);
  EXPECT_GE(second.status().uptime, 1s);
  const std::size_t before = out_.size();
  ASSERT_TRUE(wait([&] { return out_.size() >= before + 20; })) << "output goes on";

  // Its end is handled by the policy (always): a new run.
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  ASSERT_TRUE(wait([&] { return count(EventType::kExit) == 1 && second.status().pid != 0; }));
  ASSERT_EQ(last(EventType::kExit)->exit, (ExitStatus{false, 0}));
  EXPECT_NE(second.status().pid, pid);
  ASSERT_TRUE(stop_and_wait());

  std::vector<std::string> lines = split_lines(read_file(log));
  // The first run's lines, then the second's from 0 again.
  std::size_t restart = 1;
  while (restart < lines.size() && std::stol(lines[restart]) != 0) ++restart;
  ASSERT_GE(restart, 40u);
  for (std::size_t i = 0; i < restart; ++i) {
    ASSERT_EQ(std::stol(lines[i]), static_cast<long>(i)) << "line " << i << " of " << log;
  }
}

TEST_F(MonitorTest, ARunThatEndedBeforeItsAdoptionIsReportedAtOnce) {
  // A run that ended while nobody supervised it: adopt() reports its end
  // with the status its source gives, and the policy restarts it.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setpgid(0, 0);
    ::_exit(5);
  }
  const std::uint64_t start_time = os::read_proc_stat(pid)->starttime;
  ASSERT_TRUE(test::wait_for_exit(pid));
  Adoption adoption;
  adoption.pid = pid;
  adoption.start_time = start_time;
  adoption.exit_status = reap_own_child();
  Monitor& m = make(options({"sleep", "forever"}));
  ASSERT_TRUE(m.adopt(std::move(adoption)).ok());
  ASSERT_TRUE(wait([&] { return count(EventType::kExit) == 1; }));
  EXPECT_EQ(last(EventType::kExit)->exit, (ExitStatus{false, 5}));
  EXPECT_EQ(last(EventType::kExit)->pid, pid);
  ASSERT_TRUE(wait([&] { return m.status().pid != 0; })) << "restarted by its policy";
  ASSERT_TRUE(stop_and_wait());
}

TEST_F(MonitorTest, AdoptRefusesWhenARunIsUnderWay) {
  Monitor& m = make(options({"sleep", "forever"}));
  ASSERT_TRUE(m.start().ok());
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ::close(fds[1]);
  Adoption adoption;
  adoption.pid = m.status().pid;
  adoption.stdout_fd = fds[0];
  adoption.exit_status = reap_own_child();
  EXPECT_FALSE(m.adopt(std::move(adoption)).ok());
  EXPECT_EQ(::fcntl(fds[0], F_GETFD), -1) << "the descriptors given are closed";
  ASSERT_TRUE(stop_and_wait());
}

TEST_F(MonitorTest, ABurstOfOutputIsReadWholeWhileTheChildStaysQuiet) {
  // Far more than one read takes, written at once, then silence: every line
  // arrives without waiting for the child's next write or its end.
  Monitor& m = make(options({"burst", "100000"}));
  ASSERT_TRUE(m.start().ok());
  ASSERT_TRUE(wait([&] { return out_.size() >= 100000; })) << out_.size() << " lines";
  EXPECT_EQ(out_.back(), "00099999");
  EXPECT_NE(m.status().pid, 0) << "the child still runs";
  ASSERT_TRUE(stop_and_wait());
}

// A log that cannot be written costs the app nothing: its output is read
// and dropped, counted, and said once when it starts and once when it ends.
TEST_F(MonitorTest, ALogThatCannotBeWrittenDropsCountsAndSaysWhenItResumes) {
  const std::string logs = dir_.path().string() + "/logs";
  auto o = options({"tick", "1"});
  o.logs.out_path = logs + "/app.out.log";
  o.logs.err_path = logs + "/app.err.log";
  Monitor& m = make(o);
  ASSERT_TRUE(m.start().ok());
  ASSERT_TRUE(wait([&] { return out_.size() >= 5; }));
  const pid_t pid = m.status().pid;

  // A file where the directory was: the log can be made again nowhere.
  std::filesystem::remove_all(logs);
  test::write_file(logs, "");
  ASSERT_TRUE(wait([&] { return count(EventType::kLogError) == 1 && m.status().out_dropped > 0; }));
  const Event* failed = last(EventType::kLogError);
  EXPECT_EQ(failed->path, o.logs.out_path);
  EXPECT_NE(failed->reason.find(logs), std::string::npos) << failed->reason;
  EXPECT_EQ(m.status().last_error, failed->reason);
  const std::size_t seen = out_.size();
  ASSERT_TRUE(wait([&] { return out_.size() >= seen + 20; }));
  EXPECT_EQ(count(EventType::kLogError), 1) << "said once, not per dropped chunk";
  EXPECT_EQ(m.status().err_dropped, 0u);

  std::filesystem::remove(logs);
  ASSERT_TRUE(wait([&] { return count(EventType::kLogResumed) == 1; }));
  const Event* resumed = last(EventType::kLogResumed);
  EXPECT_EQ(resumed->path, o.logs.out_path);
  EXPECT_EQ(resumed->dropped, m.status().out_dropped);
  EXPECT_GE(resumed->dropped, 20u * 9);  // "%08d\n" per line
  EXPECT_EQ(m.status().last_error, "");
  EXPECT_EQ(m.status().pid, pid) << "the app was neither blocked nor restarted";
  ASSERT_TRUE(wait([&] { return !read_file(o.logs.out_path).empty(); }));
  ASSERT_TRUE(stop_and_wait());
}

TEST_F(MonitorTest, ReportsExitCodeOfARunThatEnds) {
  auto o = options({"exit", "3"});
  o.restart = RestartMode::kNever;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait_state(State::kExited));
  ASSERT_NE(last(EventType::kExit), nullptr);
  EXPECT_EQ(last(EventType::kExit)->exit, (ExitStatus{false, 3}));
  EXPECT_EQ(monitor_->status().pid, 0);
}

TEST_F(MonitorTest, ReportsTheSignalThatKilledTheChild) {
  auto o = options({"sleep", "forever"});
  o.restart = RestartMode::kNever;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  // Not SIGSEGV, which a sanitizer build of the child catches, and none that
  // dumps core.
  ::kill(monitor_->status().pid, SIGALRM);
  ASSERT_TRUE(wait_state(State::kExited));
  EXPECT_EQ(last(EventType::kExit)->exit, (ExitStatus{true, SIGALRM}));
}

TEST_F(MonitorTest, MissingProgramFailsAtOnceWithENOENT) {
  MonitorOptions o;
  o.argv = {dir_.file("no-such-program")};
  make(o);
  auto st = monitor_->start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().os_error, ENOENT);
  EXPECT_NE(st.error().message.find("No such file or directory"), std::string::npos);
  EXPECT_EQ(monitor_->status().state, State::kFailed);
  EXPECT_EQ(count(EventType::kRestart), 0);
}

TEST_F(MonitorTest, UnexecutableProgramFailsAtOnceWithEACCES) {
  const std::string path = dir_.file("not-executable");
  write_file(path, "#!/bin/sh\necho hi\n");
  ::chmod(path.c_str(), 0644);
  MonitorOptions o;
  o.argv = {path};
  make(o);
  auto st = monitor_->start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().os_error, EACCES);
  EXPECT_NE(st.error().message.find("Permission denied"), std::string::npos);
  EXPECT_EQ(monitor_->status().state, State::kFailed);
}

TEST_F(MonitorTest, EnvironmentAndWorkingDirectoryReachTheChild) {
  auto o = options({"env", "SEMPRE_TEST_VALUE"});
  o.env = {"SEMPRE_TEST_VALUE=forty two", "PATH=/usr/bin:/bin"};
  o.restart = RestartMode::kNever;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait_state(State::kExited));
  EXPECT_EQ(out_, std::vector<std::string>{"forty two"});

  out_.clear();
  auto c = options({"cwd"});
  c.cwd = dir_.path().string();
  c.restart = RestartMode::kNever;
  make(c);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait_state(State::kExited));
  EXPECT_EQ(out_, std::vector<std::string>{std::filesystem::canonical(dir_.path()).string()});
}

TEST_F(MonitorTest, NicenessAndDescriptorLimitReachTheChild) {
  errno = 0;
  const int nice = std::min(::getpriority(PRIO_PROCESS, 0) + 2, 19);
  ASSERT_EQ(errno, 0);
  auto o = options({"limits"});
  o.nice = nice;
  o.limit_nofile = 50;
  o.restart = RestartMode::kNever;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait_state(State::kExited));
  EXPECT_EQ(out_, std::vector<std::string>{"nice " + std::to_string(nice) + " nofile 50 50"});
}

TEST_F(MonitorTest, ChildInheritsNoDescriptorButStdio) {
  auto o = options({"fds"});
  o.restart = RestartMode::kNever;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait_state(State::kExited));
  EXPECT_EQ(out_, (std::vector<std::string>{"0", "1", "2"}));
}

TEST_F(MonitorTest, ChildThatIgnoresTermIsKilledAfterKillTimeout) {
  auto o = options({"ignore-term"});
  o.kill_timeout = 300ms;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait([&] { return !out_.empty(); }));  // SIGTERM is ignored from here on
  ASSERT_TRUE(stop_and_wait());
  EXPECT_EQ(monitor_->status().state, State::kStopped);
  EXPECT_EQ(last(EventType::kExit)->exit, (ExitStatus{true, SIGKILL}));
}

TEST_F(MonitorTest, ChildThatExitsOnTermIsNotKilled) {
  auto o = options({"term-exit", "0"});
  o.kill_timeout = 10s;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait([&] { return !out_.empty(); }));
  const auto before = std::chrono::steady_clock::now();
  ASSERT_TRUE(stop_and_wait());
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s);
  EXPECT_EQ(last(EventType::kExit)->exit, (ExitStatus{false, 0}));
}

TEST_F(MonitorTest, KillSignalIsConfigurable) {
  auto o = options({"signals"});
  o.kill_signal = SIGUSR1;
  o.kill_timeout = 300ms;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait([&] { return !out_.empty(); }));
  ASSERT_TRUE(stop_and_wait());
  EXPECT_NE(std::find(out_.begin(), out_.end(), "got USR1"), out_.end());
}

TEST_F(MonitorTest, GrandchildIsGoneAfterStop) {
  const std::string pidfile = dir_.file("grandchild.pid");
  auto o = options({"grandchild", pidfile});
  o.kill_timeout = 300ms;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait([&] { return !out_.empty(); }));
  const pid_t grandchild = std::stoi(read_file(pidfile));
  ASSERT_TRUE(process_alive(grandchild));
  ASSERT_TRUE(stop_and_wait());
  EXPECT_FALSE(process_alive(grandchild));
}

TEST_F(MonitorTest, LeftoverOfAnExitedChildIsGoneBeforeTheRestart) {
  // The main process dies; its grandchild (which ignores SIGTERM) must not
  // survive into the next run.
  const std::string pidfile = dir_.file("grandchild.pid");
  auto o = options({"grandchild", pidfile});
  o.kill_timeout = 300ms;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait([&] { return !out_.empty(); }));
  const pid_t grandchild = std::stoi(read_file(pidfile));
  ::kill(monitor_->status().pid, SIGKILL);
  ASSERT_TRUE(wait([&] { return count(EventType::kStart) == 2; }));
  EXPECT_FALSE(process_alive(grandchild));
  ASSERT_TRUE(stop_and_wait());
}

TEST_F(MonitorTest, CrashLoopEndsFailedAfterExactlyMaxRestartsWithGrowingDelays) {
  auto o = options({"exit", "1"});
  o.min_uptime = 1s;
  o.max_restarts = 3;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait_state(State::kFailed));
  EXPECT_EQ(count(EventType::kStart), 4);
  EXPECT_EQ(count(EventType::kRestart), 3);
  EXPECT_EQ(monitor_->status().restarts, 3);
  std::vector<Millis> delays;
  std::vector<std::chrono::system_clock::time_point> starts;
  for (const auto& e : events_) {
    if (e.type == EventType::kRestart) delays.push_back(e.delay);
    if (e.type == EventType::kStart) starts.push_back(e.time);
  }
  EXPECT_EQ(delays, (std::vector<Millis>{100ms, 200ms, 400ms}));
  // The waits really happened, each longer than the one before.
  for (std::size_t i = 1; i < starts.size(); ++i) {
    EXPECT_GE(starts[i] - starts[i - 1], delays[i - 1]);
  }
}

TEST_F(MonitorTest, OutputOfSuccessiveRunsIsAppendedInOrder) {
  const std::string log = dir_.file("app.log");
  const std::string counter = dir_.file("count");
  write_file(counter, "1");
  MonitorOptions o;
  o.argv = {"/bin/sh", "-c",
            "n=$(cat \"$0\"); echo \"run $n out\"; echo \"run $n err\" >&2; echo $((n+1)) > \"$0\"",
            counter};
  o.min_uptime = 0ms;
  o.logs.out_path = log;
  o.logs.err_path = log;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait([&] { return count(EventType::kExit) >= 3; }));
  ASSERT_TRUE(stop_and_wait());
  auto lines = split_lines(read_file(log));
  ASSERT_GE(lines.size(), 6u);
  for (std::size_t run = 0; run < 3; ++run) {
    const std::string n = std::to_string(run + 1);
    std::set<std::string> pair{lines[2 * run], lines[2 * run + 1]};
    EXPECT_EQ(pair, (std::set<std::string>{"run " + n + " out", "run " + n + " err"}));
  }
}

TEST_F(MonitorTest, TruncatesTheLogAtStartUnlessAppending) {
  const std::string log = dir_.file("out.log");
  for (bool append : {false, true}) {
    write_file(log, "old line\n");
    auto o = options({"print", "new line"});
    o.restart = RestartMode::kNever;
    o.logs.out_path = log;
    o.logs.append = append;
    make(o);
    ASSERT_TRUE(monitor_->start().ok());
    ASSERT_TRUE(wait_state(State::kExited));
    EXPECT_EQ(read_file(log), append ? "old line\nnew line\n" : "new line\n") << append;
  }
}

TEST_F(MonitorTest, FinalLineWithoutNewlineIsKept) {
  const std::string log = dir_.file("out.log");
  auto o = options({"print-nonl", "last words"});
  o.restart = RestartMode::kNever;
  o.logs.out_path = log;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait_state(State::kExited));
  EXPECT_EQ(read_file(log), "last words\n");
  EXPECT_EQ(out_, std::vector<std::string>{"last words"});
}

TEST_F(MonitorTest, RotationUnderFloodLosesAndSplitsNoLine) {
  const std::string log = dir_.file("flood.log");
  const int kLines = 100000;
  auto o = options({"flood", std::to_string(kLines), "100"});
  o.restart = RestartMode::kNever;
  o.logs.out_path = log;
  o.logs.max_size = 256 * 1024;
  o.logs.keep = 1000;
  make(o);
  int rotations = 0;
  monitor_->on_event([&](const Event& e) { rotations += e.type == EventType::kRotate; });
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait([&] { return monitor_->status().state == State::kExited; }, 60s));
  EXPECT_GT(rotations, 30);

  // Oldest first: log.N ... log.1, then log.
  std::string all;
  for (int i = rotations; i >= 1; --i) {
    const std::string part = read_file(log + "." + std::to_string(i));
    EXPECT_LE(part.size(), o.logs.max_size);
    all += part;
  }
  all += read_file(log);
  const auto lines = split_lines(all);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kLines));
  for (int i = 0; i < kLines; ++i) {
    char head[16];
    std::snprintf(head, sizeof head, "%08d ", i + 1);
    ASSERT_EQ(lines[i].size(), 99u) << "line " << i + 1;
    ASSERT_EQ(lines[i].compare(0, 9, head), 0) << "line " << i + 1;
  }
}

TEST_F(MonitorTest, PidFileIsWrittenOnStartAndRemovedOnStop) {
  const std::string pidfile = dir_.file("app.pid");
  auto o = options({"sleep", "forever"});
  o.pid_file = pidfile;
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  EXPECT_EQ(read_file(pidfile), std::to_string(monitor_->status().pid) + "\n");
  ASSERT_TRUE(stop_and_wait());
  EXPECT_FALSE(std::filesystem::exists(pidfile));
}

TEST_F(MonitorTest, SignalReachesTheChild) {
  make(options({"signals"}));
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait([&] { return !out_.empty(); }));
  ASSERT_TRUE(monitor_->signal(SIGHUP).ok());
  ASSERT_TRUE(wait([&] { return out_.size() >= 2; }));
  EXPECT_EQ(out_[1], "got HUP");
  ASSERT_TRUE(stop_and_wait());
  EXPECT_FALSE(monitor_->signal(SIGHUP).ok());
}

TEST_F(MonitorTest, UsageReadsTheGroupFromProc) {
  make(options({"signals"}));
  ASSERT_TRUE(monitor_->start().ok());
  ASSERT_TRUE(wait([&] { return !out_.empty(); }));  // running, not just exec'd
  const MonitorUsage u = monitor_->usage();
  EXPECT_GT(u.rss_bytes, 0u);
  EXPECT_EQ(u.processes, 1);
  ASSERT_TRUE(stop_and_wait());
  EXPECT_EQ(monitor_->usage().rss_bytes, 0u);
}

TEST_F(MonitorTest, ManualRestartSpawnsANewProcess) {
  make(options({"sleep", "forever"}));
  ASSERT_TRUE(monitor_->start().ok());
  const pid_t first = monitor_->status().pid;
  bool restarted = false;
  monitor_->restart([&] { restarted = true; });
  ASSERT_TRUE(wait([&] { return restarted; }));
  EXPECT_NE(monitor_->status().pid, first);
  EXPECT_NE(monitor_->status().pid, 0);
  EXPECT_FALSE(process_alive(first));
  EXPECT_EQ(monitor_->status().restarts, 1);
  ASSERT_TRUE(stop_and_wait());
}

class WatchTest : public MonitorTest {
 protected:
  void SetUp() override {
    watched_ = dir_.path() / "src";
    std::filesystem::create_directories(watched_ / "sub");
    write_file(watched_ / "app.js", "1");
    auto o = options({"sleep", "forever"});
    o.watch = {watched_.string()};
    o.watch_ignore = {"*.tmp"};
    o.watch_debounce = 50ms;
    make(o);
    ASSERT_TRUE(monitor_->start().ok());
  }
  void TearDown() override { EXPECT_TRUE(stop_and_wait()); }

  // Waits for the next restart caused by a watched change; returns its path.
  std::string next_watch_restart() {
    const int before = count(EventType::kWatch);
    const int starts = count(EventType::kStart);
    if (!wait([&] {
          return count(EventType::kWatch) > before && count(EventType::kStart) > starts;
        })) {
      return "<none>";
    }
    return last(EventType::kWatch)->path;
  }

  std::filesystem::path watched_;
};

TEST_F(WatchTest, RestartsWhenAWatchedFileChanges) {
  const pid_t first = monitor_->status().pid;
  write_file(watched_ / "app.js", "2");
  EXPECT_EQ(next_watch_restart(), (watched_ / "app.js").string());
  EXPECT_NE(monitor_->status().pid, first);
}

TEST_F(WatchTest, RestartsWhenAFileIsCreatedOrDeleted) {
  write_file(watched_ / "sub" / "new.js", "x");
  EXPECT_EQ(next_watch_restart(), (watched_ / "sub" / "new.js").string());
  std::filesystem::remove(watched_ / "app.js");
  EXPECT_EQ(next_watch_restart(), (watched_ / "app.js").string());
}

TEST_F(WatchTest, IgnoredPathsDoNotRestart) {
  write_file(watched_ / "scratch.tmp", "x");
  write_file(watched_ / ".hidden", "x");
  write_file(watched_ / "sub" / "real.js", "x");
  // The first change reported is the one that is not ignored.
  EXPECT_EQ(next_watch_restart(), (watched_ / "sub" / "real.js").string());
  EXPECT_EQ(count(EventType::kWatch), 1);
}

}  // namespace
}  // namespace sempre

namespace sempre {
namespace {

// A port nothing listens on right now.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class ReadinessTest : public MonitorTest {
 protected:
  // Starts `o`, checks the app stays `starting` past min-uptime until
  // `make_ready` runs, then that it becomes running with a `ready` event.
  void expect_ready_only_after(MonitorOptions o, const std::function<void()>& make_ready) {
    o.min_uptime = 50ms;
    make(o);
    ASSERT_TRUE(monitor_->start().ok());
    ASSERT_TRUE(wait([&] { return !out_.empty(); }));  // "waiting"
    // Well past min-uptime, and still not up: the check has not passed.
    EXPECT_FALSE(wait([&] { return monitor_->status().state == State::kRunning; }, 400ms));
    EXPECT_EQ(count(EventType::kReady), 0);
    make_ready();
    ASSERT_TRUE(wait_state(State::kRunning));
    EXPECT_EQ(count(EventType::kReady), 1);
    ASSERT_TRUE(stop_and_wait());
  }
};

TEST_F(ReadinessTest, TcpCheckWaitsUntilThePortAccepts) {
  const int port = free_port();
  auto o = options({"listen-on-usr1", std::to_string(port)});
  o.ready = "tcp:" + std::to_string(port);
  expect_ready_only_after(o, [&] { ASSERT_TRUE(monitor_->signal(SIGUSR1).ok()); });
}

TEST_F(ReadinessTest, NotifyCheckWaitsForReadyOnTheNotifySocket) {
  auto o = options({"notify-on-usr1"});
  o.ready = "notify";
  expect_ready_only_after(o, [&] { ASSERT_TRUE(monitor_->signal(SIGUSR1).ok()); });
}

TEST_F(ReadinessTest, ExecCheckWaitsUntilTheCommandSucceeds) {
  const std::string flag = dir_.file("up");
  auto o = options({"listen-on-usr1", "0"});
  o.ready = "exec:test -e '" + flag + "'";
  expect_ready_only_after(o, [&] { write_file(flag, "1"); });
}

// Regression: a subreaper host (sempred, `sempre run`) reaping its orphans on
// SIGCHLD took the exit status of an `exec:` readiness check, which then
// counted as failed, so the app never became running.
TEST_F(ReadinessTest, ExecCheckPassesWhileTheHostReapsOrphans) {
  const std::string probe_pid_file = dir_.file("probe.pid");
  const std::string go = dir_.file("go");
  ASSERT_EQ(::mkfifo(go.c_str(), 0600), 0);
  auto o = options({"sleep", "forever"});
  o.min_uptime = 50ms;
  // Each check tells the host it runs, and exits 0 once the host lets it.
  o.ready = "exec:echo $$ > '" + probe_pid_file + "'; kill -USR1 $PPID; read line < '" + go + "'";
  // The host lets the check go, waits for its exit (without reaping it), and
  // reaps its orphans before the Monitor can hear of the exit.
  boost::asio::signal_set usr1(io_, SIGUSR1);
  int probes_reaped = 0;
  std::function<void(const boost::system::error_code&, int)> on_usr1 =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        const pid_t probe = std::stoi(read_file(probe_pid_file));
        write_file(go, "\n");
        siginfo_t info{};
        while (::waitid(P_PID, static_cast<id_t>(probe), &info, WEXITED | WNOWAIT) < 0 &&
               errno == EINTR) {
        }
        for (const ReapedChild& child : reap_orphans()) {
          if (child.pid == probe) ++probes_reaped;
        }
        usr1.async_wait(on_usr1);
      };
  usr1.async_wait(on_usr1);
  make(o);
  ASSERT_TRUE(monitor_->start().ok());
  EXPECT_TRUE(wait_state(State::kRunning));
  EXPECT_EQ(probes_reaped, 0);
  EXPECT_TRUE(stop_and_wait());
}

TEST(Validate, NicenessMustBeInTheKernelsRange) {
  MonitorOptions o;
  o.argv = {"x"};
  for (int nice : {-20, 0, 19}) {
    o.nice = nice;
    EXPECT_TRUE(validate(o).ok()) << nice;
  }
  for (int nice : {-21, 20}) {
    o.nice = nice;
    auto st = validate(o);
    ASSERT_FALSE(st.ok()) << nice;
    EXPECT_EQ(st.error().message, "nice must be between -20 and 19");
  }
}

TEST(Validate, DescriptorLimitMustBePositive) {
  MonitorOptions o;
  o.argv = {"x"};
  o.limit_nofile = 1;
  EXPECT_TRUE(validate(o).ok());
  o.limit_nofile = 0;
  auto st = validate(o);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "limit-nofile must be positive");
}

TEST(ReadyCheck, BadSpecIsRefusedByValidate) {
  MonitorOptions o;
  o.argv = {"x"};
  o.ready = "tcp:http";
  auto st = validate(o);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("notify, tcp:PORT or exec:CMD"), std::string::npos);
}

}  // namespace
}  // namespace sempre

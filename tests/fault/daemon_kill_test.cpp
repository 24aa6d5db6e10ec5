// Fault scenarios: the daemon's worker is killed with SIGKILL at random
// moments, in each window that once lost or duplicated an app, and the
// apps must not notice. Each kill point is counted and checked exactly:
// apps alive, pids kept, copies per app, numbered lines lost.
//
// SEMPRE_FAULT_KILLS=N repeats N kill points (default 20); SEMPRE_FAULT_SEED
// fixes the random delays (the seed used is printed); SEMPRE_FAULT_WINDOW
// (mid-restart, mid-start, mid-stop, mid-reload or idle) kills in that
// window only.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <random>
#include <thread>

#include "fault/fault_fixture.hpp"

namespace sempre::fault {
namespace {

using test::alive;
using test::read_file;
using test::Subprocess;
using test::wait_for_exit;

using DaemonKill = FaultScenario;

// One request to the `serve` child at 127.0.0.1:`port`: whether it was
// answered "200" within a second.
bool request_ok(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval limit{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET / HTTP/1.0\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[256];
      ssize_t n;
      while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
        answer.append(buffer, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  return answer.starts_with("HTTP/1.0 200");
}

// Requests the server again and again, on a thread of its own, until
// destroyed: how many were answered and how many not, and the longest time
// from one answer to the next. Paced, one request a millisecond: the
// measure is the outage, and a loop without a pause would run loopback out
// of ports (connections in TIME_WAIT) and fail for that alone.
class Hammer {
 public:
  explicit Hammer(int port)
      : thread_([this, port] {
          auto last = std::chrono::steady_clock::now();
          while (running_) {
            if (request_ok(port)) {
              ++ok_;
              const auto now = std::chrono::steady_clock::now();
              longest_ = std::max(longest_, now - last);
              last = now;
            } else {
              ++failed_;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        }) {}
  ~Hammer() { stop(); }
  void stop() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
  }
  long ok() const { return ok_; }
  long failed() const { return failed_; }
  double longest_ms() const { return std::chrono::duration<double, std::milli>(longest_).count(); }

 private:
  std::atomic<bool> running_{true};
  std::atomic<long> ok_{0};
  std::atomic<long> failed_{0};
  std::chrono::steady_clock::duration longest_{};
  std::thread thread_;
};

TEST_F(DaemonKill, AppsSurviveWorkerKillsInEveryWindow) {
  const int kills = env_number("SEMPRE_FAULT_KILLS", 20);
  const unsigned seed = static_cast<unsigned>(env_number("SEMPRE_FAULT_SEED", 0)) != 0
                            ? static_cast<unsigned>(env_number("SEMPRE_FAULT_SEED", 0))
                            : std::random_device{}();
  std::cout << "kill points: " << kills << ", SEMPRE_FAULT_SEED=" << seed << "\n";
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> delay_ms(0, 20);

  // Apps that must never notice: a numbered ticker, an idle server, and a
  // flood of output through a rotating log.
  ASSERT_EQ(start("ticker", {kChild, "tick", "1"}), 0);
  ASSERT_EQ(start("idle", {kChild, "sleep", "forever"}), 0);
  // A server that logs each request to stderr, hammered all along.
  const std::string portfile = dir_ + "/web.port";
  ASSERT_EQ(start("web", {kChild, "serve", portfile}), 0);
  ASSERT_TRUE(test::eventually([&] { return test::read_file(portfile).ends_with("\n"); }));
  Hammer hammer(std::stoi(test::read_file(portfile)));
  ASSERT_EQ(start("flood", {kChild, "tick", "0"}, {"--log-max-size", "1M", "--log-keep", "2"}), 0);
  // The apps the windows work on: one of the command line, one of a file
  // that each reload changes.
  ASSERT_EQ(start("restarted", {kChild, "sleep", "forever"}), 0);
  const std::string file = dir_ + "/apps.toml";
  auto write_apps = [&](int version) {
    test::write_file(file, "[[app]]\nname = \"reloaded\"\ncmd = [\"" + kChild +
                               "\", \"sleep\", \"forever\"]\nenv = { FAULT_APP = \"reloaded\", "
                               "VERSION = \"" +
                               std::to_string(version) + "\" }\n");
  };
  write_apps(0);
  ASSERT_EQ(sempre({"start", file}), 0);
  std::map<std::string, pid_t> steady;
  {
    auto listed = apps();
    for (const char* name : {"ticker", "idle", "web", "flood"}) {
      ASSERT_TRUE(listed.count(name)) << name;
      steady[name] = pid_of(listed[name]);
      ASSERT_GT(steady[name], 0) << name;
    }
  }

  std::vector<std::string> windows = {"mid-restart", "mid-start", "mid-stop", "mid-reload", "idle"};
  if (const char* only = std::getenv("SEMPRE_FAULT_WINDOW"); only != nullptr && *only != '\0') {
    windows = {only};
  }
  std::map<std::string, int> per_window;
  int started = 0;
  for (int k = 0; k < kills; ++k) {
    const std::string window = windows[static_cast<std::size_t>(k) % windows.size()];
    ++per_window[window];
    const std::vector<pid_t> before = workers();
    ASSERT_EQ(before.size(), 1u) << "kill " << k;

    // A command under way, and the SIGKILL while the worker serves it.
    std::unique_ptr<Subprocess> command;
    std::string fresh;
    if (window == "mid-restart") {
      command = std::make_unique<Subprocess>(
          std::vector<std::string>{kSempre, "restart", "restarted"}, env());
    } else if (window == "mid-start") {
      fresh = "fresh" + std::to_string(started++);
      command = std::make_unique<Subprocess>(
          std::vector<std::string>{kSempre, "start", "--name", fresh, "--env", "FAULT_APP=" + fresh,
                                   "--", kChild, "sleep", "forever"},
          env());
    } else if (window == "mid-stop") {
      command = std::make_unique<Subprocess>(std::vector<std::string>{kSempre, "stop", "restarted"},
                                             env());
    } else if (window == "mid-reload") {
      write_apps(k + 1);
      command =
          std::make_unique<Subprocess>(std::vector<std::string>{kSempre, "reload", file}, env());
    }
    ::usleep(static_cast<useconds_t>(delay_ms(random) * 1000));
    ASSERT_EQ(::kill(before.front(), SIGKILL), 0);
    ASSERT_TRUE(wait_for_exit(before.front())) << "kill " << k;
    if (command) command->wait(60s);  // answered, or cut off: either is allowed

    // The next worker serves, and every app is as it was.
    auto listed = apps();
    ASSERT_FALSE(listed.empty()) << "kill " << k << " (" << window << "): list failed";
    ASSERT_EQ(workers().size(), 1u) << "kill " << k;
    for (const auto& [name, pid] : steady) {
      ASSERT_TRUE(listed.count(name)) << name;
      EXPECT_EQ(pid_of(listed[name]), pid) << name << " after kill " << k << " (" << window << ")";
      EXPECT_EQ(copies(name), std::vector<pid_t>{pid}) << name << " after kill " << k;
    }
    // The app under the command runs at most once, and as listed.
    for (const std::string& name : {std::string("restarted"), std::string("reloaded"), fresh}) {
      if (name.empty()) continue;
      std::vector<pid_t> running = copies(name);
      const pid_t listed_pid = listed.count(name) ? pid_of(listed[name]) : 0;
      if (listed_pid == 0) {
        // Stopped, being restarted, or never recorded: no copy may be left
        // running once the worker has settled it.
        ASSERT_TRUE(test::eventually([&] {
          running = copies(name);
          auto again = apps();
          const pid_t now = again.count(name) ? pid_of(again[name]) : 0;
          return running.empty() || (now != 0 && running == std::vector<pid_t>{now});
        })) << name
            << " after kill " << k << " (" << window << "): " << running.size() << " copies";
      } else {
        EXPECT_EQ(running, std::vector<pid_t>{listed_pid})
            << name << " after kill " << k << " (" << window << ")";
      }
    }
    if (window == "mid-stop") {
      ASSERT_EQ(sempre({"start", "restarted"}), 0);
    }
  }

  hammer.stop();
  // Not one of the ticker's lines was lost or written twice.
  ASSERT_EQ(sempre({"stop", "ticker"}), 0);
  const Ticks ticks = count_ticks(read_file(out_log("ticker")));
  std::cout << "kills: " << kills;
  for (const auto& [window, n] : per_window) std::cout << ", " << window << " " << n;
  std::cout << "; ticker lines checked: " << ticks.checked << ", lost: " << ticks.lost
            << ", written twice: " << ticks.doubled << "; requests to the server answered "
            << hammer.ok() << ", failed " << hammer.failed() << ", longest wait for an answer "
            << hammer.longest_ms() << " ms\n";
  EXPECT_GT(ticks.checked, 100);
  EXPECT_EQ(ticks.lost, 0);
  EXPECT_EQ(ticks.doubled, 0);
  EXPECT_TRUE(alive(steady["flood"])) << "the flood never blocked for good nor died of EPIPE";
  EXPECT_GT(hammer.ok(), 0);
  EXPECT_EQ(hammer.failed(), 0) << "the server answered through every kill";
}

}  // namespace
}  // namespace sempre::fault

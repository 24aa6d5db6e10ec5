// Fault scenarios: the daemon's worker is killed with SIGKILL at random
// moments, in each window that once lost or duplicated an app, and the
// apps must not notice. Each kill point is counted and checked exactly:
// apps alive, pids kept, copies per app, numbered lines lost.
//
// SEMPRE_FAULT_KILLS=N repeats N kill points (default 20); SEMPRE_FAULT_SEED
// fixes the random delays (the seed used is printed).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "e2e/subprocess.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using test::alive;
using test::read_file;
using test::Subprocess;
using test::wait_for_exit;

const std::string kSempre = SEMPRE_BIN;
const std::string kChild = SEMPRE_TEST_CHILD;

int env_number(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

std::vector<pid_t> all_processes() {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
      pids.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return pids;
}

bool has_env(pid_t pid, const std::string& entry) {
  const std::string environ = read_file("/proc/" + std::to_string(pid) + "/environ");
  std::size_t at = 0;
  while (at < environ.size()) {
    const std::size_t end = environ.find('\0', at);
    if (environ.compare(at, end - at, entry) == 0) return true;
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return false;
}

std::string command_line(pid_t pid) {
  std::string text = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : text) {
    if (c == '\0') c = ' ';
  }
  return text;
}

class DaemonKill : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SEMPRE_HOME");
    char tmpl[] = "/tmp/sempre-fault-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    home_ = dir_ + "/home";
  }

  void TearDown() override {
    Subprocess kill({kSempre, "kill"}, env());
    kill.wait(60s);
    for (pid_t pid : all_processes()) {
      if (alive(pid) && has_env(pid, "SEMPRE_HOME=" + home_)) {
        ADD_FAILURE() << "left behind: " << pid << " " << command_line(pid);
        ::kill(pid, SIGKILL);
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::vector<std::string> env() const { return {"SEMPRE_HOME=" + home_, "NO_COLOR=1"}; }

  int sempre(const std::vector<std::string>& args, std::string* out = nullptr) {
    std::vector<std::string> argv = {kSempre};
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess p(argv, env());
    const int code = p.wait(60s).value_or(-1);
    if (out != nullptr) *out = p.out() + p.err();
    return code;
  }

  // The live processes of app `name` (started with FAULT_APP=name).
  std::vector<pid_t> copies(const std::string& name) const {
    std::vector<pid_t> found;
    for (pid_t pid : all_processes()) {
      if (alive(pid) && has_env(pid, "FAULT_APP=" + name) && has_env(pid, "SEMPRE_HOME=" + home_)) {
        found.push_back(pid);
      }
    }
    return found;
  }

  std::vector<pid_t> workers() const {
    std::vector<pid_t> found;
    for (pid_t pid : all_processes()) {
      if (alive(pid) && command_line(pid).find(" --worker --home " + home_) != std::string::npos) {
        found.push_back(pid);
      }
    }
    return found;
  }

  // name -> app object, from `sempre list --json`.
  std::map<std::string, json::object> apps() {
    std::string out;
    std::vector<std::string> argv = {kSempre, "list", "--json"};
    Subprocess p(argv, env());
    std::map<std::string, json::object> by_name;
    if (p.wait(60s).value_or(-1) != 0) return by_name;
    boost::system::error_code ec;
    const json::value parsed = json::parse(p.out(), ec);
    if (ec || !parsed.is_array()) return by_name;
    for (const json::value& app : parsed.as_array()) {
      if (app.is_object() && app.as_object().contains("name")) {
        by_name[std::string(app.as_object().at("name").as_string())] = app.as_object();
      }
    }
    return by_name;
  }

  static pid_t pid_of(const json::object& app) {
    const json::value& pid = app.at("pid");
    return pid.is_int64() ? static_cast<pid_t>(pid.as_int64()) : 0;
  }

  int start(const std::string& name, const std::vector<std::string>& command) {
    std::vector<std::string> args = {"start", "--name", name, "--env", "FAULT_APP=" + name, "--"};
    args.insert(args.end(), command.begin(), command.end());
    return sempre(args);
  }

  std::string dir_;
  std::string home_;
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
  ASSERT_EQ(sempre({"start", "--name", "flood", "--env", "FAULT_APP=flood", "--log-max-size", "1M",
                    "--log-keep", "2", "--", kChild, "tick", "0"}),
            0);
  // The app each window works on.
  ASSERT_EQ(start("restarted", {kChild, "sleep", "forever"}), 0);
  std::map<std::string, pid_t> steady;
  {
    auto listed = apps();
    for (const char* name : {"ticker", "idle", "flood"}) {
      ASSERT_TRUE(listed.count(name)) << name;
      steady[name] = pid_of(listed[name]);
      ASSERT_GT(steady[name], 0) << name;
    }
  }

  const char* const windows[] = {"mid-restart", "mid-start", "mid-stop", "idle"};
  std::map<std::string, int> per_window;
  int started = 0;
  for (int k = 0; k < kills; ++k) {
    const std::string window = windows[k % std::size(windows)];
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
    for (const std::string& name : {std::string("restarted"), fresh}) {
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

  // Not one of the ticker's lines was lost or written twice.
  ASSERT_EQ(sempre({"stop", "ticker"}), 0);
  std::istringstream log(read_file(home_ + "/logs/ticker.out.log"));
  long expected = 0;
  long lost = 0;
  long doubled = 0;
  for (std::string line; std::getline(log, line);) {
    const long n = std::stol(line);
    if (n > expected) lost += n - expected;
    if (n < expected) ++doubled;
    expected = std::max(expected, n + 1);
  }
  std::cout << "kills: " << kills;
  for (const auto& [window, n] : per_window) std::cout << ", " << window << " " << n;
  std::cout << "; ticker lines checked: " << expected << ", lost: " << lost
            << ", written twice: " << doubled << "\n";
  EXPECT_GT(expected, 100);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(doubled, 0);
  EXPECT_TRUE(alive(steady["flood"])) << "the flood never blocked for good nor died of EPIPE";
}

}  // namespace
}  // namespace sempre

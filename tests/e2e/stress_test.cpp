// The daemon under load, as users and scripts load it: many `sempre`
// commands at once, and clients that connect and vanish. Guards against the
// hang in which a stale readiness event of a closed session's socket was
// taken for a child's exit and the daemon blocked in waitpid on a live child:
// from then on every command failed with "the daemon did not answer".
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "e2e/subprocess.hpp"
#include "home.hpp"
#include "protocol.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using test::Subprocess;
using SteadyClock = std::chrono::steady_clock;

const std::string kSempre = SEMPRE_BIN;
const std::string kChild = SEMPRE_TEST_CHILD;
constexpr int kExitNoDaemon = 3;

constexpr int kRounds = 4;
constexpr int kStartsPerRound = 20;
// Far below the client's own 60 s: a daemon that keeps answering answers a
// burst of commands within a few seconds, even under a sanitizer.
constexpr milliseconds kBurstLimit = 40s;

using test::alive;

// The live processes other than this one whose environment holds `entry`.
std::vector<pid_t> processes_with_env(const std::string& entry) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& dir : fs::directory_iterator("/proc", ec)) {
    const std::string name = dir.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const auto pid = static_cast<pid_t>(std::stol(name));
    if (pid == ::getpid() || !alive(pid)) continue;
    const std::string env = test::read_file(dir.path() / "environ");
    std::size_t begin = 0;
    while (begin < env.size()) {
      std::size_t end = env.find('\0', begin);
      if (end == std::string::npos) end = env.size();
      if (env.compare(begin, end - begin, entry) == 0) {
        found.push_back(pid);
        break;
      }
      begin = end + 1;
    }
  }
  return found;
}

// Clients that the daemon must shrug off, connecting over and over on their
// own thread until stopped: one hangs up at once, one after half a request,
// one after a whole request without reading the answer. Each close lands in
// the daemon's event loop next to the sessions and children of the commands.
class ChurningClients {
 public:
  explicit ChurningClients(std::string socket_path) : path_(std::move(socket_path)) {
    thread_ = std::thread([this] { churn(); });
  }
  ~ChurningClients() { stop(); }
  ChurningClients(const ChurningClients&) = delete;
  ChurningClients& operator=(const ChurningClients&) = delete;

  // Returns how many connections reached the daemon's socket.
  int stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return connected_;
  }

 private:
  void churn() {
    const std::string request = protocol::encode(protocol::make_request(1, "ping"));
    for (unsigned i = 0; !stop_; ++i) {
      // Non-blocking, so that a full backlog or a daemon that stopped
      // reading never holds this thread.
      const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) continue;
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path, path_.c_str(), std::min(path_.size(), sizeof addr.sun_path - 1));
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
        ++connected_;
        switch (i % 3) {
          case 0:
            break;
          case 1:
            ::send(fd, request.data(), request.size() / 2, MSG_NOSIGNAL);
            break;
          case 2:
            ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
            break;
        }
      }
      ::close(fd);
    }
  }

  std::string path_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connected_{0};
};

struct Outcome {
  std::string command;
  int code = -1;  // -1: did not finish before the deadline
  std::string err;
};

// What an app should look like in `sempre list --json` after the rounds.
enum class Expect { kUp, kStopped, kGone };

class Stress : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SEMPRE_HOME");
    char tmpl[] = "/tmp/sempre-stress-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    home_ = dir_ + "/home";
    paths_ = home_paths(home_);
  }

  void TearDown() override {
    if (dir_.empty()) return;
    const pid_t daemon = daemon_pid();
    // A daemon that stopped answering would make `sempre kill` wait for
    // nothing: it is killed outright instead.
    if (!hung_) {
      Subprocess kill(argv({"kill"}), env());
      const int code = kill.wait(30s).value_or(-1);
      EXPECT_TRUE(code == 0 || code == kExitNoDaemon) << "sempre kill: " << code << kill.err();
    }
    if (daemon > 0 && (hung_ || !test::wait_for_exit(daemon))) ::kill(daemon, SIGKILL);
    for (pid_t pid : processes_with_env("SEMPRE_HOME=" + home_)) {
      if (!hung_) ADD_FAILURE() << "left behind after `sempre kill`: " << pid;
      ::kill(pid, SIGKILL);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::vector<std::string> env() const { return {"SEMPRE_HOME=" + home_, "NO_COLOR=1"}; }

  static std::vector<std::string> argv(const std::vector<std::string>& args) {
    std::vector<std::string> all = {kSempre};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }

  // Runs every command at once, the churning clients beside them, and
  // returns how each ended. A command still running at the deadline marks
  // the daemon hung.
  std::vector<Outcome> burst(const std::vector<std::vector<std::string>>& commands) {
    ChurningClients churn(paths_.socket);
    std::vector<std::unique_ptr<Subprocess>> running;
    for (const auto& args : commands)
      running.push_back(std::make_unique<Subprocess>(argv(args), env()));
    const auto deadline = SteadyClock::now() + kBurstLimit;
    std::vector<Outcome> outcomes;
    for (std::size_t i = 0; i < running.size(); ++i) {
      Outcome o;
      for (const auto& word : commands[i]) o.command += (o.command.empty() ? "" : " ") + word;
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      o.code = running[i]->wait(std::max(left, milliseconds(1))).value_or(-1);
      o.err = running[i]->err();
      if (o.code == -1) hung_ = true;
      outcomes.push_back(std::move(o));
    }
    EXPECT_GT(churn.stop(), 0) << "no churning client ever reached the daemon";
    return outcomes;
  }

  std::optional<json::array> list() {
    Subprocess p(argv({"list", "--json"}), env());
    const int code = p.wait(kBurstLimit).value_or(-1);
    if (code == -1) hung_ = true;
    boost::system::error_code ec;
    json::value v = json::parse(p.out(), ec);
    if (code != 0 || ec || !v.is_array()) {
      last_list_error_ = "exit " + std::to_string(code) + ": " + p.err();
      return std::nullopt;
    }
    return v.as_array();
  }

  // The pid in the daemon's lock file, when that process is alive; else 0.
  pid_t daemon_pid() const {
    const std::string content = test::read_file(paths_.lock);
    if (content.empty() || !std::isdigit(static_cast<unsigned char>(content[0]))) return 0;
    const auto pid = static_cast<pid_t>(std::stol(content));
    return alive(pid) ? pid : 0;
  }

  std::string dir_;
  std::string home_;
  HomePaths paths_;
  bool hung_ = false;
  std::string last_list_error_;
};

std::string describe(const std::vector<Outcome>& failed) {
  std::string text;
  for (const auto& o : failed) {
    text += "\n  sempre " + o.command + ": " +
            (o.code == -1 ? "no answer" : "exit " + std::to_string(o.code)) + " " + o.err;
  }
  return text;
}

TEST_F(Stress, DaemonKeepsAnsweringParallelCommandsAmidClientsThatVanish) {
  // Rounds of 20 parallel starts, with stops, restarts and deletes of the
  // round before and clients that hang up: every command is answered, the
  // same daemon serves throughout and lists every app as it should be.
  Subprocess daemon_start(argv({"daemon", "start"}), env());
  ASSERT_EQ(daemon_start.wait(kBurstLimit), 0) << daemon_start.err();
  const pid_t daemon = daemon_pid();
  ASSERT_GT(daemon, 0);

  std::map<std::string, Expect> expected;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::vector<std::string>> commands;
    for (int i = 0; i < kStartsPerRound; ++i) {
      const std::string name = "r" + std::to_string(round) + "-" + std::to_string(i);
      commands.push_back({"start", "-n", name, "--", kChild, "sleep", "forever"});
      expected[name] = Expect::kUp;
    }
    if (round > 0) {
      for (int i = 0; i < kStartsPerRound; ++i) {
        const std::string name = "r" + std::to_string(round - 1) + "-" + std::to_string(i);
        switch (i % 4) {
          case 0:
            commands.push_back({"stop", name});
            expected[name] = Expect::kStopped;
            break;
          case 1:
            commands.push_back({"restart", name});
            break;
          case 2:
            commands.push_back({"delete", name});
            expected[name] = Expect::kGone;
            break;
          default:
            break;  // left alone
        }
      }
    }
    const std::vector<Outcome> outcomes = burst(commands);
    std::vector<Outcome> failed;
    std::copy_if(outcomes.begin(), outcomes.end(), std::back_inserter(failed),
                 [](const Outcome& o) { return o.code != 0; });
    ASSERT_TRUE(failed.empty()) << "round " << round << ", " << failed.size() << " of "
                                << outcomes.size() << " commands failed:" << describe(failed);
    ASSERT_EQ(daemon_pid(), daemon) << "round " << round;
  }

  // The states settle (a restarted app passes through stopping): asked
  // again until they match or the deadline passes.
  std::string mismatch;
  const auto deadline = SteadyClock::now() + 20s;
  do {
    const auto apps = list();
    ASSERT_TRUE(apps) << "sempre list --json: " << last_list_error_;
    std::map<std::string, json::object> listed;
    for (const auto& app : *apps) {
      if (const auto* o = app.if_object();
          o && o->contains("name") && (*o).at("name").is_string()) {
        listed[std::string(o->at("name").as_string())] = *o;
      }
    }
    mismatch.clear();
    for (const auto& [name, want] : expected) {
      const auto found = listed.find(name);
      if (want == Expect::kGone) {
        if (found != listed.end()) mismatch += "\n  " + name + " is still listed";
        continue;
      }
      if (found == listed.end()) {
        mismatch += "\n  " + name + " is not listed";
        continue;
      }
      const json::object& app = found->second;
      const std::string status = app.contains("status") && app.at("status").is_string()
                                     ? std::string(app.at("status").as_string())
                                     : "";
      const pid_t pid = app.contains("pid") && app.at("pid").is_int64()
                            ? static_cast<pid_t>(app.at("pid").as_int64())
                            : 0;
      const bool ok = want == Expect::kStopped
                          ? status == "stopped"
                          : (status == "running" || status == "starting") && alive(pid);
      if (!ok) mismatch += "\n  " + name + ": " + json::serialize(app);
    }
  } while (!mismatch.empty() && SteadyClock::now() < deadline);
  EXPECT_TRUE(mismatch.empty()) << "apps not as expected:" << mismatch;
  EXPECT_EQ(daemon_pid(), daemon);
}

}  // namespace
}  // namespace sempre

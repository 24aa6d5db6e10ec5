// `sempre` and `sempred` as a user runs them: the real binaries, a private
// SEMPRE_HOME per test, real children. Every wait has a deadline and waits on
// something: a process's end (pidfd), a file (inotify), a command's output, or
// the state the daemon reports, asked again with `sempre list --json` until it
// holds.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "e2e/raw_client.hpp"
#include "e2e/subprocess.hpp"
#include "home.hpp"
#include "protocol.hpp"
#include "sempre/proc_stats.hpp"
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
const std::string kSempred = SEMPRED_BIN;
const std::string kChild = SEMPRE_TEST_CHILD;
constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;
// Exit statuses of a child forked by the test that never became what it should.
constexpr int kCannotDropPrivileges = 98;
constexpr int kCannotExec = 99;

// Every command of `sempre`, from its command table.
const std::vector<std::string> kCommands = [] {
  std::vector<std::string> names;
  for (const cli::Command& command : cli::commands()) names.push_back(command.name);
  return names;
}();

// --- processes ---------------------------------------------------------------

std::string proc_file(pid_t pid, const std::string& name) {
  return test::read_file("/proc/" + std::to_string(pid) + "/" + name);
}

std::vector<std::string> split_nul(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = text.find('\0', begin);
    parts.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return parts;
}

std::string command_line(pid_t pid) {
  std::string line;
  for (const auto& arg : split_nul(proc_file(pid, "cmdline")))
    line += (line.empty() ? "" : " ") + arg;
  return line;
}

using test::alive;
using test::wait_for_exit;

std::vector<pid_t> all_processes() {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() &&
        std::all_of(name.begin(), name.end(), [](char c) { return std::isdigit(c); })) {
      pids.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return pids;
}

bool has_env(pid_t pid, const std::string& entry) {
  const auto env = split_nul(proc_file(pid, "environ"));
  return std::find(env.begin(), env.end(), entry) != env.end();
}

// The live processes whose environment holds `entry` ("K=V"). A zombie has no
// environment left, so it never matches.
std::vector<pid_t> processes_with_env(const std::string& entry) {
  std::vector<pid_t> found;
  for (pid_t pid : all_processes()) {
    if (pid != ::getpid() && has_env(pid, entry) && alive(pid)) found.push_back(pid);
  }
  return found;
}

// The live sempred processes serving `home`, whether it reached them by the
// environment or by --home: the daemons (keepers, or daemons run with
// --no-keeper), or with `workers`, the keepers' workers.
std::vector<pid_t> daemons_of(const std::string& home, bool workers = false) {
  std::error_code ec;
  const std::string binary = fs::canonical(kSempred, ec).string();
  std::vector<pid_t> found;
  for (pid_t pid : all_processes()) {
    std::string exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
    if (ec) continue;
    if (const auto deleted = exe.find(" (deleted)"); deleted != std::string::npos)
      exe.erase(deleted);
    if (exe != binary || !alive(pid)) continue;
    if ((command_line(pid).find(" --worker") != std::string::npos) != workers) continue;
    if (command_line(pid).find(home) != std::string::npos || has_env(pid, "SEMPRE_HOME=" + home)) {
      found.push_back(pid);
    }
  }
  return found;
}

std::string describe_processes(const std::vector<pid_t>& pids) {
  std::string text;
  for (pid_t pid : pids) text += "\n  " + std::to_string(pid) + ": " + command_line(pid);
  return text;
}

// --- files ---------------------------------------------------------------

using Content = std::function<bool(const std::string&)>;

Content holds(const std::string& text) {
  return [text](const std::string& content) { return content.find(text) != std::string::npos; };
}

// Waits until the file at `path` exists and its content satisfies `done`,
// woken by inotify on its directory (which must exist).
bool wait_for_file(const fs::path& path, const Content& done, milliseconds limit = 15s) {
  const auto satisfied = [&] { return fs::exists(path) && done(test::read_file(path)); };
  const int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0 || ::inotify_add_watch(fd, path.parent_path().c_str(),
                                    IN_CREATE | IN_MODIFY | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    ADD_FAILURE() << "cannot watch " << path.parent_path() << ": " << std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return satisfied();
  }
  const auto deadline = SteadyClock::now() + limit;
  bool ok = false;
  while (!(ok = satisfied())) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
    char events[4096];
    while (::read(fd, events, sizeof events) > 0) {
    }
  }
  ::close(fd);
  return ok;
}

// The "line-N" words of `text`, in order.
std::vector<std::string> numbered_lines(const std::string& text, const std::string& prefix) {
  std::vector<std::string> found;
  const std::regex word(prefix + R"(\d+)");
  for (const auto& line : test::split_lines(text)) {
    std::smatch m;
    if (std::regex_search(line, m, word)) found.push_back(m.str());
  }
  return found;
}

// --- JSON ---------------------------------------------------------------

json::value field(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v ? *v : json::value(nullptr);
}

// A number field, or -1 when it is missing, null or not a whole number.
std::int64_t number(const json::object& object, std::string_view key) {
  const json::value v = field(object, key);
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64()) return static_cast<std::int64_t>(v.as_uint64());
  return -1;
}

std::string text(const json::object& object, std::string_view key) {
  const json::value v = field(object, key);
  return v.is_string() ? std::string(v.as_string()) : std::string();
}

pid_t pid_of(const json::object& app) { return static_cast<pid_t>(number(app, "pid")); }

using AppCheck = std::function<bool(const json::object&)>;

bool has_pid(const json::object& app) { return pid_of(app) > 0; }

AppCheck status_is(const std::string& status) {
  return [status](const json::object& app) { return text(app, "status") == status; };
}

AppCheck runs_under_another_pid(pid_t old) {
  return [old](const json::object& app) { return has_pid(app) && pid_of(app) != old; };
}

std::optional<json::value> parse_json(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return std::nullopt;
  return v;
}

bool mentions_permission(std::string message) {
  std::transform(message.begin(), message.end(), message.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* word : {"permission", "owned", "denied", "refus", "not allowed"}) {
    if (message.find(word) != std::string::npos) return true;
  }
  return false;
}

// --- the control socket, spoken by hand ------------------------------------

using test::RawClient;

// --- commands ---------------------------------------------------------------

struct Outcome {
  int code = -1;  // -1: did not finish before the deadline
  std::string out;
  std::string err;
};

std::string describe(const Outcome& o) {
  return "exit " + std::to_string(o.code) + "\nstdout: " + o.out + "\nstderr: " + o.err;
}

// Runs `body` in a forked child that has become nobody (uid and gid 65534, no
// supplementary groups); its return value is the child's exit status. The
// child's stdout and stderr are collected together in `err`.
Outcome as_nobody(const std::function<int()>& body, milliseconds limit = 30s) {
  Outcome outcome;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return outcome;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::dup2(pipe_fds[1], STDERR_FILENO);
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNogroup) != 0 || ::setuid(kNobody) != 0) {
      ::_exit(kCannotDropPrivileges);
    }
    ::_exit(body());
  }
  ::close(pipe_fds[1]);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    return outcome;
  }
  const auto deadline = SteadyClock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
    pollfd p{pipe_fds[0], POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    const ssize_t got = ::read(pipe_fds[0], buf, sizeof buf);
    if (got <= 0) break;
    outcome.err.append(buf, static_cast<std::size_t>(got));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  if (!wait_for_exit(
          pid, std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()) + 1s)) {
    ::kill(pid, SIGKILL);
  }
  if (::waitpid(pid, &status, 0) == pid) {
    outcome.code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  }
  return outcome;
}

// An app started by `sempre start`, with the id and pid it printed.
struct Started {
  Outcome outcome;
  std::int64_t id = -1;
  pid_t pid = -1;
};

// What `await_app` saw last.
struct Awaited {
  bool ok = false;
  json::object app;
  std::string last_seen;
};

// --- the fixture ------------------------------------------------------------

// Each test gets its own SEMPRE_HOME (short, for the socket path) and ends
// with `sempre kill`: no daemon, app or grandchild may be left behind.
class SempreDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SEMPRE_HOME");  // the children get ours, and only ours
    char tmpl[] = "/tmp/sempre-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    home_ = dir_ + "/home";
    paths_ = home_paths(home_);
  }

  void TearDown() override {
    if (dir_.empty()) return;
    const pid_t daemon = daemon_pid();
    const Outcome kill = sempre({"kill"});
    EXPECT_TRUE(kill.code == 0 || kill.code == 3) << describe(kill);
    if (daemon > 0 && !wait_for_exit(daemon)) {
      ADD_FAILURE() << "the daemon " << daemon << " outlived `sempre kill`";
      ::kill(daemon, SIGKILL);
    }
    const auto left = processes_with_env("SEMPRE_HOME=" + home_);
    EXPECT_TRUE(left.empty()) << "left behind after `sempre kill`:" << describe_processes(left);
    for (pid_t pid : left) ::kill(pid, SIGKILL);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::vector<std::string> env() const { return {"SEMPRE_HOME=" + home_, "NO_COLOR=1"}; }

  Outcome sempre(const std::vector<std::string>& args,
                 const std::vector<std::string>& extra_env = {}, milliseconds limit = 30s) {
    std::vector<std::string> argv = {kSempre};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> environment = env();
    environment.insert(environment.end(), extra_env.begin(), extra_env.end());
    Subprocess p(argv, environment);
    Outcome outcome;
    outcome.code = p.wait(limit).value_or(-1);
    outcome.out = p.out();
    outcome.err = p.err();
    return outcome;
  }

  Started start(const std::vector<std::string>& args,
                const std::vector<std::string>& extra_env = {}) {
    std::vector<std::string> argv = {"start"};
    argv.insert(argv.end(), args.begin(), args.end());
    Started started;
    started.outcome = sempre(argv, extra_env);
    std::smatch m;
    if (std::regex_search(started.outcome.out, m, std::regex(R"(\bid (\d+))"))) {
      started.id = std::stoll(m[1]);
    }
    if (std::regex_search(started.outcome.out, m, std::regex(R"(\bpid (\d+))"))) {
      started.pid = static_cast<pid_t>(std::stol(m[1]));
    }
    return started;
  }

  // `sempre list --json`, or nullopt (the reason in last_list_error_) when it
  // failed or did not print a JSON array.
  std::optional<json::array> list() {
    const Outcome o = sempre({"list", "--json"});
    const auto parsed = parse_json(o.out);
    if (o.code != 0 || !parsed || !parsed->is_array()) {
      last_list_error_ = describe(o);
      return std::nullopt;
    }
    return parsed->as_array();
  }

  std::optional<json::object> find(const std::string& name) {
    const auto apps = list();
    if (!apps) {
      ADD_FAILURE() << "sempre list --json failed: " << last_list_error_;
      return std::nullopt;
    }
    for (const auto& app : *apps) {
      if (app.is_object() && text(app.as_object(), "name") == name) return app.as_object();
    }
    return std::nullopt;
  }

  // Asks `sempre list --json` until the app named `name` satisfies `done`.
  Awaited await_app(const std::string& name, const AppCheck& done, milliseconds limit = 15s) {
    Awaited result;
    const auto deadline = SteadyClock::now() + limit;
    do {
      const auto apps = list();
      result.last_seen =
          apps ? name + " is not listed: " + json::serialize(*apps) : last_list_error_;
      for (const auto& app : apps ? *apps : json::array{}) {
        if (!app.is_object() || text(app.as_object(), "name") != name) continue;
        result.app = app.as_object();
        result.last_seen = json::serialize(app);
        if (done(result.app)) {
          result.ok = true;
          return result;
        }
      }
    } while (SteadyClock::now() < deadline);
    return result;
  }

  // The pid in the daemon's lock file, when that process is alive; else 0.
  pid_t daemon_pid() const {
    const std::string content = test::read_file(paths_.lock);
    if (content.empty() || !std::isdigit(static_cast<unsigned char>(content[0]))) return 0;
    const auto pid = static_cast<pid_t>(std::stol(content));
    return alive(pid) ? pid : 0;
  }

  std::string out_log(const std::string& name) const {
    return home_ + "/logs/" + name + ".out.log";
  }

  // A daemon run from a copy of sempred at `installed`, as a package puts
  // it, so that a test can install another file there.
  void start_installed_daemon(const std::string& installed) {
    fs::create_directories(fs::path(installed).parent_path());
    fs::copy_file(kSempred, installed);
    Subprocess daemon({installed, "--home", home_}, env());
    ASSERT_EQ(daemon.wait(), 0) << daemon.err();
  }

  std::string dir_;
  std::string home_;
  HomePaths paths_;
  std::string last_list_error_;
};

std::vector<std::string> sleeper(const std::string& name) {
  return {"-n", name, "--", kChild, "sleep", "forever"};
}

// --- starting and listing ------------------------------------------------------

TEST_F(SempreDaemon, StartPrintsTheAppAndListJsonHoldsEveryDocumentedField) {
  // `start` prints the name, id and pid; `list --json` shows every field sempre(1) documents.
  const Started web = start(sleeper("web"));
  ASSERT_EQ(web.outcome.code, 0) << describe(web.outcome);
  EXPECT_NE(web.outcome.out.find("web"), std::string::npos) << web.outcome.out;
  ASSERT_GE(web.id, 0) << web.outcome.out;
  ASSERT_GT(web.pid, 0) << web.outcome.out;
  EXPECT_TRUE(alive(web.pid));

  const auto apps = list();
  ASSERT_TRUE(apps) << last_list_error_;
  ASSERT_EQ(apps->size(), 1u) << json::serialize(*apps);
  ASSERT_TRUE((*apps)[0].is_object());
  const json::object& app = (*apps)[0].as_object();
  EXPECT_EQ(number(app, "id"), web.id);
  EXPECT_EQ(text(app, "name"), "web");
  EXPECT_EQ(pid_of(app), web.pid);
  EXPECT_TRUE(text(app, "status") == "starting" || text(app, "status") == "running") << app;
  EXPECT_EQ(text(app, "wanted"), "up");
  EXPECT_EQ(number(app, "restarts"), 0);
  for (const char* key : {"uptime_ms", "cpu", "rss_bytes"}) {
    EXPECT_TRUE(field(app, key).is_number()) << key << " in " << app;
  }
  EXPECT_EQ(field(app, "cmd"), json::value(json::array{kChild, "sleep", "forever"}));
  EXPECT_EQ(text(app, "cwd"), fs::current_path().string());
  EXPECT_EQ(text(app, "out_log"), home_ + "/logs/web.out.log");
  EXPECT_EQ(text(app, "err_log"), home_ + "/logs/web.err.log");
  EXPECT_TRUE(app.contains("last_exit") && field(app, "last_exit").is_null()) << app;
  EXPECT_TRUE(field(app, "last_error").is_string()) << app;

  const Outcome table = sempre({"list"});
  EXPECT_EQ(table.code, 0) << describe(table);
  EXPECT_NE(table.out.find("web"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(std::to_string(web.pid)), std::string::npos) << table.out;
}

TEST_F(SempreDaemon, RefusesANameThatIsTaken) {
  // A second app of the same name is refused with exit 1, and the first keeps running.
  const Started first = start(sleeper("web"));
  ASSERT_EQ(first.outcome.code, 0) << describe(first.outcome);
  const Outcome second = sempre({"start", "-n", "web", "--", kChild, "sleep", "forever"});
  EXPECT_EQ(second.code, 1) << describe(second);
  EXPECT_EQ(second.err.rfind("sempre: ", 0), 0u) << second.err;
  EXPECT_NE(second.err.find("web"), std::string::npos) << second.err;
  EXPECT_TRUE(second.err.find("taken") != std::string::npos ||
              second.err.find("already") != std::string::npos ||
              second.err.find("exists") != std::string::npos)
      << second.err;
  const auto apps = list();
  ASSERT_TRUE(apps) << last_list_error_;
  EXPECT_EQ(apps->size(), 1u) << json::serialize(*apps);
  EXPECT_TRUE(alive(first.pid));
}

TEST_F(SempreDaemon, StartReportsAProgramThatCannotBeExecuted) {
  // A spawn failure makes `start` exit 1 with the operating system's error.
  const Outcome missing = sempre({"start", "-n", "ghost", "--", "/nonexistent/program"});
  EXPECT_EQ(missing.code, 1) << describe(missing);
  EXPECT_EQ(missing.err.rfind("sempre: ", 0), 0u) << missing.err;
  EXPECT_NE(missing.err.find("No such file or directory"), std::string::npos) << missing.err;

  const std::string tool = dir_ + "/tool";  // no extension: no interpreter to fall back on
  test::write_file(tool, "#!/bin/sh\necho hi\n");
  fs::permissions(tool, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  const Outcome denied = sempre({"start", "-n", "tool", "--", tool});
  EXPECT_EQ(denied.code, 1) << describe(denied);
  EXPECT_NE(denied.err.find("Permission denied"), std::string::npos) << denied.err;
}

TEST_F(SempreDaemon, UnknownTargetFailsWithExit1) {
  // Every command given a target that names no app exits 1 and leaves the other apps alone.
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  const std::vector<std::vector<std::string>> requests = {
      {"stop", "nosuch"}, {"restart", "nosuch"},       {"delete", "nosuch"},
      {"info", "nosuch"}, {"signal", "HUP", "nosuch"}, {"stop", "424242"}};
  for (const auto& request : requests) {
    const Outcome o = sempre(request);
    EXPECT_EQ(o.code, 1) << request[0] << ": " << describe(o);
    EXPECT_EQ(o.err.rfind("sempre: ", 0), 0u) << request[0] << ": " << o.err;
  }
  const Outcome stop = sempre({"stop", "nosuch"});
  EXPECT_NE(stop.err.find("nosuch"), std::string::npos) << stop.err;
  const auto still = find("web");
  ASSERT_TRUE(still);
  EXPECT_EQ(pid_of(*still), web.pid);
}

// --- targets ---------------------------------------------------------------

TEST_F(SempreDaemon, StopsRestartsAndDeletesAnAppByName) {
  // stop keeps the app listed, stopped, its process gone; restart runs it anew; delete forgets it.
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);

  const Outcome stop = sempre({"stop", "web"});
  EXPECT_EQ(stop.code, 0) << describe(stop);
  EXPECT_FALSE(alive(web.pid));
  const auto stopped = find("web");
  ASSERT_TRUE(stopped) << "a stopped app stays listed";
  EXPECT_EQ(text(*stopped, "status"), "stopped") << *stopped;
  EXPECT_TRUE(field(*stopped, "pid").is_null()) << *stopped;
  EXPECT_EQ(text(*stopped, "wanted"), "down") << *stopped;

  const Outcome restart = sempre({"restart", "web"});
  EXPECT_EQ(restart.code, 0) << describe(restart);
  const Awaited again = await_app("web", runs_under_another_pid(web.pid));
  ASSERT_TRUE(again.ok) << again.last_seen;
  EXPECT_TRUE(alive(pid_of(again.app)));
  EXPECT_EQ(text(again.app, "wanted"), "up");

  const Outcome del = sempre({"delete", "web"});
  EXPECT_EQ(del.code, 0) << describe(del);
  EXPECT_FALSE(alive(pid_of(again.app)));
  const auto apps = list();
  ASSERT_TRUE(apps) << last_list_error_;
  EXPECT_TRUE(apps->empty()) << json::serialize(*apps);
}

TEST_F(SempreDaemon, StopsRestartsAndDeletesAnAppById) {
  // An app's id names it to stop, restart and delete; the other app is left alone.
  const Started a = start(sleeper("a"));
  const Started b = start(sleeper("b"));
  ASSERT_GE(a.id, 0) << describe(a.outcome);
  ASSERT_GT(b.pid, 0) << describe(b.outcome);
  const std::string id = std::to_string(a.id);

  const Outcome stop = sempre({"stop", id});
  EXPECT_EQ(stop.code, 0) << describe(stop);
  EXPECT_FALSE(alive(a.pid));
  const auto stopped = find("a");
  ASSERT_TRUE(stopped);
  EXPECT_EQ(text(*stopped, "status"), "stopped") << *stopped;

  const Outcome restart = sempre({"restart", id});
  EXPECT_EQ(restart.code, 0) << describe(restart);
  const Awaited again = await_app("a", runs_under_another_pid(a.pid));
  ASSERT_TRUE(again.ok) << again.last_seen;

  const Outcome del = sempre({"delete", id});
  EXPECT_EQ(del.code, 0) << describe(del);
  EXPECT_FALSE(find("a"));
  EXPECT_FALSE(alive(pid_of(again.app)));

  const auto bystander = find("b");
  ASSERT_TRUE(bystander);
  EXPECT_EQ(pid_of(*bystander), b.pid);
  EXPECT_EQ(number(*bystander, "restarts"), 0);
}

TEST_F(SempreDaemon, StopsRestartsAndDeletesAnAppByPid) {
  // The pid of an app's running process names the app.
  const Started a = start(sleeper("a"));
  const Started b = start(sleeper("b"));
  ASSERT_GT(a.pid, 0) << describe(a.outcome);
  ASSERT_GT(b.pid, 0) << describe(b.outcome);

  const Outcome restart = sempre({"restart", std::to_string(a.pid)});
  EXPECT_EQ(restart.code, 0) << describe(restart);
  const Awaited again = await_app("a", runs_under_another_pid(a.pid));
  ASSERT_TRUE(again.ok) << again.last_seen;
  EXPECT_FALSE(alive(a.pid));

  const Outcome stop = sempre({"stop", std::to_string(b.pid)});
  EXPECT_EQ(stop.code, 0) << describe(stop);
  EXPECT_FALSE(alive(b.pid));
  const auto b_stopped = find("b");
  ASSERT_TRUE(b_stopped);
  EXPECT_EQ(text(*b_stopped, "status"), "stopped") << *b_stopped;

  const pid_t a_now = pid_of(again.app);
  const Outcome del = sempre({"delete", std::to_string(a_now)});
  EXPECT_EQ(del.code, 0) << describe(del);
  EXPECT_FALSE(alive(a_now));
  EXPECT_FALSE(find("a"));
  EXPECT_TRUE(find("b"));
}

TEST_F(SempreDaemon, AllTargetsEveryApp) {
  // `all` stops, restarts and deletes every app.
  const Started a = start(sleeper("a"));
  const Started b = start(sleeper("b"));
  ASSERT_GT(a.pid, 0) << describe(a.outcome);
  ASSERT_GT(b.pid, 0) << describe(b.outcome);

  const Outcome stop = sempre({"stop", "all"});
  EXPECT_EQ(stop.code, 0) << describe(stop);
  EXPECT_FALSE(alive(a.pid));
  EXPECT_FALSE(alive(b.pid));
  for (const char* name : {"a", "b"}) {
    const auto app = find(name);
    ASSERT_TRUE(app) << name;
    EXPECT_EQ(text(*app, "status"), "stopped") << *app;
  }

  const Outcome restart = sempre({"restart", "all"});
  EXPECT_EQ(restart.code, 0) << describe(restart);
  const Awaited a_again = await_app("a", has_pid);
  const Awaited b_again = await_app("b", has_pid);
  ASSERT_TRUE(a_again.ok) << a_again.last_seen;
  ASSERT_TRUE(b_again.ok) << b_again.last_seen;

  const Outcome del = sempre({"delete", "all"});
  EXPECT_EQ(del.code, 0) << describe(del);
  EXPECT_FALSE(alive(pid_of(a_again.app)));
  EXPECT_FALSE(alive(pid_of(b_again.app)));
  const auto apps = list();
  ASSERT_TRUE(apps) << last_list_error_;
  EXPECT_TRUE(apps->empty()) << json::serialize(*apps);
}

TEST_F(SempreDaemon, StopallAndRestartallActOnEveryApp) {
  // forever's stopall and restartall are `stop all` and `restart all`.
  const Started a = start(sleeper("a"));
  const Started b = start(sleeper("b"));
  ASSERT_GT(a.pid, 0) << describe(a.outcome);
  ASSERT_GT(b.pid, 0) << describe(b.outcome);

  const Outcome restart = sempre({"restartall"});
  EXPECT_EQ(restart.code, 0) << describe(restart);
  const Awaited a_again = await_app("a", runs_under_another_pid(a.pid));
  const Awaited b_again = await_app("b", runs_under_another_pid(b.pid));
  ASSERT_TRUE(a_again.ok) << a_again.last_seen;
  ASSERT_TRUE(b_again.ok) << b_again.last_seen;

  const Outcome stop = sempre({"stopall"});
  EXPECT_EQ(stop.code, 0) << describe(stop);
  EXPECT_FALSE(alive(pid_of(a_again.app)));
  EXPECT_FALSE(alive(pid_of(b_again.app)));
  for (const char* name : {"a", "b"}) {
    const auto app = find(name);
    ASSERT_TRUE(app) << name;
    EXPECT_EQ(text(*app, "status"), "stopped") << *app;
  }
}

// --- supervision ---------------------------------------------------------------

TEST_F(SempreDaemon, RestartsAKilledChild) {
  // A child killed with SIGKILL is started again: new pid, one restart, last exit signal KILL.
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  ASSERT_EQ(::kill(web.pid, SIGKILL), 0);
  const Awaited back = await_app("web", runs_under_another_pid(web.pid));
  ASSERT_TRUE(back.ok) << back.last_seen;
  EXPECT_TRUE(alive(pid_of(back.app)));
  EXPECT_EQ(number(back.app, "restarts"), 1) << back.app;
  EXPECT_EQ(field(back.app, "last_exit"), json::value(json::object{{"signal", "KILL"}}))
      << back.app;
}

TEST_F(SempreDaemon, CrashLoopEndsFailedAfterMaxRestarts) {
  // An app that keeps exiting at once is restarted max-restarts times, then is failed.
  const Outcome start =
      sempre({"start", "-n", "crasher", "--max-restarts", "2", "--", kChild, "exit", "1"});
  EXPECT_EQ(start.code, 0) << describe(start);
  const Awaited failed = await_app("crasher", status_is("failed"), 20s);
  ASSERT_TRUE(failed.ok) << failed.last_seen;
  EXPECT_EQ(number(failed.app, "restarts"), 2) << failed.app;
  EXPECT_TRUE(field(failed.app, "pid").is_null()) << failed.app;
  EXPECT_EQ(field(failed.app, "last_exit"), json::value(json::object{{"code", 1}})) << failed.app;
  EXPECT_FALSE(text(failed.app, "last_error").empty()) << failed.app;
}

TEST_F(SempreDaemon, StopKillsTheAppsGrandchildren) {
  // When `stop` returns, a grandchild that ignores SIGTERM is dead too.
  const std::string pidfile = dir_ + "/grandchild.pid";
  const Started tree =
      start({"-n", "tree", "--kill-timeout", "500ms", "--", kChild, "grandchild", pidfile});
  ASSERT_GT(tree.pid, 0) << describe(tree.outcome);
  ASSERT_TRUE(wait_for_file(pidfile, holds("\n")));
  const auto grandchild = static_cast<pid_t>(std::stol(test::read_file(pidfile)));
  ASSERT_TRUE(alive(grandchild));

  const Outcome stop = sempre({"stop", "tree"});
  EXPECT_EQ(stop.code, 0) << describe(stop);
  EXPECT_FALSE(alive(tree.pid));
  EXPECT_FALSE(alive(grandchild)) << "grandchild " << grandchild << " outlived `sempre stop`";
}

// Whether this machine lets the daemon give each app a cgroup: it makes
// them under its own cgroup v2, as the tests do here.
bool cgroups_available() {
  Result<std::string> probe = make_cgroup_parent("sempre-e2e-probe-" + std::to_string(::getpid()));
  if (!probe) return false;
  ::rmdir(probe->c_str());
  return true;
}

// A program that forks twice and calls setsid leaves its group and its
// session; `stop` still ends it, and `list`/`info` say how the app is held:
// in a cgroup of its own where the daemon can make one (with `cgroups` on),
// by its process tree otherwise. A daemon restart keeps that hold.
class SempreContainment : public SempreDaemon {
 protected:
  // config.toml's [daemon] cgroups = false, then a daemon that read it: its
  // own environment is not the tagged one the apps get.
  void start_daemon(bool cgroups) {
    fs::create_directories(home_);
    fs::permissions(home_, fs::perms::owner_all, fs::perm_options::replace);
    if (!cgroups) test::write_file(home_ + "/config.toml", "[daemon]\ncgroups = false\n");
    ASSERT_TRUE(list()) << last_list_error_;
  }

  void check_escapee_is_stopped(bool cgroups) {
    start_daemon(cgroups);
    const bool in_cgroup = cgroups && cgroups_available();
    const std::string pidfile = dir_ + "/escapee.pid";
    const std::string tag = "ESCAPE_TAG=" + dir_;
    const Started app = start(
        {"-n", "esc", "--kill-timeout", "500ms", "--", kChild, "escape", pidfile, "stay"}, {tag});
    ASSERT_GT(app.pid, 0) << describe(app.outcome);
    ASSERT_TRUE(wait_for_file(pidfile, holds("\n")));
    const auto escapee = static_cast<pid_t>(std::stol(test::read_file(pidfile)));
    ASSERT_TRUE(alive(escapee));

    auto check_hold = [&] {
      const auto listed = find("esc");
      ASSERT_TRUE(listed);
      if (in_cgroup) {
        EXPECT_EQ(text(*listed, "containment"), "cgroup") << *listed;
        const std::string cgroup = text(*listed, "cgroup");
        EXPECT_TRUE(cgroup.ends_with("/" + std::to_string(app.pid))) << cgroup;
        EXPECT_EQ(cgroup_of(escapee), cgroup);
      } else {
        EXPECT_EQ(text(*listed, "containment"), "process-tree") << *listed;
        EXPECT_FALSE(listed->contains("cgroup")) << *listed;
      }
      const Outcome info = sempre({"info", "esc"});
      EXPECT_TRUE(std::regex_search(
          info.out,
          std::regex(in_cgroup ? "\n  contained +cgroup /" : "\n  contained +process tree")))
          << info.out;
    };
    check_hold();
    ASSERT_EQ(sempre({"daemon", "restart"}).code, 0);
    ASSERT_TRUE(await_app("esc", [&](const json::object& a) { return pid_of(a) == app.pid; }).ok);
    check_hold();

    const Outcome stop = sempre({"stop", "esc"});
    EXPECT_EQ(stop.code, 0) << describe(stop);
    EXPECT_FALSE(alive(app.pid));
    EXPECT_FALSE(alive(escapee)) << "escapee " << escapee << " outlived `sempre stop`";
    EXPECT_TRUE(processes_with_env(tag).empty()) << describe_processes(processes_with_env(tag));
  }
};

TEST_F(SempreContainment, StopEndsADoubleForkedSetsidEscapeeInTheAppsCgroup) {
  check_escapee_is_stopped(true);
}

TEST_F(SempreContainment, StopEndsADoubleForkedSetsidEscapeeWithoutCgroups) {
  check_escapee_is_stopped(false);
}

// A server that daemonizes (its first process exits once the real one is
// forked off) no longer piles up copies: each restart ends the one before,
// and delete ends the last.
TEST_F(SempreContainment, DaemonizingAppLeavesNoCopiesAcrossRestarts) {
  start_daemon(false);
  const std::string pidfile = dir_ + "/escapee.pid";
  const std::string tag = "ESCAPE_TAG=" + dir_;
  const Started app = start({"-n", "forking", "--restart-delay", "10ms", "--kill-timeout", "500ms",
                             "--", kChild, "escape", pidfile, "exit"},
                            {tag});
  ASSERT_GE(app.id, 0) << describe(app.outcome);
  ASSERT_TRUE(
      await_app("forking", [](const json::object& a) { return number(a, "restarts") >= 3; }).ok);
  // The first process of a run and its escapee: never more than one run's.
  EXPECT_LE(processes_with_env(tag).size(), 2u) << describe_processes(processes_with_env(tag));
  const Outcome gone = sempre({"delete", "forking"});
  EXPECT_EQ(gone.code, 0) << describe(gone);
  EXPECT_TRUE(processes_with_env(tag).empty()) << describe_processes(processes_with_env(tag));
}

// --- a full disk -------------------------------------------------------------

// File systems of their own, small enough to fill: a tmpfs needs root (the
// tests skip without it).
class SempreDiskFull : public SempreDaemon {
 protected:
  void TearDown() override {
    if (tiny_) tiny_->unfill();
    SempreDaemon::TearDown();
    tiny_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A tmpfs of `size` at `path`.
  bool mount_tiny(const std::string& path, const std::string& size) {
    tiny_.emplace(path, size);
    errno = tiny_->error();
    return tiny_->mounted();
  }
  void fill() { ASSERT_TRUE(tiny_->fill()); }
  void unfill() { tiny_->unfill(); }

  std::optional<test::TinyFs> tiny_;
};

TEST_F(SempreDiskFull, OutputToAFullDiskIsDroppedCountedAndSaidWithoutTouchingTheApp) {
  const std::string logs = dir_ + "/logs";
  if (!mount_tiny(logs, "256k")) GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
  const std::string log = logs + "/ticker.out.log";
  const Started app = start({"-n", "ticker", "-o", log, "--", kChild, "tick", "1"});
  ASSERT_GT(app.pid, 0) << describe(app.outcome);
  ASSERT_TRUE(wait_for_file(log, [](const std::string& t) { return t.size() >= 90; }));

  fill();
  const Awaited dropping = await_app("ticker", [](const json::object& a) {
    return number(a, "out_dropped_bytes") > 0 && !text(a, "last_error").empty();
  });
  ASSERT_TRUE(dropping.ok) << dropping.last_seen;
  EXPECT_NE(text(dropping.app, "last_error").find("No space left on device"), std::string::npos)
      << dropping.last_seen;
  EXPECT_EQ(number(dropping.app, "err_dropped_bytes"), 0);
  // The app goes on, unblocked: what it writes is read and counted.
  const std::int64_t before = number(dropping.app, "out_dropped_bytes");
  const Awaited more = await_app("ticker", [&](const json::object& a) {
    return number(a, "out_dropped_bytes") >= before + 100 * 9;
  });
  ASSERT_TRUE(more.ok) << more.last_seen;
  EXPECT_EQ(pid_of(more.app), app.pid);
  EXPECT_EQ(number(more.app, "restarts"), 0);
  const Outcome listed = sempre({"list"});
  EXPECT_NE(listed.out.find("OUT_DROPPED"), std::string::npos) << listed.out;
  const Outcome info = sempre({"info", "ticker"});
  EXPECT_TRUE(std::regex_search(info.out, std::regex("\n  out dropped +[0-9]+ bytes of output")))
      << info.out;

  unfill();
  const Awaited resumed =
      await_app("ticker", [](const json::object& a) { return text(a, "last_error").empty(); });
  ASSERT_TRUE(resumed.ok) << resumed.last_seen;
  EXPECT_EQ(pid_of(resumed.app), app.pid);
  EXPECT_GE(number(resumed.app, "out_dropped_bytes"), before + 100 * 9);
  const std::uintmax_t size = fs::file_size(log);
  EXPECT_TRUE(wait_for_file(log, [&](const std::string& t) { return t.size() >= size + 90; }));
  // The count outlives the worker.
  const auto counted = find("ticker");
  ASSERT_TRUE(counted);
  ASSERT_EQ(sempre({"daemon", "restart"}).code, 0);
  const auto after = find("ticker");
  ASSERT_TRUE(after);
  EXPECT_EQ(number(*after, "out_dropped_bytes"), number(*counted, "out_dropped_bytes"));
  EXPECT_EQ(pid_of(*after), app.pid);
  // The daemon's log says when it began and when it ended, once each.
  const std::string daemon_log = test::read_file(paths_.log);
  const std::regex began("\\[warning\\] app ticker \\(id \\d+\\): log-error pid=\\d+ " + log +
                         " \\(write " + log + ": No space left on device\\)");
  const std::regex ended("\\[info\\] app ticker \\(id \\d+\\): log-resumed pid=\\d+ " + log +
                         " dropped=[1-9][0-9]*");
  const auto count = [&](const std::regex& r) {
    return std::distance(std::sregex_iterator(daemon_log.begin(), daemon_log.end(), r),
                         std::sregex_iterator());
  };
  EXPECT_EQ(count(began), 1) << daemon_log;
  EXPECT_EQ(count(ended), 1) << daemon_log;
}

// With the home on a full disk: a start is refused, changing nothing; a
// stop is done but answered as unsaved, and saved once there is room, so
// that a new daemon restores neither a forgotten app nor a stopped one.
TEST_F(SempreDiskFull, CommandsThatCannotSaveTheStateFailAndNothingIsLost) {
  if (!mount_tiny(home_, "1m")) GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
  const Started kept = start(sleeper("kept"));
  ASSERT_GT(kept.pid, 0) << describe(kept.outcome);

  fill();
  const Outcome refused = sempre({"start", "-n", "new", "--", kChild, "sleep", "forever"});
  EXPECT_EQ(refused.code, 1) << describe(refused);
  EXPECT_NE(refused.err.find("could not save state: No space left on device"), std::string::npos)
      << describe(refused);
  EXPECT_FALSE(find("new")) << "a start that could not be saved left its app";

  const Outcome stopped = sempre({"stop", "kept"});
  EXPECT_EQ(stopped.code, 1) << describe(stopped);
  EXPECT_NE(stopped.err.find("could not save state: No space left on device"), std::string::npos)
      << describe(stopped);
  EXPECT_FALSE(alive(kept.pid)) << "a stop must work on a full disk";

  unfill();
  // Saved by the daemon's retry, with no command to prompt it.
  ASSERT_TRUE(wait_for_file(
      paths_.state,
      [](const std::string& t) { return t.find("\"wanted_up\":false") != std::string::npos; }, 15s))
      << test::read_file(paths_.state);

  const pid_t daemon = daemon_pid();
  ASSERT_EQ(sempre({"daemon", "stop"}).code, 0);
  ASSERT_TRUE(wait_for_exit(daemon));
  const auto apps = list();
  ASSERT_TRUE(apps) << last_list_error_;
  ASSERT_EQ(apps->size(), 1u) << json::serialize(*apps);
  const json::object& app = (*apps)[0].as_object();
  EXPECT_EQ(text(app, "name"), "kept");
  EXPECT_EQ(text(app, "status"), "stopped");
  EXPECT_EQ(text(app, "wanted"), "down");
}

TEST_F(SempreDaemon, SignalReachesTheAppByNameIdAndPid) {
  // `signal` delivers to the app's process, without restarting it.
  const Started app = start({"-n", "sig", "--", kChild, "signals"});
  ASSERT_GT(app.pid, 0) << describe(app.outcome);
  const std::string log = out_log("sig");
  ASSERT_TRUE(wait_for_file(log, holds("ready\n"))) << test::read_file(log);

  const Outcome hup = sempre({"signal", "HUP", "sig"});
  EXPECT_EQ(hup.code, 0) << describe(hup);
  EXPECT_TRUE(wait_for_file(log, holds("got HUP\n"))) << test::read_file(log);

  const Outcome usr1 = sempre({"signal", "SIGUSR1", std::to_string(app.id)});
  EXPECT_EQ(usr1.code, 0) << describe(usr1);
  EXPECT_TRUE(wait_for_file(log, holds("got USR1\n"))) << test::read_file(log);

  const Outcome usr2 = sempre({"signal", std::to_string(SIGUSR2), std::to_string(app.pid)});
  EXPECT_EQ(usr2.code, 0) << describe(usr2);
  EXPECT_TRUE(wait_for_file(log, holds("got USR2\n"))) << test::read_file(log);

  const auto after = find("sig");
  ASSERT_TRUE(after);
  EXPECT_EQ(pid_of(*after), app.pid);
}

TEST_F(SempreDaemon, InfoJsonShowsTheSpecWithTheEnvironmentOfStart) {
  // The child gets the environment of `sempre start` plus --env; `info --json` shows it.
  ASSERT_TRUE(list()) << last_list_error_;  // a daemon that has never seen SEMPRE_E2E_MARK
  const Started envy = start({"-n", "envy", "--restart", "never", "--env", "GREETING=hello", "--",
                              "/bin/sh", "-c", "echo \"$GREETING $SEMPRE_E2E_MARK\""},
                             {"SEMPRE_E2E_MARK=from-start"});
  ASSERT_EQ(envy.outcome.code, 0) << describe(envy.outcome);
  const Awaited done = await_app("envy", status_is("exited"));
  ASSERT_TRUE(done.ok) << done.last_seen;
  EXPECT_TRUE(wait_for_file(out_log("envy"), holds("hello from-start\n")))
      << test::read_file(out_log("envy"));

  const Outcome info = sempre({"info", "envy", "--json"});
  ASSERT_EQ(info.code, 0) << describe(info);
  const auto parsed = parse_json(info.out);
  ASSERT_TRUE(parsed && parsed->is_object()) << info.out;
  const json::object& app = parsed->as_object();
  EXPECT_EQ(text(app, "name"), "envy");
  EXPECT_EQ(text(app, "status"), "exited");
  EXPECT_EQ(field(app, "last_exit"), json::value(json::object{{"code", 0}})) << app;
  EXPECT_EQ(text(app, "out_log"), out_log("envy"));
  ASSERT_TRUE(field(app, "spec").is_object()) << app;
  const std::string spec = json::serialize(field(app, "spec"));
  EXPECT_NE(spec.find("GREETING=hello"), std::string::npos) << spec;
  EXPECT_NE(spec.find("SEMPRE_E2E_MARK=from-start"), std::string::npos) << spec;

  const Outcome human = sempre({"info", "envy"});
  EXPECT_EQ(human.code, 0) << describe(human);
  EXPECT_NE(human.out.find(out_log("envy")), std::string::npos) << human.out;
}

// --- logs -------------------------------------------------------------------

TEST_F(SempreDaemon, LogsPrintsTheLastLines) {
  // `logs -n N` prints the last N lines of the app, and 15 without -n.
  std::vector<std::string> args = {"-n", "printer", "--restart", "never", "--", kChild, "print"};
  for (int i = 1; i <= 20; ++i) args.push_back("line-" + std::to_string(i));
  const Started printer = start(args);
  ASSERT_EQ(printer.outcome.code, 0) << describe(printer.outcome);
  const Awaited done = await_app("printer", status_is("exited"));
  ASSERT_TRUE(done.ok) << done.last_seen;

  const Outcome two = sempre({"logs", "printer", "-n", "2"});
  EXPECT_EQ(two.code, 0) << describe(two);
  EXPECT_EQ(numbered_lines(two.out, "line-"), (std::vector<std::string>{"line-19", "line-20"}))
      << two.out;

  const Outcome fifteen = sempre({"logs", "printer"});
  EXPECT_EQ(fifteen.code, 0) << describe(fifteen);
  std::vector<std::string> last15;
  for (int i = 6; i <= 20; ++i) last15.push_back("line-" + std::to_string(i));
  EXPECT_EQ(numbered_lines(fifteen.out, "line-"), last15) << fifteen.out;
}

TEST_F(SempreDaemon, LogsOfSeveralAppsNameEachLine) {
  // Without a target, `logs` shows every app, each line prefixed with its app's name.
  for (const char* name : {"north", "south"}) {
    const Started app =
        start({"-n", name, "--restart", "never", "--", kChild, "print", "hello-from-app"});
    ASSERT_EQ(app.outcome.code, 0) << describe(app.outcome);
  }
  for (const char* name : {"north", "south"}) {
    const Awaited done = await_app(name, status_is("exited"));
    ASSERT_TRUE(done.ok) << done.last_seen;
  }
  const Outcome logs = sempre({"logs", "-n", "5"});
  EXPECT_EQ(logs.code, 0) << describe(logs);
  int north = 0;
  int south = 0;
  for (const auto& line : test::split_lines(logs.out)) {
    if (line.find("hello-from-app") == std::string::npos) continue;
    const bool is_north = line.find("north") != std::string::npos;
    const bool is_south = line.find("south") != std::string::npos;
    EXPECT_TRUE(is_north != is_south) << "no app named on: " << line;
    north += is_north;
    south += is_south;
  }
  EXPECT_EQ(north, 1) << logs.out;
  EXPECT_EQ(south, 1) << logs.out;
}

TEST_F(SempreDaemon, LogsFollowsAcrossRotations) {
  // `logs -f` keeps printing, with no line missing, while the log is rotated under it.
  const std::string script = "i=0; while :; do i=$((i+1)); printf 'line %06d %s\\n' \"$i\" " +
                             std::string(60, 'x') + "; sleep 0.02; done";
  const Started chatty =
      start({"-n", "chatty", "--log-max-size", "1K", "--", "/bin/sh", "-c", script});
  ASSERT_GT(chatty.pid, 0) << describe(chatty.outcome);

  Subprocess follow({kSempre, "logs", "chatty", "-f"}, env());
  ASSERT_TRUE(follow.wait_for_output("line ")) << follow.err();
  // 60 lines of 78 bytes past the newest one written yet: at least four rotations of 1 KiB later.
  int newest = 0;
  for (const std::string& text : {follow.out(), test::read_file(out_log("chatty"))}) {
    for (const auto& line : numbered_lines(text, "line "))
      newest = std::max(newest, std::stoi(line.substr(5)));
  }
  const int target = newest + 60;
  char wanted[32];
  std::snprintf(wanted, sizeof wanted, "line %06d", target);
  EXPECT_TRUE(follow.wait_for_output(wanted, false, 30s))
      << "the follower stopped at:\n"
      << follow.out().substr(follow.out().size() > 400 ? follow.out().size() - 400 : 0);
  EXPECT_TRUE(fs::exists(out_log("chatty") + ".1")) << "the log was never rotated";

  // Every line the follower printed, in order, none missing or repeated.
  const std::string complete = follow.out().substr(0, follow.out().rfind('\n') + 1);
  const auto seen = numbered_lines(complete, "line ");
  ASSERT_FALSE(seen.empty());
  for (std::size_t i = 1; i < seen.size(); ++i) {
    if (std::stoi(seen[i].substr(5)) != std::stoi(seen[i - 1].substr(5)) + 1) {
      ADD_FAILURE() << "after " << seen[i - 1] << " came " << seen[i];
      break;
    }
  }
  ::kill(follow.pid(), SIGTERM);
  EXPECT_TRUE(follow.wait(10s).has_value()) << "logs -f did not end on SIGTERM";
}

TEST_F(SempreDaemon, CleanlogsRemovesRotatedLogs) {
  // `cleanlogs` removes NAME.out.log.1 and the like, and keeps the current log.
  const Started flood = start({"-n", "flood", "--restart", "never", "--log-max-size", "1K", "--",
                               kChild, "flood", "200", "100"});
  ASSERT_EQ(flood.outcome.code, 0) << describe(flood.outcome);
  const Awaited done = await_app("flood", status_is("exited"));
  ASSERT_TRUE(done.ok) << done.last_seen;
  const std::string log = out_log("flood");
  ASSERT_TRUE(fs::exists(log + ".1"));

  const Outcome clean = sempre({"cleanlogs"});
  EXPECT_EQ(clean.code, 0) << describe(clean);
  for (int i = 1; i <= 5; ++i) EXPECT_FALSE(fs::exists(log + "." + std::to_string(i))) << i;
  EXPECT_TRUE(fs::exists(log));
}

// --- events ---------------------------------------------------------------

TEST_F(SempreDaemon, EventsStreamExitRestartAndStart) {
  // `events --json` streams a killed child's exit, restart and new start, one object a line.
  ASSERT_TRUE(list()) << last_list_error_;
  Subprocess events({kSempre, "events", "--json"}, env());
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);

  // The stream has no handshake: once it shows a start, it is subscribed.
  const auto deadline = SteadyClock::now() + 20s;
  while (!events.wait_for_output("\"type\":\"start\"", false, 2s) &&
         SteadyClock::now() < deadline) {
    sempre({"restart", "web"});
  }
  ASSERT_NE(events.out().find("\"type\":\"start\""), std::string::npos)
      << events.out() << events.err();
  const auto current = find("web");
  ASSERT_TRUE(current && has_pid(*current));
  const pid_t killed = pid_of(*current);

  ASSERT_EQ(::kill(killed, SIGKILL), 0);
  ASSERT_TRUE(events.wait_for_output("\"signal\":\"KILL\"")) << events.out();
  const Awaited back = await_app("web", runs_under_another_pid(killed));
  ASSERT_TRUE(back.ok) << back.last_seen;
  const std::string new_pid = "\"pid\":" + std::to_string(pid_of(back.app));
  ASSERT_TRUE(events.wait_for_output(new_pid)) << events.out();

  const std::string& out = events.out();
  const auto line_at = [&](std::size_t at) {
    const auto begin = out.rfind('\n', at);
    const auto from = begin == std::string::npos ? 0 : begin + 1;
    return out.substr(from, out.find('\n', at) - from);
  };
  const auto exit_at = out.find("\"signal\":\"KILL\"");
  const auto restart_at = out.find("\"type\":\"restart\"", exit_at);
  const auto start_at = out.find(new_pid);
  EXPECT_NE(line_at(exit_at).find("\"type\":\"exit\""), std::string::npos) << out;
  EXPECT_NE(line_at(start_at).find("\"type\":\"start\""), std::string::npos) << out;
  EXPECT_LT(restart_at, start_at) << out;
  for (const auto& line : test::split_lines(out)) {
    const auto parsed = parse_json(line);
    EXPECT_TRUE(parsed && parsed->is_object()) << "not a JSON object: " << line;
    if (parsed && parsed->is_object()) {
      EXPECT_NE(line.find("\"web\""), std::string::npos) << line;
    }
  }
  ::kill(events.pid(), SIGTERM);
  EXPECT_TRUE(events.wait(10s).has_value()) << "events did not end on SIGTERM";
}

// --- the daemon ---------------------------------------------------------------

TEST_F(SempreDaemon, ConcurrentCommandsStartOneDaemon) {
  // Ten commands at once in a home with no daemon all succeed, served by a single daemon.
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(
        std::make_unique<Subprocess>(std::vector<std::string>{kSempre, "list"}, env()));
  }
  for (auto& client : clients) {
    EXPECT_EQ(client->wait(), 0) << client->err();
  }
  std::vector<pid_t> serving = daemons_of(home_);
  if (serving.size() > 1) {  // a loser of the race may still be on its way out
    std::erase_if(serving, [](pid_t pid) { return wait_for_exit(pid, 2s); });
  }
  ASSERT_EQ(serving.size(), 1u) << describe_processes(serving);
  EXPECT_EQ(daemon_pid(), serving.front());
}

TEST_F(SempreDaemon, DaemonSubcommandsNeverStartADaemonExceptStart) {
  // Of the daemon commands only `daemon start` starts one; `daemon status` with none exits 3.
  const Outcome status = sempre({"daemon", "status"});
  EXPECT_EQ(status.code, 3) << describe(status);
  EXPECT_EQ(status.err.rfind("sempre: ", 0), 0u) << status.err;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"daemon", "stop"}, {"kill"}}) {
    const Outcome o = sempre(args);
    EXPECT_EQ(o.code, 0) << args.back() << ": " << describe(o);
    EXPECT_NE(o.out.find("no daemon"), std::string::npos) << args.back() << ": " << o.out;
  }
  EXPECT_TRUE(daemons_of(home_).empty()) << describe_processes(daemons_of(home_));
  EXPECT_FALSE(fs::exists(paths_.socket));

  const Outcome start = sempre({"daemon", "start"});
  EXPECT_EQ(start.code, 0) << describe(start);
  const pid_t daemon = daemon_pid();
  ASSERT_GT(daemon, 0);
  const Outcome again = sempre({"daemon", "start"});
  EXPECT_EQ(again.code, 0) << describe(again);
  EXPECT_EQ(daemon_pid(), daemon);
  const Outcome running = sempre({"daemon", "status"});
  EXPECT_EQ(running.code, 0) << describe(running);
  EXPECT_NE(running.out.find(std::to_string(daemon)), std::string::npos) << running.out;
}

TEST_F(SempreDaemon, KillStopsEveryAppAndTheDaemon) {
  // `kill` stops every app, wanted down from then on, and the daemon, which leaves none to answer.
  const Started a = start(sleeper("a"));
  const Started b = start(sleeper("b"));
  ASSERT_GT(a.pid, 0) << describe(a.outcome);
  ASSERT_GT(b.pid, 0) << describe(b.outcome);
  const pid_t daemon = daemon_pid();
  ASSERT_GT(daemon, 0);

  const Outcome kill = sempre({"kill"});
  EXPECT_EQ(kill.code, 0) << describe(kill);
  EXPECT_TRUE(wait_for_exit(daemon));
  EXPECT_FALSE(alive(a.pid));
  EXPECT_FALSE(alive(b.pid));
  const Outcome status = sempre({"daemon", "status"});
  EXPECT_EQ(status.code, 3) << describe(status);
  EXPECT_TRUE(daemons_of(home_).empty()) << describe_processes(daemons_of(home_));

  const auto apps = list();  // a new daemon, which starts none of them
  ASSERT_TRUE(apps) << last_list_error_;
  EXPECT_EQ(apps->size(), 2u) << json::serialize(*apps);
  for (const auto& app : *apps) {
    ASSERT_TRUE(app.is_object());
    EXPECT_EQ(text(app.as_object(), "status"), "stopped") << app;
    EXPECT_EQ(text(app.as_object(), "wanted"), "down") << app;
  }
}

TEST_F(SempreDaemon, RestartedDaemonRestoresTheAppsWantedUp) {
  // After `daemon stop`, the next daemon starts again the apps that were up, not the stopped ones.
  const Started keeper = start(sleeper("keeper"));
  const Started resting = start(sleeper("resting"));
  ASSERT_GT(keeper.pid, 0) << describe(keeper.outcome);
  ASSERT_GT(resting.pid, 0) << describe(resting.outcome);
  ASSERT_EQ(sempre({"stop", "resting"}).code, 0);
  const pid_t first_daemon = daemon_pid();
  ASSERT_GT(first_daemon, 0);

  const Outcome stop = sempre({"daemon", "stop"});
  EXPECT_EQ(stop.code, 0) << describe(stop);
  ASSERT_TRUE(wait_for_exit(first_daemon));
  EXPECT_FALSE(alive(keeper.pid));
  const Outcome status = sempre({"daemon", "status"});
  EXPECT_EQ(status.code, 3) << describe(status);

  const Awaited back = await_app("keeper", runs_under_another_pid(keeper.pid));
  ASSERT_TRUE(back.ok) << back.last_seen;
  EXPECT_EQ(text(back.app, "wanted"), "up");
  EXPECT_NE(daemon_pid(), first_daemon);
  const auto still_resting = find("resting");
  ASSERT_TRUE(still_resting) << "a stopped app is restored too, stopped";
  EXPECT_EQ(text(*still_resting, "status"), "stopped") << *still_resting;
  EXPECT_TRUE(field(*still_resting, "pid").is_null()) << *still_resting;
  const Awaited running = await_app("keeper", status_is("running"));
  EXPECT_TRUE(running.ok) << running.last_seen;
}

TEST_F(SempreDaemon, TermStopsTheDaemonAndTheNextOneRestoresTheApps) {
  // SIGTERM makes the daemon stop its apps and exit, keeping them wanted up for the next daemon.
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  const pid_t daemon = daemon_pid();
  ASSERT_GT(daemon, 0);
  ASSERT_EQ(::kill(daemon, SIGTERM), 0);
  ASSERT_TRUE(wait_for_exit(daemon));
  EXPECT_FALSE(alive(web.pid));
  const Awaited back = await_app("web", runs_under_another_pid(web.pid));
  EXPECT_TRUE(back.ok) << back.last_seen;
}

TEST_F(SempreDaemon, AppOfADaemonKilledHardNeverRunsTwice) {
  // Without a keeper, a child left by a daemon killed with SIGKILL is
  // stopped before the next daemon restarts it.
  Subprocess lone({kSempred, "--no-keeper", "--home", home_}, env());
  ASSERT_EQ(lone.wait(), 0) << lone.err();
  ASSERT_TRUE(daemons_of(home_, /*workers=*/true).empty());
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  const pid_t daemon = daemon_pid();
  ASSERT_GT(daemon, 0);
  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  ASSERT_TRUE(wait_for_exit(daemon));
  ASSERT_TRUE(alive(web.pid)) << "the child, in its own session, outlives its daemon";

  const Awaited back = await_app("web", runs_under_another_pid(web.pid));
  ASSERT_TRUE(back.ok) << back.last_seen;
  EXPECT_FALSE(alive(web.pid)) << "the child of the dead daemon runs beside the new one";
  std::vector<pid_t> sleepers;
  for (pid_t pid : processes_with_env("SEMPRE_HOME=" + home_)) {
    if (command_line(pid) == kChild + " sleep forever") sleepers.push_back(pid);
  }
  EXPECT_EQ(sleepers.size(), 1u) << describe_processes(sleepers);
}

// The numbers a `tick` child wrote to `log`, in order.
std::vector<long> ticks_in(const std::string& log) {
  std::vector<long> numbers;
  std::istringstream in(test::read_file(log));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) numbers.push_back(std::stol(line));
  }
  return numbers;
}

// The first place where `numbers` is not 0, 1, 2, ..., or "" when it is.
std::string first_gap(const std::vector<long>& numbers) {
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    if (numbers[i] != static_cast<long>(i)) {
      return "line " + std::to_string(i) + " says " + std::to_string(numbers[i]);
    }
  }
  return "";
}

TEST_F(SempreDaemon, AKilledWorkerIsReplacedAndTakesEveryAppOver) {
  // SIGKILL of the daemon's worker, again and again: the keeper starts
  // another at once, which takes every app over: same pids, no restart,
  // uptime going on, and not one line of output lost.
  const Started ticker = start({"--name", "ticker", "--", kChild, "tick", "1"});
  ASSERT_GT(ticker.pid, 0) << describe(ticker.outcome);
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  const pid_t daemon = daemon_pid();
  ASSERT_GT(daemon, 0);
  ASSERT_TRUE(await_app("web", status_is("running")).ok);

  for (int kill = 0; kill < 5; ++kill) {
    const std::vector<pid_t> workers = daemons_of(home_, /*workers=*/true);
    ASSERT_EQ(workers.size(), 1u) << describe_processes(workers);
    ASSERT_EQ(::kill(workers.front(), SIGKILL), 0);
    ASSERT_TRUE(wait_for_exit(workers.front()));
    // The apps keep running while no worker does, and after.
    EXPECT_TRUE(alive(ticker.pid));
    EXPECT_TRUE(alive(web.pid));
    const auto apps = list();
    ASSERT_TRUE(apps) << last_list_error_;
    for (const char* name : {"ticker", "web"}) {
      const auto app = find(name);
      ASSERT_TRUE(app) << name;
      EXPECT_EQ(text(*app, "status"), "running") << *app;
      EXPECT_EQ(number(*app, "restarts"), 0) << *app;
      EXPECT_EQ(pid_of(*app), std::string(name) == "web" ? web.pid : ticker.pid) << *app;
      EXPECT_GT(number(*app, "uptime_ms"), 0) << *app;
    }
  }
  EXPECT_EQ(daemon_pid(), daemon) << "the keeper is the daemon, all along";
  const std::vector<pid_t> workers = daemons_of(home_, /*workers=*/true);
  ASSERT_EQ(workers.size(), 1u) << describe_processes(workers);

  // Every line the ticker wrote reached its log, in order.
  const Outcome stop = sempre({"stop", "ticker"});
  ASSERT_EQ(stop.code, 0) << describe(stop);
  const std::vector<long> numbers = ticks_in(out_log("ticker"));
  EXPECT_GT(numbers.size(), 10u);
  EXPECT_EQ(first_gap(numbers), "");
  EXPECT_TRUE(test::read_file(home_ + "/logs/ticker.err.log").empty());
}

TEST_F(SempreDaemon, AnAppThatEndsWhileNoWorkerRunsIsHandledByItsPolicy) {
  // The keeper reaps an app that exits while no worker runs and hands its
  // status on: the next worker restarts it as its policy says, and reports
  // how it ended.
  const Started web = start({"--name", "web", "--", kChild, "term-exit", "7"});
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  ASSERT_TRUE(await_app("web", status_is("running")).ok);
  const pid_t keeper = daemon_pid();
  const std::vector<pid_t> workers = daemons_of(home_, /*workers=*/true);
  ASSERT_EQ(workers.size(), 1u) << describe_processes(workers);

  // The keeper paused: no worker can start until the app has ended.
  ASSERT_EQ(::kill(keeper, SIGSTOP), 0);
  ASSERT_EQ(::kill(workers.front(), SIGKILL), 0);
  ASSERT_EQ(::kill(web.pid, SIGTERM), 0);
  ASSERT_TRUE(wait_for_exit(web.pid)) << "the app did not end on SIGTERM";
  ASSERT_EQ(::kill(keeper, SIGCONT), 0);

  const Awaited back = await_app("web", runs_under_another_pid(web.pid));
  ASSERT_TRUE(back.ok) << back.last_seen;
  EXPECT_EQ(number(back.app, "restarts"), 1) << back.app;
  EXPECT_EQ(field(back.app, "last_exit"), json::value(json::object{{"code", 7}})) << back.app;
  const std::vector<pid_t> after = daemons_of(home_, /*workers=*/true);
  EXPECT_EQ(after.size(), 1u) << describe_processes(after);
}

TEST_F(SempreDaemon, ARunWhoseMainProcessTheLastWorkerReapedKeepsItsExitStatus) {
  // The main process ends, the worker reaps it and stops what is left of its
  // group (a child that ignores SIGTERM), and dies meanwhile: the next worker
  // finishes the run with the status the last one reaped, not an unknown one.
  const std::string pidfile = dir_ + "/grandchild.pid";
  const Started web = start({"--name", "web", "--kill-timeout", "1s", "--restart-delay", "10ms",
                             "--", kChild, "grandchild", pidfile});
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  ASSERT_TRUE(wait_for_file(pidfile, holds("\n")));
  const auto grandchild = static_cast<pid_t>(std::stol(test::read_file(pidfile)));
  const std::vector<pid_t> workers = daemons_of(home_, /*workers=*/true);
  ASSERT_EQ(workers.size(), 1u) << describe_processes(workers);

  ASSERT_EQ(::kill(web.pid, SIGUSR1), 0);
  // Gone, not a zombie: the worker reaped it, and waits for the grandchild.
  ASSERT_TRUE(test::eventually([&] { return !fs::exists("/proc/" + std::to_string(web.pid)); }));
  ASSERT_TRUE(alive(grandchild));
  ASSERT_EQ(::kill(workers.front(), SIGKILL), 0);

  const Awaited back = await_app("web", runs_under_another_pid(web.pid));
  ASSERT_TRUE(back.ok) << back.last_seen;
  EXPECT_EQ(field(back.app, "last_exit"), json::value(json::object{{"signal", "USR1"}}))
      << back.app;
  EXPECT_FALSE(alive(grandchild)) << "the rest of the run's group is stopped before the restart";
}

TEST_F(SempreDaemon, DaemonRestartReplacesTheWorkerAndKeepsEveryApp) {
  // `sempre daemon restart` (and `upgrade`) hand every app over to a new
  // worker: same pids, no restart, no line lost, and the daemon's pid stays.
  // (Running at once, with no min-uptime: one still starting stays so.)
  const Started ticker =
      start({"--name", "ticker", "--min-uptime", "0", "--", kChild, "tick", "1"});
  ASSERT_GT(ticker.pid, 0) << describe(ticker.outcome);
  const Started web = start({"-n", "web", "--min-uptime", "0", "--", kChild, "sleep", "forever"});
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  const pid_t keeper = daemon_pid();
  for (const char* action : {"restart", "upgrade", "restart"}) {
    const std::vector<pid_t> before = daemons_of(home_, /*workers=*/true);
    ASSERT_EQ(before.size(), 1u) << describe_processes(before);
    const Outcome restarted = sempre({"daemon", action});
    ASSERT_EQ(restarted.code, 0) << describe(restarted);
    EXPECT_NE(restarted.out.find("2 apps kept running"), std::string::npos) << restarted.out;
    EXPECT_TRUE(wait_for_exit(before.front())) << "the old worker is gone";
    const std::vector<pid_t> after = daemons_of(home_, /*workers=*/true);
    ASSERT_EQ(after.size(), 1u) << describe_processes(after);
    EXPECT_NE(after.front(), before.front());
    for (const auto& [name, pid] : {std::pair{"ticker", ticker.pid}, std::pair{"web", web.pid}}) {
      const auto app = find(name);
      ASSERT_TRUE(app) << last_list_error_;
      EXPECT_EQ(pid_of(*app), pid) << *app;
      EXPECT_EQ(number(*app, "restarts"), 0) << *app;
      EXPECT_EQ(text(*app, "status"), "running") << *app;
    }
  }
  EXPECT_EQ(daemon_pid(), keeper);
  const Outcome stop = sempre({"stop", "ticker"});
  ASSERT_EQ(stop.code, 0) << describe(stop);
  const std::vector<long> numbers = ticks_in(out_log("ticker"));
  EXPECT_GT(numbers.size(), 10u);
  EXPECT_EQ(first_gap(numbers), "");
}

TEST_F(SempreDaemon, DaemonUpgradeRunsTheBinaryInstalledNow) {
  // After `sempre daemon upgrade` the worker, and the keeper too (same pid),
  // run the sempred now at the keeper's path, not the file that was there
  // when they started.
  const std::string installed = dir_ + "/bin/sempred";
  ASSERT_NO_FATAL_FAILURE(start_installed_daemon(installed));
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  // Workers of this home, whatever file they run.
  auto workers = [this] {
    std::vector<pid_t> found;
    for (pid_t pid : all_processes()) {
      if (alive(pid) && command_line(pid).find(" --worker --home " + home_) != std::string::npos) {
        found.push_back(pid);
      }
    }
    return found;
  };
  const std::vector<pid_t> before = workers();
  ASSERT_EQ(before.size(), 1u) << describe_processes(before);
  const pid_t keeper = daemon_pid();
  ASSERT_GT(keeper, 0);

  // A package upgrade: a new file renamed over the old one.
  fs::copy_file(kSempred, installed + ".new");
  fs::rename(installed + ".new", installed);
  struct stat now {};
  ASSERT_EQ(::stat(installed.c_str(), &now), 0);

  const Outcome upgraded = sempre({"daemon", "upgrade"});
  ASSERT_EQ(upgraded.code, 0) << describe(upgraded);
  ASSERT_TRUE(wait_for_exit(before.front()));
  const std::vector<pid_t> after = workers();
  ASSERT_EQ(after.size(), 1u) << describe_processes(after);
  struct stat running {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(after.front()) + "/exe").c_str(), &running), 0);
  EXPECT_EQ(running.st_ino, now.st_ino) << "the new worker runs the new file";
  EXPECT_EQ(daemon_pid(), keeper);
  struct stat keeping {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(keeper) + "/exe").c_str(), &keeping), 0);
  EXPECT_EQ(keeping.st_ino, now.st_ino) << "the keeper runs the new file";
  const auto app = find("web");
  ASSERT_TRUE(app) << last_list_error_;
  EXPECT_EQ(pid_of(*app), web.pid);
  // And the new keeper keeps: a killed worker is replaced, the app taken over.
  ASSERT_EQ(::kill(after.front(), SIGKILL), 0);
  ASSERT_TRUE(wait_for_exit(after.front()));
  const Awaited kept =
      await_app("web", [&](const json::object& a) { return pid_of(a) == web.pid; });
  EXPECT_TRUE(kept.ok) << kept.last_seen;
  EXPECT_EQ(workers().size(), 1u);
}

TEST_F(SempreDaemon, AnUpgradeToABinaryThatCannotRunKeepsTheKeeperAndTheApps) {
  // The keeper tries the new binary before it replaces itself with it: one
  // that does not run leaves the keeper as it is, holding the apps, until a
  // good one is installed.
  const std::string installed = dir_ + "/bin/sempred";
  ASSERT_NO_FATAL_FAILURE(start_installed_daemon(installed));
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  const pid_t keeper = daemon_pid();

  test::write_file(installed + ".new", "#!/bin/sh\nexit 1\n");
  fs::permissions(installed + ".new", fs::perms::owner_all);
  fs::rename(installed + ".new", installed);
  // No new worker can answer: the command says so, and where to look.
  const Outcome upgraded = sempre({"daemon", "upgrade"});
  EXPECT_EQ(upgraded.code, 3) << describe(upgraded);
  EXPECT_NE(upgraded.err.find("no new worker answered within 10s"), std::string::npos)
      << describe(upgraded);
  EXPECT_NE(upgraded.err.find(paths_.log), std::string::npos) << describe(upgraded);
  ASSERT_TRUE(
      wait_for_file(paths_.log, holds("cannot replace the keeper: " + installed +
                                      " cannot take over (code 1 from --keeper-resume --check)")))
      << test::read_file(paths_.log);
  EXPECT_EQ(daemon_pid(), keeper);
  EXPECT_TRUE(alive(web.pid));

  fs::copy_file(kSempred, installed + ".new");
  fs::rename(installed + ".new", installed);
  const Awaited back = await_app(
      "web", [&](const json::object& a) { return pid_of(a) == web.pid; }, 30s);
  EXPECT_TRUE(back.ok) << back.last_seen;
  EXPECT_EQ(daemon_pid(), keeper);
}

TEST_F(SempreDaemon, AWorkerThatCannotStartSaysWhyInTheDaemonsLog) {
  // A config.toml broken while the daemon runs: the next worker cannot
  // start, says why in sempred.log (its stderr goes nowhere), and the keeper
  // keeps the apps and tries again until the file is fixed.
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  const std::vector<pid_t> workers = daemons_of(home_, /*workers=*/true);
  ASSERT_EQ(workers.size(), 1u) << describe_processes(workers);
  test::write_file(home_ + "/config.toml", "[daemon]\nmax_clients = \"many\"\n");
  ASSERT_EQ(::kill(workers.front(), SIGKILL), 0);
  ASSERT_TRUE(wait_for_file(paths_.log, [](const std::string& log) {
    return std::regex_search(log, std::regex("\\[worker\\] sempred worker \\d+ cannot start: .*"
                                             "config.toml:2:[0-9]+: .*max_clients"));
  })) << test::read_file(paths_.log);
  EXPECT_TRUE(alive(web.pid));

  fs::remove(home_ + "/config.toml");
  const Awaited back = await_app(
      "web", [&](const json::object& a) { return pid_of(a) == web.pid; }, 30s);
  EXPECT_TRUE(back.ok) << back.last_seen;
}

// A daemon without a keeper dies; the next one stops the copy it left
// running (which ignores SIGTERM) before starting its app again, and
// meanwhile shows it stopping, and makes a restart or a kill wait for it,
// so that two copies never run and none is left behind.
class SempreStaleCopy : public SempreDaemon {
 protected:
  // The app's pid under the dead daemon; the next daemon is stopping it.
  pid_t leave_a_stale_copy() {
    Subprocess lone({kSempred, "--no-keeper", "--home", home_}, env());
    EXPECT_EQ(lone.wait(), 0) << lone.err();
    const Started stub =
        start({"-n", "stub", "--kill-timeout", "1s", "--", kChild, "ignore-term"}, {tag()});
    EXPECT_GT(stub.pid, 0) << describe(stub.outcome);
    EXPECT_TRUE(wait_for_file(out_log("stub"), holds("ready\n")));
    const pid_t daemon = daemon_pid();
    EXPECT_EQ(::kill(daemon, SIGKILL), 0);
    EXPECT_TRUE(wait_for_exit(daemon));
    const Awaited stopping = await_app("stub", status_is("stopping"));
    EXPECT_TRUE(stopping.ok) << stopping.last_seen;
    EXPECT_EQ(pid_of(stopping.app), stub.pid) << stopping.app;
    EXPECT_EQ(text(stopping.app, "wanted"), "up");
    return stub.pid;
  }

  // Set once dir_ is (SetUp): the app's processes, not another test's.
  std::string tag() const { return "STALE_TAG=" + dir_; }
};

TEST_F(SempreStaleCopy, ARestartWaitsUntilTheEarlierCopyIsGone) {
  const pid_t stale = leave_a_stale_copy();
  const Outcome restarted = sempre({"restart", "stub"});
  EXPECT_EQ(restarted.code, 0) << describe(restarted);
  EXPECT_FALSE(alive(stale));
  const auto copies = processes_with_env(tag());
  EXPECT_EQ(copies.size(), 1u) << describe_processes(copies);
}

TEST_F(SempreStaleCopy, AKillWaitsUntilTheEarlierCopyIsGone) {
  const pid_t stale = leave_a_stale_copy();
  const Outcome killed = sempre({"kill"});
  EXPECT_EQ(killed.code, 0) << describe(killed);
  EXPECT_FALSE(alive(stale));
  EXPECT_TRUE(processes_with_env(tag()).empty()) << describe_processes(processes_with_env(tag()));
}

TEST_F(SempreStaleCopy, ADaemonStopWaitsAndStartsNothingMore) {
  const pid_t stale = leave_a_stale_copy();
  const pid_t daemon = daemon_pid();
  const Outcome stopped = sempre({"daemon", "stop"});
  EXPECT_EQ(stopped.code, 0) << describe(stopped);
  EXPECT_TRUE(wait_for_exit(daemon));
  EXPECT_FALSE(alive(stale));
  EXPECT_TRUE(processes_with_env(tag()).empty()) << describe_processes(processes_with_env(tag()));
}

// What the copy left behind had forked, out of its group and session, is
// stopped with it: by its cgroup, or by the SEMPRE_GROUP mark.
class SempreStaleEscapee : public SempreStaleCopy, public ::testing::WithParamInterface<bool> {};

TEST_P(SempreStaleEscapee, IsStoppedWithTheCopyItCameFrom) {
  fs::create_directories(home_);
  fs::permissions(home_, fs::perms::owner_all, fs::perm_options::replace);
  if (!GetParam()) test::write_file(home_ + "/config.toml", "[daemon]\ncgroups = false\n");
  Subprocess lone({kSempred, "--no-keeper", "--home", home_}, env());
  ASSERT_EQ(lone.wait(), 0) << lone.err();
  const std::string pidfile = dir_ + "/escapee.pid";
  const Started esc = start({"-n", "esc", "--", kChild, "escape", pidfile, "stay"}, {tag()});
  ASSERT_GT(esc.pid, 0) << describe(esc.outcome);
  ASSERT_TRUE(wait_for_file(pidfile, holds("\n")));
  const auto escapee = static_cast<pid_t>(std::stol(test::read_file(pidfile)));
  ::unlink(pidfile.c_str());
  const pid_t daemon = daemon_pid();
  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  ASSERT_TRUE(wait_for_exit(daemon));

  // The next daemon stops the copy, and its escapee, then starts the app.
  const Awaited again = await_app("esc", runs_under_another_pid(esc.pid));
  ASSERT_TRUE(again.ok) << again.last_seen;
  EXPECT_FALSE(alive(esc.pid));
  EXPECT_FALSE(alive(escapee)) << "the escapee " << escapee << " of the earlier copy still runs";
  ASSERT_TRUE(wait_for_file(pidfile, holds("\n")));
  const auto copies = processes_with_env(tag());
  EXPECT_EQ(copies.size(), 2u) << "the new run and its escapee only" << describe_processes(copies);
}

INSTANTIATE_TEST_SUITE_P(Containment, SempreStaleEscapee, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Cgroups" : "ProcessTree";
                         });

TEST_F(SempreDaemon, DaemonRestartWithoutAKeeperRestartsTheApps) {
  // A daemon run with --no-keeper cannot hand its apps over: `daemon
  // restart` says so and falls back to stop and start.
  Subprocess lone({kSempred, "--no-keeper", "--home", home_}, env());
  ASSERT_EQ(lone.wait(), 0) << lone.err();
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  const Outcome restarted = sempre({"daemon", "restart"});
  EXPECT_EQ(restarted.code, 0) << describe(restarted);
  EXPECT_NE(restarted.err.find("cannot be replaced in place"), std::string::npos) << restarted.err;
  const Awaited back = await_app("web", runs_under_another_pid(web.pid));
  EXPECT_TRUE(back.ok) << back.last_seen;
}

TEST_F(SempreDaemon, AKilledKeeperLeavesTheWorkerServingAlone) {
  // Without its keeper the worker goes on as the daemon: the apps run, the
  // commands answer, and `sempre kill` ends it.
  const Started web = start(sleeper("web"));
  ASSERT_GT(web.pid, 0) << describe(web.outcome);
  const pid_t keeper = daemon_pid();
  ASSERT_EQ(::kill(keeper, SIGKILL), 0);
  ASSERT_TRUE(wait_for_exit(keeper));
  const std::vector<pid_t> workers = daemons_of(home_, /*workers=*/true);
  ASSERT_EQ(workers.size(), 1u) << describe_processes(workers);
  ASSERT_TRUE(test::eventually([&] { return daemon_pid() == workers.front(); }))
      << "the lock should name the worker now";
  const auto app = find("web");
  ASSERT_TRUE(app) << last_list_error_;
  EXPECT_EQ(pid_of(*app), web.pid);
  EXPECT_TRUE(alive(web.pid));
}

TEST_F(SempreDaemon, CorruptStateIsSetAsideAndTheDaemonStartsEmpty) {
  // An unreadable state.json is renamed to state.json.bad-TIME and the daemon starts with no app.
  fs::create_directories(home_);
  fs::permissions(home_, fs::perms::owner_all, fs::perm_options::replace);
  const std::string garbage = "{\"version\":1, \"apps\": [garbage";
  test::write_file(paths_.state, garbage);

  const auto apps = list();
  ASSERT_TRUE(apps) << last_list_error_;
  EXPECT_TRUE(apps->empty()) << json::serialize(*apps);
  std::vector<fs::path> set_aside;
  for (const auto& entry : fs::directory_iterator(home_)) {
    if (entry.path().filename().string().rfind("state.json.bad-", 0) == 0)
      set_aside.push_back(entry.path());
  }
  ASSERT_EQ(set_aside.size(), 1u);
  EXPECT_EQ(test::read_file(set_aside.front()), garbage);

  const Started web = start(sleeper("web"));
  EXPECT_EQ(web.outcome.code, 0) << describe(web.outcome);
  const auto saved = parse_json(test::read_file(paths_.state));
  EXPECT_TRUE(saved && saved->is_object()) << test::read_file(paths_.state);
}

// The files next to state.json whose names start with "state.json.bad-".
std::vector<std::string> set_aside_states(const std::string& home) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(home)) {
    if (entry.path().filename().string().rfind("state.json.bad-", 0) == 0) {
      found.push_back(entry.path().string());
    }
  }
  return found;
}

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

TEST_F(SempreDaemon, ListSaysOnceThatADamagedStateWasSetAside) {
  // The first `sempre list` after a damaged state.json warns on stderr, naming the kept copy;
  // the next one does not.
  fs::create_directories(home_);
  fs::permissions(home_, fs::perms::owner_all, fs::perm_options::replace);
  test::write_file(paths_.state, "{\"version\":1, \"apps\": [garbage");

  const Outcome first = sempre({"list"});
  EXPECT_EQ(first.code, 0) << describe(first);
  const auto aside = set_aside_states(home_);
  ASSERT_EQ(aside.size(), 1u);
  const std::string warning = "sempre: warning: " + paths_.state +
                              " was damaged (invalid JSON: syntax error) and was set aside as " +
                              aside[0] + "; no app was restored from it\n";
  EXPECT_EQ(first.err, warning) << describe(first);
  EXPECT_NE(first.out.find("no apps"), std::string::npos) << describe(first);

  const Outcome second = sempre({"list"});
  EXPECT_EQ(second.code, 0) << describe(second);
  EXPECT_EQ(second.err, "") << describe(second);
}

TEST_F(SempreDaemon, OneBadAppInTheStateIsLeftOutAndTheOthersComeBack) {
  // A state.json with one unreadable app restores the others; `list --json` keeps its JSON on
  // stdout and warns once on stderr, naming the app and the copy of the file kept.
  fs::create_directories(home_);
  fs::permissions(home_, fs::perms::owner_all, fs::perm_options::replace);
  const json::object good{
      {"id", 1},
      {"wanted_up", true},
      {"spec", {{"name", "web"}, {"cmd", json::array{kChild, "sleep", "forever"}}}}};
  const json::object bad{{"id", 2}, {"wanted_up", true}, {"spec", {{"name", "api"}, {"cmd", 7}}}};
  const std::string state = json::serialize(
      json::object{{"version", 1}, {"next_id", 3}, {"apps", json::array{good, bad}}});
  test::write_file(paths_.state, state);

  const Outcome first = sempre({"list", "--json"});
  ASSERT_EQ(first.code, 0) << describe(first);
  const auto apps = parse_json(first.out);
  ASSERT_TRUE(apps && apps->is_array()) << describe(first);
  ASSERT_EQ(apps->as_array().size(), 1u) << first.out;
  EXPECT_EQ(text(apps->as_array()[0].as_object(), "name"), "web");
  const auto copies = set_aside_states(home_);
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(test::read_file(copies[0]), state);
  EXPECT_EQ(count_of(first.err, "sempre: warning: "), 1u) << first.err;
  for (const std::string& part : std::vector<std::string>{
           "app \"api\" (id 2) was not restored (apps[1].spec.cmd: expected an array of strings)",
           paths_.state + " as it was is kept as " + copies[0]}) {
    EXPECT_NE(first.err.find(part), std::string::npos) << part << "\n" << first.err;
  }
  EXPECT_TRUE(await_app("web", has_pid).ok) << last_list_error_;
  EXPECT_EQ(sempre({"list"}).err, "");
  // The next save drops the bad entry; its id is not handed out again.
  const Started next = start(sleeper("next"));
  EXPECT_EQ(next.id, 3) << describe(next.outcome);
}

TEST_F(SempreDaemon, HupMakesTheDaemonReopenItsLog) {
  // After SIGHUP the daemon writes to a new sempred.log, so external rotation works.
  ASSERT_TRUE(list()) << last_list_error_;
  const pid_t daemon = daemon_pid();
  ASSERT_GT(daemon, 0);
  ASSERT_TRUE(wait_for_file(paths_.log, [](const std::string& c) { return !c.empty(); }));
  fs::rename(paths_.log, paths_.log + ".old");
  ASSERT_EQ(::kill(daemon, SIGHUP), 0);
  const Started web = start(sleeper("web"));  // something for the daemon to log
  EXPECT_EQ(web.outcome.code, 0) << describe(web.outcome);
  EXPECT_TRUE(wait_for_file(paths_.log, [](const std::string& c) { return !c.empty(); }));
  EXPECT_EQ(daemon_pid(), daemon);
}

// --- the socket ---------------------------------------------------------------

TEST_F(SempreDaemon, RefusesAClientOfAnotherUser) {
  // A client running as another user gets exit 3 and a permission error, and the daemon serves on.
  if (::geteuid() != 0) GTEST_SKIP() << "running a client as nobody needs root";
  ASSERT_TRUE(list()) << last_list_error_;
  const pid_t daemon = daemon_pid();
  fs::permissions(dir_,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  fs::perm_options::replace);  // the home itself stays 0700

  std::vector<std::string> environment;
  for (const auto& e : test::current_env()) {
    if (e.rfind("SEMPRE_HOME=", 0) != 0) environment.push_back(e);
  }
  environment.push_back("SEMPRE_HOME=" + home_);
  const Outcome o = as_nobody([&] {
    std::vector<char*> argv = {const_cast<char*>(kSempre.c_str()), const_cast<char*>("list"),
                               nullptr};
    std::vector<char*> envp;
    for (auto& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);
    ::execve(kSempre.c_str(), argv.data(), envp.data());
    return kCannotExec;
  });
  if (o.code == kCannotExec) GTEST_SKIP() << "nobody cannot execute " << kSempre;
  ASSERT_NE(o.code, kCannotDropPrivileges);
  EXPECT_EQ(o.code, 3) << o.err;
  EXPECT_EQ(o.err.rfind("sempre: ", 0), 0u) << o.err;
  EXPECT_TRUE(mentions_permission(o.err)) << o.err;

  EXPECT_TRUE(list()) << last_list_error_;
  EXPECT_EQ(daemon_pid(), daemon);
}

TEST_F(SempreDaemon, RefusesAPeerOfAnotherUserEvenWhenItReachesTheSocket) {
  // SO_PEERCRED refuses a peer of another uid even when it can open the socket.
  if (::geteuid() != 0) GTEST_SKIP() << "running a peer as nobody needs root";
  ASSERT_TRUE(list()) << last_list_error_;
  const pid_t daemon = daemon_pid();
  const auto open_dir = fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec;
  fs::permissions(dir_, open_dir, fs::perm_options::replace);
  fs::permissions(home_, open_dir, fs::perm_options::replace);
  const auto read_write = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                          fs::perms::group_write | fs::perms::others_read | fs::perms::others_write;
  fs::permissions(paths_.socket, read_write, fs::perm_options::replace);

  const std::string ping = protocol::encode(protocol::make_request(1, "ping"));
  const Outcome o = as_nobody([&] {
    RawClient client(paths_.socket);
    if (!client.connected()) return 2;
    if (!client.send(ping)) return 0;
    const auto line = client.read_line(10s);
    if (!line) return client.wait_closed(1s) ? 0 : 3;
    return line->find("\"ok\":true") != std::string::npos ? 1 : 0;
  });
  fs::permissions(home_, fs::perms::owner_all, fs::perm_options::replace);
  fs::permissions(paths_.socket, fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);

  ASSERT_NE(o.code, kCannotDropPrivileges);
  ASSERT_NE(o.code, 2) << "nobody could not even connect to a socket opened for it";
  EXPECT_NE(o.code, 1) << "the daemon answered a peer of another uid";
  EXPECT_NE(o.code, 3) << "the daemon neither answered nor dropped a peer of another uid";
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(list()) << last_list_error_;
  EXPECT_EQ(daemon_pid(), daemon);
}

TEST_F(SempreDaemon, AClientThatSendsWithoutReadingDoesNotStopTheOthers) {
  // A client pipelining requests without reading the answers is not read from meanwhile, but
  // not dropped either: `sempre list` answers, and once it reads it gets every answer.
  ASSERT_TRUE(list()) << last_list_error_;
  constexpr int kRequests = 50000;  // their answers are several MiB
  std::string requests;
  for (int i = 1; i <= kRequests; ++i) {
    requests += protocol::encode(protocol::make_request(i, "ping"));
  }
  RawClient flood(paths_.socket);
  ASSERT_TRUE(flood.connected());
  bool sent = false;
  std::thread sender([&] { sent = flood.send(requests); });
  ASSERT_TRUE(flood.read_line()) << "the daemon never answered";
  for (int i = 0; i < 3; ++i) {
    const Outcome o = sempre({"list"});
    EXPECT_EQ(o.code, 0) << describe(o);
  }
  int answers = 1;
  while (answers < kRequests && flood.read_line()) ++answers;
  sender.join();
  EXPECT_TRUE(sent) << "the daemon stopped reading for good, or dropped the client";
  EXPECT_EQ(answers, kRequests);
  EXPECT_EQ(test::read_file(paths_.log).find("dropping"), std::string::npos)
      << test::read_file(paths_.log);
}

TEST_F(SempreDaemon, AClientOverMaxClientsIsToldToTryAgainAndOneIsServedOnceAnotherLeaves) {
  // With [daemon] max_clients = 2 and two clients connected, `sempre list` says the daemon has
  // too many clients and exits 3; once one of them leaves, it is served.
  fs::create_directories(home_);
  fs::permissions(home_, fs::perms::owner_all, fs::perm_options::replace);
  test::write_file(home_ + "/config.toml", "[daemon]\nmax_clients = 2\n");
  ASSERT_TRUE(list()) << last_list_error_;
  const std::string ping = protocol::encode(protocol::make_request(1, "ping"));
  auto first = std::make_unique<RawClient>(paths_.socket);
  RawClient second(paths_.socket);
  for (RawClient* client : {first.get(), &second}) {
    ASSERT_TRUE(client->send(ping));
    ASSERT_TRUE(client->read_line()) << "a client under the cap was not served";
  }

  const Outcome refused = sempre({"list"});
  EXPECT_EQ(refused.code, 3) << describe(refused);
  EXPECT_EQ(refused.err, "sempre: sempred has too many clients (2); try again\n")
      << describe(refused);

  first.reset();
  // The daemon learns of the hang-up on its own time: ask until it has.
  Outcome served;
  const auto deadline = SteadyClock::now() + 15s;
  do {
    served = sempre({"list"});
    if (served.code != 0) {
      ASSERT_EQ(served.err, refused.err) << describe(served);
    }
  } while (served.code != 0 && SteadyClock::now() < deadline);
  EXPECT_EQ(served.code, 0) << describe(served);
  EXPECT_NE(test::read_file(paths_.log).find("refusing new clients"), std::string::npos);
}

TEST_F(SempreDaemon, AnswersEveryCommandOfTheProtocol) {
  // Each command of protocol::kCommands is served: with empty args it gets its result or a
  // bad_request naming what is missing, never "unknown command". (events answers nothing until
  // an event; kill and shutdown would end the daemon.)
  ASSERT_TRUE(list()) << last_list_error_;
  RawClient client(paths_.socket);
  ASSERT_TRUE(client.connected());
  std::uint64_t id = 0;
  for (const protocol::Command command : protocol::kCommands) {
    if (command == protocol::Command::kEvents || command == protocol::Command::kKill ||
        command == protocol::Command::kShutdown || command == protocol::Command::kReexec) {
      continue;
    }
    const std::string name = protocol::command_name(command);
    ASSERT_TRUE(client.send(protocol::encode(protocol::make_request(++id, command))));
    std::optional<json::object> response;
    while (!response) {
      const auto line = client.read_line();
      ASSERT_TRUE(line) << name << ": no answer";
      const auto message = parse_json(*line);
      ASSERT_TRUE(message && message->is_object()) << *line;
      if (!message->as_object().contains("item")) response = message->as_object();
    }
    EXPECT_EQ(number(*response, "id"), static_cast<std::int64_t>(id)) << name;
    if (field(*response, "ok") == json::value(true)) continue;
    const json::value error = field(*response, "error");
    ASSERT_TRUE(error.is_object()) << name;
    EXPECT_EQ(text(error.as_object(), "code"), "bad_request") << name;
    const std::string message = text(error.as_object(), "message");
    EXPECT_EQ(message.rfind(name + ": ", 0), 0u) << name << ": " << message;
    EXPECT_EQ(message.find("unknown command"), std::string::npos) << name << ": " << message;
  }
}

TEST_F(SempreDaemon, SurvivesMalformedAndOversizedMessages) {
  // A client sending garbage, or a line past 1 MiB, is dropped; the daemon serves on.
  ASSERT_TRUE(list()) << last_list_error_;
  const pid_t daemon = daemon_pid();
  {
    RawClient garbage(paths_.socket);
    ASSERT_TRUE(garbage.connected());
    ASSERT_TRUE(garbage.send("{garbage\n"));
    EXPECT_TRUE(garbage.wait_closed()) << "a client that sent garbage was kept";
  }
  {
    RawClient oversized(paths_.socket);
    ASSERT_TRUE(oversized.connected());
    oversized.send(std::string(2 * protocol::kMaxMessage, 'x'));  // fails once the daemon drops us
    EXPECT_TRUE(oversized.wait_closed()) << "a client past the message limit was kept";
  }
  const Outcome after = sempre({"list", "--json"});
  EXPECT_EQ(after.code, 0) << describe(after);
  EXPECT_EQ(daemon_pid(), daemon);
  const auto logged_twice = [](const std::string& log) {
    const auto first = log.find("drop");
    return first != std::string::npos && log.find("drop", first + 1) != std::string::npos;
  };
  EXPECT_TRUE(wait_for_file(paths_.log, logged_twice)) << test::read_file(paths_.log);
}

TEST_F(SempreDaemon, AnswersAnotherProtocolVersionWithAnExplicitError) {
  // Another protocol version gets a "version" error naming both versions; the right one is served.
  ASSERT_TRUE(list()) << last_list_error_;
  {
    RawClient client(paths_.socket);
    ASSERT_TRUE(client.connected());
    const json::object request{
        {"v", protocol::kVersion + 1}, {"id", 1}, {"cmd", "ping"}, {"args", json::object{}}};
    ASSERT_TRUE(client.send(json::serialize(request) + "\n"));
    const auto line = client.read_line();
    ASSERT_TRUE(line) << "no answer to a request of another version";
    const auto answer = parse_json(*line);
    ASSERT_TRUE(answer && answer->is_object()) << *line;
    EXPECT_EQ(field(answer->as_object(), "ok"), json::value(false)) << *line;
    const json::value error = field(answer->as_object(), "error");
    ASSERT_TRUE(error.is_object()) << *line;
    EXPECT_EQ(text(error.as_object(), "code"), "version") << *line;
    EXPECT_EQ(number(error.as_object(), "version"), protocol::kVersion) << *line;
    const std::string message = text(error.as_object(), "message");
    EXPECT_NE(message.find(std::to_string(protocol::kVersion)), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(protocol::kVersion + 1)), std::string::npos) << message;
  }
  RawClient client(paths_.socket);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(protocol::encode(protocol::make_request(2, "ping"))));
  const auto line = client.read_line();
  ASSERT_TRUE(line);
  const auto answer = parse_json(*line);
  ASSERT_TRUE(answer && answer->is_object()) << *line;
  EXPECT_EQ(field(answer->as_object(), "ok"), json::value(true)) << *line;
  const json::value result = field(answer->as_object(), "result");
  ASSERT_TRUE(result.is_object()) << *line;
  EXPECT_EQ(number(result.as_object(), "pid"), daemon_pid()) << *line;
  EXPECT_EQ(text(result.as_object(), "home"), home_) << *line;
  EXPECT_EQ(number(result.as_object(), "version"), protocol::kVersion) << *line;
}

// --- the command line ---------------------------------------------------------

TEST_F(SempreDaemon, EveryCommandHasHelpAndNeitherStartsADaemon) {
  // --help on every command and --version exit 0 and never start a daemon.
  for (const auto& command : kCommands) {
    const Outcome help = sempre({command, "--help"});
    EXPECT_EQ(help.code, 0) << command << ": " << describe(help);
    EXPECT_FALSE(help.out.empty()) << command;
  }
  const Outcome overview = sempre({"--help"});
  EXPECT_EQ(overview.code, 0) << describe(overview);
  for (const auto& command : kCommands) {
    EXPECT_NE(overview.out.find(command), std::string::npos)
        << command << " is missing from sempre --help";
  }
  const Outcome version = sempre({"--version"});
  EXPECT_EQ(version.code, 0) << describe(version);
  EXPECT_EQ(version.out.rfind("sempre ", 0), 0u) << version.out;

  Subprocess daemon_version({kSempred, "--version"}, env());
  EXPECT_EQ(daemon_version.wait(), 0) << daemon_version.err();
  EXPECT_NE(daemon_version.out().find("sempre"), std::string::npos) << daemon_version.out();
  Subprocess daemon_help({kSempred, "--help"}, env());
  EXPECT_EQ(daemon_help.wait(), 0) << daemon_help.err();
  EXPECT_NE(daemon_help.out().find("--foreground"), std::string::npos) << daemon_help.out();

  EXPECT_TRUE(daemons_of(home_).empty()) << describe_processes(daemons_of(home_));
}

TEST_F(SempreDaemon, UsageErrorsExitWith2) {
  // A bad command line exits 2 with a "sempre: " message, before any daemon is started.
  const std::vector<std::vector<std::string>> bad = {{"start", "--restart", "bogus", "x"},
                                                     {"frobnicate"},
                                                     {"logs", "-n", "many"},
                                                     {"stop"},
                                                     {"list", "--bogus"}};
  for (const auto& args : bad) {
    const Outcome o = sempre(args);
    EXPECT_EQ(o.code, 2) << args[0] << ": " << describe(o);
    EXPECT_EQ(o.err.rfind("sempre: ", 0), 0u) << args[0] << ": " << o.err;
  }
  const Outcome restart = sempre({"start", "--restart", "bogus", "x"});
  EXPECT_NE(restart.err.find("--restart"), std::string::npos) << restart.err;
  EXPECT_TRUE(daemons_of(home_).empty()) << describe_processes(daemons_of(home_));
}

}  // namespace
}  // namespace sempre

// --- config files ----------------------------------------------------------------

namespace sempre {
namespace {

// An apps file whose apps sleep forever; `extra` is appended to each [[app]].
std::string sleepers_toml(const std::vector<std::string>& names, const std::string& extra = "") {
  std::string text;
  for (const auto& name : names) {
    text += "[[app]]\nname = \"" + name + "\"\ncmd = [\"" + kChild +
            "\", \"sleep\", \"forever\"]\n" + extra + "\n";
  }
  return text;
}

std::map<std::string, pid_t> pids_by_name(const json::array& apps) {
  std::map<std::string, pid_t> pids;
  for (const auto& app : apps) {
    if (app.is_object()) pids[text(app.as_object(), "name")] = pid_of(app.as_object());
  }
  return pids;
}

TEST_F(SempreDaemon, NiceAndLimitNofileReachTheChildFromTheCommandLineAndFromAFile) {
  // Two rows of the option schema, given as flags and as keys: the child sees both, and
  // `info` shows them.
  const Started cli = start({"-n", "limited", "--restart", "never", "--nice", "7", "--limit-nofile",
                             "300", "--", kChild, "limits"});
  ASSERT_EQ(cli.outcome.code, 0) << describe(cli.outcome);
  EXPECT_TRUE(wait_for_file(out_log("limited"), holds("nice 7 nofile 300 300\n")))
      << test::read_file(out_log("limited"));
  const Outcome info = sempre({"info", "limited"});
  ASSERT_EQ(info.code, 0) << describe(info);
  EXPECT_NE(info.out.find("nice"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("300"), std::string::npos) << info.out;

  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, std::string("[[app]]\nname = \"from-file\"\nrestart = \"never\"\n") +
                             "nice = 4\nlimit_nofile = 200\ncmd = [\"" + kChild +
                             "\", \"limits\"]\n");
  const Outcome started = sempre({"start", file});
  ASSERT_EQ(started.code, 0) << describe(started);
  EXPECT_TRUE(wait_for_file(out_log("from-file"), holds("nice 4 nofile 200 200\n")))
      << test::read_file(out_log("from-file"));

  const Outcome bad = sempre({"start", "-n", "bad", "--nice", "30", "--", kChild, "limits"});
  EXPECT_EQ(bad.code, 2) << describe(bad);
  EXPECT_NE(bad.err.find("--nice: must be from -20 to 19"), std::string::npos) << bad.err;
}

TEST_F(SempreDaemon, AnAppGetsTheDescriptorLimitOfItsStarterByDefault) {
  // The keeper raises its own soft limit to hold every app's pipes; the
  // apps get the limit the daemon was started with, as before.
  struct rlimit limit {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  // A soft limit below the hard one, for the daemon this test starts.
  const struct rlimit original = limit;
  limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 1000) - 1;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  const Started app = start({"-n", "plain", "--restart", "never", "--", kChild, "limits"});
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &original), 0);
  ASSERT_EQ(app.outcome.code, 0) << describe(app.outcome);
  const std::string soft = std::to_string(limit.rlim_cur);
  EXPECT_TRUE(wait_for_file(out_log("plain"), holds(" nofile " + soft + " ")))
      << test::read_file(out_log("plain"));
}

TEST_F(SempreDaemon, StartFileStartsEveryAppAndLeavesRunningOnesAlone) {
  // `start FILE.toml` starts each app once; a second start reports them unchanged.
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"a", "b"}));
  const Outcome first = sempre({"start", file});
  ASSERT_EQ(first.code, 0) << describe(first);
  EXPECT_NE(first.out.find("started a"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("started b"), std::string::npos) << first.out;
  const auto before = list();
  ASSERT_TRUE(before) << last_list_error_;
  ASSERT_EQ(before->size(), 2u);

  const Outcome again = sempre({"start", file});
  ASSERT_EQ(again.code, 0) << describe(again);
  EXPECT_NE(again.out.find("unchanged a"), std::string::npos) << again.out;
  const auto after = list();
  ASSERT_TRUE(after) << last_list_error_;
  EXPECT_EQ(pids_by_name(*after), pids_by_name(*before));
}

TEST_F(SempreDaemon, StartFileOnlyStartsTheNamedApps) {
  // `--only a,c` starts a and c, not b.
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"a", "b", "c"}));
  const Outcome o = sempre({"start", file, "--only", "a,c"});
  ASSERT_EQ(o.code, 0) << describe(o);
  const auto apps = list();
  ASSERT_TRUE(apps) << last_list_error_;
  const auto pids = pids_by_name(*apps);
  EXPECT_EQ(pids.size(), 2u);
  EXPECT_TRUE(pids.count("a") && pids.count("c")) << json::serialize(*apps);
}

TEST_F(SempreDaemon, FileWithOneBadAppStartsNothingAndNamesLineAndColumn) {
  // One unknown key: the error is FILE:LINE:COLUMN with a suggestion, exit 2, nothing starts.
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"good"}) + "[[app]]\nname = \"bad\"\ncmd = \"" + kChild +
                             " sleep forever\"\nkill_timout = \"1s\"\n");
  const Outcome o = sempre({"start", file});
  EXPECT_EQ(o.code, 2) << describe(o);
  EXPECT_NE(o.err.find(file + ":8:1:"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("kill_timeout"), std::string::npos) << o.err;
  const auto apps = list();
  ASSERT_TRUE(apps) << last_list_error_;
  EXPECT_TRUE(apps->empty()) << json::serialize(*apps);
}

TEST_F(SempreDaemon, ReloadTouchesOnlyWhatChanged) {
  // reload restarts the changed app only, deletes the removed one, starts the new one.
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"a", "b", "c"}));
  ASSERT_EQ(sempre({"start", file}).code, 0);
  const auto before = list();
  ASSERT_TRUE(before) << last_list_error_;
  const auto old = pids_by_name(*before);

  std::string changed =
      sleepers_toml({"a"}) + sleepers_toml({"b"}, "kill_timeout = \"2s\"\n") + sleepers_toml({"d"});
  test::write_file(file, changed);
  const Outcome o = sempre({"reload", file});
  ASSERT_EQ(o.code, 0) << describe(o);
  EXPECT_NE(o.out.find("restarted b"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("deleted c"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("started d"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("unchanged a"), std::string::npos) << o.out;
  const auto after = list();
  ASSERT_TRUE(after) << last_list_error_;
  const auto now = pids_by_name(*after);
  EXPECT_EQ(now.at("a"), old.at("a"));
  EXPECT_NE(now.at("b"), old.at("b"));
  EXPECT_GT(now.at("b"), 0);
  EXPECT_EQ(now.count("c"), 0u);
  EXPECT_GT(now.at("d"), 0);
  EXPECT_FALSE(alive(old.at("c")));
}

TEST_F(SempreDaemon, SaveThenStartGivesIdenticalSpecs) {
  // save writes a file that start reads back to the very same specs.
  ASSERT_EQ(
      start({"-n", "web", "--env", "GREETING=hello world", "--kill-timeout", "7s", "--restart",
             "on-failure", "-m", "4", "--log-timestamps", "--", kChild, "sleep", "forever"})
          .outcome.code,
      0);
  const Outcome info_before = sempre({"info", "web", "--json"});
  ASSERT_EQ(info_before.code, 0) << describe(info_before);
  const std::string file = dir_ + "/saved.toml";
  const Outcome save = sempre({"save", file});
  ASSERT_EQ(save.code, 0) << describe(save);

  ASSERT_EQ(sempre({"delete", "web"}).code, 0);
  const Outcome again = sempre({"start", file});
  ASSERT_EQ(again.code, 0) << describe(again);
  const Outcome info_after = sempre({"info", "web", "--json"});
  ASSERT_EQ(info_after.code, 0) << describe(info_after);
  const auto a = parse_json(info_before.out);
  const auto b = parse_json(info_after.out);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->as_object().at("spec"), b->as_object().at("spec"));
}

TEST_F(SempreDaemon, ResurrectStartsWhatWasSaved) {
  // save without a file writes SEMPRE_HOME/apps.toml; after kill, resurrect brings the apps back.
  ASSERT_EQ(start(sleeper("web")).outcome.code, 0);
  ASSERT_EQ(sempre({"save"}).code, 0);
  EXPECT_TRUE(fs::exists(home_ + "/apps.toml"));
  ASSERT_EQ(sempre({"kill"}).code, 0);
  const Outcome o = sempre({"resurrect"});
  ASSERT_EQ(o.code, 0) << describe(o);
  EXPECT_TRUE(await_app("web", has_pid).ok);
}

TEST_F(SempreDaemon, WatchConfigAppliesEverySavedChange) {
  // With --watch-config, saving the file restarts the changed app; a broken save changes nothing.
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"web"}));
  ASSERT_EQ(sempre({"start", file, "--watch-config"}).code, 0);
  const auto first = await_app("web", has_pid);
  ASSERT_TRUE(first.ok) << first.last_seen;
  const pid_t old = pid_of(first.app);

  test::write_file(file, sleepers_toml({"web"}, "kill_timeout = \"3s\"\n"));
  const auto second = await_app("web", runs_under_another_pid(old));
  ASSERT_TRUE(second.ok) << second.last_seen;

  test::write_file(file, "[[app]\nthis is not toml\n");
  EXPECT_TRUE(wait_for_file(paths_.log, holds("has errors; nothing changed")));
  const auto third = find("web");
  ASSERT_TRUE(third);
  EXPECT_EQ(pid_of(*third), pid_of(second.app));
}

TEST_F(SempreDaemon, SighupReloadsTheRememberedFiles) {
  // SIGHUP to the daemon applies the current content of every file apps came from.
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"web"}));
  ASSERT_EQ(sempre({"start", file}).code, 0);
  test::write_file(file, sleepers_toml({"web", "api"}));
  ASSERT_GT(daemon_pid(), 0);
  ::kill(daemon_pid(), SIGHUP);
  const auto api = await_app("api", has_pid);
  EXPECT_TRUE(api.ok) << api.last_seen;
}

TEST_F(SempreDaemon, PathsInAFileAreRelativeToTheFile) {
  // cwd and log paths of a config file resolve against its directory, not the caller's.
  fs::create_directories(dir_ + "/conf/work");
  const std::string file = dir_ + "/conf/apps.toml";
  test::write_file(file, std::string("[[app]]\nname = \"where\"\ncmd = [\"") + kChild +
                             "\", \"cwd\"]\ncwd = \"work\"\nout = \"logs/where.log\"\n"
                             "restart = \"never\"\n");
  ASSERT_EQ(sempre({"start", file}).code, 0);
  const std::string log = dir_ + "/conf/logs/where.log";
  EXPECT_TRUE(wait_for_file(log, holds(dir_ + "/conf/work\n"))) << test::read_file(log);
}

}  // namespace
}  // namespace sempre

namespace sempre {
namespace {

TEST_F(SempreDaemon, ConfigTomlDefaultsApplyToEveryAppStarted) {
  // SEMPRE_HOME/config.toml's [defaults] reach apps started from the command line and from files.
  fs::create_directories(home_);
  ::chmod(home_.c_str(), 0700);
  test::write_file(home_ + "/config.toml", "[defaults]\nkill_timeout = \"7s\"\n");
  ASSERT_EQ(start(sleeper("cli")).outcome.code, 0);
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"fromfile"}));
  ASSERT_EQ(sempre({"start", file}).code, 0);
  for (const char* name : {"cli", "fromfile"}) {
    const Outcome info = sempre({"info", name, "--json"});
    ASSERT_EQ(info.code, 0) << describe(info);
    const auto parsed = parse_json(info.out);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->as_object().at("spec").as_object().at("kill_timeout_ms"), 7000) << name;
  }
}

TEST_F(SempreDaemon, ABadConfigTomlIsReportedWithItsLineAndColumn) {
  // An error in config.toml stops `start` (exit 2) with FILE:LINE:COLUMN.
  fs::create_directories(home_);
  ::chmod(home_.c_str(), 0700);
  test::write_file(home_ + "/config.toml", "[defaults]\nkill_timout = \"7s\"\n");
  const Outcome o = sempre({"start", "-n", "x", "--", kChild, "sleep", "forever"});
  EXPECT_EQ(o.code, 2) << describe(o);
  EXPECT_NE(o.err.find(home_ + "/config.toml:2:1:"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace sempre

namespace sempre {
namespace {

// A loopback TCP port free a moment ago, for an app to listen on; empty if
// none could be had.
std::string free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool bound = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (fd >= 0) ::close(fd);
  return bound ? std::to_string(ntohs(addr.sin_port)) : std::string();
}

TEST_F(SempreDaemon, ReadyTcpKeepsTheAppStartingUntilThePortAccepts) {
  // `--ready tcp:PORT`: status starting until the app listens, then running.
  const std::string port = free_port();
  ASSERT_FALSE(port.empty());
  const Started web = start({"-n", "web", "--min-uptime", "0", "--ready", "tcp:" + port, "--",
                             kChild, "listen-on-usr1", port});
  ASSERT_EQ(web.outcome.code, 0) << describe(web.outcome);
  ASSERT_TRUE(wait_for_file(out_log("web"), holds("waiting\n")));
  const auto before = find("web");
  ASSERT_TRUE(before);
  EXPECT_EQ(text(*before, "status"), "starting");
  ASSERT_EQ(sempre({"signal", "USR1", "web"}).code, 0);
  const auto up = await_app("web", status_is("running"));
  EXPECT_TRUE(up.ok) << up.last_seen;
}

TEST_F(SempreDaemon, AReadinessCheckUnderWayIsResumedByTheNextWorker) {
  // The worker dies while the app is still starting (not listening yet): the
  // next one takes the run over as starting and checks again, rather than
  // count it as running.
  const std::string port = free_port();
  ASSERT_FALSE(port.empty());
  const Started web = start({"-n", "web", "--min-uptime", "0", "--ready", "tcp:" + port, "--",
                             kChild, "listen-on-usr1", port});
  ASSERT_EQ(web.outcome.code, 0) << describe(web.outcome);
  ASSERT_TRUE(wait_for_file(out_log("web"), holds("waiting\n")));
  const std::vector<pid_t> workers = daemons_of(home_, /*workers=*/true);
  ASSERT_EQ(workers.size(), 1u) << describe_processes(workers);
  ASSERT_EQ(::kill(workers.front(), SIGKILL), 0);
  ASSERT_TRUE(wait_for_exit(workers.front()));

  const auto adopted =
      await_app("web", [&](const json::object& a) { return pid_of(a) == web.pid; });
  ASSERT_TRUE(adopted.ok) << adopted.last_seen;
  EXPECT_EQ(text(adopted.app, "status"), "starting") << adopted.app;
  ASSERT_EQ(::kill(web.pid, SIGUSR1), 0);
  const auto up = await_app("web", status_is("running"));
  EXPECT_TRUE(up.ok) << up.last_seen;
  EXPECT_EQ(pid_of(up.app), web.pid);
}

TEST_F(SempreDaemon, ANotifyReadinessSentWhileNoWorkerRunsIsHeardByTheNextOne) {
  // `--ready notify`: the keeper holds the run's notify socket with its
  // pipes, so a READY=1 the app sends while no worker runs waits in it for
  // the next worker, which takes the run over as starting and hears it.
  const std::string sent = dir_ + "/sent";
  const Started web = start({"-n", "web", "--min-uptime", "0", "--ready", "notify", "--", kChild,
                             "notify-on-usr1", sent});
  ASSERT_EQ(web.outcome.code, 0) << describe(web.outcome);
  ASSERT_TRUE(wait_for_file(out_log("web"), holds("waiting\n")));
  const pid_t keeper = daemon_pid();
  const std::vector<pid_t> workers = daemons_of(home_, /*workers=*/true);
  ASSERT_EQ(workers.size(), 1u) << describe_processes(workers);

  ASSERT_EQ(::kill(keeper, SIGSTOP), 0);
  ASSERT_EQ(::kill(workers.front(), SIGKILL), 0);
  ASSERT_TRUE(wait_for_exit(workers.front()));
  ASSERT_EQ(::kill(web.pid, SIGUSR1), 0);
  // Sent into the socket the keeper holds (its log line waits in the pipe).
  EXPECT_TRUE(wait_for_file(sent, holds("sent\n")));
  ASSERT_EQ(::kill(keeper, SIGCONT), 0);

  const auto up = await_app("web", status_is("running"));
  EXPECT_TRUE(up.ok) << up.last_seen;
  EXPECT_EQ(pid_of(up.app), web.pid);
}

}  // namespace
}  // namespace sempre

// --- a new user's first hour ---------------------------------------------

namespace sempre {
namespace {

TEST_F(SempreDaemon, NumericTargetNeverMatchesTheZeroPidOfAStoppedApp) {
  // Issue 7: `sempre delete 0` deleted a stopped app (its pid reads 0).
  const Started web = start(sleeper("web"));
  ASSERT_EQ(web.outcome.code, 0) << describe(web.outcome);
  ASSERT_EQ(sempre({"stop", "web"}).code, 0);
  for (const char* target : {"0", "00"}) {
    const Outcome o = sempre({"delete", target});
    EXPECT_EQ(o.code, 1) << target << ": " << describe(o);
  }
  EXPECT_TRUE(find("web").has_value()) << "the stopped app must survive";
  const Outcome digits = sempre({"start", "-n", "123", "--", kChild, "sleep", "forever"});
  EXPECT_NE(digits.code, 0) << describe(digits);
}

TEST_F(SempreDaemon, AFailedStartConsumesNoId) {
  const Outcome ghost = sempre({"start", "-n", "ghost", "--", "/nonexistent/program"});
  ASSERT_EQ(ghost.code, 1) << describe(ghost);
  const Started web = start(sleeper("web"));
  ASSERT_EQ(web.outcome.code, 0) << describe(web.outcome);
  EXPECT_EQ(web.id, 1) << web.outcome.out;
}

TEST_F(SempreDaemon, AStreamWithoutAFileOfItsOwnKeepsItsDefaultLog) {
  // Issue 7: `-o FILE` alone threw stderr away.
  const std::string out = dir_ + "/mine.out";
  const Started app = start({"-n", "both", "-o", out, "--", "/bin/sh", "-c",
                             "echo to-stdout; echo to-stderr >&2; exec sleep 1000"});
  ASSERT_EQ(app.outcome.code, 0) << describe(app.outcome);
  EXPECT_TRUE(wait_for_file(out, holds("to-stdout\n")));
  EXPECT_TRUE(wait_for_file(home_ + "/logs/both.err.log", holds("to-stderr\n")));
  const Outcome logs = sempre({"logs", "both"});
  EXPECT_NE(logs.out.find("to-stdout"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("err | to-stderr"), std::string::npos) << logs.out;
}

TEST_F(SempreDaemon, LogsCarryBytesThatAreNotUtf8) {
  // Issue 7: one byte 0xff in a log broke `sempre logs` for every app (exit 3).
  const std::string bad = "caf\xe9 \xff\xfe end";
  const Started app = start({"-n", "latin1", "--restart", "never", "--", "/bin/sh", "-c",
                             "printf 'caf\\351 \\377\\376 end\\n'"});
  ASSERT_EQ(app.outcome.code, 0) << describe(app.outcome);
  ASSERT_TRUE(await_app("latin1", status_is("exited")).ok);
  const Outcome raw = sempre({"logs", "latin1", "--raw"});
  EXPECT_EQ(raw.code, 0) << describe(raw);
  EXPECT_EQ(raw.out, bad + "\n");
  const Outcome all = sempre({"logs"});
  EXPECT_EQ(all.code, 0) << describe(all);
  EXPECT_NE(all.out.find(bad), std::string::npos) << all.out;
}

TEST_F(SempreDaemon, LogsFilterStreamsAndTakeSeveralTargets) {
  for (const char* name : {"a", "bb", "c"}) {
    const Started s = start({"-n", name, "--restart", "never", "--", "/bin/sh", "-c",
                             std::string("echo out-") + name + "; echo err-" + name + " >&2"});
    ASSERT_EQ(s.outcome.code, 0) << describe(s.outcome);
  }
  for (const char* name : {"a", "bb", "c"}) ASSERT_TRUE(await_app(name, status_is("exited")).ok);
  const Outcome o = sempre({"logs", "a", "bb", "--err"});
  EXPECT_EQ(o.code, 0) << describe(o);
  EXPECT_NE(o.out.find("a  err | err-a"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("bb err | err-bb"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("out-"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("err-c"), std::string::npos) << o.out;
  const Outcome out = sempre({"log", "c", "--out"});  // `log`: the habit's spelling
  EXPECT_EQ(out.code, 0) << describe(out);
  EXPECT_EQ(out.out, "out | out-c\n");
}

TEST_F(SempreDaemon, LogsWithNoAppSaySo) {
  const Outcome o = sempre({"logs"});
  EXPECT_EQ(o.code, 0) << describe(o);
  EXPECT_EQ(o.out, "no apps\n");
}

TEST_F(SempreDaemon, FlushEmptiesTheCurrentLogsAndTheAppWritesOn) {
  const Started app = start({"-n", "talker", "--", kChild, "signals"});
  ASSERT_EQ(app.outcome.code, 0) << describe(app.outcome);
  ASSERT_EQ(sempre({"signal", "HUP", "talker"}).code, 0);
  ASSERT_TRUE(wait_for_file(out_log("talker"), holds("got HUP\n")));
  const Outcome flush = sempre({"flush", "talker"});
  EXPECT_EQ(flush.code, 0) << describe(flush);
  EXPECT_EQ(test::read_file(out_log("talker")), "");
  ASSERT_EQ(sempre({"signal", "USR1", "talker"}).code, 0);
  EXPECT_TRUE(wait_for_file(out_log("talker"), [](const std::string& c) {
    return c == "got USR1\n";
  })) << test::read_file(out_log("talker"));
}

TEST_F(SempreDaemon, SignalTakesKillsSpellings) {
  // Issue 7: `sempre signal -HUP app` was refused though --help lists it.
  const Started app = start({"-n", "sig", "--", kChild, "signals"});
  ASSERT_EQ(app.outcome.code, 0) << describe(app.outcome);
  const Outcome dash = sempre({"signal", "-HUP", "sig"});
  EXPECT_EQ(dash.code, 0) << describe(dash);
  EXPECT_TRUE(wait_for_file(out_log("sig"), holds("got HUP\n")));
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"signal", "-SIGUSR1", "sig"}, {"signal", "-10", "sig"}}) {
    const Outcome o = sempre(args);
    EXPECT_EQ(o.code, 0) << args[1] << ": " << describe(o);
  }
  EXPECT_TRUE(wait_for_file(out_log("sig"), holds("got USR1\ngot USR1\n")));
}

TEST_F(SempreDaemon, HabitsFromOtherManagersWork) {
  const Started web = start(sleeper("web"));
  ASSERT_EQ(web.outcome.code, 0) << describe(web.outcome);
  for (const char* alias : {"ls", "ps", "status"}) {
    const Outcome o = sempre({alias});
    EXPECT_EQ(o.code, 0) << alias << ": " << describe(o);
    EXPECT_NE(o.out.find("web"), std::string::npos) << alias << ": " << o.out;
  }
  for (const char* alias : {"describe", "show"}) {
    const Outcome o = sempre({alias, "web"});
    EXPECT_EQ(o.code, 0) << alias << ": " << describe(o);
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"version"}, {"-v"}, {"-V"}, {"--version"}}) {
    const Outcome o = sempre(args);
    EXPECT_EQ(o.code, 0) << args[0];
    EXPECT_EQ(o.out.rfind("sempre ", 0), 0u) << args[0] << ": " << o.out;
  }
  const Outcome help = sempre({"help", "stop"});
  EXPECT_EQ(help.code, 0) << describe(help);
  EXPECT_NE(help.out.find("Usage: sempre stop TARGET..."), std::string::npos) << help.out;
  const Outcome typo = sempre({"lsit"});
  EXPECT_EQ(typo.code, 2);
  EXPECT_NE(typo.err.find("did you mean \"list\"?"), std::string::npos) << typo.err;
  const Outcome option = sempre({"start", "--nmae", "x", "--", kChild, "sleep", "forever"});
  EXPECT_EQ(option.code, 2);
  EXPECT_NE(option.err.find("unknown option \"--nmae\"; did you mean \"--name\"?"),
            std::string::npos)
      << option.err;
  const Outcome number = sempre({"start", "-m", "abc", "--", kChild, "sleep", "forever"});
  EXPECT_EQ(number.code, 2);
  EXPECT_NE(number.err.find("sempre: --max-restarts: \"abc\" is not a number"), std::string::npos)
      << number.err;
  for (const char* alias : {"rm", "del"}) {
    const Started s = start(sleeper(std::string("gone-") + alias));
    ASSERT_EQ(s.outcome.code, 0) << describe(s.outcome);
    EXPECT_EQ(sempre({alias, std::string("gone-") + alias}).code, 0) << alias;
    EXPECT_FALSE(find(std::string("gone-") + alias).has_value()) << alias;
  }
}

TEST_F(SempreDaemon, DaemonRestartWithNoDaemonStartsOne) {
  const Outcome o = sempre({"daemon", "restart"});
  EXPECT_EQ(o.code, 0) << describe(o);
  EXPECT_GT(daemon_pid(), 0);
  EXPECT_NE(o.out.find("started the daemon"), std::string::npos) << o.out;
}

TEST_F(SempreDaemon, RestartFailsWhenTheProgramCanNoLongerRun) {
  // Issue 7: restart answered 0, then the app was failed.
  const std::string program = dir_ + "/server";
  fs::copy_file(kChild, program);
  const Started app = start({"-n", "doomed", "--", program, "sleep", "forever"});
  ASSERT_EQ(app.outcome.code, 0) << describe(app.outcome);
  const Started other = start(sleeper("fine"));
  ASSERT_EQ(other.outcome.code, 0) << describe(other.outcome);
  fs::remove(program);
  const Outcome o = sempre({"restart", "doomed", "fine"});
  EXPECT_EQ(o.code, 1) << describe(o);
  EXPECT_NE(o.err.find("No such file or directory"), std::string::npos) << o.err;
  EXPECT_NE(o.out.find("restarted fine"), std::string::npos) << o.out;
}

TEST_F(SempreDaemon, StartWaitReturnsOnceRunningOrReportsTheCrash) {
  const Started up =
      start({"--wait", "--min-uptime", "300ms", "-n", "up", "--", kChild, "sleep", "forever"});
  ASSERT_EQ(up.outcome.code, 0) << describe(up.outcome);
  const auto listed = find("up");
  ASSERT_TRUE(listed);
  EXPECT_EQ(text(*listed, "status"), "running") << *listed;

  const Outcome crash = sempre(
      {"start", "--wait", "-n", "crash", "--", "/bin/sh", "-c", "echo about-to-fail >&2; exit 3"});
  EXPECT_EQ(crash.code, 1) << describe(crash);
  EXPECT_NE(crash.err.find("exited with code 3"), std::string::npos) << crash.err;
  EXPECT_NE(crash.err.find("about-to-fail"), std::string::npos) << crash.err;
}

TEST_F(SempreDaemon, StartNameStartsAStoppedAppAgain) {
  const Started web = start(sleeper("web"));
  ASSERT_EQ(web.outcome.code, 0) << describe(web.outcome);
  ASSERT_EQ(sempre({"stop", "web"}).code, 0);
  const Outcome again = sempre({"start", "web"});
  EXPECT_EQ(again.code, 0) << describe(again);
  EXPECT_TRUE(await_app("web", has_pid).ok);
  const auto apps = list();
  ASSERT_TRUE(apps);
  EXPECT_EQ(apps->size(), 1u) << json::serialize(*apps);
}

TEST_F(SempreDaemon, StartFindsAProgramOfTheWorkingDirectory) {
  // As forever and PM2: `sempre start worker` runs ./worker when PATH has none.
  const std::string dir = dir_ + "/app";
  fs::create_directories(dir);
  fs::copy_file(kChild, dir + "/worker");
  const Started w = start({"--cwd", dir, "--", "worker", "sleep", "forever"});
  EXPECT_EQ(w.outcome.code, 0) << describe(w.outcome);
  EXPECT_GT(w.pid, 0);
}

TEST_F(SempreDaemon, ConfusingStartsAreUsageErrors) {
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"a"}));
  const Outcome options = sempre({"start", "--name", "x", "--watch", file});
  EXPECT_EQ(options.code, 2) << describe(options);
  EXPECT_NE(options.err.find("--name, --watch do not apply to a config file"), std::string::npos)
      << options.err;
  const Outcome json_file = sempre({"start", "ecosystem.json"});
  EXPECT_EQ(json_file.code, 2) << describe(json_file);
  EXPECT_NE(json_file.err.find("config files are TOML"), std::string::npos) << json_file.err;
  const Outcome late = sempre({"start", kChild, "sleep", "forever", "--name", "web"});
  EXPECT_EQ(late.code, 0) << describe(late);
  EXPECT_NE(late.err.find("warning: \"--name\" comes after PROGRAM"), std::string::npos)
      << late.err;
  ASSERT_EQ(sempre({"start", file}).code, 0);
  const Outcome reload = sempre({"reload", "a"});
  EXPECT_EQ(reload.code, 2) << describe(reload);
  EXPECT_NE(reload.err.find("sempre restart a"), std::string::npos) << reload.err;
  const Outcome watch = sempre({"start", "-w", "-n", "watched", kChild, "sleep", "forever"});
  EXPECT_EQ(watch.code, 0) << describe(watch);
}

TEST_F(SempreDaemon, ReloadComparesOnlyWhatTheFileSaysAndTellsWhy) {
  // Issue 7: another shell's environment made reload restart every app.
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"web"}, "env = { PORT = \"1\" }\n"));
  ASSERT_EQ(sempre({"start", file}, {"SHELL_THING=a"}).code, 0);
  const auto before = find("web");
  ASSERT_TRUE(before);
  const Outcome same = sempre({"reload", file}, {"SHELL_THING=b", "PWD=/elsewhere"});
  EXPECT_EQ(same.code, 0) << describe(same);
  EXPECT_NE(same.out.find("unchanged web"), std::string::npos) << same.out;

  test::write_file(file, sleepers_toml({"web"}, "env = { PORT = \"2\" }\n"));
  const Outcome dry = sempre({"reload", file, "--dry-run"});
  EXPECT_EQ(dry.code, 0) << describe(dry);
  EXPECT_NE(dry.out.find("would restart web (env.PORT changed)"), std::string::npos) << dry.out;
  const auto still = find("web");
  ASSERT_TRUE(still);
  EXPECT_EQ(pid_of(*still), pid_of(*before)) << "--dry-run changes nothing";

  const Outcome real = sempre({"reload", file});
  EXPECT_EQ(real.code, 0) << describe(real);
  EXPECT_NE(real.out.find("restarted web (env.PORT changed)"), std::string::npos) << real.out;
  const Outcome update = sempre({"reload", file, "--update-env"}, {"SHELL_THING=c"});
  EXPECT_NE(update.out.find("restarted web (env.SHELL_THING changed)"), std::string::npos)
      << update.out;
}

TEST_F(SempreDaemon, SaveNeverEmptiesADumpKeepsItPrivateAndStoppedAppsStayStopped) {
  const Started up = start(sleeper("up"));
  const Started down = start(sleeper("down"));
  ASSERT_EQ(up.outcome.code, 0);
  ASSERT_EQ(down.outcome.code, 0);
  ASSERT_EQ(sempre({"stop", "down"}).code, 0);
  ASSERT_EQ(sempre({"save"}).code, 0);
  const std::string dump = home_ + "/apps.toml";
  EXPECT_EQ(fs::status(dump).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  ASSERT_EQ(sempre({"delete", "all"}).code, 0);
  const Outcome empty = sempre({"save"});
  EXPECT_EQ(empty.code, 1) << describe(empty);
  EXPECT_NE(test::read_file(dump).find("name = \"up\""), std::string::npos) << "the dump survives";
  const Outcome resurrect = sempre({"resurrect"});
  EXPECT_EQ(resurrect.code, 0) << describe(resurrect);
  EXPECT_TRUE(await_app("up", has_pid).ok);
  const auto stopped = find("down");
  ASSERT_TRUE(stopped);
  EXPECT_EQ(text(*stopped, "status"), "stopped") << *stopped;
  EXPECT_EQ(text(*stopped, "wanted"), "down") << *stopped;
  ASSERT_EQ(sempre({"delete", "all"}).code, 0);
  EXPECT_EQ(sempre({"save", "--force"}).code, 0);
  EXPECT_EQ(test::read_file(dump).find("[[app]]"), std::string::npos);
}

TEST_F(SempreDaemon, KillCountsOnlyTheAppsItStopped) {
  ASSERT_EQ(start(sleeper("a")).outcome.code, 0);
  ASSERT_EQ(start(sleeper("b")).outcome.code, 0);
  ASSERT_EQ(sempre({"stop", "b"}).code, 0);
  const Outcome o = sempre({"kill"});
  EXPECT_EQ(o.code, 0) << describe(o);
  EXPECT_NE(o.out.find("stopped 1 app and the daemon"), std::string::npos) << o.out;
}

TEST_F(SempreDaemon, ListShowsTheColumnsAndOrderAsked) {
  ASSERT_EQ(start(sleeper("zeta")).outcome.code, 0);
  ASSERT_EQ(start(sleeper("alpha")).outcome.code, 0);
  const Outcome o = sempre({"list", "-o", "name,cmd", "--sort", "name"});
  EXPECT_EQ(o.code, 0) << describe(o);
  const auto lines = test::split_lines(o.out);
  ASSERT_EQ(lines.size(), 3u) << o.out;
  EXPECT_EQ(lines[0].rfind("NAME", 0), 0u) << o.out;
  EXPECT_NE(lines[0].find("CMD"), std::string::npos) << o.out;
  EXPECT_EQ(lines[1].rfind("alpha", 0), 0u) << o.out;
  EXPECT_NE(lines[1].find("sleep forever"), std::string::npos) << o.out;
  EXPECT_EQ(lines[2].rfind("zeta", 0), 0u) << o.out;
  EXPECT_EQ(sempre({"list", "-o", "name,bogus"}).code, 2);
  test::write_file(home_ + "/config.toml", "[list]\ncolumns = \"name,pid\"\nsort = \"-name\"\n");
  const Outcome configured = sempre({"list"});
  const auto rows = test::split_lines(configured.out);
  ASSERT_EQ(rows.size(), 3u) << configured.out;
  EXPECT_EQ(rows[1].rfind("zeta", 0), 0u) << configured.out;
}

TEST_F(SempreDaemon, PythonRunsUnbuffered) {
  const Started py =
      start({"-n", "py", "--restart", "never", "--", "python3", "-c",
             "import os; print('unbuffered=' + os.environ.get('PYTHONUNBUFFERED', ''))"});
  ASSERT_EQ(py.outcome.code, 0) << describe(py.outcome);
  EXPECT_TRUE(wait_for_file(out_log("py"), holds("unbuffered=1\n")));
}

}  // namespace
}  // namespace sempre

namespace sempre {
namespace {

TEST_F(SempreDaemon, TheExampleAppsFileStartsAsItsHeaderSays) {
  // `sempre start examples/apps.toml` (a copy, so that its logs stay out of the tree).
  const std::string copy = dir_ + "/examples";
  fs::copy(SEMPRE_SOURCE_DIR "/examples", copy, fs::copy_options::recursive);
  const Outcome o = sempre({"start", copy + "/apps.toml"});
  ASSERT_EQ(o.code, 0) << describe(o);
  for (const char* name : {"web", "worker", "api"}) {
    EXPECT_NE(o.out.find(std::string("started ") + name), std::string::npos) << o.out;
    const Awaited up = await_app(name, status_is("running"), 20s);
    EXPECT_TRUE(up.ok) << up.last_seen;
  }
  EXPECT_TRUE(wait_for_file(copy + "/logs/api.log", holds("api listening on 127.0.0.1:3000")));
}

}  // namespace
}  // namespace sempre

namespace sempre {
namespace {

TEST_F(SempreDaemon, RestartCountsSurviveReloadAndADaemonRestart) {
  const std::string file = dir_ + "/apps.toml";
  test::write_file(file, sleepers_toml({"web"}, "env = { V = \"1\" }\n"));
  ASSERT_EQ(sempre({"start", file}).code, 0);
  ASSERT_EQ(sempre({"restart", "web"}).code, 0);
  ASSERT_EQ(number(*find("web"), "restarts"), 1);
  test::write_file(file, sleepers_toml({"web"}, "env = { V = \"2\" }\n"));
  ASSERT_EQ(sempre({"reload", file}).code, 0);
  EXPECT_EQ(number(*find("web"), "restarts"), 2);
  ASSERT_EQ(sempre({"daemon", "restart"}).code, 0);
  const Awaited back = await_app("web", has_pid);
  ASSERT_TRUE(back.ok) << back.last_seen;
  EXPECT_GE(number(back.app, "restarts"), 2) << back.last_seen;
}

TEST_F(SempreDaemon, InfoTakesAllAndSeveralAndShowsWhereAnAppCameFrom) {
  ASSERT_EQ(start(sleeper("one")).outcome.code, 0);
  ASSERT_EQ(start(sleeper("two")).outcome.code, 0);
  const Outcome all = sempre({"info", "all"});
  EXPECT_EQ(all.code, 0) << describe(all);
  EXPECT_NE(all.out.find("one (id 1)"), std::string::npos) << all.out;
  EXPECT_NE(all.out.find("two (id 2)"), std::string::npos) << all.out;
  EXPECT_NE(all.out.find("the command line"), std::string::npos) << all.out;
  const Outcome json_out = sempre({"info", "one", "two", "--json"});
  const auto parsed = parse_json(json_out.out);
  ASSERT_TRUE(parsed && parsed->is_array()) << json_out.out;
  EXPECT_EQ(parsed->as_array().size(), 2u);
}

TEST_F(SempreDaemon, ListJsonWritesCpuAsAPlainDecimal) {
  ASSERT_EQ(start(sleeper("idle")).outcome.code, 0);
  const Outcome o = sempre({"list", "--json"});
  EXPECT_EQ(o.code, 0) << describe(o);
  EXPECT_TRUE(std::regex_search(o.out, std::regex(R"("cpu":[0-9]+(\.[0-9]+)?[,}])"))) << o.out;
}

}  // namespace
}  // namespace sempre

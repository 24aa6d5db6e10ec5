// What the fault scenarios share: a temporary SEMPRE_HOME served by the real
// sempre and sempred, the apps' processes found in /proc by the FAULT_APP
// variable each one is started with, and the count of a ticker's numbered
// lines.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "e2e/subprocess.hpp"
#include "test_util.hpp"

namespace sempre::fault {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

inline const std::string kSempre = SEMPRE_BIN;
inline const std::string kChild = SEMPRE_TEST_CHILD;

// $NAME as a number, or `fallback` when unset or empty.
inline int env_number(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

inline std::vector<pid_t> all_processes() {
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

inline bool has_env(pid_t pid, const std::string& entry) {
  const std::string environ = test::read_file("/proc/" + std::to_string(pid) + "/environ");
  std::size_t at = 0;
  while (at < environ.size()) {
    const std::size_t end = environ.find('\0', at);
    if (environ.compare(at, end - at, entry) == 0) return true;
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return false;
}

inline std::string command_line(pid_t pid) {
  std::string text = test::read_file("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : text) {
    if (c == '\0') c = ' ';
  }
  return text;
}

// The numbered lines of a `tick` child ("%08d" each), counted: how many the
// ticker had written up to the last one seen, how many of them are missing,
// and how many came again.
struct Ticks {
  long checked = 0;
  long lost = 0;
  long doubled = 0;
};

inline Ticks count_ticks(const std::string& text) {
  Ticks t;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.find_first_not_of("0123456789") != std::string::npos) continue;
    const long n = std::stol(line);
    if (n > t.checked) t.lost += n - t.checked;
    if (n < t.checked) ++t.doubled;
    t.checked = std::max(t.checked, n + 1);
  }
  return t;
}

class FaultScenario : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SEMPRE_HOME");
    char tmpl[] = "/tmp/sempre-fault-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    home_ = dir_ + "/home";
  }

  void TearDown() override {
    if (HasFailure()) {
      // What the daemon saw, for the failure's story (without the
      // rotations of a flood).
      std::istringstream log(test::read_file(home_ + "/sempred.log"));
      std::string story;
      for (std::string line; std::getline(log, line);) {
        if (line.find(": rotate pid=") == std::string::npos) story += line + "\n";
      }
      std::cout << "--- sempred.log ---\n"
                << story.substr(story.size() > 20000 ? story.size() - 20000 : 0) << "---\n";
    }
    test::Subprocess kill({kSempre, "kill"}, env());
    kill.wait(60s);
    for (pid_t pid : all_processes()) {
      if (test::alive(pid) && has_env(pid, "SEMPRE_HOME=" + home_)) {
        ADD_FAILURE() << "left behind: " << pid << " " << command_line(pid);
        ::kill(pid, SIGKILL);
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::vector<std::string> env() const { return {"SEMPRE_HOME=" + home_, "NO_COLOR=1"}; }

  // Runs sempre ARGS; its exit code, and its output in `out` when given.
  int sempre(const std::vector<std::string>& args, std::string* out = nullptr) {
    std::vector<std::string> argv = {kSempre};
    argv.insert(argv.end(), args.begin(), args.end());
    test::Subprocess p(argv, env());
    const int code = p.wait(60s).value_or(-1);
    if (out != nullptr) *out = p.out() + p.err();
    return code;
  }

  // Starts app `name` running `command`, tagged FAULT_APP=name, with the
  // start options `options`.
  int start(const std::string& name, const std::vector<std::string>& command,
            const std::vector<std::string>& options = {}) {
    std::vector<std::string> args = {"start", "--name", name, "--env", "FAULT_APP=" + name};
    args.insert(args.end(), options.begin(), options.end());
    args.emplace_back("--");
    args.insert(args.end(), command.begin(), command.end());
    return sempre(args);
  }

  // The live processes of app `name`: its main process and what it forked.
  std::vector<pid_t> copies(const std::string& name) const {
    std::vector<pid_t> found;
    for (pid_t pid : all_processes()) {
      if (test::alive(pid) && has_env(pid, "FAULT_APP=" + name) &&
          has_env(pid, "SEMPRE_HOME=" + home_)) {
        found.push_back(pid);
      }
    }
    return found;
  }

  std::vector<pid_t> workers() const {
    std::vector<pid_t> found;
    for (pid_t pid : all_processes()) {
      if (test::alive(pid) &&
          command_line(pid).find(" --worker --home " + home_) != std::string::npos) {
        found.push_back(pid);
      }
    }
    return found;
  }

  // name -> app object, from `sempre list --json`; empty when it fails.
  std::map<std::string, json::object> apps() {
    test::Subprocess p({kSempre, "list", "--json"}, env());
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

  static std::int64_t number(const json::object& app, std::string_view key) {
    const json::value* v = app.if_contains(key);
    return v != nullptr && v->is_int64() ? v->as_int64() : -1;
  }

  std::string out_log(const std::string& name) const {
    return home_ + "/logs/" + name + ".out.log";
  }

  std::string dir_;
  std::string home_;
};

}  // namespace sempre::fault

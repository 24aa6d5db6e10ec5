// What `reload` says changed, named as a config file names its keys.
#include "spec_changes.hpp"

#include <gtest/gtest.h>

#include <csignal>

namespace sempre {
namespace {

using Names = std::vector<std::string>;

AppSpec web() {
  AppSpec spec;
  spec.name = "web";
  spec.monitor.argv = {"node", "server.js"};
  spec.monitor.env = {"PORT=80", "MODE=prod"};
  return spec;
}

TEST(SpecChanges, EqualSpecsHaveNone) { EXPECT_EQ(spec_changes(web(), web()), Names{}); }

TEST(SpecChanges, NamesTheFilesKeysWithoutTheUnitSuffix) {
  AppSpec after = web();
  after.monitor.kill_timeout = Millis{9000};
  after.monitor.argv = {"node", "app.js"};
  after.monitor.cwd = "/srv";
  EXPECT_EQ(spec_changes(web(), after), (Names{"cmd", "cwd", "kill_timeout"}));
}

// Pins every key and their order: a new way of comparing specs must keep
// telling users the same.
TEST(SpecChanges, EveryKeyInTheOrderOfTheSpecThenTheEnvironment) {
  AppSpec after = web();
  after.name = "api";
  MonitorOptions& m = after.monitor;
  m.argv = {"node", "api.js"};
  m.interpreter = "bun";
  m.cwd = "/srv";
  m.env = {"PORT=81", "MODE=prod"};
  m.user = "www";
  m.group = "www";
  m.umask = 022;
  m.restart = RestartMode::kNever;
  m.max_restarts = 3;
  m.min_uptime = Millis{5};
  m.restart_delay = Millis{6};
  m.backoff_max = Millis{7};
  m.kill_signal = SIGINT;
  m.kill_timeout = Millis{8};
  m.logs.out_path = "/o";
  m.logs.err_path = "/e";
  m.logs.append = true;
  m.logs.max_size = 1;
  m.logs.keep = 1;
  m.logs.timestamps = true;
  m.watch = {"/srv"};
  m.watch_ignore = {"*.tmp"};
  m.watch_debounce = Millis{9};
  m.pid_file = "/p";
  m.ready = "tcp:80";
  after.autostart = false;
  EXPECT_EQ(spec_changes(web(), after), (Names{"name",
                                               "cmd",
                                               "cwd",
                                               "out",
                                               "err",
                                               "watch",
                                               "interpreter",
                                               "user",
                                               "group",
                                               "umask",
                                               "restart",
                                               "max_restarts",
                                               "min_uptime",
                                               "restart_delay",
                                               "backoff_max",
                                               "kill_signal",
                                               "kill_timeout",
                                               "append",
                                               "log_max_size",
                                               "log_keep",
                                               "log_timestamps",
                                               "watch_ignore",
                                               "watch_debounce",
                                               "pid_file",
                                               "ready",
                                               "autostart",
                                               "env.PORT"}));
}

TEST(SpecChanges, NamesEachVariableAddedOrChangedThenEachRemoved) {
  AppSpec after = web();
  after.monitor.env = {"PORT=81", "DEBUG=1"};
  EXPECT_EQ(spec_changes(web(), after), (Names{"env.DEBUG", "env.PORT", "env.MODE"}));
}

TEST(SpecChanges, AVariableWithoutAValueIsAnEmptyOne) {
  AppSpec before = web();
  before.monitor.env = {"FLAG"};
  AppSpec after = web();
  after.monitor.env = {"FLAG="};
  EXPECT_EQ(spec_changes(before, after), Names{});
}

}  // namespace
}  // namespace sempre

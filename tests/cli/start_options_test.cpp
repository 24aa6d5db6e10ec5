#include "start_options.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "option_schema.hpp"

namespace sempre::cli {
namespace {

using namespace std::chrono_literals;

// Parses `sempre run ARGS...` into `start` and converts the options.
Result<AppOptions> parse_into(StartArgs& start, std::vector<std::string> args,
                              std::vector<std::string> env = {"PATH=/bin"}) {
  CLI::App app;
  Invocation invocation;
  auto dashes = std::find(args.begin(), args.end(), "--");
  if (dashes != args.end()) {
    invocation.has_dashes = true;
    invocation.after_dashes.assign(dashes + 1, args.end());
    args.erase(dashes, args.end());
  }
  add_start_options(app, start, invocation, StartCommand::kStart);
  std::reverse(args.begin(), args.end());
  app.parse(args);
  return to_app_options(start, env, "/work");
}

Result<AppOptions> parse(std::vector<std::string> args,
                         std::vector<std::string> env = {"PATH=/bin"}) {
  StartArgs start;
  return parse_into(start, std::move(args), std::move(env));
}

TEST(StartOptions, DefaultsFollowTheDesign) {
  auto a = parse({"node", "server.js"});
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->name, "node");
  EXPECT_EQ(a->monitor.argv, (std::vector<std::string>{"node", "server.js"}));
  EXPECT_EQ(a->monitor.restart, RestartMode::kAlways);
  EXPECT_FALSE(a->monitor.max_restarts.has_value());
  EXPECT_EQ(a->monitor.min_uptime, 1s);
  EXPECT_EQ(a->monitor.restart_delay, 0ms);
  EXPECT_EQ(a->monitor.backoff_max, 30s);
  EXPECT_EQ(a->monitor.kill_signal, SIGTERM);
  EXPECT_EQ(a->monitor.kill_timeout, 5s);
  EXPECT_EQ(a->monitor.cwd, "/work");
  EXPECT_EQ(a->monitor.logs.max_size, 10u * 1024 * 1024);
  EXPECT_EQ(a->monitor.logs.keep, 5);
}

TEST(StartOptions, DefaultNameIsTheProgramsBaseName) {
  EXPECT_EQ(default_app_name("/srv/app/server.js"), "server");
  EXPECT_EQ(default_app_name("python3"), "python3");
  EXPECT_EQ(default_app_name("./.hidden"), ".hidden");
}

TEST(StartOptions, EveryOptionReachesTheMonitorOptions) {
  auto a = parse({"-n",
                  "api",
                  "--cwd",
                  "srv",
                  "--env",
                  "A=1",
                  "--env",
                  "PATH=/x",
                  "--user",
                  "nobody",
                  "--group",
                  "nogroup",
                  "--umask",
                  "027",
                  "--restart",
                  "on-failure",
                  "-m",
                  "4",
                  "--min-uptime",
                  "2s",
                  "--restart-delay",
                  "250ms",
                  "--backoff-max",
                  "1m",
                  "--kill-signal",
                  "INT",
                  "--kill-timeout",
                  "10s",
                  "-o",
                  "out.log",
                  "-e",
                  "/tmp/err.log",
                  "-a",
                  "--log-max-size",
                  "1M",
                  "--log-keep",
                  "3",
                  "--log-timestamps",
                  "--watch=src",
                  "--watch-ignore",
                  "*.tmp",
                  "--pid-file",
                  "app.pid",
                  "-c",
                  "python3 -u",
                  "--",
                  "app.py",
                  "--port",
                  "80"});
  ASSERT_TRUE(a.ok()) << a.error().message;
  const MonitorOptions& m = a->monitor;
  EXPECT_EQ(a->name, "api");
  EXPECT_EQ(m.cwd, "/work/srv");
  EXPECT_EQ(m.env, (std::vector<std::string>{"A=1", "PATH=/x"}));
  EXPECT_EQ(m.user, "nobody");
  EXPECT_EQ(m.group, "nogroup");
  EXPECT_EQ(m.umask, std::optional<mode_t>(027));
  EXPECT_EQ(m.restart, RestartMode::kOnFailure);
  EXPECT_EQ(m.max_restarts, std::optional<int>(4));
  EXPECT_EQ(m.min_uptime, 2s);
  EXPECT_EQ(m.restart_delay, 250ms);
  EXPECT_EQ(m.backoff_max, 60s);
  EXPECT_EQ(m.kill_signal, SIGINT);
  EXPECT_EQ(m.kill_timeout, 10s);
  EXPECT_EQ(m.logs.out_path, "/work/out.log");
  EXPECT_EQ(m.logs.err_path, "/tmp/err.log");
  EXPECT_TRUE(m.logs.append);
  EXPECT_EQ(m.logs.max_size, 1024u * 1024);
  EXPECT_EQ(m.logs.keep, 3);
  EXPECT_TRUE(m.logs.timestamps);
  EXPECT_EQ(m.watch, std::vector<std::string>{"/work/srv/src"});
  EXPECT_EQ(m.watch_ignore, std::vector<std::string>{"*.tmp"});
  EXPECT_EQ(m.pid_file, "/work/app.pid");
  EXPECT_EQ(m.interpreter, "python3 -u");
  EXPECT_EQ(m.argv, (std::vector<std::string>{"app.py", "--port", "80"}));
}

TEST(StartOptions, NiceAndLimitNofileReachTheMonitorOptions) {
  auto a = parse({"--nice", "7", "--limit-nofile", "512", "server"});
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->monitor.nice, 7);
  EXPECT_EQ(a->monitor.limit_nofile, 512u);
  auto unset = parse({"server"});
  ASSERT_TRUE(unset.ok()) << unset.error().message;
  EXPECT_FALSE(unset->monitor.nice.has_value());
  EXPECT_FALSE(unset->monitor.limit_nofile.has_value());
  auto bad = parse({"--nice", "99", "server"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "--nice: must be from -20 to 19");
}

TEST(StartOptions, AnEmptyValueKeepsWhatTheDefaultsSay) {
  MonitorOptions defaults;
  defaults.user = "www";
  defaults.ready = "tcp:80";
  CLI::App app;
  StartArgs start;
  Invocation invocation;
  add_start_options(app, start, invocation, StartCommand::kStart);
  std::vector<std::string> args = {"--user", "", "--ready", "", "--min-uptime", "", "server"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  auto a = to_app_options(start, {"PATH=/bin"}, "/work", &defaults);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->monitor.user, "www");
  EXPECT_EQ(a->monitor.ready, "tcp:80");
  EXPECT_EQ(a->monitor.min_uptime, MonitorOptions{}.min_uptime);
}

TEST(StartOptions, EveryRowOfTheOptionSchemaIsAFlagOfStart) {
  // A row is a flag without any code of its own: each changes its field.
  for (const OptionRow& row : option_rows()) {
    if (row.flags.empty()) continue;
    std::vector<std::string> args = {"--" + std::string(long_flag(row))};
    if (row.kind != OptionKind::kFlag) {
      args.push_back(row.kind == OptionKind::kInteger    ? "3"
                     : row.kind == OptionKind::kText     ? "tcp:1"
                     : row.kind == OptionKind::kSignal   ? "HUP"
                     : row.kind == OptionKind::kOctal    ? "077"
                     : row.kind == OptionKind::kRestart  ? "never"
                     : row.kind == OptionKind::kSize     ? "1K"
                     : row.kind == OptionKind::kDuration ? "9s"
                     : row.kind == OptionKind::kCount    ? "9"
                                                         : "x.y");
    }
    args.emplace_back("server");
    auto a = parse(args);
    ASSERT_TRUE(a.ok()) << row.key << ": " << a.error().message;
    EXPECT_FALSE(same_value(row, *a, AppSpec{})) << row.key;
  }
}

TEST(StartOptions, OptionsAfterTheProgramBelongToTheProgram) {
  auto a = parse({"server", "--name", "x", "-m", "3"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->name, "server");
  EXPECT_EQ(a->monitor.argv, (std::vector<std::string>{"server", "--name", "x", "-m", "3"}));
}

TEST(StartOptions, DashesAfterTheProgramAreTheProgramsToo) {
  auto a = parse({"--name", "x", "server", "-v", "--", "--port", "80"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->monitor.argv, (std::vector<std::string>{"server", "-v", "--", "--port", "80"}));
}

TEST(StartOptions, BareWatchWatchesTheWorkingDirectory) {
  auto a = parse({"-w", "--", "server"});
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->monitor.watch, std::vector<std::string>{"/work"});
}

TEST(StartOptions, LogWritesBothStreamsToOneFile) {
  auto a = parse({"-l", "all.log", "server"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->monitor.logs.out_path, "/work/all.log");
  EXPECT_EQ(a->monitor.logs.err_path, "/work/all.log");
}

TEST(StartOptions, EnvExtendsTheCallersEnvironment) {
  auto a = parse({"--env", "B=2", "server"}, {"PATH=/bin", "A=1"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->monitor.env, (std::vector<std::string>{"PATH=/bin", "A=1", "B=2"}));
}

TEST(StartOptions, WhatTheCommandLineLeavesUnsaidComesFromTheDefaults) {
  MonitorOptions defaults;
  defaults.kill_timeout = std::chrono::seconds(7);
  defaults.restart = RestartMode::kOnFailure;
  defaults.logs.keep = 9;
  defaults.env = {"PATH=/bin", "FROM_CONFIG=1"};
  CLI::App app;
  StartArgs start;
  Invocation invocation;
  add_start_options(app, start, invocation, StartCommand::kStart);
  std::vector<std::string> args = {"--restart", "never", "server"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  auto a = to_app_options(start, {"PATH=/usr/bin"}, "/work", &defaults);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->monitor.kill_timeout, 7s);
  EXPECT_EQ(a->monitor.logs.keep, 9);
  EXPECT_EQ(a->monitor.restart, RestartMode::kNever);
  EXPECT_EQ(a->monitor.env, (std::vector<std::string>{"PATH=/bin", "FROM_CONFIG=1"}));
  EXPECT_EQ(a->monitor.cwd, "/work");
}

TEST(StartOptions, BadValuesAreRejectedNamingTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"--restart", "sometimes", "x"}, "--restart: "},
      {{"--kill-timeout", "5x", "x"}, "--kill-timeout: "},
      {{"--kill-timeout", "0", "x"}, "--kill-timeout: "},
      {{"--min-uptime", "soon", "x"}, "--min-uptime: "},
      {{"--kill-signal", "SIGNOPE", "x"}, "--kill-signal: "},
      {{"--log-max-size", "big", "x"}, "--log-max-size: "},
      {{"--env", "NOEQUALS", "x"}, "--env: "},
      {{"--umask", "999", "x"}, "--umask: "},
      {{"-m", "-1", "x"}, "--max-restarts: "},
      {{"-l", "a.log", "-o", "b.log", "x"}, "--log: "},
      {{"--kil-timeout", "5s", "x"},
       "unknown option \"--kil-timeout\"; did you mean \"--kill-timeout\"?"},
      {{"--name", "", "x"}, "--name: the name must not be empty"},
      {{"--watch-debounce", "later", "x"}, "--watch-debounce: "},
      {{"--env-file", "/nonexistent/.env", "x"}, "--env-file: /nonexistent/.env: cannot read"},
  };
  for (const auto& c : cases) {
    auto a = parse(c.args);
    ASSERT_FALSE(a.ok()) << c.expected;
    EXPECT_EQ(a.error().message.rfind(c.expected, 0), 0u) << a.error().message;
    EXPECT_EQ(a.error().kind, ErrorKind::kInvalidArgument);
  }
}

TEST(StartOptions, WatchIsAFlagAndNeverSwallowsTheProgram) {
  // Issue 7: `sempre start -w server.js` ran nothing ("no program to run").
  auto a = parse({"-w", "server.js"});
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->monitor.argv, std::vector<std::string>{"server.js"});
  EXPECT_EQ(a->monitor.watch, std::vector<std::string>{"/work"});
}

TEST(StartOptions, WatchPathsComeWithEqualsOrWatchPath) {
  auto a = parse({"--watch=src", "--watch-path", "lib", "--watch-path", "/etc/app", "server"});
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->monitor.watch, (std::vector<std::string>{"/work/src", "/work/lib", "/etc/app"}));
  auto d = parse({"-w", "--watch-debounce", "1s", "server"});
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->monitor.watch_debounce, 1s);
}

TEST(StartOptions, OptionsAfterTheProgramAreReportedUnlessDashesSayItIsMeant) {
  StartArgs late;
  ASSERT_TRUE(parse_into(late, {"server.js", "--name", "web", "--watch", "--port=80"}).ok());
  EXPECT_EQ(late.late_options, (std::vector<std::string>{"--name", "--watch"}));
  const std::string warning = late_options_warning(late, "start");
  EXPECT_NE(warning.find("\"--name\", \"--watch\" come after PROGRAM"), std::string::npos)
      << warning;
  EXPECT_NE(warning.find("server.js gets them"), std::string::npos) << warning;

  StartArgs meant;
  ASSERT_TRUE(parse_into(meant, {"--", "server.js", "--name", "web"}).ok());
  EXPECT_TRUE(meant.late_options.empty());
  EXPECT_EQ(late_options_warning(meant, "start"), "");
}

TEST(StartOptions, EnvFileAndNoEnvInherit) {
  char tmpl[] = "/tmp/sempre-envfile-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  const std::string text = "# comment\nexport DB=postgres://x\nQUOTED=\"a b\"\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  auto a = parse({"--env-file", tmpl, "--env", "DB=override", "server"}, {"PATH=/bin", "HOME=/h"});
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->monitor.env,
            (std::vector<std::string>{"PATH=/bin", "HOME=/h", "QUOTED=a b", "DB=override"}));
  auto bare = parse({"--no-env-inherit", "--env-file", tmpl, "server"}, {"PATH=/bin", "HOME=/h"});
  ASSERT_TRUE(bare.ok()) << bare.error().message;
  EXPECT_EQ(bare->monitor.env, (std::vector<std::string>{"DB=postgres://x", "QUOTED=a b"}));
  ::unlink(tmpl);
}

}  // namespace
}  // namespace sempre::cli

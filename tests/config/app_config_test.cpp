#include "app_config.hpp"

#include <gtest/gtest.h>

#include <csignal>

#include "test_util.hpp"

namespace sempre {
namespace {

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

const Strings kBaseEnv = {"PATH=/usr/bin:/bin", "HOME=/home/me"};
constexpr const char* kFile = "/srv/conf/apps.toml";

AppsFile parse(const std::string& text, const Strings& env = kBaseEnv) {
  return parse_apps(text, kFile, env);
}

std::string errors_of(const AppsFile& f) {
  std::string out;
  for (const auto& e : f.errors) out += e.str() + "\n";
  return out;
}

// One app with `cmd = ["prog"]` and the given extra keys.
AppSpec parse_one(const std::string& keys) {
  const AppsFile f = parse("[[app]]\ncmd = [\"prog\"]\n" + keys);
  EXPECT_TRUE(f.ok()) << errors_of(f);
  EXPECT_EQ(f.apps.size(), f.ok() ? 1u : 0u);
  return f.apps.empty() ? AppSpec{} : f.apps.front();
}

// The single error of a file, as "LINE:COLUMN: message".
std::string only_error(const std::string& text) {
  const AppsFile f = parse(text);
  EXPECT_TRUE(f.apps.empty());
  EXPECT_EQ(f.errors.size(), 1u) << errors_of(f);
  if (f.errors.empty()) return "";
  const ConfigError& e = f.errors.front();
  EXPECT_EQ(e.file, kFile);
  return std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message;
}

// --- defaults and each key ---------------------------------------------------

TEST(AppConfig, NiceAndLimitNofileAreKeysAndDefaults) {
  const AppSpec app = parse_one("nice = 5\nlimit_nofile = 256\n");
  EXPECT_EQ(app.monitor.nice, 5);
  EXPECT_EQ(app.monitor.limit_nofile, 256u);
  const AppsFile f =
      parse("[defaults]\nnice = 10\n[[app]]\ncmd = \"a\"\n[[app]]\ncmd = \"b\"\nnice = 1\n");
  ASSERT_TRUE(f.ok()) << errors_of(f);
  EXPECT_EQ(f.apps[0].monitor.nice, 10);
  EXPECT_EQ(f.apps[1].monitor.nice, 1);
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nnice = 40\n"), "3:8: nice: must be from -20 to 19");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nlimit_nofile = \"many\"\n"),
            "3:16: limit_nofile: expected an integer, got a string");
}

TEST(AppConfig, DefaultsAreTheCommandLines) {
  const AppSpec app = parse_one("");
  MonitorOptions expected;
  expected.argv = {"prog"};
  expected.cwd = "/srv/conf";
  expected.env = kBaseEnv;
  EXPECT_EQ(app.name, "prog");
  EXPECT_EQ(app.monitor, expected);
}

TEST(AppConfig, NameDefaultsToTheProgramsBaseNameWithoutExtension) {
  const AppsFile f = parse(
      "[[app]]\ncmd = [\"/opt/app/server.js\", \"--port\", \"80\"]\n"
      "[[app]]\ncmd = \"./.hidden\"\n");
  ASSERT_TRUE(f.ok()) << errors_of(f);
  EXPECT_EQ(f.apps[0].name, "server");
  EXPECT_EQ(f.apps[1].name, ".hidden");
}

TEST(AppConfigKey, Name) { EXPECT_EQ(parse_one("name = \"api\"").name, "api"); }

TEST(AppConfigKey, CmdArray) {
  EXPECT_EQ(parse("[[app]]\ncmd = [\"node\", \"a b.js\", \"\"]\n").apps.at(0).monitor.argv,
            (Strings{"node", "a b.js", ""}));
}

TEST(AppConfigKey, CmdString) {
  EXPECT_EQ(parse("[[app]]\ncmd = \"python3 -m http.server 8000\"\n").apps.at(0).monitor.argv,
            (Strings{"python3", "-m", "http.server", "8000"}));
}

TEST(AppConfigKey, Cwd) {
  EXPECT_EQ(parse_one("cwd = \"/var/www\"").monitor.cwd, "/var/www");
  EXPECT_EQ(parse_one("cwd = \"site/../www\"").monitor.cwd, "/srv/conf/www");
}

TEST(AppConfigKey, EnvAddsToTheCallersEnvironmentAndReplacesItsVariables) {
  EXPECT_EQ(parse_one("env = { PORT = \"80\", HOME = \"/h\", N = 3, B = true }").monitor.env,
            (Strings{"PATH=/usr/bin:/bin", "PORT=80", "HOME=/h", "N=3", "B=true"}));
}

TEST(AppConfigKey, EnvKeepsTheFilesOrder) {
  EXPECT_EQ(
      parse_one("env_inherit = false\n[app.env]\nZ = \"1\"\nA = \"2\"\nM = \"3\"\n").monitor.env,
      (Strings{"Z=1", "A=2", "M=3"}));
}

TEST(AppConfigKey, EnvFile) {
  test::TempDir dir;
  test::write_file(
      dir.file("app.env"),
      "# a comment\n\nA=1\nexport B = two words \n  C=\"quoted # \\\"x\\\"\"\nD='$HOME'\nE=\n");
  const AppsFile f =
      parse_apps("[[app]]\ncmd = \"prog\"\nenv_file = \"app.env\"\nenv = { E = \"table\" }\n",
                 dir.file("apps.toml"), {"A=0", "Z=9"});
  ASSERT_TRUE(f.ok()) << errors_of(f);
  EXPECT_EQ(f.apps[0].monitor.env,
            (Strings{"Z=9", "A=1", "B=two words", "C=quoted # \"x\"", "D=$HOME", "E=table"}));
}

TEST(AppConfigKey, EnvInheritFalseStartsFromNothing) {
  EXPECT_EQ(parse_one("env_inherit = false\nenv = { A = \"1\" }").monitor.env, (Strings{"A=1"}));
  EXPECT_EQ(parse_one("env_inherit = true").monitor.env, kBaseEnv);
}

TEST(AppConfigKey, UserAndGroup) {
  const AppSpec app = parse_one("user = \"nobody\"\ngroup = \"nogroup\"");
  EXPECT_EQ(app.monitor.user, "nobody");
  EXPECT_EQ(app.monitor.group, "nogroup");
}

TEST(AppConfigKey, UmaskAsOctalStringOrOctalInteger) {
  EXPECT_EQ(parse_one("umask = \"027\"").monitor.umask, std::optional<mode_t>(027));
  EXPECT_EQ(parse_one("umask = 0o022").monitor.umask, std::optional<mode_t>(022));
  EXPECT_EQ(parse_one("umask = 0").monitor.umask, std::optional<mode_t>(0));
  EXPECT_FALSE(parse_one("").monitor.umask.has_value());
}

TEST(AppConfigKey, Restart) {
  EXPECT_EQ(parse_one("restart = \"on-failure\"").monitor.restart, RestartMode::kOnFailure);
  EXPECT_EQ(parse_one("restart = \"never\"").monitor.restart, RestartMode::kNever);
  EXPECT_EQ(parse_one("restart = \"always\"").monitor.restart, RestartMode::kAlways);
}

TEST(AppConfigKey, MaxRestarts) {
  EXPECT_EQ(parse_one("max_restarts = 4").monitor.max_restarts, std::optional<int>(4));
}

TEST(AppConfigKey, MinUptime) {
  EXPECT_EQ(parse_one("min_uptime = \"2s\"").monitor.min_uptime, 2s);
  EXPECT_EQ(parse_one("min_uptime = 1500").monitor.min_uptime, 1500ms);
}

TEST(AppConfigKey, RestartDelay) {
  EXPECT_EQ(parse_one("restart_delay = \"250ms\"").monitor.restart_delay, 250ms);
}

TEST(AppConfigKey, BackoffMax) {
  EXPECT_EQ(parse_one("backoff_max = \"1m30s\"").monitor.backoff_max, 90s);
}

TEST(AppConfigKey, KillSignal) {
  EXPECT_EQ(parse_one("kill_signal = \"INT\"").monitor.kill_signal, SIGINT);
  EXPECT_EQ(parse_one("kill_signal = \"SIGHUP\"").monitor.kill_signal, SIGHUP);
  EXPECT_EQ(parse_one("kill_signal = 10").monitor.kill_signal, 10);
}

TEST(AppConfigKey, KillTimeout) {
  EXPECT_EQ(parse_one("kill_timeout = \"10s\"").monitor.kill_timeout, 10s);
}

TEST(AppConfigKey, OutAndErr) {
  const AppSpec app = parse_one("out = \"/var/log/a.out\"\nerr = \"logs/a.err\"");
  EXPECT_EQ(app.monitor.logs.out_path, "/var/log/a.out");
  EXPECT_EQ(app.monitor.logs.err_path, "/srv/conf/logs/a.err");
}

TEST(AppConfigKey, LogIsBothStreams) {
  const AppSpec app = parse_one("log = \"a.log\"");
  EXPECT_EQ(app.monitor.logs.out_path, "/srv/conf/a.log");
  EXPECT_EQ(app.monitor.logs.err_path, "/srv/conf/a.log");
}

TEST(AppConfigKey, Append) { EXPECT_TRUE(parse_one("append = true").monitor.logs.append); }

TEST(AppConfigKey, LogMaxSize) {
  EXPECT_EQ(parse_one("log_max_size = \"1M\"").monitor.logs.max_size, 1024u * 1024);
  EXPECT_EQ(parse_one("log_max_size = 4096").monitor.logs.max_size, 4096u);
  EXPECT_EQ(parse_one("log_max_size = 0").monitor.logs.max_size, 0u);
}

TEST(AppConfigKey, LogKeep) { EXPECT_EQ(parse_one("log_keep = 9").monitor.logs.keep, 9); }

TEST(AppConfigKey, LogTimestamps) {
  EXPECT_TRUE(parse_one("log_timestamps = true").monitor.logs.timestamps);
}

TEST(AppConfigKey, WatchTrueIsTheAppsCwd) {
  EXPECT_EQ(parse_one("cwd = \"site\"\nwatch = true").monitor.watch, (Strings{"/srv/conf/site"}));
  EXPECT_EQ(parse_one("watch = false").monitor.watch, Strings{});
}

TEST(AppConfigKey, WatchPathOrPaths) {
  EXPECT_EQ(parse_one("watch = \"src\"").monitor.watch, (Strings{"/srv/conf/src"}));
  EXPECT_EQ(parse_one("watch = [\"src\", \"/etc/app.conf\"]").monitor.watch,
            (Strings{"/srv/conf/src", "/etc/app.conf"}));
}

TEST(AppConfigKey, WatchIgnore) {
  EXPECT_EQ(parse_one("watch_ignore = [\"*.tmp\", \"node_modules\"]").monitor.watch_ignore,
            (Strings{"*.tmp", "node_modules"}));
}

TEST(AppConfigKey, WatchDebounce) {
  EXPECT_EQ(parse_one("watch_debounce = \"1s\"").monitor.watch_debounce, 1s);
}

TEST(AppConfigKey, PidFile) {
  EXPECT_EQ(parse_one("pid_file = \"run/app.pid\"").monitor.pid_file, "/srv/conf/run/app.pid");
}

TEST(AppConfigKey, Interpreter) {
  EXPECT_EQ(parse_one("interpreter = \"python3 -u\"").monitor.interpreter, "python3 -u");
}

// --- cmd strings ---------------------------------------------------------------

Strings split(const std::string& toml_string) {
  const AppsFile f = parse("[[app]]\nname = \"x\"\ncmd = " + toml_string + "\n");
  EXPECT_TRUE(f.ok()) << errors_of(f);
  return f.apps.empty() ? Strings{} : f.apps[0].monitor.argv;
}

TEST(AppConfigCmd, SplitsOnBlanksLikeAShell) {
  EXPECT_EQ(split("\"  a \\t b\\nc  \""), (Strings{"a", "b", "c"}));
}

TEST(AppConfigCmd, SingleQuotesAreLiteral) {
  EXPECT_EQ(split("\"sh -c 'echo \\\"$HOME\\\" \\\\n'\""),
            (Strings{"sh", "-c", "echo \"$HOME\" \\n"}));
}

TEST(AppConfigCmd, DoubleQuotesTakeEscapes) {
  EXPECT_EQ(split(R"('a "b \"c\" \\ \$x \n" d')"), (Strings{"a", R"(b "c" \ $x \n)", "d"}));
}

TEST(AppConfigCmd, BackslashEscapesOutsideQuotes) {
  EXPECT_EQ(split(R"('''a\ b c\"d \'e''')"), (Strings{"a b", "c\"d", "'e"}));
}

TEST(AppConfigCmd, QuotesJoinAdjacentText) {
  EXPECT_EQ(split(R"('''--name="my app" '' x""y''')"), (Strings{"--name=my app", "", "xy"}));
}

TEST(AppConfigCmd, NothingIsExpanded) {
  EXPECT_EQ(split("'echo $HOME ~ *.txt $(id) | cat'"),
            (Strings{"echo", "$HOME", "~", "*.txt", "$(id)", "|", "cat"}));
}

TEST(AppConfigCmd, UnterminatedQuoteIsAnError) {
  EXPECT_EQ(only_error("[[app]]\ncmd = \"sh -c 'echo\"\n"), "2:7: cmd: unterminated ' quote");
  EXPECT_EQ(only_error("[[app]]\ncmd = 'a \"b'\n"), "2:7: cmd: unterminated \" quote");
  EXPECT_EQ(only_error("[[app]]\ncmd = 'a \\'\n"),
            "2:7: cmd: a backslash at the end escapes nothing");
}

TEST(AppConfigCmd, EmptyIsAnError) {
  EXPECT_EQ(only_error("[[app]]\ncmd = \"  \"\n"), "2:7: cmd: no program to run");
  EXPECT_EQ(only_error("[[app]]\ncmd = []\n"), "2:7: cmd: no program to run");
}

// --- errors --------------------------------------------------------------------

TEST(AppConfigError, UnknownKeySuggestsTheNearestKnownOne) {
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\n  kill_timout = \"5s\"\n"),
            "3:3: unknown key \"kill_timout\"; did you mean \"kill_timeout\"?");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nmax-restarts = 3\n"),
            "3:1: unknown key \"max-restarts\"; did you mean \"max_restarts\"?");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nzzzzzzzzzzzz = 1\n"),
            "3:1: unknown key \"zzzzzzzzzzzz\"");
}

TEST(AppConfigError, UnknownTopLevelKeyOrTable) {
  EXPECT_EQ(only_error("[[apps]]\ncmd = \"x\"\n"),
            "1:3: unknown key \"apps\"; did you mean \"app\"?");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\n[defaults]\n[extra]\n"),
            "4:2: unknown key \"extra\"; expected \"app\" or \"defaults\"");
  EXPECT_EQ(only_error("version = 2\n"),
            "1:1: unknown key \"version\"; expected \"app\" or \"defaults\"");
}

TEST(AppConfigError, WrongType) {
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nmax_restarts = \"3\"\n"),
            "3:16: max_restarts: expected an integer, got a string");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nappend = 1\n"),
            "3:10: append: expected a boolean (true or false), got an integer");
  EXPECT_EQ(only_error("[[app]]\ncmd = 5\n"),
            "2:7: cmd: expected an array of strings or a string, got an integer");
  EXPECT_EQ(only_error("[[app]]\ncmd = [\"a\",\n   1]\n"),
            "3:4: cmd: expected an array of strings, got an integer");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nenv = { A = [1] }\n"),
            "3:13: env.A: expected a string, got an array");
  EXPECT_EQ(only_error("app = 1\n"),
            "1:7: app: expected an array of tables ([[app]]), got an integer");
  EXPECT_EQ(only_error("[app]\ncmd = \"x\"\n"),
            "1:1: app: expected an array of tables ([[app]]), got a table");
}

TEST(AppConfigError, BadValues) {
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nmin_uptime = \"5 parsecs\"\n"),
            "3:14: min_uptime: invalid duration \"5 parsecs\": expected a number with a unit ms, "
            "s, m or h "
            "(e.g. 250ms, 5s, 1h30m)");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nkill_timeout = 0\n"),
            "3:16: kill_timeout: must be longer than 0");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nrestart_delay = -1\n"),
            "3:17: restart_delay: must not be negative");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nlog_max_size = \"10Q\"\n"),
            "3:16: log_max_size: invalid size \"10Q\": expected a number of bytes with an optional "
            "unit K, M, G "
            "or T (binary, e.g. 512, 64K, 10M)");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nlog_keep = -2\n"),
            "3:12: log_keep: must be 0 or more");
  EXPECT_EQ(
      only_error("[[app]]\ncmd = \"x\"\nrestart = \"sometimes\"\n"),
      "3:11: restart: invalid restart policy \"sometimes\": expected always, on-failure or never");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nkill_signal = \"TERMINATE\"\n").substr(0, 50),
            "3:15: kill_signal: invalid signal \"TERMINATE\": exp");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\numask = \"0999\"\n"),
            "3:9: umask: expected an octal mode such as \"022\", got \"0999\"");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\numask = 22\n"),
            "3:9: umask: write the mode in octal, as 0o22 or \"22\"");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nname = \"\"\n"), "3:8: name: must not be empty");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\nwatch = [\"\"]\n"), "3:10: watch: must not be empty");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"x\"\n[app.env]\n\"A=B\" = \"1\"\n"),
            "4:1: env: invalid variable name \"A=B\"");
}

TEST(AppConfigError, DuplicateNamePointsAtTheSecondAndNamesTheFirstsLine) {
  EXPECT_EQ(
      only_error("[[app]]\nname = \"web\"\ncmd = \"a\"\n\n[[app]]\ncmd = \"b\"\nname = \"web\"\n"),
      "7:8: duplicate app name \"web\" (first used by the app at line 1)");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"/bin/node a.js\"\n[[app]]\ncmd = \"node b.js\"\n"),
            "3:1: duplicate app name \"node\" (first used by the app at line 1)");
}

TEST(AppConfigError, MissingCmdIsReportedAtTheAppTable) {
  EXPECT_EQ(only_error("[[app]]\ncmd = \"a\"\n\n  [[app]]\nname = \"b\"\n"),
            "4:3: missing cmd: the program to run, e.g. cmd = [\"python3\", \"app.py\"]");
}

TEST(AppConfigError, TomlSyntax) {
  EXPECT_EQ(only_error("[[app]]\ncmd = \"a\nname = \"b\"\n").substr(0, 30),
            "2:9: Error while parsing strin");
  EXPECT_EQ(only_error("[[app]]\ncmd = \"a\"\ncmd = \"b\"\n"),
            "3:7: Error while parsing key-value pair: cannot redefine existing string 'cmd'");
}

TEST(AppConfigError, LogCannotBeCombinedWithOutOrErr) {
  EXPECT_EQ(only_error("[[app]]\ncmd = \"a\"\nout = \"o\"\nlog = \"l\"\n"),
            "4:1: log: cannot be combined with out or err (log is both streams in one file)");
}

TEST(AppConfigError, NameAndCmdAreNotDefaults) {
  EXPECT_EQ(only_error("[defaults]\ncmd = \"a\"\n[[app]]\ncmd = \"b\"\n"),
            "2:1: cmd: not allowed in [defaults]; each app sets its own");
}

TEST(AppConfigError, EnvFileErrorsNameTheEnvFile) {
  test::TempDir dir;
  test::write_file(dir.file("bad.env"), "A=1\n  no equals sign\nB='open\n");
  const AppsFile f = parse_apps(
      "[[app]]\ncmd = \"a\"\nenv_file = \"bad.env\"\n[[app]]\ncmd = \"b\"\nenv_file = "
      "\"none.env\"\n",
      dir.file("apps.toml"), {});
  EXPECT_TRUE(f.apps.empty());
  ASSERT_EQ(f.errors.size(), 3u) << errors_of(f);
  EXPECT_EQ(f.errors[0].str(),
            dir.file("bad.env") + ":2:3: expected KEY=VALUE, got \"no equals sign\"");
  EXPECT_EQ(f.errors[1].str(),
            dir.file("bad.env") + ":3:1: unterminated ' quote in the value of \"B\"");
  EXPECT_EQ(f.errors[2].str(), dir.file("apps.toml") + ":6:12: env_file: cannot read \"" +
                                   dir.file("none.env") + "\": No such file or directory");
}

TEST(AppConfigError, EveryErrorIsCollectedAndNoAppIsReturned) {
  const AppsFile f = parse(
      "[[app]]\nname = \"good\"\ncmd = \"a\"\n"
      "[[app]]\nname = \"bad\"\ncmd = \"b\"\nmin_uptime = \"soon\"\nlog_kep = 3\n"
      "[[app]]\nname = \"worse\"\n");
  EXPECT_TRUE(f.apps.empty());
  ASSERT_EQ(f.errors.size(), 3u) << errors_of(f);
  EXPECT_EQ(f.errors[0].line, 7);
  EXPECT_EQ(f.errors[1].str(),
            std::string(kFile) + ":8:1: unknown key \"log_kep\"; did you mean \"log_keep\"?");
  EXPECT_EQ(f.errors[2].line, 9);
  EXPECT_FALSE(f.ok());
}

TEST(AppConfigError, StrHasTheCompilersForm) {
  EXPECT_EQ((ConfigError{"a.toml", 3, 7, "bad"}.str()), "a.toml:3:7: bad");
  EXPECT_EQ((ConfigError{"a.toml", 0, 0, "bad"}.str()), "a.toml: bad");
}

TEST(AppConfigError, MissingFile) {
  test::TempDir dir;
  const AppsFile f = load_apps_file(dir.file("none.toml"), {});
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_EQ(f.errors[0].str(), dir.file("none.toml") + ": cannot read: No such file or directory");
}

// --- [defaults] ----------------------------------------------------------------

TEST(AppConfigDefaults, ApplyToEveryAppAndTheAppsOwnKeysWin) {
  const AppsFile f = parse(
      "[defaults]\nrestart = \"never\"\nkill_timeout = \"9s\"\nenv = { A = \"d\", B = \"d\" }\nlog "
      "= \"all.log\"\n"
      "[[app]]\nname = \"one\"\ncmd = \"a\"\n"
      "[[app]]\nname = \"two\"\ncmd = \"b\"\nrestart = \"always\"\nenv = { B = \"own\" }\nout = "
      "\"two.out\"\n");
  ASSERT_TRUE(f.ok()) << errors_of(f);
  const MonitorOptions& one = f.apps[0].monitor;
  const MonitorOptions& two = f.apps[1].monitor;
  EXPECT_EQ(one.restart, RestartMode::kNever);
  EXPECT_EQ(one.kill_timeout, 9s);
  EXPECT_EQ(one.env, (Strings{"PATH=/usr/bin:/bin", "HOME=/home/me", "A=d", "B=d"}));
  EXPECT_EQ(one.logs.out_path, "/srv/conf/all.log");
  EXPECT_EQ(one.logs.err_path, "/srv/conf/all.log");
  EXPECT_EQ(two.restart, RestartMode::kAlways);
  EXPECT_EQ(two.kill_timeout, 9s);
  EXPECT_EQ(two.env, (Strings{"PATH=/usr/bin:/bin", "HOME=/home/me", "A=d", "B=own"}));
  EXPECT_EQ(two.logs.out_path, "/srv/conf/two.out");
  EXPECT_EQ(two.logs.err_path, "");
}

TEST(AppConfigDefaults, ErrorsInDefaultsAreReportedOnce) {
  EXPECT_EQ(only_error("[defaults]\nmax_restart = 1\n[[app]]\ncmd = \"a\"\n[[app]]\ncmd = \"b\"\n"),
            "2:1: unknown key \"max_restart\"; did you mean \"max_restarts\"?");
}

// --- paths ---------------------------------------------------------------------

TEST(AppConfigPaths, RelativePathsResolveAgainstTheFilesDirectory) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.path() / "conf");
  test::write_file(dir.path() / "conf" / "vars.env", "V=1\n");
  const std::string conf = (dir.path() / "conf").string();
  const AppsFile f = parse_apps(
      "[[app]]\nname = \"a\"\ncmd = \"./run\"\ncwd = \"../srv\"\nenv_file = \"vars.env\"\nlog = "
      "\"logs/a.log\"\n"
      "pid_file = \"a.pid\"\nwatch = [\"src\"]\n"
      "[[app]]\nname = \"b\"\ncmd = \"./run\"\nout = \"b.out\"\nerr = \"/abs/b.err\"\nwatch = "
      "true\n",
      conf + "/apps.toml", {});
  ASSERT_TRUE(f.ok()) << errors_of(f);
  const MonitorOptions& a = f.apps[0].monitor;
  EXPECT_EQ(a.cwd, (dir.path() / "srv").string());
  EXPECT_EQ(a.env, (Strings{"V=1"}));
  EXPECT_EQ(a.logs.out_path, conf + "/logs/a.log");
  EXPECT_EQ(a.pid_file, conf + "/a.pid");
  EXPECT_EQ(a.watch, (Strings{conf + "/src"}));
  EXPECT_EQ(a.argv, (Strings{"./run"}));  // found by the launcher in the app's cwd
  const MonitorOptions& b = f.apps[1].monitor;
  EXPECT_EQ(b.cwd, conf);
  EXPECT_EQ(b.logs.out_path, conf + "/b.out");
  EXPECT_EQ(b.logs.err_path, "/abs/b.err");
  EXPECT_EQ(b.watch, (Strings{conf}));
  EXPECT_EQ(f.path, conf + "/apps.toml");
}

TEST(AppConfigPaths, ARelativeFileNameResolvesAgainstTheCurrentDirectory) {
  const AppsFile f = parse_apps("[[app]]\ncmd = \"a\"\n", "sub/apps.toml", {});
  ASSERT_TRUE(f.ok()) << errors_of(f);
  const std::string cwd = std::filesystem::current_path().string();
  EXPECT_EQ(f.path, cwd + "/sub/apps.toml");
  EXPECT_EQ(f.apps[0].monitor.cwd, cwd + "/sub");
}

// --- the example and round trips ---------------------------------------------------

TEST(AppConfigExample, ParsesToTheDocumentedApps) {
  const std::string dir = std::string(SEMPRE_SOURCE_DIR) + "/examples";
  const AppsFile f = load_apps_file(dir + "/apps.toml", {"PATH=/bin", "APP_ENV=mine"});
  ASSERT_TRUE(f.ok()) << errors_of(f);
  ASSERT_EQ(f.apps.size(), 3u);

  AppSpec web;
  web.name = "web";
  web.monitor.argv = {"python3", "-m", "http.server", "8000"};
  web.monitor.cwd = dir + "/public";
  web.monitor.env = {"PATH=/bin", "APP_ENV=demo", "HTTP_ROOT=public"};
  web.monitor.restart = RestartMode::kAlways;
  web.monitor.kill_timeout = 10s;
  web.monitor.logs.max_size = 10 * 1024 * 1024;
  web.monitor.logs.keep = 3;
  EXPECT_EQ(f.apps[0], web);

  AppSpec worker;
  worker.name = "worker";
  worker.monitor.argv = {"sh", "-c", "while true; do echo \"tick $(date +%T)\"; sleep 5; done"};
  worker.monitor.cwd = dir;
  worker.monitor.env = {"PATH=/bin", "APP_ENV=demo"};
  worker.monitor.restart = RestartMode::kOnFailure;
  worker.monitor.kill_timeout = 10s;
  worker.monitor.min_uptime = 2s;
  worker.monitor.max_restarts = 10;
  worker.monitor.logs.out_path = dir + "/logs/worker.out.log";
  worker.monitor.logs.err_path = dir + "/logs/worker.err.log";
  worker.monitor.logs.keep = 3;
  EXPECT_EQ(f.apps[1], worker);

  AppSpec api;
  api.name = "api";
  api.monitor.argv = {"python3", "server.py"};
  api.monitor.cwd = dir + "/api";
  api.monitor.env = {"PATH=/bin", "APP_ENV=demo", "PORT=3000"};
  api.monitor.restart = RestartMode::kOnFailure;
  api.monitor.kill_timeout = 10s;
  api.monitor.kill_signal = SIGINT;
  api.monitor.watch = {dir + "/api"};
  api.monitor.watch_ignore = {"__pycache__", "*.log", ".git"};
  api.monitor.logs.out_path = dir + "/logs/api.log";
  api.monitor.logs.err_path = dir + "/logs/api.log";
  api.monitor.logs.append = true;
  api.monitor.logs.timestamps = true;
  api.monitor.logs.keep = 3;
  EXPECT_EQ(f.apps[2], api);
}

// Every field away from its default, with text that needs quoting.
AppSpec unusual_app() {
  AppSpec app;
  app.name = "api \"v2\" ☃";
  MonitorOptions& m = app.monitor;
  m.argv = {"/usr/bin/node", "server.js", "--title=it's \"quoted\"", "", "tab\there",
            "back\\slash",   "ünï"};
  m.interpreter = "python3 -u";
  m.cwd = "/srv/api dir";
  m.env = {"Z=last=first",     "A=with \"quotes\" and 'single'",
           "UNICODE=日本語 ✓", "EMPTY=",
           "NEWLINE=a\nb",     "weird.key-1=x",
           "CTRL=\x01\x7f"};
  m.user = "www-data";
  m.group = "www";
  m.umask = 027;
  m.restart = RestartMode::kOnFailure;
  m.max_restarts = 7;
  m.min_uptime = 2500ms;
  m.restart_delay = 90min;
  m.backoff_max = 1h + 1ms;
  m.kill_signal = SIGRTMIN + 2;
  m.kill_timeout = 12s;
  m.logs.out_path = "/var/log/api/out.log";
  m.logs.err_path = "/var/log/api/err.log";
  m.logs.append = true;
  m.logs.max_size = 12345;
  m.logs.keep = 0;
  m.logs.timestamps = true;
  m.watch = {"/srv/api dir/src", "/etc/api.conf"};
  m.watch_ignore = {"*.tmp", "[ab]?.log"};
  m.watch_debounce = 1500ms;
  m.pid_file = "/run/api.pid";
  m.ready = "exec:test -e /run/api.sock";
  m.nice = -3;
  m.limit_nofile = 4096;
  return app;
}

TEST(AppConfigRoundTrip, ParseOfToTomlGivesTheSameApps) {
  AppSpec plain;
  plain.name = "plain";
  plain.monitor.argv = {"sleep", "100"};
  plain.monitor.cwd = "/";
  AppSpec one_log = unusual_app();
  one_log.name = "one-log";
  one_log.monitor.logs.err_path = one_log.monitor.logs.out_path;
  one_log.monitor.umask = 0;
  one_log.monitor.max_restarts = 0;
  one_log.monitor.kill_signal = SIGKILL;
  one_log.monitor.restart = RestartMode::kNever;
  AppSpec only_err = plain;
  only_err.name = "only-err";
  only_err.monitor.logs.err_path = "/tmp/e.log";

  const std::vector<AppSpec> apps = {unusual_app(), plain, one_log, only_err};
  const std::string text = to_toml(apps);
  const AppsFile f = parse_apps(text, "/elsewhere/saved.toml", {"PATH=/caller"});
  ASSERT_TRUE(f.ok()) << errors_of(f) << text;
  ASSERT_EQ(f.apps.size(), apps.size()) << text;
  for (std::size_t i = 0; i < apps.size(); ++i) EXPECT_EQ(f.apps[i], apps[i]) << text;
  EXPECT_EQ(to_toml(f.apps), text);
}

TEST(AppConfigRoundTrip, WritesEveryFieldExplicitly) {
  const std::string text = to_toml({unusual_app()});
  for (const char* key : {"name = ",
                          "cmd = ",
                          "cwd = ",
                          "interpreter = ",
                          "user = ",
                          "group = ",
                          "umask = \"027\"",
                          "restart = \"on-failure\"",
                          "max_restarts = 7",
                          "min_uptime = \"2s500ms\"",
                          "restart_delay = \"1h30m\"",
                          "backoff_max = ",
                          "kill_signal = ",
                          "kill_timeout = \"12s\"",
                          "out = ",
                          "err = ",
                          "append = true",
                          "log_max_size = 12345",
                          "log_keep = 0",
                          "log_timestamps = true",
                          "watch = ",
                          "watch_ignore = ",
                          "pid_file = ",
                          "env_inherit = false",
                          "[app.env]"}) {
    EXPECT_NE(text.find(key), std::string::npos) << key << "\n" << text;
  }
}

TEST(AppConfigRoundTrip, EmptyListIsAnEmptyFile) {
  const AppsFile f = parse(to_toml({}));
  EXPECT_TRUE(f.ok());
  EXPECT_TRUE(f.apps.empty());
}

// --- daemon settings -------------------------------------------------------------

TEST(DaemonSettings, MissingFileGivesTheDefaults) {
  test::TempDir dir;
  const DaemonSettings s = load_daemon_settings(dir.file("config.toml"));
  EXPECT_TRUE(s.errors.empty());
  EXPECT_EQ(s.log_max_size, 10u * 1024 * 1024);
  EXPECT_EQ(s.log_keep, 3);
}

TEST(DaemonSettings, ReadsTheDaemonTable) {
  test::TempDir dir;
  test::write_file(dir.file("config.toml"), "[daemon]\nlog_max_size = \"2M\"\nlog_keep = 7\n");
  const DaemonSettings s = load_daemon_settings(dir.file("config.toml"));
  EXPECT_TRUE(s.errors.empty());
  EXPECT_EQ(s.log_max_size, 2u * 1024 * 1024);
  EXPECT_EQ(s.log_keep, 7);
  test::write_file(dir.file("config.toml"), "[daemon]\nlog_max_size = 1000\n");
  EXPECT_EQ(load_daemon_settings(dir.file("config.toml")).log_max_size, 1000u);
}

TEST(DaemonSettings, MaxClientsIs256UnlessSetAndAtLeastOne) {
  test::TempDir dir;
  const std::string path = dir.file("config.toml");
  EXPECT_EQ(load_daemon_settings(path).max_clients, 256u);
  test::write_file(path, "[daemon]\nmax_clients = 3\n");
  EXPECT_EQ(load_daemon_settings(path).max_clients, 3u);
  test::write_file(path, "[daemon]\nmax_clients = 0\n");
  const DaemonSettings zero = load_daemon_settings(path);
  ASSERT_EQ(zero.errors.size(), 1u);
  EXPECT_EQ(zero.errors[0].str(), path + ":2:15: max_clients: must be 1 or more");
  test::write_file(path, "[daemon]\nmax_clients = \"many\"\n");
  ASSERT_EQ(load_daemon_settings(path).errors.size(), 1u);
}

TEST(DaemonSettings, ErrorsNamePositionsAndSuggestKeys) {
  test::TempDir dir;
  const std::string path = dir.file("config.toml");
  test::write_file(path, "[daemon]\nlog_kep = 7\nlog_max_size = \"big\"\n[deamon]\n");
  const DaemonSettings s = load_daemon_settings(path);
  ASSERT_EQ(s.errors.size(), 3u);
  EXPECT_EQ(s.errors[0].str(),
            path + ":2:1: unknown key \"log_kep\" in [daemon]; did you mean \"log_keep\"?");
  EXPECT_EQ(s.errors[1].str().substr(0, path.size() + 41),
            path + ":3:16: log_max_size: invalid size \"big\": ");
  EXPECT_EQ(s.errors[2].str(), path + ":4:2: unknown key \"deamon\"; did you mean \"daemon\"?");
  EXPECT_EQ(s.log_keep, 3);
}

TEST(DaemonSettings, SyntaxError) {
  test::TempDir dir;
  const std::string path = dir.file("config.toml");
  test::write_file(path, "[daemon]\nlog_keep = \n");
  const DaemonSettings s = load_daemon_settings(path);
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].line, 2);
  EXPECT_EQ(s.errors[0].file, path);
}

}  // namespace
}  // namespace sempre

namespace sempre {
namespace {

TEST(DemoFile, ParsesToTheThreeAppsOfTheDemo) {
  const AppsFile file = load_apps_file(SEMPRE_SOURCE_DIR "/examples/demo.toml", {"PATH=/bin"});
  ASSERT_TRUE(file.ok()) << file.errors.front().str();
  ASSERT_EQ(file.apps.size(), 3u);
  EXPECT_EQ(file.apps[0].name, "web");
  EXPECT_EQ(file.apps[0].monitor.argv.front(), "../build/sempre_demo_server");
  EXPECT_EQ(file.apps[0].monitor.cwd, SEMPRE_SOURCE_DIR "/examples");
  EXPECT_EQ(file.apps[0].monitor.kill_timeout, Millis{3000});
  EXPECT_EQ(file.apps[1].monitor.logs.out_path, file.apps[1].monitor.logs.err_path);
  EXPECT_EQ(file.apps[2].monitor.argv.size(), 3u);  // sh -c SCRIPT
}

}  // namespace
}  // namespace sempre

namespace sempre {
namespace {

TEST(HomeDefaults, LieBeneathTheFilesDefaultsAndTheAppsKeys) {
  test::TempDir dir;
  const std::string home_config = dir.file("config.toml");
  test::write_file(
      home_config,
      "[daemon]\nlog_keep = 2\n[defaults]\nkill_timeout = \"7s\"\nmin_uptime = \"3s\"\n"
      "log_keep = 9\n");
  const std::string apps = dir.file("apps.toml");
  test::write_file(
      apps,
      "[defaults]\nmin_uptime = \"2s\"\n"
      "[[app]]\nname = \"a\"\ncmd = \"x\"\n"
      "[[app]]\nname = \"b\"\ncmd = \"x\"\nmin_uptime = \"1500ms\"\nkill_timeout = \"1s\"\n");
  const AppsFile file = load_apps_file(apps, {}, home_config);
  ASSERT_TRUE(file.ok()) << file.errors.front().str();
  EXPECT_EQ(file.apps[0].monitor.kill_timeout, Millis{7000});  // config.toml
  EXPECT_EQ(file.apps[0].monitor.min_uptime, Millis{2000});    // the file's [defaults]
  EXPECT_EQ(file.apps[0].monitor.logs.keep, 9);
  EXPECT_EQ(file.apps[1].monitor.kill_timeout, Millis{1000});  // the app's own
  EXPECT_EQ(file.apps[1].monitor.min_uptime, Millis{1500});
}

TEST(HomeDefaults, AnErrorInConfigTomlIsReportedAndNothingLoads) {
  test::TempDir dir;
  const std::string home_config = dir.file("config.toml");
  test::write_file(home_config, "[defaults]\nkill_timeout = \"soon\"\n");
  const std::string apps = dir.file("apps.toml");
  test::write_file(apps, "[[app]]\nname = \"a\"\ncmd = \"x\"\n");
  const AppsFile file = load_apps_file(apps, {}, home_config);
  ASSERT_EQ(file.errors.size(), 1u);
  EXPECT_EQ(file.errors[0].str().rfind(home_config + ":2:", 0), 0u) << file.errors[0].str();
  EXPECT_TRUE(file.apps.empty());
  EXPECT_EQ(load_daemon_settings(home_config).errors.size(), 1u);
  EXPECT_EQ(load_app_defaults(home_config, {}).errors.size(), 1u);
}

TEST(HomeDefaults, GiveTheOptionsOfAppsStartedFromTheCommandLine) {
  test::TempDir dir;
  const std::string home_config = dir.file("config.toml");
  test::write_file(home_config, "[defaults]\nkill_timeout = \"7s\"\nenv = { A = \"1\" }\n");
  const AppDefaults d = load_app_defaults(home_config, {"PATH=/bin"});
  ASSERT_TRUE(d.errors.empty()) << d.errors.front().str();
  EXPECT_EQ(d.options.kill_timeout, Millis{7000});
  EXPECT_EQ(d.options.env, (std::vector<std::string>{"PATH=/bin", "A=1"}));
  EXPECT_TRUE(d.options.cwd.empty());
  EXPECT_EQ(d.options.min_uptime, MonitorOptions{}.min_uptime);

  const AppDefaults missing = load_app_defaults(dir.file("none.toml"), {"PATH=/bin"});
  EXPECT_TRUE(missing.errors.empty());
  EXPECT_EQ(missing.options.kill_timeout, MonitorOptions{}.kill_timeout);
}

}  // namespace
}  // namespace sempre

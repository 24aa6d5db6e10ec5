#include "format.hpp"

#include <gtest/gtest.h>

#include <regex>

#include "test_util.hpp"

namespace sempre::cli {
namespace {

namespace json = boost::json;
using test::split_lines;

std::string strip_sgr(const std::string& text) {
  return std::regex_replace(text, std::regex("\033\\[[0-9;]*m"), "");
}

// The typed payload a JSON text of the daemon decodes to.
template <class T>
T decoded(const json::value& value) {
  auto result = protocol::from_json<T>(value.as_object());
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
  return result.ok() ? *result : T{};
}

protocol::AppInfo app_of(const json::value& value) { return decoded<protocol::AppInfo>(value); }
Event event_of(std::string_view text) { return decoded<Event>(json::parse(text)); }

// The time of the events below.
const std::string kT = "2026-11-26T16:49:27.123Z";
std::string with_time(std::string text) {
  return std::regex_replace(text, std::regex(R"("time":"T")"), "\"time\":\"" + kT + "\"");
}

json::object running_api() {
  return json::parse(R"({"id":1, "name":"api", "pid":1234, "status":"running", "wanted":"up",
      "restarts":2, "uptime_ms":184000, "cpu":0.5, "rss_bytes":12582912,
      "cmd":["node","server.js"], "cwd":"/srv", "out_log":"/h/logs/api.out.log",
      "err_log":"/h/logs/api.err.log", "last_exit":{"code":1}, "last_error":""})")
      .as_object();
}

json::object stopped_worker() {
  return json::parse(R"({"id":12, "name":"worker-long-name", "pid":null, "status":"stopped",
      "wanted":"down", "restarts":0, "uptime_ms":0, "cpu":0, "rss_bytes":0,
      "cmd":["python3","-m","worker"], "cwd":"/srv", "out_log":"", "err_log":"",
      "last_exit":{"signal":"TERM"}, "last_error":""})")
      .as_object();
}

TEST(Colour, OnlyOnATerminal) {
  EXPECT_TRUE(colour_wanted(true, nullptr));
  EXPECT_FALSE(colour_wanted(false, nullptr));
}

TEST(Colour, NeverWithANonEmptyNoColor) {
  EXPECT_FALSE(colour_wanted(true, "1"));
  EXPECT_FALSE(colour_wanted(true, "0"));
  // no-color.org: an empty NO_COLOR is as if unset.
  EXPECT_TRUE(colour_wanted(true, ""));
}

TEST(Table, WidensColumnsToTheirContentAndRightAlignsNumbers) {
  const std::string out =
      render_table({{"ID", true}, {"NAME"}, {"MEM", true}},
                   {{{"1"}, {"api"}, {"12.0M"}}, {{"12"}, {"worker"}, {"512B"}}}, false);
  EXPECT_EQ(out,
            "ID  NAME      MEM\n"
            " 1  api     12.0M\n"
            "12  worker   512B\n");
}

TEST(Table, LeavesNoTrailingBlanks) {
  const std::string out =
      render_table({{"NAME"}, {"STATUS"}}, {{{"a"}, {"ok"}}, {{"longer"}, {""}}}, false);
  for (const auto& line : split_lines(out)) {
    ASSERT_FALSE(line.empty());
    EXPECT_NE(line.back(), ' ') << '"' << line << '"';
  }
}

TEST(Table, CountsCharactersNotBytes) {
  const std::string out =
      render_table({{"NAME"}, {"N", true}}, {{{"café"}, {"1"}}, {{"cafe"}, {"2"}}}, false);
  const auto lines = split_lines(out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], "café  1");
  EXPECT_EQ(lines[2], "cafe  2");
}

TEST(Table, ColourKeepsTheAlignment) {
  const std::vector<Column> columns = {{"NAME"}, {"STATUS"}, {"PID", true}};
  const std::vector<std::vector<Cell>> rows = {{{"api"}, {"running", kGreen}, {"1234"}},
                                               {{"w"}, {"failed", kRed}, {"-"}}};
  const std::string plain = render_table(columns, rows, false);
  const std::string coloured = render_table(columns, rows, true);
  EXPECT_EQ(plain.find('\033'), std::string::npos);
  EXPECT_NE(coloured.find(std::string(kGreen) + "running" + std::string(kReset)),
            std::string::npos);
  EXPECT_NE(coloured.find(std::string(kRed) + "failed" + std::string(kReset)), std::string::npos);
  EXPECT_EQ(strip_sgr(coloured), plain);
}

TEST(List, ShowsOneAlignedRowPerApp) {
  std::vector<protocol::AppInfo> apps{app_of(running_api()), app_of(stopped_worker())};
  const auto lines = split_lines(format_list(apps, false));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "ID  NAME               PID  STATUS   UPTIME  RESTARTS   CPU    MEM");
  EXPECT_EQ(lines[1], " 1  api               1234  running   3m04s         2  0.5%  12.0M");
  EXPECT_EQ(lines[2], "12  worker-long-name     -  stopped       -         0     -      -");
}

TEST(List, ColoursTheStatusOnlyWhenAsked) {
  std::vector<protocol::AppInfo> apps{app_of(running_api()), app_of(stopped_worker())};
  const std::string plain = format_list(apps, false);
  const std::string coloured = format_list(apps, true);
  EXPECT_EQ(plain.find('\033'), std::string::npos);
  EXPECT_NE(coloured.find(std::string(kGreen) + "running"), std::string::npos);
  EXPECT_NE(coloured.find(std::string(kDim) + "stopped"), std::string::npos);
  EXPECT_EQ(strip_sgr(coloured), plain);
}

TEST(List, AnExitWithCodeZeroIsNotRed) {
  auto done = json::parse(R"({"id":3, "name":"job", "pid":null, "status":"exited",
      "last_exit":{"code":0}})")
                  .as_object();
  auto crashed = json::parse(R"({"id":4, "name":"bad", "pid":null, "status":"exited",
      "last_exit":{"code":2}})")
                     .as_object();
  const std::string out = format_list({app_of(done), app_of(crashed)}, true, {"name", "status"});
  EXPECT_NE(out.find(std::string(kDim) + "exited"), std::string::npos) << out;
  EXPECT_NE(out.find(std::string(kRed) + "exited"), std::string::npos) << out;
  EXPECT_EQ(out.find(std::string(kRed) + "exited"), out.rfind(std::string(kRed) + "exited")) << out;
}

TEST(List, SortsByAColumnOrField) {
  std::vector<protocol::AppInfo> apps{app_of(json::parse(R"({"id":1, "name":"b", "cpu":5})")),
                                      app_of(json::parse(R"({"id":2, "name":"a", "cpu":9})")),
                                      app_of(json::parse(R"({"id":3, "name":"c"})"))};
  ASSERT_TRUE(sort_apps(apps, "name").ok());
  EXPECT_EQ(apps[0].name, "a");
  ASSERT_TRUE(sort_apps(apps, "-cpu").ok());
  EXPECT_EQ(apps[0].name, "a");
  EXPECT_EQ(apps[2].name, "c");  // no figure: last
  EXPECT_FALSE(sort_apps(apps, "bogus").ok());
  EXPECT_FALSE(parse_list_columns("name,nope").ok());
  EXPECT_EQ(*parse_list_columns("name,uptime_ms"), (std::vector<std::string>{"name", "uptime_ms"}));
}

TEST(Json, NumbersReadAsPeopleWriteThem) {
  EXPECT_EQ(json_text(json::parse(R"({"cpu":0.0, "mem":12.5, "n":3, "s":"x"})")),
            R"({"cpu":0,"mem":12.5,"n":3,"s":"x"})");
}

TEST(List, SaysSoWhenThereAreNoApps) { EXPECT_EQ(format_list({}, false), "no apps\n"); }

TEST(List, AppsWithoutAPidGoLastEitherWay) {
  std::vector<protocol::AppInfo> apps{app_of(stopped_worker()), app_of(running_api())};
  ASSERT_TRUE(sort_apps(apps, "pid").ok());
  EXPECT_EQ(apps[0].name, "api");
  ASSERT_TRUE(sort_apps(apps, "-pid").ok());
  EXPECT_EQ(apps[0].name, "api");
}

TEST(List, StatusColoursFollowTheLifecycle) {
  EXPECT_EQ(status_style("running"), kGreen);
  for (const char* s : {"starting", "backoff", "stopping"})
    EXPECT_EQ(status_style(s), kYellow) << s;
  for (const char* s : {"failed", "exited"}) EXPECT_EQ(status_style(s), kRed) << s;
  EXPECT_EQ(status_style("stopped"), kDim);
}

TEST(Label, NamesTheAppItsIdAndPid) {
  EXPECT_EQ(app_label(app_of(running_api()), true), "api (id 1, pid 1234)");
  EXPECT_EQ(app_label(app_of(running_api()), false), "api (id 1)");
  EXPECT_EQ(app_label(app_of(stopped_worker()), true), "worker-long-name (id 12)");
}

TEST(Events, ExitReadsLikeDescribe) {
  const auto e = event_of(R"({"type":"exit", "time":"2026-11-26T16:49:27.123Z", "state":"backoff",
      "pid":12, "exit":{"code":1}, "uptime_ms":20})");
  EXPECT_EQ(format_event("api", e), "2026-11-26T16:49:27.123Z api exit pid=12 code 1 uptime=20ms");
}

TEST(Events, KilledBySignal) {
  const auto e =
      event_of(with_time(R"({"type":"exit", "time":"T", "pid":7, "exit":{"signal":"KILL"},
      "uptime_ms":5000})"));
  EXPECT_EQ(format_event("w", e), kT + " w exit pid=7 signal KILL uptime=5.0s");
  const auto longer = event_of(with_time(R"({"type":"exit", "time":"T", "pid":7, "exit":{"code":0},
      "uptime_ms":10600})"));
  EXPECT_EQ(format_event("w", longer), kT + " w exit pid=7 code 0 uptime=10.6s");
}

TEST(Events, RestartShowsDelayAndAttempt) {
  const auto crash =
      event_of(with_time(R"({"type":"restart", "time":"T", "attempt":3, "delay_ms":400})"));
  EXPECT_EQ(format_event("api", crash), kT + " api restart in 400ms attempt=3");
  const auto asked = event_of(with_time(
      R"({"type":"restart", "time":"T", "attempt":0, "delay_ms":0, "reason":"restart requested"})"));
  EXPECT_EQ(format_event("api", asked), kT + " api restart in 0s (restart requested)");
}

TEST(Events, WatchFailedAndStop) {
  EXPECT_EQ(
      format_event("api", event_of(with_time(R"({"type":"watch","time":"T","path":"/srv/a.js"})"))),
      kT + " api watch /srv/a.js");
  EXPECT_EQ(
      format_event("api",
                   event_of(with_time(R"({"type":"failed","time":"T","reason":"no such file"})"))),
      kT + " api failed (no such file)");
  EXPECT_EQ(format_event("api", event_of(with_time(R"({"type":"stop","time":"T","pid":3})"))),
            kT + " api stop pid=3");
}

TEST(Logs, MarksTheStreamAndPadsTheAppWhenSeveralAreShown) {
  EXPECT_EQ(format_log_line("api", 3, "out", "hello", false, false), "out | hello");
  EXPECT_EQ(format_log_line("api", 3, "out", "hello", true, false), "api out | hello");
  EXPECT_EQ(format_log_line("db", 5, "err", "oops", true, false), "db    err | oops");
  EXPECT_EQ(format_log_line("api", 3, "err", "oops", true, true),
            std::string(kRed) + "api err |" + std::string(kReset) + " oops");
  EXPECT_EQ(format_log_line("api", 3, "log", "both", false, false), "log | both");
}

TEST(Logs, ReadsTheTimestampOfALogLine) {
  EXPECT_EQ(log_stamp_ms("1970-01-01T00:00:01.250+0000 up"), std::optional<std::int64_t>(1250));
  // The same instant written by a clock two hours east.
  EXPECT_EQ(log_stamp_ms("1970-01-01T02:00:01.250+0200 up"), std::optional<std::int64_t>(1250));
  EXPECT_EQ(log_stamp_ms("2026-11-26T16:49:27.123+0000 x"),
            std::optional<std::int64_t>(1795711767123));
  EXPECT_FALSE(log_stamp_ms("hello world, no time here").has_value());
  EXPECT_FALSE(log_stamp_ms("2026-11-26 16:49:27").has_value());
}

TEST(Logs, MergesStreamsByTimeWhenEveryLineHasOne) {
  const std::vector<LogLine> lines = {
      {"web", "out", "/l/web.out.log", "2026-11-26T16:49:27.100+0000 first"},
      {"web", "out", "/l/web.out.log", "2026-11-26T16:49:27.300+0000 third"},
      {"web", "err", "/l/web.err.log", "2026-11-26T16:49:27.200+0000 second"},
  };
  EXPECT_EQ(format_log_tail(lines, false, false),
            "out | 2026-11-26T16:49:27.100+0000 first\n"
            "err | 2026-11-26T16:49:27.200+0000 second\n"
            "out | 2026-11-26T16:49:27.300+0000 third\n");
}

TEST(Logs, PrintsEachFileUnderItsNameWithoutTimes) {
  const std::vector<LogLine> lines = {
      {"web", "out", "/l/web.out.log", "one"},
      {"web", "err", "/l/web.err.log", "two"},
      {"api-server", "out", "/l/api-server.out.log", "three"},
  };
  EXPECT_EQ(format_log_tail(lines, true, false),
            "==> /l/web.out.log <==\n"
            "web        out | one\n"
            "==> /l/web.err.log <==\n"
            "web        err | two\n"
            "==> /l/api-server.out.log <==\n"
            "api-server out | three\n");
  // One file needs no heading.
  EXPECT_EQ(format_log_tail({lines[0]}, false, false), "out | one\n");
}

TEST(Table, WideCharactersTakeTwoColumns) {
  EXPECT_EQ(display_width("web"), 3u);
  EXPECT_EQ(display_width("caf\xc3\xa9"), 4u);               // é: one column
  EXPECT_EQ(display_width("\xe6\x97\xa5\xe6\x9c\xac"), 4u);  // 日本: two each
  const std::string table = render_table(
      {{"NAME"}, {"PID", true}}, {{{"\xe6\x97\xa5\xe6\x9c\xac"}, {"1"}}, {{"ab"}, {"22"}}}, false);
  EXPECT_EQ(table, "NAME  PID\n\xe6\x97\xa5\xe6\x9c\xac    1\nab     22\n");
}

TEST(Info, ListsTheEnvironmentSortedAndWhereTheAppCameFrom) {
  AppSpec spec;
  spec.name = "api";
  spec.monitor.argv = {"node"};
  spec.monitor.env = {"ZED=1", "ALPHA=2", "MID=3"};
  const std::string out = format_info(app_of(running_api()), spec, false, "/srv/apps.toml");
  EXPECT_LT(out.find("ALPHA=2"), out.find("MID=3")) << out;
  EXPECT_LT(out.find("MID=3"), out.find("ZED=1")) << out;
  EXPECT_NE(out.find("/srv/apps.toml"), std::string::npos) << out;
}

TEST(Info, ShowsStateLastExitLogsSpecAndEnvironment) {
  AppSpec spec;
  spec.name = "api";
  spec.monitor.argv = {"node", "server.js"};
  spec.monitor.env = {"PATH=/usr/bin", "PORT=8080"};
  spec.monitor.max_restarts = 10;
  spec.monitor.kill_signal = SIGINT;
  spec.monitor.watch = {"/srv"};
  spec.monitor.ready = "tcp:8080";
  const std::string out = format_info(app_of(running_api()), spec, false);
  EXPECT_EQ(out.find('\033'), std::string::npos);
  const auto lines = split_lines(out);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "api (id 1)");
  const auto has = [&](const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  };
  EXPECT_TRUE(has("  status          running (wanted up)")) << out;
  EXPECT_TRUE(has("  pid             1234")) << out;
  EXPECT_TRUE(has("  uptime          3m04s")) << out;
  EXPECT_TRUE(has("  last exit       code 1")) << out;
  EXPECT_TRUE(has("  command         node server.js")) << out;
  EXPECT_TRUE(has("  out log         /h/logs/api.out.log")) << out;
  EXPECT_TRUE(has("  err log         /h/logs/api.err.log")) << out;
  EXPECT_TRUE(has("spec")) << out;
  EXPECT_TRUE(has("  max restarts    10")) << out;
  EXPECT_TRUE(has("  kill signal     INT")) << out;
  EXPECT_TRUE(has("  kill timeout    5s")) << out;
  EXPECT_TRUE(has("  watch           /srv")) << out;
  EXPECT_TRUE(has("  ready when      tcp:8080")) << out;
  EXPECT_TRUE(has("environment")) << out;
  EXPECT_TRUE(has("  PORT=8080")) << out;
}

TEST(Info, StoppedAppShowsNoLiveFigures) {
  const std::string out = format_info(app_of(stopped_worker()), std::nullopt, false);
  EXPECT_NE(out.find("  status     stopped (wanted down)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  pid        -\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  last exit  signal TERM\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  out log    -\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("uptime"), std::string::npos) << out;
  EXPECT_EQ(out.find("spec"), std::string::npos) << out;
}

TEST(Info, ColoursTheStatusWhenAsked) {
  const std::string out = format_info(app_of(running_api()), std::nullopt, true);
  EXPECT_NE(out.find(std::string(kGreen) + "running (wanted up)"), std::string::npos) << out;
  EXPECT_EQ(strip_sgr(out), format_info(app_of(running_api()), std::nullopt, false));
}

TEST(ShellJoin, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(shell_join({"node", "server.js", "--port=80"}), "node server.js --port=80");
  EXPECT_EQ(shell_join({"sh", "-c", "echo hi; exit 3"}), "sh -c 'echo hi; exit 3'");
  EXPECT_EQ(shell_join({"echo", "it's", ""}), "echo 'it'\\''s' ''");
}

TEST(DaemonStatus, ListsPidHomeUptimeAppsAndProtocol) {
  const auto ping = decoded<protocol::PingReply>(
      json::parse(R"({"pid":99, "version":1, "home":"/h", "uptime_ms":61000, "apps":3})"));
  EXPECT_EQ(format_daemon_status(ping),
            "sempred is running\n"
            "  pid       99\n"
            "  home      /h\n"
            "  uptime    1m01s\n"
            "  apps      3\n"
            "  protocol  1\n");
}

}  // namespace
}  // namespace sempre::cli

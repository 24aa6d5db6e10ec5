#include "protocol.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <string>
#include <vector>

namespace sempre::protocol {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

struct Decoded {
  FrameDecoder::Status status;
  json::object message;
  std::string error;
};

Decoded next_of(FrameDecoder& decoder) {
  Decoded d;
  d.status = decoder.next(d.message, d.error);
  return d;
}

json::object parse_object(std::string_view text) {
  json::value value = json::parse(text);
  return value.as_object();
}

// The keys of `object` in order, separated by spaces.
std::string keys_of(const json::object& object) {
  std::string keys;
  for (const auto& kv : object) {
    if (!keys.empty()) keys += ' ';
    keys += kv.key();
  }
  return keys;
}

// The keys in alphabetical order: a JSON object has no order.
std::string sorted_keys_of(const json::object& object) {
  std::vector<std::string> keys;
  for (const auto& kv : object) keys.emplace_back(kv.key());
  std::sort(keys.begin(), keys.end());
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : " ") + k;
  return out;
}

// --- framing ------------------------------------------------------------

TEST(FrameDecoder, AssemblesAMessageFedOneByteAtATime) {
  const std::string frame = encode(make_request(7, "list"));
  FrameDecoder decoder;
  for (std::size_t i = 0; i + 1 < frame.size(); ++i) {
    decoder.feed(frame.substr(i, 1));
    ASSERT_EQ(next_of(decoder).status, FrameDecoder::Status::kNeedMore) << "byte " << i;
  }
  decoder.feed("\n");
  Decoded d = next_of(decoder);
  ASSERT_EQ(d.status, FrameDecoder::Status::kMessage) << d.error;
  EXPECT_EQ(d.message, make_request(7, "list"));
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_EQ(next_of(decoder).status, FrameDecoder::Status::kNeedMore);
}

TEST(FrameDecoder, SplitsTwoMessagesOfOneFeed) {
  FrameDecoder decoder;
  decoder.feed(encode(make_request(1, "ping")) + encode(make_request(2, "list")) + "{\"id\"");
  Decoded first = next_of(decoder);
  ASSERT_EQ(first.status, FrameDecoder::Status::kMessage);
  EXPECT_EQ(first.message.at("id"), 1);
  Decoded second = next_of(decoder);
  ASSERT_EQ(second.status, FrameDecoder::Status::kMessage);
  EXPECT_EQ(second.message.at("id"), 2);
  EXPECT_EQ(next_of(decoder).status, FrameDecoder::Status::kNeedMore);
  EXPECT_EQ(decoder.buffered(), 5u);

  decoder.feed(":3}\n");
  Decoded third = next_of(decoder);
  ASSERT_EQ(third.status, FrameDecoder::Status::kMessage);
  EXPECT_EQ(third.message.at("id"), 3);
}

TEST(FrameDecoder, SkipsEmptyLines) {
  FrameDecoder decoder;
  decoder.feed("\n\n{\"a\":1}\n\n\r\n");
  Decoded d = next_of(decoder);
  ASSERT_EQ(d.status, FrameDecoder::Status::kMessage);
  EXPECT_EQ(d.message.at("a"), 1);
  // "\r" alone is JSON whitespace, not an empty line: it is no object.
  EXPECT_EQ(next_of(decoder).status, FrameDecoder::Status::kMalformed);
}

TEST(FrameDecoder, RefusesAnOversizedMessageBeforeItsNewline) {
  FrameDecoder decoder;
  decoder.feed("{\"pad\":\"" + std::string(kMaxMessage - 10, 'x'));
  ASSERT_EQ(next_of(decoder).status, FrameDecoder::Status::kNeedMore);
  decoder.feed(std::string(20, 'x'));
  Decoded d = next_of(decoder);
  ASSERT_EQ(d.status, FrameDecoder::Status::kMalformed);
  EXPECT_EQ(d.error, "message larger than 1048576 bytes");
  EXPECT_EQ(decoder.buffered(), 0u) << "the oversized bytes are not kept";
}

TEST(FrameDecoder, RefusesAnOversizedLine) {
  FrameDecoder decoder;
  // One byte over: kMaxMessage bytes and then the newline.
  const std::string prefix = "{\"pad\":\"";
  const std::string line = prefix + std::string(kMaxMessage - prefix.size() - 2, 'x') + "\"}";
  ASSERT_EQ(line.size(), kMaxMessage);
  decoder.feed(line + "\n");
  Decoded d = next_of(decoder);
  ASSERT_EQ(d.status, FrameDecoder::Status::kMalformed);
  EXPECT_EQ(d.error, "message larger than 1048576 bytes");
}

TEST(FrameDecoder, AcceptsAMessageOfExactlyTheLimit) {
  FrameDecoder decoder;
  const std::string prefix = "{\"pad\":\"";
  const std::string line = prefix + std::string(kMaxMessage - prefix.size() - 3, 'x') + "\"}";
  ASSERT_EQ(line.size() + 1, kMaxMessage);
  decoder.feed(line);
  ASSERT_EQ(next_of(decoder).status, FrameDecoder::Status::kNeedMore);
  decoder.feed("\n");
  Decoded d = next_of(decoder);
  ASSERT_EQ(d.status, FrameDecoder::Status::kMessage) << d.error;
  EXPECT_EQ(d.message.at("pad").as_string().size(), kMaxMessage - prefix.size() - 3);
}

TEST(FrameDecoder, GivesBackWhatALargeMessageNeeded) {
  FrameDecoder decoder;
  decoder.feed(encode({{"pad", std::string(kMaxMessage - 100, 'x')}}));
  ASSERT_EQ(next_of(decoder).status, FrameDecoder::Status::kMessage);
  EXPECT_EQ(next_of(decoder).status, FrameDecoder::Status::kNeedMore);
  EXPECT_LE(decoder.capacity(), FrameDecoder::kRetained);
  decoder.feed(encode(make_request(2, "ping")));
  Decoded d = next_of(decoder);
  ASSERT_EQ(d.status, FrameDecoder::Status::kMessage) << d.error;
  EXPECT_EQ(d.message.at("id"), 2);
}

TEST(FrameDecoder, RefusesMalformedJson) {
  FrameDecoder decoder;
  decoder.feed("{\"id\":1,}\n");
  Decoded d = next_of(decoder);
  ASSERT_EQ(d.status, FrameDecoder::Status::kMalformed);
  EXPECT_EQ(d.error.rfind("malformed JSON: ", 0), 0u) << d.error;
}

TEST(FrameDecoder, RefusesJsonThatIsNotAnObject) {
  for (const char* line : {"[1,2]\n", "42\n", "\"text\"\n", "null\n"}) {
    FrameDecoder decoder;
    decoder.feed(line);
    Decoded d = next_of(decoder);
    ASSERT_EQ(d.status, FrameDecoder::Status::kMalformed) << line;
    EXPECT_EQ(d.error, "malformed JSON: expected an object");
  }
}

// A number past a double's range would go on as "Infinity", which no peer
// can read back: refused where it comes in.
TEST(FrameDecoder, RefusesANumberOutOfRangeWhereverItIs) {
  for (const char* line : {"{\"id\":1e400}\n", "{\"args\":{\"spec\":{\"x\":[1,-40e185760]}}}\n",
                           "{\"a\":1000000000000000000000000000000000000000000000000000000000000000"
                           "00000000000000000000000000000000000000000000000000000000000000000000"
                           "00000000000000000000000000000000000000000000000000000000000000000000"
                           "00000000000000000000000000000000000000000000000000000000000000000000"
                           "0000000000000000000000000000000000000000000000000000000000000000}\n"}) {
    FrameDecoder decoder;
    decoder.feed(line);
    Decoded d = next_of(decoder);
    ASSERT_EQ(d.status, FrameDecoder::Status::kMalformed) << line;
    EXPECT_EQ(d.error, "malformed JSON: a number out of range");
  }
  FrameDecoder decoder;
  decoder.feed("{\"a\":1.5e308,\"b\":-2e-400}\n");
  EXPECT_EQ(next_of(decoder).status, FrameDecoder::Status::kMessage);
}

TEST(FrameDecoder, StaysMalformedOnceMalformed) {
  FrameDecoder decoder;
  decoder.feed("nonsense\n");
  Decoded first = next_of(decoder);
  ASSERT_EQ(first.status, FrameDecoder::Status::kMalformed);
  decoder.feed(encode(make_request(1, "ping")));
  Decoded again = next_of(decoder);
  EXPECT_EQ(again.status, FrameDecoder::Status::kMalformed);
  EXPECT_EQ(again.error, first.error);
}

TEST(FrameDecoder, RefusesDeeplyNestedJsonWithoutCrashing) {
  FrameDecoder decoder;
  decoder.feed("{\"a\":" + std::string(100000, '[') + "\n");
  EXPECT_EQ(next_of(decoder).status, FrameDecoder::Status::kMalformed);
}

TEST(Encode, IsCompactJsonAndOneNewline) {
  json::object message{{"id", 3}, {"text", "two\nlines"}};
  EXPECT_EQ(encode(message), "{\"id\":3,\"text\":\"two\\nlines\"}\n");
}

// --- requests and responses ----------------------------------------------

TEST(ParseRequest, ReadsAWellFormedRequest) {
  json::object args{{"targets", json::array{"web"}}};
  auto request = parse_request(make_request(42, "stop", args));
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_EQ(request->version, kVersion);
  EXPECT_EQ(request->id, 42u);
  EXPECT_EQ(request->cmd, "stop");
  EXPECT_EQ(request->args, args);
}

TEST(ParseRequest, TakesMissingArgsAsEmpty) {
  auto request = parse_request(parse_object(R"({"v":1,"id":0,"cmd":"list"})"));
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_TRUE(request->args.empty());
}

TEST(ParseRequest, AcceptsTheLargestId) {
  auto request = parse_request(parse_object(R"({"v":1,"id":18446744073709551615,"cmd":"list"})"));
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_EQ(request->id, 18446744073709551615u);
}

TEST(ParseRequest, NamesAMissingField) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : {
           Case{R"({"id":1,"cmd":"list"})", "request.v: missing"},
           Case{R"({"v":1,"cmd":"list"})", "request.id: missing"},
           Case{R"({"v":1,"id":1})", "request.cmd: missing"},
       }) {
    auto request = parse_request(parse_object(c.text));
    ASSERT_FALSE(request.ok()) << c.text;
    EXPECT_EQ(request.error().message, c.error);
    EXPECT_EQ(request.error().kind, ErrorKind::kInvalidArgument);
  }
}

TEST(ParseRequest, NamesAFieldOfTheWrongType) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : {
           Case{R"({"v":"1","id":1,"cmd":"list"})", "request.v: expected an integer"},
           Case{R"({"v":1.5,"id":1,"cmd":"list"})", "request.v: expected an integer"},
           Case{R"({"v":1,"id":-1,"cmd":"list"})", "request.id: expected a non-negative integer"},
           Case{R"({"v":1,"id":"7","cmd":"list"})", "request.id: expected a non-negative integer"},
           Case{R"({"v":1,"id":1,"cmd":3})", "request.cmd: expected a string"},
           Case{R"({"v":1,"id":1,"cmd":"list","args":[]})", "request.args: expected an object"},
       }) {
    auto request = parse_request(parse_object(c.text));
    ASSERT_FALSE(request.ok()) << c.text;
    EXPECT_EQ(request.error().message, c.error);
  }
}

TEST(ParseRequest, VersionMismatchNamesBothVersions) {
  auto request = parse_request(parse_object(R"({"v":99,"id":1,"cmd":"list"})"));
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(request.error().message,
            "protocol version mismatch: the client speaks 99, the daemon speaks " +
                std::to_string(kVersion));
}

TEST(ParseRequest, ChecksTheVersionBeforeTheOtherFields) {
  auto request = parse_request(parse_object(R"({"v":2,"ident":1})"));
  ASSERT_FALSE(request.ok());
  EXPECT_NE(request.error().message.find("version mismatch"), std::string::npos);
}

TEST(Responses, ErrorHasCodeMessageAndVersion) {
  json::object error = make_error(9, ErrorCode::kNotFound, "no app \"web\"");
  EXPECT_EQ(error, parse_object(R"({"id":9,"ok":false,"error":{"code":"not_found",)"
                                R"("message":"no app \"web\"","version":1}})"));
}

TEST(Responses, ResultAndItemShapes) {
  EXPECT_EQ(make_result(4, {{"removed", 2}}),
            parse_object(R"({"id":4,"ok":true,"result":{"removed":2}})"));
  EXPECT_EQ(make_result(4), parse_object(R"({"id":4,"ok":true,"result":{}})"));
  EXPECT_EQ(make_item(4, {{"line", "x"}}), parse_object(R"({"id":4,"item":{"line":"x"}})"));
  EXPECT_EQ(make_request(4, "ping"), parse_object(R"({"v":1,"id":4,"cmd":"ping","args":{}})"));
}

TEST(Responses, ErrorCodeNamesRoundTrip) {
  for (ErrorCode code :
       {ErrorCode::kBadRequest, ErrorCode::kVersion, ErrorCode::kNotFound, ErrorCode::kExists,
        ErrorCode::kSpawnFailed, ErrorCode::kInvalid, ErrorCode::kBusy, ErrorCode::kInternal}) {
    EXPECT_EQ(parse_error_code(error_code_name(code)), code) << error_code_name(code);
  }
  EXPECT_STREQ(error_code_name(ErrorCode::kVersion), "version");
  EXPECT_STREQ(error_code_name(ErrorCode::kSpawnFailed), "spawn_failed");
  EXPECT_EQ(parse_error_code("no_such_code"), ErrorCode::kInternal);
}

// --- AppSpec ---------------------------------------------------------------

// A spec in which every field differs from its default.
AppSpec unusual_spec() {
  AppSpec spec;
  spec.name = "web";
  MonitorOptions& m = spec.monitor;
  m.argv = {"node", "server.js", "--port", "80 80"};
  m.interpreter = "/usr/bin/node";
  m.cwd = "/srv/web";
  m.env = {"PATH=/bin", "EMPTY=", "A=b=c"};
  m.user = "www-data";
  m.group = "www";
  m.umask = 027;
  m.restart = RestartMode::kOnFailure;
  m.max_restarts = 7;
  m.min_uptime = 2500ms;
  m.restart_delay = 300ms;
  m.backoff_max = 60000ms;
  m.kill_signal = SIGINT;
  m.kill_timeout = 12000ms;
  m.logs.out_path = "/var/log/web.out";
  m.logs.err_path = "/var/log/web.err";
  m.logs.append = true;
  m.logs.max_size = 5ull * 1024 * 1024 * 1024;
  m.logs.keep = 9;
  m.logs.timestamps = true;
  m.watch = {"src", "config.json"};
  m.watch_ignore = {"*.tmp", "node_modules"};
  m.watch_debounce = 750ms;
  m.pid_file = "/run/web.pid";
  m.ready = "tcp:8080";
  return spec;
}

void expect_same(const AppSpec& a, const AppSpec& b) {
  const MonitorOptions& x = a.monitor;
  const MonitorOptions& y = b.monitor;
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(x.argv, y.argv);
  EXPECT_EQ(x.interpreter, y.interpreter);
  EXPECT_EQ(x.cwd, y.cwd);
  EXPECT_EQ(x.env, y.env);
  EXPECT_EQ(x.user, y.user);
  EXPECT_EQ(x.group, y.group);
  EXPECT_EQ(x.umask, y.umask);
  EXPECT_EQ(x.restart, y.restart);
  EXPECT_EQ(x.max_restarts, y.max_restarts);
  EXPECT_EQ(x.min_uptime, y.min_uptime);
  EXPECT_EQ(x.restart_delay, y.restart_delay);
  EXPECT_EQ(x.backoff_max, y.backoff_max);
  EXPECT_EQ(x.kill_signal, y.kill_signal);
  EXPECT_EQ(x.kill_timeout, y.kill_timeout);
  EXPECT_EQ(x.logs.out_path, y.logs.out_path);
  EXPECT_EQ(x.logs.err_path, y.logs.err_path);
  EXPECT_EQ(x.logs.append, y.logs.append);
  EXPECT_EQ(x.logs.max_size, y.logs.max_size);
  EXPECT_EQ(x.logs.keep, y.logs.keep);
  EXPECT_EQ(x.logs.timestamps, y.logs.timestamps);
  EXPECT_EQ(x.watch, y.watch);
  EXPECT_EQ(x.watch_ignore, y.watch_ignore);
  EXPECT_EQ(x.watch_debounce, y.watch_debounce);
  EXPECT_EQ(x.pid_file, y.pid_file);
  EXPECT_EQ(x.ready, y.ready);
}

TEST(AppSpecJson, EveryFieldDiffersFromTheDefaultInTheTestSpec) {
  // Guards the round-trip test: a field left at its default would pass
  // even if it were never written.
  const AppSpec d;
  const AppSpec u = unusual_spec();
  EXPECT_NE(d.name, u.name);
  EXPECT_NE(d.monitor.argv, u.monitor.argv);
  EXPECT_NE(d.monitor.interpreter, u.monitor.interpreter);
  EXPECT_NE(d.monitor.cwd, u.monitor.cwd);
  EXPECT_NE(d.monitor.env, u.monitor.env);
  EXPECT_NE(d.monitor.user, u.monitor.user);
  EXPECT_NE(d.monitor.group, u.monitor.group);
  EXPECT_NE(d.monitor.umask, u.monitor.umask);
  EXPECT_NE(d.monitor.restart, u.monitor.restart);
  EXPECT_NE(d.monitor.max_restarts, u.monitor.max_restarts);
  EXPECT_NE(d.monitor.min_uptime, u.monitor.min_uptime);
  EXPECT_NE(d.monitor.restart_delay, u.monitor.restart_delay);
  EXPECT_NE(d.monitor.backoff_max, u.monitor.backoff_max);
  EXPECT_NE(d.monitor.kill_signal, u.monitor.kill_signal);
  EXPECT_NE(d.monitor.kill_timeout, u.monitor.kill_timeout);
  EXPECT_NE(d.monitor.ready, u.monitor.ready);
  EXPECT_NE(d.monitor.logs.out_path, u.monitor.logs.out_path);
  EXPECT_NE(d.monitor.logs.err_path, u.monitor.logs.err_path);
  EXPECT_NE(d.monitor.logs.append, u.monitor.logs.append);
  EXPECT_NE(d.monitor.logs.max_size, u.monitor.logs.max_size);
  EXPECT_NE(d.monitor.logs.keep, u.monitor.logs.keep);
  EXPECT_NE(d.monitor.logs.timestamps, u.monitor.logs.timestamps);
  EXPECT_NE(d.monitor.watch, u.monitor.watch);
  EXPECT_NE(d.monitor.watch_ignore, u.monitor.watch_ignore);
  EXPECT_NE(d.monitor.watch_debounce, u.monitor.watch_debounce);
  EXPECT_NE(d.monitor.pid_file, u.monitor.pid_file);
}

TEST(AppSpecJson, RoundTripsEveryField) {
  const AppSpec spec = unusual_spec();
  // Through the text, as it travels.
  const json::object wire = parse_object(json::serialize(to_json(spec)));
  auto back = app_spec_from_json(wire);
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_same(spec, *back);
  EXPECT_EQ(to_json(*back), to_json(spec));
}

TEST(AppSpecJson, RoundTripsTheDefaults) {
  AppSpec spec;
  spec.name = "a";
  spec.monitor.argv = {"true"};
  auto back = app_spec_from_json(parse_object(json::serialize(to_json(spec))));
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_same(spec, *back);
}

TEST(AppSpecJson, WritesTheDocumentedKeysAndTypes) {
  const json::object j = to_json(unusual_spec());
  EXPECT_EQ(sorted_keys_of(j),
            "append autostart backoff_max_ms cmd cwd env err group interpreter kill_signal "
            "kill_timeout_ms limit_nofile log_keep log_max_size log_timestamps max_restarts "
            "min_uptime_ms name nice out pid_file ready restart restart_delay_ms umask user watch "
            "watch_debounce_ms watch_ignore");
  EXPECT_EQ(j.at("kill_signal"), "INT");
  EXPECT_EQ(j.at("restart"), "on-failure");
  EXPECT_EQ(j.at("umask"), 027);
  EXPECT_EQ(j.at("min_uptime_ms"), 2500);

  AppSpec unset = unusual_spec();
  unset.monitor.umask.reset();
  unset.monitor.max_restarts.reset();
  const json::object n = to_json(unset);
  EXPECT_TRUE(n.at("umask").is_null());
  EXPECT_TRUE(n.at("max_restarts").is_null());
}

TEST(AppSpecJson, TakesMissingFieldsAsDefaultsAndIgnoresUnknownOnes) {
  auto spec = app_spec_from_json(
      parse_object(R"({"name":"w","cmd":["sleep","9"],"umask":null,"future_field":{}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->name, "w");
  EXPECT_EQ(spec->monitor.argv, (std::vector<std::string>{"sleep", "9"}));
  EXPECT_FALSE(spec->monitor.umask);
  EXPECT_EQ(spec->monitor.kill_timeout, MonitorOptions{}.kill_timeout);
}

TEST(AppSpecJson, TakesASignalNumber) {
  auto spec = app_spec_from_json(parse_object(R"({"name":"w","cmd":["x"],"kill_signal":9})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->monitor.kill_signal, SIGKILL);
  auto named =
      app_spec_from_json(parse_object(R"({"name":"w","cmd":["x"],"kill_signal":"SIGHUP"})"));
  ASSERT_TRUE(named.ok()) << named.error().message;
  EXPECT_EQ(named->monitor.kill_signal, SIGHUP);
}

TEST(AppSpecJson, RequiresNameAndCmd) {
  auto no_name = app_spec_from_json(parse_object(R"({"cmd":["x"]})"));
  ASSERT_FALSE(no_name.ok());
  EXPECT_EQ(no_name.error().message, "spec.name: missing");
  auto no_cmd = app_spec_from_json(parse_object(R"({"name":"x"})"));
  ASSERT_FALSE(no_cmd.ok());
  EXPECT_EQ(no_cmd.error().message, "spec.cmd: missing");
}

TEST(AppSpecJson, TypeErrorsNameTheField) {
  struct Case {
    const char* field;
    const char* value;
    const char* problem;
  };
  for (const Case& c : {
           Case{"name", "1", "expected a string"},
           Case{"cmd", "\"node\"", "expected an array of strings"},
           Case{"cmd", "[\"node\", 1]", "expected an array of strings"},
           Case{"env", "{}", "expected an array of strings"},
           Case{"cwd", "null", "expected a string"},
           Case{"umask", "\"022\"", "expected an integer from 0 to 511"},
           Case{"umask", "512", "expected an integer from 0 to 511"},
           Case{"restart", "true", "expected always, on-failure or never"},
           Case{"max_restarts", "1.5", "expected an integer"},
           Case{"max_restarts", "4294967296", "expected an integer"},
           Case{"min_uptime_ms", "\"1s\"", "expected an integer"},
           Case{"kill_timeout_ms", "\"5s\"", "expected an integer"},
           Case{"kill_signal", "[]", "expected a signal name or number"},
           Case{"append", "1", "expected true or false"},
           Case{"log_max_size", "-1", "expected a non-negative integer"},
           Case{"log_keep", "\"5\"", "expected an integer"},
           Case{"log_timestamps", "\"yes\"", "expected true or false"},
           Case{"watch", "\"src\"", "expected an array of strings"},
           Case{"watch_debounce_ms", "false", "expected an integer"},
           Case{"pid_file", "7", "expected a string"},
       }) {
    json::object j = to_json(unusual_spec());
    j[c.field] = json::parse(c.value);
    auto spec = app_spec_from_json(j);
    ASSERT_FALSE(spec.ok()) << c.field << " = " << c.value;
    EXPECT_EQ(spec.error().message, std::string("spec.") + c.field + ": " + c.problem);
    EXPECT_EQ(spec.error().kind, ErrorKind::kInvalidArgument);
  }
}

TEST(AppSpecJson, BadValuesNameTheField) {
  json::object j = to_json(unusual_spec());
  j["restart"] = "sometimes";
  auto restart = app_spec_from_json(j);
  ASSERT_FALSE(restart.ok());
  EXPECT_EQ(restart.error().message.rfind("spec.restart: ", 0), 0u) << restart.error().message;

  j = to_json(unusual_spec());
  j["kill_signal"] = "NOPE";
  auto sig = app_spec_from_json(j);
  ASSERT_FALSE(sig.ok());
  EXPECT_EQ(sig.error().message.rfind("spec.kill_signal: ", 0), 0u) << sig.error().message;
}

// --- Event -------------------------------------------------------------------

std::chrono::system_clock::time_point at_ms(std::int64_t ms_since_epoch) {
  return std::chrono::system_clock::time_point{std::chrono::milliseconds{ms_since_epoch}};
}

TEST(EventJson, ExitWithACode) {
  Event e;
  e.type = EventType::kExit;
  e.time = at_ms(1795711767123);  // 2026-11-26T16:49:27.123Z
  e.state = State::kBackoff;
  e.pid = 4242;
  e.exit = ExitStatus{false, 3};
  e.uptime = 20ms;
  EXPECT_EQ(to_json(e),
            parse_object(R"({"type":"exit","time":"2026-11-26T16:49:27.123Z","state":"backoff",)"
                         R"("pid":4242,"exit":{"code":3},"uptime_ms":20})"));
}

TEST(EventJson, ExitWithASignal) {
  Event e;
  e.type = EventType::kExit;
  e.time = at_ms(1795711767005);
  e.state = State::kExited;
  e.pid = 7;
  e.exit = ExitStatus{true, SIGTERM};
  e.uptime = 61000ms;
  const json::object j = to_json(e);
  EXPECT_EQ(j.at("exit"), parse_object(R"({"signal":"TERM"})"));
  EXPECT_EQ(j.at("uptime_ms"), 61000);
  EXPECT_EQ(j.at("time"), "2026-11-26T16:49:27.005Z");
}

TEST(EventJson, RestartCarriesAttemptAndDelay) {
  Event e;
  e.type = EventType::kRestart;
  e.state = State::kBackoff;
  e.attempt = 3;
  e.delay = 400ms;
  e.reason = "crash loop";
  EXPECT_EQ(to_json(e),
            parse_object(R"({"type":"restart","time":"1970-01-01T00:00:00.000Z",)"
                         R"("state":"backoff","attempt":3,"delay_ms":400,"reason":"crash loop"})"));
}

TEST(EventJson, OmitsFieldsThatDoNotApply) {
  Event start;
  start.type = EventType::kStart;
  start.state = State::kStarting;
  start.pid = 12;
  EXPECT_EQ(keys_of(to_json(start)), "type time state pid");

  Event stopped;
  stopped.type = EventType::kStop;
  stopped.state = State::kStopped;
  EXPECT_EQ(keys_of(to_json(stopped)), "type time state");
}

TEST(EventJson, WatchAndRotateCarryThePath) {
  Event watch;
  watch.type = EventType::kWatch;
  watch.state = State::kStopping;
  watch.path = "src/app.js";
  EXPECT_EQ(to_json(watch).at("path"), "src/app.js");
  Event rotate;
  rotate.type = EventType::kRotate;
  rotate.state = State::kRunning;
  rotate.path = "/logs/web.out.log";
  EXPECT_EQ(to_json(rotate).at("path"), "/logs/web.out.log");
}

TEST(EventJson, FormatsTimesBeforeTheEpoch) {
  Event e;
  e.time = at_ms(-1);
  EXPECT_EQ(to_json(e).at("time"), "1969-12-31T23:59:59.999Z");
}

// --- AppInfo -----------------------------------------------------------------

TEST(AppInfoJson, HasTheStableListSchema) {
  AppInfo info;
  info.id = 3;
  info.name = "web";
  info.status.state = State::kRunning;
  info.status.wanted_up = true;
  info.status.pid = 999;
  info.status.restarts = 2;
  info.status.uptime = 1500ms;
  info.status.last_exit = ExitStatus{true, SIGKILL};
  info.status.out_log = "/h/logs/web.out.log";
  info.status.err_log = "/h/logs/web.err.log";
  info.usage.cpu_percent = 12.345;
  info.usage.rss_bytes = 1 << 20;
  info.cmd = {"node", "server.js"};
  info.cwd = "/srv";

  const json::object j = to_json(info);
  EXPECT_EQ(keys_of(j),
            "id name pid status wanted restarts uptime_ms cpu rss_bytes cmd cwd out_log err_log "
            "last_exit last_error out_dropped_bytes err_dropped_bytes containment");
  EXPECT_EQ(j, parse_object(
                   R"({"id":3,"name":"web","pid":999,"status":"running","wanted":"up",)"
                   R"("restarts":2,"uptime_ms":1500,"cpu":12.3,"rss_bytes":1048576,)"
                   R"("cmd":["node","server.js"],"cwd":"/srv",)"
                   R"("out_log":"/h/logs/web.out.log","err_log":"/h/logs/web.err.log",)"
                   R"("last_exit":{"signal":"KILL"},"last_error":"",)"
                   R"("out_dropped_bytes":0,"err_dropped_bytes":0,"containment":"process-tree"})"));
}

TEST(AppInfoJson, PidAndLastExitAreNullWhenNotRunning) {
  AppInfo info;
  info.name = "idle";
  info.status.state = State::kStopped;
  info.status.last_error = "cannot execute";
  const json::object j = to_json(info);
  EXPECT_TRUE(j.at("pid").is_null());
  EXPECT_TRUE(j.at("last_exit").is_null());
  EXPECT_EQ(j.at("status"), "stopped");
  EXPECT_EQ(j.at("wanted"), "down");
  EXPECT_EQ(j.at("last_error"), "cannot execute");

  info.status.last_exit = ExitStatus{false, 0};
  EXPECT_EQ(to_json(info).at("last_exit"), parse_object(R"({"code":0})"));
}

}  // namespace
}  // namespace sempre::protocol

namespace sempre::protocol {
namespace {

namespace json = boost::json;

json::object object_of(std::string_view text) { return json::parse(text).as_object(); }

TEST(Commands, EveryCommandHasOneNameThatReadsBack) {
  for (const Command command : kCommands) {
    const auto parsed = parse_command(command_name(command));
    ASSERT_TRUE(parsed.has_value()) << command_name(command);
    EXPECT_EQ(*parsed, command);
  }
  EXPECT_FALSE(parse_command("echo").has_value());
}

TEST(Errors, EachCodeMeansOneKindAndBack) {
  for (const ErrorCode code :
       {ErrorCode::kBadRequest, ErrorCode::kVersion, ErrorCode::kNotFound, ErrorCode::kExists,
        ErrorCode::kSpawnFailed, ErrorCode::kInvalid, ErrorCode::kBusy, ErrorCode::kInternal}) {
    EXPECT_EQ(error_code_for(error_kind_for(code)), code) << error_code_name(code);
    EXPECT_EQ(parse_error_code(error_code_name(code)), code);
  }
  EXPECT_EQ(error_code_for(ErrorKind::kIo), ErrorCode::kInternal);
  EXPECT_STREQ(error_code_name(ErrorCode::kBusy), "busy");
  EXPECT_EQ(error_kind_for(ErrorCode::kBusy), ErrorKind::kUnavailable);
  EXPECT_EQ(make_error(3, Error{ErrorKind::kExists, "taken", 0}),
            make_error(3, ErrorCode::kExists, "taken"));
}

TEST(Versions, BothSidesSayTheMismatchInOneText) {
  const Status missing = check_version(nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "request.v: missing");
  const json::value two = 2;
  const Status mismatch = check_version(&two);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.error().kind, ErrorKind::kVersionMismatch);
  EXPECT_EQ(mismatch.error().message, version_mismatch(2, kVersion).message);

  // The client reads the daemon's version error with the same words.
  auto response = parse_response(object_of(
      R"({"id":1,"ok":false,"error":{"code":"version","message":"whatever","version":7}})"));
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->kind, Response::Kind::kError);
  EXPECT_EQ(response->error.kind, ErrorKind::kVersionMismatch);
  EXPECT_EQ(response->error.message, version_mismatch(kVersion, 7).message);
}

TEST(ParseResponse, ReadsItemsResultsAndErrors) {
  auto item = parse_response(object_of(R"({"id":4,"item":{"following":true}})"));
  ASSERT_TRUE(item.ok());
  EXPECT_EQ(item->kind, Response::Kind::kItem);
  EXPECT_EQ(item->id, 4u);
  EXPECT_EQ(item->body, object_of(R"({"following":true})"));

  auto result = parse_response(make_result(5, {{"removed", 2}}));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->kind, Response::Kind::kResult);
  EXPECT_EQ(result->body, object_of(R"({"removed":2})"));

  auto error = parse_response(make_error(6, ErrorCode::kNotFound, "no app matches \"x\""));
  ASSERT_TRUE(error.ok());
  EXPECT_EQ(error->kind, Response::Kind::kError);
  EXPECT_EQ(error->error.kind, ErrorKind::kNotFound);
  EXPECT_EQ(error->error.message, "no app matches \"x\"");

  auto neither = parse_response(object_of(R"({"id":7})"));
  ASSERT_FALSE(neither.ok());
  EXPECT_EQ(neither.error().kind, ErrorKind::kMalformed);
}

// `text` decoded as T and encoded again is `text`.
template <class T>
void expect_round_trip(std::string_view text) {
  const json::object wire = object_of(text);
  auto decoded = from_json<T>(wire);
  ASSERT_TRUE(decoded.ok()) << text << ": " << decoded.error().message;
  EXPECT_EQ(json::serialize(to_json(*decoded)), json::serialize(wire));
}

TEST(Messages, PayloadsRoundTripOnTheWire) {
  expect_round_trip<AppInfo>(
      R"({"id":1,"name":"api","pid":1234,"status":"running","wanted":"up","restarts":2,)"
      R"("uptime_ms":184000,"cpu":5E-1,"rss_bytes":12582912,"cmd":["node","server.js"],)"
      R"("cwd":"/srv","out_log":"/h/a.out.log","err_log":"/h/a.err.log",)"
      R"("last_exit":{"signal":"TERM"},"last_error":"","out_dropped_bytes":0,)"
      R"("err_dropped_bytes":4096,"containment":"process-tree"})");
  expect_round_trip<AppInfo>(
      R"({"id":2,"name":"db","pid":77,"status":"running","wanted":"up","restarts":0,)"
      R"("uptime_ms":5,"cpu":0E0,"rss_bytes":0,"cmd":["redis-server"],)"
      R"("cwd":"/","out_log":"","err_log":"","last_exit":null,"last_error":"",)"
      R"("out_dropped_bytes":0,"err_dropped_bytes":0,"containment":"cgroup","cgroup":"/sys/fs/cgroup/sempre-0-0badf00d/77"})");
  expect_round_trip<Event>(
      R"({"type":"exit","time":"2026-11-26T16:49:27.123Z","state":"backoff","pid":12,)"
      R"("exit":{"code":1},"uptime_ms":20})");
  expect_round_trip<Event>(
      R"({"type":"restart","time":"1970-01-01T00:00:00.000Z","state":"backoff","attempt":3,)"
      R"("delay_ms":400,"reason":"crashed"})");
  expect_round_trip<Event>(
      R"({"type":"log-error","time":"2026-11-26T16:49:27.123Z","state":"running",)"
      R"("reason":"write /h/a.out.log: No space left on device","path":"/h/a.out.log"})");
  expect_round_trip<Event>(
      R"({"type":"log-resumed","time":"2026-11-26T16:49:28.000Z","state":"running",)"
      R"("path":"/h/a.out.log","dropped_bytes":123456})");
  expect_round_trip<PingReply>(
      R"({"pid":9,"worker":10,"version":1,"home":"/h","uptime_ms":5,"apps":2})");
  expect_round_trip<SignalArgs>(R"({"signal":15,"targets":["web","2"]})");
  expect_round_trip<RestartArgs>(R"({"targets":["all"],"wait":true})");
  expect_round_trip<InfoArgs>(R"({"target":"web"})");
  expect_round_trip<InfoArgs>(R"({"targets":["web","db"]})");
  expect_round_trip<LogsArgs>(R"({"lines":10,"follow":true,"targets":["web"],"streams":["err"]})");
  expect_round_trip<EventsArgs>(R"({"target":null})");
  expect_round_trip<LogsItem>(R"({"apps":["web","db"]})");
  expect_round_trip<LogsItem>(R"({"following":true})");
  expect_round_trip<LogsItem>(
      R"({"app":"web","stream":"out","path":"/l/web.out.log","line":"hi"})");
  expect_round_trip<LogsItem>(R"({"app":"web","stream":"err","line_base64":"/w=="})");
  expect_round_trip<ApplyReply>(
      R"({"started":["a"],"added":[],"restarted":["b"],"deleted":[],"unchanged":["c"],)"
      R"("failed":[{"name":"d","error":"no such file"}],"changes":{"b":["cmd","env.PORT"]}})");
  expect_round_trip<StoppedReply>(R"({"stopped":3})");
  expect_round_trip<ReexecReply>(R"({"worker":4,"apps":2})");
  expect_round_trip<ListReply>(R"({"apps":[]})");
  expect_round_trip<ListReply>(R"({"apps":[],"warnings":["state.json was damaged"]})");
}

TEST(Messages, ABadShapeNamesTheFieldAndTheCommand) {
  auto stop = decode_args<Command::kStop>(object_of(R"({"targets":[]})"));
  ASSERT_FALSE(stop.ok());
  EXPECT_EQ(stop.error().kind, ErrorKind::kMalformed);
  EXPECT_EQ(stop.error().message, "stop: expected at least one TARGET");

  auto signal = decode_args<Command::kSignal>(object_of(R"({"targets":["a"],"signal":"TERM"})"));
  ASSERT_FALSE(signal.ok());
  EXPECT_EQ(signal.error().message, "signal: expected a signal number");

  // A spec's own problem is the spec's: invalid, not a bad request.
  auto start = decode_args<Command::kStart>(object_of(R"({"spec":{"name":"x","cmd":"ls"}})"));
  ASSERT_FALSE(start.ok());
  EXPECT_EQ(start.error().kind, ErrorKind::kInvalidArgument);
  EXPECT_EQ(start.error().message, "spec.cmd: expected an array of strings");

  auto info = from_json<AppInfo>(object_of(R"({"id":1,"name":"x","status":"asleep"})"));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().message, "status: unknown state \"asleep\"");

  auto event = from_json<Event>(object_of(R"({"type":"exit","time":"yesterday"})"));
  ASSERT_FALSE(event.ok());
  EXPECT_NE(event.error().message.find("event.time"), std::string::npos) << event.error().message;
}

}  // namespace
}  // namespace sempre::protocol

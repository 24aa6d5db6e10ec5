// The control protocol between `sempre` and `sempred`: the one place that
// defines it. Both binaries link this file.
//
// Every command is a Command (kCommands names them all) with one args struct
// and one reply struct, and, for the streams, one item type: Messages<C>
// names them, and each has to_json() and from_json<T>() both ways. The daemon
// decodes a request with decode_args<C>() and answers with to_json(reply);
// the CLI sends to_json(args) and decodes the reply with from_json<Reply>().
// Neither reads a payload by key anywhere else.
//
// BUMP kVersion WHEN ANYTHING HERE CHANGES MEANING: a field, a command, the
// framing. (A new command does not: an older daemon answers it bad_request;
// nor does a new optional field, which an older peer ignores, or a new error
// code, which an older client reads as internal.) A peer of another version
// gets an explicit error, never a guess.
//
// Framing: every message is one line of compact JSON ending in '\n', at most
// kMaxMessage bytes including the newline.
//
// Request   {"v":1, "id":7, "cmd":"list", "args":{...}}
// Item      {"id":7, "item":{...}}                       (streams: logs, events)
// Response  {"id":7, "ok":true,  "result":{...}}          ends the request
//           {"id":7, "ok":false, "error":{"code":"not_found", "message":"...",
//                                          "version":1}}   (version: the daemon's kVersion)
// parse_response() reads both kinds of answer. Each ErrorCode means one
// ErrorKind (error_code_for / error_kind_for); a version mismatch reads
// version_mismatch() on either side.
//
// Commands (args -> result):
//   ping      {}                                  -> {"pid","version","home","uptime_ms","apps"}
//   start     {"spec":AppSpec, "wait":bool}       -> {"app":AppInfo}
//   stop | delete
//             {"targets":[TARGET...]}             -> {"apps":[AppInfo...]}
//   restart   {"targets":[TARGET...], "wait":bool} -> {"apps":[AppInfo...]}
//             (start and restart: an AppInfo also holds "error":TEXT when the app is not
//             running as asked; "wait": answer once it is running, or has ended)
//   signal    {"signal":N, "targets":[TARGET...]} -> {"apps":[AppInfo...]}
//   list      {}                                  -> {"apps":[AppInfo...], "warnings":[TEXT...]}
//             ("warnings", when there are any: what the daemon found wrong with state.json
//             when it started; answered to the first list only)
//   info      {"target":TARGET}                   -> {"app":AppInfo + "spec":AppSpec +
//                                                     "source":PATH ("": the command line)}
//             {"targets":[TARGET...]}             -> {"apps":[the same, in id order]}
//   logs      {"targets":[TARGET...] (none or missing: all), "lines":N, "follow":bool,
//              "streams":["out"|"err"...] (missing: both)}
//             items: {"apps":[NAME...]} first; then the last lines of each file,
//             {"app":NAME, "stream":"out"|"err"|"log" (one file for both), "path":PATH,
//             "line":TEXT | "line_base64":B64}; -> {"apps":N} unless follow, which
//             sends {"following":true} and then each new line, {"app", "stream", "line"...}
//   events    {"target":TARGET|null} (or "targets") items {"app":NAME, "event":Event}; no end
//   cleanlogs {}                                  -> {"removed":N}
//   flush     {"targets":[TARGET...] (none: all)} -> {"apps":[NAME...]}: current logs emptied
//   apply     {"file":PATH, "mode":"start"|"reload", "specs":[AppSpec...], "only":[NAME...]
//              (start only; optional), "env":["K=V"...], "watch":bool}
//             -> {"started":[NAME], "added":[NAME] (autostart false: added stopped),
//                 "restarted":[NAME], "deleted":[NAME], "unchanged":[NAME],
//                 "changes":{NAME:[KEY...]} (why each restarted; "env.PORT" for a variable),
//                 "failed":[{"name":NAME, "error":TEXT}]}
//             Optional flags: "dry_run" (answer what would be done, do nothing),
//             "update_env" (take "env" even for a file remembered with another one).
//             start: starts the file's apps; one already there with the same spec is left
//             alone. reload: also restarts the changed apps of that file and deletes those no
//             longer in it. The daemon remembers the file (and env) for SIGHUP and, with
//             "watch", applies every saved change as reload does.
//   dump      {}                                  -> {"apps":[{"spec":AppSpec, "wanted_up":bool,
//                                                     "source":PATH}]}  (`sempre save`)
//   kill      {}                                  -> {"stopped":N}: every app stopped (wanted
//                                                    down), then the daemon exits
//   shutdown  {}                                  -> {"stopped":N}: every app stopped but still
//                                                    wanted up (the next daemon starts them),
//                                                    then the daemon exits (`sempre daemon stop`)
// TARGET is a name, an id or a pid (as a string), or "all".
//
// AppInfo (also `sempre list --json`, documented in sempre(1)):
//   {"id", "name", "pid" (null when not running), "status" (a lifecycle state),
//    "wanted" ("up"|"down"), "restarts", "uptime_ms", "cpu", "rss_bytes", "cmd" ([argv]),
//    "cwd", "out_log", "err_log", "last_exit" (null | {"code":N} | {"signal":"TERM"}),
//    "last_error" (string), "containment" ("cgroup" | "process-tree" | null when no
//    process runs), "cgroup" (its directory, with "cgroup" only)}
// Event: {"type", "time" (ISO 8601 UTC with ms, "2026-11-26T16:49:27.123Z"), "state",
//         "pid", "exit" (as last_exit), "uptime_ms", "attempt", "delay_ms", "reason",
//         "path"} (fields that do not apply are omitted).
// AppSpec: {"name", "cmd" ([argv]), "interpreter", "cwd", "env" (["K=V"]), "user",
//           "group", "umask" (int|null), "nice" (int|null), "limit_nofile" (int|null),
//           "restart" ("always"|"on-failure"|"never"),
//           "max_restarts" (int|null), "min_uptime_ms", "restart_delay_ms",
//           "backoff_max_ms", "kill_signal" ("TERM"; a number is accepted too),
//           "kill_timeout_ms", "out", "err", "append", "log_max_size", "log_keep",
//           "log_timestamps", "watch" ([path]), "watch_ignore" ([glob]),
//           "watch_debounce_ms", "pid_file", "ready", "autostart" (bool: false adds the app
//           stopped)}
#pragma once

#include <sys/types.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "app_spec.hpp"
#include "sempre/events.hpp"
#include "sempre/monitor.hpp"
#include "sempre/result.hpp"

namespace sempre::protocol {

inline constexpr int kVersion = 1;
inline constexpr std::size_t kMaxMessage = 1024 * 1024;

// --- framing ------------------------------------------------------------

// Cuts a byte stream into messages. Never trusts the peer: a line longer
// than kMaxMessage, or one that is not a JSON object, is kMalformed, after
// which the connection must be dropped.
class FrameDecoder {
 public:
  enum class Status { kMessage, kNeedMore, kMalformed };

  void feed(std::string_view bytes);
  // On kMessage fills `message`; on kMalformed fills `error`. Empty lines are
  // skipped. Once kMalformed, always kMalformed (with the same error).
  Status next(boost::json::object& message, std::string& error);
  // Bytes received and not yet returned as messages.
  std::size_t buffered() const { return buffer_.size() - start_; }
  // Bytes of memory it holds on to. Once every message is returned, at most
  // kRetained, however large the last one was.
  std::size_t capacity() const { return buffer_.capacity(); }
  static constexpr std::size_t kRetained = 64 * 1024;

 private:
  Status fail(std::string message, std::string& error);

  std::string buffer_;
  std::size_t start_ = 0;    // bytes of buffer_ already consumed by next()
  std::size_t scanned_ = 0;  // bytes of buffer_ known to hold no '\n'
  bool failed_ = false;
  std::string error_;
};

// The frame of one message: compact JSON and '\n'.
std::string encode(const boost::json::object& message);

// --- commands -------------------------------------------------------------

// Every command of the protocol. A new one is a row here, in kCommands and
// in command_name(), a Messages<> specialization, its payload structs and
// codecs, and a route in the daemon's table (daemon/app_manager.cpp).
enum class Command {
  kPing,
  kStart,
  kStop,
  kRestart,
  kDelete,
  kSignal,
  kList,
  kInfo,
  kLogs,
  kEvents,
  kCleanlogs,
  kFlush,
  kApply,
  kDump,
  kKill,
  kShutdown,
  kReexec,
};
inline constexpr Command kCommands[] = {
    Command::kPing,      Command::kStart,  Command::kStop,  Command::kRestart, Command::kDelete,
    Command::kSignal,    Command::kList,   Command::kInfo,  Command::kLogs,    Command::kEvents,
    Command::kCleanlogs, Command::kFlush,  Command::kApply, Command::kDump,    Command::kKill,
    Command::kShutdown,  Command::kReexec,
};
// Its name on the wire: "ping", "start", ...
const char* command_name(Command command);
// The command named `name`; nullopt for a name no command has.
std::optional<Command> parse_command(std::string_view name);

// --- errors and versions ----------------------------------------------------

// Error codes on the wire. Each means one ErrorKind (error_kind_for), and
// the CLI's exit code follows from the kind (cli/commands.hpp exit_code_for).
// GCC 12 warns that ErrorCode::kVersion shadows protocol::kVersion, which a
// scoped enumerator cannot do; the warning is silenced for this enum only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
enum class ErrorCode {
  kBadRequest,   // malformed or unknown request      (ErrorKind::kMalformed)
  kVersion,      // protocol versions differ          (kVersionMismatch)
  kNotFound,     // unknown target                    (kNotFound)
  kExists,       // name taken                        (kExists)
  kSpawnFailed,  // the program could not be started  (kSpawnFailed)
  kInvalid,      // the spec is invalid               (kInvalidArgument)
  kBusy,         // too many clients; try again       (kUnavailable)
  kInternal,     // anything else                     (kInternal, and every other kind)
};
#pragma GCC diagnostic pop
const char* error_code_name(ErrorCode code);        // "bad_request", ...
ErrorCode parse_error_code(std::string_view name);  // unknown names: kInternal
// The code the daemon answers an Error of `kind` with.
ErrorCode error_code_for(ErrorKind kind);
// The kind of Error an error code means, for the CLI.
ErrorKind error_kind_for(ErrorCode code);

// The one text of a version mismatch, whichever side finds it: "protocol
// version mismatch: the client speaks C, the daemon speaks D", of kind
// kVersionMismatch.
Error version_mismatch(std::int64_t client, std::int64_t daemon);
// The one version check of a request's "v" (nullptr: missing): ok when it is
// kVersion; kInvalidArgument when missing or not an integer; else
// version_mismatch().
Status check_version(const boost::json::value* v);

// --- requests and responses ----------------------------------------------

struct Request {
  int version = kVersion;
  std::uint64_t id = 0;
  std::string cmd;  // parse_command(cmd) is the command, when it is one
  boost::json::object args;
};

boost::json::object make_request(std::uint64_t id, std::string_view cmd,
                                 boost::json::object args = {});
boost::json::object make_request(std::uint64_t id, Command command, boost::json::object args = {});
// Checks the shape (v, id, cmd, args), the version first (check_version):
// a peer of another version may shape the rest differently. A shape error is
// kInvalidArgument, naming the field ("request.id: missing").
Result<Request> parse_request(const boost::json::object& message);

boost::json::object make_item(std::uint64_t id, boost::json::object item);
boost::json::object make_result(std::uint64_t id, boost::json::object result = {});
boost::json::object make_error(std::uint64_t id, ErrorCode code, std::string_view message);
// make_error() with the code of `error.kind` and its message.
boost::json::object make_error(std::uint64_t id, const Error& error);

// One message from the daemon, as the client reads it.
struct Response {
  enum class Kind { kItem, kResult, kError };
  Kind kind = Kind::kResult;
  std::uint64_t id = 0;
  boost::json::object body;  // kItem: the item; kResult: the result
  // kError: the daemon's error, of the kind its code means (error_kind_for).
  // A version error reads version_mismatch() of this client and the daemon's
  // "version".
  Error error;
};
// Fails with kMalformed for a message that is neither an item nor a response.
Result<Response> parse_response(const boost::json::object& message);

// --- payloads ------------------------------------------------------------

// Child output is bytes, and JSON strings are UTF-8: a line of output
// travels as {"line":TEXT} when it is valid UTF-8, else as
// {"line_base64":BASE64} with its exact bytes.
void put_line(boost::json::object& item, std::string_view bytes);
// The bytes put_line() stored; empty when neither field is there.
std::string get_line(const boost::json::object& item);
// Whether `text` is well-formed UTF-8 (no overlongs, surrogates or code
// points past U+10FFFF).
bool valid_utf8(std::string_view text);

// Decodes a payload of type T. Every from_json<T>() fails with an Error
// naming the first field of a wrong shape (kMalformed; a spec's own problems
// are app_spec_from_json()'s, kInvalidArgument). Fields a struct does not
// know are ignored.
template <class T>
Result<T> from_json(const boost::json::object& json);

boost::json::object to_json(const AppSpec& spec);
// Every field optional but "name" and "cmd"; unknown fields are ignored.
Result<AppSpec> app_spec_from_json(const boost::json::object& json);

// "2026-11-26T16:49:27.123Z": an Event's "time".
std::string iso8601_utc(std::chrono::system_clock::time_point time);

boost::json::object to_json(const Event& event);
// "type" and "time" are required; the fields that do not apply may be missing.
template <>
Result<Event> from_json<Event>(const boost::json::object& json);

// What the daemon knows of one app, for list and info.
struct AppInfo {
  std::uint64_t id = 0;
  std::string name;
  MonitorStatus status;
  MonitorUsage usage;  // cpu_percent and rss_bytes travel
  std::vector<std::string> cmd;
  std::string cwd;
};
boost::json::object to_json(const AppInfo& info);
// "id" and "name" are required.
template <>
Result<AppInfo> from_json<AppInfo>(const boost::json::object& json);

// --- messages ---------------------------------------------------------------

// The args of a command that takes none, and the reply of one that never
// ends (events).
struct Empty {};
// The item type of a command that sends none.
struct NoItem {};

// ping -> PingReply
struct PingReply {
  pid_t pid = 0;     // the daemon's (its keeper's)
  pid_t worker = 0;  // the worker's; the same as pid without a keeper
  int version = kVersion;
  std::string home;
  Millis uptime{0};
  std::size_t apps = 0;
};

// An app a command acted on: its AppInfo and, when it is not running as
// asked (a restart left it unable to run; with "wait", it ended first), why.
struct AppOutcome {
  AppInfo app;
  std::string error;  // empty: none
};

// start -> StartReply
struct StartArgs {
  AppSpec spec;
  bool wait = false;
};
struct StartReply {
  AppOutcome app;
};

// stop, delete -> AppsReply
struct TargetsArgs {
  std::vector<std::string> targets;  // at least one
};
// restart -> AppsReply
struct RestartArgs {
  std::vector<std::string> targets;  // at least one
  bool wait = false;
};
// signal -> AppsReply
struct SignalArgs {
  int signal = 0;                    // 1 .. NSIG-1
  std::vector<std::string> targets;  // at least one
};
struct AppsReply {
  std::vector<AppOutcome> apps;
};

// list -> ListReply
struct ListReply {
  std::vector<AppInfo> apps;
  // What the daemon could not restore from state.json, said once: to the
  // first list after it started. Empty: nothing to say (and not sent).
  std::vector<std::string> warnings;
};

// info -> InfoReply: with `target`, one app ("all" is refused); else the
// apps of `targets` (at least one), in id order.
struct InfoArgs {
  std::optional<std::string> target;
  std::vector<std::string> targets;
};
struct AppDetails {
  AppInfo app;
  AppSpec spec;
  std::string source;  // the config file; empty: the command line
};
struct InfoReply {
  std::optional<AppDetails> app;  // for a `target`
  std::vector<AppDetails> apps;   // for `targets`
};

// logs -> items LogsItem..., then LogsReply (unless `follow`)
inline constexpr std::size_t kDefaultLogLines = 15;
struct LogsArgs {
  std::vector<std::string> targets;  // none: every app
  std::size_t lines = kDefaultLogLines;
  bool follow = false;
  bool out = true;  // which streams
  bool err = true;
};
// The first item: whose logs follow.
struct LogsApps {
  std::vector<std::string> apps;
};
// With follow, once the last lines are sent: what comes next is new.
struct LogsFollowing {};
// One line of a log: from the end of a file (with its `path`) or, when
// following, as it is written (no path).
struct LogLine {
  std::string app;
  std::string stream;  // "out", "err", or "log" (one file holds both)
  std::string path;
  std::string text;  // the bytes, as the program wrote them
};
using LogsItem = std::variant<LogsApps, LogsFollowing, LogLine>;
struct LogsReply {
  std::size_t apps = 0;
};

// events -> items EventItem..., no reply
struct EventsArgs {
  std::vector<std::string> targets;  // none: every app, those added later too
};
struct EventItem {
  std::string app;
  Event event;
};

// cleanlogs -> CleanlogsReply
struct CleanlogsReply {
  int removed = 0;
};

// flush -> FlushReply
struct FlushArgs {
  std::vector<std::string> targets;  // none: every app
};
struct FlushReply {
  std::vector<std::string> apps;
};

// apply -> ApplyReply
enum class ApplyMode { kStart, kReload };
struct ApplyArgs {
  std::string file;
  ApplyMode mode = ApplyMode::kStart;
  std::vector<AppSpec> specs;
  std::vector<std::string> env;
  bool watch = false;
  bool dry_run = false;
  bool update_env = false;
  std::vector<std::string> only;  // start: only these apps of the file
};
struct ApplyFailure {
  std::string name;
  std::string error;
};
struct ApplyReply {
  std::vector<std::string> started, added, restarted, deleted, unchanged;
  std::vector<ApplyFailure> failed;
  // NAME -> the keys that changed, for each restarted app, in that order.
  std::vector<std::pair<std::string, std::vector<std::string>>> changes;
};

// dump -> DumpReply
struct DumpedApp {
  AppSpec spec;
  bool wanted_up = false;
  std::string source;
};
struct DumpReply {
  std::vector<DumpedApp> apps;
};

// kill, shutdown -> StoppedReply
struct StoppedReply {
  std::size_t stopped = 0;
};

// reexec -> ReexecReply: the worker that answers is about to hand its apps
// over to the next one. Understood whatever the version of the request, so
// that a CLI of a newer version can replace an older daemon.
struct ReexecReply {
  pid_t worker = 0;
  std::size_t apps = 0;
};

// The payload types of command C: Args, Reply and Item.
template <Command C>
struct Messages;
template <class A, class R, class I = NoItem>
struct MessageTypes {
  using Args = A;
  using Reply = R;
  using Item = I;
};
template <>
struct Messages<Command::kPing> : MessageTypes<Empty, PingReply> {};
template <>
struct Messages<Command::kStart> : MessageTypes<StartArgs, StartReply> {};
template <>
struct Messages<Command::kStop> : MessageTypes<TargetsArgs, AppsReply> {};
template <>
struct Messages<Command::kRestart> : MessageTypes<RestartArgs, AppsReply> {};
template <>
struct Messages<Command::kDelete> : MessageTypes<TargetsArgs, AppsReply> {};
template <>
struct Messages<Command::kSignal> : MessageTypes<SignalArgs, AppsReply> {};
template <>
struct Messages<Command::kList> : MessageTypes<Empty, ListReply> {};
template <>
struct Messages<Command::kInfo> : MessageTypes<InfoArgs, InfoReply> {};
template <>
struct Messages<Command::kLogs> : MessageTypes<LogsArgs, LogsReply, LogsItem> {};
template <>
struct Messages<Command::kEvents> : MessageTypes<EventsArgs, Empty, EventItem> {};
template <>
struct Messages<Command::kCleanlogs> : MessageTypes<Empty, CleanlogsReply> {};
template <>
struct Messages<Command::kFlush> : MessageTypes<FlushArgs, FlushReply> {};
template <>
struct Messages<Command::kApply> : MessageTypes<ApplyArgs, ApplyReply> {};
template <>
struct Messages<Command::kDump> : MessageTypes<Empty, DumpReply> {};
template <>
struct Messages<Command::kKill> : MessageTypes<Empty, StoppedReply> {};
template <>
struct Messages<Command::kShutdown> : MessageTypes<Empty, StoppedReply> {};
template <>
struct Messages<Command::kReexec> : MessageTypes<Empty, ReexecReply> {};

template <Command C>
using ArgsOf = typename Messages<C>::Args;
template <Command C>
using ReplyOf = typename Messages<C>::Reply;
template <Command C>
using ItemOf = typename Messages<C>::Item;

boost::json::object to_json(const Empty&);
boost::json::object to_json(const PingReply& reply);
boost::json::object to_json(const AppOutcome& outcome);  // AppInfo and, if any, "error"
boost::json::object to_json(const StartArgs& args);
boost::json::object to_json(const StartReply& reply);
boost::json::object to_json(const TargetsArgs& args);
boost::json::object to_json(const RestartArgs& args);
boost::json::object to_json(const SignalArgs& args);
boost::json::object to_json(const AppsReply& reply);
boost::json::object to_json(const ListReply& reply);
boost::json::object to_json(const InfoArgs& args);
boost::json::object to_json(const AppDetails& details);  // AppInfo, "spec", "source"
boost::json::object to_json(const InfoReply& reply);
boost::json::object to_json(const LogsArgs& args);
boost::json::object to_json(const LogsApps& item);
boost::json::object to_json(const LogsFollowing& item);
boost::json::object to_json(const LogLine& item);
boost::json::object to_json(const LogsItem& item);
boost::json::object to_json(const LogsReply& reply);
boost::json::object to_json(const EventsArgs& args);
boost::json::object to_json(const EventItem& item);
boost::json::object to_json(const CleanlogsReply& reply);
boost::json::object to_json(const FlushArgs& args);
boost::json::object to_json(const FlushReply& reply);
boost::json::object to_json(const ApplyArgs& args);
boost::json::object to_json(const ApplyReply& reply);
boost::json::object to_json(const DumpedApp& app);
boost::json::object to_json(const DumpReply& reply);
boost::json::object to_json(const StoppedReply& reply);
boost::json::object to_json(const ReexecReply& reply);

template <>
Result<Empty> from_json<Empty>(const boost::json::object& json);
template <>
Result<PingReply> from_json<PingReply>(const boost::json::object& json);
template <>
Result<AppOutcome> from_json<AppOutcome>(const boost::json::object& json);
template <>
Result<StartArgs> from_json<StartArgs>(const boost::json::object& json);
template <>
Result<StartReply> from_json<StartReply>(const boost::json::object& json);
template <>
Result<TargetsArgs> from_json<TargetsArgs>(const boost::json::object& json);
template <>
Result<RestartArgs> from_json<RestartArgs>(const boost::json::object& json);
template <>
Result<SignalArgs> from_json<SignalArgs>(const boost::json::object& json);
template <>
Result<AppsReply> from_json<AppsReply>(const boost::json::object& json);
template <>
Result<ListReply> from_json<ListReply>(const boost::json::object& json);
template <>
Result<InfoArgs> from_json<InfoArgs>(const boost::json::object& json);
template <>
Result<AppDetails> from_json<AppDetails>(const boost::json::object& json);
template <>
Result<InfoReply> from_json<InfoReply>(const boost::json::object& json);
// Lenient, as the daemon has always been: a field of another type reads as missing.
template <>
Result<LogsArgs> from_json<LogsArgs>(const boost::json::object& json);
template <>
Result<LogsItem> from_json<LogsItem>(const boost::json::object& json);
template <>
Result<LogsReply> from_json<LogsReply>(const boost::json::object& json);
// Lenient: "targets" (strings) or "target" (a string or null).
template <>
Result<EventsArgs> from_json<EventsArgs>(const boost::json::object& json);
template <>
Result<EventItem> from_json<EventItem>(const boost::json::object& json);
template <>
Result<CleanlogsReply> from_json<CleanlogsReply>(const boost::json::object& json);
// Lenient as EventsArgs.
template <>
Result<FlushArgs> from_json<FlushArgs>(const boost::json::object& json);
template <>
Result<FlushReply> from_json<FlushReply>(const boost::json::object& json);
template <>
Result<ApplyArgs> from_json<ApplyArgs>(const boost::json::object& json);
template <>
Result<ApplyReply> from_json<ApplyReply>(const boost::json::object& json);
template <>
Result<DumpedApp> from_json<DumpedApp>(const boost::json::object& json);
template <>
Result<DumpReply> from_json<DumpReply>(const boost::json::object& json);
template <>
Result<ReexecReply> from_json<ReexecReply>(const boost::json::object& json);
template <>
Result<StoppedReply> from_json<StoppedReply>(const boost::json::object& json);

// The args of a request for command C. A shape error names the command
// ("stop: expected at least one TARGET"); a spec's error is its own.
template <Command C>
Result<ArgsOf<C>> decode_args(const boost::json::object& args) {
  auto decoded = from_json<ArgsOf<C>>(args);
  if (decoded || decoded.error().kind != ErrorKind::kMalformed) return decoded;
  Error error = decoded.error();
  error.message = std::string(command_name(C)) + ": " + error.message;
  return error;
}

}  // namespace sempre::protocol

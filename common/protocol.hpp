// The control protocol between `sempre` and `sempred`: the one place that
// defines it. Both binaries link this file.
//
// BUMP kVersion WHEN ANYTHING HERE CHANGES MEANING: a field, a command, the
// framing. (A new command does not: an older daemon answers it bad_request.)
// A peer of another version gets an explicit error, never a guess.
//
// Framing: every message is one line of compact JSON ending in '\n', at most
// kMaxMessage bytes including the newline.
//
// Request   {"v":1, "id":7, "cmd":"list", "args":{...}}
// Item      {"id":7, "item":{...}}                       (streams: logs, events)
// Response  {"id":7, "ok":true,  "result":{...}}          ends the request
//           {"id":7, "ok":false, "error":{"code":"not_found", "message":"...",
//                                          "version":1}}   (version: the daemon's kVersion)
//
// Commands (args -> result):
//   ping      {}                                  -> {"pid","version","home","uptime_ms","apps"}
//   start     {"spec":AppSpec}                    -> {"app":AppInfo}
//   stop | restart | delete
//             {"targets":[TARGET...]}             -> {"apps":[AppInfo...]}
//   signal    {"signal":N, "targets":[TARGET...]} -> {"apps":[AppInfo...]}
//   list      {}                                  -> {"apps":[AppInfo...]}
//   info      {"target":TARGET}                   -> {"app":AppInfo + "spec":AppSpec +
//                                                     "source":PATH ("": the command line)}
//             {"targets":[TARGET...]}             -> {"apps":[the same, in id order]}
//   logs      {"targets":[TARGET...] (none or missing: all), "lines":N, "follow":bool,
//              "streams":["out"|"err"...] (missing: both)}
//             items: {"apps":[NAME...]} first; then the last lines of each file,
//             {"app":NAME, "stream":"out"|"err"|"log" (one file for both), "path":PATH,
//             "line":TEXT | "line_base64":B64}; -> {"apps":N} unless follow, which
//             sends {"following":true} and then each new line, {"app", "stream", "line"...}
//   events    {"target":TARGET|null}              items {"app":NAME, "event":Event}; no end
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
//    "last_error" (string)}
// Event: {"type", "time" (ISO 8601 UTC with ms, "2026-11-26T16:49:27.123Z"), "state",
//         "pid", "exit" (as last_exit), "uptime_ms", "attempt", "delay_ms", "reason",
//         "path"} (fields that do not apply are omitted).
// AppSpec: {"name", "cmd" ([argv]), "interpreter", "cwd", "env" (["K=V"]), "user",
//           "group", "umask" (int|null), "restart" ("always"|"on-failure"|"never"),
//           "max_restarts" (int|null), "min_uptime_ms", "restart_delay_ms",
//           "backoff_max_ms", "kill_signal" ("TERM"; a number is accepted too),
//           "kill_timeout_ms", "out", "err", "append", "log_max_size", "log_keep",
//           "log_timestamps", "watch" ([path]), "watch_ignore" ([glob]),
//           "watch_debounce_ms", "pid_file", "ready", "autostart" (bool: false adds the app
//           stopped)}
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>

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

// --- requests and responses ----------------------------------------------

// Error codes on the wire, and the exit code the CLI gives each.
// GCC 12 warns that ErrorCode::kVersion shadows protocol::kVersion, which a
// scoped enumerator cannot do; the warning is silenced for this enum only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
enum class ErrorCode {
  kBadRequest,   // malformed or unknown request (CLI exit 2)
  kVersion,      // protocol versions differ (CLI exit 3)
  kNotFound,     // unknown target (1)
  kExists,       // name taken (1)
  kSpawnFailed,  // the program could not be started (1)
  kInvalid,      // the spec is invalid (2)
  kInternal,     // anything else (1)
};
#pragma GCC diagnostic pop
const char* error_code_name(ErrorCode code);  // "bad_request", ...
ErrorCode parse_error_code(std::string_view name);  // unknown names: kInternal

struct Request {
  int version = kVersion;
  std::uint64_t id = 0;
  std::string cmd;
  boost::json::object args;
};

boost::json::object make_request(std::uint64_t id, std::string_view cmd, boost::json::object args = {});
// Checks the shape (v, id, cmd, args). A version mismatch is reported as an
// Error whose message names both versions.
Result<Request> parse_request(const boost::json::object& message);

boost::json::object make_item(std::uint64_t id, boost::json::object item);
boost::json::object make_result(std::uint64_t id, boost::json::object result = {});
boost::json::object make_error(std::uint64_t id, ErrorCode code, std::string_view message);

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

boost::json::object to_json(const AppSpec& spec);
// Every field optional but "name" and "cmd"; unknown fields are ignored.
Result<AppSpec> app_spec_from_json(const boost::json::object& json);

boost::json::object to_json(const Event& event);

// What the daemon knows of one app, for list and info.
struct AppInfo {
  std::uint64_t id = 0;
  std::string name;
  MonitorStatus status;
  MonitorUsage usage;
  std::vector<std::string> cmd;
  std::string cwd;
};
boost::json::object to_json(const AppInfo& info);

}  // namespace sempre::protocol

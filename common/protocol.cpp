#include "protocol.hpp"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include "json_fields.hpp"
#include "option_schema.hpp"

namespace sempre::protocol {
namespace json = boost::json;

// --- framing ------------------------------------------------------------

namespace {

std::string too_large() { return "message larger than " + std::to_string(kMaxMessage) + " bytes"; }

}  // namespace

void FrameDecoder::feed(std::string_view bytes) {
  // Dropping what next() consumed here, once per feed, keeps the work linear
  // in the bytes received however many messages one feed holds.
  if (start_ > 0) {
    buffer_.erase(0, start_);
    scanned_ -= start_;
    start_ = 0;
  }
  buffer_.append(bytes);
}

FrameDecoder::Status FrameDecoder::fail(std::string message, std::string& error) {
  failed_ = true;
  error_ = std::move(message);
  error = error_;
  buffer_.clear();
  start_ = 0;
  scanned_ = 0;
  return Status::kMalformed;
}

namespace {

// Whether `value` holds a number too large for a double (1e400 parses as
// infinity), which no JSON text can carry on: serialize() would print it as
// "Infinity", and the peer could not read that.
bool has_non_finite(const json::value& value) {
  switch (value.kind()) {
    case json::kind::double_:
      return !std::isfinite(value.get_double());
    case json::kind::array:
      return std::any_of(value.get_array().begin(), value.get_array().end(),
                         [](const json::value& v) { return has_non_finite(v); });
    case json::kind::object:
      return std::any_of(value.get_object().begin(), value.get_object().end(),
                         [](const json::key_value_pair& kv) { return has_non_finite(kv.value()); });
    default:
      return false;
  }
}

}  // namespace

FrameDecoder::Status FrameDecoder::next(json::object& message, std::string& error) {
  if (failed_) {
    error = error_;
    return Status::kMalformed;
  }
  for (;;) {
    const std::size_t newline = buffer_.find('\n', scanned_);
    if (newline == std::string::npos) {
      if (start_ == buffer_.size()) {
        // Everything returned: what a large message needed is given back.
        if (buffer_.capacity() > kRetained) {
          std::string().swap(buffer_);
        } else {
          buffer_.clear();
        }
        start_ = 0;
      }
      scanned_ = buffer_.size();
      // Even if the next byte were the newline, this line would not fit.
      if (buffer_.size() - start_ >= kMaxMessage) return fail(too_large(), error);
      return Status::kNeedMore;
    }
    const std::string_view line(buffer_.data() + start_, newline - start_);
    start_ = newline + 1;
    scanned_ = start_;
    if (line.size() > kMaxMessage - 1) return fail(too_large(), error);
    if (line.empty()) continue;

    boost::system::error_code ec;
    json::value value = json::parse(line, ec);
    if (ec) return fail("malformed JSON: " + ec.message(), error);
    if (!value.is_object()) return fail("malformed JSON: expected an object", error);
    if (has_non_finite(value)) return fail("malformed JSON: a number out of range", error);
    message = std::move(value.get_object());
    return Status::kMessage;
  }
}

std::string encode(const json::object& message) {
  std::string frame = json::serialize(message);
  frame += '\n';
  return frame;
}

// --- requests and responses ----------------------------------------------

namespace {

Error invalid(std::string_view field, std::string_view problem) {
  std::string message(field);
  message += ": ";
  message += problem;
  return Error{ErrorKind::kInvalidArgument, std::move(message), 0};
}

// The one table of error codes: each code, its name and the kind it means.
struct ErrorCodeRow {
  ErrorCode code;
  const char* name;
  ErrorKind kind;
};
constexpr ErrorCodeRow kErrorCodes[] = {
    {ErrorCode::kBadRequest, "bad_request", ErrorKind::kMalformed},
    {ErrorCode::kVersion, "version", ErrorKind::kVersionMismatch},
    {ErrorCode::kNotFound, "not_found", ErrorKind::kNotFound},
    {ErrorCode::kExists, "exists", ErrorKind::kExists},
    {ErrorCode::kSpawnFailed, "spawn_failed", ErrorKind::kSpawnFailed},
    {ErrorCode::kInvalid, "invalid", ErrorKind::kInvalidArgument},
    {ErrorCode::kBusy, "busy", ErrorKind::kUnavailable},
    {ErrorCode::kInternal, "internal", ErrorKind::kInternal},
};

const ErrorCodeRow& row_of(ErrorCode code) {
  for (const ErrorCodeRow& row : kErrorCodes) {
    if (row.code == code) return row;
  }
  return kErrorCodes[std::size(kErrorCodes) - 1];
}

}  // namespace

const char* error_code_name(ErrorCode code) { return row_of(code).name; }

ErrorCode parse_error_code(std::string_view name) {
  for (const ErrorCodeRow& row : kErrorCodes) {
    if (name == row.name) return row.code;
  }
  return ErrorCode::kInternal;
}

ErrorCode error_code_for(ErrorKind kind) {
  for (const ErrorCodeRow& row : kErrorCodes) {
    if (row.kind == kind) return row.code;
  }
  return ErrorCode::kInternal;  // I/O, permission, transient...: nothing the client acts on
}

ErrorKind error_kind_for(ErrorCode code) { return row_of(code).kind; }

Error version_mismatch(std::int64_t client, std::int64_t daemon) {
  return Error{ErrorKind::kVersionMismatch,
               "protocol version mismatch: the client speaks " + std::to_string(client) +
                   ", the daemon speaks " + std::to_string(daemon),
               0};
}

Status check_version(const json::value* v) {
  if (v == nullptr) return invalid("request.v", "missing");
  const auto version = json_integer<std::int64_t>(*v);
  if (!version) return invalid("request.v", "expected an integer");
  if (*version != kVersion) return version_mismatch(*version, kVersion);
  return {};
}

// --- commands -------------------------------------------------------------

const char* command_name(Command command) {
  switch (command) {
    case Command::kPing:
      return "ping";
    case Command::kStart:
      return "start";
    case Command::kStop:
      return "stop";
    case Command::kRestart:
      return "restart";
    case Command::kDelete:
      return "delete";
    case Command::kSignal:
      return "signal";
    case Command::kList:
      return "list";
    case Command::kInfo:
      return "info";
    case Command::kLogs:
      return "logs";
    case Command::kEvents:
      return "events";
    case Command::kCleanlogs:
      return "cleanlogs";
    case Command::kFlush:
      return "flush";
    case Command::kApply:
      return "apply";
    case Command::kDump:
      return "dump";
    case Command::kKill:
      return "kill";
    case Command::kShutdown:
      return "shutdown";
    case Command::kReexec:
      return "reexec";
  }
  return "unknown";
}

std::optional<Command> parse_command(std::string_view name) {
  for (Command command : kCommands) {
    if (name == command_name(command)) return command;
  }
  return std::nullopt;
}

namespace {

// A JSON number without a fraction that fits in [min, max].
template <class Int>
std::optional<Int> as_integer(const json::value& value, Int min, Int max) {
  return json_integer<Int>(value, min, max);
}

}  // namespace

json::object make_request(std::uint64_t id, std::string_view cmd, json::object args) {
  json::object message;
  message["v"] = kVersion;
  message["id"] = id;
  message["cmd"] = cmd;
  message["args"] = std::move(args);
  return message;
}

json::object make_request(std::uint64_t id, Command command, json::object args) {
  return make_request(id, std::string_view(command_name(command)), std::move(args));
}

Result<Request> parse_request(const json::object& message) {
  Request request;
  // reexec is answered whatever the version: it is how a daemon of an older
  // version is replaced by the newer one installed.
  const json::value* cmd_field = message.if_contains("cmd");
  const bool any_version = cmd_field != nullptr && cmd_field->is_string() &&
                           cmd_field->get_string() == command_name(Command::kReexec);
  if (auto version = check_version(message.if_contains("v")); !version && !any_version) {
    return version.error();
  }
  request.version = kVersion;

  const json::value* id = message.if_contains("id");
  if (id == nullptr) return invalid("request.id", "missing");
  const auto id_value = json_integer<std::uint64_t>(*id);
  if (!id_value) return invalid("request.id", "expected a non-negative integer");
  request.id = *id_value;

  const json::value* cmd = message.if_contains("cmd");
  if (cmd == nullptr) return invalid("request.cmd", "missing");
  if (!cmd->is_string()) return invalid("request.cmd", "expected a string");
  request.cmd = std::string(cmd->get_string());

  if (const json::value* args = message.if_contains("args")) {
    if (!args->is_object()) return invalid("request.args", "expected an object");
    request.args = args->get_object();
  }
  return request;
}

bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kBase64[(v >> shift) & 0x3F];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kBase64[(v >> 18) & 0x3F];
    out += kBase64[(v >> 12) & 0x3F];
    out += rest == 2 ? kBase64[(v >> 6) & 0x3F] : '=';
    out += '=';
  }
  return out;
}

// Lenient: characters outside the alphabet (padding included) are skipped.
std::string base64_decode(std::string_view text) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : text) {
    const char* at = std::strchr(kBase64, ch);
    if (ch == '\0' || at == nullptr) continue;
    acc = (acc << 6) | static_cast<std::uint32_t>(at - kBase64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace

void put_line(json::object& item, std::string_view bytes) {
  if (valid_utf8(bytes)) {
    item["line"] = bytes;
  } else {
    item["line_base64"] = base64_encode(bytes);
  }
}

std::string get_line(const json::object& item) {
  if (const json::value* v = item.if_contains("line"); v != nullptr && v->is_string()) {
    return std::string(v->get_string());
  }
  if (const json::value* v = item.if_contains("line_base64"); v != nullptr && v->is_string()) {
    return base64_decode(v->get_string());
  }
  return {};
}

json::object make_item(std::uint64_t id, json::object item) {
  json::object message;
  message["id"] = id;
  message["item"] = std::move(item);
  return message;
}

json::object make_result(std::uint64_t id, json::object result) {
  json::object message;
  message["id"] = id;
  message["ok"] = true;
  message["result"] = std::move(result);
  return message;
}

json::object make_error(std::uint64_t id, ErrorCode code, std::string_view message) {
  json::object error;
  error["code"] = error_code_name(code);
  error["message"] = message;
  error["version"] = kVersion;
  json::object response;
  response["id"] = id;
  response["ok"] = false;
  response["error"] = std::move(error);
  return response;
}

// --- payloads ------------------------------------------------------------

namespace {

json::array string_array(const std::vector<std::string>& strings) { return json_strings(strings); }

json::value exit_json(const std::optional<ExitStatus>& exit) {
  if (!exit) return nullptr;
  json::object object;
  if (exit->signaled) {
    object["signal"] = signal_name(exit->code);
  } else {
    object["code"] = exit->code;
  }
  return object;
}

}  // namespace

std::string iso8601_utc(std::chrono::system_clock::time_point time) {
  using std::chrono::floor;
  const auto ms = floor<std::chrono::milliseconds>(time.time_since_epoch()).count();
  std::int64_t seconds = ms / 1000;
  std::int64_t millis = ms % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  const auto tt = static_cast<std::time_t>(seconds);
  std::tm utc{};
  ::gmtime_r(&tt, &utc);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(millis));
  return buf;
}

// The keys of a spec that are not rows of the option schema are written
// here; every row writes itself.
json::object to_json(const AppSpec& spec) {
  const MonitorOptions& m = spec.monitor;
  json::object json;
  json["name"] = spec.name;
  json["cmd"] = string_array(m.argv);
  json["cwd"] = m.cwd;
  json["env"] = string_array(m.env);
  json["out"] = m.logs.out_path;
  json["err"] = m.logs.err_path;
  json["watch"] = string_array(m.watch);
  for (const OptionRow& row : option_rows()) put_json(row, spec, json);
  return json;
}

Result<AppSpec> app_spec_from_json(const json::object& json) {
  AppSpec spec;
  MonitorOptions& m = spec.monitor;
  FieldReader read(json, "spec.", ErrorKind::kInvalidArgument);
  read.required("name");
  read.required("cmd");
  read.string("name", spec.name);
  read.strings("cmd", m.argv);
  read.string("cwd", m.cwd);
  read.strings("env", m.env);
  read.string("out", m.logs.out_path);
  read.string("err", m.logs.err_path);
  read.strings("watch", m.watch);
  if (auto st = read.status(); !st) return st.error();
  for (const OptionRow& row : option_rows()) {
    if (auto st = get_json(row, json, spec); !st) return st.error();
  }
  return spec;
}

json::object to_json(const Event& event) {
  json::object json;
  json["type"] = event_name(event.type);
  json["time"] = iso8601_utc(event.time);
  json["state"] = state_name(event.state);
  if (event.pid != 0) json["pid"] = event.pid;
  if (event.exit) json["exit"] = exit_json(event.exit);
  if (event.type == EventType::kExit) json["uptime_ms"] = event.uptime.count();
  if (event.type == EventType::kRestart) {
    json["attempt"] = event.attempt;
    json["delay_ms"] = event.delay.count();
  }
  if (!event.reason.empty()) json["reason"] = event.reason;
  if (event.type == EventType::kWatch || event.type == EventType::kRotate ||
      event.type == EventType::kLogError || event.type == EventType::kLogResumed) {
    json["path"] = event.path;
  }
  if (event.type == EventType::kLogResumed) json["dropped_bytes"] = event.dropped;
  return json;
}

json::object to_json(const AppInfo& info) {
  const MonitorStatus& status = info.status;
  json::object json;
  json["id"] = info.id;
  json["name"] = info.name;
  if (status.pid != 0) {
    json["pid"] = status.pid;
  } else {
    json["pid"] = nullptr;
  }
  json["status"] = state_name(status.state);
  json["wanted"] = status.wanted_up ? "up" : "down";
  json["restarts"] = status.restarts;
  json["uptime_ms"] = status.uptime.count();
  json["cpu"] = std::round(info.usage.cpu_percent * 10) / 10;
  json["rss_bytes"] = info.usage.rss_bytes;
  json["cmd"] = string_array(info.cmd);
  json["cwd"] = info.cwd;
  json["out_log"] = status.out_log;
  json["err_log"] = status.err_log;
  json["last_exit"] = exit_json(status.last_exit);
  json["last_error"] = status.last_error;
  json["out_dropped_bytes"] = status.out_dropped;
  json["err_dropped_bytes"] = status.err_dropped;
  if (!status.cgroup.empty()) {
    json["containment"] = "cgroup";
    json["cgroup"] = status.cgroup;
  } else if (status.pid != 0) {
    json["containment"] = "process-tree";
  } else {
    json["containment"] = nullptr;
  }
  return json;
}

json::object make_error(std::uint64_t id, const Error& error) {
  return make_error(id, error_code_for(error.kind), error.message);
}

Result<Response> parse_response(const json::object& message) {
  Response response;
  if (const json::value* id = message.if_contains("id")) {
    response.id = json_integer<std::uint64_t>(*id).value_or(0);
  }
  if (const json::value* item = message.if_contains("item")) {
    if (!item->is_object()) return Error{ErrorKind::kMalformed, "an item that is not an object", 0};
    response.kind = Response::Kind::kItem;
    response.body = item->get_object();
    return response;
  }
  const json::value* ok = message.if_contains("ok");
  if (ok == nullptr || !ok->is_bool()) {
    return Error{ErrorKind::kMalformed, "a message that is neither an item nor a response", 0};
  }
  if (ok->get_bool()) {
    response.kind = Response::Kind::kResult;
    if (const json::value* result = message.if_contains("result"); result && result->is_object()) {
      response.body = result->get_object();
    }
    return response;
  }
  response.kind = Response::Kind::kError;
  static const json::object kNone;
  const json::value* error_value = message.if_contains("error");
  const json::object& error =
      error_value != nullptr && error_value->is_object() ? error_value->get_object() : kNone;
  const json::value* code = error.if_contains("code");
  const ErrorCode error_code =
      parse_error_code(code != nullptr && code->is_string() ? std::string_view(code->get_string())
                                                            : std::string_view());
  const json::value* text = error.if_contains("message");
  response.error =
      Error{error_kind_for(error_code),
            text != nullptr && text->is_string() ? std::string(text->get_string())
                                                 : std::string("the daemon refused the request"),
            0};
  if (error_code == ErrorCode::kVersion) {
    if (const json::value* v = error.if_contains("version")) {
      if (const auto theirs = json_integer<std::int64_t>(*v)) {
        response.error = version_mismatch(kVersion, *theirs);
      }
    }
  }
  return response;
}

// --- payload codecs ---------------------------------------------------------

namespace {

std::optional<State> parse_state(std::string_view name) {
  for (int i = 0; i < kStateCount; ++i) {
    if (name == state_name(static_cast<State>(i))) return static_cast<State>(i);
  }
  return std::nullopt;
}

std::optional<EventType> parse_event_type(std::string_view name) {
  for (EventType type :
       {EventType::kStart, EventType::kReady, EventType::kExit, EventType::kRestart,
        EventType::kStop, EventType::kFailed, EventType::kWatch, EventType::kRotate,
        EventType::kLogError, EventType::kLogResumed}) {
    if (name == event_name(type)) return type;
  }
  return std::nullopt;
}

// The inverse of iso8601_utc(): "2026-11-26T16:49:27.123Z".
std::optional<std::chrono::system_clock::time_point> parse_iso8601_utc(std::string_view text) {
  if (text.size() != 24 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text[19] != '.' || text[23] != 'Z') {
    return std::nullopt;
  }
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  const auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2),
             mi = digits(14, 2), sec = digits(17, 2), ms = digits(20, 3);
  if (!y || !mo || !d || !h || !mi || !sec || !ms) return std::nullopt;
  // What a time_point of nanoseconds holds (years 1677 to 2262), and fields
  // in their ranges: anything else is not a time this protocol writes.
  if (*y < 1970 || *y > 2200 || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 || *mi > 59 ||
      *sec > 60) {
    return std::nullopt;
  }
  std::tm utc{};
  utc.tm_year = *y - 1900;
  utc.tm_mon = *mo - 1;
  utc.tm_mday = *d;
  utc.tm_hour = *h;
  utc.tm_min = *mi;
  utc.tm_sec = *sec;
  const std::time_t seconds = ::timegm(&utc);
  return std::chrono::system_clock::time_point(std::chrono::seconds(seconds)) +
         std::chrono::milliseconds(*ms);
}

// The inverse of exit_json(): null, {"code":N} or {"signal":"TERM"}.
void read_exit(FieldReader& read, std::string_view key, std::optional<ExitStatus>& out) {
  const json::value* value = read.find(key);
  if (value == nullptr || value->is_null()) return;
  if (!value->is_object())
    return read.fail(key, "expected null, {\"code\":N} or {\"signal\":NAME}");
  const json::object& object = value->get_object();
  if (const json::value* code = object.if_contains("code")) {
    const auto n = json_integer<int>(*code);
    if (!n) return read.fail(key, "code: expected an integer");
    out = ExitStatus{false, *n};
    return;
  }
  const json::value* sig = object.if_contains("signal");
  if (sig == nullptr || !sig->is_string()) {
    return read.fail(key, "expected null, {\"code\":N} or {\"signal\":NAME}");
  }
  auto number = parse_signal(sig->get_string());
  if (!number) return read.fail(key, number.error().message);
  out = ExitStatus{true, *number};
}

// Decodes the array `key` of objects, each with from_json<T>(); a problem
// names the entry: "apps[2]: name: missing".
template <class T>
void read_objects(FieldReader& read, std::string_view key, std::vector<T>& out) {
  const json::array* array = read.array(key);
  if (array == nullptr) return;
  std::vector<T> items;
  items.reserve(array->size());
  for (std::size_t i = 0; i < array->size(); ++i) {
    const std::string where = std::string(key) + "[" + std::to_string(i) + "]";
    if (!(*array)[i].is_object()) return read.fail(where, "expected an object");
    auto item = from_json<T>((*array)[i].get_object());
    if (!item) return read.fail(where, item.error().message);
    items.push_back(std::move(*item));
  }
  out = std::move(items);
}

template <class T>
json::array to_array(const std::vector<T>& items) {
  json::array array;
  array.reserve(items.size());
  for (const T& item : items) array.emplace_back(to_json(item));
  return array;
}

template <class T>
Result<T> finish(const FieldReader& read, T value) {
  if (auto st = read.status(); !st) return st.error();
  return value;
}

// A spec, with app_spec_from_json()'s own errors (kInvalidArgument).
Result<AppSpec> spec_at(const json::object& json, std::string_view key) {
  const json::value* spec = json.if_contains(key);
  if (spec == nullptr || !spec->is_object()) {
    return Error{ErrorKind::kMalformed, std::string(key) + ": expected an object", 0};
  }
  return app_spec_from_json(spec->get_object());
}

// "targets": a non-empty array of strings.
Result<std::vector<std::string>> required_targets(const json::object& json) {
  std::vector<std::string> targets;
  const json::value* v = json.if_contains("targets");
  if (v == nullptr || !v->is_array() || v->get_array().empty()) {
    return Error{ErrorKind::kMalformed, "expected at least one TARGET", 0};
  }
  for (const json::value& t : v->get_array()) {
    if (!t.is_string()) return Error{ErrorKind::kMalformed, "a TARGET must be a string", 0};
    targets.emplace_back(t.get_string());
  }
  return targets;
}

// "targets" (the strings of an array) or "target" (a string); anything else
// is none. Lenient, as the daemon has always read logs, events and flush.
std::vector<std::string> optional_targets(const json::object& json) {
  std::vector<std::string> targets;
  if (const json::value* v = json.if_contains("targets"); v != nullptr && v->is_array()) {
    for (const json::value& t : v->get_array()) {
      if (t.is_string()) targets.emplace_back(t.get_string());
    }
  } else if (const json::value* t = json.if_contains("target"); t != nullptr && t->is_string()) {
    targets.emplace_back(t->get_string());
  }
  return targets;
}

// A flag that reads as false unless it is true.
bool flag(const json::object& json, std::string_view key) {
  const json::value* v = json.if_contains(key);
  return v != nullptr && v->is_bool() && v->get_bool();
}

// The strings of an array, others skipped.
std::vector<std::string> lenient_strings(const json::object& json, std::string_view key) {
  std::vector<std::string> out;
  if (const json::value* v = json.if_contains(key); v != nullptr && v->is_array()) {
    for (const json::value& e : v->get_array()) {
      if (e.is_string()) out.emplace_back(e.get_string());
    }
  }
  return out;
}

}  // namespace

template <>
Result<Event> from_json<Event>(const json::object& json) {
  Event event;
  FieldReader read(json, "event.");
  std::string type, time, state;
  if (read.required("type")) read.string("type", type);
  if (read.required("time")) read.string("time", time);
  read.string("state", state);
  if (!read.ok()) return read.status().error();
  const auto parsed_type = parse_event_type(type);
  if (!parsed_type) read.fail("type", "unknown event \"" + type + "\"");
  if (parsed_type) event.type = *parsed_type;
  const auto parsed_time = parse_iso8601_utc(time);
  if (!parsed_time) read.fail("time", "expected an ISO 8601 UTC time, not \"" + time + "\"");
  if (parsed_time) event.time = *parsed_time;
  if (!state.empty()) {
    const auto parsed_state = parse_state(state);
    if (!parsed_state) read.fail("state", "unknown state \"" + state + "\"");
    if (parsed_state) event.state = *parsed_state;
  }
  read.integer<pid_t>("pid", event.pid);
  read_exit(read, "exit", event.exit);
  read.millis("uptime_ms", event.uptime);
  read.integer<int>("attempt", event.attempt);
  read.millis("delay_ms", event.delay);
  read.string("reason", event.reason);
  read.string("path", event.path);
  read.integer<std::uint64_t>("dropped_bytes", event.dropped);
  return finish(read, std::move(event));
}

template <>
Result<AppInfo> from_json<AppInfo>(const json::object& json) {
  AppInfo info;
  MonitorStatus& status = info.status;
  FieldReader read(json);
  if (read.required("id")) read.integer<std::uint64_t>("id", info.id);
  if (read.required("name")) read.string("name", info.name);
  if (const json::value* pid = read.find("pid"); pid != nullptr && !pid->is_null()) {
    read.integer<pid_t>("pid", status.pid);
  }
  std::string state;
  read.string("status", state);
  if (!state.empty()) {
    if (const auto parsed = parse_state(state)) {
      status.state = *parsed;
    } else {
      read.fail("status", "unknown state \"" + state + "\"");
    }
  }
  std::string wanted;
  read.string("wanted", wanted);
  if (!wanted.empty() && wanted != "up" && wanted != "down")
    read.fail("wanted", "expected up or down");
  status.wanted_up = wanted == "up";
  read.integer<int>("restarts", status.restarts);
  read.millis("uptime_ms", status.uptime);
  if (const json::value* cpu = read.find("cpu")) {
    if (!cpu->is_number()) {
      read.fail("cpu", "expected a number");
    } else {
      info.usage.cpu_percent = cpu->to_number<double>();
    }
  }
  read.integer<std::uint64_t>("rss_bytes", info.usage.rss_bytes);
  read.strings("cmd", info.cmd);
  read.string("cwd", info.cwd);
  read.string("out_log", status.out_log);
  read.string("err_log", status.err_log);
  read_exit(read, "last_exit", status.last_exit);
  read.string("last_error", status.last_error);
  read.integer<std::uint64_t>("out_dropped_bytes", status.out_dropped);
  read.integer<std::uint64_t>("err_dropped_bytes", status.err_dropped);
  read.string("cgroup", status.cgroup);
  return finish(read, std::move(info));
}

// --- messages ---------------------------------------------------------------

json::object to_json(const Empty&) { return {}; }

template <>
Result<Empty> from_json<Empty>(const json::object&) {
  return Empty{};
}

json::object to_json(const PingReply& reply) {
  return {{"pid", reply.pid},
          {"worker", reply.worker},
          {"version", reply.version},
          {"home", reply.home},
          {"uptime_ms", reply.uptime.count()},
          {"apps", reply.apps}};
}

template <>
Result<PingReply> from_json<PingReply>(const json::object& json) {
  PingReply reply;
  FieldReader read(json);
  read.integer<pid_t>("pid", reply.pid);
  read.integer<pid_t>("worker", reply.worker);
  read.integer<int>("version", reply.version);
  read.string("home", reply.home);
  read.millis("uptime_ms", reply.uptime);
  read.integer<std::size_t>("apps", reply.apps);
  return finish(read, std::move(reply));
}

json::object to_json(const AppOutcome& outcome) {
  json::object json = to_json(outcome.app);
  if (!outcome.error.empty()) json["error"] = outcome.error;
  return json;
}

template <>
Result<AppOutcome> from_json<AppOutcome>(const json::object& json) {
  AppOutcome outcome;
  auto app = from_json<AppInfo>(json);
  if (!app) return app.error();
  outcome.app = std::move(*app);
  FieldReader read(json);
  read.string("error", outcome.error);
  return finish(read, std::move(outcome));
}

json::object to_json(const StartArgs& args) {
  return {{"spec", to_json(args.spec)}, {"wait", args.wait}};
}

template <>
Result<StartArgs> from_json<StartArgs>(const json::object& json) {
  StartArgs args;
  const json::value* spec = json.if_contains("spec");
  if (spec == nullptr || !spec->is_object())
    return Error{ErrorKind::kMalformed, "expected a spec", 0};
  auto parsed = app_spec_from_json(spec->get_object());
  if (!parsed) return parsed.error();
  args.spec = std::move(*parsed);
  args.wait = flag(json, "wait");
  return args;
}

json::object to_json(const StartReply& reply) { return {{"app", to_json(reply.app)}}; }

template <>
Result<StartReply> from_json<StartReply>(const json::object& json) {
  FieldReader read(json);
  const json::object* app = read.required("app") ? read.object("app") : nullptr;
  if (app == nullptr) return read.status().error();
  auto outcome = from_json<AppOutcome>(*app);
  if (!outcome) return Error{ErrorKind::kMalformed, "app: " + outcome.error().message, 0};
  return StartReply{std::move(*outcome)};
}

json::object to_json(const TargetsArgs& args) { return {{"targets", json_strings(args.targets)}}; }

template <>
Result<TargetsArgs> from_json<TargetsArgs>(const json::object& json) {
  auto targets = required_targets(json);
  if (!targets) return targets.error();
  return TargetsArgs{std::move(*targets)};
}

json::object to_json(const RestartArgs& args) {
  return {{"targets", json_strings(args.targets)}, {"wait", args.wait}};
}

template <>
Result<RestartArgs> from_json<RestartArgs>(const json::object& json) {
  auto targets = required_targets(json);
  if (!targets) return targets.error();
  return RestartArgs{std::move(*targets), flag(json, "wait")};
}

json::object to_json(const SignalArgs& args) {
  return {{"signal", args.signal}, {"targets", json_strings(args.targets)}};
}

template <>
Result<SignalArgs> from_json<SignalArgs>(const json::object& json) {
  auto targets = required_targets(json);
  if (!targets) return targets.error();
  const json::value* sig = json.if_contains("signal");
  const auto number = sig != nullptr ? json_integer<int>(*sig, 1, NSIG - 1) : std::nullopt;
  if (!number) return Error{ErrorKind::kMalformed, "expected a signal number", 0};
  return SignalArgs{*number, std::move(*targets)};
}

json::object to_json(const AppsReply& reply) { return {{"apps", to_array(reply.apps)}}; }

template <>
Result<AppsReply> from_json<AppsReply>(const json::object& json) {
  AppsReply reply;
  FieldReader read(json);
  read_objects(read, "apps", reply.apps);
  return finish(read, std::move(reply));
}

json::object to_json(const ListReply& reply) {
  json::object json{{"apps", to_array(reply.apps)}};
  if (!reply.warnings.empty()) json["warnings"] = json_strings(reply.warnings);
  return json;
}

template <>
Result<ListReply> from_json<ListReply>(const json::object& json) {
  ListReply reply;
  FieldReader read(json);
  read_objects(read, "apps", reply.apps);
  read.strings("warnings", reply.warnings);
  return finish(read, std::move(reply));
}

json::object to_json(const InfoArgs& args) {
  if (args.target) return {{"target", *args.target}};
  return {{"targets", json_strings(args.targets)}};
}

template <>
Result<InfoArgs> from_json<InfoArgs>(const json::object& json) {
  InfoArgs args;
  if (json.contains("targets")) {
    auto targets = required_targets(json);
    if (!targets) return targets.error();
    args.targets = std::move(*targets);
    return args;
  }
  const json::value* target = json.if_contains("target");
  if (target == nullptr || !target->is_string()) {
    return Error{ErrorKind::kMalformed, "expected one TARGET", 0};
  }
  args.target = std::string(target->get_string());
  return args;
}

json::object to_json(const AppDetails& details) {
  json::object json = to_json(details.app);
  json["spec"] = to_json(details.spec);
  json["source"] = details.source;
  return json;
}

template <>
Result<AppDetails> from_json<AppDetails>(const json::object& json) {
  AppDetails details;
  auto app = from_json<AppInfo>(json);
  if (!app) return app.error();
  details.app = std::move(*app);
  auto spec = spec_at(json, "spec");
  if (!spec) return Error{ErrorKind::kMalformed, spec.error().message, 0};
  details.spec = std::move(*spec);
  FieldReader read(json);
  read.string("source", details.source);
  return finish(read, std::move(details));
}

json::object to_json(const InfoReply& reply) {
  if (reply.app) return {{"app", to_json(*reply.app)}};
  return {{"apps", to_array(reply.apps)}};
}

template <>
Result<InfoReply> from_json<InfoReply>(const json::object& json) {
  InfoReply reply;
  FieldReader read(json);
  if (const json::object* app = read.object("app")) {
    auto details = from_json<AppDetails>(*app);
    if (!details) return Error{ErrorKind::kMalformed, "app: " + details.error().message, 0};
    reply.app = std::move(*details);
  }
  read_objects(read, "apps", reply.apps);
  return finish(read, std::move(reply));
}

json::object to_json(const LogsArgs& args) {
  json::object json{{"lines", args.lines}, {"follow", args.follow}};
  if (!args.targets.empty()) json["targets"] = json_strings(args.targets);
  if (!(args.out && args.err)) {
    json::array streams;
    if (args.out) streams.emplace_back("out");
    if (args.err) streams.emplace_back("err");
    json["streams"] = std::move(streams);
  }
  return json;
}

template <>
Result<LogsArgs> from_json<LogsArgs>(const json::object& json) {
  LogsArgs args;
  args.targets = optional_targets(json);
  if (const json::value* n = json.if_contains("lines"); n != nullptr && n->is_int64()) {
    args.lines = static_cast<std::size_t>(std::max<std::int64_t>(0, n->get_int64()));
  }
  args.follow = flag(json, "follow");
  if (const json::value* v = json.if_contains("streams"); v != nullptr && v->is_array()) {
    args.out = args.err = false;
    for (const json::value& stream : v->get_array()) {
      args.out = args.out || stream == "out";
      args.err = args.err || stream == "err";
    }
  }
  return args;
}

json::object to_json(const LogsApps& item) { return {{"apps", json_strings(item.apps)}}; }

json::object to_json(const LogsFollowing&) { return {{"following", true}}; }

json::object to_json(const LogLine& item) {
  json::object json{{"app", item.app}, {"stream", item.stream}};
  if (!item.path.empty()) json["path"] = item.path;
  put_line(json, item.text);
  return json;
}

json::object to_json(const LogsItem& item) {
  return std::visit([](const auto& alternative) { return to_json(alternative); }, item);
}

template <>
Result<LogsItem> from_json<LogsItem>(const json::object& json) {
  FieldReader read(json);
  if (json.contains("apps")) {
    LogsApps apps;
    read.strings("apps", apps.apps);
    return finish<LogsItem>(read, std::move(apps));
  }
  if (json.contains("following")) return LogsItem{LogsFollowing{}};
  if (!json.contains("line") && !json.contains("line_base64")) {
    return Error{ErrorKind::kMalformed, "expected apps, following, line or line_base64", 0};
  }
  LogLine line;
  read.string("app", line.app);
  read.string("stream", line.stream);
  read.string("path", line.path);
  std::string ignored;
  read.string("line", ignored);
  read.string("line_base64", ignored);
  line.text = get_line(json);
  return finish<LogsItem>(read, std::move(line));
}

json::object to_json(const LogsReply& reply) { return {{"apps", reply.apps}}; }

template <>
Result<LogsReply> from_json<LogsReply>(const json::object& json) {
  LogsReply reply;
  FieldReader read(json);
  read.integer<std::size_t>("apps", reply.apps);
  return finish(read, std::move(reply));
}

json::object to_json(const EventsArgs& args) {
  if (args.targets.size() > 1) return {{"targets", json_strings(args.targets)}};
  if (args.targets.empty()) return {{"target", nullptr}};
  return {{"target", args.targets.front()}};
}

template <>
Result<EventsArgs> from_json<EventsArgs>(const json::object& json) {
  return EventsArgs{optional_targets(json)};
}

json::object to_json(const EventItem& item) {
  return {{"app", item.app}, {"event", to_json(item.event)}};
}

template <>
Result<EventItem> from_json<EventItem>(const json::object& json) {
  EventItem item;
  FieldReader read(json);
  read.string("app", item.app);
  const json::object* event = read.required("event") ? read.object("event") : nullptr;
  if (event == nullptr) return read.status().error();
  auto decoded = from_json<Event>(*event);
  if (!decoded) return decoded.error();
  item.event = std::move(*decoded);
  return finish(read, std::move(item));
}

json::object to_json(const CleanlogsReply& reply) { return {{"removed", reply.removed}}; }

template <>
Result<CleanlogsReply> from_json<CleanlogsReply>(const json::object& json) {
  CleanlogsReply reply;
  FieldReader read(json);
  read.integer<int>("removed", reply.removed);
  return finish(read, std::move(reply));
}

json::object to_json(const FlushArgs& args) {
  if (args.targets.empty()) return {};
  return {{"targets", json_strings(args.targets)}};
}

template <>
Result<FlushArgs> from_json<FlushArgs>(const json::object& json) {
  return FlushArgs{optional_targets(json)};
}

json::object to_json(const FlushReply& reply) { return {{"apps", json_strings(reply.apps)}}; }

template <>
Result<FlushReply> from_json<FlushReply>(const json::object& json) {
  FlushReply reply;
  FieldReader read(json);
  read.strings("apps", reply.apps);
  return finish(read, std::move(reply));
}

json::object to_json(const ApplyArgs& args) {
  json::array specs;
  specs.reserve(args.specs.size());
  for (const AppSpec& spec : args.specs) specs.emplace_back(to_json(spec));
  json::object json{{"file", args.file},
                    {"mode", args.mode == ApplyMode::kReload ? "reload" : "start"},
                    {"specs", std::move(specs)},
                    {"env", json_strings(args.env)},
                    {"watch", args.watch},
                    {"dry_run", args.dry_run},
                    {"update_env", args.update_env}};
  if (!args.only.empty()) json["only"] = json_strings(args.only);
  return json;
}

template <>
Result<ApplyArgs> from_json<ApplyArgs>(const json::object& json) {
  ApplyArgs args;
  const json::value* file = json.if_contains("file");
  const json::value* mode = json.if_contains("mode");
  const json::value* specs = json.if_contains("specs");
  if (file == nullptr || !file->is_string() || mode == nullptr || !mode->is_string() ||
      (mode->get_string() != "start" && mode->get_string() != "reload") || specs == nullptr ||
      !specs->is_array()) {
    return Error{ErrorKind::kMalformed, "expected file, mode (start or reload) and specs", 0};
  }
  args.file = std::string(file->get_string());
  args.mode = mode->get_string() == "reload" ? ApplyMode::kReload : ApplyMode::kStart;
  for (const json::value& v : specs->get_array()) {
    if (!v.is_object()) return Error{ErrorKind::kMalformed, "a spec must be an object", 0};
    auto spec = app_spec_from_json(v.get_object());
    if (!spec) return spec.error();
    args.specs.push_back(std::move(*spec));
  }
  args.env = lenient_strings(json, "env");
  args.only = lenient_strings(json, "only");
  args.watch = flag(json, "watch");
  args.dry_run = flag(json, "dry_run");
  args.update_env = flag(json, "update_env");
  return args;
}

json::object to_json(const ApplyReply& reply) {
  json::array failed;
  for (const ApplyFailure& f : reply.failed)
    failed.push_back(json::object{{"name", f.name}, {"error", f.error}});
  json::object changes;
  for (const auto& [name, keys] : reply.changes) changes[name] = json_strings(keys);
  return {{"started", json_strings(reply.started)},
          {"added", json_strings(reply.added)},
          {"restarted", json_strings(reply.restarted)},
          {"deleted", json_strings(reply.deleted)},
          {"unchanged", json_strings(reply.unchanged)},
          {"failed", std::move(failed)},
          {"changes", std::move(changes)}};
}

template <>
Result<ApplyReply> from_json<ApplyReply>(const json::object& json) {
  ApplyReply reply;
  FieldReader read(json);
  read.strings("started", reply.started);
  read.strings("added", reply.added);
  read.strings("restarted", reply.restarted);
  read.strings("deleted", reply.deleted);
  read.strings("unchanged", reply.unchanged);
  if (const json::array* failed = read.array("failed")) {
    for (std::size_t i = 0; i < failed->size(); ++i) {
      const std::string where = "failed[" + std::to_string(i) + "]";
      if (!(*failed)[i].is_object()) {
        read.fail(where, "expected an object");
        break;
      }
      FieldReader entry((*failed)[i].get_object(), where + ".");
      ApplyFailure f;
      entry.string("name", f.name);
      entry.string("error", f.error);
      if (auto st = entry.status(); !st) return st.error();
      reply.failed.push_back(std::move(f));
    }
  }
  if (const json::object* changes = read.object("changes")) {
    for (const auto& [name, keys] : *changes) {
      FieldReader entry(*changes, "changes.");
      std::vector<std::string> list;
      entry.strings(name, list);
      if (auto st = entry.status(); !st) return st.error();
      reply.changes.emplace_back(std::string(name), std::move(list));
    }
  }
  return finish(read, std::move(reply));
}

json::object to_json(const DumpedApp& app) {
  return {{"spec", to_json(app.spec)}, {"wanted_up", app.wanted_up}, {"source", app.source}};
}

template <>
Result<DumpedApp> from_json<DumpedApp>(const json::object& json) {
  DumpedApp app;
  auto spec = spec_at(json, "spec");
  if (!spec) return Error{ErrorKind::kMalformed, spec.error().message, 0};
  app.spec = std::move(*spec);
  FieldReader read(json);
  app.wanted_up = true;  // as sempre save has always read a missing one
  read.boolean("wanted_up", app.wanted_up);
  read.string("source", app.source);
  return finish(read, std::move(app));
}

json::object to_json(const DumpReply& reply) { return {{"apps", to_array(reply.apps)}}; }

template <>
Result<DumpReply> from_json<DumpReply>(const json::object& json) {
  DumpReply reply;
  FieldReader read(json);
  read_objects(read, "apps", reply.apps);
  return finish(read, std::move(reply));
}

json::object to_json(const StoppedReply& reply) { return {{"stopped", reply.stopped}}; }

json::object to_json(const ReexecReply& reply) {
  return {{"worker", reply.worker}, {"apps", reply.apps}};
}

template <>
Result<ReexecReply> from_json<ReexecReply>(const json::object& json) {
  ReexecReply reply;
  FieldReader read(json);
  read.integer<pid_t>("worker", reply.worker);
  read.integer<std::size_t>("apps", reply.apps);
  return finish(read, std::move(reply));
}

template <>
Result<StoppedReply> from_json<StoppedReply>(const json::object& json) {
  StoppedReply reply;
  FieldReader read(json);
  read.integer<std::size_t>("stopped", reply.stopped);
  return finish(read, std::move(reply));
}

}  // namespace sempre::protocol

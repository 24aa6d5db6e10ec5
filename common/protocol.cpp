#include "protocol.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

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

FrameDecoder::Status FrameDecoder::next(json::object& message, std::string& error) {
  if (failed_) {
    error = error_;
    return Status::kMalformed;
  }
  for (;;) {
    const std::size_t newline = buffer_.find('\n', scanned_);
    if (newline == std::string::npos) {
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

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadRequest:
      return "bad_request";
    case ErrorCode::kVersion:
      return "version";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kExists:
      return "exists";
    case ErrorCode::kSpawnFailed:
      return "spawn_failed";
    case ErrorCode::kInvalid:
      return "invalid";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

ErrorCode parse_error_code(std::string_view name) {
  for (ErrorCode code : {ErrorCode::kBadRequest, ErrorCode::kVersion, ErrorCode::kNotFound,
                         ErrorCode::kExists, ErrorCode::kSpawnFailed, ErrorCode::kInvalid}) {
    if (name == error_code_name(code)) return code;
  }
  return ErrorCode::kInternal;
}

namespace {

Error invalid(std::string_view field, std::string_view problem) {
  std::string message(field);
  message += ": ";
  message += problem;
  return Error{ErrorKind::kInvalidArgument, std::move(message), 0};
}

// A JSON number without a fraction that fits in [min, max].
template <class Int>
std::optional<Int> as_integer(const json::value& value, Int min, Int max) {
  if (value.is_int64()) {
    const std::int64_t n = value.get_int64();
    if (std::cmp_less(n, min) || std::cmp_greater(n, max)) return std::nullopt;
    return static_cast<Int>(n);
  }
  if (value.is_uint64()) {
    const std::uint64_t n = value.get_uint64();
    if (std::cmp_less(n, min) || std::cmp_greater(n, max)) return std::nullopt;
    return static_cast<Int>(n);
  }
  return std::nullopt;
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

Result<Request> parse_request(const json::object& message) {
  Request request;

  // The version comes first: a peer of another version may shape the rest
  // differently, and deserves to hear about the version, not a field.
  const json::value* v = message.if_contains("v");
  if (v == nullptr) return invalid("request.v", "missing");
  const auto version =
      as_integer<int>(*v, std::numeric_limits<int>::min(), std::numeric_limits<int>::max());
  if (!version) return invalid("request.v", "expected an integer");
  if (*version != kVersion) {
    return Error{ErrorKind::kInvalidArgument,
                 "protocol version mismatch: the client speaks " + std::to_string(*version) +
                     ", the daemon speaks " + std::to_string(kVersion),
                 0};
  }
  request.version = *version;

  const json::value* id = message.if_contains("id");
  if (id == nullptr) return invalid("request.id", "missing");
  const auto id_value =
      as_integer<std::uint64_t>(*id, 0, std::numeric_limits<std::uint64_t>::max());
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

json::array string_array(const std::vector<std::string>& strings) {
  json::array array;
  array.reserve(strings.size());
  for (const std::string& s : strings) array.emplace_back(s);
  return array;
}

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

// "2026-11-26T16:49:27.123Z"
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

// Reads the fields of an AppSpec object, each by its JSON type, and names
// the first field of the wrong type.
class SpecReader {
 public:
  explicit SpecReader(const json::object& json) : json_(json) {}

  const std::optional<Error>& error() const { return error_; }

  const json::value* find(std::string_view key) {
    if (error_) return nullptr;
    return json_.if_contains(key);
  }

  void fail(std::string_view key, std::string_view problem) {
    if (!error_) error_ = invalid("spec." + std::string(key), problem);
  }

  void string(std::string_view key, std::string& out) {
    const json::value* value = find(key);
    if (value == nullptr) return;
    if (!value->is_string()) return fail(key, "expected a string");
    out = std::string(value->get_string());
  }

  void strings(std::string_view key, std::vector<std::string>& out) {
    const json::value* value = find(key);
    if (value == nullptr) return;
    if (!value->is_array()) return fail(key, "expected an array of strings");
    std::vector<std::string> strings;
    strings.reserve(value->get_array().size());
    for (const json::value& item : value->get_array()) {
      if (!item.is_string()) return fail(key, "expected an array of strings");
      strings.emplace_back(item.get_string());
    }
    out = std::move(strings);
  }

 private:
  const json::object& json_;
  std::optional<Error> error_;
};

}  // namespace

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
  if (!json.contains("name")) return invalid("spec.name", "missing");
  if (!json.contains("cmd")) return invalid("spec.cmd", "missing");

  AppSpec spec;
  MonitorOptions& m = spec.monitor;
  SpecReader read(json);
  read.string("name", spec.name);
  read.strings("cmd", m.argv);
  read.string("cwd", m.cwd);
  read.strings("env", m.env);
  read.string("out", m.logs.out_path);
  read.string("err", m.logs.err_path);
  read.strings("watch", m.watch);
  if (read.error()) return *read.error();
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
  if (event.type == EventType::kWatch || event.type == EventType::kRotate) {
    json["path"] = event.path;
  }
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
  return json;
}

}  // namespace sempre::protocol

#include "format.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "sempre/units.hpp"

namespace sempre::cli {
namespace {

namespace json = boost::json;

// Characters, not bytes: UTF-8 continuation bytes take no column.
std::size_t width(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string styled(std::string_view text, std::string_view style, bool colour) {
  if (!colour || style.empty()) return std::string(text);
  std::string out(style);
  out += text;
  out += kReset;
  return out;
}

std::string percent(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", value);
  return buf;
}

const json::object* field_object(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

// {"code":N} -> "code N", {"signal":"TERM"} -> "signal TERM"; "" for null.
std::string describe_exit(const json::object* exit) {
  if (exit == nullptr) return "";
  if (const auto code = field_int(*exit, "code")) return "code " + std::to_string(*code);
  if (const auto sig = field_int(*exit, "signal")) {
    return "signal " + signal_name(static_cast<int>(*sig));
  }
  if (auto sig = field_string(*exit, "signal"); !sig.empty()) return "signal " + sig;
  return "";
}

std::string yes_no(bool value) { return value ? "yes" : "no"; }

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

// A report of "key  value" lines under headings, the values of all sections
// in one column.
class Report {
 public:
  void heading(std::string text, std::string_view style = kBold) {
    lines_.push_back({std::move(text), "", style, true});
  }
  void row(std::string key, std::string value, std::string_view style = {}) {
    lines_.push_back({std::move(key), std::move(value), style, false});
  }
  void row_if(std::string key, std::string value) {
    if (!value.empty()) row(std::move(key), std::move(value));
  }
  // A line without a key, such as an environment entry.
  void item(std::string text) { lines_.push_back({"", std::move(text), {}, false}); }

  std::string render(bool colour) const {
    std::size_t key_width = 0;
    for (const auto& line : lines_) {
      if (!line.heading) key_width = std::max(key_width, width(line.key));
    }
    std::string out;
    for (const auto& line : lines_) {
      if (line.heading) {
        out += styled(line.key, line.style, colour) + "\n";
      } else if (line.key.empty()) {
        out += "  " + line.value + "\n";
      } else {
        out += "  " + line.key + std::string(key_width - width(line.key) + 2, ' ') +
               styled(line.value, line.style, colour) + "\n";
      }
    }
    return out;
  }

 private:
  struct Line {
    std::string key;
    std::string value;
    std::string_view style;
    bool heading;
  };
  std::vector<Line> lines_;
};

void add_spec(Report& report, const MonitorOptions& m) {
  report.heading("spec");
  report.row_if("interpreter", m.interpreter);
  report.row_if("user", m.user);
  report.row_if("group", m.group);
  if (m.umask) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%03o", static_cast<unsigned>(*m.umask));
    report.row("umask", buf);
  }
  report.row("restart", restart_mode_name(m.restart));
  report.row("max restarts", m.max_restarts ? std::to_string(*m.max_restarts) : "unlimited");
  report.row("min uptime", format_duration(m.min_uptime));
  report.row("restart delay", format_duration(m.restart_delay));
  report.row("backoff max", format_duration(m.backoff_max));
  report.row("kill signal", signal_name(m.kill_signal));
  report.row("kill timeout", format_duration(m.kill_timeout));
  report.row("log max size", m.logs.max_size == 0 ? "never rotate" : format_size(m.logs.max_size));
  report.row("log keep", std::to_string(m.logs.keep));
  report.row("log append", yes_no(m.logs.append));
  report.row("log timestamps", yes_no(m.logs.timestamps));
  report.row("watch", m.watch.empty() ? "no" : join(m.watch, ", "));
  report.row_if("watch ignore", join(m.watch_ignore, ", "));
  report.row_if("pid file", m.pid_file);
  report.row("ready when", m.ready.empty() ? "up for min uptime" : m.ready);
  report.heading("environment");
  if (m.env.empty()) report.item("(the daemon's)");
  for (const auto& kv : m.env) report.item(kv);
}

}  // namespace

bool colour_wanted(bool is_terminal, const char* no_color) {
  return is_terminal && no_color == nullptr;
}

bool colour_enabled(int fd) { return colour_wanted(::isatty(fd) == 1, std::getenv("NO_COLOR")); }

std::string field_string(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::optional<std::int64_t> field_int(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return std::nullopt;
}

double field_double(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return 0;
}

std::string render_table(const std::vector<Column>& columns,
                         const std::vector<std::vector<Cell>>& rows, bool colour) {
  std::vector<std::size_t> widths;
  for (const auto& c : columns) widths.push_back(width(c.title));
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], width(row[i].text));
    }
  }
  const auto line = [&](const std::vector<Cell>& cells, bool header) {
    std::string out;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const Cell empty;
      const Cell& cell = i < cells.size() ? cells[i] : empty;
      const std::string pad(widths[i] - width(cell.text), ' ');
      const bool last = i + 1 == columns.size();
      if (i > 0) out += "  ";
      if (columns[i].right_aligned) out += pad;
      out += styled(cell.text, header ? std::string_view() : cell.style, colour);
      if (!columns[i].right_aligned && !last) out += pad;
    }
    const auto end = out.find_last_not_of(' ');
    out.erase(end == std::string::npos ? 0 : end + 1);
    return (header ? styled(out, kBold, colour) : out) + "\n";
  };
  std::vector<Cell> titles;
  for (const auto& c : columns) titles.push_back({c.title});
  std::string out = line(titles, true);
  for (const auto& row : rows) out += line(row, false);
  return out;
}

std::string_view status_style(std::string_view status) {
  if (status == "running") return kGreen;
  if (status == "starting" || status == "backoff" || status == "stopping") return kYellow;
  if (status == "failed" || status == "exited") return kRed;
  if (status == "stopped") return kDim;
  return {};
}

std::string format_list(const json::array& apps, bool colour) {
  if (apps.empty()) return "no apps\n";
  const std::vector<Column> columns = {{"ID", true},  {"NAME"},         {"PID", true},
                                       {"STATUS"},    {"UPTIME", true}, {"RESTARTS", true},
                                       {"CPU", true}, {"MEM", true}};
  std::vector<std::vector<Cell>> rows;
  for (const json::value& v : apps) {
    if (!v.is_object()) continue;
    const json::object& app = v.get_object();
    const auto id = field_int(app, "id");
    const auto pid = field_int(app, "pid");
    const std::string status = field_string(app, "status");
    const bool live = pid && *pid > 0;
    rows.push_back({
        {id ? std::to_string(*id) : "-"},
        {field_string(app, "name")},
        {live ? std::to_string(*pid) : "-"},
        {status, status_style(status)},
        {live ? format_uptime(Millis(field_int(app, "uptime_ms").value_or(0))) : "-"},
        {std::to_string(field_int(app, "restarts").value_or(0))},
        {live ? percent(field_double(app, "cpu")) : "-"},
        {live ? format_size(static_cast<std::uint64_t>(field_int(app, "rss_bytes").value_or(0)))
              : "-"},
    });
  }
  return render_table(columns, rows, colour);
}

std::string app_label(const json::object& app, bool with_pid) {
  std::string out = field_string(app, "name") + " (id ";
  const auto id = field_int(app, "id");
  out += id ? std::to_string(*id) : "?";
  const auto pid = field_int(app, "pid");
  if (with_pid && pid && *pid > 0) out += ", pid " + std::to_string(*pid);
  return out + ")";
}

std::string format_info(const json::object& app, const std::optional<AppSpec>& spec, bool colour) {
  Report report;
  report.heading(app_label(app, false));
  const std::string status = field_string(app, "status");
  const std::string wanted = field_string(app, "wanted");
  report.row("status", status + (wanted.empty() ? "" : " (wanted " + wanted + ")"),
             status_style(status));
  const auto pid = field_int(app, "pid");
  const bool live = pid && *pid > 0;
  report.row("pid", live ? std::to_string(*pid) : "-");
  if (live) {
    report.row("uptime", format_uptime(Millis(field_int(app, "uptime_ms").value_or(0))));
  }
  report.row("restarts", std::to_string(field_int(app, "restarts").value_or(0)));
  if (live) {
    report.row("cpu", percent(field_double(app, "cpu")));
    report.row("memory",
               format_size(static_cast<std::uint64_t>(field_int(app, "rss_bytes").value_or(0))));
  }
  const std::string last_exit = describe_exit(field_object(app, "last_exit"));
  report.row("last exit", last_exit.empty() ? "-" : last_exit);
  report.row_if("last error", field_string(app, "last_error"));
  std::vector<std::string> cmd;
  if (const json::value* v = app.if_contains("cmd"); v != nullptr && v->is_array()) {
    for (const json::value& word : v->get_array()) {
      if (word.is_string()) cmd.emplace_back(word.get_string());
    }
  }
  report.row("command", shell_join(cmd));
  report.row("cwd", field_string(app, "cwd"));
  const std::string out_log = field_string(app, "out_log");
  const std::string err_log = field_string(app, "err_log");
  report.row("out log", out_log.empty() ? "-" : out_log);
  report.row("err log", err_log.empty() ? "-" : err_log);
  if (spec) add_spec(report, spec->monitor);
  return report.render(colour);
}

std::string format_event(std::string_view app, const json::object& event) {
  std::string out;
  if (const std::string time = field_string(event, "time"); !time.empty()) out += time + " ";
  out += app;
  const std::string type = field_string(event, "type");
  out += " " + type;
  if (const auto pid = field_int(event, "pid"); pid && *pid != 0) {
    out += " pid=" + std::to_string(*pid);
  }
  if (type == "exit") {
    if (const std::string how = describe_exit(field_object(event, "exit")); !how.empty()) {
      out += " " + how;
    }
    out += " uptime=" + format_duration(Millis(field_int(event, "uptime_ms").value_or(0)));
  } else if (type == "restart") {
    out += " in " + format_duration(Millis(field_int(event, "delay_ms").value_or(0)));
    if (const auto attempt = field_int(event, "attempt"); attempt && *attempt > 0) {
      out += " attempt=" + std::to_string(*attempt);
    }
  } else if (type == "watch" || type == "rotate") {
    if (const std::string path = field_string(event, "path"); !path.empty()) out += " " + path;
  }
  if (const std::string reason = field_string(event, "reason"); !reason.empty()) {
    out += " (" + reason + ")";
  }
  return out;
}

std::string format_log_line(std::string_view app, std::string_view stream, std::string_view line,
                            bool prefixed, bool colour) {
  if (!prefixed) return std::string(line);
  std::string prefix(app);
  prefix += " |";
  return styled(prefix, stream == "err" ? kRed : kDim, colour) + " " + std::string(line);
}

std::string format_daemon_status(const json::object& ping) {
  Report report;
  report.heading("sempred is running", {});
  if (const auto pid = field_int(ping, "pid")) report.row("pid", std::to_string(*pid));
  report.row_if("home", field_string(ping, "home"));
  if (const auto up = field_int(ping, "uptime_ms")) {
    report.row("uptime", format_uptime(Millis(*up)));
  }
  if (const json::value* apps = ping.if_contains("apps")) {
    report.row("apps", apps->is_array() ? std::to_string(apps->get_array().size())
                                        : json::serialize(*apps));
  }
  // A number is the protocol version; a string, sempred's own.
  if (const json::value* v = ping.if_contains("version")) {
    if (v->is_string()) {
      report.row("version", std::string(v->get_string()));
    } else {
      report.row("protocol", json::serialize(*v));
    }
  }
  return report.render(false);
}

std::string shell_join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& word : words) {
    if (!out.empty()) out += ' ';
    const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) ||
             std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
    });
    if (plain) {
      out += word;
      continue;
    }
    out += '\'';
    for (char c : word) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

}  // namespace sempre::cli

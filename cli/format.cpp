#include "format.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "option_schema.hpp"
#include "sempre/units.hpp"

namespace sempre::cli {
namespace {

namespace json = boost::json;

// The terminal columns of code point `cp`: 2 for East Asian wide and
// emoji, 0 for combining marks, else 1.
std::size_t columns_of(std::uint32_t cp) {
  if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F) ||
      (cp >= 0xFE00 && cp <= 0xFE0F)) {
    return 0;
  }
  static constexpr std::pair<std::uint32_t, std::uint32_t> kWide[] = {
      {0x1100, 0x115F},   {0x2E80, 0x303E},   {0x3041, 0x33FF},  {0x3400, 0x4DBF},
      {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xAC00, 0xD7A3},  {0xF900, 0xFAFF},
      {0xFE30, 0xFE4F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},  {0x1F300, 0x1F64F},
      {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD}};
  for (const auto& [from, to] : kWide) {
    if (cp >= from && cp <= to) return 2;
  }
  return 1;
}

}  // namespace

std::string json_text(const json::value& value) {
  switch (value.kind()) {
    case json::kind::double_: {
      const double d = value.get_double();
      if (!std::isfinite(d)) return "null";
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.15g", d);
      return buf;
    }
    case json::kind::array: {
      std::string out = "[";
      for (const json::value& v : value.get_array())
        out += (out.size() > 1 ? "," : "") + json_text(v);
      return out + "]";
    }
    case json::kind::object: {
      std::string out = "{";
      for (const auto& [k, v] : value.get_object()) {
        if (out.size() > 1) out += ',';
        out += json::serialize(json::string(k)) + ":" + json_text(v);
      }
      return out + "}";
    }
    default:
      return json::serialize(value);
  }
}

std::size_t display_width(std::string_view text) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t len = c < 0x80             ? 1
                      : (c & 0xE0) == 0xC0 ? 2
                      : (c & 0xF0) == 0xE0 ? 3
                      : (c & 0xF8) == 0xF0 ? 4
                                           : 1;
    if (i + len > text.size()) len = 1;
    std::uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (std::size_t k = 1; k < len; ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    total += columns_of(cp);
    i += len;
  }
  return total;
}

namespace {

std::size_t width(std::string_view text) { return display_width(text); }

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

void add_spec(Report& report, const AppSpec& spec) {
  const MonitorOptions& m = spec.monitor;
  report.heading("spec");
  for (const OptionRow& row : option_rows()) {
    if (auto value = display_value(row, spec)) report.row(std::string(row.label), *value);
  }
  report.row("watch", m.watch.empty() ? "no" : join(m.watch, ", "));
  report.heading("environment");
  if (m.env.empty()) report.item("(the daemon's)");
  std::vector<std::string> env = m.env;
  std::sort(env.begin(), env.end());
  for (const auto& kv : env) report.item(kv);
}

}  // namespace

bool colour_wanted(bool is_terminal, const char* no_color) {
  return is_terminal && (no_color == nullptr || *no_color == '\0');
}

bool colour_enabled(int fd) { return colour_wanted(::isatty(fd) == 1, std::getenv("NO_COLOR")); }

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

namespace {

// One column of `sempre list`: its name (the JSON field's, or a short one),
// its title, and how a cell is made from an AppInfo.
struct ListColumn {
  std::string_view name;
  std::string_view alias;  // the JSON field when it differs ("uptime_ms" for uptime)
  Column column;
  Cell (*cell)(const protocol::AppInfo& app, bool live);
};

bool is_live(const protocol::AppInfo& app) { return app.status.pid > 0; }

std::string exit_text(const protocol::AppInfo& app) {
  const auto& e = app.status.last_exit;
  return e ? e->describe() : "-";
}

// How the app's processes are held: "cgroup", "tree" (its process tree,
// without a cgroup), or "-" when none runs.
std::string containment_text(const protocol::AppInfo& app, bool live) {
  if (!app.status.cgroup.empty()) return "cgroup";
  return live ? "tree" : "-";
}

// Output lost to a log that could not be written: "-" when none.
Cell dropped_cell(std::uint64_t bytes) {
  if (bytes == 0) return {"-"};
  return {format_size(bytes), kRed};
}

const std::vector<ListColumn>& list_columns() {
  using protocol::AppInfo;
  static const std::vector<ListColumn> table = {
      {"id",
       "",
       {"ID", true},
       [](const AppInfo& a, bool) -> Cell { return {std::to_string(a.id)}; }},
      {"name", "", {"NAME"}, [](const AppInfo& a, bool) -> Cell { return {a.name}; }},
      {"pid",
       "",
       {"PID", true},
       [](const AppInfo& a, bool live) -> Cell {
         return {live ? std::to_string(a.status.pid) : "-"};
       }},
      {"status",
       "",
       {"STATUS"},
       [](const AppInfo& a, bool) -> Cell {
         const std::string status = state_name(a.status.state);
         // A program that finished with code 0 did what it should.
         const bool clean = a.status.state == State::kExited && a.status.last_exit &&
                            a.status.last_exit->success();
         return {status, clean ? kDim : status_style(status)};
       }},
      {"wanted",
       "",
       {"WANTED"},
       [](const AppInfo& a, bool) -> Cell { return {a.status.wanted_up ? "up" : "down"}; }},
      {"uptime",
       "uptime_ms",
       {"UPTIME", true},
       [](const AppInfo& a, bool live) -> Cell {
         return {live ? format_uptime(a.status.uptime) : "-"};
       }},
      {"restarts",
       "",
       {"RESTARTS", true},
       [](const AppInfo& a, bool) -> Cell { return {std::to_string(a.status.restarts)}; }},
      {"cpu",
       "",
       {"CPU", true},
       [](const AppInfo& a, bool live) -> Cell {
         return {live ? percent(a.usage.cpu_percent) : "-"};
       }},
      {"mem",
       "rss_bytes",
       {"MEM", true},
       [](const AppInfo& a, bool live) -> Cell {
         return {live ? format_size(a.usage.rss_bytes) : "-"};
       }},
      {"cmd", "", {"CMD"}, [](const AppInfo& a, bool) -> Cell { return {shell_join(a.cmd)}; }},
      {"cwd", "", {"CWD"}, [](const AppInfo& a, bool) -> Cell { return {a.cwd}; }},
      {"out_log",
       "",
       {"OUT_LOG"},
       [](const AppInfo& a, bool) -> Cell { return {a.status.out_log}; }},
      {"err_log",
       "",
       {"ERR_LOG"},
       [](const AppInfo& a, bool) -> Cell { return {a.status.err_log}; }},
      {"last_exit",
       "",
       {"LAST_EXIT"},
       [](const AppInfo& a, bool) -> Cell { return {exit_text(a)}; }},
      {"last_error",
       "",
       {"LAST_ERROR"},
       [](const AppInfo& a, bool) -> Cell { return {a.status.last_error}; }},
      {"contained",
       "containment",
       {"CONTAINED"},
       [](const AppInfo& a, bool live) -> Cell { return {containment_text(a, live)}; }},
      {"out_dropped",
       "out_dropped_bytes",
       {"OUT_DROPPED", true},
       [](const AppInfo& a, bool) -> Cell { return dropped_cell(a.status.out_dropped); }},
      {"err_dropped",
       "err_dropped_bytes",
       {"ERR_DROPPED", true},
       [](const AppInfo& a, bool) -> Cell { return dropped_cell(a.status.err_dropped); }},
  };
  return table;
}

const ListColumn* find_list_column(std::string_view name) {
  for (const ListColumn& c : list_columns()) {
    if (c.name == name || (!c.alias.empty() && c.alias == name)) return &c;
  }
  return nullptr;
}

}  // namespace

const std::vector<std::string>& default_list_columns() {
  static const std::vector<std::string> columns = {"id",     "name",     "pid", "status",
                                                   "uptime", "restarts", "cpu", "mem"};
  return columns;
}

std::vector<std::string> list_column_names() {
  std::vector<std::string> names;
  for (const ListColumn& c : list_columns()) names.emplace_back(c.name);
  return names;
}

Result<std::vector<std::string>> parse_list_columns(std::string_view text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    std::string word(text.substr(at, comma - at));
    at = comma + 1;
    if (word.empty()) continue;
    if (find_list_column(word) == nullptr) {
      std::string known;
      for (const ListColumn& c : list_columns())
        known += (known.empty() ? "" : ",") + std::string(c.name);
      return Error{ErrorKind::kInvalidArgument,
                   "unknown column \"" + word + "\" (columns: " + known + ")"};
    }
    out.push_back(word);
  }
  if (out.empty()) return Error{ErrorKind::kInvalidArgument, "no column given"};
  return out;
}

Status sort_apps(std::vector<protocol::AppInfo>& apps, std::string_view field) {
  bool descending = false;
  if (!field.empty() && field.front() == '-') {
    descending = true;
    field.remove_prefix(1);
  }
  const ListColumn* column = find_list_column(field);
  if (column == nullptr) {
    return Error{ErrorKind::kInvalidArgument, "unknown field \"" + std::string(field) + "\""};
  }
  // The field as `list --json` shows it: what the user names is its key.
  const std::string key(column->alias.empty() ? column->name : column->alias);
  struct Keyed {
    json::value key;  // null: the app has none
    protocol::AppInfo app;
  };
  std::vector<Keyed> items;
  items.reserve(apps.size());
  for (protocol::AppInfo& app : apps) {
    const json::object shown = protocol::to_json(app);
    const json::value* v = shown.if_contains(key);
    items.push_back({v != nullptr ? *v : json::value(nullptr), std::move(app)});
  }
  auto value_of = [](const Keyed& x) -> const json::value* {
    return x.key.is_null() ? nullptr : &x.key;
  };
  auto less = [](const json::value& a, const json::value& b) {
    if (a.is_number() && b.is_number()) return a.to_number<double>() < b.to_number<double>();
    return json::serialize(a) < json::serialize(b);
  };
  std::stable_sort(items.begin(), items.end(), [&](const Keyed& x, const Keyed& y) {
    const json::value* a = value_of(x);
    const json::value* b = value_of(y);
    if (a == nullptr || b == nullptr) return a != nullptr && b == nullptr;  // missing ones last
    return descending ? less(*b, *a) : less(*a, *b);
  });
  apps.clear();
  for (Keyed& item : items) apps.push_back(std::move(item.app));
  return {};
}

std::string format_list(const std::vector<protocol::AppInfo>& apps, bool colour,
                        const std::vector<std::string>& names) {
  if (apps.empty()) return "no apps\n";
  std::vector<std::string> shown = names;
  if (shown.empty()) {
    shown = default_list_columns();
    // Lost output is shown by default once there is some.
    const bool lost = std::any_of(apps.begin(), apps.end(), [](const protocol::AppInfo& a) {
      return a.status.out_dropped > 0 || a.status.err_dropped > 0;
    });
    if (lost) shown.insert(shown.end(), {"out_dropped", "err_dropped"});
  }
  std::vector<const ListColumn*> chosen;
  for (const std::string& n : shown) {
    if (const ListColumn* c = find_list_column(n)) chosen.push_back(c);
  }
  std::vector<Column> columns;
  for (const ListColumn* c : chosen) columns.push_back(c->column);
  std::vector<std::vector<Cell>> rows;
  for (const protocol::AppInfo& app : apps) {
    const bool live = is_live(app);
    std::vector<Cell> row;
    for (const ListColumn* c : chosen) row.push_back(c->cell(app, live));
    rows.push_back(std::move(row));
  }
  return render_table(columns, rows, colour);
}

std::string app_label(const protocol::AppInfo& app, bool with_pid) {
  std::string out = app.name + " (id " + std::to_string(app.id);
  if (with_pid && app.status.pid > 0) out += ", pid " + std::to_string(app.status.pid);
  return out + ")";
}

std::string format_info(const protocol::AppInfo& app, const std::optional<AppSpec>& spec,
                        bool colour, const std::optional<std::string>& source) {
  const MonitorStatus& st = app.status;
  Report report;
  report.heading(app_label(app, false));
  const std::string status = state_name(st.state);
  report.row("status", status + " (wanted " + (st.wanted_up ? "up" : "down") + ")",
             status_style(status));
  const bool live = st.pid > 0;
  report.row("pid", live ? std::to_string(st.pid) : "-");
  if (live) report.row("uptime", format_uptime(st.uptime));
  report.row("restarts", std::to_string(st.restarts));
  if (live) {
    report.row("cpu", percent(app.usage.cpu_percent));
    report.row("memory", format_size(app.usage.rss_bytes));
  }
  if (!st.cgroup.empty()) {
    report.row("contained", "cgroup " + st.cgroup);
  } else if (live) {
    report.row("contained", "process tree (group, session, SEMPRE_GROUP-marked orphans)");
  }
  report.row("last exit", st.last_exit ? st.last_exit->describe() : "-");
  report.row_if("last error", st.last_error);
  report.row("command", shell_join(app.cmd));
  report.row("cwd", app.cwd);
  if (source) report.row("from", source->empty() ? "the command line" : *source);
  report.row("out log", st.out_log.empty() ? "-" : st.out_log);
  report.row("err log", st.err_log.empty() ? "-" : st.err_log);
  auto dropped = [&report](std::string_view label, std::uint64_t bytes) {
    if (bytes == 0) return;
    report.row(std::string(label),
               std::to_string(bytes) + " bytes of output dropped (" + format_size(bytes) +
                   "); the log could not be written",
               kRed);
  };
  dropped("out dropped", st.out_dropped);
  dropped("err dropped", st.err_dropped);
  if (spec) add_spec(report, *spec);
  return report.render(colour);
}

std::string format_event(std::string_view app, const Event& event) {
  return protocol::iso8601_utc(event.time) + " " + std::string(app) + " " + describe(event);
}

std::string format_log_line(std::string_view app, std::size_t name_width, std::string_view stream,
                            std::string_view line, bool show_app, bool colour) {
  std::string prefix;
  if (show_app) {
    prefix += app;
    prefix += std::string(name_width > width(app) ? name_width - width(app) : 0, ' ');
    prefix += ' ';
  }
  prefix += stream;
  prefix += " |";
  return styled(prefix, stream == "err" ? kRed : kDim, colour) + " " + std::string(line);
}

std::optional<std::int64_t> log_stamp_ms(std::string_view line) {
  // 2026-11-26T16:49:27.123+0000 (the writer's --log-timestamps prefix)
  if (line.size() < 28) return std::nullopt;
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (line[i] < '0' || line[i] > '9') return std::nullopt;
      v = v * 10 + (line[i] - '0');
    }
    return v;
  };
  if (line[4] != '-' || line[7] != '-' || line[10] != 'T' || line[13] != ':' || line[16] != ':' ||
      line[19] != '.' || (line[23] != '+' && line[23] != '-')) {
    return std::nullopt;
  }
  const auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2),
             mi = digits(14, 2), sec = digits(17, 2), ms = digits(20, 3), oh = digits(24, 2),
             om = digits(26, 2);
  if (!y || !mo || !d || !h || !mi || !sec || !ms || !oh || !om) return std::nullopt;
  // Days from the civil date (proleptic Gregorian), then the offset undone.
  const int yy = *y - (*mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const int yoe = yy - era * 400;
  const int doy = (153 * (*mo + (*mo > 2 ? -3 : 9)) + 2) / 5 + *d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
  const std::int64_t offset = (*oh * 60 + *om) * (line[23] == '-' ? -1 : 1);
  const std::int64_t minutes = days * 1440 + *h * 60 + *mi - offset;
  return (minutes * 60 + *sec) * 1000 + *ms;
}

std::string format_log_tail(const std::vector<LogLine>& lines, bool show_app, bool colour) {
  std::size_t name_width = 0;
  for (const LogLine& l : lines) name_width = std::max(name_width, width(l.app));
  // The files, in the order they came, each with its lines.
  struct Block {
    const LogLine* first;
    std::vector<const LogLine*> lines;
  };
  std::vector<Block> blocks;
  for (const LogLine& l : lines) {
    if (blocks.empty() || blocks.back().first->app != l.app ||
        blocks.back().first->path != l.path) {
      blocks.push_back({&l, {}});
    }
    blocks.back().lines.push_back(&l);
  }
  auto print = [&](const LogLine& l) {
    return format_log_line(l.app, name_width, l.stream, l.text, show_app, colour) + "\n";
  };
  const bool all_stamped = std::all_of(lines.begin(), lines.end(), [](const LogLine& l) {
    return log_stamp_ms(l.text).has_value();
  });
  std::string out;
  if (all_stamped) {
    // One timeline: every line has its time.
    std::vector<const LogLine*> order;
    for (const LogLine& l : lines) order.push_back(&l);
    std::stable_sort(order.begin(), order.end(), [](const LogLine* a, const LogLine* b) {
      return *log_stamp_ms(a->text) < *log_stamp_ms(b->text);
    });
    for (const LogLine* l : order) out += print(*l);
    return out;
  }
  // Without times the files cannot be interleaved truthfully: one block
  // per file, each under the name of the file it comes from.
  for (const Block& block : blocks) {
    if (blocks.size() > 1) {
      out += styled("==> " + block.first->path + " <==", kBold, colour) + "\n";
    }
    for (const LogLine* l : block.lines) out += print(*l);
  }
  return out;
}

std::string format_daemon_status(const protocol::PingReply& ping) {
  Report report;
  report.heading("sempred is running", {});
  report.row("pid", std::to_string(ping.pid));
  report.row_if("home", ping.home);
  report.row("uptime", format_uptime(ping.uptime));
  report.row("apps", std::to_string(ping.apps));
  report.row("protocol", std::to_string(ping.version));
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

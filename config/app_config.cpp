#include "app_config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

// Choices the header leaves open (man/sempre.toml.5 documents them):
// - [defaults] takes every app key but `name` and `cmd`. An app's key replaces
//   the default, except `env`, whose variables merge (the app's win), and
//   `log` versus `out`/`err`: an app that names either drops the default of
//   the other, so a default `log` never conflicts with an app's `out`.
// - The environment is built in this order, later entries replacing earlier
//   ones: the caller's (unless env_inherit = false), env_file, env.
// - env_file is read while parsing, so its variables are part of the spec and
//   a missing file is an error at the env_file key.
// - An integer umask must be written in octal (0o022): a decimal 22 is almost
//   certainly a mistake for 022 and is refused rather than read as 0o26.
// - Keys of a table are checked in the order they appear in the file, so the
//   errors come out in file order; env variables keep their file order too.
// - watch_debounce (a duration) is accepted in addition to the start options
//   so that every MonitorOptions field survives a round trip.

namespace sempre {
namespace {

namespace fs = std::filesystem;

constexpr Millis kDefaultWatchDebounce = MonitorOptions{}.watch_debounce;

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::optional<std::string> closest_word(std::string_view word,
                                        const std::vector<std::string_view>& known) {
  std::string_view best;
  std::size_t best_distance = std::string_view::npos;
  for (std::string_view k : known) {
    const std::size_t d = edit_distance(word, k);
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
  }
  if (!best.empty() && (best_distance <= 2 || best_distance * 3 <= word.size()) &&
      best_distance < std::max(word.size(), best.size())) {
    return std::string(best);
  }
  return std::nullopt;
}

namespace {

// "unknown key "x"; did you mean "y"?" when a known key is close enough to be
// the one meant, else "unknown key "x"; expected one of a, b, c" for short lists.
std::string unknown_key_message(std::string_view key, const std::vector<std::string_view>& known,
                                std::string_view where) {
  std::string message = "unknown key " + in_quotes(key);
  if (!where.empty()) message += " in " + std::string(where);
  if (const auto best = closest_word(key, known)) {
    return message + "; did you mean " + in_quotes(*best) + "?";
  }
  if (known.size() <= 3) {
    message += "; expected ";
    for (std::size_t i = 0; i < known.size(); ++i) {
      if (i > 0) message += i + 1 == known.size() ? " or " : ", ";
      message += in_quotes(known[i]);
    }
  }
  return message;
}

struct Entry {
  const toml::key* key;
  const toml::node* node;
};

// The entries of a table in the order they appear in the file (toml++ keeps
// them sorted by key).
std::vector<Entry> in_file_order(const toml::table& table) {
  std::vector<Entry> entries;
  for (const auto& [key, node] : table) entries.push_back(Entry{&key, &node});
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const auto& pa = a.key->source().begin;
    const auto& pb = b.key->source().begin;
    return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
  });
  return entries;
}

// Where errors go, and what relative paths are relative to.
struct Context {
  std::string file;  // as the caller named it
  fs::path dir;      // absolute directory of the file
  std::vector<ConfigError>& errors;

  void error(const toml::source_region& at, std::string message) const {
    errors.push_back(ConfigError{file, static_cast<int>(at.begin.line),
                                 static_cast<int>(at.begin.column), std::move(message)});
  }
  void error(const toml::node& at, std::string message) const {
    error(at.source(), std::move(message));
  }

  std::string absolute(const std::string& path) const {
    if (path.empty()) return path;
    fs::path p(path);
    if (p.is_relative()) p = dir / p;
    return p.lexically_normal().string();
  }
};

// --- typed readers: each reports its own error and returns nullopt ----------

void type_error(const toml::node& node, std::string_view key, std::string_view expected,
                const Context& ctx) {
  ctx.error(node,
            std::string(key) + ": expected " + std::string(expected) + ", got " + type_name(node));
}

std::optional<std::string> read_string(const toml::node& node, std::string_view key,
                                       const Context& ctx) {
  if (const auto* s = node.as_string()) return s->get();
  type_error(node, key, "a string", ctx);
  return std::nullopt;
}

std::optional<bool> read_bool(const toml::node& node, std::string_view key, const Context& ctx) {
  if (const auto* b = node.as_boolean()) return b->get();
  type_error(node, key, "a boolean (true or false)", ctx);
  return std::nullopt;
}

// A non-negative integer that fits an int.
std::optional<int> read_count(const toml::node& node, std::string_view key, const Context& ctx) {
  const auto* i = node.as_integer();
  if (i == nullptr) {
    type_error(node, key, "an integer", ctx);
    return std::nullopt;
  }
  if (i->get() < 0) {
    ctx.error(node, std::string(key) + ": must be 0 or more");
    return std::nullopt;
  }
  if (i->get() > std::numeric_limits<int>::max()) {
    ctx.error(node, std::string(key) + ": too large");
    return std::nullopt;
  }
  return static_cast<int>(i->get());
}

std::optional<Millis> read_duration(const toml::node& node, std::string_view key,
                                    const Context& ctx) {
  if (const auto* i = node.as_integer()) {
    if (i->get() < 0) {
      ctx.error(node, std::string(key) + ": must not be negative");
      return std::nullopt;
    }
    return Millis{i->get()};
  }
  if (const auto* s = node.as_string()) {
    auto d = parse_duration(s->get());
    if (!d) {
      ctx.error(node, std::string(key) + ": " + d.error().message);
      return std::nullopt;
    }
    return *d;
  }
  type_error(node, key, "a duration (a string such as \"5s\" or an integer of milliseconds)", ctx);
  return std::nullopt;
}

std::optional<std::uint64_t> read_size(const toml::node& node, std::string_view key,
                                       const Context& ctx) {
  if (const auto* i = node.as_integer()) {
    if (i->get() < 0) {
      ctx.error(node, std::string(key) + ": must not be negative");
      return std::nullopt;
    }
    return static_cast<std::uint64_t>(i->get());
  }
  if (const auto* s = node.as_string()) {
    auto size = parse_size(s->get());
    if (!size) {
      ctx.error(node, std::string(key) + ": " + size.error().message);
      return std::nullopt;
    }
    return *size;
  }
  type_error(node, key, "a size (a string such as \"10M\" or an integer of bytes)", ctx);
  return std::nullopt;
}

// A path, made absolute against the file's directory; "" stays "" (not set).
std::optional<std::string> read_path(const toml::node& node, std::string_view key,
                                     const Context& ctx) {
  auto s = read_string(node, key, ctx);
  if (!s) return std::nullopt;
  return ctx.absolute(*s);
}

// Splits a command line as a POSIX shell would split words: blanks separate,
// '...' is literal, "..." allows \" \\ \$ \` escapes, and a backslash outside
// quotes escapes the next character. Nothing is expanded and no shell runs.
Result<std::vector<std::string>> split_command(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  auto fail = [](std::string message) {
    return Error{ErrorKind::kInvalidArgument, std::move(message)};
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '\'') {
      const std::size_t end = text.find('\'', i + 1);
      if (end == std::string_view::npos) return fail("unterminated ' quote");
      word.append(text.substr(i + 1, end - i - 1));
      in_word = true;
      i = end;
    } else if (c == '"') {
      in_word = true;
      bool closed = false;
      for (++i; i < text.size(); ++i) {
        if (text[i] == '"') {
          closed = true;
          break;
        }
        if (text[i] == '\\' && i + 1 < text.size() &&
            std::string_view("\"\\$`\n").find(text[i + 1]) != std::string_view::npos) {
          ++i;
          if (text[i] == '\n') continue;  // a line continuation
        }
        word += text[i];
      }
      if (!closed) return fail("unterminated \" quote");
    } else if (c == '\\') {
      if (i + 1 == text.size()) return fail("a backslash at the end escapes nothing");
      ++i;
      if (text[i] != '\n') {
        word += text[i];
        in_word = true;
      }
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

bool valid_env_name(std::string_view name) {
  return !name.empty() && name.find('=') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Reads an env file: KEY=VALUE lines, '#' comments, blank lines, an optional
// `export ` prefix and optional quotes around the value ("..." takes \" \\ \n
// \t \$ escapes, '...' is literal). Errors name the env file's own lines.
std::vector<std::string> read_env_file(const std::string& path, const std::string& text,
                                       std::vector<ConfigError>& errors) {
  std::vector<std::string> vars;
  std::istringstream in(text);
  std::string raw;
  int line_number = 0;
  while (std::getline(in, raw)) {
    ++line_number;
    std::string_view line = raw;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t indent = line.find_first_not_of(" \t");
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    const int column = static_cast<int>(indent) + 1;
    auto fail = [&](std::string message) {
      errors.push_back(ConfigError{path, line_number, column, std::move(message)});
    };
    if (line.starts_with("export ") || line.starts_with("export\t")) line = trim(line.substr(7));
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      fail("expected KEY=VALUE, got " + in_quotes(line));
      continue;
    }
    const std::string_view name = trim(line.substr(0, eq));
    if (!valid_env_name(name) || name.find_first_of(" \t") != std::string_view::npos) {
      fail("invalid variable name " + in_quotes(name));
      continue;
    }
    std::string_view value = trim(line.substr(eq + 1));
    std::string unquoted;
    if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
      const char q = value.front();
      if (value.size() < 2 || value.back() != q) {
        fail(std::string("unterminated ") + q + " quote in the value of " + in_quotes(name));
        continue;
      }
      value = value.substr(1, value.size() - 2);
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (q == '"' && value[i] == '\\' && i + 1 < value.size()) {
          const char e = value[++i];
          switch (e) {
            case 'n':
              unquoted += '\n';
              break;
            case 't':
              unquoted += '\t';
              break;
            case '"':
            case '\\':
            case '$':
            case '`':
              unquoted += e;
              break;
            default:
              unquoted += '\\';
              unquoted += e;
              break;
          }
        } else {
          unquoted += value[i];
        }
      }
    } else {
      unquoted = value;
    }
    vars.push_back(std::string(name) + "=" + unquoted);
  }
  return vars;
}

// Sets "K=V", replacing any earlier K, as `--env` does.
void set_env(std::vector<std::string>& env, const std::string& kv) {
  const std::string prefix = kv.substr(0, kv.find('=') + 1);
  std::erase_if(env, [&](const std::string& e) { return e.starts_with(prefix); });
  env.push_back(kv);
}

// --- one table's keys ---------------------------------------------------------

struct Watch {
  bool app_cwd = false;  // watch = true
  std::vector<std::string> paths;
};

// What one table ([defaults] or one [[app]]) says, each key checked and
// converted; unset keys are empty.
struct Settings {
  std::optional<std::string> name;
  const toml::node* name_node = nullptr;
  std::optional<std::vector<std::string>> cmd;
  std::optional<std::string> cwd;
  std::vector<std::string> env;  // "K=V" from the env table, in file order
  std::optional<std::vector<std::string>> env_file_vars;
  std::optional<bool> env_inherit;
  std::optional<bool> autostart;
  std::optional<std::string> user;
  std::optional<std::string> group;
  std::optional<mode_t> umask;
  std::optional<RestartMode> restart;
  std::optional<int> max_restarts;
  std::optional<Millis> min_uptime;
  std::optional<Millis> restart_delay;
  std::optional<Millis> backoff_max;
  std::optional<int> kill_signal;
  std::optional<Millis> kill_timeout;
  std::optional<std::string> out;
  std::optional<std::string> err;
  std::optional<std::string> log;
  std::optional<bool> append;
  std::optional<std::uint64_t> log_max_size;
  std::optional<int> log_keep;
  std::optional<bool> log_timestamps;
  std::optional<Watch> watch;
  std::optional<std::vector<std::string>> watch_ignore;
  std::optional<Millis> watch_debounce;
  std::optional<std::string> pid_file;
  std::optional<std::string> interpreter;
  std::optional<std::string> ready;
};

using KeyReader = void (*)(const toml::node&, std::string_view, const Context&, Settings&);

struct Key {
  std::string_view name;
  KeyReader read;
};

void read_cmd(const toml::node& node, std::string_view key, const Context& ctx, Settings& s) {
  std::vector<std::string> argv;
  if (const auto* text = node.as_string()) {
    auto words = split_command(text->get());
    if (!words) {
      ctx.error(node, std::string(key) + ": " + words.error().message);
      return;
    }
    argv = std::move(*words);
  } else if (const auto* array = node.as_array()) {
    bool ok = true;
    for (const toml::node& element : *array) {
      if (const auto* arg = element.as_string()) {
        argv.push_back(arg->get());
      } else {
        type_error(element, key, "an array of strings", ctx);
        ok = false;
      }
    }
    if (!ok) return;
  } else {
    type_error(node, key, "an array of strings or a string", ctx);
    return;
  }
  if (argv.empty() || argv[0].empty()) {
    ctx.error(node, std::string(key) + ": no program to run");
    return;
  }
  s.cmd = std::move(argv);
}

void read_env(const toml::node& node, std::string_view key, const Context& ctx, Settings& s) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    type_error(node, key, "a table of variables", ctx);
    return;
  }
  for (const Entry& e : in_file_order(*table)) {
    const std::string name(e.key->str());
    const std::string where = std::string(key) + "." + name;
    if (!valid_env_name(name)) {
      ctx.error(e.key->source(), std::string(key) + ": invalid variable name " + in_quotes(name));
      continue;
    }
    std::string value;
    if (const auto* str = e.node->as_string()) {
      value = str->get();
    } else if (const auto* i = e.node->as_integer()) {
      value = std::to_string(i->get());
    } else if (const auto* b = e.node->as_boolean()) {
      value = b->get() ? "true" : "false";
    } else {
      type_error(*e.node, where, "a string", ctx);
      continue;
    }
    set_env(s.env, name + "=" + value);
  }
}

void read_env_file_key(const toml::node& node, std::string_view key, const Context& ctx,
                       Settings& s) {
  auto path = read_path(node, key, ctx);
  if (!path) return;
  if (path->empty()) {
    s.env_file_vars.emplace();
    return;
  }
  std::ifstream in(*path, std::ios::binary);
  if (!in) {
    ctx.error(node,
              std::string(key) + ": cannot read " + in_quotes(*path) + ": " + std::strerror(errno));
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  const std::size_t before = ctx.errors.size();
  auto vars = read_env_file(*path, text.str(), ctx.errors);
  if (ctx.errors.size() == before) s.env_file_vars = std::move(vars);
}

void read_umask(const toml::node& node, std::string_view key, const Context& ctx, Settings& s) {
  unsigned long mask = 0;
  if (const auto* text = node.as_string()) {
    const std::string& t = text->get();
    std::size_t used = 0;
    try {
      mask = std::stoul(t, &used, 8);
    } catch (const std::exception&) {
      used = 0;
    }
    if (t.empty() || used != t.size() || mask > 0777 ||
        t.find_first_of("+- \t") != std::string::npos) {
      ctx.error(node,
                std::string(key) + ": expected an octal mode such as \"022\", got " + in_quotes(t));
      return;
    }
  } else if (const auto* i = node.as_integer()) {
    const bool octal = (i->flags() & toml::value_flags::format_as_octal) != toml::value_flags::none;
    if (!octal && i->get() != 0) {
      ctx.error(node, std::string(key) + ": write the mode in octal, as 0o" +
                          std::to_string(i->get()) + " or \"" + std::to_string(i->get()) + "\"");
      return;
    }
    if (i->get() < 0 || i->get() > 0777) {
      ctx.error(node, std::string(key) + ": expected a mode from 0o000 to 0o777");
      return;
    }
    mask = static_cast<unsigned long>(i->get());
  } else {
    type_error(node, key, "an octal mode (a string such as \"022\" or an integer such as 0o022)",
               ctx);
    return;
  }
  s.umask = static_cast<mode_t>(mask);
}

void read_restart(const toml::node& node, std::string_view key, const Context& ctx, Settings& s) {
  auto text = read_string(node, key, ctx);
  if (!text) return;
  auto mode = parse_restart_mode(*text);
  if (!mode) {
    ctx.error(node, std::string(key) + ": " + mode.error().message);
    return;
  }
  s.restart = *mode;
}

void read_kill_signal(const toml::node& node, std::string_view key, const Context& ctx,
                      Settings& s) {
  std::string text;
  if (const auto* str = node.as_string()) {
    text = str->get();
  } else if (const auto* i = node.as_integer()) {
    text = std::to_string(i->get());
  } else {
    type_error(node, key, "a signal (a name such as \"TERM\" or a number)", ctx);
    return;
  }
  auto sig = parse_signal(text);
  if (!sig) {
    ctx.error(node, std::string(key) + ": " + sig.error().message);
    return;
  }
  s.kill_signal = *sig;
}

// A duration that must be longer than 0 (kill_timeout, backoff_max).
std::optional<Millis> read_positive_duration(const toml::node& node, std::string_view key,
                                             const Context& ctx) {
  auto d = read_duration(node, key, ctx);
  if (d && d->count() <= 0) {
    ctx.error(node, std::string(key) + ": must be longer than 0");
    return std::nullopt;
  }
  return d;
}

// An array of strings or a single string, none empty (an empty path or glob is never
// meant); `paths` makes each absolute.
std::optional<std::vector<std::string>> read_string_list(const toml::node& node,
                                                         std::string_view key, const Context& ctx,
                                                         bool paths) {
  std::vector<std::string> out;
  auto add = [&](const toml::node& element) {
    const auto* str = element.as_string();
    if (str == nullptr) {
      type_error(element, key, "an array of strings", ctx);
      return false;
    }
    if (str->get().empty()) {
      ctx.error(element, std::string(key) + ": must not be empty");
      return false;
    }
    out.push_back(paths ? ctx.absolute(str->get()) : str->get());
    return true;
  };
  if (const auto* array = node.as_array()) {
    bool ok = true;
    for (const toml::node& element : *array) ok = add(element) && ok;
    if (!ok) return std::nullopt;
    return out;
  }
  if (node.is_string()) {
    if (!add(node)) return std::nullopt;
    return out;
  }
  type_error(node, key, "an array of strings", ctx);
  return std::nullopt;
}

void read_watch(const toml::node& node, std::string_view key, const Context& ctx, Settings& s) {
  Watch watch;
  if (const auto* b = node.as_boolean()) {
    watch.app_cwd = b->get();
  } else if (node.is_string() || node.is_array()) {
    auto paths = read_string_list(node, key, ctx, true);
    if (!paths) return;
    watch.paths = std::move(*paths);
  } else {
    type_error(node, key, "true, a path or an array of paths", ctx);
    return;
  }
  s.watch = std::move(watch);
}

// Assigns `value` to `field` when the reader succeeded.
template <class T, class U>
void set(std::optional<T>& field, std::optional<U>&& value) {
  if (value) field = std::move(*value);
}

// Every key an app (or [defaults]) may hold, in the order to_toml writes them.
constexpr Key kAppKeys[] = {
    {"name",
     [](const toml::node& n, std::string_view k, const Context& c, Settings& s) {
       auto name = read_string(n, k, c);
       if (name && name->empty()) {
         c.error(n, std::string(k) + ": must not be empty");
         return;
       }
       set(s.name, std::move(name));
       s.name_node = &n;
     }},
    {"cmd", read_cmd},
    {"cwd", [](const toml::node& n, std::string_view k, const Context& c,
               Settings& s) { set(s.cwd, read_path(n, k, c)); }},
    {"env", read_env},
    {"env_file", read_env_file_key},
    {"env_inherit", [](const toml::node& n, std::string_view k, const Context& c,
                       Settings& s) { set(s.env_inherit, read_bool(n, k, c)); }},
    {"autostart", [](const toml::node& n, std::string_view k, const Context& c,
                     Settings& s) { set(s.autostart, read_bool(n, k, c)); }},
    {"user", [](const toml::node& n, std::string_view k, const Context& c,
                Settings& s) { set(s.user, read_string(n, k, c)); }},
    {"group", [](const toml::node& n, std::string_view k, const Context& c,
                 Settings& s) { set(s.group, read_string(n, k, c)); }},
    {"umask", read_umask},
    {"restart", read_restart},
    {"max_restarts", [](const toml::node& n, std::string_view k, const Context& c,
                        Settings& s) { set(s.max_restarts, read_count(n, k, c)); }},
    {"min_uptime", [](const toml::node& n, std::string_view k, const Context& c,
                      Settings& s) { set(s.min_uptime, read_duration(n, k, c)); }},
    {"restart_delay", [](const toml::node& n, std::string_view k, const Context& c,
                         Settings& s) { set(s.restart_delay, read_duration(n, k, c)); }},
    {"backoff_max", [](const toml::node& n, std::string_view k, const Context& c,
                       Settings& s) { set(s.backoff_max, read_positive_duration(n, k, c)); }},
    {"kill_signal", read_kill_signal},
    {"kill_timeout", [](const toml::node& n, std::string_view k, const Context& c,
                        Settings& s) { set(s.kill_timeout, read_positive_duration(n, k, c)); }},
    {"out", [](const toml::node& n, std::string_view k, const Context& c,
               Settings& s) { set(s.out, read_path(n, k, c)); }},
    {"err", [](const toml::node& n, std::string_view k, const Context& c,
               Settings& s) { set(s.err, read_path(n, k, c)); }},
    {"log", [](const toml::node& n, std::string_view k, const Context& c,
               Settings& s) { set(s.log, read_path(n, k, c)); }},
    {"append", [](const toml::node& n, std::string_view k, const Context& c,
                  Settings& s) { set(s.append, read_bool(n, k, c)); }},
    {"log_max_size", [](const toml::node& n, std::string_view k, const Context& c,
                        Settings& s) { set(s.log_max_size, read_size(n, k, c)); }},
    {"log_keep", [](const toml::node& n, std::string_view k, const Context& c,
                    Settings& s) { set(s.log_keep, read_count(n, k, c)); }},
    {"log_timestamps", [](const toml::node& n, std::string_view k, const Context& c,
                          Settings& s) { set(s.log_timestamps, read_bool(n, k, c)); }},
    {"watch", read_watch},
    {"watch_ignore", [](const toml::node& n, std::string_view k, const Context& c,
                        Settings& s) { set(s.watch_ignore, read_string_list(n, k, c, false)); }},
    {"watch_debounce", [](const toml::node& n, std::string_view k, const Context& c,
                          Settings& s) { set(s.watch_debounce, read_duration(n, k, c)); }},
    {"pid_file", [](const toml::node& n, std::string_view k, const Context& c,
                    Settings& s) { set(s.pid_file, read_path(n, k, c)); }},
    {"interpreter", [](const toml::node& n, std::string_view k, const Context& c,
                       Settings& s) { set(s.interpreter, read_string(n, k, c)); }},
    {"ready", [](const toml::node& n, std::string_view k, const Context& c,
                 Settings& s) { set(s.ready, read_string(n, k, c)); }},
};

std::vector<std::string_view> names_of(const Key* begin, const Key* end,
                                       std::initializer_list<std::string_view> except = {}) {
  std::vector<std::string_view> names;
  for (const Key* k = begin; k != end; ++k) {
    if (std::find(except.begin(), except.end(), k->name) == except.end()) names.push_back(k->name);
  }
  return names;
}

Settings read_settings(const toml::table& table, bool is_defaults, const Context& ctx) {
  Settings s;
  const auto known = is_defaults
                         ? names_of(std::begin(kAppKeys), std::end(kAppKeys), {"name", "cmd"})
                         : names_of(std::begin(kAppKeys), std::end(kAppKeys));
  const toml::key* log_key = nullptr;
  bool has_out_or_err = false;
  for (const Entry& e : in_file_order(table)) {
    const std::string_view name = e.key->str();
    const Key* key = std::find_if(std::begin(kAppKeys), std::end(kAppKeys),
                                  [&](const Key& k) { return k.name == name; });
    if (is_defaults && (name == "name" || name == "cmd")) {
      ctx.error(e.key->source(),
                std::string(name) + ": not allowed in [defaults]; each app sets its own");
      continue;
    }
    if (key == std::end(kAppKeys)) {
      ctx.error(e.key->source(), unknown_key_message(name, known, ""));
      continue;
    }
    key->read(*e.node, name, ctx, s);
    if (name == "log") log_key = e.key;
    if (name == "out" || name == "err") has_out_or_err = true;
  }
  if (log_key != nullptr && has_out_or_err) {
    ctx.error(log_key->source(),
              "log: cannot be combined with out or err (log is both streams in one file)");
  }
  return s;
}

template <class T>
void inherit(std::optional<T>& field, const std::optional<T>& fallback) {
  if (!field) field = fallback;
}

// The app's settings with [defaults] filling what it leaves unset.
Settings with_defaults(Settings app, const Settings& defaults) {
  inherit(app.cwd, defaults.cwd);
  std::vector<std::string> env = defaults.env;
  for (const auto& kv : app.env) set_env(env, kv);
  app.env = std::move(env);
  inherit(app.env_file_vars, defaults.env_file_vars);
  inherit(app.env_inherit, defaults.env_inherit);
  inherit(app.autostart, defaults.autostart);
  inherit(app.user, defaults.user);
  inherit(app.group, defaults.group);
  inherit(app.umask, defaults.umask);
  inherit(app.restart, defaults.restart);
  inherit(app.max_restarts, defaults.max_restarts);
  inherit(app.min_uptime, defaults.min_uptime);
  inherit(app.restart_delay, defaults.restart_delay);
  inherit(app.backoff_max, defaults.backoff_max);
  inherit(app.kill_signal, defaults.kill_signal);
  inherit(app.kill_timeout, defaults.kill_timeout);
  if (!app.log && !app.out && !app.err) {
    app.out = defaults.out;
    app.err = defaults.err;
    app.log = defaults.log;
  }
  inherit(app.append, defaults.append);
  inherit(app.log_max_size, defaults.log_max_size);
  inherit(app.log_keep, defaults.log_keep);
  inherit(app.log_timestamps, defaults.log_timestamps);
  inherit(app.watch, defaults.watch);
  inherit(app.watch_ignore, defaults.watch_ignore);
  inherit(app.watch_debounce, defaults.watch_debounce);
  inherit(app.pid_file, defaults.pid_file);
  inherit(app.interpreter, defaults.interpreter);
  inherit(app.ready, defaults.ready);
  return app;
}

MonitorOptions to_monitor_options(const Settings& s, const std::vector<std::string>& base_env,
                                  const Context& ctx) {
  MonitorOptions m;
  m.argv = *s.cmd;
  m.cwd = s.cwd && !s.cwd->empty() ? *s.cwd : ctx.dir.lexically_normal().string();
  if (s.env_inherit.value_or(true)) m.env = base_env;
  if (s.env_file_vars) {
    for (const auto& kv : *s.env_file_vars) set_env(m.env, kv);
  }
  for (const auto& kv : s.env) set_env(m.env, kv);
  m.user = s.user.value_or("");
  m.group = s.group.value_or("");
  m.umask = s.umask;
  m.restart = s.restart.value_or(m.restart);
  m.max_restarts = s.max_restarts;
  m.min_uptime = s.min_uptime.value_or(m.min_uptime);
  m.restart_delay = s.restart_delay.value_or(m.restart_delay);
  m.backoff_max = s.backoff_max.value_or(m.backoff_max);
  m.kill_signal = s.kill_signal.value_or(m.kill_signal);
  m.kill_timeout = s.kill_timeout.value_or(m.kill_timeout);
  if (s.log && !s.log->empty()) {
    m.logs.out_path = *s.log;
    m.logs.err_path = *s.log;
  } else {
    m.logs.out_path = s.out.value_or("");
    m.logs.err_path = s.err.value_or("");
  }
  m.logs.append = s.append.value_or(m.logs.append);
  m.logs.max_size = s.log_max_size.value_or(m.logs.max_size);
  m.logs.keep = s.log_keep.value_or(m.logs.keep);
  m.logs.timestamps = s.log_timestamps.value_or(m.logs.timestamps);
  if (s.watch) {
    m.watch = s.watch->paths;
    if (s.watch->app_cwd) m.watch = {m.cwd};
  }
  m.watch_ignore = s.watch_ignore.value_or(std::vector<std::string>{});
  m.watch_debounce = s.watch_debounce.value_or(m.watch_debounce);
  m.pid_file = s.pid_file.value_or("");
  m.interpreter = s.interpreter.value_or("");
  m.ready = s.ready.value_or("");
  return m;
}

void read_apps(const toml::table& root, const std::vector<std::string>& base_env,
               const Context& ctx, const Settings& home_defaults, std::vector<AppSpec>& apps) {
  static constexpr std::string_view kTopLevel[] = {"app", "defaults"};
  Settings defaults;
  const toml::array* app_array = nullptr;
  for (const Entry& e : in_file_order(root)) {
    const std::string_view name = e.key->str();
    if (name == "defaults") {
      if (const auto* table = e.node->as_table()) {
        defaults = read_settings(*table, true, ctx);
      } else {
        type_error(*e.node, name, "a table ([defaults])", ctx);
      }
    } else if (name == "app") {
      app_array = e.node->as_array();
      if (app_array == nullptr) type_error(*e.node, name, "an array of tables ([[app]])", ctx);
    } else {
      ctx.error(e.key->source(),
                unknown_key_message(name, {std::begin(kTopLevel), std::end(kTopLevel)}, ""));
    }
  }
  if (app_array == nullptr) return;
  // config.toml's [defaults] lie beneath the file's own.
  defaults = with_defaults(std::move(defaults), home_defaults);

  std::map<std::string, int> first_line;  // app name -> line of its [[app]]
  for (const toml::node& node : *app_array) {
    const auto* table = node.as_table();
    if (table == nullptr) {
      type_error(node, "app", "a table ([[app]])", ctx);
      continue;
    }
    const std::size_t errors_before = ctx.errors.size();
    Settings own = read_settings(*table, false, ctx);
    if (!own.cmd) {
      if (!table->contains("cmd")) {
        ctx.error(*table, "missing cmd: the program to run, e.g. cmd = [\"python3\", \"app.py\"]");
      }
      continue;
    }
    const toml::node* name_node = own.name_node;
    Settings s = with_defaults(std::move(own), defaults);
    AppSpec spec;
    spec.name = s.name ? *s.name : default_app_name(s.cmd->front());
    if (spec.name.empty()) {
      ctx.error(*table, "cannot derive a name from cmd; set name");
      continue;
    }
    const auto [first, inserted] =
        first_line.emplace(spec.name, static_cast<int>(table->source().begin.line));
    if (!inserted) {
      const toml::node& at =
          name_node != nullptr ? *name_node : static_cast<const toml::node&>(*table);
      ctx.error(at, "duplicate app name " + in_quotes(spec.name) +
                        " (first used by the app at line " + std::to_string(first->second) + ")");
      continue;
    }
    if (ctx.errors.size() != errors_before) continue;
    spec.monitor = to_monitor_options(s, base_env, ctx);
    spec.autostart = s.autostart.value_or(true);
    if (auto st = validate(spec.monitor); !st) {
      ctx.error(*table, "app " + in_quotes(spec.name) + ": " + st.error().message);
      continue;
    }
    apps.push_back(std::move(spec));
  }
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  if (ec) p = path;
  return p.lexically_normal().string();
}

// --- writing -------------------------------------------------------------------

// A TOML basic string: UTF-8 passes through, control characters are escaped.
std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if ((static_cast<unsigned char>(c) < 0x20) || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x",
                        static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string toml_key(std::string_view key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  return bare ? std::string(key) : toml_string(key);
}

std::string toml_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += toml_string(items[i]);
  }
  return out + "]";
}

std::string octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%03o", static_cast<unsigned>(mode));
  return buf;
}

// The [defaults] table of SEMPRE_HOME/config.toml, or none. Its errors are
// added to `errors`, named by that file.
Settings read_home_defaults(const std::string& config_path, std::vector<ConfigError>& errors) {
  Settings none;
  std::error_code ec;
  if (config_path.empty() || !fs::exists(config_path, ec)) return none;
  const Context ctx{config_path, fs::path(absolute_path(config_path)).parent_path(), errors};
  toml::table root;
  try {
    root = toml::parse_file(config_path);
  } catch (const toml::parse_error& e) {
    ctx.error(e.source(), std::string(e.description()));
    return none;
  }
  const toml::node* table = root.get("defaults");
  if (table == nullptr) return none;
  if (!table->is_table()) {
    type_error(*table, "defaults", "a table ([defaults])", ctx);
    return none;
  }
  return read_settings(*table->as_table(), true, ctx);
}

}  // namespace

std::string ConfigError::str() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

AppsFile parse_apps(std::string_view text, const std::string& path,
                    const std::vector<std::string>& base_env, const std::string& home_config) {
  AppsFile result;
  result.path = absolute_path(path);
  const Settings home_defaults = read_home_defaults(home_config, result.errors);
  if (!result.errors.empty()) return result;
  const Context ctx{path, fs::path(result.path).parent_path(), result.errors};
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& e) {
    ctx.error(e.source(), std::string(e.description()));
    return result;
  }
  read_apps(root, base_env, ctx, home_defaults, result.apps);
  if (!result.errors.empty()) result.apps.clear();
  return result;
}

std::vector<std::string> load_env_file(const std::string& path, std::vector<ConfigError>& errors) {
  std::ifstream in(path);
  if (!in) {
    errors.push_back(ConfigError{path, 0, 0, std::string("cannot read: ") + std::strerror(errno)});
    return {};
  }
  std::ostringstream text;
  text << in.rdbuf();
  return read_env_file(path, text.str(), errors);
}

AppsFile load_apps_file(const std::string& path, const std::vector<std::string>& base_env,
                        const std::string& home_config) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    AppsFile result;
    result.path = absolute_path(path);
    result.errors.push_back(
        ConfigError{path, 0, 0, std::string("cannot read: ") + std::strerror(errno)});
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  return parse_apps(text.str(), path, base_env, home_config);
}

std::string to_toml(const std::vector<AppSpec>& apps) {
  std::string out = "# sempre apps file (see sempre.toml(5)).\n";
  for (const AppSpec& app : apps) {
    const MonitorOptions& m = app.monitor;
    auto line = [&out](std::string_view key, const std::string& value) {
      out += key;
      out += " = ";
      out += value;
      out += '\n';
    };
    auto line_if = [&](std::string_view key, const std::string& value) {
      if (!value.empty()) line(key, toml_string(value));
    };
    out += "\n[[app]]\n";
    line("name", toml_string(app.name));
    line("cmd", toml_array(m.argv));
    line("cwd", toml_string(m.cwd));
    line_if("interpreter", m.interpreter);
    line_if("user", m.user);
    line_if("group", m.group);
    if (m.umask) line("umask", toml_string(octal(*m.umask)));
    line("restart", toml_string(restart_mode_name(m.restart)));
    if (m.max_restarts) line("max_restarts", std::to_string(*m.max_restarts));
    line("min_uptime", toml_string(format_duration(m.min_uptime)));
    line("restart_delay", toml_string(format_duration(m.restart_delay)));
    line("backoff_max", toml_string(format_duration(m.backoff_max)));
    line("kill_signal", toml_string(signal_name(m.kill_signal)));
    line("kill_timeout", toml_string(format_duration(m.kill_timeout)));
    if (!m.logs.out_path.empty() && m.logs.out_path == m.logs.err_path) {
      line("log", toml_string(m.logs.out_path));
    } else {
      line_if("out", m.logs.out_path);
      line_if("err", m.logs.err_path);
    }
    line("append", m.logs.append ? "true" : "false");
    line("log_max_size", std::to_string(m.logs.max_size));
    line("log_keep", std::to_string(m.logs.keep));
    line("log_timestamps", m.logs.timestamps ? "true" : "false");
    line("watch", toml_array(m.watch));
    line("watch_ignore", toml_array(m.watch_ignore));
    if (m.watch_debounce != kDefaultWatchDebounce) {
      line("watch_debounce", toml_string(format_duration(m.watch_debounce)));
    }
    line_if("pid_file", m.pid_file);
    line_if("ready", m.ready);
    line("env_inherit", "false");
    if (!app.autostart) line("autostart", "false");
    out += "\n[app.env]\n";
    for (const std::string& kv : m.env) {
      const std::size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) continue;
      line(toml_key(std::string_view(kv).substr(0, eq)),
           toml_string(std::string_view(kv).substr(eq + 1)));
    }
  }
  return out;
}

DaemonSettings load_daemon_settings(const std::string& path) {
  DaemonSettings settings;
  std::error_code ec;
  if (!fs::exists(path, ec)) return settings;
  const Context ctx{path, fs::path(absolute_path(path)).parent_path(), settings.errors};
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    ctx.error(e.source(), std::string(e.description()));
    return settings;
  }
  static constexpr std::string_view kTopLevel[] = {"daemon", "defaults", "list"};
  static constexpr std::string_view kDaemonKeys[] = {"log_max_size", "log_keep"};
  static constexpr std::string_view kListKeys[] = {"columns", "sort"};
  for (const Entry& e : in_file_order(root)) {
    const std::string_view name = e.key->str();
    if (name == "defaults") {
      if (const auto* defaults = e.node->as_table()) {
        read_settings(*defaults, true, ctx);  // checked here too, so the daemon refuses bad ones
      } else {
        type_error(*e.node, name, "a table ([defaults])", ctx);
      }
      continue;
    }
    if (name == "list") {
      const auto* list = e.node->as_table();
      if (list == nullptr) {
        type_error(*e.node, name, "a table ([list])", ctx);
        continue;
      }
      for (const Entry& d : in_file_order(*list)) {
        const std::string_view key = d.key->str();
        if (key == "columns") {
          if (auto text = read_string(*d.node, key, ctx)) settings.list_columns = *text;
        } else if (key == "sort") {
          if (auto text = read_string(*d.node, key, ctx)) settings.list_sort = *text;
        } else {
          ctx.error(d.key->source(),
                    unknown_key_message(key, {std::begin(kListKeys), std::end(kListKeys)}, "[list]"));
        }
      }
      continue;
    }
    if (name != "daemon") {
      ctx.error(e.key->source(),
                unknown_key_message(name, {std::begin(kTopLevel), std::end(kTopLevel)}, ""));
      continue;
    }
    const auto* table = e.node->as_table();
    if (table == nullptr) {
      type_error(*e.node, name, "a table ([daemon])", ctx);
      continue;
    }
    for (const Entry& d : in_file_order(*table)) {
      const std::string_view key = d.key->str();
      if (key == "log_max_size") {
        if (auto size = read_size(*d.node, key, ctx)) settings.log_max_size = *size;
      } else if (key == "log_keep") {
        if (auto keep = read_count(*d.node, key, ctx)) settings.log_keep = *keep;
      } else {
        ctx.error(
            d.key->source(),
            unknown_key_message(key, {std::begin(kDaemonKeys), std::end(kDaemonKeys)}, "[daemon]"));
      }
    }
  }
  if (!settings.errors.empty()) {
    DaemonSettings defaults;
    defaults.errors = std::move(settings.errors);
    return defaults;
  }
  return settings;
}

AppDefaults load_app_defaults(const std::string& home_config,
                              const std::vector<std::string>& base_env) {
  AppDefaults result;
  Settings settings = read_home_defaults(home_config, result.errors);
  if (!result.errors.empty()) return result;
  const bool has_cwd = settings.cwd.has_value();
  settings.cmd = std::vector<std::string>{};
  const Context ctx{home_config, fs::path(absolute_path(home_config)).parent_path(), result.errors};
  result.options = to_monitor_options(settings, base_env, ctx);
  // Without a cwd in [defaults], `sempre start` runs the app where it is typed.
  if (!has_cwd) result.options.cwd.clear();
  return result;
}

}  // namespace sempre

#include "app_config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "option_schema.hpp"

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
// - Every key that is a row of the option schema (common/option_schema.hpp)
//   is read by its kind, with the same checks as its command-line flag; the
//   other keys are read here by hand.

namespace sempre {
namespace {

namespace fs = std::filesystem;

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
// converted; unset keys are empty. The rows of the option schema keep their
// values in `values`, and `given` says which the table set.
struct Settings {
  Settings() : given(option_rows().size(), false) {}

  std::optional<std::string> name;
  const toml::node* name_node = nullptr;
  std::optional<std::vector<std::string>> cmd;
  std::optional<std::string> cwd;
  std::vector<std::string> env;  // "K=V" from the env table, in file order
  std::optional<std::vector<std::string>> env_file_vars;
  std::optional<bool> env_inherit;
  std::optional<std::string> out;
  std::optional<std::string> err;
  std::optional<std::string> log;
  std::optional<Watch> watch;
  AppSpec values;
  std::vector<bool> given;
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

// An env file is read whole, so it must be a regular file of a sane size:
// /dev/zero would take every byte of memory, a FIFO would block the daemon.
constexpr std::size_t kMaxEnvFile = 1 << 20;

// Reads the regular file at `path` (at most kMaxEnvFile bytes) into `text`;
// returns why it cannot, or "" when it could.
std::string read_small_file(const std::string& path, std::string& text) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return std::strerror(errno);
  struct stat st {};
  std::string problem;
  if (::fstat(fd, &st) != 0) {
    problem = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    problem = "not a regular file";
  } else if (static_cast<std::uint64_t>(st.st_size) > kMaxEnvFile) {
    problem = "larger than 1 MiB";
  } else {
    char buffer[8192];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        problem = std::strerror(errno);
        break;
      }
      if (n == 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
      if (text.size() > kMaxEnvFile) {
        problem = "larger than 1 MiB";
        break;
      }
    }
  }
  ::close(fd);
  return problem;
}

void read_env_file_key(const toml::node& node, std::string_view key, const Context& ctx,
                       Settings& s) {
  auto path = read_path(node, key, ctx);
  if (!path) return;
  if (path->empty()) {
    s.env_file_vars.emplace();
    return;
  }
  std::string text;
  if (auto problem = read_small_file(*path, text); !problem.empty()) {
    ctx.error(node, std::string(key) + ": cannot read " + in_quotes(*path) + ": " + problem);
    return;
  }
  const std::size_t before = ctx.errors.size();
  auto vars = read_env_file(*path, text, ctx.errors);
  if (ctx.errors.size() == before) s.env_file_vars = std::move(vars);
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

// A mode in octal: a string ("022") or an integer written in octal (0o022).
std::optional<std::string> read_octal(const toml::node& node, std::string_view key,
                                      const Context& ctx) {
  if (const auto* text = node.as_string()) {
    const std::string& t = text->get();
    // A sign or blank would slip past the number's parser.
    if (t.find_first_of("+- \t") != std::string::npos) {
      ctx.error(node,
                std::string(key) + ": expected an octal mode such as \"022\", got " + in_quotes(t));
      return std::nullopt;
    }
    return t;
  }
  if (const auto* i = node.as_integer()) {
    const bool octal = (i->flags() & toml::value_flags::format_as_octal) != toml::value_flags::none;
    if (!octal && i->get() != 0) {
      ctx.error(node, std::string(key) + ": write the mode in octal, as 0o" +
                          std::to_string(i->get()) + " or \"" + std::to_string(i->get()) + "\"");
      return std::nullopt;
    }
    if (i->get() < 0 || i->get() > 0777) {
      ctx.error(node, std::string(key) + ": expected a mode from 0o000 to 0o777");
      return std::nullopt;
    }
    char buf[8];
    std::snprintf(buf, sizeof buf, "%o", static_cast<unsigned>(i->get()));
    return std::string(buf);
  }
  type_error(node, key, "an octal mode (a string such as \"022\" or an integer such as 0o022)",
             ctx);
  return std::nullopt;
}

// A key of the option schema: the node is checked for the row's kind, then
// its value set as the command line's text would be.
void read_option(const OptionRow& row, const toml::node& node, const Context& ctx, Settings& s) {
  const std::string_view key = row.key;
  std::optional<std::string> text;  // to set as the command line would
  bool set = false;                 // or set here already
  switch (row.kind) {
    case OptionKind::kText:
      text = read_string(node, key, ctx);
      break;
    case OptionKind::kPath:
      if (auto path = read_path(node, key, ctx)) {
        field_of<std::string>(row, s.values) = *path;
        set = true;
      }
      break;
    case OptionKind::kFlag:
      if (auto b = read_bool(node, key, ctx)) {
        field_of<bool>(row, s.values) = *b;
        set = true;
      }
      break;
    case OptionKind::kCount:
      if (auto n = read_count(node, key, ctx)) text = std::to_string(*n);
      break;
    case OptionKind::kInteger:
      if (const auto* i = node.as_integer()) {
        text = std::to_string(i->get());
      } else {
        type_error(node, key, "an integer", ctx);
      }
      break;
    case OptionKind::kDuration:
      if (auto d = read_duration(node, key, ctx)) {
        field_of<Millis>(row, s.values) = *d;
        set = true;
      }
      break;
    case OptionKind::kSize:
      if (auto size = read_size(node, key, ctx)) {
        field_of<std::uint64_t>(row, s.values) = *size;
        set = true;
      }
      break;
    case OptionKind::kSignal:
      if (const auto* str = node.as_string()) {
        text = str->get();
      } else if (const auto* i = node.as_integer()) {
        text = std::to_string(i->get());
      } else {
        type_error(node, key, "a signal (a name such as \"TERM\" or a number)", ctx);
      }
      break;
    case OptionKind::kOctal:
      text = read_octal(node, key, ctx);
      break;
    case OptionKind::kRestart:
      text = read_string(node, key, ctx);
      break;
    case OptionKind::kList:
      if (auto items = read_string_list(node, key, ctx, false)) {
        field_of<std::vector<std::string>>(row, s.values) = std::move(*items);
        set = true;
      }
      break;
  }
  if (text) {
    if (auto st = set_from_text(row, *text, s.values, ctx.dir.string()); !st) {
      ctx.error(node, std::string(key) + ": " + st.error().message);
      return;
    }
    set = true;
  }
  if (!set) return;
  if (auto st = check_value(row, s.values); !st) {
    ctx.error(node, std::string(key) + ": " + st.error().message);
    return;
  }
  s.given[static_cast<std::size_t>(&row - option_rows().data())] = true;
}

// Assigns `value` to `field` when the reader succeeded.
template <class T, class U>
void set(std::optional<T>& field, std::optional<U>&& value) {
  if (value) field = std::move(*value);
}

// The keys an app (or [defaults]) may hold beside the rows of the option
// schema.
constexpr Key kSpecialKeys[] = {
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
    {"out", [](const toml::node& n, std::string_view k, const Context& c,
               Settings& s) { set(s.out, read_path(n, k, c)); }},
    {"err", [](const toml::node& n, std::string_view k, const Context& c,
               Settings& s) { set(s.err, read_path(n, k, c)); }},
    {"log", [](const toml::node& n, std::string_view k, const Context& c,
               Settings& s) { set(s.log, read_path(n, k, c)); }},
    {"watch", read_watch},
};

// Every key an app may hold (but `name` and `cmd` for [defaults]).
std::vector<std::string_view> app_keys(bool is_defaults) {
  std::vector<std::string_view> names;
  for (const Key& k : kSpecialKeys) {
    if (!is_defaults || (k.name != "name" && k.name != "cmd")) names.push_back(k.name);
  }
  for (const OptionRow& row : option_rows()) names.push_back(row.key);
  return names;
}

Settings read_settings(const toml::table& table, bool is_defaults, const Context& ctx) {
  Settings s;
  const auto known = app_keys(is_defaults);
  const toml::key* log_key = nullptr;
  bool has_out_or_err = false;
  for (const Entry& e : in_file_order(table)) {
    const std::string_view name = e.key->str();
    const Key* key = std::find_if(std::begin(kSpecialKeys), std::end(kSpecialKeys),
                                  [&](const Key& k) { return k.name == name; });
    const OptionRow* row = find_option(name);
    if (is_defaults && (name == "name" || name == "cmd")) {
      ctx.error(e.key->source(),
                std::string(name) + ": not allowed in [defaults]; each app sets its own");
      continue;
    }
    if (row != nullptr) {
      read_option(*row, *e.node, ctx, s);
      continue;
    }
    if (key == std::end(kSpecialKeys)) {
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
  if (!app.log && !app.out && !app.err) {
    app.out = defaults.out;
    app.err = defaults.err;
    app.log = defaults.log;
  }
  inherit(app.watch, defaults.watch);
  const auto rows = option_rows();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (app.given[i] || !defaults.given[i]) continue;
    copy_value(rows[i], defaults.values, app.values);
    app.given[i] = true;
  }
  return app;
}

// The spec the settings describe (its name aside).
AppSpec to_app_spec(const Settings& s, const std::vector<std::string>& base_env,
                    const Context& ctx) {
  AppSpec spec;
  for (const OptionRow& row : option_rows()) copy_value(row, s.values, spec);
  MonitorOptions& m = spec.monitor;
  m.argv = *s.cmd;
  m.cwd = s.cwd && !s.cwd->empty() ? *s.cwd : ctx.dir.lexically_normal().string();
  if (s.env_inherit.value_or(true)) m.env = base_env;
  if (s.env_file_vars) {
    for (const auto& kv : *s.env_file_vars) set_env(m.env, kv);
  }
  for (const auto& kv : s.env) set_env(m.env, kv);
  if (s.log && !s.log->empty()) {
    m.logs.out_path = *s.log;
    m.logs.err_path = *s.log;
  } else {
    m.logs.out_path = s.out.value_or("");
    m.logs.err_path = s.err.value_or("");
  }
  if (s.watch) {
    m.watch = s.watch->paths;
    if (s.watch->app_cwd) m.watch = {m.cwd};
  }
  return spec;
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
    const std::string name = std::move(spec.name);
    spec = to_app_spec(s, base_env, ctx);
    spec.name = name;
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

// A row's value as a TOML value, or nullopt when it is an empty string or
// an unset optional (the file then says nothing of it).
std::optional<std::string> toml_value(const OptionRow& row, const AppSpec& spec) {
  if (row.save_if_changed && same_value(row, spec, AppSpec{})) return std::nullopt;
  switch (row.kind) {
    case OptionKind::kText:
    case OptionKind::kPath: {
      const std::string& text = field_of<std::string>(row, spec);
      if (text.empty()) return std::nullopt;
      return toml_string(text);
    }
    case OptionKind::kFlag:
      return field_of<bool>(row, spec) ? "true" : "false";
    case OptionKind::kCount:
    case OptionKind::kInteger: {
      const auto n = integer_value(row, spec);
      if (!n) return std::nullopt;
      return std::to_string(*n);
    }
    case OptionKind::kDuration:
      return toml_string(format_duration(field_of<Millis>(row, spec)));
    case OptionKind::kSize:
      return std::to_string(field_of<std::uint64_t>(row, spec));
    case OptionKind::kSignal:
      return toml_string(signal_name(field_of<int>(row, spec)));
    case OptionKind::kOctal: {
      const auto& mode = field_of<std::optional<mode_t>>(row, spec);
      if (!mode) return std::nullopt;
      return toml_string(octal(*mode));
    }
    case OptionKind::kRestart:
      return toml_string(restart_mode_name(field_of<RestartMode>(row, spec)));
    case OptionKind::kList:
      return toml_array(field_of<std::vector<std::string>>(row, spec));
  }
  return std::nullopt;
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
  std::string text;
  if (auto problem = read_small_file(path, text); !problem.empty()) {
    errors.push_back(ConfigError{path, 0, 0, "cannot read: " + problem});
    return {};
  }
  return read_env_file(path, text, errors);
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
  auto line = [&out](std::string_view key, const std::string& value) {
    out += key;
    out += " = ";
    out += value;
    out += '\n';
  };
  for (const AppSpec& app : apps) {
    const MonitorOptions& m = app.monitor;
    out += "\n[[app]]\n";
    line("name", toml_string(app.name));
    line("cmd", toml_array(m.argv));
    line("cwd", toml_string(m.cwd));
    if (!m.logs.out_path.empty() && m.logs.out_path == m.logs.err_path) {
      line("log", toml_string(m.logs.out_path));
    } else {
      if (!m.logs.out_path.empty()) line("out", toml_string(m.logs.out_path));
      if (!m.logs.err_path.empty()) line("err", toml_string(m.logs.err_path));
    }
    line("watch", toml_array(m.watch));
    for (const OptionRow& row : option_rows()) {
      if (auto value = toml_value(row, app)) line(row.key, *value);
    }
    line("env_inherit", "false");
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
  static constexpr std::string_view kDaemonKeys[] = {"log_max_size", "log_keep", "max_clients",
                                                     "cgroups"};
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
          ctx.error(
              d.key->source(),
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
      } else if (key == "max_clients") {
        if (auto n = read_count(*d.node, key, ctx)) {
          if (*n == 0) {
            ctx.error(*d.node, "max_clients: must be 1 or more");
          } else {
            settings.max_clients = static_cast<std::size_t>(*n);
          }
        }
      } else if (key == "cgroups") {
        if (auto b = read_bool(*d.node, key, ctx)) settings.cgroups = *b;
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
  result.options = to_app_spec(settings, base_env, ctx).monitor;
  // Without a cwd in [defaults], `sempre start` runs the app where it is typed.
  if (!has_cwd) result.options.cwd.clear();
  return result;
}

}  // namespace sempre

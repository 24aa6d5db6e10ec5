#include "sempre/program.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <string_view>

extern char** environ;

namespace sempre {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDefaultPath = "/usr/local/bin:/usr/bin:/bin";

std::string_view path_variable(const std::vector<std::string>& env) {
  // The last definition wins, as getenv would see it after putenv.
  std::string_view path = kDefaultPath;
  for (const std::string& entry : env) {
    if (entry.rfind("PATH=", 0) == 0) path = std::string_view(entry).substr(5);
  }
  return path;
}

// The directory relative names are resolved against: `cwd` itself made
// absolute, or the caller's working directory.
fs::path base_directory(const std::string& cwd) {
  std::error_code ec;
  fs::path here = fs::current_path(ec);
  if (cwd.empty()) return here;
  return (here / cwd).lexically_normal();
}

enum class FileCheck { kMissing, kExecutable, kNotExecutable };

// What exec would make of `path`: a directory or a file without an execute
// bit for us cannot be run, but the latter may still be a script.
FileCheck check_file(const fs::path& path, bool* regular) {
  struct stat st {};
  *regular = false;
  if (::stat(path.c_str(), &st) != 0) return FileCheck::kMissing;
  *regular = S_ISREG(st.st_mode);
  if (*regular && ::faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) == 0) {
    return FileCheck::kExecutable;
  }
  return FileCheck::kNotExecutable;
}

// The interpreter a script's extension names, or "" for none.
std::string_view interpreter_for(const fs::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".js" || ext == ".mjs" || ext == ".cjs") return "node";
  if (ext == ".py") return "python3";
  if (ext == ".sh") return "sh";
  if (ext == ".rb") return "ruby";
  if (ext == ".pl") return "perl";
  if (ext == ".php") return "php";
  return {};
}

// Searches PATH the way execvp does: the first executable regular file wins;
// when none is found but a candidate exists that cannot be executed, the
// error is EACCES rather than ENOENT. An empty PATH element is the base dir.
Result<fs::path> search_path(const std::string& name, std::string_view path_var,
                             const fs::path& base) {
  bool saw_unexecutable = false;
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = path_var.find(':', start);
    std::string_view dir = path_var.substr(
        start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    fs::path candidate = ((dir.empty() ? base : base / fs::path(dir)) / name).lexically_normal();
    bool regular = false;
    switch (check_file(candidate, &regular)) {
      case FileCheck::kExecutable:
        return candidate;
      case FileCheck::kNotExecutable:
        saw_unexecutable = true;
        break;
      case FileCheck::kMissing:
        break;
    }
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return os_error(saw_unexecutable ? EACCES : ENOENT, name);
}

// Resolves a program that must be executable itself (no script fallback):
// a path when it holds a '/', else a PATH search.
Result<fs::path> resolve_executable(const std::string& name, std::string_view path_var,
                                    const fs::path& base) {
  if (name.find('/') == std::string::npos) return search_path(name, path_var, base);
  fs::path path = (base / name).lexically_normal();
  bool regular = false;
  switch (check_file(path, &regular)) {
    case FileCheck::kExecutable:
      return path;
    case FileCheck::kNotExecutable:
      return os_error(EACCES, name);
    case FileCheck::kMissing:
      break;
  }
  return os_error(ENOENT, name);
}

// {interpreter, script, args...}, with the interpreter found in PATH.
Result<std::vector<std::string>> with_interpreter(std::string_view interpreter,
                                                  const fs::path& script,
                                                  const std::vector<std::string>& argv,
                                                  std::string_view path_var, const fs::path& base) {
  auto found = search_path(std::string(interpreter), path_var, base);
  if (!found.ok()) {
    Error error = found.error();
    error.message = argv[0] + ": interpreter " + error.message;
    return error;
  }
  std::vector<std::string> out{found->string(), script.string()};
  out.insert(out.end(), argv.begin() + 1, argv.end());
  return out;
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    std::size_t start = i;
    while (i < text.size() && text[i] != ' ') ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

// With an explicit interpreter the program is its script: a path relative to
// the working directory, or (failing that) a name found in PATH. It only has
// to exist.
Result<std::vector<std::string>> resolve_with_explicit_interpreter(
    const std::vector<std::string>& argv, const std::string& interpreter, std::string_view path_var,
    const fs::path& base) {
  std::vector<std::string> words = split_words(interpreter);
  if (words.empty()) return Error{ErrorKind::kInvalidArgument, "empty interpreter", 0};
  auto exe = resolve_executable(words[0], path_var, base);
  if (!exe.ok()) return exe.error();

  const std::string& program = argv[0];
  fs::path script = (base / program).lexically_normal();
  bool regular = false;
  if (check_file(script, &regular) == FileCheck::kMissing) {
    if (program.find('/') != std::string::npos) return os_error(ENOENT, program);
    auto found = search_path(program, path_var, base);
    if (!found.ok()) return os_error(ENOENT, program);
    script = *found;
  }
  std::vector<std::string> out{exe->string()};
  out.insert(out.end(), words.begin() + 1, words.end());
  out.push_back(script.string());
  out.insert(out.end(), argv.begin() + 1, argv.end());
  return out;
}

// A file at `path` either runs itself or through the interpreter its
// extension names.
Result<std::vector<std::string>> run_file(const fs::path& path,
                                          const std::vector<std::string>& argv,
                                          std::string_view path_var, const fs::path& base) {
  bool regular = false;
  switch (check_file(path, &regular)) {
    case FileCheck::kExecutable: {
      std::vector<std::string> out{path.string()};
      out.insert(out.end(), argv.begin() + 1, argv.end());
      return out;
    }
    case FileCheck::kNotExecutable: {
      std::string_view interpreter = regular ? interpreter_for(path) : std::string_view{};
      if (interpreter.empty()) return os_error(EACCES, argv[0]);
      return with_interpreter(interpreter, path, argv, path_var, base);
    }
    case FileCheck::kMissing:
      break;
  }
  return os_error(ENOENT, argv[0]);
}

template <class Id>
bool parse_id(const std::string& text, Id* id) {
  unsigned long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  *id = static_cast<Id>(value);
  return static_cast<unsigned long>(*id) == value && *id != static_cast<Id>(-1);
}

std::size_t initial_buffer_size(int name) {
  long size = ::sysconf(name);
  return size > 0 ? static_cast<std::size_t>(size) : 16384;
}

// getpwnam_r/getpwuid_r/getgrnam_r share one calling pattern: retry with a
// larger buffer on ERANGE. Returns false when there is no such entry.
template <class Entry, class Lookup>
bool lookup_entry(int size_name, Lookup&& lookup, Entry* entry, std::vector<char>& buffer) {
  buffer.resize(initial_buffer_size(size_name));
  for (;;) {
    Entry* result = nullptr;
    int err = lookup(entry, buffer.data(), buffer.size(), &result);
    if (err == ERANGE && buffer.size() < (1u << 24)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    return err == 0 && result != nullptr;
  }
}

std::vector<gid_t> supplementary_groups(const char* user, gid_t gid) {
  int count = 32;
  std::vector<gid_t> groups;
  for (;;) {
    groups.resize(static_cast<std::size_t>(count));
    int want = count;
    if (::getgrouplist(user, gid, groups.data(), &want) >= 0) {
      groups.resize(static_cast<std::size_t>(want));
      return groups;
    }
    if (want <= count) want = count * 2;
    count = want;
  }
}

}  // namespace

Result<std::vector<std::string>> resolve_command(const std::vector<std::string>& argv,
                                                 const std::string& interpreter,
                                                 const std::vector<std::string>& env,
                                                 const std::string& cwd) {
  if (argv.empty() || argv[0].empty()) {
    return Error{ErrorKind::kInvalidArgument, "no program given", 0};
  }
  const std::string_view path_var = path_variable(env);
  const fs::path base = base_directory(cwd);
  if (!interpreter.empty()) {
    return resolve_with_explicit_interpreter(argv, interpreter, path_var, base);
  }

  const std::string& program = argv[0];
  if (program.find('/') != std::string::npos) {
    return run_file((base / program).lexically_normal(), argv, path_var, base);
  }
  auto found = search_path(program, path_var, base);
  if (found.ok()) {
    std::vector<std::string> out{found->string()};
    out.insert(out.end(), argv.begin() + 1, argv.end());
    return out;
  }
  // `sempre start server.js` or `sempre start worker` names a file in the
  // working directory, as forever and PM2 take it, though a shell would not
  // look there: PATH first, then that file.
  fs::path local = (base / program).lexically_normal();
  bool regular = false;
  if (check_file(local, &regular) != FileCheck::kMissing && regular) {
    return run_file(local, argv, path_var, base);
  }
  return found.error();
}

Result<std::optional<Credentials>> resolve_credentials(const std::string& user,
                                                       const std::string& group) {
  if (user.empty() && group.empty()) return std::optional<Credentials>();

  Credentials creds;
  creds.uid = ::geteuid();
  creds.gid = ::getegid();
  std::vector<char> buffer;

  if (!user.empty()) {
    struct passwd pw {};
    bool found = false;
    if (parse_id(user, &creds.uid)) {
      found = lookup_entry<struct passwd>(
          _SC_GETPW_R_SIZE_MAX,
          [&](struct passwd* e, char* b, std::size_t n, struct passwd** r) {
            return ::getpwuid_r(creds.uid, e, b, n, r);
          },
          &pw, buffer);
      // A uid with no passwd entry is allowed (containers often run such);
      // its group defaults to the same number.
      creds.gid = found ? pw.pw_gid : static_cast<gid_t>(creds.uid);
    } else {
      found = lookup_entry<struct passwd>(
          _SC_GETPW_R_SIZE_MAX,
          [&](struct passwd* e, char* b, std::size_t n, struct passwd** r) {
            return ::getpwnam_r(user.c_str(), e, b, n, r);
          },
          &pw, buffer);
      if (!found) return Error{ErrorKind::kNotFound, user + ": no such user", 0};
      creds.uid = pw.pw_uid;
      creds.gid = pw.pw_gid;
    }
    if (found) creds.groups = supplementary_groups(pw.pw_name, creds.gid);
  }

  if (!group.empty()) {
    if (!parse_id(group, &creds.gid)) {
      struct group gr {};
      bool found = lookup_entry<struct group>(
          _SC_GETGR_R_SIZE_MAX,
          [&](struct group* e, char* b, std::size_t n, struct group** r) {
            return ::getgrnam_r(group.c_str(), e, b, n, r);
          },
          &gr, buffer);
      if (!found) return Error{ErrorKind::kNotFound, group + ": no such group", 0};
      creds.gid = gr.gr_gid;
    }
    if (std::find(creds.groups.begin(), creds.groups.end(), creds.gid) == creds.groups.end()) {
      creds.groups.push_back(creds.gid);
    }
  }

  if (::geteuid() != 0) {
    // Without root the identity cannot change; asking for one's own is fine.
    if (creds.uid == ::geteuid() && creds.gid == ::getegid()) {
      return std::optional<Credentials>();
    }
    std::string who = user.empty() ? "group " + group : "user " + user;
    return Error{ErrorKind::kPermission, "running as " + who + " requires root", EPERM};
  }
  return std::optional<Credentials>(std::move(creds));
}

std::vector<std::string> current_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

}  // namespace sempre

#include "sempre/file_watcher.hpp"

#include <fnmatch.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

// How the contract in file_watcher.hpp is met, and the choices it leaves open:
// - A watched file is watched through its directory (filtered to its name),
//   so an editor that saves by writing a new file and renaming it over the old
//   one, or a delete followed by a re-create, is still seen.
// - Globs use fnmatch(3) without FNM_PATHNAME, so '*' also spans '/':
//   "build/*" ignores everything below build/, and "*.log" any .log file at any
//   depth. A path is ignored when a glob matches its path relative to the watch
//   root or its base name, or the same for any directory above it (a glob with
//   a trailing '/' matches directories only). A leading '/' is dropped and a
//   leading "**/" also matches at the top, as in .gitignore; '!' is not supported.
// - The dot rule and the globs apply below a watched directory, never to a
//   path named in `paths` itself (watching ~/.config/app works). ignore_paths
//   apply everywhere. Ignored directories get no inotify watch at all, which
//   keeps node_modules/ or .git/ from using up fs.inotify.max_user_watches.
// - `.sempreignore` is read when the watcher is created.
// - Symbolic links to directories inside a watched tree are not followed, so
//   a link cycle cannot make the watch set grow without end.
// - A watched directory that is itself deleted is reported once and then no
//   longer watched; nothing polls for it to come back.

namespace sempre {
namespace {

namespace fs = std::filesystem;

// What counts as a change. IN_ISDIR and IN_IGNORED come with these unasked.
constexpr std::uint32_t kChangeMask = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |
                                      IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF;

// Events are read in batches; a wakeup stops after this many reads so that a
// flood of changes cannot starve the rest of the executor.
constexpr int kReadsPerWakeup = 8;

// Absolute, lexically normal, without a trailing separator: the form every
// path is compared in.
fs::path normalize(const std::string& text) {
  std::error_code ec;
  fs::path path = fs::absolute(fs::path(text), ec);
  if (ec) path = fs::path(text);
  path = path.lexically_normal();
  if (!path.has_filename() && path != path.root_path()) path = path.parent_path();
  return path;
}

// Adds `glob` in the forms it is matched in (see the note at the top).
void add_glob(std::string glob, std::vector<std::string>& globs) {
  while (!glob.empty() && glob.front() == '/') glob.erase(0, 1);
  if (glob.empty()) return;
  if (glob.starts_with("**/") && glob.size() > 3) globs.push_back(glob.substr(3));
  globs.push_back(std::move(glob));
}

// The globs of `dir/.sempreignore`: one per line; blank lines and lines whose
// first non-blank character is '#' are skipped. A missing file is no globs.
void read_sempreignore(const fs::path& dir, std::vector<std::string>& globs) {
  std::ifstream in(dir / ".sempreignore");
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    add_glob(line.substr(first, last - first + 1), globs);
  }
}

bool any_glob_matches(const std::vector<std::string>& globs, const std::string& text) {
  for (const std::string& glob : globs) {
    if (::fnmatch(glob.c_str(), text.c_str(), 0) == 0) return true;
  }
  return false;
}

// One of the paths the caller asked to watch.
struct Root {
  fs::path path;
  bool is_dir = false;
  std::vector<std::string> globs;  // ignore_globs, then those of .sempreignore
};

// `rel` is a path below `root` (not empty, no ".." in it). Whether the dot rule
// or a glob hides it.
bool ignored_below(const Root& root, const fs::path& rel, bool is_dir) {
  std::string prefix;
  const auto last = std::prev(rel.end());
  for (auto it = rel.begin(); it != rel.end(); ++it) {
    const std::string name = it->string();
    if (name.starts_with('.')) return true;
    if (!prefix.empty()) prefix += '/';
    prefix += name;
    if (any_glob_matches(root.globs, prefix) || any_glob_matches(root.globs, name)) return true;
    const bool names_a_dir = it != last || is_dir;
    if (names_a_dir &&
        (any_glob_matches(root.globs, prefix + '/') || any_glob_matches(root.globs, name + '/'))) {
      return true;
    }
  }
  return false;
}

// `path` relative to `root` when it lies strictly below it.
std::optional<fs::path> below(const fs::path& path, const fs::path& root) {
  fs::path rel = path.lexically_relative(root);
  if (rel.empty() || rel == "." || *rel.begin() == "..") return std::nullopt;
  return rel;
}

// Owns one inotify descriptor (read on the executor given to create()), its
// watches, and the debounce Timer. Used only from that executor's thread.
class InotifyWatcher final : public FileWatcher {
 public:
  InotifyWatcher(const boost::asio::any_io_executor& executor, Clock& clock, Millis debounce,
                 std::function<void(const std::string&)> on_change)
      : stream_(executor), clock_(clock), debounce_(debounce), on_change_(std::move(on_change)) {}

  // Closing the descriptor drops every inotify watch and aborts the pending
  // wait; its handler then finds alive_ gone and returns.
  ~InotifyWatcher() override = default;

  Status open(const Options& options) {
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return os_error(errno, "cannot watch files: inotify_init1");
    boost::system::error_code ec;
    stream_.assign(fd, ec);
    if (ec) {
      ::close(fd);
      return Error{ErrorKind::kIo, "cannot watch files: " + ec.message(), ec.value()};
    }

    if (options.paths.empty()) {
      return Error{ErrorKind::kInvalidArgument, "nothing to watch: no paths given", 0};
    }
    for (const std::string& ignored : options.ignore_paths) {
      ignore_paths_.insert(normalize(ignored).string());
    }
    for (const std::string& text : options.paths) {
      Status added = add_root(text, options.ignore_globs);
      if (!added) return added;
    }
    arm();
    return {};
  }

 private:
  Status add_root(const std::string& text, const std::vector<std::string>& ignore_globs) {
    Root root;
    root.path = normalize(text);
    std::error_code ec;
    const fs::file_status status = fs::status(root.path, ec);
    if (status.type() == fs::file_type::not_found) {
      return Error{ErrorKind::kNotFound, "cannot watch \"" + text + "\": no such file or directory",
                   ENOENT};
    }
    if (ec) return os_error(ec.value(), "cannot watch \"" + text + "\"");

    root.is_dir = fs::is_directory(status);
    if (root.is_dir) {
      for (const std::string& glob : ignore_globs) add_glob(glob, root.globs);
      read_sempreignore(root.path, root.globs);
    }
    roots_.push_back(std::move(root));
    const Root& added = roots_.back();
    if (added.is_dir) return add_tree(added.path, added, /*is_root=*/true);
    const int err = add_watch(added.path.parent_path(), /*follow=*/true);
    if (err != 0) return watch_error(err, added.path);
    return {};
  }

  // Watches `top` and every directory below it that `root` does not ignore.
  // Only a failure on a root, or running out of watches, is an error: a
  // subdirectory that vanished or is unreadable is just left out.
  Status add_tree(const fs::path& top, const Root& root, bool is_root) {
    std::vector<fs::path> pending{top};
    while (!pending.empty()) {
      const fs::path dir = std::move(pending.back());
      pending.pop_back();
      // Watched before it is listed, so a directory made in between is seen.
      const int err = add_watch(dir, /*follow=*/is_root && dir == top);
      if (err == ENOSPC || (err != 0 && is_root && dir == top)) return watch_error(err, dir);
      if (err != 0) continue;

      std::error_code ec;
      fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
      for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
        std::error_code type_ec;
        if (it->is_symlink(type_ec) || !it->is_directory(type_ec)) continue;
        const fs::path& child = it->path();
        const auto rel = below(child, root.path);
        if (!rel || ignored_below(root, *rel, /*is_dir=*/true)) continue;
        if (ignore_paths_.contains(child.string())) continue;
        pending.push_back(child);
      }
    }
    return {};
  }

  // Returns 0 or the errno of inotify_add_watch.
  int add_watch(const fs::path& dir, bool follow) {
    std::uint32_t mask = kChangeMask | IN_ONLYDIR;
    if (!follow) mask |= IN_DONT_FOLLOW;
    const int wd = ::inotify_add_watch(stream_.native_handle(), dir.c_str(), mask);
    if (wd < 0) return errno;
    // The kernel hands back the same descriptor for a directory reached twice
    // (nested roots, a file's parent, a link to a root); keep each name once.
    std::vector<fs::path>& dirs = watches_[wd];
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
    return 0;
  }

  static Error watch_error(int err, const fs::path& path) {
    if (err == ENOSPC) {
      return Error{ErrorKind::kTransient,
                   "cannot watch \"" + path.string() +
                       "\": inotify watch limit reached (raise fs.inotify.max_user_watches)",
                   err};
    }
    return os_error(err, "cannot watch \"" + path.string() + "\"");
  }

  void arm() {
    std::weak_ptr<bool> alive = alive_;
    stream_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [this, alive](const boost::system::error_code& ec) {
                         if (ec || alive.expired()) return;
                         on_readable();
                       });
  }

  void on_readable() {
    bool changed = false;
    for (int i = 0; i < kReadsPerWakeup; ++i) {
      const ssize_t n = ::read(stream_.native_handle(), buffer_.data(), buffer_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EAGAIN: drained
      std::size_t offset = 0;
      while (offset + sizeof(inotify_event) <= static_cast<std::size_t>(n)) {
        inotify_event event;
        std::memcpy(&event, buffer_.data() + offset, sizeof event);
        const char* name = buffer_.data() + offset + sizeof event;
        // The name is NUL-padded to the record's length.
        changed |= handle(event, std::string_view(name, ::strnlen(name, event.len)));
        offset += sizeof event + event.len;
      }
    }
    if (changed) restart_debounce();
    arm();
  }

  // Updates the watch set for one event; returns whether it is a change to report.
  bool handle(const inotify_event& event, std::string_view name) {
    if (event.mask & IN_Q_OVERFLOW) {
      // Events were lost; something changed, but not knowable what.
      note_change(roots_.front().path);
      return true;
    }
    const auto found = watches_.find(event.wd);
    if (found == watches_.end()) return false;
    if (event.mask & IN_IGNORED) {
      watches_.erase(found);
      return false;
    }
    // Copied: watching a new directory may rehash watches_.
    const std::vector<fs::path> dirs = found->second;
    const bool is_dir = name.empty() || (event.mask & IN_ISDIR) != 0;
    bool changed = false;
    for (const fs::path& dir : dirs) {
      const fs::path path = name.empty() ? dir : dir / name;
      if (is_dir && (event.mask & IN_MOVED_FROM)) forget_tree(path);
      if (is_dir && (event.mask & (IN_CREATE | IN_MOVED_TO))) watch_new_directory(path);
      if ((event.mask & kChangeMask) && reportable(path, is_dir)) {
        note_change(path);
        changed = true;
      }
    }
    return changed;
  }

  bool reportable(const fs::path& path, bool is_dir) const {
    if (ignore_paths_.contains(path.string())) return false;
    for (const Root& root : roots_) {
      if (path == root.path) return true;
      if (!root.is_dir) continue;
      const auto rel = below(path, root.path);
      if (rel && !ignored_below(root, *rel, is_dir)) return true;
    }
    return false;
  }

  void watch_new_directory(const fs::path& path) {
    if (ignore_paths_.contains(path.string())) return;
    for (const Root& root : roots_) {
      if (!root.is_dir) continue;
      const auto rel = below(path, root.path);
      if (!rel || ignored_below(root, *rel, /*is_dir=*/true)) continue;
      // Nothing to tell anyone if this fails: the creation itself is
      // reported, and a directory that vanished needs no watch.
      (void)add_tree(path, root, /*is_root=*/false);
    }
  }

  // A directory moved away keeps its watches in the kernel, under a name that
  // is no longer true; drop them (a move within the tree re-adds them).
  void forget_tree(const fs::path& path) {
    for (auto it = watches_.begin(); it != watches_.end();) {
      std::vector<fs::path>& dirs = it->second;
      std::erase_if(dirs, [&](const fs::path& dir) { return dir == path || below(dir, path); });
      if (dirs.empty()) {
        ::inotify_rm_watch(stream_.native_handle(), it->first);
        it = watches_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void note_change(const fs::path& path) {
    if (!first_path_) first_path_ = path.string();
  }

  // Each batch of changes pushes the end of the quiet window out again;
  // replacing the Timer cancels the previous one.
  void restart_debounce() {
    std::weak_ptr<bool> alive = alive_;
    debounce_timer_ = clock_.start_timer(debounce_, [this, alive] {
      if (alive.expired() || !first_path_) return;
      std::string path = std::move(*first_path_);
      first_path_.reset();
      // Copied: the callback may destroy this watcher, and with it on_change_.
      auto on_change = on_change_;
      on_change(path);
    });
  }

  boost::asio::posix::stream_descriptor stream_;
  Clock& clock_;
  const Millis debounce_;
  const std::function<void(const std::string&)> on_change_;

  std::vector<Root> roots_;
  std::unordered_set<std::string> ignore_paths_;
  std::unordered_map<int, std::vector<fs::path>> watches_;  // descriptor → the directories it is

  std::optional<std::string> first_path_;  // set while a burst is pending
  std::unique_ptr<Timer> debounce_timer_;
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  alignas(inotify_event) std::array<char, 64 * 1024> buffer_;
};

}  // namespace

Result<std::unique_ptr<FileWatcher>> FileWatcher::create(
    boost::asio::any_io_executor executor, Clock& clock, const Options& options,
    std::function<void(const std::string&)> on_change) {
  auto watcher =
      std::make_unique<InotifyWatcher>(executor, clock, options.debounce, std::move(on_change));
  Status opened = watcher->open(options);
  if (!opened) return opened.error();
  return std::unique_ptr<FileWatcher>(std::move(watcher));
}

}  // namespace sempre

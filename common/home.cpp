#include "home.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "os.hpp"

namespace sempre {
namespace {

// Closes a descriptor on every path out of a function unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Creates `path` with `mode` unless it exists. Parents are created as a
// plain `mkdir -p` would (the umask decides their mode): only the home
// itself holds anything private.
Status make_directory(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) {
    // The umask may have taken bits away but never adds any; say exactly
    // what we mean.
    if (::chmod(path.c_str(), mode) != 0) return os_error(errno, "cannot chmod " + path);
    return {};
  }
  if (errno == EEXIST) return {};
  if (errno != ENOENT) return os_error(errno, "cannot create " + path);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return os_error(ec.value(), "cannot create " + path);
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return os_error(errno, "cannot create " + path);
  }
  if (::chmod(path.c_str(), mode) != 0) return os_error(errno, "cannot chmod " + path);
  return {};
}

// Only a directory of ours that nobody else can write into is trusted: the
// socket, the lock and state.json all live there.
Status check_private_directory(const std::string& path, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return os_error(errno, std::string("cannot stat ") + path);
  if (!S_ISDIR(st.st_mode)) {
    return Error{ErrorKind::kInvalidArgument,
                 std::string(what) + " " + path + " is not a directory", ENOTDIR};
  }
  if (st.st_uid != ::geteuid()) {
    return Error{ErrorKind::kPermission,
                 std::string(what) + " " + path + " is owned by uid " + std::to_string(st.st_uid) +
                     ", not by uid " + std::to_string(::geteuid()) + " who runs sempre",
                 EPERM};
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error{ErrorKind::kPermission,
                 std::string(what) + " " + path + " is group or world writable (mode " +
                     octal_mode(st.st_mode) + "); run chmod go-w on it",
                 EPERM};
  }
  return {};
}

// The pid the running daemon wrote into the lock file, or 0 when it has not
// yet written it.
pid_t read_lock_pid(int fd) {
  char text[32] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  if (n <= 0) return 0;
  pid_t pid = 0;
  std::from_chars(text, text + n, pid);
  return pid;
}

bool is_live_socket(const sockaddr_un& address) {
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  FdGuard guard(probe);
  int rc;
  do {
    rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  } while (rc != 0 && errno == EINTR);
  // EAGAIN: a listener whose backlog is full is very much alive.
  return rc == 0 || errno == EAGAIN;
}

}  // namespace

std::string resolve_home() {
  std::filesystem::path home;
  if (const char* env = std::getenv("SEMPRE_HOME"); env != nullptr && *env != '\0') {
    home = env;
  } else {
    std::string user_home;
    if (const char* env_home = std::getenv("HOME"); env_home != nullptr && *env_home != '\0') {
      user_home = env_home;
    } else if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_dir != nullptr) {
      user_home = pw->pw_dir;
    } else {
      user_home = "/";
    }
    home = std::filesystem::path(user_home) / ".sempre";
  }
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(home, ec);
  if (ec) absolute = home;
  std::string text = absolute.lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

HomePaths home_paths(const std::string& home) {
  HomePaths paths;
  paths.home = home;
  const std::string prefix = home.empty() || home.back() == '/' ? home : home + "/";
  paths.socket = prefix + "sempre.sock";
  paths.lock = prefix + "sempred.lock";
  paths.start_lock = prefix + "start.lock";
  paths.log = prefix + "sempred.log";
  paths.state = prefix + "state.json";
  paths.logs_dir = prefix + "logs";
  return paths;
}

Status prepare_home(const HomePaths& paths) {
  if (auto st = make_directory(paths.home, 0700); !st) return st;
  if (auto st = check_private_directory(paths.home, "SEMPRE_HOME"); !st) return st;
  if (auto st = make_directory(paths.logs_dir, 0700); !st) return st;
  return check_private_directory(paths.logs_dir, "the log directory");
}

Result<int> take_daemon_lock(const HomePaths& paths) {
  const int fd =
      ::open(paths.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, S_IRUSR | S_IWUSR);
  if (fd < 0) return os_error(errno, "cannot open " + paths.lock);
  FdGuard guard(fd);
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno != EWOULDBLOCK) return os_error(errno, "cannot lock " + paths.lock);
    const pid_t holder = read_lock_pid(fd);
    std::string message = "a daemon is already running for " + paths.home;
    if (holder > 0) message += " (pid " + std::to_string(holder) + ")";
    return Error{ErrorKind::kExists, message, EEXIST};
  }
  if (auto st = record_daemon_pid(fd); !st) return st.error();
  return guard.release();
}

Status record_daemon_pid(int lock_fd) {
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd, 0) != 0) return os_error(errno, "cannot write the daemon lock");
  if (::pwrite(lock_fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return os_error(errno, "cannot write the daemon lock");
  }
  return {};
}

Result<int> bind_control_socket(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    return Error{ErrorKind::kInvalidArgument,
                 "the control socket path " + path + " is too long for a unix socket (" +
                     std::to_string(path.size()) + " bytes, at most " +
                     std::to_string(sizeof address.sun_path - 1) +
                     "); choose a shorter SEMPRE_HOME",
                 ENAMETOOLONG};
  }
  path.copy(address.sun_path, path.size());

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return os_error(errno, "cannot create the control socket");
  FdGuard guard(fd);

  auto bind_private = [&] {
    // The file is created by bind(2) with the umask applied: under 0177 no
    // other user can ever connect, not even between bind and chmod.
    const mode_t old_mask = ::umask(0177);
    const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    const int err = errno;
    ::umask(old_mask);
    errno = err;
    return rc;
  };

  if (bind_private() != 0) {
    if (errno != EADDRINUSE) return os_error(errno, "cannot bind " + path);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
      return Error{ErrorKind::kInvalidArgument, path + " exists and is not a socket", EEXIST};
    }
    if (is_live_socket(address)) {
      return Error{ErrorKind::kIo, "another process is listening on " + path, EADDRINUSE};
    }
    // Left behind by a daemon that died without cleaning up.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return os_error(errno, "cannot remove the stale socket " + path);
    }
    if (bind_private() != 0) return os_error(errno, "cannot bind " + path);
  }
  if (::chmod(path.c_str(), S_IRUSR | S_IWUSR) != 0) return os_error(errno, "cannot chmod " + path);
  if (::listen(fd, SOMAXCONN) != 0) return os_error(errno, "cannot listen on " + path);
  return guard.release();
}

Status write_private_file(const std::string& path, std::string_view text) {
  return os::write_file_atomic(path, text, 0600);
}

}  // namespace sempre

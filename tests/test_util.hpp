// Helpers shared by the tests: waiting on events with a deadline, temporary
// directories, small file I/O.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace sempre::test {

using namespace std::chrono_literals;

// Runs `io` until `done()` holds or `limit` passes. Returns done(). This is
// the only way tests wait: on an event, with a deadline, never a sleep.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = 15s) {
  // A context that ran out of work is stopped; the guard keeps it from
  // stopping while we wait, and restart() undoes an earlier stop.
  if (io.stopped()) io.restart();
  auto guard = boost::asio::make_work_guard(io);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    io.run_one_until(deadline);
  }
  return true;
}

// A fresh directory under $TMPDIR, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sempre-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A copy of the program at `path` in `dir`, which is opened up (0755) so that
// a child that dropped to another user (nobody) can still exec it wherever
// the build tree lives (under a 0700 /root, say).
inline std::string world_executable_copy(const std::string& path, const TempDir& dir) {
  std::filesystem::permissions(dir.path(), std::filesystem::perms(0755));
  const auto copy = dir.path() / std::filesystem::path(path).filename();
  std::filesystem::copy_file(path, copy, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::permissions(copy, std::filesystem::perms(0755));
  return copy.string();
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  std::istringstream in(text);
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// The environment of this process as "K=V" entries.
inline std::vector<std::string> current_env() {
  std::vector<std::string> env;
  for (char** e = ::environ; *e; ++e) env.emplace_back(*e);
  return env;
}

// Whether `pid` is a live process; a zombie counts as dead.
inline bool alive(pid_t pid) {
  if (pid <= 0) return false;
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

// Waits for any process (not only a child of ours) to end, through a pidfd.
// True at once when it is gone already.
inline bool wait_for_exit(pid_t pid, std::chrono::milliseconds limit = 15s) {
  if (pid <= 0) return true;
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int n = 0;
  do {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    n = ::poll(&p, 1, static_cast<int>(std::max<std::chrono::milliseconds::rep>(left.count(), 0)));
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  return n == 1 || !alive(pid);
}

// Whether `done` becomes true within `limit`, looking every few
// milliseconds: for a state of another process that no event announces.
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    ::usleep(5000);
  }
  return true;
}

// A tmpfs of its own at `path` (made as needed), of `size` ("256k") and mode
// 0700, small enough to fill: for a full disk without filling a real one.
// Mounting needs root: mounted() says whether it worked. Unmounted, lazily,
// when destroyed.
class TinyFs {
 public:
  TinyFs(const std::string& path, const std::string& size) : path_(path) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    const std::string options = "size=" + size + ",mode=0700";
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = errno;
    }
  }
  ~TinyFs() {
    unfill();
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  TinyFs(const TinyFs&) = delete;
  TinyFs& operator=(const TinyFs&) = delete;

  bool mounted() const { return mounted_; }
  int error() const { return error_; }

  // Fills it to ENOSPC with a ballast file; false if it did not get there.
  bool fill() {
    ballast_ = path_ + "/ballast";
    const int fd = ::open(ballast_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    const std::string block(4096, '\0');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    // The last page may take a few bytes more.
    while (::write(fd, block.data(), 1) > 0) {
    }
    const int err = errno;
    ::close(fd);
    return err == ENOSPC;
  }

  // Frees what fill() took.
  void unfill() {
    if (!ballast_.empty()) ::unlink(ballast_.c_str());
    ballast_.clear();
  }

 private:
  std::string path_;
  std::string ballast_;
  bool mounted_ = false;
  int error_ = 0;
};

}  // namespace sempre::test
